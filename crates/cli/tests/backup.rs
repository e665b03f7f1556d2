//! `vd redis:backup` and `vd redis:backups`, end to end: a snapshot
//! streamed from a real pod over the replication protocol loads into a separate redis-server
//! with the same keys, values and TTLs; damaged copies are told apart.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_every_runtime, unwrapped, Vd};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vd_redisctl::rdb::{self, RdbError};

/// A redis-server the test starts on 127.0.0.1 and a free port, loading `dir/file`; killed
/// when dropped, also when the test fails.
struct Loaded {
    child: Child,
    port: u16,
}

impl Loaded {
    fn start(dir: &Path, file: &str) -> Loaded {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .args(["--dbfilename", file])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let loaded = Loaded { child, port };
        let start = Instant::now();
        loop {
            let ready = loaded.try_conn().and_then(|mut c| {
                redis::cmd("INFO")
                    .arg("persistence")
                    .query::<String>(&mut c)
                    .ok()
            });
            if ready.is_some_and(|i| i.contains("loading:0")) {
                return loaded;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "redis-server did not load {}",
                dir.join(file).display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_conn(&self) -> Option<redis::Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes that LZF cannot shrink, so the snapshot spans many reads.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Keys of every common type, some with TTLs.
fn write_dataset(c: &mut redis::Connection) {
    let mut p = redis::pipe();
    for i in 0..300 {
        p.cmd("SET").arg(format!("s:{i}")).arg(format!("value {i}"));
        if i % 3 == 0 {
            p.cmd("EXPIRE").arg(format!("s:{i}")).arg(3600);
        }
    }
    p.cmd("SET").arg("blob").arg(noise(512 * 1024, 7));
    p.cmd("PEXPIRE").arg("blob").arg(7_200_000);
    p.cmd("SET")
        .arg("counter")
        .arg(41)
        .cmd("INCR")
        .arg("counter");
    for i in 0..20 {
        let h = format!("h:{i}");
        for f in 0..(if i == 0 { 600 } else { 10 }) {
            p.cmd("HSET").arg(&h).arg(format!("f{f}")).arg(f * i);
        }
        if i % 2 == 0 {
            p.cmd("EXPIRE").arg(&h).arg(1800);
        }
    }
    for i in 0..10 {
        for v in 0..(if i == 0 { 1000 } else { 50 }) {
            p.cmd("RPUSH").arg(format!("l:{i}")).arg(v);
            p.cmd("SADD").arg(format!("st:{i}")).arg(format!("m{v}"));
            p.cmd("ZADD")
                .arg(format!("z:{i}"))
                .arg(f64::from(v) / 3.0)
                .arg(format!("m{v}"));
        }
    }
    p.cmd("SADD").arg("ints").arg(1).arg(2).arg(3);
    p.cmd("EXPIRE").arg("z:1").arg(600);
    for i in 0..5 {
        p.cmd("XADD")
            .arg("events")
            .arg("*")
            .arg("n")
            .arg(i)
            .arg("what")
            .arg("test");
    }
    let _: () = p.query(c).expect("write the dataset");
}

/// Every key: its type, its value (order-free for hashes and sets) and whether it expires.
fn contents(c: &mut redis::Connection) -> BTreeMap<String, (String, String, bool)> {
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(c).unwrap();
    let mut out = BTreeMap::new();
    for k in keys {
        let t: String = redis::cmd("TYPE").arg(&k).query(c).unwrap();
        let v = match t.as_str() {
            "string" => format!("{:?}", redis::cmd("GET").arg(&k).query::<Vec<u8>>(c)),
            "hash" => format!(
                "{:?}",
                redis::cmd("HGETALL")
                    .arg(&k)
                    .query::<BTreeMap<String, String>>(c)
            ),
            "list" => format!(
                "{:?}",
                redis::cmd("LRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .query::<Vec<String>>(c)
            ),
            "set" => format!(
                "{:?}",
                redis::cmd("SMEMBERS").arg(&k).query::<BTreeSet<String>>(c)
            ),
            "zset" => format!(
                "{:?}",
                redis::cmd("ZRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query::<Vec<String>>(c)
            ),
            "stream" => format!(
                "{:?}",
                redis::cmd("XRANGE")
                    .arg(&k)
                    .arg("-")
                    .arg("+")
                    .query::<redis::Value>(c)
            ),
            other => panic!("unexpected type {other} for {k}"),
        };
        let ttl: i64 = redis::cmd("PTTL").arg(&k).query(c).unwrap();
        out.insert(k, (t, v, ttl > 0));
    }
    out
}

fn dbsize(c: &mut redis::Connection) -> i64 {
    redis::cmd("DBSIZE").query(c).unwrap()
}

/// `data-cache-YYYYMMDDTHHMMSSZ.rdb`.
fn is_backup_name(file: &str) -> bool {
    let Some(stamp) = file
        .strip_prefix("data-cache-")
        .and_then(|r| r.strip_suffix(".rdb"))
    else {
        return false;
    };
    let b = stamp.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn backup_streams_a_verified_rdb_that_loads_elsewhere() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("r.hcl", common::THREE_PODS));
    let mut master = vd.cache_conn(0).expect("master answers");
    write_dataset(&mut master);
    let acked: i64 = redis::cmd("WAIT")
        .arg(2)
        .arg(20_000)
        .query(&mut master)
        .unwrap();
    assert_eq!(acked, 2, "both replicas have the dataset");
    let want = contents(&mut master);
    assert_eq!(want.len(), 354, "every key of the dataset");

    // ----- the default: the highest-ordinal replica, into <root>/backups/data/cache
    let report: Value =
        serde_json::from_str(&vd.vd(&["redis:backup", "data/cache", "-o", "json"])).unwrap();
    let file = report["file"].as_str().unwrap().to_string();
    assert!(is_backup_name(&file), "{file}");
    let dir = vd.path().join("backups/data/cache");
    let path = dir.join(&file);
    assert_eq!(report["path"], path.display().to_string());
    assert_eq!(report["source"], 2);
    assert_eq!(report["source_pod"], "data-cache.2");
    assert_eq!(report["source_role"], "replica");
    assert_eq!(report["diskless"], true, "the macro's repl-diskless-sync");
    assert!(
        report["checksum"].as_str().unwrap().starts_with("crc64 "),
        "{report}"
    );
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(report["bytes"], bytes.len() as u64);
    assert!(bytes.len() > 512 * 1024, "the blob is in it");
    assert_eq!(
        files(&dir),
        std::slice::from_ref(&file),
        "no temporary file is left"
    );
    let verified = rdb::verify(&bytes).expect("the file verifies");
    assert_eq!(verified.bytes, bytes.len() as u64);
    assert!(vd.events().iter().any(|e| e["reason"] == "BackedUp"));

    // ----- it loads into a separate redis-server with the same keys, values and TTLs
    let load_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&path, load_dir.path().join("restored.rdb")).unwrap();
    let loaded = Loaded::start(load_dir.path(), "restored.rdb");
    let mut c = loaded.try_conn().unwrap();
    assert_eq!(dbsize(&mut c), dbsize(&mut master));
    let got = contents(&mut c);
    assert_eq!(got.len(), want.len());
    for (k, w) in &want {
        assert_eq!(got.get(k), Some(w), "key {k}");
    }
    drop(loaded);

    // ----- listing
    let table = vd.vd(&["redis:backups", "data/cache"]);
    assert!(
        table.contains("FILE") && table.contains("TAKEN (UTC)") && table.contains(&file),
        "{table}"
    );
    let listed: Value =
        serde_json::from_str(&vd.vd(&["redis:backups", "data/cache", "-o", "json"])).unwrap();
    assert_eq!(listed["directory"], dir.display().to_string());
    let entries = listed["backups"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{listed}");
    assert_eq!(entries[0]["file"], file);
    assert_eq!(entries[0]["bytes"], bytes.len() as u64);
    assert_eq!(entries[0]["taken_at"], report["taken_at"]);

    // ----- from the master, into a relative --destination (the CLI's current directory)
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(common::bin())
        .arg("--root")
        .arg(vd.path())
        .args(["redis:backup", "data/cache", "--source", "0"])
        .args(["--destination", "out/here"])
        .current_dir(cwd.path())
        .env_remove("VD_ROOT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let there: PathBuf = cwd.path().join("out/here");
    let theirs = files(&there);
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert!(is_backup_name(&theirs[0]));
    assert!(
        stdout.contains("backed up from data-cache.0 (master)")
            && stdout.contains(&there.join(&theirs[0]).display().to_string())
            && stdout.contains(" bytes) in ")
            && stdout.contains("verified"),
        "size, duration and the check are printed: {stdout}"
    );
    rdb::verify(&std::fs::read(there.join(&theirs[0])).unwrap()).unwrap();
    let listed: Value = serde_json::from_str(&vd.vd(&[
        "redis:backups",
        "data/cache",
        "--destination",
        &there.display().to_string(),
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(listed["backups"][0]["file"], theirs[0]);

    // ----- damaged copies are told apart
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    assert!(
        matches!(
            rdb::verify(&flipped),
            Err(RdbError::ChecksumMismatch { .. })
        ),
        "one flipped byte"
    );
    for len in [bytes.len() - 1, bytes.len() - 100, mid, 20, 4] {
        let e = rdb::verify(&bytes[..len]).unwrap_err();
        assert!(
            matches!(
                e,
                RdbError::NoEnd | RdbError::TooShort { .. } | RdbError::ChecksumMismatch { .. }
            ),
            "truncated to {len}: {e}"
        );
    }

    // ----- errors say what to fix
    let e = unwrapped(&vd.vd_fails(&["redis:backup", "data/cache", "--source", "7"]));
    assert!(
        e.contains("has no ordinal 7 (replicas = 3)") && e.contains("from 0 to 2"),
        "{e}"
    );
    let e = unwrapped(&vd.vd_fails(&["redis:backup", "data/nope"]));
    assert!(
        e.contains("redis data/nope does not exist") && e.contains("vd get redis"),
        "{e}"
    );
    let e = unwrapped(&vd.vd_fails(&["redis:backups", "data/nope"]));
    assert!(e.contains("data/nope does not exist"), "{e}");
    assert_eq!(files(&dir), [file], "failed attempts wrote nothing");
}

on_every_runtime!(backup_streams_a_verified_rdb_that_loads_elsewhere);
