//! Controller failover: for every redis with
//! `failover { automatic = true }`, one task observes each pod (the runtime's exit events at
//! once, `INFO` every [`TICK`]), asks the pure planner ([`vd_core::redis::failover::plan`]) what
//! to do, and executes its actions. The epoch and the target of a failover are written to the
//! store before anything changes, so a controller killed mid-failover redoes it on restart.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::redis::facts::{self as r, Auth};
use crate::redis::master::{self, Cause, NewMaster};
use crate::redis::ops::Ops;
use crate::redis::state::FailoverState;
use crate::types::PodState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use vd_core::event::{Level, Reason as EventReason};
use vd_core::redis::failover::{
    self as plan, Action, MasterMemory, NodeObs, NodeRole, NodeState, Pending, Reason,
};
use vd_core::redis::REDIS_PORT;
use vd_core::{Kind, ResourceRef};
use vd_redisctl::Node;
use vd_store::{MetaKey, StoreError};

/// How often every pod is checked.
const TICK: Duration = Duration::from_millis(100);
/// How often the set of redis resources with automatic failover is re-read.
const RESCAN: Duration = Duration::from_secs(1);
/// The longest a crashed master is kept down waiting for a failover that does not come.
const HOLD_LIMIT: Duration = Duration::from_secs(30);

/// A stored record that does not decode is logged and read as absent: a failover must not
/// stall on one. Other store errors are returned.
fn lenient<T>(read: Result<Option<T>, StoreError>) -> Result<Option<T>, ServerError> {
    match read {
        Err(StoreError::CorruptMeta { key, message }) => {
            tracing::warn!(%key, %message, "unreadable failover record; ignored");
            Ok(None)
        }
        other => Ok(other?),
    }
}

/// The stored epoch and unfinished failover of a redis.
fn stored(ctl: &Controller, id: &ResourceRef) -> Result<(u64, Option<Pending>), ServerError> {
    let epoch = lenient(ctl.store.meta_parsed(&MetaKey::FailoverEpoch(id.clone())))?;
    let pending = lenient(ctl.store.meta_json(&MetaKey::FailoverPending(id.clone())))?;
    Ok((epoch.unwrap_or(0), pending))
}

/// `down_after` when the redis has automatic failover on, with at least two pods.
/// A stopped redis has no failover: its pods are gone on purpose.
fn automatic(ctl: &Controller, id: &ResourceRef) -> Option<(u32, Duration)> {
    match ctl.is_stopped(id) {
        Ok(true) => return None,
        Ok(false) => {}
        // Carry on as if it runs: a failover task that idles costs nothing.
        Err(e) => tracing::warn!(redis = %id, error = %e, "could not read whether it is stopped"),
    }
    let spec = r::load(ctl, id).ok()?;
    if !vd_core::redis::topology::automatic_failover(&spec) {
        return None;
    }
    let f = spec.failover.as_ref()?;
    let replicas = spec.replicas.unwrap_or(1);
    (replicas >= 2).then(|| (replicas, Duration::from_millis(f.down_after_ms)))
}

/// Runs for the server's lifetime: starts a task per redis with automatic failover and stops
/// it when the redis is deleted or the block removed.
pub async fn run(ops: Arc<Ops>) {
    let ctl = ops.ctl.clone();
    let mut tasks: HashMap<ResourceRef, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let resources = ctl.store.list(Some(Kind::Redis)).unwrap_or_default();
        let wanted: HashSet<ResourceRef> = resources
            .iter()
            .map(|res| res.resource.id.clone())
            .filter(|id| automatic(&ctl, id).is_some())
            .collect();
        // Both HA modes get the write guard: the redis with automatic failover, and every
        // redis a sentinel sibling watches.
        let watched = resources.iter().filter_map(|res| match &res.resource.spec {
            vd_core::Spec::Redis(spec) => vd_core::redis::topology::monitor_of(spec),
            _ => None,
        });
        for res in &resources {
            if let Err(e) = crate::redis::feed::refresh(&ctl, &res.resource.id) {
                tracing::warn!(redis = %res.resource.id, error = %e, "proxy feed");
            }
        }
        for id in wanted.iter().cloned().chain(watched) {
            // A redis applied before vd set the guard gets it once it is between rollouts.
            let settled = ctl.workload_status(&id).is_some_and(|s| s.converged);
            if settled {
                if let Err(e) = crate::redis::ha::ensure_ha_bucket(&ctl, &id) {
                    tracing::warn!(redis = %id, error = %e, "HA write guard");
                }
            }
            if let Err(e) = crate::redis::ha::ensure_ha_live(&ctl, &id).await {
                tracing::warn!(redis = %id, error = %e, "HA write guard");
            }
        }
        tasks.retain(|id, t| {
            let keep = wanted.contains(id) && !t.is_finished();
            if !keep {
                t.abort();
            }
            keep
        });
        for id in wanted {
            tasks.entry(id.clone()).or_insert_with(|| {
                tracing::info!(redis = %id, "automatic failover on");
                tokio::spawn(watch(ops.clone(), id))
            });
        }
        tokio::time::sleep(RESCAN).await;
    }
}

/// Per-pod memory of one failover task.
#[derive(Default)]
struct Probe {
    node: Option<Node>,
    silence: r::Silence,
}

/// One redis: observe, plan, act, every tick or at once on a pod exit.
async fn watch(ops: Arc<Ops>, id: ResourceRef) {
    let ctl = &ops.ctl;
    let mut exits = ops.failover.exits.subscribe();
    let mut probes: BTreeMap<u32, Probe> = BTreeMap::new();
    let mut last_master: Option<MasterMemory> = None;
    let mut last_waiting: Option<String> = None;
    // When the fault was first seen, for the event's timeline.
    let mut fault_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            ev = exits.recv() => match ev {
                Ok((owner, _, at)) if owner == id => { fault_at.get_or_insert(at); }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
        let Some((replicas, down_after)) = automatic(ctl, &id) else {
            return;
        };
        if ops.failover.is_paused(&id) {
            // The switchover records the new master itself; observe afresh afterwards.
            probes.clear();
            continue;
        }
        if let Err(e) = step(
            &ops,
            &id,
            replicas,
            down_after,
            &mut probes,
            &mut last_master,
            &mut last_waiting,
            &mut fault_at,
        )
        .await
        {
            ops.metrics.controller_error("failover");
            tracing::warn!(redis = %id, error = %e, "automatic failover");
        }
    }
}

/// The time a check may take: a hung master must be noticed within `down_after` plus one
/// check, and a slow answer must not look like a hang.
fn check_timeout(down_after: Duration) -> Duration {
    (down_after / 4).clamp(Duration::from_millis(100), Duration::from_millis(500))
}

#[allow(clippy::too_many_arguments)]
async fn step(
    ops: &Ops,
    id: &ResourceRef,
    replicas: u32,
    down_after: Duration,
    probes: &mut BTreeMap<u32, Probe>,
    last_master: &mut Option<MasterMemory>,
    last_waiting: &mut Option<String>,
    fault_at: &mut Option<Instant>,
) -> Result<(), ServerError> {
    let ctl = &ops.ctl;
    let pw = r::auth(ctl, id)?;
    let ips = r::pod_ips(ctl, id);
    let running: BTreeMap<u32, bool> = ctl
        .pod_views()
        .into_iter()
        .filter(|p| p.kind == id.kind && p.scope == id.scope && p.name == id.name)
        .map(|p| (p.ordinal, p.pid.is_some() && p.state == PodState::Running))
        .collect();
    let timeout = check_timeout(down_after);
    let pauses = ops.failover.pauses_started(id);
    // Concurrently: the slowest check bounds the tick, not their sum.
    let mut checks = tokio::task::JoinSet::new();
    for o in 0..replicas {
        let probe = probes.remove(&o).unwrap_or_default();
        let ip = ips.get(&o).cloned();
        let up = running.get(&o).copied().unwrap_or(false);
        let (pw, id, ips) = (pw.clone(), id.clone(), ips.clone());
        checks.spawn(async move {
            let (state, probe) = observe(&id, up, ip, &pw, &ips, probe, timeout).await;
            (o, state, probe)
        });
    }
    let now = Instant::now();
    let mut nodes = Vec::new();
    while let Some(done) = checks.join_next().await {
        if let Ok((o, state, probe)) = done {
            probes.insert(o, probe);
            nodes.push(NodeObs { ordinal: o, state });
        }
    }
    nodes.sort_by_key(|n| n.ordinal);
    if ops.failover.is_paused(id) || ops.failover.pauses_started(id) != pauses {
        // A planned move (a switchover, a rollout's handover) ran while we looked: what we saw
        // may predate the master it recorded. Look afresh next tick.
        probes.clear();
        return Ok(());
    }
    let master = r::master_ordinal(ctl, id)?;
    let (epoch, pending) = stored(ctl, id)?;
    if last_master.as_ref().is_none_or(|m| m.ordinal != master) {
        // After a restart of the controller or a failover: the history the store remembers.
        *last_master = lenient(
            ctl.store
                .meta_json::<(u32, String)>(&MetaKey::FailoverHistory(id.clone())),
        )?
        .filter(|(o, _)| *o == master)
        .map(|(ordinal, replid)| MasterMemory {
            ordinal,
            run_id: String::new(),
            replid,
            // Not stored: the history it continued from is learnt at its next answer.
            replid2: String::new(),
            offset: 0,
            keys: 0,
        });
    }
    let input = plan::Input {
        nodes,
        master,
        epoch,
        pending,
        down_after_ms: down_after.as_millis() as u64,
        last_master: last_master.clone(),
    };
    let decided = plan::plan(&input);
    if decided.waiting != *last_waiting {
        if let Some(w) = &decided.waiting {
            ctl.event(
                Level::Warning,
                Some(id),
                None,
                EventReason::NoFailoverCandidate,
                w,
            );
        }
        ops.failover.set_stuck(id, decided.waiting.is_some());
        *last_waiting = decided.waiting.clone();
    }
    let mut failed_over = false;
    for action in &decided.actions {
        match action {
            Action::Failover {
                epoch,
                from,
                to,
                reason,
            } => {
                let started = fault_at.take().unwrap_or(now);
                execute_failover(ops, id, &ips, &pw, *epoch, *from, *to, *reason, started).await?;
                failed_over = true;
            }
            Action::Repoint { ordinal, to } => {
                if let Some(node) = node_of(probes, *ordinal) {
                    let host = host_of(id, *to);
                    node.replicaof(&host, REDIS_PORT)
                        .await
                        .map_err(r::redis_err)?;
                    tracing::info!(redis = %id, ordinal, to, "re-pointed a replica");
                }
            }
            Action::Demote { ordinal, to } => {
                if let Some(node) = node_of(probes, *ordinal) {
                    node.replicaof(&host_of(id, *to), REDIS_PORT)
                        .await
                        .map_err(r::redis_err)?;
                    node.kill_normal_clients().await.map_err(r::redis_err)?;
                    ctl.event(
                        Level::Warning,
                        Some(id),
                        Some(&vd_core::naming::pod_name(id, *ordinal)),
                        EventReason::MasterDemoted,
                        &format!(
                            "{}-{ordinal} acted as a master beside {}-{to}: now its replica, its clients disconnected",
                            id.name, id.name
                        ));
                }
            }
        }
    }
    if failed_over {
        *last_master = None;
        return Ok(());
    }
    // Remember the healthy master: a later candidate must share its history, and a restart
    // of it shows as a changed run_id.
    if let Some(NodeObs {
        state: NodeState::Up(info),
        ..
    }) = input.nodes.iter().find(|n| n.ordinal == master)
    {
        if info.role == NodeRole::Master && !info.loading && decided.actions.is_empty() {
            let keep_run = last_master
                .as_ref()
                .filter(|m| !m.run_id.is_empty())
                .map(|m| m.run_id.clone());
            // A master seen restarted empty keeps the old memory until the planner acts.
            let restarted_empty =
                keep_run.as_ref().is_some_and(|r| *r != info.run_id) && info.keys == 0;
            if !restarted_empty {
                if last_master.as_ref().is_none_or(|m| m.replid != info.replid) {
                    ctl.store.set_meta_json(
                        &MetaKey::FailoverHistory(id.clone()),
                        &(master, &info.replid),
                    )?;
                }
                *last_master = Some(MasterMemory {
                    ordinal: master,
                    run_id: info.run_id.clone(),
                    replid: info.replid.clone(),
                    replid2: info.replid2.clone(),
                    offset: info.offset,
                    keys: info.keys,
                });
                *fault_at = None;
            }
        }
    }
    Ok(())
}

fn node_of(probes: &mut BTreeMap<u32, Probe>, ordinal: u32) -> Option<&mut Node> {
    probes.get_mut(&ordinal).and_then(|p| p.node.as_mut())
}

/// The name replicas use for the master: the pod's long hostname (what they announce).
fn host_of(id: &ResourceRef, ordinal: u32) -> String {
    let [_, long] = vd_core::naming::pod_hostnames(id, ordinal);
    long
}

/// One pod's state for the planner. Keeps the connection while it works.
#[allow(clippy::too_many_arguments)]
async fn observe(
    id: &ResourceRef,
    running: bool,
    ip: Option<String>,
    pw: &Auth,
    ips: &BTreeMap<u32, String>,
    mut probe: Probe,
    timeout: Duration,
) -> (NodeState, Probe) {
    let Some(ip) = ip.filter(|_| running) else {
        probe.node = None;
        return (NodeState::Exited, probe);
    };
    let started = Instant::now();
    let answer = async {
        if probe.node.is_none() {
            probe.node = Some(Node::connect_with(&ip, REDIS_PORT, pw.access(), timeout).await?);
        }
        match probe.node.as_mut() {
            Some(n) => n.info(None).await,
            None => Err(vd_redisctl::RedisError::State("no connection".into())),
        }
    };
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(info)) => {
            probe.silence.answered();
            (NodeState::Up(r::node_info(id, &info, ips)), probe)
        }
        _ => {
            // A connection that failed or timed out may hold a late reply: start afresh.
            probe.node = None;
            let down_for_ms = probe.silence.failed(started, Instant::now());
            (NodeState::Unreachable { down_for_ms }, probe)
        }
    }
}

/// Promotes `to`: the epoch and target go to the store first; then `REPLICAOF NO ONE`, the
/// other pods re-pointed, `REDIS_MASTER_ORDINAL`, the consumers; then the record is cleared.
#[allow(clippy::too_many_arguments)]
async fn execute_failover(
    ops: &Ops,
    id: &ResourceRef,
    ips: &BTreeMap<u32, String>,
    pw: &Auth,
    epoch: u64,
    from: u32,
    to: u32,
    reason: Reason,
    started: Instant,
) -> Result<(), ServerError> {
    let ctl = &ops.ctl;
    let ms = |t: Instant| t.duration_since(started).as_millis();
    let detected = Instant::now();
    let pending = Pending { epoch, from, to };
    ctl.store
        .set_meta_json(&MetaKey::FailoverPending(id.clone()), &pending)?;
    ctl.store
        .set_meta(&MetaKey::FailoverEpoch(id.clone()), &epoch.to_string())?;
    let stored_at = Instant::now();
    if std::env::var_os("VD_TEST_FAULT").is_some_and(|v| v == "abort-after-failover-stored") {
        // Test-only fault injection: the controller dies between deciding and acting.
        tracing::error!(redis = %id, epoch, "VD_TEST_FAULT: aborting after storing the failover");
        std::process::abort();
    }
    let target_ip = ips.get(&to).ok_or_else(|| ServerError::Conflict {
        message: format!("{}-{to} has no address", id.name),
        help: None,
    })?;
    let timeout = Duration::from_secs(2);
    let mut target = Node::connect_with(target_ip, REDIS_PORT, pw.access(), timeout)
        .await
        .map_err(r::redis_err)?;
    target.promote().await.map_err(r::redis_err)?;
    let promoted = Instant::now();
    // The proxies first: they move new commands to the new master within milliseconds
    // (recording below publishes the same feed again, which changes nothing).
    if let Err(e) = crate::redis::feed::publish(ctl, id, to, false) {
        tracing::warn!(redis = %id, error = %e, "proxy feed after failover");
    }
    let host = host_of(id, to);
    let mut repointed = 0;
    for (o, ip) in ips {
        if *o == to || *o == from {
            continue;
        }
        let moved = async {
            let mut n = Node::connect_with(ip, REDIS_PORT, pw.access(), timeout).await?;
            n.replicaof(&host, REDIS_PORT).await
        };
        match moved.await {
            Ok(()) => repointed += 1,
            // A pod that is down boots as a replica of REDIS_MASTER_ORDINAL; one that is up
            // and refused is re-pointed by the next tick.
            Err(e) => {
                tracing::warn!(redis = %id, ordinal = o, error = %e, "re-point after failover")
            }
        }
    }
    let repointed_at = Instant::now();
    let why = match reason {
        Reason::MasterExited => "the master exited",
        Reason::MasterUnreachable => "the master stopped answering",
        Reason::MasterRestartedEmpty => "the master restarted empty while a replica held the data",
        Reason::NoMaster => "no pod was master",
        Reason::Resume => "finishing a failover a previous controller started",
    };
    let n = &id.name;
    let recorded = master::record(
        ops,
        &NewMaster {
            redis: id,
            from,
            to,
            cause: Cause::ControllerFailover { started },
            no_restart_consumers: false,
        },
        |t| {
            format!(
                "{why}: epoch {epoch}, master {n}-{from} -> {n}-{to}; fault +0 ms, acted +{} ms, epoch stored +{} ms, promoted +{} ms, {repointed} replica(s) re-pointed +{} ms, REDIS_MASTER_ORDINAL={to} +{} ms, consumers +{} ms",
                ms(detected),
                ms(stored_at),
                ms(promoted),
                ms(repointed_at),
                ms(t.bucket),
                ms(t.consumers),
            )
        },
    )?;
    let consumers = recorded.consumers;
    ctl.store
        .delete_meta(&MetaKey::FailoverPending(id.clone()))?;
    tracing::info!(redis = %id, epoch, from, to, took_ms = ms(consumers) as u64, "failover done");
    Ok(())
}

/// Before a redis pod (re)starts: if it is the master of a redis with automatic failover (or
/// the master a stored failover replaces) and other pods of it are running, wait until the
/// controller has promoted one of them. Otherwise the pod would boot as a master with stale
/// or, without persistence, no data, and the replicas would copy it.
pub async fn hold_restart(
    ctl: &Controller,
    state: &FailoverState,
    owner: &ResourceRef,
    ordinal: u32,
) {
    if owner.kind != Kind::Redis || automatic(ctl, owner).is_none() {
        return;
    }
    let replaced = |ctl: &Controller| -> bool {
        let master = r::master_ordinal(ctl, owner).ok();
        let pending_from = stored(ctl, owner).ok().and_then(|(_, p)| p).map(|p| p.from);
        master != Some(ordinal) && pending_from != Some(ordinal)
    };
    if replaced(ctl) {
        return;
    }
    let others_running = ctl.pod_views().iter().any(|p| {
        p.kind == owner.kind
            && p.scope == owner.scope
            && p.name == owner.name
            && p.ordinal != ordinal
            && p.pid.is_some()
    });
    if !others_running {
        return;
    }
    crate::redis::hold::hold_master(
        ctl,
        owner,
        ordinal,
        HOLD_LIMIT,
        "the master is down; it restarts as a replica once a replica is promoted",
        |ctl| {
            if replaced(ctl) {
                crate::redis::hold::Release::Promoted
            } else if state.is_stuck(owner) {
                crate::redis::hold::Release::GiveUp("no replica can be promoted")
            } else {
                crate::redis::hold::Release::Wait
            }
        },
    )
    .await;
}
