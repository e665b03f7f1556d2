//! Foundation benchmark: time from `vd apply` to all pods ready for a 3-replica redis-server
//! statefulset, and the controller's idle CPU and RSS with 100 such statefulsets applied.
//!
//! Run with `cargo bench -p vd-cli --bench foundation` after `cargo build --release -p vd-cli`.
//! It drives the release `vd` binary (or `VD_BIN`) against a `vd server` on a temporary root,
//! needs root (the process runtime) and `redis-server`, and prints a markdown snippet for
//! docs/benchmarks.md. Tests never assert on speed; this program only measures and reports.
//!
//! Knobs (environment): `VD_BENCH_RUNS` (apply-to-ready runs, default 10),
//! `VD_BENCH_IDLE_SETS` (statefulsets for the idle measurement, default 100),
//! `VD_BENCH_SAMPLE_SECS` (idle sampling window, default 30).

mod common;

use common::{env_num, machine, ms, now_ms, percentile, sleep, sorted, utc_now, Bench, Setup};
use std::fmt::Write as _;
use std::process::Child;
use std::time::{Duration, Instant};

const GOAL_READY: Duration = Duration::from_secs(1);
const GOAL_CPU_PCT: f64 = 2.0;
const GOAL_RSS_MB: f64 = 50.0;
/// Readiness period of the apply-to-ready statefulsets.
const FAST_PERIOD: &str = "100ms";
/// Readiness period of the idle statefulsets (the order of magnitude of the default probes).
const IDLE_PERIOD: &str = "5s";
const BATCH: usize = 10;
const SETTLE: Duration = Duration::from_secs(10);
const COMMAND: &str = "cargo bench -p vd-cli --bench foundation";

fn main() {
    common::main(
        &Setup {
            prefix: "vd-bench-",
            programs: &["redis-server"],
            packages: "redis-server",
            shutdown_limit: Duration::from_secs(120),
        },
        run,
    );
}

/// The server's pid (0 once it is stopped).
fn server_pid(b: &Bench) -> u32 {
    b.server
        .lock()
        .ok()
        .and_then(|s| s.as_ref().map(Child::id))
        .unwrap_or(0)
}

fn statefulset(scope: &str, name: &str, period: &str) -> String {
    format!(
        r#"
statefulset "{scope}" "{name}" {{
  image    = "redis:7-alpine"
  replicas = 3
  command  = ["redis-server", "--bind", "${{VOODU_POD_IP}}", "--port", "6379", "--save", ""]
  ports    = ["6379"]

  probes {{
    readiness {{
      tcp_socket {{ port = 6379 }}
      period = "{period}"
    }}
  }}
}}
"#
    )
}

/// Where the time of one apply went, in ms (see the docs for the phases).
#[derive(Debug, Clone, Default)]
struct Breakdown {
    /// apply start → pod 0's process spawned (CLI start, HTTP apply, store, reconcile, spawn).
    first_spawn: f64,
    /// Per pod: spawned → redis logs "Ready to accept connections".
    redis_start: Vec<f64>,
    /// Per pod but the last: redis listening → next pod spawned (probe, status, reconcile).
    next_spawn: Vec<f64>,
    /// Last pod listening → `vd apply` returned (probe, status, CLI poll, CLI exit).
    tail: f64,
}

struct ApplyRun {
    total: Duration,
    breakdown: Option<Breakdown>,
}

fn apply_once(b: &Bench, scope: &str, name: &str) -> Result<ApplyRun, String> {
    let file = b.write(
        &format!("{name}.hcl"),
        &statefulset(scope, name, FAST_PERIOD),
    )?;
    let wall_start = now_ms();
    let t = Instant::now();
    b.vd(&["apply", "-f", &file, "--timeout", "60s"])?;
    let total = t.elapsed();
    let wall_end = wall_start + total.as_millis() as i64;
    let breakdown = breakdown(b, scope, name, wall_start, wall_end).ok();
    b.vd(&["delete", &format!("statefulset/{scope}/{name}"), "--prune"])?;
    Ok(ApplyRun { total, breakdown })
}

fn breakdown(
    b: &Bench,
    scope: &str,
    name: &str,
    start: i64,
    end: i64,
) -> Result<Breakdown, String> {
    let pods = b.json(&["get", "pods"])?;
    let mut spawned = Vec::new();
    let mut listening = Vec::new();
    for o in 0..3 {
        let pod = format!("{scope}-{name}.{o}");
        let view = pods
            .as_array()
            .and_then(|a| a.iter().find(|p| p["pod"] == pod.as_str()))
            .ok_or_else(|| format!("no pod {pod}"))?;
        let s = view["started_ms"].as_i64().ok_or("no started_ms")?;
        let log = std::fs::read_to_string(b.root().join("logs").join(format!("{pod}.log")))
            .map_err(|e| format!("log of {pod}: {e}"))?;
        let l = redis_ready_ms(&log, s).ok_or_else(|| format!("no ready line for {pod}"))?;
        spawned.push(s);
        listening.push(l);
    }
    Ok(Breakdown {
        first_spawn: (spawned[0] - start) as f64,
        redis_start: (0..3).map(|o| (listening[o] - spawned[o]) as f64).collect(),
        next_spawn: (0..2)
            .map(|o| (spawned[o + 1] - listening[o]) as f64)
            .collect(),
        tail: (end - listening[2]) as f64,
    })
}

/// The unix ms at which redis logged "Ready to accept connections", reconstructed from its
/// local time of day (`HH:MM:SS.mmm`) and a nearby reference instant.
fn redis_ready_ms(log: &str, near_ms: i64) -> Option<i64> {
    const DAY: i64 = 86_400_000;
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("Ready to accept connections"))?;
    let tod = line.split_whitespace().find_map(|w| {
        let (hms, frac) = w.split_once('.')?;
        let p: Vec<i64> = hms
            .split(':')
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        let ms: i64 = frac.get(..3)?.parse().ok()?;
        (p.len() == 3).then(|| ((p[0] * 60 + p[1]) * 60 + p[2]) * 1000 + ms)
    })?;
    let local = near_ms + utc_offset_s(near_ms / 1000) * 1000;
    let mut delta = (tod - local.rem_euclid(DAY)).rem_euclid(DAY);
    if delta > DAY / 2 {
        delta -= DAY;
    }
    Some(near_ms + delta)
}

/// The local time zone's offset from UTC at `t` (seconds since the epoch), in seconds.
// `unsafe`: the offset comes from the C library's localtime_r (nothing in this crate's
// dependencies reads the local time zone safely); it only writes into a struct we own.
#[allow(unsafe_code)]
fn utc_offset_s(t: i64) -> i64 {
    let t = t as libc::time_t;
    // SAFETY: localtime_r writes into the zeroed tm we own.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            0
        } else {
            tm.tm_gmtoff as i64
        }
    }
}

/// CPU time (utime + stime) of a process in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &s[s.rfind(')').ok_or("bad stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = f.get(11).and_then(|x| x.parse().ok()).ok_or("bad utime")?;
    let stime: u64 = f.get(12).and_then(|x| x.parse().ok()).ok_or("bad stime")?;
    Ok(utime + stime)
}

/// A `Key:   value kB` line of /proc/PID/status, as a number.
fn status_field(pid: u32, key: &str) -> Result<u64, String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {key} in /proc/{pid}/status"))
}

fn clock_ticks() -> f64 {
    let t = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(0);
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

struct Idle {
    cpu_pct: f64,
    rss_mb: f64,
    rss_peak_mb: f64,
    threads: u64,
    fds: usize,
    window: Duration,
}

/// Samples the server's CPU and RSS over `window`.
fn sample_idle(pid: u32, window: Duration) -> Result<Idle, String> {
    let hz = clock_ticks();
    let t0 = Instant::now();
    let c0 = cpu_ticks(pid)?;
    let mut peak = 0u64;
    while t0.elapsed() < window {
        peak = peak.max(status_field(pid, "VmRSS")?);
        sleep((window - t0.elapsed()).min(Duration::from_secs(1)))?;
    }
    let c1 = cpu_ticks(pid)?;
    let wall = t0.elapsed();
    let rss = status_field(pid, "VmRSS")?;
    peak = peak.max(rss);
    Ok(Idle {
        cpu_pct: (c1 - c0) as f64 / hz / wall.as_secs_f64() * 100.0,
        rss_mb: rss as f64 / 1024.0,
        rss_peak_mb: peak as f64 / 1024.0,
        threads: status_field(pid, "Threads")?,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0),
        window: wall,
    })
}

/// Median (mean of the middle two for even counts).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

/// Waits until `want` pods exist and all are ready.
fn wait_all_ready(b: &Bench, want: usize, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        let pods = b.json(&["get", "pods"])?;
        let list = pods.as_array().cloned().unwrap_or_default();
        let ready = list.iter().filter(|p| p["ready"] == true).count();
        if list.len() == want && ready == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{ready}/{want} pods ready ({} exist) after {limit:?}",
                list.len()
            ));
        }
        sleep(Duration::from_secs(1))?;
    }
}

fn run(b: &Bench) -> Result<String, String> {
    let runs = env_num("VD_BENCH_RUNS", 10).max(1);
    let idle_sets = env_num("VD_BENCH_IDLE_SETS", 100);
    let window = Duration::from_secs(env_num("VD_BENCH_SAMPLE_SECS", 30) as u64);
    let pid = server_pid(b);
    eprintln!("vd: {}\nroot: {}", b.bin.display(), b.root().display());

    // (1) apply-to-ready.
    eprintln!(
        "apply-to-ready: 1 warm-up + {runs} runs (3 replicas, readiness period {FAST_PERIOD})"
    );
    let warmup = apply_once(b, "bench", "warmup")?;
    eprintln!("  warm-up: {:.0} ms", ms(warmup.total));
    let mut totals = Vec::new();
    let mut parts = Vec::new();
    for i in 0..runs {
        let r = apply_once(b, "bench", &format!("r{i}"))?;
        eprintln!(
            "  run {i}: {:.0} ms{}",
            ms(r.total),
            r.breakdown
                .as_ref()
                .map(|p| format!("  {p:?}"))
                .unwrap_or_default()
        );
        totals.push(ms(r.total));
        parts.extend(r.breakdown);
    }
    let totals = sorted(totals);

    // Baseline: the same server with nothing applied.
    sleep(Duration::from_secs(5))?;
    let base_window = Duration::from_secs(10).min(window);
    eprintln!("baseline: sampling the empty server for {base_window:?}");
    let base = sample_idle(pid, base_window)?;

    // (2) idle cost with `idle_sets` statefulsets.
    eprintln!(
        "idle: applying {idle_sets} statefulsets ({} pods, readiness period {IDLE_PERIOD}) in batches of {BATCH}",
        idle_sets * 3
    );
    let t_all = Instant::now();
    let mut i = 0;
    while i < idle_sets {
        let n = BATCH.min(idle_sets - i);
        let text: String = (i..i + n)
            .map(|k| statefulset("bench", &format!("idle{k}"), IDLE_PERIOD))
            .collect();
        let file = b.write(&format!("idle-batch-{}.hcl", i / BATCH), &text)?;
        let t = Instant::now();
        b.vd(&["apply", "-f", &file, "--timeout", "10m"])?;
        eprintln!(
            "  statefulsets idle{i}..idle{}: ready in {:.1} s",
            i + n - 1,
            t.elapsed().as_secs_f64()
        );
        i += n;
    }
    let applied_in = t_all.elapsed();
    wait_all_ready(b, idle_sets * 3, Duration::from_secs(120))?;
    eprintln!(
        "idle: all {} pods ready; settling {SETTLE:?}",
        idle_sets * 3
    );
    sleep(SETTLE)?;
    eprintln!("idle: sampling the server for {window:?}");
    let idle = sample_idle(pid, window)?;
    wait_all_ready(b, idle_sets * 3, Duration::from_secs(10))?;
    let restarts: u64 = b
        .json(&["get", "pods"])?
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["restarts"].as_u64()).sum())
        .unwrap_or(0);

    Ok(snippet(&Report {
        runs,
        totals,
        warmup: ms(warmup.total),
        parts,
        base,
        idle,
        idle_sets,
        applied_in,
        restarts,
    }))
}

struct Report {
    runs: usize,
    totals: Vec<f64>,
    warmup: f64,
    parts: Vec<Breakdown>,
    base: Idle,
    idle: Idle,
    idle_sets: usize,
    applied_in: Duration,
    restarts: u64,
}

fn snippet(r: &Report) -> String {
    let mut s = String::new();
    let t = &r.totals;
    let (min, med, p90, max) = (t[0], median(t), percentile(t, 90.0), t[t.len() - 1]);
    let goal_ms = ms(GOAL_READY);
    let _ = writeln!(s, "- Date: {}", utc_now());
    let _ = writeln!(s, "- Machine: {}", machine());
    let _ = writeln!(s, "- Command: `{COMMAND}` (as root)");
    let _ = writeln!(s);
    let _ = writeln!(s, "| Measurement | Result | Goal | |");
    let _ = writeln!(s, "|---|---|---|---|");
    let _ = writeln!(
        s,
        "| apply → 3/3 ready, median of {} | {med:.0} ms | < {goal_ms:.0} ms | {} |",
        r.runs,
        verdict(med < goal_ms)
    );
    let _ = writeln!(
        s,
        "| apply → 3/3 ready, min / p90 / max | {min:.0} / {p90:.0} / {max:.0} ms | < {goal_ms:.0} ms | {} |",
        verdict(max < goal_ms)
    );
    let _ = writeln!(
        s,
        "| idle controller CPU, {} statefulsets ({} pods) | {:.2} % of one core | < {GOAL_CPU_PCT} % | {} |",
        r.idle_sets,
        r.idle_sets * 3,
        r.idle.cpu_pct,
        verdict(r.idle.cpu_pct < GOAL_CPU_PCT)
    );
    let _ = writeln!(
        s,
        "| idle controller RSS, {} statefulsets | {:.1} MB | < {GOAL_RSS_MB} MB | {} |",
        r.idle_sets,
        r.idle.rss_mb,
        verdict(r.idle.rss_mb < GOAL_RSS_MB)
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "Details:");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "- apply-to-ready: {} runs after 1 warm-up ({:.0} ms), readiness `tcp_socket` period {FAST_PERIOD}; all runs (ms): {}",
        r.runs,
        r.warmup,
        t.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !r.parts.is_empty() {
        let col = |f: &dyn Fn(&Breakdown) -> f64| median(&sorted(r.parts.iter().map(f).collect()));
        let _ = writeln!(
            s,
            "- where the time goes (median over {} runs, ms): apply → pod 0 spawned {:.0}; \
             redis start (spawn → listening) {:.0} / {:.0} / {:.0}; \
             listening → next pod spawned {:.0} / {:.0}; last pod listening → `vd apply` returns {:.0}",
            r.parts.len(),
            col(&|p| p.first_spawn),
            col(&|p| p.redis_start[0]),
            col(&|p| p.redis_start[1]),
            col(&|p| p.redis_start[2]),
            col(&|p| p.next_spawn[0]),
            col(&|p| p.next_spawn[1]),
            col(&|p| p.tail),
        );
    }
    let _ = writeln!(
        s,
        "- idle: {} statefulsets × 3 redis-server pods, readiness `tcp_socket` period {IDLE_PERIOD}, \
         applied in batches of {BATCH} ({:.0} s in all), settled {} s, sampled {:.0} s; \
         RSS peak {:.1} MB, {} threads, {} open fds, {} pod restarts",
        r.idle_sets,
        r.applied_in.as_secs_f64(),
        SETTLE.as_secs(),
        r.idle.window.as_secs_f64(),
        r.idle.rss_peak_mb,
        r.idle.threads,
        r.idle.fds,
        r.restarts
    );
    let _ = writeln!(
        s,
        "- baseline, same server with nothing applied (after the apply runs): {:.2} % CPU, {:.1} MB RSS over {:.0} s",
        r.base.cpu_pct,
        r.base.rss_mb,
        r.base.window.as_secs_f64()
    );
    s
}
