//! Scheduled backups: `backup { schedule keep destination }` in a data redis runs on
//! its cron schedule, writes verified RDB files, prunes to `keep` (only the files its schedule
//! took: this redis's backups taken by hand stay),
//! records events, carries on after a failed run; and reaches a local S3-compatible server
//! (moto, from PyPI) with credentials from the redis's env_from bucket, then from the backup
//! block's own, which keeps them out of the pods.
//!
//! The server runs with `VD_TEST_SCHEDULE_SPEEDUP=20`: its scheduler's clock runs 20 times
//! faster, so "* * * * *" fires every 3 s with the real cron evaluation.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_every_runtime, Moto, Vd};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use vd_redisctl::rdb;

const SPEEDUP: (&str, &str) = ("VD_TEST_SCHEDULE_SPEEDUP", "20");

fn manifest(destination: &str, env_from: &str) -> String {
    format!(
        r#"redis "data" "cache" {{
  replicas = 1
  env_from = [{env_from}]
  probes {{
    readiness {{
      exec {{ command = ["redis-cli", "-h", "${{VOODU_POD_IP}}", "ping"] }}
      period = "300ms"
    }}
  }}
  backup {{
    schedule    = "* * * * *"
    keep        = 2
    destination = "{destination}"
  }}
}}
"#
    )
}

/// This redis's backup files in `dir` (not temporaries, not other files), sorted.
fn backups(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| is_cache_backup(f))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `data-cache-YYYYMMDDTHHMMSSZ.sched.rdb`: a backup the schedule took.
fn is_cache_backup(file: &str) -> bool {
    file.strip_prefix("data-cache-")
        .and_then(|r| r.strip_suffix(".sched.rdb"))
        .is_some_and(|s| s.len() == 16 && s.as_bytes()[8] == b'T')
}

/// Events of data/cache with this reason.
fn events(vd: &Vd, reason: &str) -> Vec<String> {
    vd.events()
        .into_iter()
        .filter(|e| {
            e["reason"] == reason
                && e["resource"]["scope"] == "data"
                && e["resource"]["name"] == "cache"
        })
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn scheduled_backups_run_prune_and_survive_failures() {
    let _g = common::own_addresses();
    let vd = Vd::start_env(&[SPEEDUP]);
    let dest = tempfile::tempdir().unwrap();
    // Files that are not this redis's backups: pruning must leave them alone.
    let foreign = [
        "notes.txt",
        "data-cache-2-20200101T000000Z.rdb",
        "data-cache-latest.rdb",
    ];
    for f in foreign {
        std::fs::write(dest.path().join(f), "keep me").unwrap();
    }
    let d = dest.path().display().to_string();
    vd.apply(&vd.manifest("r.hcl", &manifest(&d, "")));
    let mut c = vd.cache_conn(0).expect("the master answers");
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    // A backup by hand into the schedule's destination: pruning never counts or removes it.
    let by_hand: Value = serde_json::from_str(&vd.vd(&[
        "redis:backup",
        "data/cache",
        "--destination",
        &d,
        "-o",
        "json",
    ]))
    .unwrap();
    let by_hand = by_hand["file"].as_str().unwrap().to_string();
    assert!(!by_hand.contains(".sched."), "{by_hand}");

    // Runs happen (one per fast minute), each writes a verified file, and pruning keeps 2.
    // Three by the schedule, besides the one by hand.
    vd.wait_for("3 scheduled backups", Duration::from_secs(60), || {
        events(&vd, "BackedUp").len() > 3
    });
    vd.wait_for("pruning to keep = 2", Duration::from_secs(30), || {
        !events(&vd, "BackupsPruned").is_empty() && backups(dest.path()).len() == 2
    });
    let taken = events(&vd, "BackedUp");
    assert_eq!(
        taken
            .iter()
            .filter(|m| !m.starts_with("scheduled: "))
            .count(),
        1,
        "one taken by hand, the others by the schedule: {taken:?}"
    );
    let pruned = events(&vd, "BackupsPruned");
    assert!(pruned[0].contains("beyond keep = 2"), "{pruned:?}");
    for f in backups(dest.path()) {
        let bytes = std::fs::read(dest.path().join(&f)).unwrap();
        rdb::verify(&bytes).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    for f in foreign.iter().chain([&by_hand.as_str()]) {
        assert!(dest.path().join(f).exists(), "{f} was pruned");
    }
    let listed: Value = serde_json::from_str(&vd.vd(&[
        "redis:backups",
        "data/cache",
        "--destination",
        &d,
        "-o",
        "json",
    ]))
    .unwrap();
    let listed = listed["backups"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "two scheduled and one by hand: {listed:?}");
    assert_eq!(
        listed.iter().filter(|b| b["scheduled"] == true).count(),
        2,
        "{listed:?}"
    );

    // A failing run is recorded and does not stop the schedule: the destination turns into a
    // file, then back into a directory.
    let saved = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(dest.path()).unwrap().flatten() {
        std::fs::rename(f.path(), saved.path().join(f.file_name())).unwrap();
    }
    std::fs::remove_dir(dest.path()).unwrap();
    std::fs::write(dest.path(), "not a directory").unwrap();
    vd.wait_for("2 failed runs", Duration::from_secs(30), || {
        events(&vd, "BackupFailed").len() >= 2
    });
    let failed = events(&vd, "BackupFailed");
    assert!(
        failed[0].starts_with("scheduled backup for ")
            && failed[0].contains("cannot create the destination"),
        "{failed:?}"
    );
    std::fs::remove_file(dest.path()).unwrap();
    std::fs::create_dir(dest.path()).unwrap();
    let before = events(&vd, "BackedUp").len();
    vd.wait_for("runs after the failures", Duration::from_secs(30), || {
        events(&vd, "BackedUp").len() > before && !backups(dest.path()).is_empty()
    });

    // The slot is in the store: a restarted server goes on from it.
    let mut vd = vd;
    vd.kill_server();
    vd.start_server();
    let before = events(&vd, "BackedUp").len();
    vd.wait_for("runs after a restart", Duration::from_secs(30), || {
        events(&vd, "BackedUp").len() >= before + 2
    });
    vd.wait_for("pruning after a restart", Duration::from_secs(30), || {
        backups(dest.path()).len() == 2
    });
}

on_every_runtime!(scheduled_backups_run_prune_and_survive_failures);

// ----- S3, against moto's server

const BUCKET: &str = "vd-backups";
const URL: &str = "s3://vd-backups/redis/cache";

fn s3_list(vd: &Vd) -> Vec<Value> {
    let listed: Value = serde_json::from_str(&vd.vd(&[
        "redis:backups",
        "data/cache",
        "--destination",
        URL,
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(listed["directory"], URL);
    listed["backups"].as_array().cloned().unwrap_or_default()
}

fn scheduled_and_manual_backups_reach_s3() {
    let _g = common::own_addresses();
    let moto = Moto::start();
    let (status, _) = moto.http("PUT", &format!("/{BUCKET}"));
    assert_eq!(status, 200, "create the bucket");
    let vd = Vd::start_env(&[SPEEDUP]);
    vd.aws_config_for(&moto);
    // A manual backup first, with no schedule yet.
    let plain = manifest(URL, "\"aws\"").replace("* * * * *", "0 0 1 1 *");
    vd.apply(&vd.manifest("r.hcl", &plain));
    let mut c = vd.cache_conn(0).expect("the master answers");
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let report: Value = serde_json::from_str(&vd.vd(&[
        "redis:backup",
        "data/cache",
        "--destination",
        URL,
        "-o",
        "json",
    ]))
    .unwrap();
    let file = report["file"].as_str().unwrap().to_string();
    assert_eq!(report["path"], format!("{URL}/{file}"));
    let (status, body) = moto.http("GET", &format!("/{BUCKET}/redis/cache/{file}"));
    assert_eq!(status, 200);
    assert_eq!(body.len() as u64, report["bytes"].as_u64().unwrap());
    rdb::verify(&body).expect("the uploaded object verifies");
    let listed = s3_list(&vd);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["file"], file);
    assert_eq!(listed[0]["path"], format!("{URL}/{file}"));
    // Nothing is left in the staging directory.
    let staging = vd.path().join("tmp/backups");
    assert_eq!(
        std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0),
        0
    );

    // Scheduled runs land there too and are pruned to keep = 2. The credentials now come
    // from the backup block's own env_from, which the pods do not get.
    let keys_apart = manifest(URL, "").replace(
        "    keep        = 2\n",
        "    keep        = 2\n    env_from    = [\"aws\"]\n",
    );
    vd.apply(&vd.manifest("r.hcl", &keys_apart));
    // The process runtime keeps each running pod's launch (its env included) in init.json.
    let launch = vd.path().join("pods/data-cache.0/init.json");
    vd.wait_for(
        "the pod restarted without the aws bucket",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&launch)
                .is_ok_and(|spec| spec.contains("REDIS_PASSWORD") && !spec.contains("AWS_"))
        },
    );
    vd.wait_for("3 scheduled backups to S3", Duration::from_secs(60), || {
        events(&vd, "BackedUp")
            .iter()
            .filter(|m| m.starts_with("scheduled: s3://"))
            .count()
            >= 3
    });
    vd.wait_for("pruning in S3", Duration::from_secs(30), || {
        !events(&vd, "BackupsPruned").is_empty() && s3_list(&vd).len() == 3
    });
    let listed = s3_list(&vd);
    assert!(
        listed
            .iter()
            .any(|b| b["file"] == file.as_str() && b["scheduled"] == false),
        "the backup taken by hand, the oldest, was kept: {listed:?}"
    );
    for b in &listed {
        let f = b["file"].as_str().unwrap();
        let (status, body) = moto.http("GET", &format!("/{BUCKET}/redis/cache/{f}"));
        assert_eq!(status, 200);
        rdb::verify(&body).unwrap_or_else(|e| panic!("{f}: {e}"));
    }

    // Errors say what to fix; credentials never show.
    let e = vd.vd_fails(&[
        "redis:backup",
        "data/cache",
        "--destination",
        "s3://Bad_Bucket",
    ]);
    assert!(e.contains("not a valid S3 bucket name"), "{e}");
    vd.vd(&["config", "aws", "unset", "AWS_SECRET_ACCESS_KEY"]);
    let e = vd.vd_fails(&["redis:backups", "data/cache", "--destination", URL]);
    assert!(e.contains("AWS_SECRET_ACCESS_KEY is not set"), "{e}");
    let log = std::fs::read_to_string(vd.path().join("test-server.log")).unwrap_or_default();
    assert!(
        !log.contains("AKIAVDTESTKEYID") && !log.contains("vdTestSecretAccessKey"),
        "a credential reached the server log"
    );
}

#[test]
fn process_scheduled_and_manual_backups_reach_s3() {
    common::on_runtime("process", scheduled_and_manual_backups_reach_s3);
}
