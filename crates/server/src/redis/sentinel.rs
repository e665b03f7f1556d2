//! Sentinel siblings on the server: apply-time checks, the follower that keeps
//! `REDIS_MASTER_ORDINAL` and linked consumers true to what the sentinels decide, the restart
//! hold for a crashed master, sentinel-mode failover, and what `vd redis:info` shows of the
//! sentinels. The sentinels decide; the controller follows, closes the window a failover
//! leaves open, and repairs a stalled quorum.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::redis::facts::{self as r, ordinal_of_host, sentinel_count, watcher_of, SentinelAuth};
use crate::redis::hold::{hold_master, Release};
use crate::redis::master::{follow_sentinels, Planned};
use crate::redis::ops::Ops;
use crate::types::{FailoverReport, FailoverRequest};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use vd_core::event::{Level, Reason};
use vd_core::redis::{self as macro_, MASTER_NAME, SENTINEL_PORT};
use vd_core::{Kind, RedisSpec, ResourceRef, Spec};
use vd_redisctl::{FailoverEvent, Promotion, Sentinel};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Connects to one sentinel pod as its sibling says (password, TLS).
async fn open(ip: &str, auth: &SentinelAuth) -> Result<Sentinel, vd_redisctl::RedisError> {
    Sentinel::connect_with(ip, SENTINEL_PORT, auth.access(), CONNECT_TIMEOUT).await
}
/// How often the follower asks every sentinel where the master is (the backstop to
/// `+switch-master`, which arrives at once).
const POLL: Duration = Duration::from_millis(500);
/// Sentinels may disagree for a moment while a failover propagates; longer than this is a
/// stall (rapid chained kills are known to stall Sentinel) and gets `SENTINEL RESET`.
const DISAGREEMENT_STALL: Duration = Duration::from_secs(15);
/// A sentinel that still misses peers this long after they are all up is reset.
const PEERS_STALL: Duration = Duration::from_secs(30);
/// Upper bound on holding a crashed master's restart while the sentinels fail over.
const HOLD_LIMIT: Duration = Duration::from_secs(45);

/// What the reachable sentinels say about the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agreement {
    /// At least `quorum` sentinels answered and every answer names this ordinal.
    Agreed(u32),
    /// Answers differ.
    Disagree,
    /// Too few answers to say.
    Unknown,
}

/// Pure: the sentinels' collective answer (`None` for a sentinel that did not answer).
pub fn agreement(answers: &[Option<u32>], quorum: u32) -> Agreement {
    let known: Vec<u32> = answers.iter().flatten().copied().collect();
    match known.first() {
        Some(first) if known.iter().any(|o| o != first) => Agreement::Disagree,
        Some(first) if known.len() as u32 >= quorum => Agreement::Agreed(*first),
        _ => Agreement::Unknown,
    }
}

/// Pure: the data pods to point at a replica the sentinels are promoting, which they would
/// only re-point once it reports itself master, a second or more later. Meanwhile a master that
/// was only paused (a stall, not a crash) can wake with those replicas still attached: they
/// acknowledge its writes (`WAIT` counts them), then resynchronise from the new master and
/// drop them. Moving them at once leaves a woken old master no replica to acknowledge with.
/// The old master itself is left to the sentinels, which demote it once it answers again.
pub fn repoint(pods: impl IntoIterator<Item = u32>, promoted: u32, old: Option<u32>) -> Vec<u32> {
    pods.into_iter()
        .filter(|o| *o != promoted && Some(*o) != old)
        .collect()
}

/// Whether a `SENTINEL MASTER` answer says this sentinel is running a failover: it has
/// promoted a replica and is still re-pointing the others, until they follow or its
/// failover-timeout ends it.
fn failing_over(master: &BTreeMap<String, String>) -> bool {
    master
        .get("flags")
        .is_some_and(|f| f.split(',').any(|flag| flag == "failover_in_progress"))
}

/// One sentinel pod the follower knows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SentinelPod {
    sentinel: ResourceRef,
    ordinal: u32,
    ip: String,
}

/// Per watched redis: since when the sentinels disagree or miss peers.
#[derive(Default)]
struct Health {
    disagree_since: Option<Instant>,
    peers_missing_since: Option<Instant>,
}

/// Runs for the server's lifetime: subscribes to the failover announcements of every sentinel
/// pod and polls `GET-MASTER-ADDR-BY-NAME` as a backstop; the first report of a new master
/// wins. A promotion re-points the other replicas at once (see [`repoint`]).
pub async fn follow(ops: Arc<Ops>) {
    let ctl = &ops.ctl;
    let (tx, mut rx) = mpsc::unbounded_channel::<(ResourceRef, FailoverEvent)>();
    let mut watchers: Watchers = HashMap::new();
    let mut health: HashMap<ResourceRef, Health> = HashMap::new();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some((data, ev)) = rx.recv() => match ev {
                // Off the loop: a replica that does not answer must not delay the next event.
                FailoverEvent::Promoting(p) => {
                    tokio::spawn(follow_promotion(ops.clone(), data, p));
                }
                FailoverEvent::Switched(ev) => {
                    let ips = r::pod_ips(ctl, &data);
                    if let Some(to) = ordinal_of_host(&data, &ev.new_host, &ips) {
                        if let Err(e) = follow_sentinels(&ops, &data, to, "+switch-master", false) {
                            tracing::warn!(redis = %data, error = %e, "could not record the new master");
                            ops.metrics.controller_error("sentinel");
                        }
                    }
                }
            },
            _ = tick.tick() => {
                if let Err(e) = poll(&ops, &tx, &mut watchers, &mut health).await {
                    tracing::warn!(error = %e, "sentinel follower");
                    ops.metrics.controller_error("sentinel");
                }
            }
        }
    }
}

/// Points the replicas [`repoint`] names at the replica being promoted, at the address the
/// sentinels gave it (as they will). One that does not answer is left to the sentinels.
async fn follow_promotion(ops: Arc<Ops>, data: ResourceRef, p: Promotion) {
    let ctl = &ops.ctl;
    let ips = r::pod_ips(ctl, &data);
    let Some(promoted) = ordinal_of_host(&data, &p.host, &ips) else {
        return;
    };
    let old = ordinal_of_host(&data, &p.old_host, &ips);
    let targets = repoint(ips.keys().copied(), promoted, old);
    if targets.is_empty() {
        return;
    }
    let auth = match r::auth(ctl, &data) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(redis = %data, error = %e, "cannot re-point the replicas of a promotion");
            return;
        }
    };
    let mut moves = tokio::task::JoinSet::new();
    for o in targets {
        let Some(ip) = ips.get(&o).cloned() else {
            continue;
        };
        let (auth, host, port) = (auth.clone(), p.host.clone(), p.port);
        moves.spawn(async move {
            let r = match r::connect(&ip, &auth).await {
                Ok(mut n) => n.replicaof(&host, port).await.map_err(r::redis_err),
                Err(e) => Err(e),
            };
            (o, r)
        });
    }
    while let Some(done) = moves.join_next().await {
        match done {
            Ok((o, Ok(()))) => {
                tracing::info!(redis = %data, replica = o, promoted, "re-pointed a replica at the replica being promoted")
            }
            Ok((o, Err(e))) => {
                tracing::info!(redis = %data, replica = o, error = %e, "could not re-point a replica; the sentinels will")
            }
            Err(e) => tracing::warn!(redis = %data, error = %e, "a replica re-point task failed"),
        }
    }
}

/// One failover watch per sentinel pod and the password it connects with: a new password (a
/// rotation) starts a new watch.
type Watchers = HashMap<(SentinelPod, Option<String>), tokio::task::JoinHandle<()>>;

async fn poll(
    ops: &Ops,
    tx: &mpsc::UnboundedSender<(ResourceRef, FailoverEvent)>,
    watchers: &mut Watchers,
    health: &mut HashMap<ResourceRef, Health>,
) -> Result<(), ServerError> {
    let ctl = &ops.ctl;
    let mut wanted = Vec::new();
    for s in ctl.store.list(Some(Kind::Redis))? {
        let Spec::Redis(spec) = &s.resource.spec else {
            continue;
        };
        let Some(data) = vd_core::redis::topology::monitor_of(spec) else {
            continue;
        };
        let sid = s.resource.id.clone();
        let auth = r::sentinel_auth(ctl, &sid)?;
        let pw = auth.password.clone();
        let pods: Vec<SentinelPod> = r::pod_ips(ctl, &sid)
            .into_iter()
            .map(|(ordinal, ip)| SentinelPod {
                sentinel: sid.clone(),
                ordinal,
                ip,
            })
            .collect();
        for p in &pods {
            let key = (p.clone(), pw.clone());
            if !watchers.contains_key(&key) {
                let task = spawn_watch(p.ip.clone(), auth.clone(), data.clone(), tx.clone());
                watchers.insert(key.clone(), task);
            }
            wanted.push(key);
        }
        let n = sentinel_count(spec);
        let h = health.entry(data.clone()).or_default();
        check(ops, &data, &pods, &auth, n, h).await?;
    }
    watchers.retain(|k, task| {
        let keep = wanted.contains(k);
        if !keep {
            task.abort();
        }
        keep
    });
    Ok(())
}

/// Follows one sentinel's failover announcements, reconnecting while the follower wants it.
fn spawn_watch(
    ip: String,
    auth: SentinelAuth,
    data: ResourceRef,
    tx: mpsc::UnboundedSender<(ResourceRef, FailoverEvent)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (itx, mut irx) = mpsc::unbounded_channel();
            let watch = vd_redisctl::watch_failovers(
                &ip,
                SENTINEL_PORT,
                auth.access(),
                CONNECT_TIMEOUT,
                itx,
            );
            let forward = async {
                while let Some(ev) = irx.recv().await {
                    if ev.master() == MASTER_NAME && tx.send((data.clone(), ev)).is_err() {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = watch => {}
                _ = forward => {}
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// What each sentinel says: the master ordinal it believes and how many peers it sees.
async fn ask(
    data: &ResourceRef,
    pods: &[SentinelPod],
    pw: &SentinelAuth,
    ips: &BTreeMap<u32, String>,
) -> Vec<Answer> {
    let mut out = Vec::new();
    for p in pods {
        let mut a = Answer {
            master: None,
            peers: None,
            failing_over: false,
        };
        if let Ok(mut s) = open(&p.ip, pw).await {
            if let Ok(Some((host, _))) = s.master_addr(MASTER_NAME).await {
                a.master = ordinal_of_host(data, &host, ips);
            }
            if let Ok(m) = s.master(MASTER_NAME).await {
                a.peers = m.get("num-other-sentinels").and_then(|v| v.parse().ok());
                a.failing_over = failing_over(&m);
            }
        }
        out.push(a);
    }
    out
}

struct Answer {
    master: Option<u32>,
    peers: Option<u32>,
    failing_over: bool,
}

/// The backstop poll for one watched redis, and the repair of a stalled quorum.
async fn check(
    ops: &Ops,
    data: &ResourceRef,
    pods: &[SentinelPod],
    pw: &SentinelAuth,
    n: u32,
    h: &mut Health,
) -> Result<(), ServerError> {
    if pods.is_empty() {
        return Ok(());
    }
    let ctl = &ops.ctl;
    let ips = r::pod_ips(ctl, data);
    let answers = ask(data, pods, pw, &ips).await;
    let masters: Vec<Option<u32>> = answers.iter().map(|a| a.master).collect();
    match agreement(&masters, macro_::quorum(n)) {
        Agreement::Agreed(to) => {
            h.disagree_since = None;
            follow_sentinels(ops, data, to, "sentinel poll", false)?;
        }
        Agreement::Disagree => {
            let since = *h.disagree_since.get_or_insert_with(Instant::now);
            if since.elapsed() > DISAGREEMENT_STALL {
                h.disagree_since = None;
                let why = "the sentinels disagree about the master";
                reset_all(ops, data, pods, pw, why).await;
            }
        }
        Agreement::Unknown => h.disagree_since = None,
    }
    // Peers: with every sentinel pod up and answering, each should see the n-1 others.
    let all_up = pods.len() as u32 == n && answers.iter().all(|a| a.peers.is_some());
    let missing = all_up && answers.iter().any(|a| a.peers.unwrap_or(0) + 1 < n);
    if missing {
        let since = *h.peers_missing_since.get_or_insert_with(Instant::now);
        if since.elapsed() > PEERS_STALL {
            h.peers_missing_since = None;
            let why = "a sentinel does not see all its peers";
            reset_all(ops, data, pods, pw, why).await;
        }
    } else {
        h.peers_missing_since = None;
    }
    Ok(())
}

/// `SENTINEL RESET voodu-master` on each sentinel, one at a time, waiting for each to find its
/// peers again before the next, so the quorum is never lost to the repair itself.
async fn reset_all(
    ops: &Ops,
    data: &ResourceRef,
    pods: &[SentinelPod],
    pw: &SentinelAuth,
    why: &str,
) {
    ops.ctl.event(
        Level::Warning,
        Some(data),
        None,
        Reason::SentinelReset,
        &format!("{why}: SENTINEL RESET {MASTER_NAME} on each sentinel, one at a time"),
    );
    for p in pods {
        let Ok(mut s) = open(&p.ip, pw).await else {
            continue;
        };
        if let Err(e) = s.reset(MASTER_NAME).await {
            tracing::warn!(sentinel = %p.ip, error = %e, "SENTINEL RESET failed");
            ops.metrics.controller_error("sentinel");
            continue;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let seen = s.master(MASTER_NAME).await.ok().and_then(|m| {
                m.get("num-other-sentinels")
                    .and_then(|v| v.parse::<usize>().ok())
            });
            if seen.is_some_and(|k| k + 1 >= pods.len()) {
                break;
            }
        }
    }
}

/// Before a crashed data pod restarts: if it was the master and sentinels watch it, wait
/// (bounded) until they promote a replica, so it comes back as a replica of the new master
/// instead of as a master with stale data that the replicas would then copy.
pub async fn hold_restart(ctl: &Controller, owner: &ResourceRef, ordinal: u32) {
    if owner.kind != Kind::Redis {
        return;
    }
    let Ok(Some((sid, sspec))) = watcher_of(ctl, owner) else {
        return;
    };
    let Ok(spec) = r::load(ctl, owner) else {
        return;
    };
    if spec.replicas.unwrap_or(1) < 2 || r::master_ordinal(ctl, owner).ok() != Some(ordinal) {
        return;
    }
    let ready = ctl
        .pod_views()
        .iter()
        .filter(|p| p.kind == sid.kind && p.scope == sid.scope && p.name == sid.name && p.ready)
        .count() as u32;
    if ready < macro_::quorum(sentinel_count(&sspec)) {
        return;
    }
    hold_master(
        ctl,
        owner,
        ordinal,
        HOLD_LIMIT,
        "the master exited; it restarts once the sentinels have promoted a replica",
        |ctl| {
            if r::master_ordinal(ctl, owner).ok() != Some(ordinal) {
                Release::Promoted
            } else {
                Release::Wait
            }
        },
    )
    .await;
}

/// `vd redis:failover` when sentinels watch the redis: they choose and promote the replica;
/// the controller waits for them to agree and records the result. With sentinels that
/// disagree or miss peers, it resets them one at a time first.
pub async fn failover(
    ops: &Ops,
    data: &ResourceRef,
    sentinel: &ResourceRef,
    sspec: &RedisSpec,
    req: &FailoverRequest,
    by: Planned,
) -> Result<FailoverReport, ServerError> {
    let ctl = &ops.ctl;
    let conflict = |m: String, h: &str| ServerError::Conflict {
        message: m,
        help: Some(h.to_string()),
    };
    if req.replica.is_some() {
        return Err(conflict(
            format!("{sentinel} watches {data}: the sentinels choose the replica to promote"),
            "omit --replica (replica-priority in a conf.d file steers their choice)",
        ));
    }
    let n = sentinel_count(sspec);
    let pw = &r::sentinel_auth(ctl, sentinel)?;
    let pods: Vec<SentinelPod> = r::pod_ips(ctl, sentinel)
        .into_iter()
        .map(|(ordinal, ip)| SentinelPod {
            sentinel: sentinel.clone(),
            ordinal,
            ip,
        })
        .collect();
    let ips = r::pod_ips(ctl, data);
    let before = ask(data, &pods, pw, &ips).await;
    let masters: Vec<Option<u32>> = before.iter().map(|a| a.master).collect();
    let stalled = !matches!(agreement(&masters, macro_::quorum(n)), Agreement::Agreed(_))
        || before.iter().any(|a| a.peers.is_some_and(|k| k + 1 < n));
    if stalled {
        reset_all(
            ops,
            data,
            &pods,
            pw,
            "before a requested failover, the sentinels disagree or miss peers",
        )
        .await;
    }
    let now = wait_failovers_ended(data, &pods, pw, &ips).await?;
    let from = match agreement(&now.iter().map(|a| a.master).collect::<Vec<_>>(), 1) {
        Agreement::Agreed(m) => m,
        _ => r::master_ordinal(ctl, data)?,
    };
    // The sentinels promote a replica without pausing the master: vd pauses its writes and
    // lets the replicas catch up first, so the one promoted has every acknowledged write, and
    // keeps them paused until the old master is demoted, so none lands on it in between.
    // Proxies hold their clients' commands meanwhile.
    let data_auth = r::auth(ctl, data)?;
    let mut old = match ips.get(&from) {
        Some(ip) => Some(r::connect(ip, &data_auth).await?),
        None => None,
    };
    if let Some(m) = old.as_mut() {
        let mut replicas = Vec::new();
        for (o, ip) in &ips {
            if *o != from {
                if let Ok(n) = r::connect(ip, &data_auth).await {
                    replicas.push(n);
                }
            }
        }
        crate::redis::feed::hold(ctl, data, from).await?;
        let pause = Duration::from_millis(macro_::FAILOVER_TIMEOUT_MS) + DRAIN_CATCH_UP;
        if let Err(e) =
            vd_redisctl::switchover::drain_writes(m, &mut replicas, pause, DRAIN_CATCH_UP).await
        {
            crate::redis::feed::publish(ctl, data, from, false)?;
            return Err(r::redis_err(e));
        }
    }
    let outcome = ask_and_follow(ops, data, &pods, pw, &ips, from, req, by, old.as_mut()).await;
    if let Some(m) = old.as_mut() {
        // Demoted by now (or the failover failed and it stays master): either way its held
        // writes may go, to be refused as a replica's or served as the master's.
        if let Err(e) = m.unpause().await {
            tracing::warn!(redis = %data, error = %e, "could not lift the write pause; it expires on its own");
        }
    }
    if outcome.is_err() {
        crate::redis::feed::publish(ctl, data, from, false)?;
    }
    outcome
}

/// How long the replicas may take to reach the master's offset before a requested sentinel
/// failover.
const DRAIN_CATCH_UP: Duration = Duration::from_secs(5);

/// Upper bound on waiting for a failover the sentinels are still finishing: it ends once the
/// replicas follow the new master, or at the failover-timeout (vd's default; a conf.d file
/// may set a longer one, and then the request is refused, to be repeated).
const FAILOVER_END_LIMIT: Duration = Duration::from_millis(macro_::FAILOVER_TIMEOUT_MS + 5000);

/// Waits until no sentinel is running a failover and returns what they say then. A sentinel
/// still re-pointing replicas after its failover would miss replicas that a second failover
/// moves elsewhere meanwhile, end its own by timeout and announce its promoted replica as the
/// master under the newer epoch it has since learnt: two sentinel camps, each naming another
/// master with the same epoch, that nothing reconciles.
async fn wait_failovers_ended(
    data: &ResourceRef,
    pods: &[SentinelPod],
    pw: &SentinelAuth,
    ips: &BTreeMap<u32, String>,
) -> Result<Vec<Answer>, ServerError> {
    let deadline = Instant::now() + FAILOVER_END_LIMIT;
    loop {
        let now = ask(data, pods, pw, ips).await;
        let busy: Vec<String> = pods
            .iter()
            .zip(&now)
            .filter(|(_, a)| a.failing_over)
            .map(|(p, _)| p.ordinal.to_string())
            .collect();
        if busy.is_empty() {
            return Ok(now);
        }
        if Instant::now() > deadline {
            return Err(ServerError::Conflict {
                message: format!(
                    "sentinel {} is still finishing a failover of {data}",
                    busy.join(", ")
                ),
                help: Some("try again once `vd redis:info` shows the sentinels healthy".into()),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asks the sentinels for a failover and waits until they agree on a new master, then demotes
/// the old one (`old`, paused) itself: the sentinels would only do so seconds later, and its
/// clients' writes wait meanwhile. Records the new master.
#[allow(clippy::too_many_arguments)]
async fn ask_and_follow(
    ops: &Ops,
    data: &ResourceRef,
    pods: &[SentinelPod],
    pw: &SentinelAuth,
    ips: &BTreeMap<u32, String>,
    from: u32,
    req: &FailoverRequest,
    by: Planned,
    mut old: Option<&mut vd_redisctl::Node>,
) -> Result<FailoverReport, ServerError> {
    let conflict = |m: String, h: &str| ServerError::Conflict {
        message: m,
        help: Some(h.to_string()),
    };
    let mut asked = None;
    for p in pods {
        if let Ok(mut s) = open(&p.ip, pw).await {
            match s.failover(MASTER_NAME).await {
                Ok(()) => {
                    asked = Some(p);
                    break;
                }
                Err(e) => tracing::info!(sentinel = %p.ip, error = %e, "SENTINEL FAILOVER refused"),
            }
        }
    }
    let Some(asked_by) = asked else {
        return Err(conflict(
            "no sentinel accepted SENTINEL FAILOVER".into(),
            "check `vd redis:info` (a failover may already be in progress, or no replica is healthy)",
        ));
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(macro_::FAILOVER_TIMEOUT_MS / 1000);
    loop {
        // The sentinel that ran the failover knows its outcome first (its peers learn it from
        // its hello messages, seconds later); its new configuration carries the newest epoch.
        let now = ask(data, std::slice::from_ref(asked_by), pw, ips).await;
        if let Some(to) = now.first().and_then(|a| a.master) {
            if to != from {
                if let Some(m) = old.as_deref_mut() {
                    let host = &vd_core::naming::pod_hostnames(data, to)[1];
                    if let Err(e) = m.replicaof(host, macro_::REDIS_PORT).await {
                        tracing::warn!(redis = %data, error = %e, "could not demote the old master; the sentinels will");
                    }
                }
                let why = match by {
                    Planned::Request => "",
                    Planned::Rollout => "a rollout's handover: ",
                };
                follow_sentinels(
                    ops,
                    data,
                    to,
                    &format!("{why}SENTINEL FAILOVER via sentinel {}", asked_by.ordinal),
                    req.no_restart,
                )?;
                return Ok(FailoverReport {
                    from,
                    to,
                    write_pause_ms: started.elapsed().as_millis() as u64,
                    by_sentinels: true,
                });
            }
        }
        if Instant::now() > deadline {
            return Err(conflict(
                format!(
                    "the sentinels did not name a new master within {} s",
                    macro_::FAILOVER_TIMEOUT_MS / 1000
                ),
                "see `vd redis:info` and `vd events`",
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Points every sentinel watching `data` at a new password (`SENTINEL SET auth-pass`), during a
/// rotation while both passwords work. A sentinel that is down gets it from its env on restart.
pub async fn set_auth_pass(
    ops: &Ops,
    data: &ResourceRef,
    password: &str,
) -> Result<(), ServerError> {
    let ctl = &ops.ctl;
    let Some((sid, _)) = watcher_of(ctl, data)? else {
        return Ok(());
    };
    let pw = r::sentinel_auth(ctl, &sid)?;
    for (o, ip) in r::pod_ips(ctl, &sid) {
        let result = async {
            let mut s = open(&ip, &pw).await?;
            s.set(MASTER_NAME, "auth-pass", password).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(sentinel = %sid, ordinal = o, error = %e, "could not give the sentinel the new password");
            ops.metrics.controller_error("sentinel");
        }
    }
    Ok(())
}

/// One sentinel as `vd redis:info` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentinelRow {
    /// Ordinal of the sentinel pod.
    pub ordinal: u32,
    /// ip:port.
    pub address: String,
    /// The data pod it believes is the master (`cache-1`), or what it reported.
    pub master: Option<String>,
    /// Other sentinels it sees.
    pub other_sentinels: Option<u32>,
    /// Replicas it knows of the master.
    pub replicas: Option<u32>,
    /// `SENTINEL CKQUORUM`'s answer.
    pub quorum: String,
    /// Error talking to it.
    pub error: Option<String>,
    /// It is running a failover (re-pointing the replicas at the promoted one).
    #[serde(default)]
    pub failing_over: bool,
}

/// The sentinels watching a redis, for `vd redis:info`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentinelReport {
    /// `scope/name` of the sentinel sibling.
    pub sentinel: String,
    /// Votes a failover needs.
    pub quorum: u32,
    /// Whether every sentinel answers, agrees on the master, and passes CKQUORUM.
    pub healthy: bool,
    /// One row per sentinel pod.
    pub rows: Vec<SentinelRow>,
}

/// `GET /v1/redis/{scope}/{name}/sentinels` (for either the data redis or its sentinel).
pub async fn report(
    ctl: &Controller,
    scope: &str,
    name: &str,
) -> Result<Option<SentinelReport>, ServerError> {
    let id = r::redis_ref(scope, name);
    let spec = r::load(ctl, &id)?;
    let (data, sid, sspec) = match vd_core::redis::topology::monitor_of(&spec) {
        Some(data) => (data, id.clone(), spec),
        None => match watcher_of(ctl, &id)? {
            Some((sid, sspec)) => (id.clone(), sid, sspec),
            None => return Ok(None),
        },
    };
    let n = sentinel_count(&sspec);
    let ips = r::pod_ips(ctl, &data);
    let pw = r::sentinel_auth(ctl, &sid)?;
    let mut rows = Vec::new();
    for (ordinal, ip) in r::pod_ips(ctl, &sid) {
        let mut row = SentinelRow {
            ordinal,
            address: format!("{ip}:{SENTINEL_PORT}"),
            master: None,
            other_sentinels: None,
            replicas: None,
            quorum: "-".into(),
            error: None,
            failing_over: false,
        };
        match open(&ip, &pw).await {
            Ok(mut s) => {
                if let Ok(Some((host, port))) = s.master_addr(MASTER_NAME).await {
                    row.master = Some(match ordinal_of_host(&data, &host, &ips) {
                        Some(o) => format!("{}-{o}", data.name),
                        None => format!("{host}:{port}"),
                    });
                }
                if let Ok(m) = s.master(MASTER_NAME).await {
                    row.other_sentinels = m.get("num-other-sentinels").and_then(|v| v.parse().ok());
                    row.replicas = m.get("num-slaves").and_then(|v| v.parse().ok());
                    row.failing_over = failing_over(&m);
                }
                row.quorum = match s.ckquorum(MASTER_NAME).await {
                    Ok(m) => m,
                    Err(e) => e.to_string(),
                };
            }
            Err(e) => row.error = Some(e.to_string()),
        }
        rows.push(row);
    }
    // Healthy: every sentinel answers, passes CKQUORUM, names the same master, sees all its
    // peers and all the master's replicas, and runs no failover.
    let data_replicas = r::load(ctl, &data)?.replicas.unwrap_or(1);
    let first = rows.first().and_then(|r| r.master.clone());
    let healthy = rows.len() as u32 == n
        && rows.iter().all(|r| {
            r.error.is_none()
                && r.master.is_some()
                && r.master == first
                && r.quorum.starts_with("OK")
                && r.other_sentinels == Some(n - 1)
                && r.replicas == Some(data_replicas.saturating_sub(1))
                && !r.failing_over
        });
    Ok(Some(SentinelReport {
        sentinel: sid.to_string(),
        quorum: macro_::quorum(n),
        healthy,
        rows,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> ResourceRef {
        ResourceRef::new(Kind::Redis, "data", "cache")
    }

    #[test]
    fn hosts_map_to_ordinals() {
        let ips = BTreeMap::from([(0, "127.9.0.2".to_string()), (1, "127.9.0.3".to_string())]);
        assert_eq!(
            ordinal_of_host(&data(), "cache-1.data.voodu", &ips),
            Some(1)
        );
        assert_eq!(ordinal_of_host(&data(), "cache-12.data", &ips), Some(12));
        assert_eq!(ordinal_of_host(&data(), "127.9.0.3", &ips), Some(1));
        assert_eq!(ordinal_of_host(&data(), "cache-x.data.voodu", &ips), None);
        assert_eq!(ordinal_of_host(&data(), "other-1.data.voodu", &ips), None);
        assert_eq!(ordinal_of_host(&data(), "cache-1.web.voodu", &ips), None);
        assert_eq!(ordinal_of_host(&data(), "", &ips), None);
    }

    #[test]
    fn a_promotion_repoints_every_other_replica() {
        // (pods, promoted, old master, re-pointed)
        type Case = (&'static [u32], u32, Option<u32>, &'static [u32]);
        let cases: &[Case] = &[
            // Three pods: the third follows the promoted one.
            (&[0, 1, 2], 1, Some(0), &[2]),
            (&[0, 1, 2], 0, Some(2), &[1]),
            // Two pods: nothing to move; the old master is the sentinels' to demote.
            (&[0, 1], 1, Some(0), &[]),
            // An old master vd cannot place (an address it no longer has) is not a reason to
            // skip the others.
            (&[0, 1, 2, 3], 3, None, &[0, 1, 2]),
            // A promoted pod vd does not know among the pods is left out as well.
            (&[0, 1, 2], 5, Some(0), &[1, 2]),
        ];
        for (pods, promoted, old, want) in cases {
            assert_eq!(
                repoint(pods.iter().copied(), *promoted, *old),
                want.to_vec(),
                "{pods:?} promoted {promoted} old {old:?}"
            );
        }
    }

    #[test]
    fn a_failover_in_progress_is_read_from_the_flags() {
        let with = |flags: &str| BTreeMap::from([("flags".to_string(), flags.to_string())]);
        assert!(failing_over(&with("master,failover_in_progress")));
        assert!(failing_over(&with("failover_in_progress")));
        assert!(!failing_over(&with("master")));
        assert!(!failing_over(&with("master,s_down,o_down")));
        assert!(!failing_over(&with("master,failover_in_progress_x")));
        assert!(!failing_over(&BTreeMap::new()));
    }

    #[test]
    fn agreement_needs_quorum_and_unanimity() {
        assert_eq!(
            agreement(&[Some(1), Some(1), None], 2),
            Agreement::Agreed(1)
        );
        assert_eq!(agreement(&[Some(1), None, None], 2), Agreement::Unknown);
        assert_eq!(
            agreement(&[Some(1), Some(2), Some(1)], 2),
            Agreement::Disagree
        );
        assert_eq!(agreement(&[None, None, None], 2), Agreement::Unknown);
        assert_eq!(agreement(&[], 1), Agreement::Unknown);
    }
}
