//! The cluster manager: for every redis in cluster mode, one task observes each pod (the
//! runtime's exit events at once, `CLUSTER NODES` and the replication offset every [`TICK`]),
//! asks the pure planner ([`vd_core::redis::cluster::plan`]) what to do and executes it. The
//! planner decides from what the nodes say, so a controller killed between two steps finds
//! the cluster where it left it and carries on; the node id of every pod is recorded in the
//! store for the moments a pod cannot be asked.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::redis::facts::{self as r, Auth};
use crate::redis::ops::Ops;
use crate::redis::state::{ClusterFacts, FailoverState};
use crate::types::{PodState, PodView};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use vd_core::event::{Level, Reason as EventReason};
use vd_core::redis::cluster::plan::{
    self as planner, Action, FailoverMode, FailoverReason, Obs, Progress, View,
};
use vd_core::redis::cluster::{is_cluster, parse_nodes, rollout};
use vd_core::redis::REDIS_PORT;
use vd_core::{ClusterSpec, Kind, ResourceRef};
use vd_redisctl::cluster::{FailoverKind, SetSlot};
use vd_redisctl::Node;
use vd_store::MetaKey;

/// How often every node is asked.
const TICK: Duration = Duration::from_millis(200);
/// How often the set of clusters is re-read.
const RESCAN: Duration = Duration::from_secs(1);
/// The longest a crashed master is kept down waiting for its replica to take over.
const HOLD_LIMIT: Duration = Duration::from_secs(30);
/// How long a pod starting right after the server does waits for its cluster manager's first
/// look before it starts anyway (the manager rescans every second, then looks at once).
const FIRST_LOOK_LIMIT: Duration = Duration::from_secs(5);
/// How long a promotion may take before the next tick decides afresh.
const PROMOTION_WAIT: Duration = Duration::from_secs(3);

/// What the manager needs of a cluster's spec.
#[derive(Debug, Clone, Copy)]
struct Shape {
    spec: ClusterSpec,
    down_after: Duration,
}

/// The shape of a redis in cluster mode that runs (a stopped one has its pods gone on
/// purpose: nothing to manage).
fn managed(ctl: &Controller, id: &ResourceRef) -> Option<Shape> {
    if ctl.is_stopped(id).unwrap_or(false) {
        return None;
    }
    let spec = r::load(ctl, id).ok()?;
    if !is_cluster(&spec) {
        return None;
    }
    let down_after_ms = spec
        .failover
        .map_or(vd_core::redis::DEFAULT_DOWN_AFTER_MS, |f| f.down_after_ms);
    Some(Shape {
        spec: spec.cluster?,
        down_after: Duration::from_millis(down_after_ms),
    })
}

/// Runs for the server's lifetime: a task per cluster, stopped when the redis is deleted,
/// stopped or no longer a cluster.
pub async fn run(ops: Arc<Ops>) {
    let ctl = ops.ctl.clone();
    // Pods whose process started before this are ones this controller did not see start.
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut tasks: HashMap<ResourceRef, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let wanted: HashSet<ResourceRef> = ctl
            .store
            .list(Some(Kind::Redis))
            .unwrap_or_default()
            .into_iter()
            .map(|res| res.resource.id)
            .filter(|id| managed(&ctl, id).is_some())
            .collect();
        tasks.retain(|id, t| {
            let keep = wanted.contains(id) && !t.is_finished();
            if !keep {
                t.abort();
                ops.failover.set_cluster(id, None);
                ops.metrics.cluster(id, None);
            }
            keep
        });
        for id in wanted {
            tasks.entry(id.clone()).or_insert_with(|| {
                tracing::info!(redis = %id, "cluster manager on");
                tokio::spawn(watch(ops.clone(), id, started_unix_ms))
            });
        }
        tokio::time::sleep(RESCAN).await;
    }
}

/// Per-pod memory of one manager task.
#[derive(Default)]
struct Probe {
    node: Option<Node>,
    silence: r::Silence,
}

/// What one task remembers between ticks.
#[derive(Default)]
struct Memory {
    probes: BTreeMap<u32, Probe>,
    /// The last progress reported by an event, so each change is said once.
    reported: Option<Progress>,
    /// When the fault being handled was first seen, for the failover's timeline.
    fault_at: Option<Instant>,
    /// When the server's cluster managers started, unix ms.
    started_unix_ms: i64,
}

/// One cluster: observe, plan, act, every tick or at once on a pod exit.
async fn watch(ops: Arc<Ops>, id: ResourceRef, started_unix_ms: i64) {
    let mut exits = ops.failover.exits.subscribe();
    let mut mem = Memory {
        started_unix_ms,
        ..Memory::default()
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            ev = exits.recv() => match ev {
                Ok((owner, _, at)) if owner == id => { mem.fault_at.get_or_insert(at); }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
        let Some(shape) = managed(&ops.ctl, &id) else {
            ops.failover.set_cluster(&id, None);
            return;
        };
        if ops.failover.is_paused(&id) {
            // A restore stops shard masters on purpose: no failover meanwhile, and a fresh
            // look afterwards.
            mem.probes.clear();
            mem.fault_at = None;
            continue;
        }
        if let Err(e) = step(&ops, &id, shape, &mut mem).await {
            ops.metrics.controller_error("cluster");
            tracing::warn!(redis = %id, error = %e, "cluster manager");
        }
    }
}

/// How a pod's supervisor sees it.
fn presence(view: Option<&PodView>) -> Presence {
    match view {
        None => Presence::Missing,
        Some(v) if v.pid.is_some() && v.state == PodState::Running => Presence::Running,
        // Created by a rollout and never started: not a fault.
        Some(v) if v.state == PodState::Pending && v.restarts == 0 && v.pid.is_none() => {
            Presence::Missing
        }
        Some(_) => Presence::Exited,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Missing,
    Exited,
    Running,
}

async fn step(
    ops: &Ops,
    id: &ResourceRef,
    shape: Shape,
    mem: &mut Memory,
) -> Result<(), ServerError> {
    let ctl = &ops.ctl;
    let pw = r::auth(ctl, id)?;
    let views: BTreeMap<u32, PodView> = ctl
        .pod_views()
        .into_iter()
        .filter(|p| p.kind == id.kind && p.scope == id.scope && p.name == id.name)
        .map(|p| (p.ordinal, p))
        .collect();
    // Where the controller reaches each pod, and where the nodes reach each other (they
    // differ on docker, whose ports are published on the host's loopback).
    let addrs: BTreeMap<u32, String> = views
        .iter()
        .filter(|(_, v)| !v.ip.is_empty())
        .map(|(o, v)| (*o, v.ip.clone()))
        .collect();
    let net: BTreeMap<u32, String> = views
        .iter()
        .filter(|(_, v)| !v.net_ip.is_empty())
        .map(|(o, v)| (*o, v.net_ip.clone()))
        .collect();
    let timeout =
        (shape.down_after / 4).clamp(Duration::from_millis(100), Duration::from_millis(500));
    let ordinals: Vec<u32> = (0..shape.spec.nodes())
        .chain(views.keys().copied())
        .collect::<std::collections::BTreeSet<u32>>()
        .into_iter()
        .collect();
    let mut checks = tokio::task::JoinSet::new();
    for o in ordinals {
        let probe = mem.probes.remove(&o).unwrap_or_default();
        let presence = presence(views.get(&o));
        let ip = addrs.get(&o).cloned();
        let pw = pw.clone();
        checks.spawn(async move {
            let (obs, probe) = observe(presence, ip, &pw, probe, timeout).await;
            (o, obs, probe)
        });
    }
    let mut nodes = BTreeMap::new();
    while let Some(done) = checks.join_next().await {
        if let Ok((o, obs, probe)) = done {
            mem.probes.insert(o, probe);
            nodes.insert(o, obs);
        }
    }
    let key = MetaKey::ClusterLayout(id.clone());
    let layout: BTreeMap<u32, String> = match ctl.store.meta_json(&key) {
        Ok(l) => l.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(redis = %id, error = %e, "unreadable cluster layout; read as empty");
            BTreeMap::new()
        }
    };
    let input = planner::Input {
        shape: shape.spec,
        nodes,
        addrs: net,
        layout: layout.clone(),
        down_after_ms: shape.down_after.as_millis() as u64,
        long_running: views
            .iter()
            .filter(|(_, v)| v.started_ms.is_some_and(|t| t < mem.started_unix_ms))
            .map(|(o, _)| *o)
            .collect(),
    };
    let plan = planner::plan(&input);
    if plan.layout != layout {
        ctl.store.set_meta_json(&key, &plan.layout)?;
    }
    ops.failover.set_cluster(
        id,
        Some(ClusterFacts {
            hold: plan.hold.clone(),
            serving: plan.serving.clone(),
        }),
    );
    ops.metrics.cluster(
        id,
        Some(crate::redis::metrics::ClusterSample {
            healthy: plan.progress == Progress::Healthy,
            uncovered: plan.uncovered,
            masters: plan
                .masters
                .iter()
                .map(|(o, n)| (pod(id, *o), *n))
                .collect(),
        }),
    );
    for action in &plan.actions {
        execute(ops, id, action, &addrs, &pw, mem).await?;
    }
    say_progress(ctl, id, &plan, mem);
    Ok(())
}

/// One pod's state for the planner. Keeps the connection while it works.
async fn observe(
    presence: Presence,
    ip: Option<String>,
    pw: &Auth,
    mut probe: Probe,
    timeout: Duration,
) -> (Obs, Probe) {
    let ip = match (presence, ip) {
        (Presence::Missing, _) => {
            probe.node = None;
            return (Obs::Missing, probe);
        }
        (Presence::Exited, _) | (Presence::Running, None) => {
            probe.node = None;
            return (Obs::Exited, probe);
        }
        (Presence::Running, Some(ip)) => ip,
    };
    let started = Instant::now();
    let answer = async {
        if probe.node.is_none() {
            probe.node = Some(Node::connect_with(&ip, REDIS_PORT, pw.access(), timeout).await?);
        }
        let Some(n) = probe.node.as_mut() else {
            return Err(vd_redisctl::RedisError::State("no connection".into()));
        };
        let text = n.cluster_nodes().await?;
        let repl = n.replication().await?;
        Ok((text, repl))
    };
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok((text, repl))) => match parse_nodes(&text) {
            Ok(peers) => {
                probe.silence.answered();
                let view = View {
                    peers,
                    offset: repl.replica_repl_offset.unwrap_or(repl.master_repl_offset),
                    loading: repl.loading,
                };
                (Obs::Up(view), probe)
            }
            Err(e) => {
                tracing::warn!(ip, error = %e, "unreadable CLUSTER NODES");
                (unreachable(&mut probe, started), probe)
            }
        },
        _ => {
            // A connection that failed or timed out may hold a late reply: start afresh.
            probe.node = None;
            (unreachable(&mut probe, started), probe)
        }
    }
}

fn unreachable(probe: &mut Probe, started: Instant) -> Obs {
    Obs::Unreachable {
        down_for_ms: probe.silence.failed(started, Instant::now()),
    }
}

fn pod(id: &ResourceRef, ordinal: u32) -> String {
    vd_core::naming::pod_name(id, ordinal)
}

fn node_of(mem: &mut Memory, ordinal: u32) -> Result<&mut Node, ServerError> {
    mem.probes
        .get_mut(&ordinal)
        .and_then(|p| p.node.as_mut())
        .ok_or_else(|| ServerError::Unavailable {
            message: format!("pod {ordinal} is not connected"),
            help: None,
        })
}

async fn execute(
    ops: &Ops,
    id: &ResourceRef,
    action: &Action,
    addrs: &BTreeMap<u32, String>,
    pw: &Auth,
    mem: &mut Memory,
) -> Result<(), ServerError> {
    let ctl = &ops.ctl;
    let changed = |pod_ordinal: u32, what: String| {
        ctl.event(
            Level::Info,
            Some(id),
            Some(&pod(id, pod_ordinal)),
            EventReason::ClusterChanged,
            &what,
        );
    };
    match action {
        Action::SetConfigEpoch { ordinal, epoch } => {
            // Refused once the node knows another: the epochs then settle by themselves.
            if let Err(e) = node_of(mem, *ordinal)?
                .cluster_set_config_epoch(*epoch)
                .await
            {
                tracing::debug!(redis = %id, ordinal, error = %e, "set-config-epoch");
            }
        }
        Action::Meet { ordinal, peer, ip } => {
            node_of(mem, *ordinal)?
                .cluster_meet(ip, REDIS_PORT)
                .await
                .map_err(r::redis_err)?;
            tracing::info!(redis = %id, ordinal, peer, ip, "cluster meet");
        }
        Action::AddSlots { ordinal, ranges } => {
            node_of(mem, *ordinal)?
                .cluster_add_slots(ranges)
                .await
                .map_err(r::redis_err)?;
            let shown: Vec<String> = ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
            changed(
                *ordinal,
                format!(
                    "slots {} assigned to {}-{ordinal}",
                    shown.join(","),
                    id.name
                ),
            );
        }
        Action::Replicate {
            ordinal,
            master,
            master_ordinal,
        } => {
            node_of(mem, *ordinal)?
                .cluster_replicate(master)
                .await
                .map_err(r::redis_err)?;
            changed(
                *ordinal,
                format!(
                    "{n}-{ordinal} now replicates {n}-{master_ordinal}",
                    n = id.name
                ),
            );
        }
        Action::Forget { ordinal, id: gone } => {
            match node_of(mem, *ordinal)?.cluster_forget(gone).await {
                Ok(()) => {
                    tracing::info!(redis = %id, ordinal, node = %gone, "forgot a node no pod is")
                }
                // Already forgotten (an unknown node) is what was wanted.
                Err(e) => tracing::debug!(redis = %id, ordinal, error = %e, "cluster forget"),
            }
        }
        Action::Failover {
            ordinal,
            from,
            mode,
            reason,
        } => failover(ops, id, *ordinal, *from, *mode, *reason, addrs, pw, mem).await?,
        Action::MoveSlots {
            from,
            from_id,
            to,
            to_id,
            to_ip,
            slots,
        } => {
            let ends = Move {
                from: *from,
                from_id,
                to: *to,
                to_id,
                to_ip,
            };
            move_slots(ctl, id, &ends, slots, addrs, pw).await?
        }
        Action::Stabilize { ordinal, slot } => {
            node_of(mem, *ordinal)?
                .cluster_setslot(*slot, SetSlot::Stable)
                .await
                .map_err(r::redis_err)?;
            changed(
                *ordinal,
                format!(
                    "slot {slot} was left half-moved toward a node that is gone: made stable on {}-{ordinal}",
                    id.name
                ),
            );
        }
        Action::Promote { ordinal, from } => {
            node_of(mem, *ordinal)?
                .cluster_failover(FailoverKind::Graceful)
                .await
                .map_err(r::redis_err)?;
            changed(
                *ordinal,
                format!(
                    "{n}-{ordinal} takes over the shard of {n}-{from}, a pod being removed",
                    n = id.name
                ),
            );
        }
    }
    Ok(())
}

/// The two ends of a slot move.
struct Move<'a> {
    from: u32,
    from_id: &'a str,
    to: u32,
    to_id: &'a str,
    /// The destination on the pods' network, where the source sends the keys.
    to_ip: &'a str,
}

/// Keys per `MIGRATE`: large batches are what makes a move fast (each is one round trip and
/// one atomic step on both nodes); a thousand small keys take a few milliseconds.
const MIGRATE_BATCH: usize = 1000;
/// How long one `MIGRATE` may take before the source gives up on it.
const MIGRATE_TIMEOUT_MS: u64 = 10_000;

/// Moves `slots` from one master to another, slot by slot, the way `redis-cli --cluster
/// reshard` does: destination importing, source migrating, keys in batches (clients asking
/// for a moved key are sent on with `ASK`), then the slot given to the destination on both.
/// Every step can be repeated, which is how a move a dead controller left half done is
/// finished.
async fn move_slots(
    ctl: &Controller,
    id: &ResourceRef,
    m: &Move<'_>,
    slots: &[u16],
    addrs: &BTreeMap<u32, String>,
    pw: &Auth,
) -> Result<(), ServerError> {
    let at = |o: u32| addrs.get(&o).cloned().unwrap_or_default();
    let mut source = r::connect(&at(m.from), pw).await?;
    let mut dest = r::connect(&at(m.to), pw).await?;
    let started = Instant::now();
    let mut keys = 0usize;
    let fault = std::env::var_os("VD_TEST_FAULT").is_some_and(|v| v == "abort-mid-slot-move");
    // The whole batch at each step: one round trip (and one nodes.conf save) per node per
    // step instead of one per slot. MIGRATE takes keys of any of the batch's slots, since
    // the destination imports them all.
    let importing: Vec<(u16, SetSlot<'_>)> = slots
        .iter()
        .map(|s| (*s, SetSlot::Importing(m.from_id)))
        .collect();
    dest.cluster_setslots(&importing)
        .await
        .map_err(r::redis_err)?;
    let migrating: Vec<(u16, SetSlot<'_>)> = slots
        .iter()
        .map(|s| (*s, SetSlot::Migrating(m.to_id)))
        .collect();
    source
        .cluster_setslots(&migrating)
        .await
        .map_err(r::redis_err)?;
    let mut pending: Vec<u16> = slots.to_vec();
    while !pending.is_empty() {
        let per_slot = source
            .cluster_keys_by_slot(&pending, MIGRATE_BATCH)
            .await
            .map_err(r::redis_err)?;
        // A slot that gave fewer keys than asked is empty once they are moved.
        let mut again = Vec::new();
        let mut groups: Vec<&[Vec<u8>]> = Vec::new();
        for (slot, slot_keys) in pending.iter().zip(&per_slot) {
            if slot_keys.len() >= MIGRATE_BATCH {
                again.push(*slot);
            }
            if !slot_keys.is_empty() {
                groups.push(slot_keys.as_slice());
            }
        }
        source
            .migrate_groups(
                m.to_ip,
                REDIS_PORT,
                &pw.password,
                &groups,
                MIGRATE_TIMEOUT_MS,
            )
            .await
            .map_err(r::redis_err)?;
        keys += groups.iter().map(|g| g.len()).sum::<usize>();
        if fault && !groups.is_empty() {
            // Test-only fault injection: the controller dies with slots half moved.
            tracing::error!(redis = %id, "VD_TEST_FAULT: aborting in a slot move");
            std::process::abort();
        }
        pending = again;
    }
    let owned: Vec<(u16, SetSlot<'_>)> =
        slots.iter().map(|s| (*s, SetSlot::Node(m.to_id))).collect();
    dest.cluster_setslots(&owned).await.map_err(r::redis_err)?;
    source
        .cluster_setslots(&owned)
        .await
        .map_err(r::redis_err)?;
    let shown = ranges_text(slots);
    ctl.event(
        Level::Info,
        Some(id),
        Some(&pod(id, m.to)),
        EventReason::ClusterChanged,
        &format!(
            "moved {} slot(s) {} with {keys} key(s) from {n}-{} to {n}-{} in {} ms",
            slots.len(),
            shown.join(","),
            m.from,
            m.to,
            started.elapsed().as_millis(),
            n = id.name
        ),
    );
    Ok(())
}

/// Slots as `a-b` runs.
fn ranges_text(slots: &[u16]) -> Vec<String> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &s in slots {
        match out.last_mut() {
            Some((_, b)) if b.checked_add(1) == Some(s) => *b = s,
            _ => out.push((s, s)),
        }
    }
    out.iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect()
}

/// Promotes `to` in place of `from` and waits until the node says it is a master.
#[allow(clippy::too_many_arguments)]
async fn failover(
    ops: &Ops,
    id: &ResourceRef,
    to: u32,
    from: u32,
    mode: FailoverMode,
    reason: FailoverReason,
    addrs: &BTreeMap<u32, String>,
    pw: &Auth,
    mem: &mut Memory,
) -> Result<(), ServerError> {
    let started = mem.fault_at.take().unwrap_or_else(Instant::now);
    let acted = Instant::now();
    let kind = match mode {
        FailoverMode::Force => FailoverKind::Force,
        FailoverMode::Takeover => FailoverKind::Takeover,
    };
    node_of(mem, to)?
        .cluster_failover(kind)
        .await
        .map_err(r::redis_err)?;
    // A dedicated connection: the probe's may be busy with nothing, but a fresh one keeps this
    // wait independent of it.
    let ip = addrs.get(&to).cloned().unwrap_or_default();
    let mut node = r::connect(&ip, pw).await?;
    let deadline = Instant::now() + PROMOTION_WAIT;
    let promoted = loop {
        let text = node.cluster_nodes().await.map_err(r::redis_err)?;
        let me_master = parse_nodes(&text)
            .ok()
            .and_then(|p| p.into_iter().find(|p| p.myself))
            .is_some_and(|me| me.master && me.slot_count() > 0);
        if me_master {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let n = &id.name;
    let ms = |t: Instant| t.duration_since(started).as_millis();
    let why = match reason {
        FailoverReason::MasterExited => "the master exited",
        FailoverReason::MasterUnreachable => "the master stopped answering",
    };
    let how = match mode {
        FailoverMode::Force => "CLUSTER FAILOVER FORCE",
        FailoverMode::Takeover => "CLUSTER FAILOVER TAKEOVER",
    };
    if !promoted {
        return Err(ServerError::Timeout {
            message: format!(
                "{n}-{to} did not take over from {n}-{from} within {} s of {how}",
                PROMOTION_WAIT.as_secs()
            ),
            help: None,
        });
    }
    let done = Instant::now();
    ops.metrics
        .failover(id, "cluster", done.duration_since(started).as_secs_f64());
    ops.ctl.event(
        Level::Info,
        Some(id),
        Some(&pod(id, to)),
        EventReason::Failover,
        &format!(
            "{why}: shard master {n}-{from} -> {n}-{to} ({how}); fault +0 ms, acted +{} ms, promoted +{} ms",
            ms(acted),
            ms(done)
        ),
    );
    tracing::info!(redis = %id, from, to, took_ms = ms(done) as u64, "cluster failover done");
    Ok(())
}

/// Says each change of where the cluster stands once: healthy again, or blocked and why.
fn say_progress(ctl: &Controller, id: &ResourceRef, plan: &planner::Plan, mem: &mut Memory) {
    let now = match &plan.progress {
        Progress::Working(_) => return,
        p => p.clone(),
    };
    if mem.reported.as_ref() == Some(&now) {
        return;
    }
    match &now {
        Progress::Healthy => {
            let replicas = plan.layout.len().saturating_sub(plan.masters.len());
            ctl.event(
                Level::Info,
                Some(id),
                None,
                EventReason::ClusterHealthy,
                &format!(
                    "{} shards serve all 16384 slots, with {replicas} replica(s)",
                    plan.masters.len()
                ),
            );
        }
        Progress::Blocked(why) => ctl.event(
            Level::Warning,
            Some(id),
            None,
            EventReason::ClusterDegraded,
            why,
        ),
        Progress::Working(_) => {}
    }
    mem.reported = Some(now);
}

/// Before a cluster pod (re)starts: if its node serves slots and a replica of it runs, wait
/// until that replica has taken over. Otherwise it would come back as the master with only
/// what its last snapshot held, and the writes its replica acknowledged would be lost.
pub async fn hold_restart(
    ctl: &Controller,
    state: &FailoverState,
    owner: &ResourceRef,
    ordinal: u32,
) {
    // A paused cluster (a restore) restarts its masters on purpose, as masters.
    if owner.kind != Kind::Redis || state.is_paused(owner) || managed(ctl, owner).is_none() {
        return;
    }
    // Right after the server starts, its manager may not have looked yet: a master that
    // crashed while no server ran must not start before the manager can say so.
    let deadline = Instant::now() + FIRST_LOOK_LIMIT;
    let holds = loop {
        match state.cluster_holds(owner, ordinal) {
            Some(h) => break h,
            None if Instant::now() >= deadline => {
                tracing::warn!(redis = %owner, ordinal, "the cluster manager has not looked yet; starting the pod");
                break false;
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    if !holds {
        return;
    }
    crate::redis::hold::hold_master(
        ctl,
        owner,
        ordinal,
        HOLD_LIMIT,
        "a shard master is down; it restarts as a replica once its replica has taken over",
        |_| {
            if state.cluster_holds(owner, ordinal) == Some(true) {
                crate::redis::hold::Release::Wait
            } else {
                crate::redis::hold::Release::Promoted
            }
        },
    )
    .await;
}

/// A cluster as `vd redis:info` and `vd get redis` show it, read live from one node.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClusterReport {
    /// `cluster_state` of the answering node: `ok` or `fail`.
    pub state: String,
    /// Slots some master serves (`cluster_slots_assigned`).
    pub slots_assigned: u32,
    /// Slots served by a master that is not failing (`cluster_slots_ok`).
    pub slots_ok: u32,
    /// The shards the block asks for.
    pub shards_wanted: u32,
    /// The pod that answered.
    pub answered_by: u32,
    /// How slots move between shards, and any atomic slot migration the server offers.
    pub slot_migration: String,
    /// Each shard, numbered by its lowest slot.
    pub shards: Vec<ShardReport>,
}

/// One shard of a [`ClusterReport`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ShardReport {
    /// Its number (`vd redis:failover --shard`).
    pub index: u32,
    /// Slot ranges, `0-5461,7000`.
    pub slots: String,
    /// How many slots.
    pub slot_count: u32,
    /// The master's pod, when the node is one of this redis's pods.
    pub master: Option<u32>,
    /// The master's flags in the answering node's view: `ok`, `fail`, `fail?`.
    pub master_state: String,
    /// The master's replication offset (`master_repl_offset`), when it answered.
    pub master_offset: Option<i64>,
    /// Its replicas.
    pub replicas: Vec<ShardReplica>,
}

/// One replica in a [`ShardReport`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ShardReplica {
    /// Its pod, when the node is one of this redis's pods.
    pub pod: Option<u32>,
    /// Its flags in the answering node's view: `ok`, `fail`, `fail?`, `disconnected`.
    pub state: String,
    /// Its replication offset, when it answered.
    pub offset: Option<i64>,
    /// Bytes behind its shard's master, when both answered.
    pub lag_bytes: Option<i64>,
}

/// A pod's replication offset: `master_repl_offset` of a master, `slave_repl_offset` of a
/// replica; `None` when it does not answer (the report shows what it can).
async fn offset_of(ip: &str, pw: &Auth) -> Option<i64> {
    let mut n = r::connect(ip, pw).await.ok()?;
    let rep = n.info(Some("replication")).await.ok()?.replication();
    Some(rep.replica_repl_offset.unwrap_or(rep.master_repl_offset))
}

fn peer_state(p: &vd_core::redis::cluster::Peer) -> String {
    if p.failed {
        "fail".into()
    } else if p.suspected {
        "fail?".into()
    } else if !p.connected && !p.myself {
        "disconnected".into()
    } else {
        "ok".into()
    }
}

/// The node ids of a cluster's pods, as the manager last recorded them.
pub(crate) fn layout(ctl: &Controller, id: &ResourceRef) -> BTreeMap<String, u32> {
    ctl.store
        .meta_json::<BTreeMap<u32, String>>(&MetaKey::ClusterLayout(id.clone()))
        .ok()
        .flatten()
        .unwrap_or_default()
        .into_iter()
        .map(|(o, node)| (node, o))
        .collect()
}

/// The first pod of `id` that answers, with its `CLUSTER NODES`.
pub(crate) async fn any_node(
    ctl: &Controller,
    id: &ResourceRef,
    pw: &Auth,
) -> Result<(u32, Node, Vec<vd_core::redis::cluster::Peer>), ServerError> {
    let mut last = None;
    for (o, ip) in r::pod_ips(ctl, id) {
        let answer = async {
            let mut n = r::connect(&ip, pw).await?;
            let text = n.cluster_nodes().await.map_err(r::redis_err)?;
            let peers = parse_nodes(&text).map_err(|e| ServerError::Conflict {
                message: format!("{}-{o}: {e}", id.name),
                help: None,
            })?;
            Ok::<_, ServerError>((n, peers))
        };
        match answer.await {
            Ok((n, peers)) => return Ok((o, n, peers)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ServerError::Unavailable {
        message: format!("no pod of {id} is running"),
        help: Some("see `vd get pods`".into()),
    }))
}

/// `GET /v1/redis/{scope}/{name}/cluster`: `None` for a redis that is not a cluster.
pub async fn report(
    ctl: &Controller,
    id: &ResourceRef,
) -> Result<Option<ClusterReport>, ServerError> {
    let spec = r::load(ctl, id)?;
    let Some(c) = spec.cluster.filter(|_| is_cluster(&spec)) else {
        return Ok(None);
    };
    let pw = r::auth(ctl, id)?;
    let (answered_by, mut node, peers) = any_node(ctl, id, &pw).await?;
    let info = node.cluster_info().await.map_err(r::redis_err)?;
    let slot_migration = node
        .slot_migration()
        .await
        .map_or("unknown", |m| m.describe())
        .to_string();
    let ids = layout(ctl, id);
    let ordinal = |p: &vd_core::redis::cluster::Peer| ids.get(&p.id).copied();
    let ips = r::pod_ips(ctl, id);
    let mut offsets = BTreeMap::new();
    for (o, ip) in &ips {
        if let Some(off) = offset_of(ip, &pw).await {
            offsets.insert(*o, off);
        }
    }
    let offset = |o: Option<u32>| o.and_then(|o| offsets.get(&o).copied());
    let shards = vd_core::redis::cluster::shards(&peers)
        .iter()
        .enumerate()
        .map(|(i, s)| ShardReport {
            index: i as u32,
            slots: s
                .master
                .slots
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect::<Vec<_>>()
                .join(","),
            slot_count: s.master.slot_count(),
            master: ordinal(s.master),
            master_state: peer_state(s.master),
            master_offset: offset(ordinal(s.master)),
            replicas: s
                .replicas
                .iter()
                .map(|p| {
                    let off = offset(ordinal(p));
                    ShardReplica {
                        pod: ordinal(p),
                        state: peer_state(p),
                        offset: off,
                        lag_bytes: offset(ordinal(s.master))
                            .zip(off)
                            .map(|(m, r)| (m - r).max(0)),
                    }
                })
                .collect(),
        })
        .collect();
    Ok(Some(ClusterReport {
        state: info.get("cluster_state").unwrap_or("unknown").to_string(),
        slots_assigned: u32::try_from(info.num("cluster_slots_assigned")).unwrap_or(0),
        slots_ok: u32::try_from(info.num("cluster_slots_ok")).unwrap_or(0),
        shards_wanted: c.shards,
        answered_by,
        slot_migration,
        shards,
    }))
}

/// `vd redis:failover REF --shard N [--replica R]`: a graceful switchover inside one shard.
/// `CLUSTER FAILOVER` (no option) makes the master stop taking writes, waits until the replica
/// has everything it wrote, then swaps them: no acknowledged write is lost, no pod restarts.
pub async fn switchover(
    ops: &Ops,
    id: &ResourceRef,
    shard: u32,
    asked: Option<u32>,
    by: crate::redis::master::Planned,
) -> Result<crate::types::FailoverReport, ServerError> {
    let ctl = &ops.ctl;
    let pw = r::auth(ctl, id)?;
    let (_, _, peers) = any_node(ctl, id, &pw).await?;
    let ids = layout(ctl, id);
    let all = vd_core::redis::cluster::shards(&peers);
    let s = all
        .get(shard as usize)
        .ok_or_else(|| ServerError::Conflict {
            message: format!("{id} has {} shards; there is no shard {shard}", all.len()),
            help: Some(format!(
                "shards are numbered 0..{} by their lowest slot: see `vd redis:info {}/{}`",
                all.len().saturating_sub(1),
                id.scope,
                id.name
            )),
        })?;
    let from = ids
        .get(&s.master.id)
        .copied()
        .ok_or_else(|| ServerError::Conflict {
            message: format!("the master of shard {shard} is not a pod of {id}"),
            help: None,
        })?;
    let ips = r::pod_ips(ctl, id);
    let mut candidates = Vec::new();
    for rep in &s.replicas {
        let Some(o) = ids.get(&rep.id).copied() else {
            continue;
        };
        let Some(ip) = ips.get(&o) else { continue };
        let state = async {
            let mut n = r::connect(ip, &pw).await?;
            n.replication().await.map_err(r::redis_err)
        };
        if let Ok(repl) = state.await {
            candidates.push(planner::Candidate {
                ordinal: o,
                offset: repl.replica_repl_offset.unwrap_or(repl.master_repl_offset),
                link_up: repl.link_up,
                loading: repl.loading,
            });
        }
    }
    let to = planner::switchover_target(shard as usize, &candidates, asked).map_err(|why| {
        ServerError::Conflict {
            message: format!("cannot switch shard {shard} of {id} over: {why}"),
            help: Some("see `vd redis:info` for the shard's replicas and their links".into()),
        }
    })?;
    let ip = ips.get(&to).cloned().unwrap_or_default();
    let mut node = r::connect(&ip, &pw).await?;
    let started = Instant::now();
    node.cluster_failover(FailoverKind::Graceful)
        .await
        .map_err(r::redis_err)?;
    let deadline = started + Duration::from_secs(10);
    loop {
        let text = node.cluster_nodes().await.map_err(r::redis_err)?;
        let promoted = parse_nodes(&text)
            .ok()
            .and_then(|p| p.into_iter().find(|p| p.myself))
            .is_some_and(|me| me.master && me.slot_count() > 0);
        if promoted {
            break;
        }
        if Instant::now() >= deadline {
            return Err(ServerError::Timeout {
                message: format!(
                    "{}-{to} did not take over shard {shard} within 10 s; the master keeps it",
                    id.name
                ),
                help: Some("a replica far behind may need longer; try again".into()),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed().as_millis() as u64;
    let n = &id.name;
    let (reason, why) = match by {
        crate::redis::master::Planned::Request => (EventReason::Failover, ""),
        crate::redis::master::Planned::Rollout => (
            EventReason::Handover,
            " before the rollout replaces its pod",
        ),
    };
    ctl.event(
        Level::Info,
        Some(id),
        Some(&pod(id, to)),
        reason,
        &format!(
            "switchover of shard {shard}: master {n}-{from} -> {n}-{to} (CLUSTER FAILOVER){why}, {took} ms"
        ),
    );
    Ok(crate::types::FailoverReport {
        from,
        to,
        write_pause_ms: took,
        by_sentinels: false,
    })
}

/// The cluster as a rollout weighs its next replacement ([`rollout::step`]): each pod's part,
/// from one node's `CLUSTER NODES`, and for each replica whether its `INFO replication` says
/// it is in sync with its master.
pub(crate) async fn rollout_view(
    ctl: &Controller,
    id: &ResourceRef,
) -> Result<Vec<rollout::Node>, ServerError> {
    let pw = r::auth(ctl, id)?;
    let (_, _, peers) = any_node(ctl, id, &pw).await?;
    let ids = layout(ctl, id);
    let ips = r::pod_ips(ctl, id);
    let mut nodes = Vec::new();
    for (shard, s) in vd_core::redis::cluster::shards(&peers).iter().enumerate() {
        if let Some(o) = ids.get(&s.master.id) {
            nodes.push(rollout::Node {
                ordinal: *o,
                role: rollout::Role::Master { shard },
            });
        }
        for rep in &s.replicas {
            let Some(o) = ids.get(&rep.id).copied() else {
                continue;
            };
            let linked = match ips.get(&o) {
                Some(ip) => async {
                    let mut n = r::connect(ip, &pw).await?;
                    n.replication().await.map_err(r::redis_err)
                }
                .await
                .is_ok_and(|x| x.link_up && !x.loading),
                None => false,
            };
            nodes.push(rollout::Node {
                ordinal: o,
                role: rollout::Role::Replica { shard, linked },
            });
        }
    }
    Ok(nodes)
}
