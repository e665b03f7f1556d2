//! Failover consistency and timing benchmark: vd's controller (`failover {
//! automatic = true  down_after = "1s" }`) and, as the baseline in the same run, Sentinel at
//! `down-after-milliseconds` 1000 and 5000, through the same faults, with writers that detect
//! lost and duplicated writes.
//!
//! Run with `cargo bench -p vd-cli --bench failover` after `cargo build --release -p vd-cli`.
//! It drives the release `vd` binary (or `VD_BIN`) against a `vd server` on a temporary root,
//! needs root (the process runtime), `redis-server`, `redis-sentinel` and `redis-cli`, prints a
//! markdown section and appends it to docs/benchmarks.md. Tests never assert on speed; this
//! program only measures and reports.
//!
//! Per setup (the controller, Sentinel 1000, Sentinel 5000, one after the other, each torn down
//! before the next) it applies `sets` identical 3-pod data redis (each in its own scope; with a
//! sentinel sibling for the baseline) plus one with persistence off, and runs, in order: a quiet
//! period, the `kill -9` cycles, the hang cycles (SIGSTOP for down_after + 2 s, then SIGCONT),
//! the controller-killed-mid-failover cycles (controller only), the chained kills, the kills
//! with persistence off, and a second quiet period. Cycles rotate over the sets: the runtime
//! restarts a crashed pod after a backoff that doubles while the pod crashes within 30 s of its
//! start, so killing the same three pods a hundred times in a row would mostly measure waiting.
//!
//! In each cycle two writer threads RPUSH unique ids to the master, one acknowledging a write
//! when `WAIT 1 500` says a replica has it, one without WAIT; both follow the master (the
//! controller setups: whichever pod answers `ROLE` as master, polled every 5 ms per pod;
//! Sentinel: `SENTINEL GET-MASTER-ADDR-BY-NAME`, as a sentinel-aware client does). After a
//! failed write a writer sends the same id again to the master it finds (a write whose reply
//! was lost may have happened), so a duplicate is an id in the list twice. After the fault
//! the cycle waits for both writers to write again and for the pair to settle (one master, the
//! others replicating from it, the sentinels and the bucket agreeing), writes one more second,
//! then reads both lists back from the master. Through every cycle of every setup each pod is
//! also asked `ROLE` every 5 ms, which shows how long two pods said they were master.
//!
//! Knobs (environment): `VD_BENCH_FAILOVER_KILLS` (the controller's `kill -9` cycles, 100);
//! `VD_BENCH_FAILOVER_<SETUP>_<WHAT>` with SETUP `VD`, `S1000` or `S5000` and WHAT `KILL`,
//! `HANG`, `ABORT`, `CHAIN`, `NOPERSIST` (cycles) or `SETS` (data redis the cycles rotate
//! over); `VD_BENCH_FAILOVER_SETUPS` (`vd,s1000,s5000`); `VD_BENCH_FAILOVER_QUIET_SECS` (10);
//! `VD_BENCH_FAILOVER_DOCS=0` (print only; do not append to docs/benchmarks.md). Defaults: the
//! controller kill 100, hang 10, abort 5, chain 5 (3 kills each), nopersist 10 over 4 sets;
//! Sentinel 1000: 20, 5, -, 3, 5 and Sentinel 5000: 10, 3, -, 2, 3, over 1 set (about 30 min
//! in all on 2 cores).

mod common;
#[path = "common/ha.rs"]
mod ha;

use common::{env_num, machine, ms, now_ms, percentile, sleep, sorted, utc_now, Bench, Setup};
use ha::{
    append_to_docs, ask_sentinel, check_overrides, connect, field, host, load_average, log_sizes,
    log_tails, logs_since, marks, ms_after, p50_max, redis_version, refresh, sentinel_pair,
    teardown, wait_settled, Topo, DATA, DATA_PROBES, MARKS, NODES, PORT, SENTINEL,
};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const COMMAND: &str = "cargo bench -p vd-cli --bench failover";
/// The controller's `failover.down_after`.
const DOWN_AFTER_MS: u64 = 1000;
/// The sentinel baselines' `down-after-milliseconds`.
const SENTINEL_SETTINGS: [u64; 2] = [1000, 5000];
/// `WAIT 1 <WAIT_MS>` after each write of the WAIT writer.
const WAIT_MS: u64 = 500;
/// WAIT timeouts in a row after which the WAIT writer gives the node up (as after an error).
const WAIT_TRIES: u32 = 4;
/// The writers' connect and I/O timeout, for the nodes and the sentinels.
const WRITER_TIMEOUT: Duration = Duration::from_millis(300);
/// Between a writer's attempts after an error.
const RETRY: Duration = Duration::from_millis(2);
/// Between acknowledged writes.
const WRITE_INTERVAL: Duration = Duration::from_millis(1);
/// How often each pod is asked `ROLE` by the controller setups' writers.
const ROLE_POLL: Duration = Duration::from_millis(5);
const ROLE_TIMEOUT: Duration = Duration::from_millis(200);
/// A `ROLE` answer older than this is not trusted.
const ROLE_FRESH: Duration = Duration::from_millis(100);
/// Writes to the master before the fault, at least.
const PRE_ROLL: Duration = Duration::from_millis(500);
/// An acknowledgement this long after the fault is not one that was in flight at the fault.
const IN_FLIGHT: Duration = Duration::from_millis(50);
/// Writing continues this long after the pair settled.
const AFTER: Duration = Duration::from_secs(1);
/// How long a hung master stays stopped beyond `down_after`.
const HANG_EXTRA: Duration = Duration::from_secs(2);
const FAILOVER_LIMIT: Duration = Duration::from_secs(60);
/// The server environment that makes the controller abort right after storing a failover.
const ABORT_ENV: (&str, &str) = ("VD_TEST_FAULT", "abort-after-failover-stored");
/// The controller's targets, from master fault to the first acknowledged write: after a crash
/// 500 ms at p50 and 1 s at p99; after a hang, `down_after` plus 300 ms at p99.
const CRASH_P50_MS: f64 = 500.0;
const CRASH_P99_MS: f64 = 1000.0;
const HANG_EXTRA_MS: f64 = 300.0;

fn main() {
    common::main(
        &Setup {
            prefix: "vd-bench-failover-",
            programs: &["redis-server", "redis-sentinel", "redis-cli"],
            packages: "redis-server redis-sentinel redis-tools",
            shutdown_limit: Duration::from_secs(90),
        },
        run,
    );
}

// ---------------------------------------------------------------- setups and faults

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    Kill,
    Hang,
    Abort,
    Chain,
    NoPersist,
}

const FAULTS: [Fault; 5] = [
    Fault::Kill,
    Fault::Hang,
    Fault::Abort,
    Fault::Chain,
    Fault::NoPersist,
];

impl Fault {
    fn key(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Hang => "hang",
            Fault::Abort => "abort",
            Fault::Chain => "chain",
            Fault::NoPersist => "nopersist",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Fault::Kill => "`kill -9` master",
            Fault::Hang => "SIGSTOP master, down_after + 2 s",
            Fault::Abort => "controller killed mid-failover",
            Fault::Chain => "3 chained `kill -9`",
            Fault::NoPersist => "`kill -9` master, persistence off",
        }
    }

    /// Master kills or hangs per cycle, and so failovers expected per cycle.
    fn faults(self) -> usize {
        if self == Fault::Chain {
            3
        } else {
            1
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Detector {
    Controller,
    Sentinel,
}

#[derive(Clone)]
struct Spec {
    /// `vd`, `s1000`, `s5000`: the knobs' and the scopes' prefix.
    key: String,
    detector: Detector,
    down_after: u64,
    /// Data redis (with persistence) the cycles rotate over.
    sets: usize,
    /// Cycles per fault, in [`FAULTS`] order.
    counts: [usize; 5],
}

impl Spec {
    fn label(&self) -> String {
        match self.detector {
            Detector::Controller => format!("vd controller, down_after {} ms", self.down_after),
            Detector::Sentinel => format!("Sentinel, down-after {} ms", self.down_after),
        }
    }

    fn count(&self, f: Fault) -> usize {
        FAULTS
            .iter()
            .position(|x| *x == f)
            .map_or(0, |i| self.counts[i])
    }

    fn scope(&self, set: usize) -> String {
        format!("{}-{}", self.key, set + 1)
    }

    fn nopersist_scope(&self) -> String {
        format!("{}-np", self.key)
    }
}

fn specs() -> Vec<Spec> {
    let knob = |setup: &str, what: &str, default: usize| {
        env_num(
            &format!("VD_BENCH_FAILOVER_{}_{what}", setup.to_ascii_uppercase()),
            default,
        )
    };
    let spec = |key: &str, detector, down_after, defaults: [usize; 6]| {
        let counts = ["KILL", "HANG", "ABORT", "CHAIN", "NOPERSIST"]
            .iter()
            .zip(defaults)
            .map(|(w, d)| knob(key, w, d))
            .collect::<Vec<_>>();
        Spec {
            key: key.to_string(),
            detector,
            down_after,
            sets: knob(key, "SETS", defaults[5]).max(1),
            counts: [counts[0], counts[1], counts[2], counts[3], counts[4]],
        }
    };
    let kills = env_num("VD_BENCH_FAILOVER_KILLS", 100);
    let mut all = vec![spec(
        "vd",
        Detector::Controller,
        DOWN_AFTER_MS,
        [kills, 10, 5, 5, 10, 4],
    )];
    for d in SENTINEL_SETTINGS {
        // Fewer cycles: each takes seconds longer, and the baseline is known.
        let defaults = if d <= 1000 {
            [20, 5, 0, 3, 5, 1]
        } else {
            [10, 3, 0, 2, 3, 1]
        };
        all.push(spec(&format!("s{d}"), Detector::Sentinel, d, defaults));
    }
    for s in &mut all {
        if s.detector == Detector::Sentinel {
            s.counts[2] = 0; // no controller to kill: Sentinel does the failover
        }
    }
    let only = std::env::var("VD_BENCH_FAILOVER_SETUPS").unwrap_or_default();
    if !only.trim().is_empty() {
        let keep: Vec<&str> = only.split(',').map(str::trim).collect();
        all.retain(|s| keep.contains(&s.key.as_str()));
    }
    all
}

/// The persistence-off asset of `scope`, and what mounts it into a data redis block.
fn nopersist(scope: &str) -> (String, String) {
    (
        format!(
            r#"
asset "{scope}" "nopersist" {{
  conf = <<-EOT
    save ""
    appendonly no
  EOT
}}
"#
        ),
        format!(
            "  volumes = [\"${{asset.{scope}.nopersist.conf}}:/etc/redis/conf.d/nopersist.conf:ro\"]\n"
        ),
    )
}

/// A data redis with controller failover.
fn controller_redis(scope: &str, down_after: u64, extra: &str) -> String {
    format!(
        r#"
redis "{scope}" "{DATA}" {{
  replicas = {NODES}
  failover {{
    automatic  = true
    down_after = "{down_after}ms"
  }}
{DATA_PROBES}{extra}}}
"#
    )
}

/// The setup's manifest: `sets` pairs with persistence and one without.
fn manifest(spec: &Spec) -> String {
    let pair = |scope: &str, extra: &str| match spec.detector {
        Detector::Controller => controller_redis(scope, spec.down_after, extra),
        Detector::Sentinel => sentinel_pair(scope, spec.down_after, extra),
    };
    let mut m = String::new();
    for i in 0..spec.sets {
        m.push_str(&pair(&spec.scope(i), ""));
    }
    let np = spec.nopersist_scope();
    let (asset, mount) = nopersist(&np);
    m.push_str(&asset);
    m.push_str(&pair(&np, &mount));
    m
}

fn resources(spec: &Spec, scope: &str) -> Vec<String> {
    let mut r = Vec::new();
    if spec.detector == Detector::Sentinel {
        r.push(format!("redis/{scope}/{SENTINEL}"));
        r.push(format!("asset/{scope}/overrides"));
    }
    r.push(format!("redis/{scope}/{DATA}"));
    if scope == spec.nopersist_scope() {
        r.push(format!("asset/{scope}/nopersist"));
    }
    r
}

// ---------------------------------------------------------------- counting failovers

/// One failover as vd's events or the sentinels' logs record it.
struct Seen {
    scope: String,
    /// When (unix ms), if known.
    wall_ms: Option<i64>,
    /// The event's message (the controller's timeline) or the sentinel's log line.
    message: String,
}

/// Every failover since the last `take`, so each is seen once: the controller's `Failover`
/// events, or for Sentinel the `+switch-master` lines (counted in the sentinel log that has
/// the most: each sentinel logs each switch once).
enum Counter {
    Events { last_id: i64, scopes: Vec<String> },
    Logs(Vec<(String, Vec<PathBuf>, Vec<u64>)>),
}

impl Counter {
    fn new(b: &Bench, spec: &Spec, pairs: &[Pair]) -> Counter {
        match spec.detector {
            Detector::Controller => Counter::Events {
                last_id: 0,
                scopes: pairs.iter().map(|p| p.topo.scope.clone()).collect(),
            },
            Detector::Sentinel => Counter::Logs(
                pairs
                    .iter()
                    .map(|p| {
                        let logs = p.topo.sentinel_logs(b);
                        let n = logs.len();
                        (p.topo.scope.clone(), logs, vec![0; n])
                    })
                    .collect(),
            ),
        }
    }

    fn take(&mut self, b: &Bench) -> Result<Vec<Seen>, String> {
        match self {
            Counter::Events { last_id, scopes } => {
                let v = b.json(&["events", "--limit", "1000"])?;
                let mut events: Vec<&Value> =
                    v.as_array().map(|a| a.iter().collect()).unwrap_or_default();
                events.sort_by_key(|e| e["id"].as_i64().unwrap_or(0));
                let mut out = Vec::new();
                for e in events {
                    let id = e["id"].as_i64().unwrap_or(0);
                    if id <= *last_id {
                        continue;
                    }
                    *last_id = id;
                    let scope = e["resource"]["scope"].as_str().unwrap_or_default();
                    if e["reason"] == "Failover" && scopes.iter().any(|s| s == scope) {
                        out.push(Seen {
                            scope: scope.to_string(),
                            wall_ms: e["ts_ms"].as_i64(),
                            message: e["message"].as_str().unwrap_or_default().to_string(),
                        });
                    }
                }
                Ok(out)
            }
            Counter::Logs(pairs) => {
                let now = now_ms();
                let mut out = Vec::new();
                for (scope, logs, offsets) in pairs.iter_mut() {
                    let texts = logs_since(logs, offsets);
                    for (off, text) in offsets.iter_mut().zip(&texts) {
                        *off += text.len() as u64;
                    }
                    let best = texts
                        .iter()
                        .map(|t| {
                            t.lines()
                                .filter(|l| l.contains("+switch-master "))
                                .collect::<Vec<_>>()
                        })
                        .max_by_key(Vec::len)
                        .unwrap_or_default();
                    out.extend(best.into_iter().map(|l| Seen {
                        scope: scope.clone(),
                        wall_ms: ms_after(l, now).map(|d| now + d),
                        message: l.to_string(),
                    }));
                }
                Ok(out)
            }
        }
    }
}

// ---------------------------------------------------------------- following the master

/// The controller setups' writers find the master the way a client without Sentinel can: by
/// asking every pod `ROLE`. One thread per pod asks every [`ROLE_POLL`].
struct Roles {
    stop: AtomicBool,
    /// Per ordinal: (answered master, when) of the last answer.
    seen: Mutex<Vec<Option<(bool, Instant)>>>,
    /// When two or more pods answered master at once: the open interval's start, and the
    /// closed intervals.
    two: Mutex<(Option<Instant>, Vec<Span>)>,
}

/// An interval of time.
type Span = (Instant, Instant);

impl Roles {
    /// Pods that said they are master within [`ROLE_FRESH`].
    fn masters(seen: &[Option<(bool, Instant)>]) -> Vec<u32> {
        seen.iter()
            .enumerate()
            .filter(|(_, s)| s.is_some_and(|(m, at)| m && at.elapsed() < ROLE_FRESH))
            .map(|(o, _)| o as u32)
            .collect()
    }

    /// Opens or closes a two-masters interval after an answer.
    fn track(&self, masters: usize) {
        let Ok(mut two) = self.two.lock() else {
            return;
        };
        match (two.0, masters >= 2) {
            (None, true) => two.0 = Some(Instant::now()),
            (Some(start), false) => {
                two.0 = None;
                two.1.push((start, Instant::now()));
            }
            _ => {}
        }
    }
}

/// The `ROLE` pollers of one cycle; dropping it stops and joins them.
struct RoleMonitor {
    roles: Arc<Roles>,
    handles: Vec<JoinHandle<()>>,
}

impl RoleMonitor {
    fn start(t: &Topo) -> RoleMonitor {
        let roles = Arc::new(Roles {
            stop: AtomicBool::new(false),
            seen: Mutex::new(vec![None; t.data_ips.len()]),
            two: Mutex::new((None, Vec::new())),
        });
        let handles = t
            .data_ips
            .iter()
            .enumerate()
            .map(|(o, ip)| {
                let (r, ip, pw) = (roles.clone(), ip.clone(), t.password.clone());
                std::thread::spawn(move || poll_role(&r, o, &ip, &pw))
            })
            .collect();
        RoleMonitor { roles, handles }
    }

    /// Stops the pollers; returns the intervals in which two pods answered master.
    fn finish(mut self) -> Vec<Span> {
        self.stop();
        let mut two = self.roles.two.lock().map(|t| t.clone()).unwrap_or_default();
        if let Some(start) = two.0 {
            two.1.push((start, Instant::now()));
        }
        two.1
    }

    fn stop(&mut self) {
        self.roles.stop.store(true, Ordering::SeqCst);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for RoleMonitor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Asks pod `o` `ROLE` every [`ROLE_POLL`]. A pod that refuses the connection or fails to
/// answer is forgotten at once: a client must not keep a dead master's last answer.
fn poll_role(r: &Roles, o: usize, ip: &str, pw: &str) {
    let mut conn: Option<redis::Connection> = None;
    while !r.stop.load(Ordering::SeqCst) {
        if conn.is_none() {
            conn = connect(ip, PORT, Some(pw), ROLE_TIMEOUT).ok();
        }
        let answer = conn.as_mut().and_then(|c| {
            let v = redis::cmd("ROLE").query::<Vec<redis::Value>>(c).ok()?;
            Some(
                matches!(v.first(), Some(redis::Value::BulkString(b)) if b == b"master")
                    || matches!(v.first(), Some(redis::Value::SimpleString(s)) if s == "master"),
            )
        });
        if answer.is_none() {
            conn = None;
        }
        let masters = r.seen.lock().ok().map(|mut seen| {
            seen[o] = answer.map(|m| (m, Instant::now()));
            Roles::masters(&seen).len()
        });
        if let Some(n) = masters {
            r.track(n);
        }
        std::thread::sleep(ROLE_POLL);
    }
}

impl Roles {
    /// A pod that said it is master within [`ROLE_FRESH`]: the lowest ordinal other than
    /// `avoid` (the pod the writer just failed on), else `avoid`.
    fn master(&self, avoid: Option<u32>) -> Option<u32> {
        let masters = Roles::masters(&self.seen.lock().ok()?);
        masters
            .iter()
            .copied()
            .find(|o| Some(*o) != avoid)
            .or_else(|| masters.first().copied())
    }
}

#[derive(Clone)]
enum Finder {
    Sentinels,
    Roles(Arc<Roles>),
}

// ---------------------------------------------------------------- the writers

/// One acknowledged write.
struct Ack {
    id: u64,
    /// The data pod that acknowledged it.
    node: u32,
    at: Instant,
}

#[derive(Default)]
struct WriterLog {
    acks: Vec<Ack>,
    /// Failed attempts: (when, message).
    errors: Vec<(Instant, String)>,
    /// `WAIT` calls that returned 0 (no replica had the write within [`WAIT_MS`]).
    wait_timeouts: usize,
}

/// What the benchmark watches while a writer runs.
struct Shared {
    stop: AtomicBool,
    /// The node of the last acknowledged write (`u32::MAX` before the first).
    node: AtomicU32,
    /// When the last write was acknowledged, µs after `base` (0 before the first).
    last_ack_us: AtomicU64,
    base: Instant,
}

/// A writer thread; dropping it stops and joins the thread.
struct Writer {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<WriterLog>>,
}

impl Writer {
    fn start(t: &Topo, finder: Finder, key: String, wait: bool) -> Writer {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            node: AtomicU32::new(u32::MAX),
            last_ack_us: AtomicU64::new(0),
            base: Instant::now(),
        });
        let (t, s) = (t.clone(), shared.clone());
        let handle = std::thread::spawn(move || write_loop(&t, &finder, &key, wait, &s));
        Writer {
            shared,
            handle: Some(handle),
        }
    }

    fn node(&self) -> u32 {
        self.shared.node.load(Ordering::SeqCst)
    }

    fn last_ack(&self) -> Option<Instant> {
        match self.shared.last_ack_us.load(Ordering::SeqCst) {
            0 => None,
            us => Some(self.shared.base + Duration::from_micros(us)),
        }
    }

    fn finish(mut self) -> Result<WriterLog, String> {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .map(|h| h.join().map_err(|_| "a writer panicked".to_string()))
            .unwrap_or_else(|| Err("no writer".into()))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// RPUSHes `<id>.<attempt>` to `key` on the master, increasing ids. With `wait`, a write is
/// acknowledged when `WAIT 1` reports a replica has it (a WAIT that times out is repeated, the
/// write is already on the master; after [`WAIT_TRIES`] the node is given up). On an error the
/// writer drops the connection, finds the master again (avoiding the node that failed while
/// another says it is master) and sends the same id again with the next attempt number.
fn write_loop(t: &Topo, finder: &Finder, key: &str, wait: bool, s: &Shared) -> WriterLog {
    let mut log = WriterLog::default();
    let mut sentinels: Vec<Option<redis::Connection>> =
        t.sentinel_ips.iter().map(|_| None).collect();
    let mut next = 0;
    let mut master: Option<(u32, redis::Connection)> = None;
    let mut avoid: Option<u32> = None;
    let (mut id, mut attempt) = (0u64, 0u32);
    while !s.stop.load(Ordering::SeqCst) {
        let Some((node, conn)) = master.as_mut() else {
            let found = match finder {
                Finder::Sentinels => {
                    let o = next % sentinels.len().max(1);
                    next += 1;
                    ask_sentinel(t, o, &mut sentinels[o], WRITER_TIMEOUT)
                }
                Finder::Roles(r) => r
                    .master(avoid)
                    .ok_or_else(|| "no pod answers ROLE as master".to_string()),
            }
            .and_then(|m| t.data_within(m, WRITER_TIMEOUT).map(|c| (m, c)));
            match found {
                Ok(m) => master = Some(m),
                Err(e) => {
                    log.errors.push((Instant::now(), e));
                    std::thread::sleep(RETRY);
                }
            }
            continue;
        };
        let pushed = redis::cmd("RPUSH")
            .arg(key)
            .arg(format!("{id}.{attempt}"))
            .query::<i64>(conn);
        let mut result = pushed.map(|_| true);
        if wait && matches!(result, Ok(true)) {
            result = Ok(false);
            for _ in 0..WAIT_TRIES {
                match redis::cmd("WAIT").arg(1).arg(WAIT_MS).query::<i64>(conn) {
                    Ok(n) if n >= 1 => {
                        result = Ok(true);
                        break;
                    }
                    Ok(_) => log.wait_timeouts += 1,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
        }
        match result {
            Ok(true) => {
                let at = Instant::now();
                log.acks.push(Ack {
                    id,
                    node: *node,
                    at,
                });
                s.node.store(*node, Ordering::SeqCst);
                s.last_ack_us
                    .store((at - s.base).as_micros().max(1) as u64, Ordering::SeqCst);
                id += 1;
                attempt = 0;
                avoid = None;
                std::thread::sleep(WRITE_INTERVAL);
            }
            other => {
                let why = match other {
                    Err(e) => format!("RPUSH/WAIT on {}: {e}", host(&t.scope, *node)),
                    _ => format!(
                        "WAIT on {}: no replica within {} ms, {WAIT_TRIES} times",
                        host(&t.scope, *node),
                        WAIT_MS
                    ),
                };
                log.errors.push((Instant::now(), why));
                avoid = Some(*node);
                master = None;
                attempt += 1;
                std::thread::sleep(RETRY);
            }
        }
    }
    log
}

// ---------------------------------------------------------------- faults

fn signal(pid: u64, sig: libc::c_int, what: &str) -> Result<(), String> {
    if pid <= 1 {
        return Err(format!("no pid to {what}"));
    }
    let sig = nix::sys::signal::Signal::try_from(sig).map_err(|e| format!("{what}: {e}"))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as libc::pid_t), sig)
        .map_err(|e| format!("{what} {pid}: {}", std::io::Error::from(e)))
}

/// A stopped process; dropping it sends SIGCONT (also when the cycle fails).
struct Stopped(u64);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = signal(self.0, libc::SIGCONT, "SIGCONT");
    }
}

/// Whether the server has exited (and reaps it).
fn server_exited(b: &Bench) -> bool {
    let Ok(mut server) = b.server.lock() else {
        return false;
    };
    match server.as_mut().map(std::process::Child::try_wait) {
        Some(Ok(None)) => false,
        Some(_) => {
            *server = None;
            true
        }
        None => true,
    }
}

/// Kills the server (SIGKILL; the pods keep running) and starts another with `env`.
fn restart_server(b: &Bench, env: &[(&str, &str)]) -> Result<(), String> {
    if let Ok(mut server) = b.server.lock() {
        if let Some(mut c) = server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    b.spawn_server(env)?;
    b.wait_server()
}

/// A master other than `victim` that a replica follows with the link up.
fn master_with_replica(t: &Topo, victim: u32) -> Option<u32> {
    let infos: Vec<Option<String>> = (0..NODES)
        .map(|o| {
            if o == victim {
                return None;
            }
            let mut c = connect(
                &t.data_ips[o as usize],
                PORT,
                Some(&t.password),
                Duration::from_millis(200),
            )
            .ok()?;
            redis::cmd("INFO").arg("replication").query(&mut c).ok()
        })
        .collect();
    (0..NODES).find(|m| {
        infos[*m as usize]
            .as_deref()
            .is_some_and(|i| field(i, "role") == Some("master"))
            && (0..NODES).any(|o| {
                o != *m
                    && infos[o as usize].as_deref().is_some_and(|i| {
                        field(i, "master_host") == Some(host(&t.scope, *m).as_str())
                            && field(i, "master_link_status") == Some("up")
                    })
            })
    })
}

// ---------------------------------------------------------------- one cycle

struct Pair {
    topo: Topo,
}

/// One injected fault: a master killed or stopped.
struct Injected {
    at: Instant,
    wall_ms: i64,
    victim: u32,
}

/// The controller's timeline of one failover, from its `Failover` event: ms after the
/// fault (the zero is when the runtime reported the exit, or the tick that decided).
#[derive(Clone, Copy, Default)]
struct Timeline {
    zero: f64,
    acted: f64,
    stored: f64,
    promoted: f64,
    repointed: f64,
    bucket: f64,
    consumers: f64,
}

/// The number after `+` following `label` in an event message (`promoted +12 ms`).
fn step_ms(msg: &str, label: &str) -> Option<f64> {
    let rest = &msg[msg.find(label)? + label.len()..];
    let rest = &rest[rest.find('+')? + 1..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn timeline(seen: &Seen, fault_wall: i64) -> Option<Timeline> {
    let m = &seen.message;
    let consumers = step_ms(m, "consumers")?;
    Some(Timeline {
        zero: (seen.wall_ms? - fault_wall) as f64 - consumers,
        acted: step_ms(m, "acted")?,
        stored: step_ms(m, "epoch stored")?,
        promoted: step_ms(m, "promoted")?,
        repointed: step_ms(m, "re-pointed")?,
        bucket: step_ms(m, "REDIS_MASTER_ORDINAL")?,
        consumers,
    })
}

struct Cycle {
    fault: Fault,
    /// Its number among the fault's cycles.
    index: usize,
    scope: String,
    from: u32,
    to: u32,
    injected: Vec<Injected>,
    /// [no WAIT, WAIT].
    logs: [WriterLog; 2],
    keys: [String; 2],
    /// Per writer and injected fault: ms to the first write acknowledged by another node (None
    /// when none came before the next fault).
    first: [Vec<Option<f64>>; 2],
    /// Ms during which two nodes acknowledged writes at once, and whether it happened at all.
    window: (f64, bool),
    /// Ms during which two pods answered `ROLE` as master, after the fault: (total, longest).
    two_masters: (f64, f64),
    /// Failovers of this pair after the fault.
    failovers: Vec<Seen>,
    /// Controller: the timelines of those failovers.
    timelines: Vec<Timeline>,
    /// Sentinel: [`MARKS`] after the first fault.
    marks: Vec<Option<f64>>,
    /// Per writer: acknowledged ids missing right after the cycle, and at the end of the fault.
    lost: [usize; 2],
    lost_final: [usize; 2],
    /// Per writer: ids in the list more than once; the same attempt more than once.
    dups: [usize; 2],
    same_attempt: [usize; 2],
    /// Controller killed mid-failover: kill → server exited, and restarted → answering.
    abort: Option<(f64, f64)>,
}

impl Cycle {
    fn first_ms(&self, w: usize) -> Vec<f64> {
        self.first[w].iter().flatten().copied().collect()
    }

    /// What writer `w` was told between the (first) fault and its first write on another
    /// node: each kind of error, how often, and when it was first seen (ms after the fault).
    fn stall(&self, w: usize) -> String {
        let start = self.injected[0].at;
        let end = self.first[w]
            .first()
            .copied()
            .flatten()
            .map_or(Duration::MAX, |m| Duration::from_secs_f64(m / 1000.0));
        let mut kinds: Vec<(String, usize, f64)> = Vec::new();
        for (at, e) in &self.logs[w].errors {
            let Some(d) = at.checked_duration_since(start).filter(|d| *d <= end) else {
                continue;
            };
            let verb = e.split_whitespace().next().unwrap_or_default();
            let tail = e.rsplit(": ").next().unwrap_or(e);
            let kind = if tail == e {
                e.clone()
            } else {
                format!("{verb} …: {tail}")
            };
            match kinds.iter_mut().find(|k| k.0 == kind) {
                Some(k) => k.1 += 1,
                None => kinds.push((kind, 1, ms(d))),
            }
        }
        kinds
            .iter()
            .map(|(k, n, d)| format!("`{k}` ×{n} from {d:.0} ms"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Reads `key` back from the master: (lost acknowledged ids, ids present more than once, the
/// same attempt present more than once).
fn check_list(
    c: &mut redis::Connection,
    key: &str,
    acks: &[Ack],
) -> Result<(usize, usize, usize), String> {
    let items: Vec<String> = redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query(c)
        .map_err(|e| format!("LRANGE {key}: {e}"))?;
    let mut per_id: HashMap<u64, usize> = HashMap::new();
    let mut per_attempt: HashMap<&str, usize> = HashMap::new();
    for it in &items {
        if let Some(id) = it.split('.').next().and_then(|i| i.parse().ok()) {
            *per_id.entry(id).or_default() += 1;
        }
        *per_attempt.entry(it.as_str()).or_default() += 1;
    }
    let lost = acks.iter().filter(|a| !per_id.contains_key(&a.id)).count();
    let dups = per_id.values().filter(|n| **n > 1).count();
    let same = per_attempt.values().filter(|n| **n > 1).count();
    Ok((lost, dups, same))
}

/// Ms from each fault to the first write another node acknowledged before the next fault.
fn first_acks(acks: &[Ack], injected: &[Injected], to: u32, from: u32) -> Vec<Option<f64>> {
    injected
        .iter()
        .enumerate()
        .map(|(k, f)| {
            let until = injected.get(k + 1).map(|n| n.at);
            acks.iter()
                .find(|a| {
                    a.at > f.at
                        && until.is_none_or(|u| a.at < u)
                        && if to == from && injected.len() == 1 {
                            // No failover: the master itself took writes again.
                            a.at > f.at + IN_FLIGHT
                        } else {
                            a.node != f.victim
                        }
                })
                .map(|a| ms(a.at - f.at))
        })
        .collect()
}

/// Runs of consecutive acknowledgements by one node per writer after `start`; the time two
/// runs of different nodes (from different writers) overlap, and whether any did.
fn two_nodes(logs: &[WriterLog; 2], start: Instant) -> (f64, bool) {
    let runs = |log: &WriterLog| {
        let mut out: Vec<(u32, Instant, Instant)> = Vec::new();
        for a in log.acks.iter().filter(|a| a.at > start) {
            match out.last_mut() {
                Some((n, _, end)) if *n == a.node => *end = a.at,
                _ => out.push((a.node, a.at, a.at)),
            }
        }
        out
    };
    let (r0, r1) = (runs(&logs[0]), runs(&logs[1]));
    let mut total = 0.0;
    let mut any = false;
    for (n0, s0, e0) in &r0 {
        for (n1, s1, e1) in &r1 {
            if n0 != n1 && s0.max(s1) <= e0.min(e1) {
                any = true;
                total += ms(*e0.min(e1) - *s0.max(s1));
            }
        }
    }
    (total, any)
}

/// The context of one setup's run.
struct Run<'a> {
    b: &'a Bench,
    spec: Spec,
    pairs: Vec<Pair>,
    counter: Counter,
    /// Round-robin over the sets with persistence.
    next_set: usize,
    /// Failovers outside any fault: between or before faults, or of a pair not under fault.
    outside: Vec<Seen>,
    cycles: Vec<Cycle>,
    quiet: Vec<(f64, usize)>,
    /// Cycles that could not finish, and why.
    failures: Vec<String>,
}

impl Run<'_> {
    /// The controller setups' writers follow `ROLE`; Sentinel's ask the sentinels (the
    /// monitor then only watches).
    fn finder(&self, monitor: &RoleMonitor) -> Finder {
        match self.spec.detector {
            Detector::Controller => Finder::Roles(monitor.roles.clone()),
            Detector::Sentinel => Finder::Sentinels,
        }
    }

    /// Ten seconds (the knob) of writing with no fault: every failover is spurious.
    fn quiet(&mut self, secs: u64) -> Result<(), String> {
        if secs == 0 {
            return Ok(());
        }
        let before = self.counter.take(self.b)?;
        self.outside.extend(before);
        let t = self.pairs[0].topo.clone();
        wait_settled(self.b, &t)?;
        let monitor = RoleMonitor::start(&t);
        let w = Writer::start(
            &t,
            self.finder(&monitor),
            format!("q:{}", self.quiet.len()),
            true,
        );
        sleep(Duration::from_secs(secs))?;
        let log = w.finish()?;
        drop(monitor);
        let seen = self.counter.take(self.b)?;
        eprintln!(
            "  quiet {secs} s: {} failovers, {} writes acknowledged",
            seen.len(),
            log.acks.len()
        );
        self.quiet.push((secs as f64, seen.len()));
        Ok(())
    }

    fn cycle(&mut self, fault: Fault, i: usize) -> Result<(), String> {
        let b = self.b;
        let p = if fault == Fault::NoPersist {
            self.pairs.len() - 1
        } else {
            let p = self.next_set % self.spec.sets;
            self.next_set += 1;
            p
        };
        let before = self.counter.take(b)?;
        self.outside.extend(before);
        if fault == Fault::Abort {
            restart_server(b, &[ABORT_ENV])?;
        }
        let t = &mut self.pairs[p].topo;
        let from = wait_settled(b, t)?;
        let pids = refresh(b, t)?;
        let t = t.clone();
        let monitor = RoleMonitor::start(&t);
        let keys = [
            format!("w:{}:{i}:plain", fault.key()),
            format!("w:{}:{i}:wait", fault.key()),
        ];
        let writers = [
            Writer::start(&t, self.finder(&monitor), keys[0].clone(), false),
            Writer::start(&t, self.finder(&monitor), keys[1].clone(), true),
        ];
        let deadline = Instant::now() + Duration::from_secs(10);
        while writers.iter().any(|w| w.node() != from) {
            if Instant::now() > deadline {
                return Err(format!(
                    "{}: the writers write to {:?}, the master is {from}",
                    t.scope,
                    writers.iter().map(Writer::node).collect::<Vec<_>>()
                ));
            }
            sleep(Duration::from_millis(10))?;
        }
        sleep(PRE_ROLL)?;
        let logs = t.sentinel_logs(b);
        let offsets = log_sizes(&logs);
        let mut injected = Vec::new();
        let mut abort = None;
        let now = |victim| Injected {
            at: Instant::now(),
            wall_ms: now_ms(),
            victim,
        };
        match fault {
            Fault::Kill | Fault::NoPersist | Fault::Abort => {
                injected.push(now(from));
                signal(pids[from as usize], libc::SIGKILL, "kill -9")?;
            }
            Fault::Hang => {
                injected.push(now(from));
                signal(pids[from as usize], libc::SIGSTOP, "SIGSTOP")?;
                let stopped = Stopped(pids[from as usize]);
                sleep(Duration::from_millis(self.spec.down_after) + HANG_EXTRA)?;
                drop(stopped);
            }
            Fault::Chain => {
                let mut victim = from;
                injected.push(now(victim));
                signal(pids[victim as usize], libc::SIGKILL, "kill -9")?;
                for _ in 1..fault.faults() {
                    let deadline = Instant::now() + FAILOVER_LIMIT;
                    let next = loop {
                        if let Some(m) = master_with_replica(&t, victim) {
                            break m;
                        }
                        if Instant::now() > deadline {
                            return Err(format!(
                                "{}: no new master with a replica within {FAILOVER_LIMIT:?} of killing {victim}",
                                t.scope
                            ));
                        }
                        sleep(Duration::from_millis(5))?;
                    };
                    let mut tt = t.clone();
                    let pids = refresh(b, &mut tt)?;
                    victim = next;
                    injected.push(now(victim));
                    signal(pids[victim as usize], libc::SIGKILL, "kill -9")?;
                }
            }
        }
        if fault == Fault::Abort {
            let killed = injected[0].at;
            while !server_exited(b) {
                if killed.elapsed() > FAILOVER_LIMIT {
                    return Err(format!(
                        "the controller did not abort within {FAILOVER_LIMIT:?} of the kill"
                    ));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let exited = killed.elapsed();
            b.spawn_server(&[])?;
            let spawned = Instant::now();
            b.wait_server()?;
            abort = Some((ms(exited), ms(spawned.elapsed())));
        }
        let last = injected.last().map_or_else(Instant::now, |f| f.at);
        let deadline = last + FAILOVER_LIMIT;
        while writers
            .iter()
            .any(|w| w.last_ack().is_none_or(|a| a < last + IN_FLIGHT))
        {
            if Instant::now() > deadline {
                return Err(format!(
                    "{}: the writers wrote nothing within {FAILOVER_LIMIT:?} of the fault (on {:?}){}",
                    t.scope,
                    writers.iter().map(Writer::node).collect::<Vec<_>>(),
                    if t.sentinels {
                        format!("; sentinel logs:\n{}", log_tails(&logs, 15))
                    } else {
                        String::new()
                    }
                ));
            }
            sleep(Duration::from_millis(10))?;
        }
        let to = wait_settled(b, &t)?;
        sleep(AFTER)?;
        let [w0, w1] = writers;
        let wlogs = [w0.finish()?, w1.finish()?];
        let start = injected[0].at;
        let two: Vec<f64> = monitor
            .finish()
            .into_iter()
            .filter(|(_, end)| *end > start)
            .map(|(b, e)| ms(e - b.max(start)))
            .filter(|d| *d > 2.0 * ms(ROLE_POLL))
            .collect();
        let two_masters = (
            two.iter().fold(0.0, |a, d| a + d),
            two.iter().copied().fold(0.0, f64::max),
        );
        let first = [
            first_acks(&wlogs[0].acks, &injected, to, from),
            first_acks(&wlogs[1].acks, &injected, to, from),
        ];
        let window = two_nodes(&wlogs, injected[0].at);
        let seen = self.counter.take(b)?;
        let fault_wall = injected[0].wall_ms;
        let (mine, other): (Vec<Seen>, Vec<Seen>) = seen
            .into_iter()
            .partition(|s| s.scope == t.scope && s.wall_ms.is_none_or(|w| w >= fault_wall - 50));
        self.outside.extend(other);
        let timelines = mine
            .iter()
            .filter_map(|s| timeline(s, fault_wall))
            .collect();
        let marks = if t.sentinels {
            marks(&logs, &offsets, fault_wall)
        } else {
            vec![]
        };
        let mut c = t.data(to)?;
        let mut lost = [0; 2];
        let mut dups = [0; 2];
        let mut same = [0; 2];
        for w in 0..2 {
            (lost[w], dups[w], same[w]) = check_list(&mut c, &keys[w], &wlogs[w].acks)?;
        }
        let cy = Cycle {
            fault,
            index: i,
            scope: t.scope.clone(),
            from,
            to,
            injected,
            logs: wlogs,
            keys,
            first,
            window,
            two_masters,
            failovers: mine,
            timelines,
            marks,
            lost,
            lost_final: lost,
            dups,
            same_attempt: same,
            abort,
        };
        eprintln!("  {}", describe(&cy));
        self.cycles.push(cy);
        Ok(())
    }

    /// After a fault's cycles: every list read again from its pair's master now (a later
    /// failover may have lost what an earlier one kept), then deleted.
    fn recheck(&mut self, fault: Fault) -> Result<(), String> {
        let mut masters: HashMap<String, u32> = HashMap::new();
        for p in &self.pairs {
            masters.insert(p.topo.scope.clone(), wait_settled(self.b, &p.topo)?);
        }
        for cy in self.cycles.iter_mut().filter(|c| c.fault == fault) {
            let pair = self
                .pairs
                .iter()
                .find(|p| p.topo.scope == cy.scope)
                .ok_or("no pair")?;
            let mut c = pair.topo.data(masters[&cy.scope])?;
            for w in 0..2 {
                cy.lost_final[w] = check_list(&mut c, &cy.keys[w], &cy.logs[w].acks)?.0;
                if cy.lost_final[w] > cy.lost[w] {
                    eprintln!(
                        "  {} cycle {} on {}: {} acknowledged writes ({}) gone since the cycle ended",
                        fault.key(),
                        cy.index,
                        cy.scope,
                        cy.lost_final[w] - cy.lost[w],
                        if w == 1 { "WAIT" } else { "no WAIT" }
                    );
                }
                let _: i64 = redis::cmd("DEL")
                    .arg(&cy.keys[w])
                    .query(&mut c)
                    .map_err(|e| format!("DEL: {e}"))?;
            }
        }
        Ok(())
    }
}

fn describe(c: &Cycle) -> String {
    let f = |v: &[Option<f64>]| {
        v.iter()
            .map(|x| x.map_or("-".into(), |x| format!("{x:.0}")))
            .collect::<Vec<_>>()
            .join("/")
    };
    let tl = c
        .timelines
        .iter()
        .map(|t| {
            format!(
                "zero {:.0}, acted +{:.0}, promoted +{:.0}, bucket +{:.0}",
                t.zero, t.acted, t.promoted, t.bucket
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "{} {}: {}→{} first ack {} ms (WAIT {} ms); lost {}/{}, dups {}/{}, two nodes {:.0} ms{}, two masters {:.0} ms; {} failovers{}{}{}",
        c.fault.key(),
        c.scope,
        c.from,
        c.to,
        f(&c.first[0]),
        f(&c.first[1]),
        c.lost[1],
        c.lost[0],
        c.dups[1],
        c.dups[0],
        c.window.0,
        if c.window.1 { " (overlap)" } else { "" },
        c.two_masters.0,
        c.failovers.len(),
        if tl.is_empty() { String::new() } else { format!(" [{tl}]") },
        if c.first[0].first().copied().flatten().is_some_and(|m| m > 50.0) {
            format!("; stall: {}", c.stall(0))
        } else {
            String::new()
        },
        c.abort
            .map(|(e, r)| format!("; controller exited {e:.0} ms after the kill, restarted in {r:.0} ms"))
            .unwrap_or_default()
    )
}

// ---------------------------------------------------------------- a setup

struct SetupResult {
    spec: Spec,
    apply: f64,
    took: Duration,
    cycles: Vec<Cycle>,
    quiet: Vec<(f64, usize)>,
    outside: Vec<Seen>,
    failures: Vec<String>,
}

fn setup(b: &Bench, spec: &Spec, quiet_secs: u64) -> Result<SetupResult, String> {
    let started = Instant::now();
    let file = b.write(&format!("{}.hcl", spec.key), &manifest(spec))?;
    eprintln!(
        "{}: {} sets + 1 without persistence; cycles {}",
        spec.label(),
        spec.sets,
        FAULTS
            .iter()
            .map(|f| format!("{} {}", f.key(), spec.count(*f)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let t0 = Instant::now();
    b.vd(&["apply", "-f", &file, "--timeout", "300s"])?;
    let apply = t0.elapsed().as_secs_f64();
    let mut scopes: Vec<String> = (0..spec.sets).map(|i| spec.scope(i)).collect();
    scopes.push(spec.nopersist_scope());
    let mut pairs = Vec::new();
    for s in &scopes {
        let topo = Topo::load(b, s, spec.detector == Detector::Sentinel)?;
        wait_settled(b, &topo)?;
        if topo.sentinels {
            check_overrides(&topo, spec.down_after)?;
        }
        pairs.push(Pair { topo });
    }
    eprintln!(
        "  applied in {apply:.1} s, settled after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let counter = Counter::new(b, spec, &pairs);
    let mut run = Run {
        b,
        spec: spec.clone(),
        pairs,
        counter,
        next_set: 0,
        outside: Vec::new(),
        cycles: Vec::new(),
        quiet: Vec::new(),
        failures: Vec::new(),
    };
    let result = (|| {
        run.quiet(quiet_secs)?;
        for fault in FAULTS {
            let n = spec.count(fault);
            if n == 0 {
                continue;
            }
            let t = Instant::now();
            let mut failed_in_a_row = 0;
            for i in 0..n {
                let Err(e) = run.cycle(fault, i) else {
                    failed_in_a_row = 0;
                    continue;
                };
                if e == "interrupted" {
                    return Err(e);
                }
                // Recorded, and the run goes on: one wedged cycle must not lose the others.
                eprintln!("  {} cycle {i} FAILED: {e}", fault.key());
                run.failures.push(format!(
                    "{} cycle {i}: {}",
                    fault.label(),
                    e.lines().next().unwrap_or_default()
                ));
                if fault == Fault::Abort || server_exited(b) {
                    restart_server(b, &[])?;
                }
                failed_in_a_row += 1;
                if failed_in_a_row >= 3 {
                    return Err(format!(
                        "{}: 3 cycles in a row failed; the last: {e}",
                        fault.key()
                    ));
                }
            }
            run.recheck(fault)?;
            eprintln!(
                "  {} done: {n} cycles in {:.0} s",
                fault.key(),
                t.elapsed().as_secs_f64()
            );
        }
        run.quiet(quiet_secs)?;
        let rest = run.counter.take(b)?;
        run.outside.extend(rest);
        Ok::<(), String>(())
    })();
    result?;
    for s in &scopes {
        teardown(b, s, &resources(spec, s));
    }
    Ok(SetupResult {
        spec: spec.clone(),
        apply,
        took: started.elapsed(),
        cycles: run.cycles,
        quiet: run.quiet,
        outside: run.outside,
        failures: run.failures,
    })
}

fn run(b: &Bench) -> Result<String, String> {
    let started = Instant::now();
    let quiet = env_num("VD_BENCH_FAILOVER_QUIET_SECS", 10) as u64;
    eprintln!("vd: {}\nroot: {}", b.bin.display(), b.root().display());
    let load_before = load_average();
    let mut results = Vec::new();
    for spec in specs() {
        results.push(setup(b, &spec, quiet)?);
    }
    let report = section(
        &results,
        quiet,
        started.elapsed(),
        (load_before, load_average()),
    );
    if std::env::var("VD_BENCH_FAILOVER_DOCS").as_deref() != Ok("0") {
        append_to_docs(&report)?;
    }
    Ok(report)
}

// ---------------------------------------------------------------- the report

/// p50 / p99 / max, nearest rank.
fn dist(v: Vec<f64>) -> (f64, f64, f64) {
    let s = sorted(v);
    (
        percentile(&s, 50.0),
        percentile(&s, 99.0),
        s.last().copied().unwrap_or(f64::NAN),
    )
}

fn fmt_dist(v: Vec<f64>) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let (a, b, c) = dist(v);
    format!("{a:.0} / {b:.0} / {c:.0} ms")
}

fn verdict(value: f64, goal: f64) -> String {
    if value.is_nan() {
        "not measured".into()
    } else if value <= goal {
        "met".into()
    } else {
        format!("**missed by {:.0} ms**", value - goal)
    }
}

impl SetupResult {
    fn of(&self, f: Fault) -> Vec<&Cycle> {
        self.cycles.iter().filter(|c| c.fault == f).collect()
    }

    fn first(&self, f: Fault, w: usize) -> Vec<f64> {
        self.of(f).iter().flat_map(|c| c.first_ms(w)).collect()
    }

    fn excess(&self, f: Fault) -> usize {
        self.of(f)
            .iter()
            .map(|c| c.failovers.len().saturating_sub(f.faults()))
            .sum()
    }

    fn spurious(&self) -> usize {
        FAULTS.iter().map(|f| self.excess(*f)).sum::<usize>()
            + self.outside.len()
            + self.quiet.iter().map(|q| q.1).sum::<usize>()
    }

    fn lost(&self, f: Option<Fault>, w: usize) -> (usize, usize) {
        let cs: Vec<&Cycle> = self
            .cycles
            .iter()
            .filter(|c| f.is_none_or(|f| c.fault == f))
            .collect();
        (
            cs.iter().map(|c| c.lost_final[w].max(c.lost[w])).sum(),
            cs.iter().map(|c| c.logs[w].acks.len()).sum(),
        )
    }
}

fn section(results: &[SetupResult], quiet: u64, took: Duration, load: (String, String)) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Controller automatic failover vs Sentinel: consistency and timing"
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "- Date: {}", utc_now());
    let _ = writeln!(
        s,
        "- Machine: {}, redis-server {} (also run as redis-sentinel)",
        machine(),
        redis_version()
    );
    let _ = writeln!(
        s,
        "- Command: `{COMMAND}` (as root, after `cargo build --release -p vd-cli`); the whole run took {:.1} min; load average before / after: {} / {}",
        took.as_secs_f64() / 60.0,
        load.0,
        load.1
    );
    for r in results {
        let _ = writeln!(
            s,
            "- {}: {} data redis with persistence (cycles rotate over them) + 1 without; cycles: {}; applied in {:.1} s, setup done in {:.1} min",
            r.spec.label(),
            r.spec.sets,
            FAULTS
                .iter()
                .filter(|f| r.spec.count(**f) > 0)
                .map(|f| format!("{} {}", f.key(), r.spec.count(*f)))
                .collect::<Vec<_>>()
                .join(", "),
            r.apply,
            r.took.as_secs_f64() / 60.0
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| Setup | Fault | faults | fault → first acknowledged write, no WAIT: p50 / p99 / max | with `WAIT 1 {WAIT_MS}`: p50 / p99 / max | acknowledged writes lost, WAIT | lost, no WAIT | duplicated ids (WAIT / no WAIT) | two nodes accepting writes | two pods answering `ROLE` master | failovers (expected) | spurious |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        for f in FAULTS {
            let cs = r.of(f);
            if cs.is_empty() {
                continue;
            }
            let (lw, aw) = r.lost(Some(f), 1);
            let (lp, ap) = r.lost(Some(f), 0);
            let overlaps = cs.iter().filter(|c| c.window.1).count();
            let wmax = cs.iter().map(|c| c.window.0).fold(0.0, f64::max);
            let missing: usize = cs
                .iter()
                .map(|c| c.first[0].iter().filter(|x| x.is_none()).count())
                .sum();
            let _ = writeln!(
                s,
                "| {} | {} | {}{} | {} | {} | {lw} of {aw} | {lp} of {ap} | {} / {} | {} | {} | {} ({}) | {} |",
                r.spec.label(),
                f.label(),
                cs.len() * f.faults(),
                if missing > 0 {
                    format!(" ({missing} without a write before the next kill)")
                } else {
                    String::new()
                },
                fmt_dist(r.first(f, 0)),
                fmt_dist(r.first(f, 1)),
                cs.iter().map(|c| c.dups[1]).sum::<usize>(),
                cs.iter().map(|c| c.dups[0]).sum::<usize>(),
                if overlaps == 0 {
                    "none".to_string()
                } else {
                    format!("{overlaps} cycles, max {wmax:.0} ms")
                },
                {
                    let n = cs.iter().filter(|c| c.two_masters.0 > 0.0).count();
                    let m = cs.iter().map(|c| c.two_masters.1).fold(0.0, f64::max);
                    if n == 0 {
                        "none".to_string()
                    } else {
                        format!("{n} cycles, longest {m:.0} ms")
                    }
                },
                cs.iter().map(|c| c.failovers.len()).sum::<usize>(),
                cs.len() * f.faults(),
                r.excess(f)
            );
        }
        let _ = writeln!(
            s,
            "| {} | quiet, {} × {quiet} s, no fault | | | | | | | | | {} (0) | {} |",
            r.spec.label(),
            r.quiet.len(),
            r.quiet.iter().map(|q| q.1).sum::<usize>(),
            r.quiet.iter().map(|q| q.1).sum::<usize>()
        );
        if !r.outside.is_empty() {
            let _ = writeln!(
                s,
                "| {} | outside any fault (between cycles, other sets) | | | | | | | | | {} (0) | {} |",
                r.spec.label(),
                r.outside.len(),
                r.outside.len()
            );
        }
    }
    let _ = writeln!(s);

    // ----- targets
    let _ = writeln!(
        s,
        "Targets (the no-WAIT writer's first write; a crash is the plain `kill -9` fault):"
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| Target | {} | verdict (controller) |",
        results
            .iter()
            .map(|r| r.spec.label())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(s, "|---|{}---|", "---|".repeat(results.len()));
    let ctl = results
        .iter()
        .find(|r| r.spec.detector == Detector::Controller);
    let row = |s: &mut String,
               name: &str,
               val: &dyn Fn(&SetupResult) -> f64,
               fmt: &dyn Fn(f64) -> String,
               goal: &dyn Fn(&SetupResult) -> f64| {
        let cols: Vec<String> = results.iter().map(|r| fmt(val(r))).collect();
        let v = ctl.map_or("no controller setup".to_string(), |c| {
            verdict(val(c), goal(c))
        });
        let _ = writeln!(s, "| {name} | {} | {v} |", cols.join(" | "));
    };
    let p = |r: &SetupResult, f: Fault, q: f64| percentile(&sorted(r.first(f, 0)), q);
    let msf = |v: f64| {
        if v.is_nan() {
            "-".into()
        } else {
            format!("{v:.0} ms")
        }
    };
    row(
        &mut s,
        &format!("crash → first acknowledged write, p50 ≤ {CRASH_P50_MS:.0} ms"),
        &|r| p(r, Fault::Kill, 50.0),
        &msf,
        &|_| CRASH_P50_MS,
    );
    row(
        &mut s,
        &format!("crash → first acknowledged write, p99 ≤ {CRASH_P99_MS:.0} ms"),
        &|r| p(r, Fault::Kill, 99.0),
        &msf,
        &|_| CRASH_P99_MS,
    );
    row(
        &mut s,
        &format!("hang → first acknowledged write, p99 ≤ down_after + {HANG_EXTRA_MS:.0} ms ({} ms for the controller)", DOWN_AFTER_MS as f64 + HANG_EXTRA_MS),
        &|r| p(r, Fault::Hang, 99.0),
        &msf,
        &|r| r.spec.down_after as f64 + HANG_EXTRA_MS,
    );
    row(
        &mut s,
        "acknowledged writes lost with WAIT, all faults = 0",
        &|r| r.lost(None, 1).0 as f64,
        &|v| format!("{v:.0}"),
        &|_| 0.0,
    );
    row(
        &mut s,
        "spurious failovers = 0",
        &|r| r.spurious() as f64,
        &|v| format!("{v:.0}"),
        &|_| 0.0,
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "(For the two count rows a miss is by that many writes or failovers, not ms.)"
    );
    let _ = writeln!(s);

    // ----- timelines
    if let Some(c) = ctl {
        let _ = writeln!(
            s,
            "Where the controller's time goes, from its `Failover` events (p50 over the failovers of each fault; ms after the fault; \"zero\" is the event's own zero: when the runtime reported the master's exit, or for a hang the tick that decided, for an aborted controller the restarted one's tick):"
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| Fault | failovers | zero | acted | epoch stored | promoted | re-pointed | `REDIS_MASTER_ORDINAL` | consumers | first write (no WAIT) | promoted → first write |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
        for f in FAULTS {
            let cs = c.of(f);
            let tls: Vec<(Timeline, Option<f64>)> = cs
                .iter()
                .flat_map(|cy| {
                    cy.timelines.iter().enumerate().map(move |(k, t)| {
                        // A chain's k-th failover belongs to its k-th kill; its zero is
                        // relative to the first kill.
                        let base = cy
                            .injected
                            .get(k)
                            .map_or(0.0, |i| (i.wall_ms - cy.injected[0].wall_ms) as f64);
                        let mut t = *t;
                        t.zero -= base;
                        (t, cy.first[0].get(k).copied().flatten())
                    })
                })
                .collect();
            if tls.is_empty() {
                continue;
            }
            let med =
                |g: &dyn Fn(&Timeline) -> f64| p50_max(tls.iter().map(|(t, _)| g(t)).collect()).0;
            let abs = |g: &dyn Fn(&Timeline) -> f64| format!("{:.0}", med(&|t| t.zero + g(t)));
            let fw: Vec<f64> = tls.iter().filter_map(|(_, w)| *w).collect();
            let pw: Vec<f64> = tls
                .iter()
                .filter_map(|(t, w)| w.map(|w| w - (t.zero + t.promoted)))
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} |",
                f.label(),
                tls.len(),
                med(&|t| t.zero),
                abs(&|t| t.acted),
                abs(&|t| t.stored),
                abs(&|t| t.promoted),
                abs(&|t| t.repointed),
                abs(&|t| t.bucket),
                abs(&|t| t.consumers),
                p50_max(fw).0,
                p50_max(pw).0
            );
        }
        let _ = writeln!(s);
        let kills = c.of(Fault::Kill);
        let mut slow: Vec<&&Cycle> = kills.iter().collect();
        slow.sort_by(|a, b| {
            b.first[0][0]
                .unwrap_or(f64::MAX)
                .total_cmp(&a.first[0][0].unwrap_or(f64::MAX))
        });
        let _ = writeln!(
            s,
            "- Controller, the five slowest `kill -9` cycles (first write ms; the event's zero, acted, promoted, bucket; what the no-WAIT writer was told until then): {}",
            slow.iter()
                .take(5)
                .map(|c| format!(
                    "{} ({}; {})",
                    c.first[0][0].map_or("-".into(), |x| format!("{x:.0}")),
                    c.stall(0),
                    c.timelines
                        .iter()
                        .map(|t| format!(
                            "{:.0}, +{:.0}, +{:.0}, +{:.0}",
                            t.zero, t.acted, t.promoted, t.bucket
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let _ = writeln!(
            s,
            "- Controller, `kill -9` first writes (ms), all: {}",
            sorted(c.first(Fault::Kill, 0))
                .iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let aborts = c.of(Fault::Abort);
        if !aborts.is_empty() {
            let _ = writeln!(
                s,
                "- Controller killed mid-failover: kill → the controller aborted (after storing the failover) {}; restarted server answering {} after its start (p50 / max)",
                {
                    let (a, m) = p50_max(aborts.iter().filter_map(|c| c.abort.map(|x| x.0)).collect());
                    format!("{a:.0} / {m:.0} ms")
                },
                {
                    let (a, m) = p50_max(aborts.iter().filter_map(|c| c.abort.map(|x| x.1)).collect());
                    format!("{a:.0} / {m:.0} ms")
                }
            );
        }
        let _ = writeln!(s);
    }
    let sentinels: Vec<&SetupResult> = results
        .iter()
        .filter(|r| r.spec.detector == Detector::Sentinel)
        .collect();
    if !sentinels.is_empty() {
        let _ = writeln!(
            s,
            "Where Sentinel's time goes: the first of the three sentinels to log each line, ms after the (first) fault, p50:"
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| Setup | Fault | {} | first write (no WAIT) |",
            MARKS
                .iter()
                .map(|(_, l)| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(s, "|---|---|{}---|", "---|".repeat(MARKS.len()));
        for r in &sentinels {
            for f in FAULTS {
                let cs = r.of(f);
                if cs.is_empty() {
                    continue;
                }
                let cols: Vec<String> = (0..MARKS.len())
                    .map(|i| {
                        let v: Vec<f64> = cs
                            .iter()
                            .filter_map(|c| c.marks.get(i).copied().flatten())
                            .collect();
                        if v.is_empty() {
                            "-".into()
                        } else {
                            format!("{:.0}", p50_max(v).0)
                        }
                    })
                    .collect();
                let fw: Vec<f64> = cs
                    .iter()
                    .filter_map(|c| c.first[0].first().copied().flatten())
                    .collect();
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} |",
                    r.spec.label(),
                    f.label(),
                    cols.join(" | "),
                    if fw.is_empty() {
                        "-".into()
                    } else {
                        format!("{:.0}", p50_max(fw).0)
                    }
                );
            }
        }
        let _ = writeln!(s);
    }

    // ----- how
    let _ = writeln!(s, "How it is measured:");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "- One `vd server` (temporary root, process runtime, pods on their own loopback addresses) runs the three setups one after the other; each is deleted before the next starts. A setup is `sets` identical data redis `redis \"<setup>-<n>\" \"cache\" {{ replicas = 3 }}` (readiness `exec redis-cli ping` every 300ms, liveness `tcp_socket` every 2s; the controller's with `failover {{ automatic = true  down_after = \"{DOWN_AFTER_MS}ms\" }}`, the baseline's with the sentinel sibling of the sentinel benchmark: 3 sentinels, quorum 2, `down-after-milliseconds` and `failover-timeout {}` from a mounted override file), plus one more with persistence off (an asset mounted at /etc/redis/conf.d/nopersist.conf: `save \"\"`, `appendonly no`) for that fault. The fault cycles rotate over the sets because the runtime restarts a crashed pod after a backoff that doubles (1, 2, 4 … s) while it keeps crashing within 30 s of its start; the measured failover does not depend on it, only how long a cycle waits for the killed pod to rejoin.",
        ha::FAILOVER_TIMEOUT_MS
    );
    let _ = writeln!(
        s,
        "- Two writer threads per cycle (`redis` crate, sync API, {} ms timeouts) RPUSH `<id>.<attempt>` to their own list, one write every {} ms: one acknowledges a write only when `WAIT 1 {WAIT_MS}` returns ≥ 1 (a WAIT that times out is repeated up to {WAIT_TRIES} times; the write is on the master already), the other acknowledges on the RPUSH reply. The controller setups' writers follow the pod that answers `ROLE` as master (each pod asked every {} ms, a pod that refuses or does not answer is dropped at once; the lowest ordinal if two say so, avoiding the pod just failed on); the baseline's ask `SENTINEL GET-MASTER-ADDR-BY-NAME` (the next sentinel each attempt). After an error a writer waits {} ms, finds the master and sends the same id again with the next attempt number.",
        WRITER_TIMEOUT.as_millis(),
        WRITE_INTERVAL.as_millis(),
        ROLE_POLL.as_millis(),
        RETRY.as_millis()
    );
    let _ = writeln!(
        s,
        "- A cycle: wait until the set has settled (one master, both others replicating from it with `master_link_status:up`, the sentinels healthy and agreeing, `REDIS_MASTER_ORDINAL` naming it), start both writers, {} ms of writes, the fault; wait until both writers write again and the set has settled, write {} s more, read both lists back from the master. Faults: `kill -9` of the master pod's pid; SIGSTOP of it for down_after + {} s, then SIGCONT; controller killed mid-failover: the server runs with `VD_TEST_FAULT=abort-after-failover-stored` (it aborts right after writing the failover's epoch and target to the store), the master is killed, and as soon as the server has exited the benchmark starts it again without the variable (what a supervisor with immediate restart would do); chained: the master is killed, then each new master as soon as a replica follows it with the link up, three kills; persistence off: `kill -9` of such a master.",
        PRE_ROLL.as_millis(),
        AFTER.as_secs(),
        HANG_EXTRA.as_secs()
    );
    let _ = writeln!(
        s,
        "- Fault → first acknowledged write: to the first write acknowledged by a node other than the faulted one (for a chain, per kill, before the next kill). Lost: acknowledged ids missing from the list on the master after the cycle, or after the fault's last cycle (a later failover can lose what an earlier one kept); the larger count. Duplicated: ids in the list more than once (a write whose reply was lost, sent again); the same `<id>.<attempt>` twice would be a duplicate made by replication: {} in the whole run. Two nodes accepting writes: the two writers' runs of consecutive acknowledgements by one node, after the fault; a run on one node overlapping the other writer's run on another node (it sees only where the writers were: two masters both taking writes from them). Two pods answering `ROLE` master: every pod is asked `ROLE` every {} ms through the cycle (in every setup); the time after the fault during which two of them said master (an answer counts for {} ms; windows of {} ms or less are within the polling resolution and not counted; a master with no replica refuses writes under `min-replicas-to-write 1`, which vd sets in both HA modes).",
        results
            .iter()
            .flat_map(|r| r.cycles.iter())
            .map(|c| c.same_attempt[0] + c.same_attempt[1])
            .sum::<usize>(),
        ROLE_POLL.as_millis(),
        ROLE_FRESH.as_millis(),
        2 * ROLE_POLL.as_millis()
    );
    let _ = writeln!(
        s,
        "- Failovers: the controller's `Failover` events; for Sentinel the `+switch-master` lines (the sentinel log with the most). Expected: one per fault (three per chain). Spurious: more than that in a cycle, any during the {quiet} s quiet periods (at the start and the end of each setup, WAIT writer running), and any outside a fault (between cycles, or of a set not under fault)."
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "Per setup and fault:");
    let _ = writeln!(s);
    for r in results {
        for f in FAULTS {
            let cs = r.of(f);
            if cs.is_empty() {
                continue;
            }
            let errors: Vec<usize> = cs
                .iter()
                .map(|c| {
                    c.logs[0]
                        .errors
                        .iter()
                        .filter(|(at, _)| *at > c.injected[0].at)
                        .count()
                })
                .collect();
            let wt: usize = cs.iter().map(|c| c.logs[1].wait_timeouts).sum();
            let to_same = cs.iter().filter(|c| c.to == c.from).count();
            let mut errs: Vec<String> = Vec::new();
            for c in &cs {
                for (at, e) in &c.logs[0].errors {
                    let short: String = e.chars().take(120).collect();
                    let kind = short
                        .split_once(": ")
                        .map(|(_, k)| k.to_string())
                        .unwrap_or(short.clone());
                    if *at > c.injected[0].at
                        && errs.len() < 3
                        && !errs.iter().any(|x| x.ends_with(&kind))
                    {
                        errs.push(short);
                    }
                }
            }
            let _ = writeln!(
                s,
                "- {}, {}: writer errors after the fault p50 {:.0} per cycle; WAIT timeouts {wt}; cycles that ended on the faulted node {to_same}; first errors: {}",
                r.spec.label(),
                f.label(),
                p50_max(errors.iter().map(|e| *e as f64).collect()).0,
                errs.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
            );
        }
        let lossy: Vec<String> = r
            .cycles
            .iter()
            .filter(|c| (0..2).any(|w| c.lost_final[w].max(c.lost[w]) > 0))
            .map(|c| {
                format!(
                    "{} #{} on {} ({}→{}): WAIT {} right after the cycle, {} after the fault's last cycle; no WAIT {} / {}",
                    c.fault.key(),
                    c.index,
                    c.scope,
                    c.from,
                    c.to,
                    c.lost[1],
                    c.lost_final[1],
                    c.lost[0],
                    c.lost_final[0]
                )
            })
            .collect();
        if !lossy.is_empty() {
            let _ = writeln!(
                s,
                "- {}: cycles with lost acknowledged writes: {}",
                r.spec.label(),
                lossy.join("; ")
            );
        }
        if !r.failures.is_empty() {
            let _ = writeln!(
                s,
                "- {}: **cycles that failed** (not in the tables): {}",
                r.spec.label(),
                r.failures
                    .iter()
                    .map(|f| format!("`{}`", f.chars().take(300).collect::<String>()))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        if !r.outside.is_empty() {
            let _ = writeln!(
                s,
                "- {}: failovers outside a fault: {}",
                r.spec.label(),
                r.outside
                    .iter()
                    .map(|o| format!(
                        "{}: `{}`",
                        o.scope,
                        o.message.chars().take(200).collect::<String>()
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
    }
    s
}
