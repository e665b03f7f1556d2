//! Sentinel failover benchmark: how long after a master is killed (`kill -9`) a
//! sentinel-aware client writes again, and how long until `vd` records the new master, with
//! Sentinel's `down-after-milliseconds` at the default 5000 and at 1000.
//!
//! Run with `cargo bench -p vd-cli --bench sentinel` after `cargo build --release -p vd-cli`.
//! It drives the release `vd` binary (or `VD_BIN`) against a `vd server` on a temporary root,
//! needs root (the process runtime), `redis-server` and `redis-sentinel`, prints a markdown
//! section and appends it to docs/benchmarks.md. Tests never assert on speed; this program only
//! measures and reports.
//!
//! For each setting it applies a 3-pod data redis and a 3-sentinel sibling (the sentinel HA
//! pair; the settings come from an override file mounted at /etc/sentinel/conf.d/), waits
//! until the sentinels are healthy, then runs cycles. In each cycle a writer thread on the host
//! SETs increasing ids to the master, finding it the way a sentinel-aware client does
//! (`SENTINEL GET-MASTER-ADDR-BY-NAME` on the sentinels, asked in turn; the pod name it returns
//! is mapped to the pod's IP, since pod names resolve only inside pods). The benchmark kills
//! the master pod's process with SIGKILL and records the time from the kill to the first write
//! acknowledged by another node, and to `REDIS_MASTER_ORDINAL` changing in the bucket. Before
//! the next cycle it waits until there is one master, the other pods replicate from it, the
//! sentinels are healthy and agree, and the bucket names it; each cycle kills the current
//! master, never the pod the cycle before killed. At the end the acknowledged ids are read back
//! from the final master: a missing one is a lost write (the writer does not use `WAIT`).
//!
//! Knobs (environment): `VD_BENCH_SENTINEL_RUNS` (cycles per setting, default 5),
//! `VD_BENCH_SENTINEL_DOCS=0` (print only; do not append to docs/benchmarks.md).

mod common;
#[path = "common/ha.rs"]
mod ha;

use common::{env_num, machine, ms, now_ms, percentile, sleep, sorted, utc_now, Bench, Setup};
use ha::{
    append_to_docs, ask_sentinel, bucket_master, check_overrides, host, load_average, log_sizes,
    log_tails, marks, p50_max, redis_version, refresh, sentinel_pair, teardown, wait_settled, Topo,
    DATA, FAILOVER_TIMEOUT_MS, MARKS, MASTER_NAME, SENTINEL,
};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const COMMAND: &str = "cargo bench -p vd-cli --bench sentinel";
/// `down-after-milliseconds` of each setting: Sentinel's default, then the tuned 1000 ms of
/// the documented sentinel-overrides example.
const SETTINGS: [u64; 2] = [5000, 1000];
/// What the election and promotion add to `down-after-milliseconds` (the anchor).
const ANCHOR_EXTRA_MS: u64 = 1000;
/// The writer's connect and I/O timeout, for the master and the sentinels.
const WRITER_TIMEOUT: Duration = Duration::from_millis(300);
/// Between the writer's attempts after an error.
const RETRY: Duration = Duration::from_millis(2);
/// Between acknowledged writes (a steady client, not a flood that would starve the sentinels
/// of this machine's CPU).
const WRITE_INTERVAL: Duration = Duration::from_millis(1);
/// Writes to the master before the kill, at least.
const PRE_ROLL: Duration = Duration::from_millis(500);
/// Writing continues this long after the new master took writes and the bucket changed.
const AFTER: Duration = Duration::from_secs(1);
const BUCKET_POLL: Duration = Duration::from_millis(20);
const FAILOVER_LIMIT: Duration = Duration::from_secs(60);

fn main() {
    common::main(
        &Setup {
            prefix: "vd-bench-sentinel-",
            programs: &["redis-server", "redis-sentinel", "redis-cli"],
            packages: "redis-server redis-sentinel redis-tools",
            shutdown_limit: Duration::from_secs(60),
        },
        run,
    );
}

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
}

/// What the benchmark watches while the writer runs.
struct Shared {
    stop: AtomicBool,
    acked: AtomicU64,
    /// The node of the last acknowledged write (`u32::MAX` before the first).
    node: AtomicU32,
}

/// A writer thread; dropping it stops and joins the thread.
struct Writer {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<WriterLog>>,
}

impl Writer {
    fn start(t: &Topo, cycle: usize) -> Writer {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            acked: AtomicU64::new(0),
            node: AtomicU32::new(u32::MAX),
        });
        let (t, s) = (t.clone(), shared.clone());
        let handle = std::thread::spawn(move || write_loop(&t, cycle, &s));
        Writer {
            shared,
            handle: Some(handle),
        }
    }

    fn acked(&self) -> u64 {
        self.shared.acked.load(Ordering::SeqCst)
    }

    fn node(&self) -> u32 {
        self.shared.node.load(Ordering::SeqCst)
    }

    fn finish(mut self) -> Result<WriterLog, String> {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .map(|h| h.join().map_err(|_| "the writer panicked".to_string()))
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

/// The key of write `id` in cycle `cycle`.
fn key(cycle: usize, id: u64) -> String {
    format!("w:{cycle}:{id}")
}

/// SETs increasing ids to the master. Without a connection to it, it asks the sentinels (the
/// next one in turn at each attempt) for the master's name and connects to that pod's IP;
/// on any error it drops the connection and starts over, 2 ms later.
fn write_loop(t: &Topo, cycle: usize, s: &Shared) -> WriterLog {
    let mut log = WriterLog::default();
    let mut sentinels: Vec<Option<redis::Connection>> =
        t.sentinel_ips.iter().map(|_| None).collect();
    let mut next = 0;
    let mut master: Option<(u32, redis::Connection)> = None;
    let mut id = 0u64;
    while !s.stop.load(Ordering::SeqCst) {
        let Some((node, conn)) = master.as_mut() else {
            let o = next % sentinels.len();
            next += 1;
            let found = ask_sentinel(t, o, &mut sentinels[o], WRITER_TIMEOUT)
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
        match redis::cmd("SET")
            .arg(key(cycle, id))
            .arg(id)
            .query::<()>(conn)
        {
            Ok(()) => {
                log.acks.push(Ack {
                    id,
                    node: *node,
                    at: Instant::now(),
                });
                s.node.store(*node, Ordering::SeqCst);
                id += 1;
                s.acked.store(id, Ordering::SeqCst);
                std::thread::sleep(WRITE_INTERVAL);
            }
            Err(e) => {
                log.errors.push((
                    Instant::now(),
                    format!("SET on {}: {e}", host(&t.scope, *node)),
                ));
                master = None;
                std::thread::sleep(RETRY);
            }
        }
    }
    log
}

/// One killed master.
struct Cycle {
    from: u32,
    /// The node that acknowledged the first write after the kill.
    to: u32,
    /// The ordinal the bucket changed to.
    bucket_to: u32,
    killed: Instant,
    first_write: Duration,
    bucket: Duration,
    /// How long one `vd config get` poll took (p50), the bucket time's resolution.
    poll: Duration,
    acks: Vec<Ack>,
    /// Writes the old master acknowledged after the kill (in flight at the kill).
    old_after_kill: usize,
    errors: usize,
    /// The first distinct errors the writer saw after the kill.
    first_errors: Vec<String>,
    marks: Vec<Option<f64>>,
    lost: usize,
    /// The lost writes' acknowledgements, ms before the kill: (latest, earliest).
    lost_span: Option<(f64, f64)>,
}

fn cycle(b: &Bench, t: &mut Topo, i: usize) -> Result<Cycle, String> {
    let from = wait_settled(b, t)?;
    let pids = refresh(b, t)?;
    let pid = pids[from as usize];
    if pid <= 1 {
        return Err(format!("no pid for the master {}", host(&t.scope, from)));
    }
    let writer = Writer::start(t, i);
    let deadline = Instant::now() + Duration::from_secs(10);
    while writer.acked() == 0 {
        if Instant::now() > deadline {
            drop(writer);
            return Err("the writer acknowledged no write within 10 s".into());
        }
        sleep(Duration::from_millis(10))?;
    }
    sleep(PRE_ROLL)?;
    if writer.node() != from {
        return Err(format!(
            "the writer writes to {}, the master is {}",
            host(&t.scope, writer.node()),
            host(&t.scope, from)
        ));
    }
    let logs = t.sentinel_logs(b);
    let offsets = log_sizes(&logs);
    let kill_wall_ms = now_ms();
    let killed = Instant::now();
    let victim = nix::unistd::Pid::from_raw(pid as libc::pid_t);
    if let Err(e) = nix::sys::signal::kill(victim, nix::sys::signal::Signal::SIGKILL) {
        return Err(format!("kill -9 {pid}: {}", std::io::Error::from(e)));
    }
    let deadline = killed + FAILOVER_LIMIT;
    let mut bucket = None;
    let mut polls = Vec::new();
    while bucket.is_none() || writer.node() == from {
        if bucket.is_none() {
            let p = Instant::now();
            let o = bucket_master(b, &t.scope);
            polls.push(ms(p.elapsed()));
            if let Some(o) = o.filter(|o| *o != from) {
                bucket = Some((o, Instant::now()));
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{}: no failover within {FAILOVER_LIMIT:?} of killing {} (bucket {:?}, writer on {}); sentinel logs:\n{}",
                t.scope,
                host(&t.scope, from),
                bucket.map(|(o, _)| o),
                writer.node(),
                log_tails(&logs, 15)
            ));
        }
        sleep(BUCKET_POLL)?;
    }
    sleep(AFTER)?;
    let log = writer.finish()?;
    let (bucket_to, bucket_at) = bucket.ok_or("no bucket change")?;
    let first = log
        .acks
        .iter()
        .find(|a| a.at > killed && a.node != from)
        .ok_or("no write on another node after the kill")?;
    let mut first_errors: Vec<String> = Vec::new();
    for (_, e) in log.errors.iter().filter(|(at, _)| *at > killed) {
        if first_errors.len() < 3 && !first_errors.contains(e) {
            first_errors.push(e.clone());
        }
    }
    Ok(Cycle {
        from,
        to: first.node,
        bucket_to,
        killed,
        first_write: first.at - killed,
        bucket: bucket_at - killed,
        poll: Duration::from_secs_f64(percentile(&sorted(polls), 50.0) / 1000.0),
        old_after_kill: log
            .acks
            .iter()
            .filter(|a| a.at > killed && a.node == from)
            .count(),
        errors: log.errors.iter().filter(|(at, _)| *at > killed).count(),
        first_errors,
        marks: marks(&logs, &offsets, kill_wall_ms),
        acks: log.acks,
        lost: 0,
        lost_span: None,
    })
}

/// Reads every acknowledged id back from the final master; fills in each cycle's losses.
fn count_lost(t: &Topo, master: u32, cycles: &mut [Cycle]) -> Result<(), String> {
    let mut c = t.data(master)?;
    for (i, cy) in cycles.iter_mut().enumerate() {
        let mut lost = Vec::new();
        for chunk in cy.acks.chunks(1000) {
            let mut p = redis::pipe();
            for a in chunk {
                p.cmd("EXISTS").arg(key(i, a.id));
            }
            let exists: Vec<bool> = p
                .query(&mut c)
                .map_err(|e| format!("EXISTS on {}: {e}", host(&t.scope, master)))?;
            lost.extend(
                chunk
                    .iter()
                    .zip(exists)
                    .filter(|(_, e)| !e)
                    .map(|(a, _)| ms(cy.killed.saturating_duration_since(a.at))),
            );
        }
        cy.lost = lost.len();
        cy.lost_span = lost
            .iter()
            .copied()
            .fold(None, |acc: Option<(f64, f64)>, x| {
                Some(acc.map_or((x, x), |(lo, hi)| (lo.min(x), hi.max(x))))
            });
    }
    Ok(())
}

struct SettingResult {
    down_after: u64,
    apply: Duration,
    /// `vd apply` → the pair settled with healthy sentinels.
    healthy: Duration,
    cycles: Vec<Cycle>,
    total_acked: usize,
}

fn setting(b: &Bench, down_after: u64, runs: usize) -> Result<SettingResult, String> {
    let scope = format!("ha{down_after}");
    let file = b.write(
        &format!("{scope}.hcl"),
        &sentinel_pair(&scope, down_after, ""),
    )?;
    let t0 = Instant::now();
    b.vd(&["apply", "-f", &file, "--timeout", "180s"])?;
    let apply = t0.elapsed();
    let mut t = Topo::load(b, &scope, true)?;
    wait_settled(b, &t)?;
    let healthy = t0.elapsed();
    check_overrides(&t, down_after)?;
    eprintln!(
        "down-after-milliseconds {down_after}: applied {}/{DATA} + {SENTINEL} in {:.1} s, sentinels healthy after {:.1} s; {runs} cycles",
        t.scope,
        apply.as_secs_f64(),
        healthy.as_secs_f64()
    );
    let mut cycles = Vec::new();
    for i in 0..runs {
        let c = cycle(b, &mut t, i)?;
        eprintln!(
            "  cycle {i}: killed {} → first write on {} after {:.0} ms, bucket {} after {:.0} ms; {} writer errors after the kill; sentinel log (ms after the kill): {}",
            c.from,
            c.to,
            ms(c.first_write),
            c.bucket_to,
            ms(c.bucket),
            c.errors,
            MARKS
                .iter()
                .zip(&c.marks)
                .map(|((_, l), m)| format!("{l} {}", m.map_or("-".into(), |m| format!("{m:.0}"))))
                .collect::<Vec<_>>()
                .join(", ")
        );
        cycles.push(c);
    }
    let master = wait_settled(b, &t)?;
    count_lost(&t, master, &mut cycles)?;
    let total_acked = cycles.iter().map(|c| c.acks.len()).sum();
    eprintln!(
        "  lost: {} of {total_acked} acknowledged writes",
        cycles.iter().map(|c| c.lost).sum::<usize>()
    );
    teardown(
        b,
        &t.scope,
        &[
            format!("redis/{}/{SENTINEL}", t.scope),
            format!("redis/{}/{DATA}", t.scope),
            format!("asset/{}/overrides", t.scope),
        ],
    );
    Ok(SettingResult {
        down_after,
        apply,
        healthy,
        cycles,
        total_acked,
    })
}

fn run(b: &Bench) -> Result<String, String> {
    let runs = env_num("VD_BENCH_SENTINEL_RUNS", 5).max(1);
    eprintln!("vd: {}\nroot: {}", b.bin.display(), b.root().display());
    let load_before = load_average();
    let results = SETTINGS
        .iter()
        .map(|d| setting(b, *d, runs))
        .collect::<Result<Vec<_>, String>>()?;
    let report = section(&results, runs, (load_before, load_average()));
    if std::env::var("VD_BENCH_SENTINEL_DOCS").as_deref() != Ok("0") {
        append_to_docs(&report)?;
    }
    Ok(report)
}

/// Milliseconds as seconds with two decimals.
fn secs(v: f64) -> String {
    format!("{:.2} s", v / 1000.0)
}

fn section(results: &[SettingResult], runs: usize, load: (String, String)) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Sentinel failover");
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
        "- Command: `{COMMAND}` (as root, after `cargo build --release -p vd-cli`)"
    );
    let _ = writeln!(
        s,
        "- Anchor: Redis's Sentinel documentation. A sentinel flags the master down after \
         `down-after-milliseconds` without a valid reply; once a quorum agrees, the sentinels \
         elect a leader, which promotes a replica. So writes can be expected back roughly \
         down-after + {ANCHOR_EXTRA_MS} ms after a crash."
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| `down-after-milliseconds` | runs | kill → first acknowledged write on the new master, p50 / max | \
         kill → `REDIS_MASTER_ORDINAL` updated, p50 / max | acknowledged writes lost | anchor: down-after + ~1 s |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for r in results {
        let (w50, wmax) = p50_max(r.cycles.iter().map(|c| ms(c.first_write)).collect());
        let (b50, bmax) = p50_max(r.cycles.iter().map(|c| ms(c.bucket)).collect());
        let lost: usize = r.cycles.iter().map(|c| c.lost).sum();
        let anchor = (r.down_after + ANCHOR_EXTRA_MS) as f64;
        let _ = writeln!(
            s,
            "| {}{} | {} | {} / {} | {} / {} | {lost} of {} | {}: p50 {:+.2} s |",
            r.down_after,
            if r.down_after == 5000 {
                " (default)"
            } else {
                ""
            },
            r.cycles.len(),
            secs(w50),
            secs(wmax),
            secs(b50),
            secs(bmax),
            r.total_acked,
            secs(anchor),
            (w50 - anchor) / 1000.0
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "How it is measured:");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "- Per setting, in its own scope on one `vd server` (temporary root, process runtime): \
         `redis \"<scope>\" \"cache\" {{ replicas = 3 }}` and its sentinel sibling \
         `redis \"<scope>\" \"cache-ha\" {{ sentinel {{ monitor = \"<scope>/cache\" }} }}` (3 sentinels, \
         quorum 2), with an asset mounted at `/etc/sentinel/conf.d/overrides.conf` that sets \
         `down-after-milliseconds` and `failover-timeout {FAILOVER_TIMEOUT_MS}` (checked on every \
         sentinel with `SENTINEL MASTER`). Readiness `exec redis-cli ping` every 300ms, data liveness \
         `tcp_socket` every 2s. {runs} cycles per setting; each kills the current master, so never the pod the cycle before killed (the killed pod comes back as a replica)."
    );
    let _ = writeln!(
        s,
        "- The writer is a thread on the host using the `redis` crate (sync API). It SETs \
         `w:<cycle>:<id>` with increasing ids, one every {} ms, without `WAIT`. Like a \
         sentinel-aware client it asks `SENTINEL GET-MASTER-ADDR-BY-NAME {MASTER_NAME}` (the next \
         sentinel in turn at each attempt; pod name → pod IP from `vd get pods`), and on any error \
         it drops the connection, asks again and reconnects, {} ms between attempts, \
         {} ms connect and I/O timeouts.",
        WRITE_INTERVAL.as_millis(),
        RETRY.as_millis(),
        WRITER_TIMEOUT.as_millis()
    );
    let _ = writeln!(
        s,
        "- After at least {} ms of writes the benchmark sends SIGKILL to the master pod's pid (`vd get pods`). \
         Kill → first write = until the first write acknowledged by another node. Kill → bucket = until \
         `vd config <scope>/cache get REDIS_MASTER_ORDINAL` (polled back to back, {} ms apart) shows \
         the new ordinal; the time is when that poll returned, so it can be late by one poll \
         (p50 {}). Before each cycle: one master, the two others replicating from it with \
         `master_link_status:up`, `vd redis:info` → `sentinels.healthy == true` with every sentinel \
         naming that master, and the bucket naming it. Lost = acknowledged ids missing from the final \
         master after the last cycle.",
        PRE_ROLL.as_millis(),
        BUCKET_POLL.as_millis(),
        {
            let (p, _) = p50_max(
                results
                    .iter()
                    .flat_map(|r| r.cycles.iter().map(|c| ms(c.poll)))
                    .collect(),
            );
            format!("{p:.0} ms per poll")
        }
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Where the time goes: the sentinels' own log lines, ms after the kill, the first of the \
         three sentinels to log each (p50 over the runs):"
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| `down-after-milliseconds` | {} | first write | bucket |",
        MARKS
            .iter()
            .map(|(_, l)| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(s, "|---|{}---|---|", "---|".repeat(MARKS.len()));
    for r in results {
        let cols: Vec<String> = (0..MARKS.len())
            .map(|i| {
                let v: Vec<f64> = r.cycles.iter().filter_map(|c| c.marks[i]).collect();
                if v.is_empty() {
                    "-".into()
                } else {
                    format!("{:.0}", p50_max(v).0)
                }
            })
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.0} |",
            r.down_after,
            cols.join(" | "),
            p50_max(r.cycles.iter().map(|c| ms(c.first_write)).collect()).0,
            p50_max(r.cycles.iter().map(|c| ms(c.bucket)).collect()).0
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Compared with the anchor (p50 over the runs of each step):"
    );
    let _ = writeln!(s);
    for r in results {
        let d = r.down_after as f64;
        // p50 over the runs of `later − earlier`, where both are known; "+N ms" / "-N ms".
        let step = |later: &dyn Fn(&Cycle) -> Option<f64>,
                    earlier: &dyn Fn(&Cycle) -> Option<f64>| {
            let v: Vec<f64> = r
                .cycles
                .iter()
                .filter_map(|c| Some(later(c)? - earlier(c)?))
                .collect();
            if v.is_empty() {
                "?".to_string()
            } else {
                format!("{:+.0} ms", p50_max(v).0)
            }
        };
        let mark = |i: usize| move |c: &Cycle| c.marks[i];
        let write = |c: &Cycle| Some(ms(c.first_write));
        let bucket = |c: &Cycle| Some(ms(c.bucket));
        let w50 = p50_max(r.cycles.iter().map(|c| ms(c.first_write)).collect()).0;
        let over = w50 - d;
        let _ = writeln!(
            s,
            "- down-after {}: the first write came back after {} (p50), down-after {over:+.0} ms, {} \
             the anchor's ~{ANCHOR_EXTRA_MS} ms. Steps: kill → the first `+sdown` down-after {}; \
             `+sdown` → `+odown` {}; `+odown` → the leader's `REPLICAOF NO ONE` \
             (`+failover-state-send-slaveof-noone`, after the vote) {}; `REPLICAOF NO ONE` → \
             `+promoted-slave` {}; `+promoted-slave` → first write {}; `+switch-master` → bucket {}.",
            r.down_after,
            secs(w50),
            if over <= ANCHOR_EXTRA_MS as f64 {
                "within".to_string()
            } else {
                format!("{:.0} ms over", over - ANCHOR_EXTRA_MS as f64)
            },
            step(&mark(0), &|_| Some(d)),
            step(&mark(1), &mark(0)),
            step(&mark(4), &mark(1)),
            step(&mark(5), &mark(4)),
            step(&write, &mark(5)),
            step(&bucket, &mark(6)),
        );
    }
    let _ = writeln!(
        s,
        "- The first `+sdown` can come before down-after: once the kill has closed a sentinel's link \
         and no PING is pending, it counts down-after from the master's last valid PING reply, and it \
         pings once a second. `+odown` needs a second sentinel to agree (quorum 2), so it lands close \
         to down-after."
    );
    let _ = writeln!(
        s,
        "- The extra time over down-after is mostly one wait: the new master takes writes from \
         `REPLICAOF NO ONE` on, but `GET-MASTER-ADDR-BY-NAME` names it only once the leader has seen it \
         report itself master in `INFO` (`+promoted-slave`), and during a failover a sentinel polls \
         replicas with `INFO` once a second. The writer's first write follows `+promoted-slave` \
         closely, and vd records the new master (the bucket) soon after the first `+switch-master` \
         (the steps above)."
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "Per run:");
    let _ = writeln!(s);
    for r in results {
        let _ = writeln!(
            s,
            "- down-after {} (`vd apply` {:.1} s, sentinels healthy {:.1} s after it started): {}",
            r.down_after,
            r.apply.as_secs_f64(),
            r.healthy.as_secs_f64(),
            r.cycles
                .iter()
                .map(|c| format!(
                    "{}→{} write {:.0} ms, bucket {:.0} ms{}, lost {}{}",
                    c.from,
                    c.to,
                    ms(c.first_write),
                    ms(c.bucket),
                    if c.bucket_to == c.to {
                        String::new()
                    } else {
                        format!(" (**bucket says {}**)", c.bucket_to)
                    },
                    c.lost,
                    c.lost_span
                        .map(|(lo, hi)| format!(
                            " (acknowledged {lo:.0}–{hi:.0} ms before the kill)"
                        ))
                        .unwrap_or_default()
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let old: usize = r.cycles.iter().map(|c| c.old_after_kill).sum();
        let errors: Vec<String> = r.cycles.iter().map(|c| c.errors.to_string()).collect();
        let _ = writeln!(
            s,
            "- down-after {}: failed writer attempts after the kill per run {}; writes the old master \
             acknowledged after the kill (in flight): {old}; the errors: {}",
            r.down_after,
            errors.join(", "),
            r.cycles
                .first()
                .map(|c| c
                    .first_errors
                    .iter()
                    .map(|e| format!("`{}`", e.trim()))
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(s, "- Load average before / after: {} / {}", load.0, load.1);
    s
}
