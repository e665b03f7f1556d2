//! What the Redis side answers when a pod supervisor asks (see
//! [`crate::orchestration::controller::PodHooks`]): a crashed master of a redis with automatic
//! failover or a sentinel sibling waits for a replica to be promoted before it starts again,
//! and every pod exit reaches the failover tasks at once.

use crate::orchestration::controller::Controller;
use crate::orchestration::controller::{CertReload, HookFuture, HookOutcome, PodHooks};
use crate::redis::state::FailoverState;
use std::sync::Arc;
use vd_core::ResourceRef;

/// The Redis side's answers to pod supervisors.
pub struct RedisHooks {
    failover: Arc<FailoverState>,
}

impl RedisHooks {
    /// Hooks that report to and read from `failover`.
    pub fn new(failover: Arc<FailoverState>) -> RedisHooks {
        RedisHooks { failover }
    }
}

impl PodHooks for RedisHooks {
    fn pod_exited(&self, owner: &ResourceRef, ordinal: u32) {
        self.failover.pod_exited(owner, ordinal);
    }

    /// A data redis pod loads its renewed certificate live; redis-sentinel cannot (7.x has no
    /// command for it), so a sentinel pod is restarted. The other pods with certificates, a
    /// TLS redis's proxies, watch their certificate file themselves.
    fn certificate_renewed<'a>(
        &'a self,
        ctl: &'a Controller,
        owner: &'a ResourceRef,
        ordinal: u32,
    ) -> HookOutcome<'a> {
        if owner.kind != vd_core::Kind::Redis {
            return Box::pin(std::future::ready(Ok(CertReload::Live)));
        }
        let sentinel = crate::redis::facts::load(ctl, owner)
            .is_ok_and(|s| vd_core::redis::topology::is_sentinel(&s));
        if sentinel {
            return Box::pin(std::future::ready(Ok(CertReload::Restart)));
        }
        Box::pin(async move {
            crate::redis::tls::reload_certificate(ctl, owner, ordinal).await?;
            Ok(CertReload::Live)
        })
    }

    /// A cluster's pod goes once its slots are moved to the shards that stay.
    fn may_remove(&self, ctl: &Controller, owner: &ResourceRef, ordinal: u32) -> bool {
        let cluster = owner.kind == vd_core::Kind::Redis
            && crate::redis::facts::load(ctl, owner)
                .is_ok_and(|s| vd_core::redis::cluster::is_cluster(&s));
        !cluster || self.failover.cluster_may_remove(owner, ordinal)
    }

    /// With automatic failover, a master found down (after a crash, or by a restarted
    /// controller) waits before its launch, which is then resolved as a replica's; in a
    /// cluster, a shard master waits for its replica to take over.
    fn before_launch<'a>(
        &'a self,
        ctl: &'a Controller,
        owner: &'a ResourceRef,
        ordinal: u32,
    ) -> HookFuture<'a> {
        Box::pin(async move {
            crate::redis::failover::hold_restart(ctl, &self.failover, owner, ordinal).await;
            crate::redis::cluster::hold_restart(ctl, &self.failover, owner, ordinal).await;
        })
    }

    /// A crashed master of a sentinel-watched redis waits for the sentinels' failover.
    fn after_exit<'a>(
        &'a self,
        ctl: &'a Controller,
        owner: &'a ResourceRef,
        ordinal: u32,
    ) -> HookFuture<'a> {
        Box::pin(crate::redis::sentinel::hold_restart(ctl, owner, ordinal))
    }
}
