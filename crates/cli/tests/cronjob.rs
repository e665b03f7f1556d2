//! The `cronjob` kind and `vd run`, end to end on both runtimes: runs that succeed
//! and fail, history pruned to `keep`, delete stopping a running run, the example backup
//! cronjob (the S3 upload replaced by a local directory) writing a valid RDB, and, on the
//! process runtime, the scheduler firing on its own once a minute boundary passes.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{is_docker, on_every_runtime, Vd};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Two jobs that never fire on their own during a test (1 January, 00:00 UTC).
const JOBS: &str = r#"
cronjob "jobs" "hello" {
  schedule = "0 0 1 1 *"
  image    = "alpine:latest"
  env      = { GREETING = "cron" }
  command  = ["sh", "-c", "echo hello from $GREETING; echo on-stderr >&2"]
  keep     = 2
}

cronjob "jobs" "fail" {
  schedule = "0 0 1 1 *"
  image    = "alpine:latest"
  command  = ["sh", "-c", "echo failing now; exit 3"]
}

cronjob "jobs" "slow" {
  schedule = "0 0 1 1 *"
  image    = "alpine:latest"
  command  = ["sleep", "300"]
}

cronjob "jobs" "short" {
  schedule = "0 0 1 1 *"
  image    = "alpine:latest"
  command  = ["sh", "-c", "sleep 4; exit 7"]
}
"#;

fn describe(vd: &Vd, r: &str) -> Value {
    serde_json::from_str(&vd.vd(&["describe", r, "-o", "json"])).expect("describe json")
}

fn runs(vd: &Vd, r: &str) -> Vec<Value> {
    describe(vd, r)["cronjob"]["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Whether the run's pod is gone from the runtime (container removed, pod directory gone).
fn pod_gone(vd: &Vd, pod: &str) -> bool {
    if is_docker() {
        return common::docker_names(&["ps", "-a", "--format", "{{.Names}}"])
            .iter()
            .all(|n| n != pod);
    }
    !vd.path().join("pods").join(pod).exists()
}

fn run_now_succeeds_fails_and_keeps_history() {
    let _g = common::own_addresses();
    let mut vd = Vd::start();
    vd.apply(&vd.manifest("jobs.hcl", JOBS));

    // ----- listed with schedule and next run
    let table = vd.vd(&["get", "cronjobs"]);
    assert!(
        table.contains("SCHEDULE") && table.contains("0 0 1 1 *") && table.contains("hello"),
        "{table}"
    );
    let listed: Vec<Value> =
        serde_json::from_str(&vd.vd(&["get", "cronjobs", "-o", "json"])).unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().all(|c| c["next_run"].as_i64().is_some()));

    // ----- success: output shown, exit 0, run recorded
    let out = vd.vd(&["run", "cronjob/jobs/hello"]);
    assert!(out.contains("hello from cron"), "{out}");
    assert!(out.contains("on-stderr"), "{out}");
    assert!(out.contains("run 1 succeeded"), "{out}");
    let r = runs(&vd, "cronjob/jobs/hello");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["status"], "succeeded");
    assert_eq!(r[0]["exit_code"], 0);
    assert_eq!(r[0]["trigger"], "manual");
    let pod = r[0]["pod"].as_str().unwrap();
    assert_eq!(pod, "jobs-hello.run-1");
    assert!(pod_gone(&vd, pod), "the finished run's pod is cleaned up");
    assert!(Path::new(r[0]["log"].as_str().unwrap()).exists());
    let logs = vd.vd(&["logs", "cronjob/jobs/hello"]);
    assert!(logs.contains("hello from cron"), "{logs}");

    // ----- failure: exit 3 -> vd run fails, status recorded, event
    let out = vd.try_vd(&["run", "cronjob/jobs/fail"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "vd run exits with the job's code"
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("failing now"), "{stdout}");
    assert!(stderr.contains("failed: exit code 3"), "{stderr}");
    let r = runs(&vd, "cronjob/jobs/fail");
    assert_eq!(r[0]["status"], "failed");
    assert_eq!(r[0]["exit_code"], 3);
    let events = vd.events();
    assert!(events.iter().any(|e| e["reason"] == "RunFailed"
        && e["message"].as_str().unwrap_or("").contains("exit code 3")));
    assert!(events.iter().any(|e| e["reason"] == "RunSucceeded"));
    let text = vd.vd(&["describe", "cronjob/jobs/fail"]);
    assert!(
        text.contains("schedule:") && text.contains("failed: exit code 3"),
        "{text}"
    );

    // ----- history pruned to keep = 2, older logs deleted
    for _ in 0..3 {
        vd.vd(&["run", "cronjob/jobs/hello"]);
    }
    let r = runs(&vd, "cronjob/jobs/hello");
    let ids: Vec<i64> = r.iter().map(|x| x["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![4, 3], "newest first, two kept");
    let logs = vd.path().join("logs");
    assert!(!logs.join("jobs-hello.run-1.log").exists());
    assert!(!logs.join("jobs-hello.run-2.log").exists());
    assert!(logs.join("jobs-hello.run-4.log").exists());
    let one = vd.vd(&["logs", "cronjob/jobs/hello", "--run", "3"]);
    assert!(one.contains("hello from cron"), "{one}");
    assert!(vd
        .vd_fails(&["logs", "cronjob/jobs/hello", "--run", "1"])
        .contains("has no run 1"));

    // ----- --detach returns at once; forbid refuses a second run; delete stops it
    let started: Value =
        serde_json::from_str(&vd.vd(&["run", "cronjob/jobs/slow", "--detach", "-o", "json"]))
            .unwrap();
    assert_eq!(started["run"]["status"], "running");
    let pod = started["run"]["pod"].as_str().unwrap().to_string();
    assert!(vd
        .vd_fails(&["run", "cronjob/jobs/slow"])
        .contains("still running"));
    // A run that ends while no server runs: the server started after it records how it
    // really ended.
    vd.vd(&["run", "cronjob/jobs/short", "--detach"]);
    // A restarted server finds the run still going and keeps watching it.
    vd.kill_server();
    std::thread::sleep(Duration::from_secs(5));
    vd.start_server();
    vd.wait_for(
        "the short run's end recorded",
        Duration::from_secs(20),
        || {
            runs(&vd, "cronjob/jobs/short")
                .first()
                .is_some_and(|r| r["status"] != "running")
        },
    );
    let short = &runs(&vd, "cronjob/jobs/short")[0];
    assert_eq!(short["status"], "failed", "{short}");
    assert_eq!(short["exit_code"], 7, "{short}");
    vd.wait_for("the run to be found again", Duration::from_secs(10), || {
        runs(&vd, "cronjob/jobs/slow")
            .first()
            .is_some_and(|r| r["status"] == "running")
            && !vd
                .try_vd(&["run", "cronjob/jobs/slow", "--detach"])
                .status
                .success()
    });
    assert!(!pod_gone(&vd, &pod), "the run survived the restart");
    vd.vd(&["delete", "cronjob/jobs/slow"]);
    assert!(pod_gone(&vd, &pod), "delete stopped the running run");
    assert!(vd
        .vd_fails(&["describe", "cronjob/jobs/slow"])
        .contains("does not exist"));
}

/// A backup taken by a cronjob, the upload to S3 replaced by a local directory:
/// examples/redis-backup-cronjob.hcl as shipped, its backup directory moved to a temporary one.
fn example_backup_cronjob_writes_a_valid_rdb() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    let dest = tempfile::Builder::new()
        .prefix("vd-cron-backups-")
        .tempdir()
        .unwrap();
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/redis-backup-cronjob.hcl");
    let text = std::fs::read_to_string(&example).expect("the example");
    assert!(text.contains("\"/var/backups/vd-redis:/backups\""));
    let manifest = text.replace(
        "\"/var/backups/vd-redis:/backups\"",
        &format!("\"{}:/backups\"", dest.path().display()),
    );
    vd.apply(&vd.manifest("backup-cronjob.hcl", &manifest));

    // Data on the master, replicated to redis-2 (the pod the job reads from).
    let password = vd
        .vd(&["config", "clowk-lp/redis", "get", "REDIS_PASSWORD"])
        .trim()
        .to_string();
    let ip = vd.ip("clowk-lp-redis.0");
    let client = redis::Client::open(format!("redis://:{password}@{ip}:6379/")).unwrap();
    let mut master = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("master answers");
    let _: () = redis::cmd("SET")
        .arg("cron-backup-marker")
        .arg("kept-by-the-cronjob")
        .query(&mut master)
        .unwrap();
    let acked: i64 = redis::cmd("WAIT")
        .arg(2)
        .arg(20_000)
        .query(&mut master)
        .unwrap();
    assert_eq!(acked, 2);

    let out = vd.vd(&["run", "cronjob/clowk-lp/redis-backup"]);
    assert!(out.contains("succeeded"), "{out}");
    let files: Vec<_> = std::fs::read_dir(dest.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("redis-") && name.ends_with(".rdb"),
        "{name}"
    );
    let bytes = std::fs::read(&files[0]).unwrap();
    let verified = vd_redisctl::rdb::verify(&bytes).expect("a valid RDB");
    assert_eq!(verified.bytes, bytes.len() as u64);
    assert!(
        bytes
            .windows(b"cron-backup-marker".len())
            .any(|w| w == b"cron-backup-marker"),
        "the key written before the run is in the snapshot"
    );
    let r = runs(&vd, "cronjob/clowk-lp/redis-backup");
    assert_eq!(r[0]["status"], "succeeded");
}

on_every_runtime!(
    run_now_succeeds_fails_and_keeps_history,
    example_backup_cronjob_writes_a_valid_rdb
);

/// The scheduler on its own: `* * * * *` runs at the next minute boundary (so this test waits
/// up to a minute), and a server restarted right after does not run that slot again. The
/// decision itself (missed slots, policies) is unit-tested in vd-server's cronjob.rs; this is
/// the one test that the clock really drives it. Process runtime only: the scheduler does not
/// depend on the runtime, and the runs themselves are covered on both above.
#[test]
fn scheduler_fires_on_its_own_and_not_twice_after_a_restart() {
    let _g = common::own_addresses();
    let mut vd = Vd::start();
    vd.apply(&vd.manifest(
        "tick.hcl",
        r#"
cronjob "jobs" "tick" {
  schedule = "* * * * *"
  command  = ["sh", "-c", "echo tick"]
  image    = "alpine:latest"
}
"#,
    ));
    vd.wait_for("a scheduled run to finish", Duration::from_secs(75), || {
        runs(&vd, "cronjob/jobs/tick")
            .iter()
            .any(|r| r["trigger"] == "schedule" && r["status"] == "succeeded")
    });
    let first = runs(&vd, "cronjob/jobs/tick");
    let slot = first
        .iter()
        .find(|r| r["trigger"] == "schedule")
        .and_then(|r| r["slot"].as_i64())
        .unwrap();
    assert_eq!(slot % 60, 0, "slots are minute boundaries");
    let logs = vd.vd(&["logs", "cronjob/jobs/tick"]);
    assert!(logs.contains("tick"), "{logs}");

    vd.kill_server();
    vd.start_server();
    std::thread::sleep(Duration::from_secs(3));
    let after = runs(&vd, "cronjob/jobs/tick");
    let same_slot = after.iter().filter(|r| r["slot"] == slot).count();
    assert_eq!(same_slot, 1, "slot {slot} ran once: {after:?}");
}
