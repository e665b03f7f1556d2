//! Resharding onto a fourth shard: one million keys in a three-shard cluster, then vd's
//! `shards = 3` → `4` against `redis-cli --cluster rebalance --cluster-use-empty-masters` on
//! the same data, in the same run, with a client reading random keys throughout.
//!
//! Run with `cargo bench -p vd-cli --bench reshard` after `cargo build --release -p vd-cli`,
//! as root, with `redis-server`, `redis-cli` and Debian's `python3-redis`. It prints a
//! markdown section for docs/benchmarks.md; it only measures.
//!
//! Both clusters: three masters with one replica each, RDB persistence, no AOF, loaded with
//! the same keys (`k:0` … `k:N-1`, 16-byte values) by pipelines to each key's master. vd:
//! `vd apply` of the manifest with `shards = 4` starts two pods and the controller moves
//! 4096 slots to the new master; timed from the apply until every master serves its even
//! share with no slot open. The baseline: two more `redis-server` processes joined with
//! `redis-cli --cluster add-node` (an empty master and its replica), then `redis-cli --cluster
//! rebalance --cluster-use-empty-masters` (its defaults: pipeline 10 keys per MIGRATE), timed
//! from its start to its end. The reader (redis-py's `RedisCluster`, following `MOVED` and
//! `ASK`) counts reads and errors over the whole move.
//!
//! Knobs: `VD_BENCH_RESHARD_KEYS` (1000000).

// The shared harness; this program uses part of its helpers.
#[allow(dead_code)]
mod common;

use common::{env_num, machine, sleep, utc_now, Bench, Setup};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vd_core::redis::cluster::{parse_nodes, shards, Peer};

const COMMAND: &str = "cargo bench -p vd-cli --bench reshard";

fn manifest(shards: u32) -> String {
    format!(
        r#"
redis "bench" "shop" {{
  cluster {{
    shards = {shards}
  }}
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

const READER: &str = r#"
import json, os, random, sys, time
from redis.cluster import RedisCluster
host, port, pw, n, stop, out = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None, int(sys.argv[4]), sys.argv[5], sys.argv[6]
rc = RedisCluster(host=host, port=port, password=pw, socket_timeout=2)
reads, errors, wrong = 0, [], 0
while not os.path.exists(stop):
    i = random.randrange(n)
    try:
        v = rc.get("k:%d" % i)
        reads += 1
        if v != b"v%015d" % i:
            wrong += 1
    except Exception as e:
        errors.append(repr(e))
with open(out, "w") as f:
    json.dump({"reads": reads, "errors": errors, "wrong": wrong}, f)
"#;

fn main() {
    common::main(
        &Setup {
            prefix: "vd-bench-reshard-",
            programs: &["redis-server", "redis-cli", "python3"],
            packages: "redis-server redis-tools python3-redis",
            shutdown_limit: Duration::from_secs(60),
        },
        run,
    );
}

/// CRC16/XMODEM, the hash of Redis Cluster's key slots.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn conn(addr: &str, pw: Option<&str>) -> Result<redis::Connection, String> {
    let url = match pw {
        Some(pw) => format!("redis://:{pw}@{addr}/"),
        None => format!("redis://{addr}/"),
    };
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .map_err(|e| format!("{addr}: {e}"))
}

fn peers(addr: &str, pw: Option<&str>) -> Result<Vec<Peer>, String> {
    let mut c = conn(addr, pw)?;
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut c)
        .map_err(|e| e.to_string())?;
    parse_nodes(&text).map_err(|e| e.to_string())
}

/// Loads `k:0` … `k:n-1` by pipelines of 10000 to each key's master.
fn load(addr: &str, pw: Option<&str>, n: usize) -> Result<(), String> {
    let ps = peers(addr, pw)?;
    let owners: Vec<(String, Vec<(u16, u16)>)> = shards(&ps)
        .iter()
        .map(|s| {
            (
                format!("{}:{}", s.master.ip, s.master.port),
                s.master.slots.clone(),
            )
        })
        .collect();
    let mut batches: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let slot = crc16(format!("k:{i}").as_bytes()) % 16384;
        if let Some((a, _)) = owners
            .iter()
            .find(|(_, r)| r.iter().any(|(x, y)| *x <= slot && slot <= *y))
        {
            batches.entry(a.clone()).or_default().push(i);
        }
    }
    for (a, keys) in batches {
        let mut c = conn(&a, pw)?;
        for chunk in keys.chunks(10_000) {
            let mut p = redis::pipe();
            for i in chunk {
                p.cmd("SET")
                    .arg(format!("k:{i}"))
                    .arg(format!("v{i:015}"))
                    .ignore();
            }
            p.query::<()>(&mut c).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// `masters` masters with even shares, no slot open on any, every node `cluster_state:ok`.
fn balanced(addrs: &[String], pw: Option<&str>, masters: usize) -> bool {
    let Ok(ps) = peers(&addrs[0], pw) else {
        return false;
    };
    let s = shards(&ps);
    let counts: Vec<u32> = s.iter().map(|s| s.master.slot_count()).collect();
    if s.len() != masters
        || counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0) > 1
    {
        return false;
    }
    addrs.iter().all(|a| {
        let open = peers(a, pw).is_ok_and(|p| p.iter().any(|p| p.myself && !p.open.is_empty()));
        let ok = conn(a, pw).ok().and_then(|mut c| {
            redis::cmd("CLUSTER")
                .arg("INFO")
                .query::<String>(&mut c)
                .ok()
        });
        !open && ok.is_some_and(|i| i.contains("cluster_state:ok"))
    })
}

fn wait(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > limit {
            return Err(format!("{what} not within {limit:?}"));
        }
        sleep(Duration::from_millis(100))?;
    }
    Ok(())
}

fn dbsize(addr: &str, pw: Option<&str>) -> Result<u64, String> {
    let mut c = conn(addr, pw)?;
    redis::cmd("DBSIZE")
        .query(&mut c)
        .map_err(|e| e.to_string())
}

/// The reader, until `stop` is dropped.
struct Reader {
    child: Child,
    stop: std::path::PathBuf,
    out: std::path::PathBuf,
}

impl Reader {
    fn start(
        dir: &std::path::Path,
        addr: &str,
        pw: Option<&str>,
        n: usize,
    ) -> Result<Reader, String> {
        let (host, port) = addr.rsplit_once(':').ok_or("addr")?;
        let stop = dir.join("reader.stop");
        let out = dir.join("reader.json");
        let _ = std::fs::remove_file(&stop);
        let child = Command::new("/usr/bin/python3")
            .args(["-c", READER, host, port, pw.unwrap_or(""), &n.to_string()])
            .arg(&stop)
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        Ok(Reader { child, stop, out })
    }

    fn finish(mut self) -> Result<(u64, usize, u64), String> {
        std::fs::write(&self.stop, "").map_err(|e| e.to_string())?;
        let _ = self.child.wait();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&self.out).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        for e in v["errors"].as_array().into_iter().flatten() {
            eprintln!("reader error: {e}");
        }
        Ok((
            v["reads"].as_u64().unwrap_or(0),
            v["errors"].as_array().map_or(0, Vec::len),
            v["wrong"].as_u64().unwrap_or(0),
        ))
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Row {
    name: String,
    secs: f64,
    moved: u64,
    reads: u64,
    errors: usize,
    wrong: u64,
}

fn run(b: &Bench) -> Result<String, String> {
    let n = env_num("VD_BENCH_RESHARD_KEYS", 1_000_000);
    let mut rows = Vec::new();

    // vd.
    b.vd(&[
        "apply",
        "-f",
        &b.write("three.hcl", &manifest(3))?,
        "--timeout",
        "120s",
    ])?;
    let pw = b
        .vd(&["config", "bench/shop", "get", "REDIS_PASSWORD"])?
        .trim()
        .to_string();
    let addrs = |b: &Bench| -> Result<Vec<String>, String> {
        Ok(b.json(&["get", "pods"])?
            .as_array()
            .ok_or("pods")?
            .iter()
            .filter_map(|p| {
                Some(format!(
                    "{}:6379",
                    p["ip"].as_str().filter(|s| !s.is_empty())?
                ))
            })
            .collect())
    };
    let a3 = addrs(b)?;
    wait("vd's cluster formed", Duration::from_secs(60), || {
        balanced(&a3, Some(&pw), 3)
    })?;
    load(&a3[0], Some(&pw), n)?;
    eprintln!("vd: {n} keys loaded");
    let reader = Reader::start(b.root(), &a3[0], Some(&pw), n)?;
    sleep(Duration::from_secs(1))?;
    let t0 = Instant::now();
    b.vd(&[
        "apply",
        "-f",
        &b.write("four.hcl", &manifest(4))?,
        "--timeout",
        "120s",
    ])?;
    let a4 = addrs(b)?;
    wait(
        "vd's four shards balanced",
        Duration::from_secs(600),
        || balanced(&a4, Some(&pw), 4),
    )?;
    let secs = t0.elapsed().as_secs_f64();
    let (reads, errors, wrong) = reader.finish()?;
    let ps = peers(&a4[0], Some(&pw))?;
    let new_master = shards(&ps)
        .iter()
        .map(|s| format!("{}:{}", s.master.ip, s.master.port))
        .find(|a| !a3.iter().take(3).any(|x| x == a))
        .ok_or("no new master")?;
    let moved = dbsize(&new_master, Some(&pw))?;
    eprintln!("vd: {moved} keys moved in {secs:.1} s");
    rows.push(Row {
        name: "vd (`shards = 3` → `4`)".into(),
        secs,
        moved,
        reads,
        errors,
        wrong,
    });

    // redis-cli --cluster rebalance.
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut ports = Vec::new();
    let mut procs = Procs(Vec::new());
    for _ in 0..8 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        procs.0.push(
            Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args([
                    "--dbfilename",
                    &format!("dump-{port}.rdb"),
                    "--appendonly",
                    "no",
                ])
                .args(["--protected-mode", "no", "--repl-diskless-sync-delay", "0"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?,
        );
        ports.push(format!("127.0.0.1:{port}"));
    }
    sleep(Duration::from_millis(500))?;
    let cli = |args: &[&str]| -> Result<String, String> {
        let out = Command::new("redis-cli")
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "redis-cli {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout)
            ))
        }
    };
    let mut create = vec!["--cluster", "create"];
    create.extend(ports[..6].iter().map(String::as_str));
    create.extend(["--cluster-replicas", "1", "--cluster-yes"]);
    cli(&create)?;
    wait(
        "the baseline cluster formed",
        Duration::from_secs(60),
        || balanced(&ports[..6], None, 3),
    )?;
    load(&ports[0], None, n)?;
    eprintln!("baseline: {n} keys loaded");
    cli(&["--cluster", "add-node", &ports[6], &ports[0]])?;
    wait("the new master known", Duration::from_secs(30), || {
        peers(&ports[0], None).is_ok_and(|p| p.len() == 7 && !p.iter().any(|p| p.handshake))
    })?;
    let new_id = peers(&ports[6], None)?
        .into_iter()
        .find(|p| p.myself)
        .map(|p| p.id)
        .ok_or("no id")?;
    // Its replica, joined by hand (`add-node --cluster-slave` insists that every node already
    // agrees about the new master, which gossip takes a moment to settle).
    {
        let (_, p0) = ports[0].rsplit_once(':').ok_or("addr")?;
        let mut c = conn(&ports[7], None)?;
        redis::cmd("CLUSTER")
            .arg("MEET")
            .arg("127.0.0.1")
            .arg(p0)
            .query::<String>(&mut c)
            .map_err(|e| e.to_string())?;
        wait(
            "the replica knows the new master",
            Duration::from_secs(30),
            || {
                peers(&ports[7], None)
                    .is_ok_and(|p| p.iter().any(|p| p.id == new_id && !p.handshake))
            },
        )?;
        redis::cmd("CLUSTER")
            .arg("REPLICATE")
            .arg(&new_id)
            .query::<String>(&mut c)
            .map_err(|e| e.to_string())?;
    }
    wait(
        "every node knowing all eight",
        Duration::from_secs(60),
        || {
            ports.iter().all(|a| {
                peers(a, None).is_ok_and(|p| p.len() == 8 && !p.iter().any(|p| p.handshake))
            }) && balanced(&ports, None, 3)
        },
    )?;
    let reader = Reader::start(dir.path(), &ports[0], None, n)?;
    sleep(Duration::from_secs(1))?;
    let t0 = Instant::now();
    cli(&[
        "--cluster",
        "rebalance",
        &ports[0],
        "--cluster-use-empty-masters",
    ])?;
    let secs = t0.elapsed().as_secs_f64();
    let (reads, errors, wrong) = reader.finish()?;
    let moved = dbsize(&ports[6], None)?;
    eprintln!("baseline: {moved} keys moved in {secs:.1} s");
    rows.push(Row {
        name: "`redis-cli --cluster rebalance --cluster-use-empty-masters`".into(),
        secs,
        moved,
        reads,
        errors,
        wrong,
    });
    drop(procs);

    let table: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "| {} | {:.1} | {} | {:.0} | {} | {} | {} |",
                r.name,
                r.secs,
                r.moved,
                r.moved as f64 / r.secs,
                r.reads,
                r.errors,
                r.wrong
            )
        })
        .collect();
    Ok(format!(
        "### Resharding {n} keys onto a fourth shard\n\n- Date: {}\n- Machine: {}\n- Command: `{COMMAND}` (as root)\n\n\
         | mover | seconds | keys moved | keys/s | reads during | read errors | wrong values |\n|---|---|---|---|---|---|---|\n{}\n",
        utc_now(),
        machine(),
        table.join("\n")
    ))
}
