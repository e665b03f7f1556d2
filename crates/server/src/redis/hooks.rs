//! What the Redis side answers when a pod supervisor asks (see
//! [`crate::orchestration::controller::PodHooks`]): a crashed master of a redis with automatic
//! failover or a sentinel sibling waits for a replica to be promoted before it starts again,
//! and every pod exit reaches the failover tasks at once.

use crate::orchestration::controller::Controller;
use crate::orchestration::controller::{CertReload, HookFuture, HookOutcome, PodHooks};
use crate::redis::ops::Ops;
use crate::redis::state::FailoverState;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use vd_core::event::{Level, Reason};
use vd_core::ResourceRef;

/// How long a rollout waits after a failed handover before it tries again.
const HANDOVER_RETRY: Duration = Duration::from_secs(5);

/// The Redis side's answers to pod supervisors.
pub struct RedisHooks {
    failover: Arc<FailoverState>,
    /// The operations' context, for the handovers a rollout starts. Weak: the operations hold
    /// the controller, which holds these hooks.
    ops: Weak<Ops>,
    /// Per redis, the rollout's handover: running, or when the last one failed.
    handovers: Arc<Mutex<HashMap<ResourceRef, Handover>>>,
}

#[derive(Debug, Clone, Copy)]
enum Handover {
    Running,
    Failed(Instant),
}

impl RedisHooks {
    /// Hooks over the Redis operations' context `ops`.
    pub fn new(ops: &Arc<Ops>) -> RedisHooks {
        RedisHooks {
            failover: ops.failover.clone(),
            ops: Arc::downgrade(ops),
            handovers: Arc::default(),
        }
    }

    fn handover_running(&self, id: &ResourceRef) -> bool {
        self.handovers
            .lock()
            .is_ok_and(|h| matches!(h.get(id), Some(Handover::Running)))
    }

    /// Starts the handover of `id`'s master unless one runs or failed a moment ago.
    fn start_handover(&self, id: &ResourceRef) {
        let Some(ops) = self.ops.upgrade() else {
            return;
        };
        let Ok(mut running) = self.handovers.lock() else {
            return;
        };
        if let Some(h) = running.get(id) {
            match h {
                Handover::Running => return,
                Handover::Failed(at) if at.elapsed() < HANDOVER_RETRY => return,
                Handover::Failed(_) => {}
            }
        }
        running.insert(id.clone(), Handover::Running);
        let (id, handovers) = (id.clone(), self.handovers.clone());
        tokio::spawn(async move {
            let outcome = crate::redis::switchover::hand_over(&ops, &id).await;
            let mut done = None;
            if let Err(e) = &outcome {
                tracing::warn!(redis = %id, error = %e, "the rollout's handover failed; it is tried again");
                ops.ctl.event(
                    Level::Warning,
                    Some(&id),
                    None,
                    Reason::HandoverFailed,
                    &format!("the rollout could not move the master before replacing its pod: {e}"),
                );
                done = Some(Handover::Failed(Instant::now()));
            }
            if let Ok(mut h) = handovers.lock() {
                match done {
                    Some(f) => h.insert(id, f),
                    None => h.remove(&id),
                };
            }
            ops.ctl.notify();
        });
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

    /// A data redis's master is replaced last, after every replica is current and ready.
    fn replace_last(&self, ctl: &Controller, owner: &ResourceRef) -> Option<u32> {
        handover_pod(ctl, owner)
    }

    /// The master's pod goes once it is no longer the master: its role is handed to an
    /// up-to-date replica first, with a live switchover.
    fn may_replace(&self, ctl: &Controller, owner: &ResourceRef, ordinal: u32) -> bool {
        // No pod of a redis whose handover runs goes: the old master stays paused until the
        // handover has demoted it and recorded the new one.
        if self.handover_running(owner) {
            return false;
        }
        // A master that is down serves nobody: its replacement is the failover's business.
        if handover_pod(ctl, owner) != Some(ordinal)
            || !ctl.pod_ready(&vd_core::naming::pod_name(owner, ordinal))
        {
            return true;
        }
        self.start_handover(owner);
        false
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

/// The pod of `owner` that hands its master role over before the rollout replaces it.
fn handover_pod(ctl: &Controller, owner: &ResourceRef) -> Option<u32> {
    if owner.kind != vd_core::Kind::Redis {
        return None;
    }
    let spec = crate::redis::facts::load(ctl, owner).ok()?;
    let master = crate::redis::facts::master_ordinal(ctl, owner).ok()?;
    vd_core::redis::switchover::rollout_handover(&spec, master)
}
