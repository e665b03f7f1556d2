//! `vd redis:restore` end to end against real redis-server pods: a backup of a mixed-type
//! dataset with TTLs restores onto the master and every replica after the data changed;
//! damaged files are refused before the master is touched; a sentinel sibling and
//! `appendonly yes` are refused unless asked for, and work when asked for.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_every_runtime, unwrapped, Vd};
use serde_json::Value;
use std::time::Duration;

/// [`common::THREE_PODS`] with `appendonly yes` from a conf.d file.
const WITH_AOF: &str = r#"asset "data" "aof" {
  conf = "appendonly yes\n"
}

redis "data" "cache" {
  replicas = 3
  volumes = ["${asset.data.aof.conf}:/etc/redis/conf.d/aof.conf:ro"]
  probes {
    readiness {
      exec { command = ["redis-cli", "-h", "${VOODU_POD_IP}", "ping"] }
      period = "300ms"
    }
  }
}
"#;

/// Key `i` of the dataset: its name, type, and whether it has a TTL. A tenth of each type
/// but strings; every seventh key expires in 10 hours.
fn key(i: u64) -> (String, &'static str, bool) {
    let t = match i % 10 {
        0..=5 => "string",
        6 => "hash",
        7 => "list",
        8 => "set",
        _ => "zset",
    };
    (format!("k:{i}"), t, i.is_multiple_of(7))
}

/// Writes `n` keys of mixed types, pipelined.
fn load_dataset(c: &mut redis::Connection, n: u64) {
    const BATCH: u64 = 20_000;
    let mut i = 0;
    while i < n {
        let mut p = redis::pipe();
        for j in i..(i + BATCH).min(n) {
            let (k, t, ttl) = key(j);
            match t {
                "string" => p.cmd("SET").arg(&k).arg(format!("v{j}")).ignore(),
                "hash" => p
                    .cmd("HSET")
                    .arg(&k)
                    .arg("a")
                    .arg(j)
                    .arg("b")
                    .arg(format!("x{j}"))
                    .ignore(),
                "list" => p.cmd("RPUSH").arg(&k).arg(j).arg(j + 1).arg(j + 2).ignore(),
                "set" => p.cmd("SADD").arg(&k).arg("m1").arg(j).ignore(),
                _ => p
                    .cmd("ZADD")
                    .arg(&k)
                    .arg(1.5)
                    .arg("one")
                    .arg(j as f64)
                    .arg("two")
                    .ignore(),
            };
            if ttl {
                p.cmd("EXPIRE").arg(&k).arg(36_000).ignore();
            }
        }
        let _: () = p.query(c).expect("write the dataset");
        i += BATCH;
    }
}

/// Checks a sample of the dataset's keys: type, value, TTL.
fn spot_check(c: &mut redis::Connection, n: u64, who: &str) {
    let step = (n / 500).max(1) | 1;
    let mut checked = 0;
    for i in (0..n).step_by(step as usize).chain([n - 1]) {
        let (k, t, ttl) = key(i);
        let got: String = redis::cmd("TYPE").arg(&k).query(c).unwrap();
        assert_eq!(got, t, "{who}: type of {k}");
        match t {
            "string" => {
                let v: String = redis::cmd("GET").arg(&k).query(c).unwrap();
                assert_eq!(v, format!("v{i}"), "{who}: {k}");
            }
            "hash" => {
                let v: Vec<String> = redis::cmd("HMGET")
                    .arg(&k)
                    .arg("a")
                    .arg("b")
                    .query(c)
                    .unwrap();
                assert_eq!(v, [i.to_string(), format!("x{i}")], "{who}: {k}");
            }
            "list" => {
                let v: Vec<u64> = redis::cmd("LRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .query(c)
                    .unwrap();
                assert_eq!(v, [i, i + 1, i + 2], "{who}: {k}");
            }
            "set" => {
                let v: bool = redis::cmd("SISMEMBER").arg(&k).arg(i).query(c).unwrap();
                let card: u64 = redis::cmd("SCARD").arg(&k).query(c).unwrap();
                assert!(v && card == 2, "{who}: {k}");
            }
            _ => {
                let s: f64 = redis::cmd("ZSCORE").arg(&k).arg("two").query(c).unwrap();
                assert_eq!(s, i as f64, "{who}: {k}");
            }
        }
        let pttl: i64 = redis::cmd("PTTL").arg(&k).query(c).unwrap();
        if ttl {
            assert!(
                pttl > 30_000_000 && pttl <= 36_000_000,
                "{who}: {k} keeps its TTL ({pttl} ms)"
            );
        } else {
            assert_eq!(pttl, -1, "{who}: {k} has no TTL");
        }
        checked += 1;
    }
    assert!(checked > 400, "{checked} keys checked");
}

fn dbsize(c: &mut redis::Connection) -> u64 {
    redis::cmd("DBSIZE").query(c).unwrap()
}

/// Loads `n` keys through the master and waits until both replicas have them.
fn seed(vd: &Vd, n: u64) {
    let mut master = vd.cache_conn(0).expect("master answers");
    load_dataset(&mut master, n);
    let acked: i64 = redis::cmd("WAIT")
        .arg(2)
        .arg(120_000)
        .query(&mut master)
        .unwrap();
    assert_eq!(acked, 2, "both replicas have the dataset");
    assert_eq!(dbsize(&mut master), n);
}

/// `vd redis:backup` and the file it wrote.
fn backup(vd: &Vd) -> String {
    let report: Value =
        serde_json::from_str(&vd.vd(&["redis:backup", "data/cache", "-o", "json"])).unwrap();
    report["path"].as_str().expect("path").to_string()
}

/// Replaces the dataset with one key, on every pod.
fn overwrite(vd: &Vd) {
    let mut master = vd.cache_conn(0).unwrap();
    let _: () = redis::cmd("FLUSHALL").query(&mut master).unwrap();
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("backup")
        .query(&mut master)
        .unwrap();
    let acked: i64 = redis::cmd("WAIT")
        .arg(2)
        .arg(20_000)
        .query(&mut master)
        .unwrap();
    assert_eq!(acked, 2);
}

/// `vd redis:restore … -o json`, asserting it restored `n` keys onto every pod.
fn restore(vd: &Vd, file: &str, extra: &[&str], n: u64) -> Value {
    let mut args = vec!["redis:restore", "data/cache", "--from", file, "-o", "json"];
    args.extend_from_slice(extra);
    let r: Value = serde_json::from_str(&vd.vd(&args)).unwrap();
    assert_eq!(r["keys"], n, "{r}");
    assert_eq!(r["master_pod"], "data-cache.0", "{r}");
    let replicas = r["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2, "{r}");
    for row in replicas {
        assert_eq!(row["synced"], true, "{r}");
        assert_eq!(row["keys"], n, "{r}");
        assert_eq!(row["link"], "up", "{r}");
    }
    for o in 0..3 {
        let mut c = vd.cache_conn(o).expect("pod answers");
        assert_eq!(dbsize(&mut c), n, "ordinal {o}");
        let after: Option<String> = redis::cmd("GET").arg("after").query(&mut c).unwrap();
        assert_eq!(after, None, "ordinal {o}: the later write is gone");
    }
    r
}

/// A refused restore: the error, and proof the master was never stopped.
fn refused(vd: &Vd, args: &[&str]) -> String {
    let pid = vd.pid("data-cache.0");
    let restarts = vd.pod("data-cache.0").unwrap()["restarts"].clone();
    let e = unwrapped(&vd.vd_fails(args));
    assert_eq!(
        vd.pid("data-cache.0"),
        pid,
        "the master was not restarted: {e}"
    );
    assert_eq!(vd.pod("data-cache.0").unwrap()["restarts"], restarts);
    let mut c = vd.cache_conn(0).unwrap();
    let after: Option<String> = redis::cmd("GET").arg("after").query(&mut c).unwrap();
    assert_eq!(after.as_deref(), Some("backup"), "data untouched: {e}");
    assert!(
        !vd.events()
            .iter()
            .any(|ev| ev["reason"] == "Restored" || ev["reason"] == "RestoreFailed"),
        "{e}"
    );
    e
}

fn restore_round_trips_a_backup_and_refuses_damaged_files() {
    let _g = common::own_addresses();
    // The acceptance dataset: one million keys of mixed types, a seventh with TTLs.
    let n: u64 = 1_000_000;
    let vd = Vd::start();
    vd.apply(&vd.manifest("r.hcl", common::THREE_PODS));
    seed(&vd, n);
    let file = backup(&vd);
    overwrite(&vd);

    // ----- damaged files: refused before anything stops
    let bytes = std::fs::read(&file).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.rdb");
    std::fs::write(&truncated, &bytes[..bytes.len() - 1000]).unwrap();
    let flipped = dir.path().join("flipped.rdb");
    let mut f = bytes.clone();
    f[bytes.len() / 2] ^= 0x20;
    std::fs::write(&flipped, &f).unwrap();
    drop(f);
    for (path, why) in [
        (&truncated, "truncated"),
        (&flipped, "CRC64 checksum does not match"),
    ] {
        let p = path.display().to_string();
        let e = refused(&vd, &["redis:restore", "data/cache", "--from", &p]);
        assert!(
            e.contains("is not a whole RDB")
                && e.contains(why)
                && e.contains("nothing was stopped or changed"),
            "{e}"
        );
    }
    let e = refused(
        &vd,
        &["redis:restore", "data/cache", "--from", "/nonexistent.rdb"],
    );
    assert!(e.contains("cannot read /nonexistent.rdb"), "{e}");

    // ----- the backup comes back on the master and both replicas
    let pid = vd.pid("data-cache.0");
    let r = restore(&vd, &file, &[], n);
    assert_eq!(r["aof_rebuilt"], false);
    assert_eq!(r["sentinel"], Value::Null);
    assert!(r["checksum"].as_str().unwrap().starts_with("crc64 "), "{r}");
    assert_ne!(vd.pid("data-cache.0"), pid, "the master was restarted");
    for o in 0..3 {
        spot_check(&mut vd.cache_conn(o).unwrap(), n, &format!("ordinal {o}"));
    }
    let ev = vd.events();
    let restored = ev
        .iter()
        .find(|e| e["reason"] == "Restored")
        .expect("a Restored event");
    assert!(
        restored["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{n} keys")),
        "{restored}"
    );
    // The master is back under normal supervision: ready, and restarted if it dies.
    let master = vd.pod("data-cache.0").unwrap();
    assert_eq!(master["state"], "Running");
    assert_eq!(master["ready"], true);

    // The table output.
    overwrite(&vd);
    let out = vd.vd(&["redis:restore", "data/cache", "--from", &file]);
    assert!(
        out.contains(&format!("{n} keys loaded by data-cache.0"))
            && out.contains("REPLICA")
            && out.contains("data-cache.2"),
        "{out}"
    );
}

on_every_runtime!(restore_round_trips_a_backup_and_refuses_damaged_files);

/// Sentinel addresses of `data/cache-ha`.
fn sentinel_conns(vd: &Vd) -> Vec<redis::Connection> {
    (0..3).map(|o| vd.sentinel_conn(o)).collect()
}

#[test]
fn restore_with_a_sentinel_sibling() {
    common::on_runtime("process", || {
        let _g = common::own_addresses();
        let vd = Vd::start();
        let manifest = format!("{}{}", common::THREE_PODS, common::SENTINEL_SIBLING);
        vd.apply(&vd.manifest("r.hcl", &manifest));
        let n = 5_000;
        seed(&vd, n);
        let file = backup(&vd);
        overwrite(&vd);
        vd.wait_for("the sentinels to agree", Duration::from_secs(30), || {
            sentinel_conns(&vd).iter_mut().all(|s| {
                redis::cmd("SENTINEL")
                    .arg("CKQUORUM")
                    .arg("voodu-master")
                    .query::<String>(s)
                    .is_ok()
            })
        });

        let e = refused(&vd, &["redis:restore", "data/cache", "--from", &file]);
        assert!(
            e.contains("redis/data/cache-ha watches redis/data/cache")
                && e.contains("--with-sentinel"),
            "{e}"
        );

        let r = restore(&vd, &file, &["--with-sentinel"], n);
        assert_eq!(r["sentinel"], "redis/data/cache-ha", "{r}");
        for mut s in sentinel_conns(&vd) {
            let addr: Vec<String> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg("voodu-master")
                .query(&mut s)
                .unwrap();
            assert_eq!(addr[0], "cache-0.data.voodu");
            let ok: String = redis::cmd("SENTINEL")
                .arg("CKQUORUM")
                .arg("voodu-master")
                .query(&mut s)
                .unwrap();
            assert!(ok.starts_with("OK"), "{ok}");
            // The override's timing is given back, not the macro's default.
            let m: std::collections::HashMap<String, String> = redis::cmd("SENTINEL")
                .arg("MASTER")
                .arg("voodu-master")
                .query(&mut s)
                .unwrap();
            assert_eq!(m["down-after-milliseconds"], "1000", "{m:?}");
            assert_eq!(m["failover-timeout"], "5000", "{m:?}");
            assert_eq!(m["quorum"], "2", "{m:?}");
        }
        // The sentinels still authenticate to the pods: they learn the replicas again.
        vd.wait_for(
            "the sentinels to see both replicas",
            Duration::from_secs(30),
            || {
                sentinel_conns(&vd).iter_mut().all(|s| {
                    redis::cmd("SENTINEL")
                        .arg("REPLICAS")
                        .arg("voodu-master")
                        .query::<Vec<std::collections::HashMap<String, String>>>(s)
                        .is_ok_and(|r| {
                            r.len() == 2 && r.iter().all(|x| !x["flags"].contains("disconnected"))
                        })
                })
            },
        );
        spot_check(&mut vd.cache_conn(1).unwrap(), n, "ordinal 1");
    });
}

#[test]
fn restore_with_appendonly() {
    common::on_runtime("process", || {
        let _g = common::own_addresses();
        let vd = Vd::start();
        vd.apply(&vd.manifest("r.hcl", WITH_AOF));
        let n = 20_000;
        seed(&vd, n);
        let file = backup(&vd);
        overwrite(&vd);

        let e = refused(&vd, &["redis:restore", "data/cache", "--from", &file]);
        assert!(
            e.contains("appendonly yes") && e.contains("ignores dump.rdb") && e.contains("--force"),
            "{e}"
        );

        let r = restore(&vd, &file, &["--force"], n);
        assert_eq!(r["aof_rebuilt"], true, "{r}");
        let mut c = vd.cache_conn(0).unwrap();
        let aof: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .query(&mut c)
            .unwrap();
        assert_eq!(aof[1], "yes");
        spot_check(&mut c, n, "master");
        // A write after the restore lands in the AOF, after the restored base: a crash and
        // restart (the AOF is what Redis loads) keeps both.
        let _: () = redis::cmd("SET")
            .arg("later")
            .arg("1")
            .query(&mut c)
            .unwrap();
        let pid = vd.pid("data-cache.0");
        vd.signal_pod("data-cache.0", "-9");
        vd.wait_for("the master to restart", Duration::from_secs(30), || {
            let p = vd.pid("data-cache.0");
            p != 0
                && p != pid
                && vd
                    .cache_conn(0)
                    .and_then(|mut c| {
                        redis::cmd("INFO")
                            .arg("persistence")
                            .query::<String>(&mut c)
                            .ok()
                    })
                    .is_some_and(|i| i.contains("loading:0"))
        });
        let mut c = vd.cache_conn(0).unwrap();
        assert_eq!(dbsize(&mut c), n + 1);
        let later: Option<String> = redis::cmd("GET").arg("later").query(&mut c).unwrap();
        assert_eq!(later.as_deref(), Some("1"));
        spot_check(&mut c, n, "master after a crash");
    });
}

#[test]
fn restore_with_automatic_failover() {
    common::on_runtime("process", || {
        let _g = common::own_addresses();
        let vd = Vd::start();
        let manifest = common::THREE_PODS.replace(
            "  replicas = 3\n",
            "  replicas = 3\n  failover {\n    automatic = true\n    down_after = \"1s\"\n  }\n",
        );
        vd.apply(&vd.manifest("r.hcl", &manifest));
        let n = 5_000;
        seed(&vd, n);
        let file = backup(&vd);
        overwrite(&vd);
        // The controller sees its master stopped for longer than down_after: paused, it
        // promotes no replica, and once resumed it finds nothing to fix.
        restore(&vd, &file, &[], n);
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(vd.master_ordinal(), 0);
        assert!(
            !vd.events().iter().any(|e| e["reason"] == "Failover"),
            "no failover during or after the restore"
        );
        for o in 0..3 {
            assert_eq!(dbsize(&mut vd.cache_conn(o).unwrap()), n, "ordinal {o}");
        }
        assert_eq!(vd.cache_role(0).unwrap().0, "master");
    });
}

/// A replica that cannot resync (its process hung) makes the restore exit with an error that
/// names it, after the report; the master has the restored data and the other replica too.
#[test]
fn a_restore_whose_replica_does_not_resync_fails() {
    common::on_runtime("process", || {
        let _g = common::own_addresses();
        let vd = Vd::start();
        vd.apply(&vd.manifest("r.hcl", common::THREE_PODS));
        let n = 1_000;
        seed(&vd, n);
        let file = backup(&vd);
        overwrite(&vd);
        vd.hang_pod("data-cache.2");
        let out = vd.try_vd(&["redis:restore", "data/cache", "--from", &file]);
        vd.resume_pod("data-cache.2");
        let text = unwrapped(&format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
        assert!(
            !out.status.success(),
            "the restore said it was done:\n{text}"
        );
        assert!(
            text.contains("1 of 2 replicas did not resync in time: data-cache.2"),
            "{text}"
        );
        assert!(
            text.contains("keys loaded by data-cache.0"),
            "the report came first: {text}"
        );
        assert_eq!(dbsize(&mut vd.cache_conn(0).unwrap()), n);
        assert_eq!(dbsize(&mut vd.cache_conn(1).unwrap()), n);
    });
}

#[test]
fn restore_from_s3() {
    common::on_runtime("process", || {
        let _g = common::own_addresses();
        let moto = common::moto_with_bucket("vd-restore");
        let vd = Vd::start();
        vd.aws_config_for(&moto);
        let manifest = common::THREE_PODS.replace(
            "  replicas = 3\n",
            "  replicas = 3\n  env_from = [\"aws\"]\n",
        );
        vd.apply(&vd.manifest("r.hcl", &manifest));
        let n = 5_000;
        seed(&vd, n);
        let report: Value = serde_json::from_str(&vd.vd(&[
            "redis:backup",
            "data/cache",
            "--destination",
            "s3://vd-restore/redis",
            "-o",
            "json",
        ]))
        .unwrap();
        let url = report["path"].as_str().unwrap().to_string();
        assert!(url.starts_with("s3://vd-restore/redis/"), "{url}");
        overwrite(&vd);
        let e = refused(
            &vd,
            &[
                "redis:restore",
                "data/cache",
                "--from",
                "s3://vd-restore/redis/none.rdb",
            ],
        );
        assert!(e.contains("nothing was stopped or changed"), "{e}");
        let r = restore(&vd, &url, &[], n);
        assert_eq!(r["from"], url.as_str());
        spot_check(&mut vd.cache_conn(2).unwrap(), n, "ordinal 2");
        let tmp = vd.path().join("tmp");
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("restore-"))
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "the download is removed: {left:?}");
    });
}
