//! The cluster manager: for every redis in cluster mode, one task observes each pod (the
//! runtime's exit events at once, `CLUSTER NODES` and the replication offset every [`TICK`]),
//! asks the pure planner ([`vd_core::redis::cluster::plan`]) what to do and executes it. The
//! planner decides from what the nodes say, so a controller killed between two steps finds
//! the cluster where it left it and carries on; the node id of every pod is recorded in the
//! store for the moments a pod cannot be asked.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::redis::facts as r;
use crate::redis::ops::Ops;
use crate::redis::state::FailoverState;
use crate::types::{PodState, PodView};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use vd_core::event::{Level, Reason as EventReason};
use vd_core::redis::cluster::plan::{
    self as planner, Action, FailoverMode, FailoverReason, Obs, Progress, View,
};
use vd_core::redis::cluster::{is_cluster, parse_nodes};
use vd_core::redis::REDIS_PORT;
use vd_core::{ClusterSpec, Kind, ResourceRef};
use vd_redisctl::cluster::FailoverKind;
use vd_redisctl::Node;
use vd_store::MetaKey;

/// How often every node is asked.
const TICK: Duration = Duration::from_millis(200);
/// How often the set of clusters is re-read.
const RESCAN: Duration = Duration::from_secs(1);
/// The longest a crashed master is kept down waiting for its replica to take over.
const HOLD_LIMIT: Duration = Duration::from_secs(30);
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
                ops.failover.set_cluster_hold(id, Default::default());
            }
            keep
        });
        for id in wanted {
            tasks.entry(id.clone()).or_insert_with(|| {
                tracing::info!(redis = %id, "cluster manager on");
                tokio::spawn(watch(ops.clone(), id))
            });
        }
        tokio::time::sleep(RESCAN).await;
    }
}

/// Per-pod memory of one manager task.
#[derive(Default)]
struct Probe {
    node: Option<Node>,
    last_ok: Option<Instant>,
}

/// What one task remembers between ticks.
#[derive(Default)]
struct Memory {
    probes: BTreeMap<u32, Probe>,
    /// The last progress reported by an event, so each change is said once.
    reported: Option<Progress>,
    /// When the fault being handled was first seen, for the failover's timeline.
    fault_at: Option<Instant>,
}

/// One cluster: observe, plan, act, every tick or at once on a pod exit.
async fn watch(ops: Arc<Ops>, id: ResourceRef) {
    let mut exits = ops.failover.exits.subscribe();
    let mut mem = Memory::default();
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
            ops.failover.set_cluster_hold(&id, Default::default());
            return;
        };
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
    let pw = r::password(ctl, id)?;
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
    };
    let plan = planner::plan(&input);
    if plan.layout != layout {
        ctl.store.set_meta_json(&key, &plan.layout)?;
    }
    ops.failover.set_cluster_hold(id, plan.hold.clone());
    for action in &plan.actions {
        execute(ops, id, action, &addrs, &pw, mem).await?;
    }
    report(ctl, id, &plan, mem);
    Ok(())
}

/// One pod's state for the planner. Keeps the connection while it works.
async fn observe(
    presence: Presence,
    ip: Option<String>,
    pw: &str,
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
    let answer = async {
        if probe.node.is_none() {
            probe.node = Some(Node::connect(&ip, REDIS_PORT, Some(pw), timeout).await?);
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
                probe.last_ok = Some(Instant::now());
                let view = View {
                    peers,
                    offset: repl.replica_repl_offset.unwrap_or(repl.master_repl_offset),
                    loading: repl.loading,
                };
                (Obs::Up(view), probe)
            }
            Err(e) => {
                tracing::warn!(ip, error = %e, "unreadable CLUSTER NODES");
                (unreachable(&probe), probe)
            }
        },
        _ => {
            // A connection that failed or timed out may hold a late reply: start afresh.
            probe.node = None;
            (unreachable(&probe), probe)
        }
    }
}

fn unreachable(probe: &Probe) -> Obs {
    Obs::Unreachable {
        down_for_ms: probe
            .last_ok
            .map_or(u64::MAX, |t| t.elapsed().as_millis() as u64),
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
    pw: &str,
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
    }
    Ok(())
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
    pw: &str,
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
fn report(ctl: &Controller, id: &ResourceRef, plan: &planner::Plan, mem: &mut Memory) {
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
    if owner.kind != Kind::Redis || !state.cluster_holds(owner, ordinal) {
        return;
    }
    crate::redis::hold::hold_master(
        ctl,
        owner,
        ordinal,
        HOLD_LIMIT,
        "a shard master is down; it restarts as a replica once its replica has taken over",
        |_| {
            if state.cluster_holds(owner, ordinal) {
                crate::redis::hold::Release::Wait
            } else {
                crate::redis::hold::Release::Promoted
            }
        },
    )
    .await;
}
