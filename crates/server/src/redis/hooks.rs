//! What the Redis side answers when a pod supervisor or the rollout asks (see
//! [`crate::orchestration::controller::PodHooks`]): a crashed master of a redis with automatic
//! failover or a sentinel sibling waits for a replica to be promoted before it starts again,
//! every pod exit reaches the failover tasks at once, and a rollout replaces a replicated
//! redis's pods one at a time while the other replicas are linked, its master last and only
//! after handing the master role to an up-to-date replica (a cluster's: each shard master
//! after handing its shard to an in-sync replica).

use crate::orchestration::controller::Controller;
use crate::orchestration::controller::{
    CertReload, CheckFuture, HookFuture, HookOutcome, PodHooks,
};
use crate::redis::ops::Ops;
use crate::redis::state::FailoverState;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use vd_core::event::{Level, Reason};
use vd_core::redis::cluster::rollout;
use vd_core::ResourceRef;

/// How long a rollout waits after a failed handover before it tries again.
const HANDOVER_RETRY: Duration = Duration::from_secs(5);
/// How long a look at the replicas' links decides a replacement.
const LINKS_FRESH: Duration = Duration::from_secs(1);
/// How long looking at the replicas' links may take.
const LINKS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a look waits for the replicas to be linked before the rollout asks again.
const LINKS_WAIT: Duration = Duration::from_secs(30);

/// The Redis side's answers to pod supervisors.
pub struct RedisHooks {
    failover: Arc<FailoverState>,
    /// The operations' context, for the checks and handovers a rollout starts. Weak: the
    /// operations hold the controller, which holds these hooks.
    ops: Weak<Ops>,
    /// Per redis, what its rollout last learned and what it runs.
    gates: Arc<Mutex<HashMap<ResourceRef, Gate>>>,
}

/// What a redis's rollout knows between reconcile passes.
#[derive(Debug, Default)]
struct Gate {
    /// The replicas whose link to the master was up, and when that was seen.
    linked: Option<(Instant, BTreeSet<u32>)>,
    /// A look at the links runs.
    looking: bool,
    /// The handover runs.
    handing_over: bool,
    /// When the last handover failed.
    failed_at: Option<Instant>,
    /// A cluster's pods as the rollout last saw them, and when.
    cluster: Option<(Instant, Vec<rollout::Node>)>,
}

impl RedisHooks {
    /// Hooks over the Redis operations' context `ops`.
    pub fn new(ops: &Arc<Ops>) -> RedisHooks {
        RedisHooks {
            failover: ops.failover.clone(),
            ops: Arc::downgrade(ops),
            gates: Arc::default(),
        }
    }

    /// Runs `task` for `id` in the background and wakes the reconcile loop when it is done.
    fn spawn<F, Fut>(&self, id: &ResourceRef, task: F)
    where
        F: FnOnce(Arc<Ops>, ResourceRef) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let Some(ops) = self.ops.upgrade() else {
            return;
        };
        let id = id.clone();
        tokio::spawn(async move {
            let ctl = ops.ctl.clone();
            task(ops, id).await;
            ctl.notify();
        });
    }

    /// Starts watching which replicas of `id` are linked to its master `master`, until they
    /// let `replacing` go (or `LINKS_WAIT` passes), then wakes the rollout.
    fn look_at_links(&self, id: &ResourceRef, replicas: u32, master: u32, replacing: u32) {
        let gates = self.gates.clone();
        self.spawn(id, move |ops, id| async move {
            let start = Instant::now();
            let linked = loop {
                let linked =
                    tokio::time::timeout(LINKS_TIMEOUT, linked_replicas(&ops, &id, master))
                        .await
                        .ok()
                        .flatten()
                        .unwrap_or_default();
                let settled = vd_core::redis::switchover::may_replace_now(
                    replicas, master, replacing, &linked,
                );
                if settled || start.elapsed() > LINKS_WAIT {
                    break linked;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            if let Ok(mut g) = gates.lock() {
                let gate = g.entry(id).or_default();
                gate.looking = false;
                gate.linked = Some((Instant::now(), linked));
            }
        });
    }

    /// Starts the handover of `id`'s master.
    fn hand_over(&self, id: &ResourceRef) {
        let gates = self.gates.clone();
        self.spawn(id, move |ops, id| async move {
            let outcome = crate::redis::switchover::hand_over(&ops, &id).await;
            if let Err(e) = &outcome {
                tracing::warn!(redis = %id, error = %e, "the rollout's handover failed; it is tried again");
                ops.ctl.event(
                    Level::Warning,
                    Some(&id),
                    None,
                    Reason::HandoverFailed,
                    &format!("the rollout could not move the master before replacing its pod: {e}"),
                );
            }
            if let Ok(mut g) = gates.lock() {
                let gate = g.entry(id).or_default();
                gate.handing_over = false;
                gate.linked = None;
                gate.failed_at = outcome.is_err().then(Instant::now);
            }
        });
    }

    /// Starts watching a cluster's pods until they let `replacing` go (or `LINKS_WAIT`
    /// passes), then wakes the rollout.
    fn look_at_cluster(&self, id: &ResourceRef, replacing: u32) {
        let gates = self.gates.clone();
        self.spawn(id, move |ops, id| async move {
            let start = Instant::now();
            let view = loop {
                let view = tokio::time::timeout(
                    LINKS_TIMEOUT,
                    crate::redis::cluster::rollout_view(&ops.ctl, &id),
                )
                .await
                .ok()
                .and_then(Result::ok);
                let settled = view
                    .as_ref()
                    .is_some_and(|v| rollout::step(v, replacing) != rollout::Step::Wait);
                if settled || start.elapsed() > LINKS_WAIT {
                    break view;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            if let Ok(mut g) = gates.lock() {
                let gate = g.entry(id).or_default();
                gate.looking = false;
                // No view (no node answered): the next ask looks again.
                gate.cluster = view.map(|v| (Instant::now(), v));
            }
        });
    }

    /// Starts the handover of shard `shard` of the cluster `id`.
    fn hand_over_shard(&self, id: &ResourceRef, shard: usize) {
        let gates = self.gates.clone();
        self.spawn(id, move |ops, id| async move {
            let outcome = crate::redis::switchover::hand_over_shard(&ops, &id, shard).await;
            if let Err(e) = &outcome {
                tracing::warn!(redis = %id, shard, error = %e, "the rollout's handover failed; it is tried again");
                ops.ctl.event(
                    Level::Warning,
                    Some(&id),
                    None,
                    Reason::HandoverFailed,
                    &format!(
                        "the rollout could not move shard {shard}'s master before replacing its pod: {e}"
                    ),
                );
            }
            if let Ok(mut g) = gates.lock() {
                let gate = g.entry(id).or_default();
                gate.handing_over = false;
                gate.cluster = None;
                gate.failed_at = outcome.is_err().then(Instant::now);
            }
        });
    }

    /// The rollout's gate for a pod of a cluster: what [`rollout::step`] says of the cluster
    /// as last seen, looked at again once that is more than `LINKS_FRESH` old.
    fn cluster_gate(&self, ctl: &Controller, id: &ResourceRef, ordinal: u32) -> bool {
        let Ok(mut g) = self.gates.lock() else {
            return false;
        };
        let gate = g.entry(id.clone()).or_default();
        if gate.handing_over || gate.looking {
            return false;
        }
        // A pod that is down serves nothing (a master down is the shard manager's to fail
        // over).
        if !ctl.pod_ready(&vd_core::naming::pod_name(id, ordinal)) {
            return true;
        }
        if gate.failed_at.is_some_and(|t| t.elapsed() < HANDOVER_RETRY) {
            return false;
        }
        let view = match &gate.cluster {
            Some((at, view)) if at.elapsed() < LINKS_FRESH => view,
            _ => {
                gate.looking = true;
                drop(g);
                self.look_at_cluster(id, ordinal);
                return false;
            }
        };
        match rollout::step(view, ordinal) {
            rollout::Step::Replace => {
                // Stale once this pod goes: the next replacement waits for a new look.
                gate.cluster = None;
                true
            }
            rollout::Step::Wait => false,
            rollout::Step::HandOver { shard } => {
                gate.handing_over = true;
                drop(g);
                self.hand_over_shard(id, shard);
                false
            }
        }
    }

    /// The rollout's gate for a pod of a replicated data redis whose master is `master`.
    fn gate(
        &self,
        ctl: &Controller,
        id: &ResourceRef,
        replicas: u32,
        master: u32,
        ordinal: u32,
    ) -> bool {
        let Ok(mut g) = self.gates.lock() else {
            return false;
        };
        let gate = g.entry(id.clone()).or_default();
        // Nothing goes while the master moves: the old master stays paused until the handover
        // has demoted it and recorded the new one.
        if gate.handing_over || gate.looking {
            return false;
        }
        let is_master = ordinal == master;
        // A down replica serves nobody; a master down that could not be handed over neither
        // (with automatic failover or sentinels it is no longer the master soon anyway).
        let ready = ctl.pod_ready(&vd_core::naming::pod_name(id, ordinal));
        if !ready && (!is_master || gate.failed_at.is_some()) {
            return true;
        }
        if gate.failed_at.is_some_and(|t| t.elapsed() < HANDOVER_RETRY) {
            return false;
        }
        let linked = match &gate.linked {
            Some((at, linked)) if at.elapsed() < LINKS_FRESH => linked,
            _ => {
                gate.looking = true;
                drop(g);
                self.look_at_links(id, replicas, master, ordinal);
                return false;
            }
        };
        if !vd_core::redis::switchover::may_replace_now(replicas, master, ordinal, linked) {
            return false;
        }
        if !is_master {
            // What the links were is stale once a pod goes: the next replacement waits for a
            // new look, taken once this pod is back and ready.
            gate.linked = None;
            return true;
        }
        gate.handing_over = true;
        drop(g);
        self.hand_over(id);
        false
    }
}

/// The replicas whose `INFO replication` on the master `master` of `id` says `online`.
async fn linked_replicas(ops: &Ops, id: &ResourceRef, master: u32) -> Option<BTreeSet<u32>> {
    let ctl = &ops.ctl;
    let ips = crate::redis::facts::pod_ips(ctl, id);
    let auth = crate::redis::facts::auth(ctl, id).ok()?;
    let mut node = crate::redis::facts::connect(ips.get(&master)?, &auth)
        .await
        .ok()?;
    let r = node.replication().await.ok()?;
    Some(
        r.replicas
            .iter()
            .filter(|l| l.state == "online")
            .filter_map(|l| crate::redis::facts::ordinal_of_host(id, &l.ip, &ips))
            .collect(),
    )
}

impl PodHooks for RedisHooks {
    fn pod_exited(&self, owner: &ResourceRef, ordinal: u32) {
        self.failover.pod_exited(owner, ordinal);
    }

    /// The readiness check vd writes for redis, sentinel and proxy pods (`redis-cli -e -h
    /// <pod> [-p PORT] ping`, over TLS for a TLS redis) is a PING the controller sends itself:
    /// to the pod on the same port, authenticated with the same `REDISCLI_AUTH`, verifying the
    /// same CA, an error reply (`NOAUTH`, `LOADING`) failing it as `-e` does.
    fn native_check<'a>(
        &'a self,
        ctl: &'a Controller,
        command: &'a [String],
        ip: &'a str,
        env: &'a BTreeMap<String, String>,
        timeout: Duration,
    ) -> Option<CheckFuture<'a>> {
        let pod_ip = env.get("VOODU_POD_IP").map_or(ip, String::as_str);
        let check = vd_core::redis::probe::PingCheck::parse(command, pod_ip)?;
        let password = env.get("REDISCLI_AUTH").filter(|p| !p.is_empty());
        Some(Box::pin(async move {
            let trust = match check.tls {
                true => Some(vd_redisctl::TlsTrust::new(
                    ctl.certs.ca_pem().map_err(|e| e.to_string())?,
                )),
                false => None,
            };
            let access = vd_redisctl::Access {
                password: password.map(String::as_str),
                tls: trust.as_ref(),
            };
            let mut node = vd_redisctl::Node::connect_with(ip, check.port, access, timeout)
                .await
                .map_err(|e| e.to_string())?;
            node.ping().await.map_err(|e| e.to_string())
        }))
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

    /// A replicated data redis's master: started first after a full stop (its replicas come
    /// back following it), and replaced last, after every replica is current and ready.
    fn anchor(&self, ctl: &Controller, owner: &ResourceRef) -> Option<u32> {
        handover_pod(ctl, owner).map(|(_, master)| master)
    }

    /// A replicated redis's pods go one at a time while every other replica is linked to the
    /// master; the master's goes once it is no longer the master: its role is handed to an
    /// up-to-date replica first, with a live switchover. A cluster's pods go while every other
    /// replica is in sync, each shard master's once it handed its shard to a replica.
    fn may_replace(&self, ctl: &Controller, owner: &ResourceRef, ordinal: u32) -> bool {
        let cluster = owner.kind == vd_core::Kind::Redis
            && crate::redis::facts::load(ctl, owner)
                .is_ok_and(|s| vd_core::redis::cluster::is_cluster(&s));
        if cluster {
            return self.cluster_gate(ctl, owner, ordinal);
        }
        match handover_pod(ctl, owner) {
            Some((replicas, master)) => self.gate(ctl, owner, replicas, master, ordinal),
            None => true,
        }
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

/// For a replicated data redis whose rollout hands its master over: its pod count and its
/// master.
fn handover_pod(ctl: &Controller, owner: &ResourceRef) -> Option<(u32, u32)> {
    if owner.kind != vd_core::Kind::Redis {
        return None;
    }
    let spec = crate::redis::facts::load(ctl, owner).ok()?;
    let master = crate::redis::facts::master_ordinal(ctl, owner).ok()?;
    vd_core::redis::switchover::rollout_handover(&spec, master)
        .map(|m| (spec.replicas.unwrap_or(1), m))
}
