//! Switchover benchmark: the write gap a client sees during `vd redis:failover`, beside Redis's
//! own `FAILOVER` command measured in the same run on the same pods.
//!
//! Run with `cargo bench -p vd-cli --bench switchover` after `cargo build --release -p vd-cli`.
//! It drives the release `vd` binary (or `VD_BIN`) against a `vd server` on a temporary root,
//! needs root (the process runtime) and `redis-server`, and prints a markdown section for the
//! benchmark docs. Tests never assert on speed; this program only measures and reports.
//!
//! One writer thread RPUSHes increasing ids back-to-back to the master with a real client and
//! timestamps every acknowledged write; on an error it asks every node for its `ROLE` and
//! reconnects to the master (what a client with a fresh `REDIS_URL` would do). The write gap of
//! a run is the longest interval between consecutive acknowledged writes that overlaps the
//! window [switch start − 50 ms, switch end + 2 s]. After each run the acknowledged ids are read
//! back from the new master; any missing one is a lost write.
//!
//! Knobs (environment): `VD_BENCH_SWITCH_RUNS` (runs per method, default 20).

mod common;

use common::{env_num, machine, ms, percentile, sleep, sorted, tail, utc_now, Bench, Setup};
use redis::Value as RValue;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const GOAL: Duration = Duration::from_millis(300);
/// What Redis's `FAILOVER` measured on this machine class when the goal was set.
const FAILOVER_REFERENCE_MS: f64 = 510.0;
const COMMAND: &str = "cargo bench -p vd-cli --bench switchover";
const SCOPE: &str = "bench";
const NAME: &str = "sw";
const NODES: u32 = 3;
const PORT: u16 = 6379;
/// Writes before the switch starts, at least.
const PRE_ROLL: Duration = Duration::from_millis(300);
/// Plus a per-run offset spread evenly over this span, so that switches start at every phase of
/// Redis's once-a-second replication cron (a fixed cadence can lock onto one phase).
const PRE_ROLL_SPREAD: Duration = Duration::from_secs(1);
/// The measurement window around a switch.
const BEFORE: Duration = Duration::from_millis(50);
const AFTER: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longer than any pause either method holds, so a held write is measured, not timed out.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
const HEALTHY_LIMIT: Duration = Duration::from_secs(60);
const FAILOVER_LIMIT: Duration = Duration::from_secs(15);

fn main() {
    common::main(
        &Setup {
            prefix: "vd-bench-switchover-",
            programs: &["redis-server", "redis-cli"],
            packages: "redis-server redis-tools",
            shutdown_limit: Duration::from_secs(60),
        },
        run,
    );
}

/// The last lines of a pod's log (redis's own log).
fn pod_log_tail(b: &Bench, ordinal: u32, n: usize) -> String {
    tail(
        &b.root()
            .join("logs")
            .join(format!("{SCOPE}-{NAME}.{ordinal}.log")),
        n,
    )
}

fn manifest() -> String {
    format!(
        r#"
redis "{SCOPE}" "{NAME}" {{
  replicas = {NODES}

  probes {{
    readiness {{
      exec {{ command = ["redis-cli", "-h", "${{VOODU_POD_IP}}", "ping"] }}
      period = "300ms"
    }}
  }}
}}
"#
    )
}

/// The name the nodes know a pod by (its replica-announce-ip).
fn host(ordinal: u32) -> String {
    format!("{NAME}-{ordinal}.{SCOPE}.voodu")
}

/// The cluster as the benchmark sees it.
#[derive(Clone)]
struct Cluster {
    /// Pod IP per ordinal.
    ips: Vec<String>,
    password: String,
}

impl Cluster {
    fn connect(&self, ordinal: u32) -> Result<redis::Connection, String> {
        connect(&self.ips[ordinal as usize], &self.password)
            .map_err(|e| format!("connect to {}: {e}", host(ordinal)))
    }
}

fn connect(ip: &str, password: &str) -> redis::RedisResult<redis::Connection> {
    let c = redis::Client::open(format!("redis://:{password}@{ip}:{PORT}/"))?
        .get_connection_with_timeout(CONNECT_TIMEOUT)?;
    c.set_read_timeout(Some(IO_TIMEOUT))?;
    c.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(c)
}

fn is_master(c: &mut redis::Connection) -> bool {
    redis::cmd("ROLE")
        .query::<Vec<RValue>>(c)
        .ok()
        .and_then(|r| r.into_iter().next())
        == Some(RValue::BulkString(b"master".to_vec()))
}

fn info_replication(c: &mut redis::Connection) -> Result<String, String> {
    redis::cmd("INFO")
        .arg("replication")
        .query(c)
        .map_err(|e| format!("INFO replication: {e}"))
}

fn field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// Waits until `master` is a master and every other node a replica of it with its link up.
fn wait_healthy(c: &Cluster, master: u32) -> Result<(), String> {
    let deadline = Instant::now() + HEALTHY_LIMIT;
    let want_host = host(master);
    loop {
        let state = (0..NODES)
            .map(|o| -> Result<(), String> {
                let info = info_replication(&mut c.connect(o)?)?;
                let ok = if o == master {
                    field(&info, "role") == Some("master")
                } else {
                    field(&info, "role") == Some("slave")
                        && field(&info, "master_host") == Some(want_host.as_str())
                        && field(&info, "master_link_status") == Some("up")
                };
                if ok {
                    Ok(())
                } else {
                    Err(format!("{}: {}", host(o), info.replace("\r\n", " ")))
                }
            })
            .collect::<Result<Vec<()>, String>>();
        let Err(last) = state else {
            return Ok(());
        };
        if Instant::now() > deadline {
            return Err(format!(
                "the cluster did not settle on master {want_host} within {HEALTHY_LIMIT:?}: {last}"
            ));
        }
        sleep(Duration::from_millis(20))?;
    }
}

/// What the writer saw.
#[derive(Default)]
struct WriterLog {
    /// Acknowledged ids and when their acknowledgement arrived.
    acks: Vec<(u64, Instant)>,
    /// Errors: when, and the message.
    errors: Vec<(Instant, String)>,
    /// When the writer held a connection to the (new) master after an error.
    reconnects: Vec<Instant>,
}

/// A writer thread; dropping it stops and joins the thread.
struct Writer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<WriterLog>>,
}

impl Writer {
    fn start(c: &Cluster, key: String) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let (ips, pw, flag) = (c.ips.clone(), c.password.clone(), stop.clone());
        let handle = std::thread::spawn(move || write_loop(&ips, &pw, &key, &flag));
        Writer {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> Result<WriterLog, String> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .map(|h| h.join().map_err(|_| "the writer panicked".to_string()))
            .unwrap_or_else(|| Err("no writer".into()))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// RPUSHes ids back-to-back; on an error asks every node for its ROLE and reconnects to the
/// master (retrying every millisecond while there is none).
fn write_loop(ips: &[String], pw: &str, key: &str, stop: &AtomicBool) -> WriterLog {
    let find_master = || {
        ips.iter().find_map(|ip| {
            let mut c = connect(ip, pw).ok()?;
            is_master(&mut c).then_some(c)
        })
    };
    let mut log = WriterLog::default();
    let mut conn = loop {
        if stop.load(Ordering::SeqCst) {
            return log;
        }
        if let Some(c) = find_master() {
            break c;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        match redis::cmd("RPUSH").arg(key).arg(i).query::<i64>(&mut conn) {
            Ok(_) => {
                log.acks.push((i, Instant::now()));
                i += 1;
            }
            Err(e) => {
                log.errors.push((Instant::now(), e.to_string()));
                loop {
                    if stop.load(Ordering::SeqCst) {
                        return log;
                    }
                    if let Some(c) = find_master() {
                        conn = c;
                        log.reconnects.push(Instant::now());
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    log
}

/// One measured switch.
struct Run {
    from: u32,
    to: u32,
    /// Longest interval between consecutive acknowledged writes overlapping the window.
    gap: Duration,
    /// Switch start → end as the benchmark saw it (the `vd` command, or FAILOVER → roles swapped).
    switch: Duration,
    /// The stall the switch itself caused: the interval between acknowledged writes around the
    /// writer's first error (None if the writer saw no error).
    stall: Option<Stall>,
    /// What the server reported as the time writes were held (vd only).
    reported_pause_ms: Option<f64>,
    /// FAILOVER only: switch start → the master left `waiting-for-sync` (it saw the target's
    /// offset reach its own and began the handoff).
    wait_sync: Option<Duration>,
    acked: usize,
    lost: usize,
    errors: usize,
    first_error: Option<String>,
}

/// The interval between the last acknowledged write before the writer's error and the first
/// after it, and its parts.
#[derive(Clone, Copy)]
struct Stall {
    /// Switch start → the last write acknowledged before the stall.
    after_start: Duration,
    len: Duration,
    /// Last ack → the held write's error reply.
    held: Duration,
    /// Error → connected to the new master (ROLE on each node, connect + AUTH).
    find: Duration,
    /// Connected → first ack there.
    first_ack: Duration,
}

/// The window's longest gap, and the stall around the writer's first error; `acks` in order.
fn analyse(
    log: &WriterLog,
    start: Instant,
    end: Instant,
) -> Result<(Duration, Option<Stall>), String> {
    let from = start.checked_sub(BEFORE).unwrap_or(start);
    let to = end + AFTER;
    let mut times: Vec<Instant> = log.acks.iter().map(|(_, t)| *t).collect();
    if times.first().is_none_or(|t| *t > from) {
        return Err("the writer had no acknowledged write before the switch started".into());
    }
    // A writer that never recovered inside the window: the gap runs to the window's end.
    if times.last().is_some_and(|t| *t < to) {
        times.push(to);
    }
    let gap = times
        .windows(2)
        .filter(|w| w[1] >= from && w[0] <= to)
        .map(|w| w[1] - w[0])
        .max()
        .ok_or("no acknowledged writes in the window")?;
    let stall = log
        .errors
        .iter()
        .map(|(t, _)| *t)
        .find(|t| *t >= from && *t <= to)
        .and_then(|err| {
            let i = times.partition_point(|t| *t <= err);
            let (a, b) = (*times.get(i.checked_sub(1)?)?, *times.get(i)?);
            let rec = log
                .reconnects
                .iter()
                .copied()
                .find(|t| *t >= err && *t <= b)
                .unwrap_or(b);
            Some(Stall {
                after_start: a.saturating_duration_since(start),
                len: b - a,
                held: err - a,
                find: rec - err,
                first_ack: b - rec,
            })
        });
    Ok((gap, stall))
}

/// Reads the acknowledged ids back from `master` and counts the missing ones; drops the key.
fn count_lost(c: &Cluster, master: u32, key: &str, log: &WriterLog) -> Result<usize, String> {
    let mut m = c.connect(master)?;
    if !is_master(&mut m) {
        return Err(format!(
            "{} is not the master after the switch",
            host(master)
        ));
    }
    let stored: Vec<u64> = redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query(&mut m)
        .map_err(|e| format!("LRANGE {key}: {e}"))?;
    let stored: HashSet<u64> = stored.into_iter().collect();
    let lost = log.acks.iter().filter(|(i, _)| !stored.contains(i)).count();
    let _: i64 = redis::cmd("DEL")
        .arg(key)
        .query(&mut m)
        .map_err(|e| format!("DEL {key}: {e}"))?;
    Ok(lost)
}

#[derive(Clone, Copy, PartialEq)]
enum Method {
    Vd,
    RedisFailover,
}

/// How Redis's FAILOVER names its target (found on the first run).
#[derive(Clone, Copy, PartialEq, Debug)]
enum TargetBy {
    Hostname,
    Ip,
}

struct State {
    master: u32,
    target_by: Option<TargetBy>,
    hostname_error: Option<String>,
}

fn measure(b: &Bench, c: &Cluster, st: &mut State, m: Method, i: usize) -> Result<Run, String> {
    let from = st.master;
    let to = (from + 1) % NODES;
    wait_healthy(c, from)?;
    let key = format!(
        "ids:{}:{i}",
        if m == Method::Vd { "vd" } else { "failover" }
    );
    // Control connections for Redis's FAILOVER, set up before the switch so their setup
    // does not count.
    let mut ctl = if m == Method::RedisFailover {
        Some((c.connect(from)?, c.connect(to)?))
    } else {
        None
    };
    let writer = Writer::start(c, key.clone());
    sleep(PRE_ROLL + spread(i))?;
    let start = Instant::now();
    let mut reported = None;
    let mut wait_sync = None;
    match (m, ctl.as_mut()) {
        (Method::Vd, _) => {
            let out = b.json(&[
                "redis:failover",
                &format!("{SCOPE}/{NAME}"),
                "--replica",
                &to.to_string(),
            ])?;
            reported = out["write_pause_ms"].as_f64();
        }
        (Method::RedisFailover, Some((old, new))) => {
            wait_sync = Some(redis_failover(b, c, st, old, new, to)? - start);
        }
        (Method::RedisFailover, None) => unreachable!("control connections are set up above"),
    }
    let end = Instant::now();
    st.master = to;
    if i == 0 {
        // Evidence of where the time goes: redis's own log of the first switch of each kind.
        for (o, role) in [(from, "old master"), (to, "new master")] {
            eprintln!(
                "  redis log of {} ({role}), run 0:\n{}",
                host(o),
                switch_lines(&pod_log_tail(b, o, 60))
            );
        }
    }
    if m == Method::RedisFailover {
        // Redis leaves the third node replicating from the old master (now a replica): point
        // it at the new master, as `vd redis:failover` does. Writes are not involved.
        for o in (0..NODES).filter(|o| *o != from && *o != to) {
            let _: String = redis::cmd("REPLICAOF")
                .arg(host(to))
                .arg(PORT)
                .query(&mut c.connect(o)?)
                .map_err(|e| format!("REPLICAOF on {}: {e}", host(o)))?;
        }
    }
    let until = end + AFTER + Duration::from_millis(100);
    sleep(until.saturating_duration_since(Instant::now()))?;
    let log = writer.finish()?;
    let (gap, stall) = analyse(&log, start, end)?;
    let lost = count_lost(c, to, &key, &log)?;
    Ok(Run {
        from,
        to,
        gap,
        switch: end - start,
        stall,
        reported_pause_ms: reported,
        wait_sync,
        acked: log.acks.len(),
        lost,
        errors: log.errors.len(),
        first_error: log.errors.first().map(|(_, e)| e.clone()),
    })
}

/// The `i`th offset of a low-discrepancy sequence over `PRE_ROLL_SPREAD` (golden ratio steps).
fn spread(i: usize) -> Duration {
    let frac = (i as f64 * 0.618_033_988_749_895).fract();
    PRE_ROLL_SPREAD.mul_f64(frac)
}

/// `FAILOVER TO <target> 6379` on the master, then waits until the roles have swapped.
/// Returns when the master was first seen past `waiting-for-sync`.
fn redis_failover(
    b: &Bench,
    c: &Cluster,
    st: &mut State,
    old: &mut redis::Connection,
    new: &mut redis::Connection,
    to: u32,
) -> Result<Instant, String> {
    let send = |old: &mut redis::Connection, by: TargetBy| {
        let target = match by {
            TargetBy::Hostname => host(to),
            TargetBy::Ip => c.ips[to as usize].clone(),
        };
        redis::cmd("FAILOVER")
            .arg("TO")
            .arg(target)
            .arg(PORT)
            .query::<String>(old)
            .map_err(|e| e.to_string())
    };
    match st.target_by {
        Some(by) => send(old, by).map_err(|e| format!("FAILOVER ({by:?}): {e}"))?,
        None => match send(old, TargetBy::Hostname) {
            Ok(s) => {
                st.target_by = Some(TargetBy::Hostname);
                s
            }
            Err(e) => {
                eprintln!("  FAILOVER TO {} failed: {e}; trying the IP", host(to));
                st.hostname_error = Some(e);
                let s = send(old, TargetBy::Ip).map_err(|e| format!("FAILOVER (IP): {e}"))?;
                st.target_by = Some(TargetBy::Ip);
                s
            }
        },
    };
    let deadline = Instant::now() + FAILOVER_LIMIT;
    let mut synced = None;
    loop {
        let info = info_replication(old)?;
        let state = field(&info, "master_failover_state").unwrap_or("?");
        let role = field(&info, "role").unwrap_or("?");
        if state != "waiting-for-sync" && synced.is_none() {
            synced = Some(Instant::now());
        }
        if state == "no-failover" && role == "slave" && is_master(new) {
            return Ok(synced.unwrap_or_else(Instant::now));
        }
        if state == "no-failover" && role == "master" {
            return Err(format!(
                "FAILOVER was aborted by redis; old master log:\n{}",
                pod_log_tail(b, st.master, 15)
            ));
        }
        if Instant::now() > deadline {
            let _ = redis::cmd("FAILOVER").arg("ABORT").query::<String>(old);
            return Err(format!(
                "FAILOVER did not finish within {FAILOVER_LIMIT:?} (state {state}, role {role})"
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The log lines of a switch (roles, failover, resync), indented.
fn switch_lines(log: &str) -> String {
    const KEYS: [&str; 7] = [
        "ailover",
        "MASTER MODE",
        "REPLICAOF",
        "Connecting to MASTER",
        "asks for synchronization",
        "Master accepted",
        "Connection with",
    ];
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| KEYS.iter().any(|k| l.contains(k)))
        .collect();
    lines[lines.len().saturating_sub(8)..]
        .iter()
        .map(|l| format!("    {}", l.split(" (user request").next().unwrap_or(l)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn pods(b: &Bench) -> Result<Vec<String>, String> {
    let pods = b.json(&["get", "pods"])?;
    (0..NODES)
        .map(|o| {
            let name = format!("{SCOPE}-{NAME}.{o}");
            pods.as_array()
                .and_then(|a| a.iter().find(|p| p["pod"] == name.as_str()))
                .and_then(|p| p["ip"].as_str())
                .filter(|ip| !ip.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("no IP for pod {name}"))
        })
        .collect()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn run(b: &Bench) -> Result<String, String> {
    let runs = env_num("VD_BENCH_SWITCH_RUNS", 20).max(1);
    eprintln!("vd: {}\nroot: {}", b.bin.display(), b.root().display());
    let file = b.write("sw.hcl", &manifest())?;
    let t = Instant::now();
    b.vd(&["apply", "-f", &file, "--timeout", "120s"])?;
    eprintln!(
        "applied redis {SCOPE}/{NAME} ({NODES} pods) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let password = b
        .vd(&[
            "config",
            &format!("{SCOPE}/{NAME}"),
            "get",
            "REDIS_PASSWORD",
        ])?
        .trim()
        .to_string();
    let cluster = Cluster {
        ips: pods(b)?,
        password,
    };
    let pids_before = pod_pids_by_view(b)?;
    let load_before = load_average();
    let mut st = State {
        master: 0,
        target_by: None,
        hostname_error: None,
    };
    let mut results = Vec::new();
    for (m, label) in [
        (Method::Vd, "vd redis:failover"),
        (Method::RedisFailover, "redis FAILOVER"),
    ] {
        eprintln!("{label}: {runs} runs");
        let mut rs = Vec::new();
        for i in 0..runs {
            let r = measure(b, &cluster, &mut st, m, i)?;
            eprintln!(
                "  run {i:2}: {} → {}  gap {:6.1} ms  switch {:6.1} ms  stall {}{}  acked {}  lost {}  errors {}",
                r.from,
                r.to,
                ms(r.gap),
                ms(r.switch),
                r.stall
                    .map(|x| format!(
                        "{:.1} ms at +{:.1} (held {:.1}, find master {:.1}, first ack {:.1})",
                        ms(x.len),
                        ms(x.after_start),
                        ms(x.held),
                        ms(x.find),
                        ms(x.first_ack)
                    ))
                    .unwrap_or_else(|| "-".into()),
                r.reported_pause_ms
                    .map(|p| format!("  vd says writes held {p:.0} ms"))
                    .or_else(|| r
                        .wait_sync
                        .map(|w| format!("  waiting-for-sync {:.1} ms", ms(w))))
                    .unwrap_or_default(),
                r.acked,
                r.lost,
                r.errors
            );
            rs.push(r);
        }
        results.push((m, rs));
    }
    wait_healthy(&cluster, st.master)?;
    let pids_after = pod_pids_by_view(b)?;
    let load_after = load_average();
    Ok(section(&Report {
        runs,
        results,
        target_by: st.target_by,
        hostname_error: st.hostname_error,
        restarted: pids_before != pids_after,
        load: (load_before, load_after),
    }))
}

fn pod_pids_by_view(b: &Bench) -> Result<Vec<u64>, String> {
    let pods = b.json(&["get", "pods"])?;
    Ok((0..NODES)
        .map(|o| {
            let name = format!("{SCOPE}-{NAME}.{o}");
            pods.as_array()
                .and_then(|a| a.iter().find(|p| p["pod"] == name.as_str()))
                .and_then(|p| p["pid"].as_u64())
                .unwrap_or(0)
        })
        .collect())
}

struct Report {
    runs: usize,
    results: Vec<(Method, Vec<Run>)>,
    target_by: Option<TargetBy>,
    hostname_error: Option<String>,
    restarted: bool,
    load: (String, String),
}

fn p50(v: Vec<f64>) -> f64 {
    percentile(&sorted(v), 50.0)
}

fn section(r: &Report) -> String {
    let mut s = String::new();
    let goal = ms(GOAL);
    let _ = writeln!(s, "## Redis switchover: write gap");
    let _ = writeln!(s);
    let _ = writeln!(s, "- Date: {}", utc_now());
    let _ = writeln!(
        s,
        "- Machine: {}, redis-server {}",
        machine(),
        redis_version()
    );
    let _ = writeln!(
        s,
        "- Command: `{COMMAND}` (as root, after `cargo build --release -p vd-cli`)"
    );
    let _ = writeln!(
        s,
        "- Goal: the write gap of `vd redis:failover` under {goal:.0} ms \
         (Redis's own `FAILOVER` measured about {FAILOVER_REFERENCE_MS:.0} ms on this machine class)"
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| Method ({} runs each, same run, same pods) | min | p50 | p90 | max | lost writes | goal < {goal:.0} ms |",
        r.runs
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for (m, runs) in &r.results {
        let g = sorted(runs.iter().map(|x| ms(x.gap)).collect());
        let lost: usize = runs.iter().map(|x| x.lost).sum();
        let acked: usize = runs.iter().map(|x| x.acked).sum();
        let (name, verdict) = match m {
            Method::Vd => (
                "`vd redis:failover bench/sw --replica N`".to_string(),
                if g[g.len() - 1] < goal {
                    "met (max)"
                } else if percentile(&g, 50.0) < goal {
                    "met (p50), **missed** (max)"
                } else {
                    "**missed**"
                },
            ),
            Method::RedisFailover => (
                format!(
                    "Redis `FAILOVER TO {} 6379`",
                    match r.target_by {
                        Some(TargetBy::Ip) => "<target-ip>",
                        _ => "sw-N.bench.voodu",
                    }
                ),
                "(reference)",
            ),
        };
        let _ = writeln!(
            s,
            "| {name} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {lost} of {acked} | {verdict} |",
            g[0],
            percentile(&g, 50.0),
            percentile(&g, 90.0),
            g[g.len() - 1],
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "How it is measured:");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "- `redis \"bench\" \"sw\" {{ replicas = 3 }}` (redis-server pods, readiness `exec redis-cli ping` every 300ms) \
         on a `vd server` with a temporary root. One writer thread RPUSHes increasing ids back-to-back \
         with the `redis` crate (sync API) and timestamps every acknowledged write; on an error it asks \
         every node for `ROLE` and reconnects to the master."
    );
    let _ = writeln!(
        s,
        "- Write gap of a run = the longest interval between consecutive acknowledged writes overlapping \
         [switch start − {} ms, switch end + {} s]. Lost = acknowledged ids missing from the new master's \
         list afterwards. Each switch starts after {} ms of writes plus an offset spread evenly over \
         {} s (golden-ratio steps), so switches land at every phase of Redis's 1 s replication cron.",
        BEFORE.as_millis(),
        AFTER.as_secs(),
        PRE_ROLL.as_millis(),
        PRE_ROLL_SPREAD.as_secs()
    );
    let _ = writeln!(
        s,
        "- {} `vd redis:failover` runs first (targets rotate 1, 2, 0, …), then {} runs of Redis's \
         `FAILOVER TO <target> 6379` sent on an open connection to the current master, continuing the rotation. \
         After each `FAILOVER` the third node is pointed at the new master (Redis leaves it chained behind \
         the old one). Before every run all replicas report `master_link_status:up`.",
        r.runs,
        r.runs
    );
    match (&r.target_by, &r.hostname_error) {
        (Some(TargetBy::Hostname), _) => {
            let _ = writeln!(
                s,
                "- `FAILOVER TO` with the target's pod name (`sw-N.bench.voodu`, its `replica-announce-ip`) works."
            );
        }
        (Some(TargetBy::Ip), e) => {
            let _ = writeln!(
                s,
                "- `FAILOVER TO` with the pod name failed ({}); the target's IP was used.",
                e.as_deref().unwrap_or("?")
            );
        }
        _ => {}
    }
    for (m, runs) in &r.results {
        let label = match m {
            Method::Vd => "`vd redis:failover`",
            Method::RedisFailover => "`FAILOVER`",
        };
        let col = |f: &dyn Fn(&Stall) -> Duration| {
            let v: Vec<f64> = runs
                .iter()
                .filter_map(|x| x.stall.as_ref())
                .map(f)
                .map(ms)
                .collect();
            if v.is_empty() {
                "-".to_string()
            } else {
                format!("{:.1}", p50(v))
            }
        };
        let stalls = sorted(
            runs.iter()
                .filter_map(|x| x.stall.map(|st| ms(st.len)))
                .collect(),
        );
        let _ = writeln!(
            s,
            "- {label}, the stall the switch causes (the gap around the writer's error, {} of {} runs), \
             p50 / max {:.1} / {:.1} ms; its parts (p50, ms): switch start → last ack before it {}; \
             write held until its error reply {}; error → connected to the new master {}; \
             connected → first ack {}. Switch start → end (p50) {:.1} ms{}",
            stalls.len(),
            runs.len(),
            percentile(&stalls, 50.0),
            stalls.last().copied().unwrap_or(f64::NAN),
            col(&|x| x.after_start),
            col(&|x| x.held),
            col(&|x| x.find),
            col(&|x| x.first_ack),
            p50(runs.iter().map(|x| ms(x.switch)).collect()),
            if *m == Method::Vd {
                let v: Vec<f64> = runs.iter().filter_map(|x| x.reported_pause_ms).collect();
                if v.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; writes held as `vd` reports it (p50 / max) {:.0} / {:.0} ms",
                        p50(v.clone()),
                        v.iter().copied().fold(f64::NAN, f64::max)
                    )
                }
            } else {
                let v: Vec<f64> = runs.iter().filter_map(|x| x.wait_sync).map(ms).collect();
                if v.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; of which the master sat in `master_failover_state:waiting-for-sync` \
                         (p50 / max) {:.0} / {:.0} ms",
                        p50(v.clone()),
                        v.iter().copied().fold(f64::NAN, f64::max)
                    )
                }
            }
        );
        let _ = writeln!(
            s,
            "- {label}, all gaps (ms): {}",
            runs.iter()
                .map(|x| format!("{:.0}", ms(x.gap)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(e) = runs.iter().find_map(|x| x.first_error.as_deref()) {
            let _ = writeln!(s, "- {label}, the error the writer sees: `{}`", e.trim());
        }
    }
    let _ = writeln!(
        s,
        "- Redis pods restarted during the benchmark: {}; load average before / after: {} / {}",
        if r.restarted { "**yes**" } else { "none" },
        r.load.0,
        r.load.1
    );
    s
}

/// `redis-server --version`'s `v=` field.
fn redis_version() -> String {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .find_map(|w| w.strip_prefix("v=").map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}
