//! What the status page shows, gathered in one pass: every redis with its pods' roles and lag,
//! its sentinels and whom they name, its proxy and where it points, a cluster's shards, its
//! recent events and backups; and every other workload's pods. Plain data, rendered by the
//! pure `render` module. Nothing here holds a secret: passwords and URLs are never read.

use crate::orchestration::controller::Controller;
use crate::redis::facts::{has_proxy, master_ordinal, proxy_ref, redis_ref};
use crate::types::{PodState, PodView};
use std::sync::Arc;
use std::time::Duration;
use vd_core::{Kind, ResourceRef};

/// How long gathering one redis's live facts may take: a pod that does not answer is shown as
/// such, it does not hold the page.
const PER_REDIS: Duration = Duration::from_secs(3);
/// Events per redis on its timeline.
const TIMELINE: usize = 25;
/// Events that belong on a timeline: what moved a master, replaced pods, or touched the data.
const TIMELINE_REASONS: [&str; 17] = [
    "Created",
    "Changed",
    "Restart",
    "Scaled",
    "Replacing",
    "Exited",
    "Unhealthy",
    "Failover",
    "Handover",
    "HandoverFailed",
    "MasterSwitched",
    "MasterDemoted",
    "NoFailoverCandidate",
    "BackedUp",
    "BackupFailed",
    "Restored",
    "Imported",
];

/// Everything the page shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// When it was taken (unix ms).
    pub at_ms: i64,
    /// Every data redis.
    pub redis: Vec<RedisStatus>,
    /// Every other workload.
    pub workloads: Vec<Workload>,
}

/// One data pod as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Its ordinal.
    pub ordinal: u32,
    /// `master`, `replica`, `unreachable`, `unknown`, or `not running`.
    pub role: String,
    /// A replica's link to its master: `up` or `down`.
    pub link: Option<String>,
    /// Bytes behind the master.
    pub lag_bytes: Option<i64>,
    /// `used_memory_human`.
    pub memory: String,
    /// Its readiness.
    pub ready: bool,
}

/// One sentinel.
#[derive(Debug, Clone, PartialEq)]
pub struct Sentinel {
    /// Its ordinal.
    pub ordinal: u32,
    /// The data pod it names master (`cache-1`), if it answered.
    pub names: Option<String>,
    /// Why it did not answer.
    pub error: Option<String>,
}

/// A cluster shard.
#[derive(Debug, Clone, PartialEq)]
pub struct Shard {
    /// Slot ranges.
    pub slots: String,
    /// The master's pod.
    pub master: Option<u32>,
    /// The replicas' pods.
    pub replicas: Vec<Option<u32>>,
}

/// One event on a timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When (unix ms).
    pub ts_ms: i64,
    /// `info` or `warning`.
    pub level: String,
    /// The reason.
    pub reason: String,
    /// The pod it concerns.
    pub pod: Option<String>,
    /// The message (events never carry secrets).
    pub message: String,
}

/// One data redis.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisStatus {
    /// Scope.
    pub scope: String,
    /// Name.
    pub name: String,
    /// `standalone`, `controller failover`, `sentinels`, `cluster ...`.
    pub mode: String,
    /// The master ordinal vd recorded.
    pub master: u32,
    /// Its pods.
    pub nodes: Vec<Node>,
    /// Its sentinel sibling: name, quorum, healthy, sentinels.
    pub sentinels: Option<(String, u32, bool, Vec<Sentinel>)>,
    /// Its proxy's pods (name, ready); they point at `master`.
    pub proxy: Vec<(String, bool)>,
    /// A cluster's shards.
    pub shards: Vec<Shard>,
    /// Recent events, oldest first.
    pub timeline: Vec<Entry>,
    /// The last backups' events, oldest first.
    pub backups: Vec<Entry>,
}

/// Any other workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// `statefulset/data/pg`.
    pub id: String,
    /// Its pods: name, state, ready.
    pub pods: Vec<(String, String, bool)>,
}

fn entries(
    ctl: &Controller,
    id: &ResourceRef,
    keep: impl Fn(&str) -> bool,
    n: usize,
) -> Vec<Entry> {
    let events = ctl.store.events(Some(id), 0, 500).unwrap_or_default();
    let mut out: Vec<Entry> = events
        .into_iter()
        .filter(|e| keep(&e.reason))
        .map(|e| Entry {
            ts_ms: e.ts_ms,
            level: e.level,
            reason: e.reason,
            pod: e.pod,
            message: e.message,
        })
        .collect();
    let skip = out.len().saturating_sub(n);
    out.drain(..skip);
    out
}

fn pods_of(views: &[PodView], id: &ResourceRef) -> Vec<PodView> {
    let mut v: Vec<PodView> = views
        .iter()
        .filter(|p| p.kind == id.kind && p.scope == id.scope && p.name == id.name)
        .cloned()
        .collect();
    v.sort_by_key(|p| p.ordinal);
    v
}

/// The live facts of one data redis (its pods' `INFO`, its sentinels, its shards).
async fn redis_status(
    ctl: Arc<Controller>,
    view: crate::redis::info::RedisView,
    views: Vec<PodView>,
) -> RedisStatus {
    let id = redis_ref(&view.scope, &view.name);
    let pods = pods_of(&views, &id);
    let live = async {
        let info = crate::redis::info::info(&ctl, &view.scope, &view.name)
            .await
            .unwrap_or_default();
        let sentinels = crate::redis::sentinel::report(&ctl, &view.scope, &view.name)
            .await
            .ok()
            .flatten();
        let cluster = crate::redis::cluster::report(&ctl, &id)
            .await
            .ok()
            .flatten();
        (info, sentinels, cluster)
    };
    let (info, sentinels, cluster) = tokio::time::timeout(PER_REDIS, live)
        .await
        .unwrap_or_default();
    let nodes = (0..view.replicas)
        .map(|o| {
            let pod = pods.iter().find(|p| p.ordinal == o);
            let row = info.iter().find(|n| n.ordinal == o);
            let running = pod.is_some_and(|p| p.state == PodState::Running);
            Node {
                ordinal: o,
                role: match row {
                    Some(r) if running => r.role.clone(),
                    _ if running => "unknown".into(),
                    _ => "not running".into(),
                },
                link: row.and_then(|r| r.link.clone()),
                lag_bytes: row.and_then(|r| r.lag_bytes),
                memory: row.map_or_else(|| "-".into(), |r| r.memory.clone()),
                ready: pod.is_some_and(|p| p.ready),
            }
        })
        .collect();
    let sentinels = sentinels.map(|s| {
        let rows = s
            .rows
            .iter()
            .map(|r| Sentinel {
                ordinal: r.ordinal,
                names: r.master.clone(),
                error: r.error.clone(),
            })
            .collect();
        // The sibling by its name, as its pods are named (`cache-ha-0`).
        let name = s
            .sentinel
            .rsplit('/')
            .next()
            .unwrap_or(&s.sentinel)
            .to_string();
        (name, s.quorum, s.healthy, rows)
    });
    let proxy = if has_proxy(&ctl, &id).unwrap_or(false) {
        pods_of(&views, &proxy_ref(&id))
            .into_iter()
            .map(|p| (p.pod, p.ready))
            .collect()
    } else {
        Vec::new()
    };
    let shards = cluster
        .map(|c| {
            c.shards
                .iter()
                .map(|s| Shard {
                    slots: s.slots.clone(),
                    master: s.master,
                    replicas: s.replicas.iter().map(|r| r.pod).collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    RedisStatus {
        mode: view.mode.clone(),
        master: master_ordinal(&ctl, &id).unwrap_or(view.master),
        nodes,
        sentinels,
        proxy,
        shards,
        timeline: entries(&ctl, &id, |r| TIMELINE_REASONS.contains(&r), TIMELINE),
        backups: entries(&ctl, &id, |r| r == "BackedUp", 3),
        scope: view.scope,
        name: view.name,
    }
}

/// Takes a snapshot: every data redis's live facts concurrently, then every other workload.
pub async fn gather(ctl: &Arc<Controller>) -> Snapshot {
    let views = ctl.pod_views();
    let redis = crate::redis::info::list(ctl).unwrap_or_default();
    // A sentinel sibling is drawn with the redis it watches.
    let siblings: Vec<(String, String)> = ctl
        .store
        .list(Some(Kind::Redis))
        .unwrap_or_default()
        .iter()
        .filter_map(|s| {
            crate::redis::facts::spec_of(&s.resource)
                .filter(|spec| vd_core::redis::topology::is_sentinel(spec))
                .map(|_| (s.resource.id.scope.clone(), s.resource.id.name.clone()))
        })
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, v) in redis.into_iter().enumerate() {
        if siblings.contains(&(v.scope.clone(), v.name.clone())) {
            continue;
        }
        let (ctl, views) = (ctl.clone(), views.clone());
        tasks.spawn(async move { (i, redis_status(ctl, v, views).await) });
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(r) = done {
            out.push(r);
        }
    }
    out.sort_by_key(|(i, _)| *i);
    // The other workloads: not a redis's own pods, a sentinel sibling's or a derived proxy's.
    let redis_ids: Vec<(String, String)> = out
        .iter()
        .map(|(_, r)| (r.scope.clone(), format!("{}-proxy", r.name)))
        .collect();
    let mut workloads: Vec<Workload> = Vec::new();
    for r in ctl.store.list(None).unwrap_or_default() {
        let id = &r.resource.id;
        if !id.kind.has_pods()
            || id.kind == Kind::Redis
            || redis_ids.contains(&(id.scope.clone(), id.name.clone()))
        {
            continue;
        }
        workloads.push(Workload {
            id: id.to_string(),
            pods: pods_of(&views, id)
                .into_iter()
                .map(|p| (p.pod, p.state.to_string(), p.ready))
                .collect(),
        });
    }
    Snapshot {
        at_ms: crate::orchestration::time::now_ms(),
        redis: out.into_iter().map(|(_, r)| r).collect(),
        workloads,
    }
}
