//! Redis Cluster crash failover: `kill -9` of a shard master until the first acknowledged
//! write to its slots, vd's cluster mode against Redis Cluster left to itself (the nodes'
//! own failure detection) at `cluster-node-timeout` 15000 and 5000, in the same run.
//!
//! Run with `cargo bench -p vd-cli --bench cluster` after `cargo build --release -p vd-cli`,
//! as root, with `redis-server` and `redis-cli` installed. It prints a markdown section for
//! docs/benchmarks.md. Tests never assert on speed; this program only measures.
//!
//! vd: `redis "bench" "shop" { cluster {} }` (six pods). The baseline: six `redis-server`
//! processes on 127.0.0.1 (free ports) with `cluster-enabled yes`, formed by `redis-cli
//! --cluster create --cluster-replicas 1`, the same persistence (RDB, no AOF).
//!
//! Each round picks a shard (rotating), a key of one of its slots, and starts a writer that
//! `RPUSH`es increasing ids to that key, each followed by `WAIT 1 100`. The writer follows
//! `MOVED` and, when its node does not answer, tries the others (50 ms connect timeout), as a
//! cluster client refreshing its slot map does. The shard's master is killed with SIGKILL;
//! the recovery is from its death to the first write a master acknowledges (`RPUSH` answered)
//! after it: with one replica per shard, the promoted replica has no replica of its own until
//! the killed node is back, so `WAIT 1` cannot succeed sooner. After one more second the list
//! is read back: an id `WAIT` had confirmed on a replica that is missing is a lost write. The killed node is then back (vd restarts
//! the pod; the baseline restarts the process) and the round waits for the cluster to be whole.
//!
//! Knobs: `VD_BENCH_CLUSTER_KILLS` (vd rounds, 20), `VD_BENCH_CLUSTER_BASE_KILLS` (rounds per
//! baseline, 5), `VD_BENCH_CLUSTER_SETUPS` (`vd,n15000,n5000`).

mod common;

use common::{env_num, machine, ms, percentile, sleep, sorted, utc_now, Bench, Setup};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vd_core::redis::cluster::{parse_nodes, shards};

const COMMAND: &str = "cargo bench -p vd-cli --bench cluster";

const SHOP: &str = r#"
redis "bench" "shop" {
  cluster {}
  probes {
    readiness {
      exec { command = ["redis-cli", "-h", "${VOODU_POD_IP}", "ping"] }
      period = "300ms"
    }
  }
}
"#;

fn main() {
    common::main(
        &Setup {
            prefix: "vd-bench-cluster-",
            programs: &["redis-server", "redis-cli"],
            packages: "redis-server redis-tools",
            shutdown_limit: Duration::from_secs(60),
        },
        run,
    );
}

/// A cluster the rounds run against: its nodes' addresses and how to bring a killed one back.
trait Cluster {
    /// `ip:port` of every node.
    fn nodes(&self) -> Vec<String>;
    fn password(&self) -> Option<String>;
    /// Kills the node at `addr` with SIGKILL.
    fn kill(&mut self, addr: &str) -> Result<(), String>;
    /// Brings killed nodes back (vd: nothing, the controller does).
    fn revive(&mut self) -> Result<(), String>;
}

fn conn(addr: &str, pw: Option<&str>, timeout: Duration) -> Option<redis::Connection> {
    let url = match pw {
        Some(pw) => format!("redis://:{pw}@{addr}/"),
        None => format!("redis://{addr}/"),
    };
    let c = redis::Client::open(url)
        .ok()?
        .get_connection_with_timeout(timeout)
        .ok()?;
    c.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    c.set_write_timeout(Some(Duration::from_millis(500))).ok()?;
    Some(c)
}

/// `CLUSTER NODES` of the first node that answers.
fn view(c: &dyn Cluster) -> Option<Vec<vd_core::redis::cluster::Peer>> {
    let pw = c.password();
    c.nodes().iter().find_map(|a| {
        let mut k = conn(a, pw.as_deref(), Duration::from_millis(200))?;
        let text: String = redis::cmd("CLUSTER").arg("NODES").query(&mut k).ok()?;
        parse_nodes(&text).ok()
    })
}

/// Every node says `cluster_state:ok`, every replica has synced with its master (a replica
/// that never synced may not fail over: its data age counts as infinite), three shards each
/// with a connected replica.
fn whole(c: &dyn Cluster) -> bool {
    let pw = c.password();
    let ok = c.nodes().iter().all(|a| {
        let Some(mut k) = conn(a, pw.as_deref(), Duration::from_millis(200)) else {
            return false;
        };
        let state: Option<String> = redis::cmd("CLUSTER").arg("INFO").query(&mut k).ok();
        let repl: Option<String> = redis::cmd("INFO").arg("replication").query(&mut k).ok();
        state.is_some_and(|i| i.contains("cluster_state:ok"))
            && repl
                .is_some_and(|r| !r.contains("role:slave") || r.contains("master_link_status:up"))
    });
    ok && view(c).is_some_and(|peers| {
        let s = shards(&peers);
        s.len() == 3
            && s.iter().all(|s| {
                s.replicas.iter().any(|r| r.connected && !r.failed) && s.master.connected
                    || s.master.myself
            })
    })
}

fn wait_whole(c: &dyn Cluster, limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    while !whole(c) {
        if start.elapsed() > limit {
            return Err(format!("the cluster was not whole within {limit:?}"));
        }
        sleep(Duration::from_millis(100))?;
    }
    Ok(())
}

/// A key whose slot shard `shard` serves, and that shard's master `ip:port`.
fn target(c: &dyn Cluster, shard: usize) -> Result<(String, String), String> {
    let peers = view(c).ok_or("no node answers")?;
    let s = shards(&peers);
    let m = s.get(shard).ok_or("no such shard")?.master;
    let pw = c.password();
    let addr = format!("{}:{}", m.ip, m.port);
    let mut k = conn(&addr, pw.as_deref(), Duration::from_secs(1)).ok_or("master down")?;
    for i in 0.. {
        let key = format!("{{b{i}}}:log");
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&key)
            .query(&mut k)
            .map_err(|e| e.to_string())?;
        if m.slots.iter().any(|(a, b)| *a <= slot && slot <= *b) {
            return Ok((key, addr));
        }
    }
    Err("no key found".into())
}

struct Writer {
    stop: Arc<AtomicBool>,
    /// Every write the master answered OK: its id, when, and whether `WAIT 1` then said a
    /// replica has it.
    acked: Arc<Mutex<Vec<(u64, Instant, bool)>>>,
    handle: std::thread::JoinHandle<()>,
}

/// RPUSH + WAIT 1 100 to `key`, following MOVED, trying every node when one does not answer.
fn writer(nodes: Vec<String>, pw: Option<String>, key: String, start: String) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let (s, a) = (stop.clone(), acked.clone());
    let handle = std::thread::spawn(move || {
        let mut current = start;
        let mut c: Option<redis::Connection> = None;
        let mut next = 0usize;
        let mut id = 0u64;
        while !s.load(Ordering::SeqCst) {
            if c.is_none() {
                c = conn(&current, pw.as_deref(), Duration::from_millis(50));
            }
            let Some(k) = c.as_mut() else {
                next = (next + 1) % nodes.len();
                current = nodes[next].clone();
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            id += 1;
            let pushed: redis::RedisResult<i64> = redis::cmd("RPUSH").arg(&key).arg(id).query(k);
            match pushed {
                Ok(_) => {
                    let at = Instant::now();
                    let n: redis::RedisResult<i64> = redis::cmd("WAIT").arg(1).arg(100).query(k);
                    let waited = matches!(n, Ok(n) if n >= 1);
                    if let Ok(mut v) = a.lock() {
                        v.push((id, at, waited));
                    }
                }
                Err(e) => {
                    if let Some((addr, _)) = e.redirect_node() {
                        current = addr.to_string();
                    } else {
                        next = (next + 1) % nodes.len();
                        current = nodes[next].clone();
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    c = None;
                }
            }
        }
    });
    Writer {
        stop,
        acked,
        handle,
    }
}

struct Round {
    recovery_ms: f64,
    acked: usize,
    lost: usize,
}

fn round(c: &mut dyn Cluster, shard: usize) -> Result<Round, String> {
    let (key, master) = target(c, shard)?;
    let pw = c.password();
    let w = writer(c.nodes(), pw.clone(), key.clone(), master.clone());
    sleep(Duration::from_millis(500))?;
    // The clock starts once the master is dead: `kill` returns after it is.
    c.kill(&master)?;
    let killed_at = Instant::now();
    // The first acknowledged write after the kill.
    let limit = Duration::from_secs(60);
    let recovered = loop {
        let first = w.acked.lock().ok().and_then(|v| {
            v.iter()
                .find(|(_, t, _)| *t > killed_at)
                .map(|(_, t, _)| *t)
        });
        if let Some(t) = first {
            break t;
        }
        if killed_at.elapsed() > limit {
            w.stop.store(true, Ordering::SeqCst);
            return Err(format!(
                "no acknowledged write within {limit:?} of the kill"
            ));
        }
        sleep(Duration::from_millis(5))?;
    };
    sleep(Duration::from_secs(1))?;
    w.stop.store(true, Ordering::SeqCst);
    let _ = w.handle.join();
    // Lost: a write a replica had confirmed (WAIT) that the shard no longer holds.
    let acked: Vec<u64> = w
        .acked
        .lock()
        .map(|v| {
            v.iter()
                .filter(|(_, _, w)| *w)
                .map(|(i, _, _)| *i)
                .collect()
        })
        .unwrap_or_default();
    // Read back from the shard's master now.
    let (_, now_master) = target(c, shard)?;
    let mut k = conn(&now_master, pw.as_deref(), Duration::from_secs(1)).ok_or("no master")?;
    let list: Vec<u64> = redis::cmd("LRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query(&mut k)
        .map_err(|e| e.to_string())?;
    let have: std::collections::HashSet<u64> = list.into_iter().collect();
    let lost = acked.iter().filter(|i| !have.contains(i)).count();
    let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&key).query(&mut k);
    c.revive()?;
    wait_whole(c, Duration::from_secs(120))?;
    Ok(Round {
        recovery_ms: ms(recovered - killed_at),
        acked: acked.len(),
        lost,
    })
}

// ----- vd

struct Vd<'a> {
    b: &'a Bench,
    pw: String,
    nodes: BTreeMap<String, u32>,
}

impl Cluster for Vd<'_> {
    fn nodes(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }
    fn password(&self) -> Option<String> {
        Some(self.pw.clone())
    }
    fn kill(&mut self, addr: &str) -> Result<(), String> {
        let o = self.nodes.get(addr).ok_or("unknown node")?;
        let pods = self.b.json(&["get", "pods"])?;
        let pid = pods
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|p| p["pod"] == format!("bench-shop.{o}"))
                    .and_then(|p| p["pid"].as_i64())
            })
            .ok_or("the pod has no pid")?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .map_err(|e| e.to_string())?;
        // Dead once it is a zombie (its parent, the server, reaps it) or gone.
        let stat = format!("/proc/{pid}/stat");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(1) {
            match std::fs::read_to_string(&stat) {
                Ok(s)
                    if s.rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('Z')) =>
                {
                    break
                }
                Ok(_) => std::thread::yield_now(),
                Err(_) => break,
            }
        }
        Ok(())
    }
    fn revive(&mut self) -> Result<(), String> {
        Ok(())
    }
}

// ----- Redis Cluster alone

struct Alone {
    dir: tempfile::TempDir,
    timeout_ms: u64,
    procs: BTreeMap<String, Child>,
    killed: Vec<String>,
}

impl Alone {
    fn spawn(&self, addr: &str) -> Result<Child, String> {
        let port = addr.rsplit(':').next().unwrap_or_default();
        Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                port,
                "--cluster-enabled",
                "yes",
            ])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--cluster-node-timeout", &self.timeout_ms.to_string()])
            .args([
                "--dbfilename",
                &format!("dump-{port}.rdb"),
                "--appendonly",
                "no",
            ])
            .args(["--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server: {e}"))
    }

    fn start(timeout_ms: u64) -> Result<Alone, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut a = Alone {
            dir,
            timeout_ms,
            procs: BTreeMap::new(),
            killed: Vec::new(),
        };
        for _ in 0..6 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| e.to_string())?
                .port();
            let addr = format!("127.0.0.1:{port}");
            let child = a.spawn(&addr)?;
            a.procs.insert(addr, child);
        }
        sleep(Duration::from_millis(500))?;
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(a.procs.keys())
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        wait_whole(&a, Duration::from_secs(60))?;
        Ok(a)
    }
}

impl Cluster for Alone {
    fn nodes(&self) -> Vec<String> {
        self.procs.keys().cloned().collect()
    }
    fn password(&self) -> Option<String> {
        None
    }
    fn kill(&mut self, addr: &str) -> Result<(), String> {
        let c = self.procs.get_mut(addr).ok_or("unknown node")?;
        c.kill().map_err(|e| e.to_string())?;
        let _ = c.wait();
        self.killed.push(addr.to_string());
        Ok(())
    }
    fn revive(&mut self) -> Result<(), String> {
        for addr in std::mem::take(&mut self.killed) {
            let child = self.spawn(&addr)?;
            self.procs.insert(addr, child);
        }
        Ok(())
    }
}

impl Drop for Alone {
    fn drop(&mut self) {
        for c in self.procs.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ----- the run

fn summary(name: &str, rounds: &[Round]) -> String {
    let rec = sorted(rounds.iter().map(|r| r.recovery_ms).collect());
    format!(
        "| {name} | {} | {:.0} | {:.0} | {:.0} | {} | {} |",
        rounds.len(),
        percentile(&rec, 50.0),
        percentile(&rec, 99.0),
        rec.last().copied().unwrap_or(f64::NAN),
        rounds.iter().map(|r| r.acked).sum::<usize>(),
        rounds.iter().map(|r| r.lost).sum::<usize>(),
    )
}

fn run(b: &Bench) -> Result<String, String> {
    let setups =
        std::env::var("VD_BENCH_CLUSTER_SETUPS").unwrap_or_else(|_| "vd,n15000,n5000".into());
    let mut rows = Vec::new();
    let mut detail = String::new();
    for setup in setups.split(',') {
        let mut rounds = Vec::new();
        match setup {
            "vd" => {
                b.vd(&[
                    "apply",
                    "-f",
                    &b.write("shop.hcl", SHOP)?,
                    "--timeout",
                    "120s",
                ])?;
                let pw = b
                    .vd(&["config", "bench/shop", "get", "REDIS_PASSWORD"])?
                    .trim()
                    .to_string();
                let pods = b.json(&["get", "pods"])?;
                let nodes: BTreeMap<String, u32> = pods
                    .as_array()
                    .ok_or("pods")?
                    .iter()
                    .filter_map(|p| {
                        Some((
                            format!("{}:6379", p["ip"].as_str()?),
                            u32::try_from(p["ordinal"].as_u64()?).ok()?,
                        ))
                    })
                    .collect();
                let mut c = Vd { b, pw, nodes };
                wait_whole(&c, Duration::from_secs(60))?;
                for i in 0..env_num("VD_BENCH_CLUSTER_KILLS", 20) {
                    let r = round(&mut c, i % 3)?;
                    eprintln!(
                        "vd round {i}: {:.0} ms, {} acked, {} lost",
                        r.recovery_ms, r.acked, r.lost
                    );
                    rounds.push(r);
                }
                rows.push(summary("vd cluster mode (controller failover)", &rounds));
            }
            n if n.starts_with('n') => {
                let timeout: u64 = n[1..].parse().map_err(|_| format!("bad setup {n}"))?;
                let mut c = Alone::start(timeout)?;
                for i in 0..env_num("VD_BENCH_CLUSTER_BASE_KILLS", 5) {
                    let r = round(&mut c, i % 3)?;
                    eprintln!(
                        "{n} round {i}: {:.0} ms, {} acked, {} lost",
                        r.recovery_ms, r.acked, r.lost
                    );
                    rounds.push(r);
                }
                rows.push(summary(
                    &format!("Redis Cluster alone, cluster-node-timeout {timeout}"),
                    &rounds,
                ));
            }
            other => return Err(format!("unknown setup {other}")),
        }
        let all: Vec<String> = rounds
            .iter()
            .map(|r| format!("{:.0}", r.recovery_ms))
            .collect();
        let _ = writeln!(detail, "- {setup}, every round (ms): {}", all.join(", "));
    }
    let version = Command::new("redis-server")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    Ok(format!(
        "### Cluster crash failover\n\n- Date: {}\n- Machine: {}\n- Command: `{COMMAND}` (as root)\n- {version}\n\n\
         | setup | rounds | p50 ms | p99 ms | max ms | acknowledged writes | lost |\n|---|---|---|---|---|---|---|\n{}\n\n{detail}",
        utc_now(),
        machine(),
        rows.join("\n")
    ))
}
