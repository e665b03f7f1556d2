//! Sentinel failover benchmark (issue 5): how long after a master is killed (`kill -9`) a
//! sentinel-aware client writes again, and how long until `vd` records the new master, with
//! Sentinel's `down-after-milliseconds` at the default 5000 and at 1000.
//!
//! Run with `cargo bench -p vd-cli --bench sentinel` after `cargo build --release -p vd-cli`.
//! It drives the release `vd` binary (or `VD_BIN`) against a `vd server` on a temporary root,
//! needs root (the process runtime), `redis-server` and `redis-sentinel`, prints a markdown
//! section and appends it to docs/benchmarks.md. Tests never assert on speed; this program only
//! measures and reports.
//!
//! For each setting it applies a 3-pod data redis and a 3-sentinel sibling (seed 000's HA
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

use common::{env_num, machine, ms, now_ms, percentile, sleep, sorted, utc_now, Bench, Setup};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const COMMAND: &str = "cargo bench -p vd-cli --bench sentinel";
/// `down-after-milliseconds` of each setting: Sentinel's default, then the seed's example.
const SETTINGS: [u64; 2] = [5000, 1000];
const FAILOVER_TIMEOUT_MS: u64 = 10_000;
/// What the election and promotion add to `down-after-milliseconds` (the anchor).
const ANCHOR_EXTRA_MS: u64 = 1000;
const DATA: &str = "cache";
const SENTINEL: &str = "cache-ha";
const MASTER_NAME: &str = "voodu-master";
const NODES: u32 = 3;
const PORT: u16 = 6379;
const SENTINEL_PORT: u16 = 26379;
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
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);
const CONVERGE_LIMIT: Duration = Duration::from_secs(120);
const FAILOVER_LIMIT: Duration = Duration::from_secs(60);
/// Sentinel log lines worth timing, in the order a failover logs them: (text, label).
const MARKS: [(&str, &str); 7] = [
    ("+sdown master ", "+sdown"),
    ("+odown master ", "+odown"),
    ("+try-failover ", "+try-failover"),
    ("+elected-leader ", "+elected-leader"),
    (
        "+failover-state-send-slaveof-noone ",
        "+failover-state-send-slaveof-noone",
    ),
    ("+promoted-slave ", "+promoted-slave"),
    ("+switch-master ", "+switch-master"),
];

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

/// The HA pair of one setting, in its own scope.
fn manifest(scope: &str, down_after: u64) -> String {
    format!(
        r#"
asset "{scope}" "overrides" {{
  defs = <<-EOT
    sentinel down-after-milliseconds {MASTER_NAME} {down_after}
    sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}
  EOT
}}

redis "{scope}" "{DATA}" {{
  replicas = {NODES}
  probes {{
    liveness {{
      tcp_socket {{ port = {PORT} }}
      period = "2s"
    }}
    readiness {{
      exec {{ command = ["redis-cli", "-h", "${{VOODU_POD_IP}}", "ping"] }}
      period = "300ms"
    }}
  }}
}}

redis "{scope}" "{SENTINEL}" {{
  sentinel {{
    monitor = "{scope}/{DATA}"
  }}
  volumes = ["${{asset.{scope}.overrides.defs}}:/etc/sentinel/conf.d/overrides.conf:ro"]
  probes {{
    readiness {{
      exec {{ command = ["redis-cli", "-h", "${{VOODU_POD_IP}}", "-p", "{SENTINEL_PORT}", "ping"] }}
      period = "300ms"
    }}
  }}
}}
"#
    )
}

/// The pod name the nodes and sentinels know a data pod by.
fn host(scope: &str, ordinal: u32) -> String {
    format!("{DATA}-{ordinal}.{scope}.voodu")
}

/// The ordinal in a data pod's name (`cache-1.<scope>.voodu`).
fn ordinal_of(scope: &str, host: &str) -> Option<u32> {
    host.strip_prefix(DATA)?
        .strip_prefix('-')?
        .strip_suffix(&format!(".{scope}.voodu"))?
        .parse()
        .ok()
}

/// What the benchmark and its writer know of one setting's pods.
#[derive(Clone)]
struct Topo {
    scope: String,
    /// Data pod IP per ordinal.
    data_ips: Vec<String>,
    /// Sentinel pod IP per ordinal.
    sentinel_ips: Vec<String>,
    password: String,
}

fn connect(
    ip: &str,
    port: u16,
    password: Option<&str>,
    timeout: Duration,
) -> redis::RedisResult<redis::Connection> {
    let auth = password.map(|p| format!(":{p}@")).unwrap_or_default();
    let c = redis::Client::open(format!("redis://{auth}{ip}:{port}/"))?
        .get_connection_with_timeout(timeout)?;
    c.set_read_timeout(Some(timeout))?;
    c.set_write_timeout(Some(timeout))?;
    Ok(c)
}

impl Topo {
    fn data(&self, ordinal: u32) -> Result<redis::Connection, String> {
        connect(
            &self.data_ips[ordinal as usize],
            PORT,
            Some(&self.password),
            CONTROL_TIMEOUT,
        )
        .map_err(|e| format!("connect to {}: {e}", host(&self.scope, ordinal)))
    }

    fn sentinel(&self, ordinal: usize) -> Result<redis::Connection, String> {
        connect(
            &self.sentinel_ips[ordinal],
            SENTINEL_PORT,
            None,
            CONTROL_TIMEOUT,
        )
        .map_err(|e| format!("connect to sentinel {ordinal}: {e}"))
    }

    /// `<root>/logs/<scope>-cache-ha.<n>.log`, one per sentinel.
    fn sentinel_logs(&self, b: &Bench) -> Vec<PathBuf> {
        (0..self.sentinel_ips.len())
            .map(|o| {
                b.root()
                    .join("logs")
                    .join(format!("{}-{SENTINEL}.{o}.log", self.scope))
            })
            .collect()
    }
}

/// The pods of `scope/name`, by ordinal: (IP, pid).
fn pods_of(pods: &Value, scope: &str, name: &str, n: u32) -> Result<Vec<(String, u64)>, String> {
    (0..n)
        .map(|o| {
            let pod = format!("{scope}-{name}.{o}");
            let p = pods
                .as_array()
                .and_then(|a| a.iter().find(|p| p["pod"] == pod.as_str()))
                .ok_or_else(|| format!("no pod {pod}"))?;
            let ip = p["ip"]
                .as_str()
                .filter(|ip| !ip.is_empty())
                .ok_or_else(|| format!("no IP for pod {pod}"))?;
            Ok((ip.to_string(), p["pid"].as_u64().unwrap_or(0)))
        })
        .collect()
}

/// Refreshes the pod IPs; returns the data pods' pids.
fn refresh(b: &Bench, t: &mut Topo) -> Result<Vec<u64>, String> {
    let pods = b.json(&["get", "pods"])?;
    let data = pods_of(&pods, &t.scope, DATA, NODES)?;
    t.sentinel_ips = pods_of(&pods, &t.scope, SENTINEL, NODES)?
        .into_iter()
        .map(|(ip, _)| ip)
        .collect();
    t.data_ips = data.iter().map(|(ip, _)| ip.clone()).collect();
    Ok(data.into_iter().map(|(_, pid)| pid).collect())
}

/// The bucket's `REDIS_MASTER_ORDINAL` (0 while unset, before the first failover); None if
/// `vd` could not say.
fn bucket_master(b: &Bench, scope: &str) -> Option<u32> {
    match b.vd(&[
        "config",
        &format!("{scope}/{DATA}"),
        "get",
        "REDIS_MASTER_ORDINAL",
    ]) {
        Ok(s) => s.trim().parse().ok(),
        Err(e) if e.contains("is not set") => Some(0),
        Err(_) => None,
    }
}

fn field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// Whether the HA pair is settled: exactly one master, the other pods replicating from it with
/// the link up, the sentinels healthy (`vd redis:info`) and naming it, the bucket naming it.
/// Ok(master) when settled, Err(what is not) otherwise.
fn settled(b: &Bench, t: &Topo) -> Result<u32, String> {
    let roles = (0..NODES)
        .map(|o| {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut t.data(o)?)
                .map_err(|e| format!("INFO replication on {}: {e}", host(&t.scope, o)))?;
            Ok(info)
        })
        .collect::<Result<Vec<String>, String>>()?;
    let masters: Vec<u32> = (0..NODES)
        .filter(|o| field(&roles[*o as usize], "role") == Some("master"))
        .collect();
    let [m] = masters[..] else {
        return Err(format!("masters: {masters:?}"));
    };
    let want = host(&t.scope, m);
    for o in (0..NODES).filter(|o| *o != m) {
        let info = &roles[o as usize];
        if field(info, "master_host") != Some(want.as_str())
            || field(info, "master_link_status") != Some("up")
        {
            return Err(format!(
                "{} is not a replica of {want} with the link up",
                host(&t.scope, o)
            ));
        }
    }
    let v = b.json(&["redis:info", &format!("{}/{DATA}", t.scope)])?;
    let s = &v["sentinels"];
    let name = format!("{DATA}-{m}");
    let agree = s["rows"]
        .as_array()
        .is_some_and(|rows| rows.iter().all(|r| r["master"] == name.as_str()));
    if s["healthy"] != true || !agree {
        return Err(format!("sentinels: {s}"));
    }
    match bucket_master(b, &t.scope) {
        Some(o) if o == m => Ok(m),
        o => Err(format!("the bucket says {o:?}, the pods {m}")),
    }
}

fn wait_settled(b: &Bench, t: &Topo) -> Result<u32, String> {
    let deadline = Instant::now() + CONVERGE_LIMIT;
    loop {
        match settled(b, t) {
            Ok(m) => return Ok(m),
            Err(e) if Instant::now() > deadline => {
                return Err(format!(
                    "{}: not settled within {CONVERGE_LIMIT:?}: {e}",
                    t.scope
                ))
            }
            Err(_) => sleep(Duration::from_millis(100))?,
        }
    }
}

/// Every sentinel runs with the setting's values (the override file took effect).
fn check_overrides(t: &Topo, down_after: u64) -> Result<(), String> {
    for o in 0..t.sentinel_ips.len() {
        let m: Vec<String> = redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(MASTER_NAME)
            .query(&mut t.sentinel(o)?)
            .map_err(|e| format!("SENTINEL MASTER on sentinel {o}: {e}"))?;
        let get = |k: &str| {
            m.chunks(2)
                .find(|c| c[0] == k)
                .and_then(|c| c.get(1))
                .cloned()
                .unwrap_or_default()
        };
        let (d, f) = (get("down-after-milliseconds"), get("failover-timeout"));
        if d != down_after.to_string() || f != FAILOVER_TIMEOUT_MS.to_string() {
            return Err(format!(
                "sentinel {o} runs with down-after-milliseconds {d}, failover-timeout {f}; \
                 the override file asked for {down_after}, {FAILOVER_TIMEOUT_MS}"
            ));
        }
    }
    Ok(())
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

/// Asks a sentinel where the master is; drops its connection on an error.
fn ask_sentinel(t: &Topo, o: usize, conn: &mut Option<redis::Connection>) -> Result<u32, String> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(
            connect(&t.sentinel_ips[o], SENTINEL_PORT, None, WRITER_TIMEOUT)
                .map_err(|e| format!("connect to sentinel {o}: {e}"))?,
        ),
    };
    let addr: Option<(String, String)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(MASTER_NAME)
        .query(c)
        .map_err(|e| {
            *conn = None;
            format!("sentinel {o}: {e}")
        })?;
    let (h, _) = addr.ok_or_else(|| format!("sentinel {o} knows no master"))?;
    ordinal_of(&t.scope, &h).ok_or_else(|| format!("sentinel {o} names {h}, not a data pod"))
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
            let found = ask_sentinel(t, o, &mut sentinels[o]).and_then(|m| {
                connect(
                    &t.data_ips[m as usize],
                    PORT,
                    Some(&t.password),
                    WRITER_TIMEOUT,
                )
                .map(|c| (m, c))
                .map_err(|e| format!("connect to {}: {e}", host(&t.scope, m)))
            });
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

/// Time of day of a redis log line (`pid:X 21 Nov 2026 13:51:33.123 # …`), ms since midnight.
fn time_of_day(line: &str) -> Option<i64> {
    line.split_whitespace().take(6).find_map(|w| {
        let (hms, milli) = w.split_once('.')?;
        let mut p = hms.split(':').map(|x| x.parse::<i64>().ok());
        let (h, m, s) = (p.next()??, p.next()??, p.next()??);
        let milli: i64 = milli.parse().ok()?;
        (p.next().is_none() && milli < 1000).then_some(((h * 60 + m) * 60 + s) * 1000 + milli)
    })
}

/// For each of [`MARKS`], ms from the kill to the first sentinel logging it, from the logs'
/// text after `offsets`. The logs carry local time of day; a line that does not fall within
/// a minute after the kill (another time zone) is left out.
fn marks(logs: &[PathBuf], offsets: &[u64], kill_wall_ms: i64) -> Vec<Option<f64>> {
    let kill_tod = kill_wall_ms.rem_euclid(86_400_000);
    let mut out = vec![None::<f64>; MARKS.len()];
    for (path, off) in logs.iter().zip(offsets) {
        let bytes = std::fs::read(path).unwrap_or_default();
        let text = String::from_utf8_lossy(bytes.get(*off as usize..).unwrap_or_default());
        for line in text.lines() {
            let Some(i) = MARKS.iter().position(|(m, _)| line.contains(m)) else {
                continue;
            };
            let Some(tod) = time_of_day(line) else {
                continue;
            };
            let mut d = tod - kill_tod;
            if d < -43_200_000 {
                d += 86_400_000;
            }
            if (-1000..=60_000).contains(&d) {
                let d = d as f64;
                out[i] = Some(out[i].map_or(d, |x: f64| x.min(d)));
            }
        }
    }
    out
}

fn log_sizes(logs: &[PathBuf]) -> Vec<u64> {
    logs.iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .collect()
}

fn log_tails(logs: &[PathBuf], n: usize) -> String {
    logs.iter()
        .map(|p| format!("{}:\n{}", p.display(), common::tail(p, n)))
        .collect::<Vec<_>>()
        .join("\n")
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
    // SAFETY: kill(2) on the master pod's pid as `vd get pods` reports it.
    if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } != 0 {
        return Err(format!(
            "kill -9 {pid}: {}",
            std::io::Error::last_os_error()
        ));
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

/// Deletes a setting's resources so the next setting runs on a quiet machine.
fn teardown(b: &Bench, scope: &str) {
    for r in [
        format!("redis/{scope}/{SENTINEL}"),
        format!("redis/{scope}/{DATA}"),
        format!("asset/{scope}/overrides"),
    ] {
        if let Err(e) = b.vd(&["delete", &r, "--prune"]) {
            eprintln!("warning: {e}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let gone = b.json(&["get", "pods"]).is_ok_and(|p| {
            p.as_array()
                .is_some_and(|a| a.iter().all(|p| p["scope"] != scope))
        });
        if gone || sleep(Duration::from_millis(200)).is_err() {
            return;
        }
    }
    eprintln!("warning: pods of {scope} are still there after 60 s");
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
    let file = b.write(&format!("{scope}.hcl"), &manifest(&scope, down_after))?;
    let t0 = Instant::now();
    b.vd(&["apply", "-f", &file, "--timeout", "180s"])?;
    let apply = t0.elapsed();
    let password = b
        .vd(&[
            "config",
            &format!("{scope}/{DATA}"),
            "get",
            "REDIS_PASSWORD",
        ])?
        .trim()
        .to_string();
    let mut t = Topo {
        scope,
        data_ips: vec![],
        sentinel_ips: vec![],
        password,
    };
    refresh(b, &mut t)?;
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
    teardown(b, &t.scope);
    Ok(SettingResult {
        down_after,
        apply,
        healthy,
        cycles,
        total_acked,
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
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

/// Appends the section to docs/benchmarks.md, after a blank line.
fn append_to_docs(section: &str) -> Result<(), String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks.md");
    let old = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let sep = if old.ends_with("\n\n") || old.is_empty() {
        ""
    } else if old.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    std::fs::write(&path, format!("{old}{sep}{section}"))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("appended the section to {}", path.display());
    Ok(())
}

fn secs(v: f64) -> String {
    format!("{:.2} s", v / 1000.0)
}

fn p50_max(v: Vec<f64>) -> (f64, f64) {
    let s = sorted(v);
    (percentile(&s, 50.0), s.last().copied().unwrap_or(f64::NAN))
}

fn section(results: &[SettingResult], runs: usize, load: (String, String)) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Sentinel failover (issue 5)");
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
