//! Proxy benchmark: what `vd proxy` costs a client, beside direct Redis, HAProxy (a `role:master`
//! tcp-check over both servers) and twemproxy (nutcracker) measured in the same run on the same
//! servers; and how long `vd proxy` takes to follow a promotion.
//!
//! Run with `cargo bench -p vd-cli --bench proxy` after `cargo build --release -p vd-cli` and
//! `./scripts/setup --bench` (haproxy, nutcracker, redis-benchmark). It needs no `vd server` and
//! no root: everything runs on loopback with free ports and a temporary directory, and every
//! process it starts is stopped when it ends, fails or gets Ctrl-C. It prints a markdown section
//! for the benchmark docs. Tests never assert on speed; this program only measures and reports.
//!
//! 1. **Throughput and latency.** A master and one replica (`requirepass`/`masterauth`, no
//!    persistence). For each target and each of SET/GET, plain and `-P 16`:
//!    `redis-benchmark -c 50 -n N -t set|get [-P 16] -d 16 --csv`, R rounds with the targets
//!    interleaved (their order rotates each round), median rps and p50 per cell.
//! 2. **Switch time.** One writer RPUSHes increasing ids back-to-back through a `vd proxy`. The
//!    benchmark promotes the replica (`MULTI; REPLICAOF NO ONE; LLEN key; EXEC`, so it knows how
//!    much of the list came by replication), points the old master at it, and (feed modes)
//!    rewrites the proxy's feed file with the new master. Switch time = the promotion reply →
//!    the acknowledgement of the first write the new master executed itself. Afterwards the list
//!    is read back from the new master: acknowledged ids missing from it landed on the old
//!    master (lost when it resynced).
//!
//! Knobs (environment): `VD_BENCH_PROXY_REQUESTS` (requests per plain redis-benchmark run,
//! default 200000; pipelined runs use 10×), `VD_BENCH_PROXY_ROUNDS` (3),
//! `VD_BENCH_PROXY_SWITCHES` (switches per mode, 20; 0 skips that phase), `VD_BENCH_PROXY_PIN=1` (client and servers
//! on CPU 0, proxies on CPU 1), `VD_LOG` (the proxies' log filter, `info`).

#[allow(dead_code)]
mod common;

use common::{env_num, machine, ms, percentile, sleep, sorted, tail, utc_now};
use redis::{ConnectionLike as _, IntoConnectionInfo as _};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const COMMAND: &str = "cargo bench -p vd-cli --bench proxy";
const PASSWORD: &str = "vd-bench-proxy";
const HOST: &str = "127.0.0.1";
const CLIENTS: u32 = 50;
const PIPELINE: u32 = 16;
const DATA_SIZE: u32 = 16;
/// Pipelined runs send this many times the plain runs' requests (they are about 10× faster).
const PIPELINE_FACTOR: usize = 10;
/// Requests of the untimed warm-up run against each target.
const WARM_UP_REQUESTS: usize = 20_000;
/// The goals: throughput, added p50, switch time.
const GOAL_FRACTION: f64 = 0.90;
const GOAL_ADDED_P50_MS: f64 = 0.1;
const GOAL_SWITCH: Duration = Duration::from_millis(50);
/// The name the `vd proxy` under test acknowledges holds as.
const PROXY_ID: &str = "bench";
/// A process must answer within this after it was started.
const START_LIMIT: Duration = Duration::from_secs(20);
/// `VD_BENCH_PROXY_PIN=1`: redis-benchmark and both servers on CPU 0, every proxy on CPU 1,
/// so a proxy's cost shows as latency, not as CPU taken from the client and Redis (on a
/// 2-core machine the unpinned run has them all share both cores).
fn pinned() -> bool {
    std::env::var("VD_BENCH_PROXY_PIN").is_ok_and(|v| v == "1")
}

/// The CPU a process of the benchmark runs on when [`pinned`]: the client and the servers
/// (`redis-*`) on 0, the proxies on 1.
fn pinned_cpu(name: &str) -> Option<usize> {
    pinned().then(|| if name.starts_with("redis") { 0 } else { 1 })
}

/// One redis-benchmark run, at most.
const RUN_LIMIT: Duration = Duration::from_secs(600);
/// HAProxy must route this many fresh connections in a row to the master before it counts as
/// started (its checks first mark the replica down).
const HAPROXY_SETTLED: usize = 15;
/// Writes before a switch, at least, plus an offset spread evenly over `PRE_ROLL_SPREAD` (the
/// proxy's ROLE period), so switches land at every phase of the proxy's polling.
const PRE_ROLL: Duration = Duration::from_millis(300);
const PRE_ROLL_SPREAD: Duration = Duration::from_millis(100);
/// The window of the write gap starts this long before a switch.
const BEFORE: Duration = Duration::from_millis(50);
/// Writes go on this long after the new master executed the first one.
const AFTER_SWITCH: Duration = Duration::from_millis(300);
/// The promotion → first write on the new master, at most (then the switch counts as failed).
const SWITCH_LIMIT: Duration = Duration::from_secs(10);
/// How long the benchmark waits for the proxy to acknowledge a hold (its own limit is 5 s).
const HOLD_ACK_LIMIT: Duration = Duration::from_secs(3);
/// How long the replica may take to catch up with a held master.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(2);
const HEALTHY_LIMIT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longer than any hold, so a held write is measured, not timed out.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

fn main() {
    common::catch_signals();
    let tools = match Tools::find() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let dir = match tempfile::Builder::new().prefix("vd-bench-proxy-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: tempdir: {e}");
            std::process::exit(1);
        }
    };
    let result = run(&tools, dir.path());
    eprintln!("stopped every process the benchmark started");
    drop(dir);
    match result {
        Ok(report) => println!("\n{report}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// The programs the benchmark runs.
struct Tools {
    redis_server: PathBuf,
    redis_benchmark: PathBuf,
    haproxy: PathBuf,
    nutcracker: PathBuf,
    /// The release `vd` if it has `vd proxy`, else why the vd proxy is skipped.
    vd: Result<PathBuf, String>,
}

impl Tools {
    fn find() -> Result<Tools, String> {
        let need = |name: &str, package: &str| {
            program(name).ok_or_else(|| {
                format!(
                    "`{name}` is not installed (apt-get install {package}, or ./scripts/setup --bench)"
                )
            })
        };
        Ok(Tools {
            redis_server: need("redis-server", "redis-server")?,
            redis_benchmark: need("redis-benchmark", "redis-tools")?,
            haproxy: need("haproxy", "haproxy")?,
            nutcracker: need("nutcracker", "nutcracker")?,
            vd: common::locate_vd().and_then(|vd| {
                let out = Command::new(&vd)
                    .args(["proxy", "--help"])
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| format!("run {}: {e}", vd.display()))?;
                if out.status.success() {
                    Ok(vd)
                } else {
                    Err(format!(
                        "{} has no `proxy` command (rebuild with `cargo build --release -p vd-cli`)",
                        vd.display()
                    ))
                }
            }),
        })
    }
}

/// `name` on `PATH`, or in the sbin directories (where Debian puts haproxy and nutcracker),
/// which are not on every user's `PATH`.
fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// Makes the child die with this program (`PR_SET_PDEATHSIG`), and with `cpu` run on that CPU
/// only.
// `unsafe`: both must be set in the child between fork and exec, which std allows only through
// the unsafe `pre_exec` (the code there may make async-signal-safe calls only).
#[allow(unsafe_code)]
fn tie_and_pin(cmd: &mut Command, cpu: Option<usize>) {
    let cpus = cpu.map(|cpu| {
        // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            set
        }
    });
    // SAFETY: prctl and sched_setaffinity are async-signal-safe and touch only this
    // (forked) process.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if let Some(set) = &cpus {
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// A child process, stopped when dropped: SIGTERM, SIGKILL after 2 s. It runs in its own
/// process group (Ctrl-C reaches only the benchmark, which then stops it) and dies with the
/// benchmark even if that is killed (`PR_SET_PDEATHSIG`).
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout to `out` and stderr to `log`.
    fn spawn(name: &str, cmd: &mut Command, out: &Path, log: &Path) -> Result<Proc, String> {
        let create = |p: &Path| File::create(p).map_err(|e| format!("create {}: {e}", p.display()));
        let err = create(log)?;
        let out = if out == log {
            err.try_clone()
                .map_err(|e| format!("{}: {e}", log.display()))?
        } else {
            create(out)?
        };
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        cmd.process_group(0);
        tie_and_pin(cmd, pinned_cpu(name));
        let child = cmd.spawn().map_err(|e| format!("start {name}: {e}"))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// An error (with its log) if the process has exited.
    fn alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(st)) => Err(format!(
                "{} exited ({st}); its log:\n{}",
                self.name,
                tail(&self.log, 20)
            )),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    /// User + system CPU seconds so far (Linux `/proc/PID/stat`).
    fn cpu_secs(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name (which may hold spaces) start at field 3.
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
        (hz > 0).then(|| ticks / hz as f64)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Ok(pid) = i32::try_from(self.child.id()) {
                // Our own child, not reaped yet, so the pid is still its own.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `n` distinct free loopback ports (bound together, then released).
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((HOST, 0)).map_err(|e| format!("bind {HOST}:0: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string()))
        .collect()
}

fn connect(port: u16) -> redis::RedisResult<redis::Connection> {
    connect_with(port, true)
}

/// `set_lib_name`: whether the client sends its `CLIENT SETINFO` pair after `AUTH`, as
/// redis-rs does by default; twemproxy closes the connection on `CLIENT`.
fn connect_with(port: u16, set_lib_name: bool) -> redis::RedisResult<redis::Connection> {
    let info = format!("redis://:{PASSWORD}@{HOST}:{port}/").into_connection_info()?;
    let info = if set_lib_name {
        info
    } else {
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        info.set_redis_settings(settings)
    };
    let c = redis::Client::open(info)?.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    c.set_read_timeout(Some(IO_TIMEOUT))?;
    c.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(c)
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

/// The running servers and proxies.
struct Lab {
    dir: PathBuf,
    /// The two redis servers' ports.
    redis: [u16; 2],
    /// Which of them is the master now.
    master: usize,
    /// The feed file and the epoch last written to it.
    feed: PathBuf,
    epoch: u64,
    procs: Vec<Proc>,
}

impl Lab {
    fn start(&mut self, name: &str, cmd: &mut Command) -> Result<(), String> {
        let log = self.dir.join(format!("{name}.log"));
        let p = Proc::spawn(name, cmd, &log, &log)?;
        self.procs.push(p);
        Ok(())
    }

    fn proc(&self, name: &str) -> Option<&Proc> {
        self.procs.iter().find(|p| p.name == name)
    }

    fn stop(&mut self, name: &str) {
        self.procs.retain(|p| p.name != name);
    }

    /// An error if any process has exited.
    fn alive(&mut self) -> Result<(), String> {
        self.procs.iter_mut().try_for_each(Proc::alive)
    }

    fn node(&self, i: usize) -> Result<redis::Connection, String> {
        connect(self.redis[i]).map_err(|e| format!("connect to redis-{i}: {e}"))
    }

    /// Writes the next epoch to the feed: temporary file, then rename.
    fn write_feed(&mut self, master: usize, hold: bool) -> Result<(), String> {
        self.epoch += 1;
        let text = serde_json::json!({
            "epoch": self.epoch,
            "master": format!("{HOST}:{}", self.redis[master]),
            "hold": hold,
        })
        .to_string();
        let tmp = self.feed.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(|e| format!("write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &self.feed).map_err(|e| format!("rename to the feed: {e}"))
    }

    /// Where the proxy acknowledges a hold.
    fn held_path(&self) -> PathBuf {
        self.feed
            .parent()
            .unwrap_or(&self.dir)
            .join(format!("held.{PROXY_ID}"))
    }

    /// The last lines of every process's log.
    fn tails(&self) -> String {
        let mut s = String::new();
        for p in &self.procs {
            let _ = writeln!(s, "--- {} log tail:\n{}", p.name, tail(&p.log, 15));
        }
        s
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The proxies first, the servers last.
        while let Some(p) = self.procs.pop() {
            drop(p);
        }
    }
}

/// Waits until `f` succeeds, retrying every 50 ms for `START_LIMIT`.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() > deadline => {
                return Err(format!("{what} within {START_LIMIT:?}: {e}"))
            }
            Err(_) => sleep(Duration::from_millis(50))?,
        }
    }
}

/// Waits until `master` is the master and the other node replicates from it, synced, and has
/// acknowledged the master's offset (`WAIT 1`). Returns how long the replica reported its link up
/// without acknowledging anything, if it did: after a diskless full resync, redis 7.0 may start
/// streaming to the replica only at its next `REPLCONF ACK` (up to a second later), and a
/// promotion in that window would drop every write since the resync.
fn wait_healthy(lab: &Lab, master: usize) -> Result<Option<Duration>, String> {
    let deadline = Instant::now() + HEALTHY_LIMIT;
    let other = 1 - master;
    let mut link_up: Option<Instant> = None;
    loop {
        let t = Instant::now();
        let state = (|| -> Result<bool, String> {
            let mut mc = lab.node(master)?;
            let m = info_replication(&mut mc)?;
            let r = info_replication(&mut lab.node(other)?)?;
            let port = lab.redis[master].to_string();
            let ok = field(&m, "role") == Some("master")
                && field(&m, "connected_slaves") == Some("1")
                && field(&r, "role") == Some("slave")
                && field(&r, "master_port") == Some(port.as_str())
                && field(&r, "master_link_status") == Some("up")
                && field(&r, "master_sync_in_progress") == Some("0");
            if !ok {
                return Err(format!(
                    "master: {} / replica: {}",
                    m.replace("\r\n", " "),
                    r.replace("\r\n", " ")
                ));
            }
            let acked: i64 = redis::cmd("WAIT")
                .arg(1)
                .arg(100)
                .query(&mut mc)
                .map_err(|e| format!("WAIT: {e}"))?;
            Ok(acked >= 1)
        })();
        match state {
            Ok(true) => return Ok(link_up.map(|t| t.elapsed())),
            Ok(false) => {
                link_up.get_or_insert(t);
            }
            Err(e) if Instant::now() > deadline => {
                return Err(format!(
                    "redis-{master} did not become a master with a synced replica within {HEALTHY_LIMIT:?}: {e}"
                ))
            }
            Err(_) => sleep(Duration::from_millis(5))?,
        }
        if Instant::now() > deadline {
            return Err(format!(
                "redis-{} reports its link up but acknowledged nothing within {HEALTHY_LIMIT:?}",
                other
            ));
        }
    }
}

/// A write through `port` succeeds (so it reaches the master).
fn writes_through(port: u16, set_lib_name: bool) -> Result<(), String> {
    let mut c = connect_with(port, set_lib_name).map_err(|e| e.to_string())?;
    redis::cmd("SET")
        .arg("bench:probe")
        .arg("1")
        .query::<String>(&mut c)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A benchmark target: something redis-benchmark connects to.
struct Target {
    label: &'static str,
    port: u16,
    /// The proxy process whose CPU time is sampled (none for direct Redis).
    proc: Option<&'static str>,
}

#[derive(Clone, Copy)]
struct Test {
    cmd: &'static str,
    pipeline: u32,
}

impl Test {
    fn label(self) -> String {
        if self.pipeline > 1 {
            format!("{} -P {}", self.cmd.to_uppercase(), self.pipeline)
        } else {
            self.cmd.to_uppercase()
        }
    }
}

const TESTS: [Test; 4] = [
    Test {
        cmd: "set",
        pipeline: 1,
    },
    Test {
        cmd: "get",
        pipeline: 1,
    },
    Test {
        cmd: "set",
        pipeline: PIPELINE,
    },
    Test {
        cmd: "get",
        pipeline: PIPELINE,
    },
];

/// One redis-benchmark run.
#[derive(Clone, Copy)]
struct Sample {
    rps: f64,
    p50: f64,
    p99: f64,
    /// The proxy's CPU over the run, % of one core.
    cpu: Option<f64>,
}

const NODE_NAMES: [&str; 2] = ["redis-0", "redis-1"];

fn start_redis(lab: &mut Lab, tools: &Tools, i: usize) -> Result<(), String> {
    let data = lab.dir.join(NODE_NAMES[i]);
    std::fs::create_dir_all(&data).map_err(|e| format!("create {}: {e}", data.display()))?;
    let mut cmd = Command::new(&tools.redis_server);
    cmd.args(["--bind", HOST, "--port", &lab.redis[i].to_string()])
        .args(["--requirepass", PASSWORD, "--masterauth", PASSWORD])
        .args(["--save", "", "--appendonly", "no"])
        // A full resync (the demoted master's) starts at once, not after the default 5 s.
        .args(["--repl-diskless-sync-delay", "0"])
        .arg("--dir")
        .arg(&data);
    if i != lab.master {
        cmd.args(["--replicaof", HOST, &lab.redis[lab.master].to_string()]);
    }
    lab.start(NODE_NAMES[i], &mut cmd)?;
    let port = lab.redis[i];
    wait_for(&format!("redis-{i} did not answer"), || {
        let mut c = connect(port).map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query::<String>(&mut c)
            .map_err(|e| e.to_string())
    })?;
    Ok(())
}

/// `vd proxy` over both servers, following the feed if `feed`, else ROLE polling only.
fn start_vd_proxy(
    lab: &mut Lab,
    vd: &Path,
    name: &str,
    port: u16,
    feed: bool,
    extra: &[&str],
) -> Result<(), String> {
    let mut cmd = Command::new(vd);
    cmd.args(["proxy", "--listen", &format!("{HOST}:{port}")])
        .args(extra);
    for p in lab.redis {
        cmd.args(["--upstream", &format!("{HOST}:{p}")]);
    }
    if feed {
        cmd.arg("--feed").arg(&lab.feed).args(["--id", PROXY_ID]);
    }
    cmd.env("REDIS_PASSWORD", PASSWORD).env(
        "VD_LOG",
        std::env::var("VD_LOG").unwrap_or_else(|_| "info".into()),
    );
    lab.start(name, &mut cmd)?;
    wait_for(
        &format!("{name} did not pass a write to the master"),
        || {
            lab.procs.iter_mut().try_for_each(Proc::alive)?;
            writes_through(port, true)
        },
    )
}

/// HAProxy in TCP mode over both servers, with the common `role:master` tcp-check.
fn start_haproxy(lab: &mut Lab, tools: &Tools, port: u16) -> Result<(), String> {
    let servers: String = lab
        .redis
        .iter()
        .enumerate()
        .map(|(i, p)| format!("    server redis-{i} {HOST}:{p} check inter 1s fall 2 rise 2\n"))
        .collect();
    let cfg = format!(
        "global
    maxconn 4096
defaults
    mode tcp
    timeout connect 2s
    timeout client 1m
    timeout server 1m
    timeout check 1s
frontend redis_in
    bind {HOST}:{port}
    default_backend redis_master
backend redis_master
    option tcp-check
    tcp-check connect
    tcp-check send AUTH\\ {PASSWORD}\\r\\n
    tcp-check expect string +OK
    tcp-check send info\\ replication\\r\\n
    tcp-check expect string role:master
    tcp-check send QUIT\\r\\n
    tcp-check expect string +OK
    default-server on-marked-down shutdown-sessions
{servers}"
    );
    let path = lab.dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).map_err(|e| format!("write {}: {e}", path.display()))?;
    let mut cmd = Command::new(&tools.haproxy);
    cmd.arg("-db").arg("-f").arg(&path);
    lab.start("haproxy", &mut cmd)?;
    // Until its checks have marked the replica down, HAProxy sends connections to both.
    let mut in_a_row = 0;
    wait_for(
        "haproxy did not route every connection to the master",
        || {
            lab.procs.iter_mut().try_for_each(Proc::alive)?;
            let role = connect(port)
                .map_err(|e| e.to_string())
                .and_then(|mut c| info_replication(&mut c))
                .map(|i| field(&i, "role").unwrap_or("?").to_string());
            if role.as_deref() == Ok("master") {
                in_a_row += 1;
            } else {
                in_a_row = 0;
            }
            if in_a_row >= HAPROXY_SETTLED {
                Ok(())
            } else {
                Err(format!("{in_a_row} in a row; last: {role:?}"))
            }
        },
    )
}

/// twemproxy with the master as its only server (it does not follow a failover).
fn start_twemproxy(lab: &mut Lab, tools: &Tools, port: u16, stats: u16) -> Result<(), String> {
    let cfg = format!(
        "bench:
  listen: {HOST}:{port}
  hash: fnv1a_64
  distribution: ketama
  redis: true
  redis_auth: {PASSWORD}
  preconnect: true
  auto_eject_hosts: false
  servers:
   - {HOST}:{}:1 master
",
        lab.redis[lab.master]
    );
    let path = lab.dir.join("nutcracker.yml");
    std::fs::write(&path, cfg).map_err(|e| format!("write {}: {e}", path.display()))?;
    let mut cmd = Command::new(&tools.nutcracker);
    cmd.arg("-c")
        .arg(&path)
        .args(["-a", HOST, "-s", &stats.to_string()]);
    lab.start("twemproxy", &mut cmd)?;
    wait_for("twemproxy did not pass a write to the master", || {
        lab.procs.iter_mut().try_for_each(Proc::alive)?;
        writes_through(port, false)
    })
}

/// Requests of a run of `test`.
fn requests(test: Test, plain: usize) -> usize {
    if test.pipeline > 1 {
        plain * PIPELINE_FACTOR
    } else {
        plain
    }
}

/// The exact redis-benchmark arguments of a run.
fn benchmark_args(port: u16, test: Test, n: usize) -> Vec<String> {
    let mut a: Vec<String> = [
        "-h",
        HOST,
        "-p",
        &port.to_string(),
        "-a",
        PASSWORD,
        "-c",
        &CLIENTS.to_string(),
        "-n",
        &n.to_string(),
        "-t",
        test.cmd,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if test.pipeline > 1 {
        a.extend(["-P".to_string(), test.pipeline.to_string()]);
    }
    a.extend(["-d".into(), DATA_SIZE.to_string(), "--csv".into()]);
    a
}

/// What redis-benchmark prints on stderr that is not a problem: a proxy that refuses its
/// `CONFIG GET save` / `appendonly` (twemproxy) makes it warn once.
fn harmless(line: &str) -> bool {
    line.contains("Could not fetch server CONFIG")
}

/// Runs redis-benchmark once; returns the sample and any unexpected stderr lines.
fn redis_benchmark(
    lab: &mut Lab,
    tools: &Tools,
    target: &Target,
    test: Test,
    n: usize,
) -> Result<(Sample, Vec<String>), String> {
    lab.alive()?;
    let (out, err) = (lab.dir.join("rb.csv"), lab.dir.join("rb.err"));
    let mut cmd = Command::new(&tools.redis_benchmark);
    cmd.args(benchmark_args(target.port, test, n));
    let cpu0 = target.proc.and_then(|p| lab.proc(p)?.cpu_secs());
    let t0 = Instant::now();
    let mut p = Proc::spawn("redis-benchmark", &mut cmd, &out, &err)?;
    let status = loop {
        if let Some(st) = p.child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if t0.elapsed() > RUN_LIMIT {
            return Err(format!(
                "redis-benchmark against {} ({}) ran longer than {RUN_LIMIT:?}",
                target.label,
                test.label()
            ));
        }
        sleep(Duration::from_millis(20))?;
    };
    let wall = t0.elapsed().as_secs_f64();
    let cpu1 = target.proc.and_then(|p| lab.proc(p)?.cpu_secs());
    drop(p);
    let csv = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    let what = format!(
        "redis-benchmark against {} ({})",
        target.label,
        test.label()
    );
    if !status.success() {
        return Err(format!("{what} failed ({status}):\n{csv}\n{stderr}"));
    }
    let notes: Vec<String> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect();
    let problems: Vec<&String> = notes.iter().filter(|l| !harmless(l)).collect();
    if problems.iter().any(|l| l.to_lowercase().contains("error")) {
        return Err(format!("{what} saw errors:\n{problems:?}"));
    }
    let mut sample = parse_csv(&csv).map_err(|e| format!("{what}: {e}:\n{csv}"))?;
    sample.cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) if wall > 0.0 => Some((b - a) / wall * 100.0),
        _ => None,
    };
    Ok((sample, notes))
}

/// redis-benchmark 7's `--csv`: a header line, then one line per test.
fn parse_csv(csv: &str) -> Result<Sample, String> {
    let cells = |l: &str| -> Vec<String> {
        l.split(',')
            .map(|c| c.trim().trim_matches('"').to_string())
            .collect()
    };
    let mut lines = csv.lines().filter(|l| l.starts_with('"'));
    let header = cells(lines.next().ok_or("no CSV header")?);
    let row = cells(lines.next().ok_or("no CSV row")?);
    let col = |name: &str| -> Result<f64, String> {
        let i = header
            .iter()
            .position(|h| h == name)
            .ok_or(format!("no `{name}` column"))?;
        row.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or(format!("bad `{name}` value"))
    };
    Ok(Sample {
        rps: col("rps")?,
        p50: col("p50_latency_ms")?,
        p99: col("p99_latency_ms")?,
        cpu: None,
    })
}

/// The median (the mean of the middle two for an even count).
fn median(v: &[f64]) -> f64 {
    let s = sorted(v.to_vec());
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// How a switch reaches the proxy.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Promote, then rewrite the feed with the new master (the controller after a failover).
    Feed,
    /// Feed `hold`, wait for the proxy's acknowledgement and the replica to catch up, promote,
    /// then rewrite the feed with the new master (the controller's planned switchover).
    Hold,
    /// Promote and demote; the proxy has no feed and finds out by polling ROLE.
    Poll,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Feed => "`vd proxy --feed`: promote, then rewrite the feed",
            Mode::Hold => "`vd proxy --feed`: hold, promote, rewrite the feed",
            Mode::Poll => "`vd proxy` without a feed (ROLE polling)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Mode::Feed => "feed",
            Mode::Hold => "hold",
            Mode::Poll => "poll",
        }
    }
}

/// One write the writer had acknowledged.
#[derive(Clone, Copy)]
struct Ack {
    id: u64,
    sent: Instant,
    acked: Instant,
}

#[derive(Default)]
struct WriterLog {
    /// In id order.
    acks: Vec<Ack>,
    errors: Vec<(Instant, String)>,
}

/// A writer thread; dropping it stops and joins the thread.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    handle: Option<JoinHandle<WriterLog>>,
}

impl Writer {
    fn start(port: u16, key: String) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), acked.clone());
        let handle = std::thread::spawn(move || write_loop(port, &key, &flag, &count));
        Writer {
            stop,
            acked,
            handle: Some(handle),
        }
    }

    fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
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

/// RPUSHes increasing ids back-to-back through the proxy at `port`, the way an application
/// does: one connection, reconnecting (every millisecond) only when it breaks.
fn write_loop(port: u16, key: &str, stop: &AtomicBool, acked: &AtomicUsize) -> WriterLog {
    let mut log = WriterLog::default();
    let mut conn: Option<redis::Connection> = None;
    let mut id = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(port) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    log.errors.push((Instant::now(), format!("connect: {e}")));
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
            },
        };
        let sent = Instant::now();
        match redis::cmd("RPUSH").arg(key).arg(id).query::<i64>(c) {
            Ok(_) => {
                log.acks.push(Ack {
                    id,
                    sent,
                    acked: Instant::now(),
                });
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                log.errors.push((Instant::now(), e.to_string()));
                if e.is_io_error() || e.is_connection_dropped() || !c.is_open() {
                    conn = None;
                }
            }
        }
        id += 1;
    }
    log
}

/// One measured switch.
struct SwitchRun {
    from: usize,
    /// Promotion reply → the first write the new master executed was acknowledged; `Err` if
    /// none came within `SWITCH_LIMIT`.
    switch: Result<Duration, String>,
    /// The longest interval between consecutive acknowledged writes around the switch.
    gap: Option<Duration>,
    /// Hold mode: feed written → the proxy acknowledged the hold (None: no acknowledgement).
    hold_ack: Option<Duration>,
    /// Hold mode: hold acknowledged → the replica had the master's offset.
    catch_up: Option<Duration>,
    acked: usize,
    errors: usize,
    first_error: Option<String>,
    /// Acknowledged before the promotion reply, not on the new master: not yet replicated.
    lost_unreplicated: usize,
    /// Acknowledged after the promotion, before the first write the new master executed, and
    /// not on it: the proxy still sent them to the old master.
    lost_window: usize,
    /// Acknowledged after the first write the new master executed, and not on it: the proxy
    /// went back to the demoted master. Must be 0.
    after_switch_on_old: usize,
    /// After the switch (or before it): how long the replica had its link up without
    /// acknowledging anything.
    replica_stalled: Option<Duration>,
}

/// The `i`th offset of a low-discrepancy sequence over `PRE_ROLL_SPREAD` (golden ratio steps).
fn spread(i: usize) -> Duration {
    let frac = (i as f64 * 0.618_033_988_749_895).fract();
    PRE_ROLL_SPREAD.mul_f64(frac)
}

fn offset(c: &mut redis::Connection, key: &str) -> Result<Option<u64>, String> {
    let info = info_replication(c)?;
    Ok(field(&info, key).and_then(|v| v.parse().ok()))
}

/// One switch from the current master to the other node, writes going through `port`.
fn switch_once(lab: &mut Lab, mode: Mode, port: u16, i: usize) -> Result<SwitchRun, String> {
    let (from, to) = (lab.master, 1 - lab.master);
    let stalled_before = wait_healthy(lab, from)?;
    lab.alive()?;
    let key = format!("sw:{}:{i}", mode.key());
    // Control connections, set up before the switch so their setup does not count.
    let mut old = lab.node(from)?;
    let mut new = lab.node(to)?;
    let writer = Writer::start(port, key.clone());
    sleep(PRE_ROLL + spread(i))?;
    if writer.acked() == 0 {
        let log = writer.finish()?;
        return Err(format!(
            "the writer had no write acknowledged through the proxy in {PRE_ROLL:?}: {:?}",
            log.errors.first()
        ));
    }
    let start = Instant::now();
    let (mut hold_ack, mut catch_up) = (None, None);
    if mode == Mode::Hold {
        lab.write_feed(from, true)?;
        let held = lab.held_path();
        let deadline = start + HOLD_ACK_LIMIT;
        while Instant::now() < deadline {
            let epoch = std::fs::read_to_string(&held).ok();
            if epoch.and_then(|e| e.trim().parse::<u64>().ok()) == Some(lab.epoch) {
                hold_ack = Some(start.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        // What a planned switchover waits for: the replica has everything the master has.
        let acked_at = Instant::now();
        let deadline = acked_at + CATCH_UP_LIMIT;
        while Instant::now() < deadline {
            let m = offset(&mut old, "master_repl_offset")?;
            if m.is_some() && offset(&mut new, "slave_repl_offset")? >= m {
                catch_up = Some(acked_at.elapsed());
                break;
            }
        }
    }
    // Promote, and learn how much of the list the new master got by replication.
    let (_, replicated): (String, usize) = redis::pipe()
        .atomic()
        .cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .cmd("LLEN")
        .arg(&key)
        .query(&mut new)
        .map_err(|e| format!("promote redis-{to}: {e}"))?;
    let t0 = Instant::now();
    if mode != Mode::Poll {
        lab.write_feed(to, false)?;
    }
    let _: String = redis::cmd("REPLICAOF")
        .arg(HOST)
        .arg(lab.redis[to])
        .query(&mut old)
        .map_err(|e| format!("demote redis-{from}: {e}"))?;
    lab.master = to;
    // Wait for the first write the new master executes itself.
    let mut switched = false;
    while t0.elapsed() < SWITCH_LIMIT {
        let len: usize = redis::cmd("LLEN")
            .arg(&key)
            .query(&mut new)
            .map_err(|e| format!("LLEN on redis-{to}: {e}"))?;
        if len > replicated {
            switched = true;
            break;
        }
        sleep(Duration::from_millis(1))?;
    }
    if switched {
        sleep(AFTER_SWITCH)?;
    }
    let log = writer.finish()?;
    // The demoted master's resync; it must be streaming before the next switch.
    let replica_stalled = wait_healthy(lab, to)?.max(stalled_before);
    let list: Vec<u64> = redis::cmd("LRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query(&mut new)
        .map_err(|e| format!("LRANGE on redis-{to}: {e}"))?;
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query(&mut new)
        .map_err(|e| format!("DEL on redis-{to}: {e}"))?;
    let stored: HashSet<u64> = list.iter().copied().collect();
    let ack_of = |id: u64| {
        log.acks
            .binary_search_by_key(&id, |a| a.id)
            .ok()
            .map(|k| log.acks[k])
    };
    // The first write the new master executed whose acknowledgement the writer got.
    let first = list
        .get(replicated..)
        .unwrap_or(&[])
        .iter()
        .find_map(|id| ack_of(*id));
    let switch = match first {
        Some(a) => Ok(a.acked.saturating_duration_since(t0)),
        None => Err(format!(
            "no write through the proxy reached the new master within {SWITCH_LIMIT:?}"
        )),
    };
    let missing = |a: &&Ack| !stored.contains(&a.id);
    let first_id = first.map_or(u64::MAX, |a| a.id);
    let lost_unreplicated = log
        .acks
        .iter()
        .filter(missing)
        .filter(|a| a.acked < t0)
        .count();
    let lost_window = log
        .acks
        .iter()
        .filter(missing)
        .filter(|a| a.acked >= t0 && a.id < first_id)
        .count();
    let after_switch_on_old = log
        .acks
        .iter()
        .filter(missing)
        .filter(|a| a.id > first_id)
        .count();
    let gap = first.and_then(|f| {
        let from = start.checked_sub(BEFORE).unwrap_or(start);
        log.acks
            .windows(2)
            .filter(|w| w[1].acked >= from && w[0].acked <= f.acked)
            .map(|w| w[1].acked - w[0].acked)
            .max()
    });
    // Writes sent before the promotion reply are never the first the new master executed
    // in feed and poll modes (replication stopped at the promotion), but only the hold makes
    // this exact: a sanity check of the classification.
    if let Some(f) = first {
        if mode != Mode::Hold && f.sent < start {
            eprintln!("  note: run {i}: the first write on the new master was sent before the switch started");
        }
    }
    Ok(SwitchRun {
        from,
        switch,
        gap,
        hold_ack,
        catch_up,
        acked: log.acks.len(),
        errors: log.errors.len(),
        first_error: log.errors.first().map(|(_, e)| e.clone()),
        lost_unreplicated,
        lost_window,
        after_switch_on_old,
        replica_stalled,
    })
}

/// `k` switches in one mode, alternating direction.
fn switches(lab: &mut Lab, mode: Mode, port: u16, k: usize) -> Result<Vec<SwitchRun>, String> {
    let mut runs = Vec::with_capacity(k);
    for i in 0..k {
        let r = switch_once(lab, mode, port, i)?;
        eprintln!(
            "  {} switch {}/{k} redis-{} → redis-{}: {} (errors {}, lost {}+{}, on the old master after {}{})",
            mode.key(),
            i + 1,
            r.from,
            1 - r.from,
            match &r.switch {
                Ok(d) => format!("{:.1} ms", ms(*d)),
                Err(e) => e.clone(),
            },
            r.errors,
            r.lost_unreplicated,
            r.lost_window,
            r.after_switch_on_old,
            r.replica_stalled
                .map(|d| format!("; then the replica acknowledged nothing for {:.0} ms", ms(d)))
                .unwrap_or_default()
        );
        runs.push(r);
    }
    Ok(runs)
}

/// Everything the report needs.
struct Results {
    versions: Vec<(&'static str, String)>,
    vd_skipped: Option<String>,
    plain: usize,
    rounds: usize,
    targets: Vec<Target>,
    /// `[target][test]` → one sample per round.
    samples: Vec<Vec<Vec<Sample>>>,
    notes: Vec<String>,
    switches: Vec<(Mode, Result<Vec<SwitchRun>, String>)>,
    load: (String, String),
    seconds: f64,
}

fn run(tools: &Tools, dir: &Path) -> Result<String, String> {
    let began = Instant::now();
    let load_before = load_average();
    let plain = env_num("VD_BENCH_PROXY_REQUESTS", 200_000).max(1);
    let rounds = env_num("VD_BENCH_PROXY_ROUNDS", 3).max(1);
    let k = env_num("VD_BENCH_PROXY_SWITCHES", 20);
    let ports = free_ports(8)?;
    let feed_dir = dir.join("feed");
    std::fs::create_dir_all(&feed_dir).map_err(|e| format!("create the feed dir: {e}"))?;
    let mut lab = Lab {
        dir: dir.to_path_buf(),
        redis: [ports[0], ports[1]],
        master: 0,
        feed: feed_dir.join("feed.json"),
        epoch: 0,
        procs: Vec::new(),
    };
    let result = measure(tools, &mut lab, &ports, plain, rounds, k);
    let mut r = match result {
        Ok(r) => r,
        Err(e) if e == "interrupted" => return Err(e),
        Err(e) => return Err(format!("{e}\n{}", lab.tails())),
    };
    drop(lab);
    r.load = (load_before, load_average());
    r.seconds = began.elapsed().as_secs_f64();
    Ok(report(&r))
}

fn measure(
    tools: &Tools,
    lab: &mut Lab,
    ports: &[u16],
    plain: usize,
    rounds: usize,
    k: usize,
) -> Result<Results, String> {
    let (vd_port, poll_port, haproxy_port, twem_port, twem_stats) =
        (ports[2], ports[3], ports[4], ports[5], ports[6]);
    let dedicated_port = ports[7];
    eprintln!(
        "starting redis-0 (master) and redis-1 (replica) in {}",
        lab.dir.display()
    );
    start_redis(lab, tools, 0)?;
    start_redis(lab, tools, 1)?;
    wait_healthy(lab, 0)?;
    let mut targets = vec![Target {
        label: "direct Redis",
        port: lab.redis[0],
        proc: None,
    }];
    let vd_skipped = tools.vd.as_ref().err().cloned();
    if let Ok(vd) = &tools.vd {
        lab.write_feed(0, false)?;
        eprintln!("starting vd proxy (with the feed) and vd proxy (ROLE polling only)");
        start_vd_proxy(lab, vd, "vd-proxy", vd_port, true, &[])?;
        start_vd_proxy(lab, vd, "vd-proxy-poll", poll_port, false, &[])?;
        start_vd_proxy(
            lab,
            vd,
            "vd-proxy-dedicated",
            dedicated_port,
            // No feed: a second proxy acknowledging holds under the same id would let the
            // switch phase go on before the measured proxy holds.
            false,
            &["--dedicated", "--threads", "2"],
        )?;
        targets.push(Target {
            label: "vd proxy",
            port: vd_port,
            proc: Some("vd-proxy"),
        });
        targets.push(Target {
            label: "vd proxy --dedicated --threads 2",
            port: dedicated_port,
            proc: Some("vd-proxy-dedicated"),
        });
    } else if let Err(e) = &tools.vd {
        eprintln!("SKIPPING the vd proxy: {e}");
    }
    eprintln!("starting haproxy and twemproxy");
    start_haproxy(lab, tools, haproxy_port)?;
    start_twemproxy(lab, tools, twem_port, twem_stats)?;
    targets.push(Target {
        label: "HAProxy",
        port: haproxy_port,
        proc: Some("haproxy"),
    });
    targets.push(Target {
        label: "twemproxy",
        port: twem_port,
        proc: Some("twemproxy"),
    });

    let mut notes: Vec<String> = Vec::new();
    let mut note = |target: &Target, lines: Vec<String>| {
        for l in lines {
            let n = format!("{}: {l}", target.label);
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
    };
    eprintln!("warm-up: {WARM_UP_REQUESTS} SETs against each target (not counted)");
    for t in &targets {
        let (_, n) = redis_benchmark(lab, tools, t, TESTS[0], WARM_UP_REQUESTS)?;
        note(t, n);
    }
    let mut samples = vec![vec![Vec::new(); TESTS.len()]; targets.len()];
    for round in 0..rounds {
        for (ti, test) in TESTS.iter().enumerate() {
            for j in 0..targets.len() {
                // Rotate the order each round so no target always runs first.
                let x = (j + round) % targets.len();
                let t = &targets[x];
                let (s, n) = redis_benchmark(lab, tools, t, *test, requests(*test, plain))?;
                eprintln!(
                    "  round {}/{rounds} {:<9} {:<12} {:>10.0} rps  p50 {:.3} ms{}",
                    round + 1,
                    test.label(),
                    t.label,
                    s.rps,
                    s.p50,
                    s.cpu.map(|c| format!("  cpu {c:.0}%")).unwrap_or_default()
                );
                note(t, n);
                samples[x][ti].push(s);
            }
        }
    }

    let mut switch_results = Vec::new();
    if vd_skipped.is_none() && k > 0 {
        // The others would only poll an old master or be confused by the switches.
        lab.stop("haproxy");
        lab.stop("twemproxy");
        lab.stop("vd-proxy-poll");
        // A mode that fails is reported as failed; the others still run.
        let mut phase = |lab: &mut Lab, mode: Mode, port: u16| -> Result<(), String> {
            eprintln!("switch time, {}", mode.label());
            let r = switches(lab, mode, port, k);
            match &r {
                Err(e) if e == "interrupted" => return Err(e.clone()),
                Err(e) => eprintln!("  failed: {e}\n{}", lab.tails()),
                Ok(_) => {}
            }
            switch_results.push((mode, r));
            Ok(())
        };
        phase(lab, Mode::Feed, vd_port)?;
        phase(lab, Mode::Hold, vd_port)?;
        lab.stop("vd-proxy");
        let vd = tools.vd.as_ref().map_err(Clone::clone)?;
        start_vd_proxy(lab, vd, "vd-proxy-poll", poll_port, false, &[])?;
        phase(lab, Mode::Poll, poll_port)?;
    }

    Ok(Results {
        versions: versions(tools),
        vd_skipped,
        plain,
        rounds,
        targets,
        samples,
        notes,
        switches: switch_results,
        load: Default::default(),
        seconds: 0.0,
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The first line of `prog ARGS`'s output (stdout, else stderr).
fn version_of(prog: &Path, args: &[&str]) -> String {
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "?".into())
}

fn versions(tools: &Tools) -> Vec<(&'static str, String)> {
    let redis = version_of(&tools.redis_server, &["--version"]);
    let redis = redis
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .unwrap_or(&redis)
        .to_string();
    let haproxy = version_of(&tools.haproxy, &["-v"]);
    let haproxy = haproxy
        .split_whitespace()
        .nth(2)
        .unwrap_or(&haproxy)
        .to_string();
    let twem = version_of(&tools.nutcracker, &["--version"]);
    let twem = twem.rsplit('-').next().unwrap_or(&twem).to_string();
    let bench = version_of(&tools.redis_benchmark, &["--version"]);
    let bench = bench
        .split_whitespace()
        .nth(1)
        .unwrap_or(&bench)
        .to_string();
    vec![
        ("redis-server", redis),
        ("redis-benchmark", bench),
        ("HAProxy", haproxy),
        ("nutcracker", twem),
    ]
}

fn rounds(n: usize) -> String {
    if n == 1 {
        "1 round".into()
    } else {
        format!("{n} rounds")
    }
}

fn report(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Proxy: throughput, latency and switch time");
    let _ = writeln!(s);
    let _ = writeln!(s, "- Date: {}", utc_now());
    let _ = writeln!(
        s,
        "- Machine: {}; {}",
        machine(),
        r.versions
            .iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let knobs: Vec<String> = [
        "VD_BENCH_PROXY_REQUESTS",
        "VD_BENCH_PROXY_ROUNDS",
        "VD_BENCH_PROXY_SWITCHES",
        "VD_BENCH_PROXY_PIN",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
    .collect();
    let _ = writeln!(
        s,
        "- Command: `{}{COMMAND}` (after `cargo build --release -p vd-cli` and `./scripts/setup --bench`); \
         the whole run took {:.0} s",
        if knobs.is_empty() {
            String::new()
        } else {
            format!("{} ", knobs.join(" "))
        },
        r.seconds
    );
    let _ = writeln!(
        s,
        "- Goal: through `vd proxy` at least {:.0} % of direct throughput and at most {GOAL_ADDED_P50_MS} ms \
         added p50 latency, plain and pipelined; switch time (promotion → first command served by the new \
         master) under {} ms",
        GOAL_FRACTION * 100.0,
        GOAL_SWITCH.as_millis()
    );
    if let Some(e) = &r.vd_skipped {
        let _ = writeln!(s, "- **`vd proxy` was skipped**: {e}");
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| Test | Target | rps (median of {}) | % of direct | p50 | added p50 | p99 | proxy CPU | goal |",
        rounds(r.rounds)
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for (ti, test) in TESTS.iter().enumerate() {
        let col = |x: usize, f: fn(&Sample) -> f64| -> f64 {
            median(&r.samples[x][ti].iter().map(f).collect::<Vec<_>>())
        };
        let (d_rps, d_p50) = (col(0, |s| s.rps), col(0, |s| s.p50));
        for (x, t) in r.targets.iter().enumerate() {
            let (rps, p50, p99) = (col(x, |s| s.rps), col(x, |s| s.p50), col(x, |s| s.p99));
            let cpu: Vec<f64> = r.samples[x][ti].iter().filter_map(|s| s.cpu).collect();
            let frac = rps / d_rps;
            let added = p50 - d_p50;
            let goal = match (x, t.label) {
                (0, _) => "",
                (_, "vd proxy") => {
                    let rps_ok = frac >= GOAL_FRACTION;
                    let p50_ok = added <= GOAL_ADDED_P50_MS + 1e-9;
                    match (rps_ok, p50_ok) {
                        (true, true) => "met",
                        (false, true) => "**missed** (rps)",
                        (true, false) => "**missed** (p50)",
                        (false, false) => "**missed** (rps, p50)",
                    }
                }
                _ => "(reference)",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {:.3} ms | {} | {:.3} ms | {} | {goal} |",
                test.label(),
                t.label,
                rps,
                if x == 0 {
                    "100 %".to_string()
                } else {
                    format!("{:.1} %", frac * 100.0)
                },
                p50,
                if x == 0 {
                    "—".to_string()
                } else {
                    format!("{added:+.3} ms")
                },
                p99,
                if cpu.is_empty() {
                    "—".to_string()
                } else {
                    format!("{:.0} %", median(&cpu))
                },
            );
        }
    }
    let _ = writeln!(s);
    if !r.switches.is_empty() {
        let _ = writeln!(
            s,
            "| Switch ({} each, alternating direction) | ok | p50 | p99 | max | write gap p50 / max | client errors | acked writes lost: unreplicated / sent to the old master after promotion | on the demoted master after the switch | goal < {} ms |",
            r.switches
                .iter()
                .find_map(|(_, x)| x.as_ref().ok().map(Vec::len))
                .unwrap_or(0),
            GOAL_SWITCH.as_millis()
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        for (mode, res) in &r.switches {
            match res {
                Err(e) => {
                    let _ = writeln!(
                        s,
                        "| {} | failed: {} | | | | | | | | |",
                        mode.label(),
                        e.lines().next().unwrap_or("").replace('|', "/")
                    );
                }
                Ok(runs) => {
                    let ok = sorted(
                        runs.iter()
                            .filter_map(|x| x.switch.as_ref().ok())
                            .map(|d| ms(*d))
                            .collect(),
                    );
                    let gaps = sorted(runs.iter().filter_map(|x| x.gap).map(ms).collect());
                    let sum = |f: fn(&SwitchRun) -> usize| runs.iter().map(f).sum::<usize>();
                    let max = ok.last().copied().unwrap_or(f64::NAN);
                    let verdict = if ok.len() < runs.len() {
                        "**missed** (failed switches)"
                    } else if max < ms(GOAL_SWITCH) {
                        "met (max)"
                    } else if percentile(&ok, 50.0) < ms(GOAL_SWITCH) {
                        "met (p50), **missed** (max)"
                    } else {
                        "**missed**"
                    };
                    let _ = writeln!(
                        s,
                        "| {} | {} of {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} / {:.1} ms | {} | {} / {} of {} | {} | {verdict} |",
                        mode.label(),
                        ok.len(),
                        runs.len(),
                        percentile(&ok, 50.0),
                        percentile(&ok, 99.0),
                        max,
                        percentile(&gaps, 50.0),
                        gaps.last().copied().unwrap_or(f64::NAN),
                        sum(|x| x.errors),
                        sum(|x| x.lost_unreplicated),
                        sum(|x| x.lost_window),
                        sum(|x| x.acked),
                        sum(|x| x.after_switch_on_old),
                    );
                }
            }
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "How it is measured:");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "- Everything on loopback in one temporary directory, no `vd server`: redis-server master and one replica \
         (`requirepass`/`masterauth`, `save \"\"`, `appendonly no`, `repl-diskless-sync-delay 0`); \
         `vd proxy --listen … --upstream <master> --upstream <replica> --feed FILE` with `REDIS_PASSWORD`; \
         HAProxy in TCP mode with the usual check over both servers (`tcp-check` AUTH, `info replication`, \
         expect `role:master`, QUIT; `inter 1s fall 2 rise 2`, `on-marked-down shutdown-sessions`); twemproxy \
         (`redis: true`, `redis_auth`, the master as its only server, one server connection, the default)."
    );
    let _ = writeln!(
        s,
        "- Each cell: `redis-benchmark {}` (`-P {PIPELINE}` rows: `-n {}`), the median of {}; \
         the targets run one after another, their order rotating each round; an untimed {WARM_UP_REQUESTS}-request \
         SET run against each target first. p50 is redis-benchmark's own; \"added p50\" is against the same round \
         medians of direct Redis. Proxy CPU is the proxy process's user+system time over the run's wall time \
         (% of one core); {}",
        benchmark_args(0, TESTS[0], r.plain)
            .join(" ")
            .replace("-p 0", "-p PORT")
            .replace("-t set", "-t set|get"),
        requests(TESTS[2], r.plain),
        rounds(r.rounds),
        if pinned() {
            "pinned (`VD_BENCH_PROXY_PIN=1`): redis-benchmark and both servers on CPU 0, every proxy on \
             CPU 1 (sched_setaffinity), so direct Redis gets one core for client and server, and a proxy \
             adds a core of its own instead of taking CPU from them."
        } else {
            "the machine's cores are shared by redis-benchmark, both servers and the proxy."
        }
    );
    if !r.switches.is_empty() {
        let _ = writeln!(
            s,
            "- Switch: one writer thread RPUSHes increasing ids back-to-back through the proxy with the `redis` \
             crate (sync API; one connection, reconnecting only when it breaks). After {} ms of writes (plus an \
             offset spread over {} ms) the benchmark promotes the replica with `MULTI; REPLICAOF NO ONE; LLEN key; \
             EXEC` (so it knows which list entries came by replication), then — feed modes — rewrites the feed \
             (temporary file + rename) with the new master and the next epoch, then sends `REPLICAOF <new master>` \
             to the old master. Switch time = promotion reply → acknowledgement of the first write the new master \
             executed itself. Hold mode first writes `hold: true`, waits for the proxy's `held.<id>` file and for the \
             replica's offset to reach the master's, and only then promotes. Write gap = the longest interval \
             between acknowledged writes from {} ms before the switch started to that first write.",
            PRE_ROLL.as_millis(),
            PRE_ROLL_SPREAD.as_millis(),
            BEFORE.as_millis()
        );
        let _ = writeln!(
            s,
            "- Lost writes: acknowledged ids missing from the new master's list afterwards. \"Unreplicated\": \
             acknowledged before the promotion but not yet replicated (an unplanned promotion's loss, not the \
             proxy's). \"Sent to the old master after promotion\": the proxy had not switched yet; the old master \
             dropped them when it resynced from the new one. \"On the demoted master after the switch\" must be 0: \
             the proxy never goes back."
        );
        for (mode, res) in &r.switches {
            let Ok(runs) = res else { continue };
            let _ = writeln!(
                s,
                "- {}, all switch times (ms): {}",
                mode.label(),
                runs.iter()
                    .map(|x| match &x.switch {
                        Ok(d) => format!("{:.1}", ms(*d)),
                        Err(_) => "failed".into(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if *mode == Mode::Hold {
                let acks = sorted(runs.iter().filter_map(|x| x.hold_ack).map(ms).collect());
                let catch = sorted(runs.iter().filter_map(|x| x.catch_up).map(ms).collect());
                let _ = writeln!(
                    s,
                    "- Hold: acknowledged by the proxy in {} of {} runs (feed written → `held` file, p50 / max {:.1} / {:.1} ms); \
                     replica caught up in {} of {} runs (p50 / max {:.1} / {:.1} ms)",
                    acks.len(),
                    runs.len(),
                    percentile(&acks, 50.0),
                    acks.last().copied().unwrap_or(f64::NAN),
                    catch.len(),
                    runs.len(),
                    percentile(&catch, 50.0),
                    catch.last().copied().unwrap_or(f64::NAN),
                );
            }
            let stalls = sorted(
                runs.iter()
                    .filter_map(|x| x.replica_stalled)
                    .map(ms)
                    .collect(),
            );
            if !stalls.is_empty() {
                let _ = writeln!(
                    s,
                    "- {}: after {} of {} switches the demoted master, resynced as a replica, \
                     reported `master_link_status:up` but acknowledged no write (`WAIT 1 100` returned 0) \
                     for up to {:.0} ms (p50 {:.0} ms): redis 7.0 had not started streaming to it. A promotion \
                     in that window loses every write since the resync; the benchmark waits for the \
                     acknowledgement before every switch",
                    mode.label(),
                    stalls.len(),
                    runs.len(),
                    stalls.last().copied().unwrap_or(f64::NAN),
                    percentile(&stalls, 50.0)
                );
            }
            for e in runs.iter().filter_map(|x| x.switch.as_ref().err()) {
                let _ = writeln!(s, "- {}: a switch failed: {e}", mode.label());
            }
            if let Some(e) = runs.iter().find_map(|x| x.first_error.as_deref()) {
                let _ = writeln!(
                    s,
                    "- {}, the first error the writer saw: `{}`",
                    mode.label(),
                    e.trim()
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "- twemproxy is a reference for proxy overhead only: it does not follow a failover (it has no notion \
         of a master; its one server is fixed in the config), so it has no switch row, and it rejects some \
         commands (e.g. `CONFIG`, which makes redis-benchmark warn that it could not fetch the server's config)."
    );
    for n in &r.notes {
        let _ = writeln!(s, "- redis-benchmark said on stderr, {n}");
    }
    for (x, t) in r.targets.iter().enumerate() {
        let _ = writeln!(
            s,
            "- {}, rps per round: {}",
            t.label,
            TESTS
                .iter()
                .enumerate()
                .map(|(ti, test)| format!(
                    "{} {}",
                    test.label(),
                    r.samples[x][ti]
                        .iter()
                        .map(|s| format!("{:.0}", s.rps))
                        .collect::<Vec<_>>()
                        .join("/")
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let _ = writeln!(
        s,
        "- Load average before / after: {} / {}",
        r.load.0, r.load.1
    );
    s
}
