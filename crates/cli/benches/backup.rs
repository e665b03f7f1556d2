//! Backup benchmark: `vd redis:backup` beside `redis-cli --rdb` on the same 1M-key dataset,
//! from the same replica, in the same run: vd's backup must not be slower than redis-cli's.
//!
//! Run with `cargo bench -p vd-cli --bench backup` after `cargo build --release -p vd-cli`.
//! It drives the release `vd` binary (or `VD_BIN`) against a `vd server` on a temporary root,
//! needs root (the process runtime), `redis-server` and `redis-cli`, and prints a markdown
//! section for docs/benchmarks.md. Tests never assert on speed; this program only measures.
//!
//! Both tools stream the snapshot over the replication protocol from the highest-ordinal
//! replica and end with a durable file (redis-cli fsyncs it; vd writes a temporary file,
//! checks the CRC64 trailer while streaming, fsyncs and renames). Runs alternate between the
//! tools so that neither always gets the warmer page cache. Each file is checked afterwards by
//! `vd_redisctl::rdb::verify`, and the dataset is loaded into a scratch `redis-server` from
//! vd's file once, to show the snapshot holds every key.
//!
//! Knobs (environment): `VD_BENCH_BACKUP_KEYS` (default 1,000,000), `VD_BENCH_BACKUP_RUNS`
//! (runs per tool, default 5).

mod common;

use common::{env_num, machine, ms, percentile, sleep, sorted, utc_now, Bench, Setup};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const COMMAND: &str = "cargo bench -p vd-cli --bench backup";
const SCOPE: &str = "bench";
const NAME: &str = "bk";
const NODES: u32 = 3;
const PORT: u16 = 6379;
/// Keys written per pipeline.
const BATCH: usize = 10_000;

fn main() {
    common::main(
        &Setup {
            prefix: "vd-bench-backup-",
            programs: &["redis-server", "redis-cli"],
            packages: "redis-server redis-tools",
            shutdown_limit: Duration::from_secs(60),
        },
        run,
    );
}

fn manifest() -> String {
    format!(
        r#"
redis "{SCOPE}" "{NAME}" {{
  replicas = {NODES}
}}
"#
    )
}

fn connect(ip: &str, port: u16, password: &str) -> Result<redis::Connection, String> {
    let url = if password.is_empty() {
        format!("redis://{ip}:{port}/")
    } else {
        format!("redis://:{password}@{ip}:{port}/")
    };
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
        .map_err(|e| format!("connect to {ip}:{port}: {e}"))
}

/// Writes `keys` keys of mixed types, a third of them with a TTL: 60 % strings, 10 % each
/// hashes, lists, sets and sorted sets of five members.
fn fill(c: &mut redis::Connection, keys: usize) -> Result<(), String> {
    let mut i = 0;
    while i < keys {
        let mut p = redis::pipe();
        for k in i..(i + BATCH).min(keys) {
            let key = format!("k:{k:08}");
            match k % 10 {
                0 => p.hset_multiple(
                    &key,
                    &[("a", k), ("b", k + 1), ("c", k + 2), ("d", 1), ("e", 2)],
                ),
                1 => p.rpush(&key, &[k, k + 1, k + 2, k + 3, k + 4]),
                2 => p.sadd(&key, &[k, k + 1, k + 2, k + 3, k + 4]),
                3 => p.zadd_multiple(
                    &key,
                    &[(1, k), (2, k + 1), (3, k + 2), (4, k + 3), (5, k + 4)],
                ),
                _ => p.set(&key, format!("value-{k:08}-{}", "x".repeat(32))),
            }
            .ignore();
            if k % 3 == 0 {
                p.expire(&key, 3600 + (k % 3600) as i64).ignore();
            }
        }
        p.query::<()>(c).map_err(|e| format!("fill: {e}"))?;
        i += BATCH;
    }
    Ok(())
}

fn info_field(c: &mut redis::Connection, section: &str, key: &str) -> Result<String, String> {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(c)
        .map_err(|e| format!("INFO {section}: {e}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| format!("INFO {section} has no {key}"))
}

fn dbsize(c: &mut redis::Connection) -> Result<u64, String> {
    redis::cmd("DBSIZE")
        .query(c)
        .map_err(|e| format!("DBSIZE: {e}"))
}

/// Waits until the replica has every key the master has.
fn wait_synced(replica: &mut redis::Connection, keys: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if dbsize(replica)? >= keys
            && info_field(replica, "replication", "master_link_status")? == "up"
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the replica did not catch up within 300 s".into());
        }
        sleep(Duration::from_millis(200))?;
    }
}

fn pod_ip(b: &Bench, ordinal: u32) -> Result<String, String> {
    let pods = b.json(&["get", "pods"])?;
    let name = format!("{SCOPE}-{NAME}.{ordinal}");
    pods.as_array()
        .and_then(|a| a.iter().find(|p| p["pod"] == name.as_str()))
        .and_then(|p| p["ip"].as_str())
        .filter(|ip| !ip.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("no IP for pod {name}"))
}

/// One timed backup: wall time of the whole command and the file it wrote.
struct Sample {
    elapsed: Duration,
    bytes: u64,
}

fn vd_backup(b: &Bench, dir: &Path) -> Result<(Sample, PathBuf), String> {
    let t = Instant::now();
    let report = b.json(&[
        "redis:backup",
        &format!("{SCOPE}/{NAME}"),
        "--source",
        &(NODES - 1).to_string(),
        "--destination",
        &dir.to_string_lossy(),
    ])?;
    let elapsed = t.elapsed();
    let path = report["path"]
        .as_str()
        .map(PathBuf::from)
        .ok_or("vd redis:backup -o json has no path")?;
    let bytes = report["bytes"].as_u64().unwrap_or(0);
    Ok((Sample { elapsed, bytes }, path))
}

fn cli_backup(ip: &str, password: &str, file: &Path) -> Result<Sample, String> {
    let t = Instant::now();
    let out = Command::new("redis-cli")
        .args([
            "-h",
            ip,
            "-p",
            &PORT.to_string(),
            "--no-auth-warning",
            "-a",
            password,
            "--rdb",
        ])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run redis-cli: {e}"))?;
    let elapsed = t.elapsed();
    if !out.status.success() {
        return Err(format!(
            "redis-cli --rdb failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let bytes = std::fs::metadata(file)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .len();
    Ok(Sample { elapsed, bytes })
}

fn check(file: &Path) -> Result<(), String> {
    let bytes = std::fs::read(file).map_err(|e| format!("read {}: {e}", file.display()))?;
    vd_redisctl::rdb::verify(&bytes)
        .map(|_| ())
        .map_err(|e| format!("{} does not verify: {e}", file.display()))
}

/// A scratch `redis-server` on loopback that loads `file`; killed on drop.
struct Scratch(Child);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("free port: {e}"))
}

/// Loads `file` into a fresh redis-server and returns its key count.
fn keys_in(file: &Path, dir: &Path) -> Result<u64, String> {
    let port = free_port()?;
    let name = file.file_name().ok_or("no file name")?;
    let server = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .arg("--dbfilename")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn redis-server: {e}"))?;
    let _guard = Scratch(server);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(mut c) = connect("127.0.0.1", port, "") {
            if info_field(&mut c, "persistence", "loading").as_deref() == Ok("0") {
                return dbsize(&mut c);
            }
        }
        if Instant::now() > deadline {
            return Err("scratch redis-server did not load the file within 120 s".into());
        }
        sleep(Duration::from_millis(100))?;
    }
}

fn summary(label: &str, samples: &[Sample]) -> (String, f64) {
    let times = sorted(samples.iter().map(|s| ms(s.elapsed)).collect());
    let p50 = percentile(&times, 50.0);
    let bytes = samples.first().map(|s| s.bytes).unwrap_or(0);
    (
        format!(
            "| {label} | {:.0} | {p50:.0} | {:.0} | {:.1} | {:.0} |",
            times.first().copied().unwrap_or(0.0),
            times.last().copied().unwrap_or(0.0),
            bytes as f64 / 1_048_576.0,
            bytes as f64 / 1_048_576.0 / (p50 / 1000.0).max(1e-9),
        ),
        p50,
    )
}

fn run(b: &Bench) -> Result<String, String> {
    let keys = env_num("VD_BENCH_BACKUP_KEYS", 1_000_000).max(1);
    let runs = env_num("VD_BENCH_BACKUP_RUNS", 5).max(1);
    eprintln!("vd: {}\nroot: {}", b.bin.display(), b.root().display());
    let file = b.write("bk.hcl", &manifest())?;
    b.vd(&["apply", "-f", &file, "--timeout", "120s"])?;
    let password = b
        .vd(&[
            "config",
            &format!("{SCOPE}/{NAME}"),
            "get",
            "REDIS_PASSWORD",
        ])?
        .trim()
        .to_string();
    let master_ip = pod_ip(b, 0)?;
    let source_ip = pod_ip(b, NODES - 1)?;
    let mut master = connect(&master_ip, PORT, &password)?;
    let t = Instant::now();
    fill(&mut master, keys)?;
    let total = dbsize(&mut master)?;
    eprintln!("wrote {total} keys in {:.1} s", t.elapsed().as_secs_f64());
    let mut source = connect(&source_ip, PORT, &password)?;
    wait_synced(&mut source, total)?;
    let used = info_field(&mut master, "memory", "used_memory_human")?;

    let out = b.root().join("out");
    let vd_dir = out.join("vd");
    std::fs::create_dir_all(&vd_dir).map_err(|e| format!("mkdir: {e}"))?;
    let (mut vd_samples, mut cli_samples) = (Vec::new(), Vec::new());
    let mut last_vd_file = None;
    for i in 0..runs {
        // Alternate which tool goes first.
        let order = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for vd_first in order {
            if vd_first {
                let (s, path) = vd_backup(b, &vd_dir)?;
                check(&path)?;
                eprintln!(
                    "  run {i}: vd redis:backup   {:7.0} ms  {} bytes",
                    ms(s.elapsed),
                    s.bytes
                );
                vd_samples.push(s);
                if let Some(old) = last_vd_file.replace(path) {
                    let _ = std::fs::remove_file(old);
                }
            } else {
                let f = out.join(format!("cli-{i}.rdb"));
                let s = cli_backup(&source_ip, &password, &f)?;
                check(&f)?;
                eprintln!(
                    "  run {i}: redis-cli --rdb   {:7.0} ms  {} bytes",
                    ms(s.elapsed),
                    s.bytes
                );
                cli_samples.push(s);
                let _ = std::fs::remove_file(&f);
            }
        }
    }
    let last = last_vd_file.ok_or("no vd backup was taken")?;
    let loaded = keys_in(&last, last.parent().unwrap_or(&out))?;
    if loaded != total {
        return Err(format!(
            "vd's snapshot holds {loaded} keys, the master {total}"
        ));
    }

    let (vd_row, vd_p50) = summary("`vd redis:backup`", &vd_samples);
    let (cli_row, cli_p50) = summary("`redis-cli --rdb`", &cli_samples);
    let mut r = String::new();
    let _ = writeln!(r, "### Backup of {total} keys ({})\n", utc_now());
    let _ = writeln!(r, "- machine: {}", machine());
    let _ = writeln!(
        r,
        "- command: `{COMMAND}` (VD_BENCH_BACKUP_KEYS={keys}, VD_BENCH_BACKUP_RUNS={runs})"
    );
    let _ = writeln!(
        r,
        "- dataset: {total} keys (60 % strings, 10 % each hashes, lists, sets, sorted sets; a third with a TTL), master used_memory {used}; source: replica {} of {NODES}",
        NODES - 1
    );
    let _ = writeln!(r, "- every file verified (magic, CRC64); vd's last file loaded into a scratch redis-server: {loaded} keys\n");
    let _ = writeln!(
        r,
        "| tool | min ms | p50 ms | max ms | file MiB | MiB/s at p50 |"
    );
    let _ = writeln!(r, "|---|---|---|---|---|---|");
    let _ = writeln!(r, "{vd_row}");
    let _ = writeln!(r, "{cli_row}");
    let _ = writeln!(
        r,
        "\nvd / redis-cli at p50: {:.2} (goal: ≤ 1.00, not slower)",
        vd_p50 / cli_p50.max(1e-9)
    );
    Ok(r)
}
