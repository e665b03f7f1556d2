//! RDB snapshots over the replication protocol from real redis-server processes on 127.0.0.1
//! and free ports: both transfer forms (diskless `$EOF:` and saved `$<len>`), from a master and
//! from a replica, and the source's refusals.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{free_ports, HOST};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vd_redisctl::rdb::{self, Checksum, RdbError};

const PASSWORD: &str = "test-password";
const CONNECT: Duration = Duration::from_secs(5);
const IDLE: Duration = Duration::from_secs(30);

/// redis-server processes in a temporary directory, killed on drop (also on panic).
struct Servers {
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl Servers {
    fn new() -> Servers {
        Servers {
            dir: tempfile::tempdir().expect("tempdir"),
            children: Vec::new(),
        }
    }

    fn start(&mut self, name: &str, port: u16, extra: &[&str]) {
        let dir = self.dir.path().join(name);
        std::fs::create_dir(&dir).expect("server dir");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", HOST])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                PASSWORD,
            ])
            .args(["--masterauth", PASSWORD])
            .args([
                "--repl-diskless-sync",
                "yes",
                "--repl-diskless-sync-delay",
                "0",
            ])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        self.children.push(child);
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn conn(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://:{PASSWORD}@{HOST}:{port}/")).unwrap();
    let start = Instant::now();
    loop {
        match client.get_connection_with_timeout(Duration::from_secs(1)) {
            Ok(c) => return c,
            Err(e) if start.elapsed() > Duration::from_secs(20) => {
                panic!("redis on {port} does not answer: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn fill(port: u16) {
    let mut c = conn(port);
    let mut p = redis::pipe();
    for i in 0..500 {
        p.cmd("SET").arg(format!("s{i}")).arg(format!("value-{i}"));
        p.cmd("HSET").arg(format!("h{}", i % 10)).arg(i).arg(i * 2);
        p.cmd("RPUSH").arg("list").arg(i);
    }
    p.cmd("EXPIRE").arg("s1").arg(3600);
    let _: () = p.query(&mut c).unwrap();
}

async fn fetch(port: u16, password: Option<&str>) -> (Result<rdb::Payload, RdbError>, Vec<u8>) {
    let mut out = Vec::new();
    let r = rdb::fetch(
        HOST,
        port,
        vd_redisctl::Access::plain(password),
        &mut out,
        CONNECT,
        IDLE,
    )
    .await;
    (r, out)
}

/// `redis-check-rdb`, Redis's own checker, accepts the bytes.
fn redis_check_rdb(dir: &std::path::Path, bytes: &[u8]) {
    let f = dir.join("check.rdb");
    std::fs::write(&f, bytes).unwrap();
    let out = Command::new("redis-check-rdb").arg(&f).output().unwrap();
    assert!(
        out.status.success(),
        "redis-check-rdb: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_from_a_master_in_both_forms_and_from_a_replica() {
    let [master, replica, orphan, dead, unchecked] = free_ports::<5>();
    let mut s = Servers::new();
    s.start("master", master, &[]);
    fill(master);

    // Diskless (the redis macro's setting): `$EOF:<mark>`, streamed from the fork.
    let (r, bytes) = fetch(master, Some(PASSWORD)).await;
    let p = r.expect("diskless snapshot");
    assert!(p.diskless);
    assert_eq!(p.verified.bytes, bytes.len() as u64);
    assert!(matches!(p.verified.checksum, Checksum::Matched(_)));
    assert_eq!(rdb::verify(&bytes).unwrap(), p.verified);
    redis_check_rdb(s.dir.path(), &bytes);

    // Saved to disk first: `$<len>`.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("repl-diskless-sync")
        .arg("no")
        .query(&mut conn(master))
        .unwrap();
    let (r, bytes) = fetch(master, Some(PASSWORD)).await;
    let p = r.expect("disk-based snapshot");
    assert!(!p.diskless);
    assert_eq!(rdb::verify(&bytes).unwrap(), p.verified);
    redis_check_rdb(s.dir.path(), &bytes);

    // `rdbchecksum no`: accepted, reported as such.
    s.start("unchecked", unchecked, &["--rdbchecksum", "no"]);
    fill(unchecked);
    let (r, bytes) = fetch(unchecked, Some(PASSWORD)).await;
    assert_eq!(r.unwrap().verified.checksum, Checksum::Disabled);
    redis_check_rdb(s.dir.path(), &bytes);

    // From a replica.
    let of = format!("{HOST} {master}");
    s.start("replica", replica, &["--replicaof", &of]);
    let mut rc = conn(replica);
    wait_for("the replica to sync", || {
        redis::cmd("INFO")
            .arg("replication")
            .query::<String>(&mut rc)
            .is_ok_and(|i| i.contains("master_link_status:up"))
    });
    let (r, bytes) = fetch(replica, Some(PASSWORD)).await;
    r.expect("snapshot from a replica");
    redis_check_rdb(s.dir.path(), &bytes);

    // Refusals name the command and the source's error.
    let e = fetch(master, Some("wrong")).await.0.unwrap_err();
    assert!(
        matches!(
            &e,
            RdbError::Refused {
                command: "AUTH",
                ..
            }
        ),
        "{e}"
    );
    assert!(!e.to_string().contains("wrong"), "no password in errors");
    let e = fetch(master, None).await.0.unwrap_err();
    assert!(e.to_string().contains("NOAUTH"), "{e}");
    let of = format!("{HOST} {dead}");
    s.start("orphan", orphan, &["--replicaof", &of]);
    conn(orphan);
    let e = fetch(orphan, Some(PASSWORD)).await.0.unwrap_err();
    assert!(
        e.to_string().contains("NOMASTERLINK"),
        "a replica without its master refuses SYNC: {e}"
    );
    let e = fetch(dead, Some(PASSWORD)).await.0.unwrap_err();
    assert!(matches!(e, RdbError::Unreachable { .. }), "{e}");
}

/// A snapshot from a replica holds the master's writes only once the replica has them:
/// `switchover::caught_up` waits for a replica that is behind (here stopped while the master
/// takes a write), and refuses at once one whose link is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caught_up_waits_for_a_replica_behind_its_master() {
    use vd_redisctl::{switchover, Node, RedisError};
    let [master, replica, orphan, dead] = free_ports::<4>();
    let mut s = Servers::new();
    s.start("master", master, &[]);
    let of = format!("{HOST} {master}");
    s.start("replica", replica, &["--replicaof", &of]);
    let mut rc = conn(replica);
    wait_for("the replica to sync", || {
        redis::cmd("INFO")
            .arg("replication")
            .query::<String>(&mut rc)
            .is_ok_and(|i| i.contains("master_link_status:up"))
    });
    let node = |port: u16| Node::connect(HOST, port, Some(PASSWORD), CONNECT);
    let mut m = node(master).await.unwrap();
    let mut r = node(replica).await.unwrap();

    // The replica is stopped while the master takes a write; it resumes after a while.
    let pid = s.children[1].id().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, pid.as_str()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP");
    let _: () = redis::cmd("SET")
        .arg("last")
        .arg("write")
        .query(&mut conn(master))
        .unwrap();
    let goal = m.replication().await.unwrap().master_repl_offset;
    let resume = std::thread::spawn({
        let pid = pid.clone();
        move || {
            std::thread::sleep(Duration::from_millis(500));
            Command::new("kill").args(["-CONT", &pid]).status()
        }
    });
    let at = switchover::caught_up(&mut m, &mut r, Duration::from_secs(10)).await;
    assert!(resume.join().unwrap().unwrap().success());
    let at = at.expect("the replica catches up once it runs");
    assert!(at >= goal, "offset {at} of {goal}");
    let got: Option<String> = redis::cmd("GET")
        .arg("last")
        .query(&mut conn(replica))
        .unwrap();
    assert_eq!(got.as_deref(), Some("write"));

    // A replica whose link is down may be anywhere: refused without waiting.
    let of = format!("{HOST} {dead}");
    s.start("orphan", orphan, &["--replicaof", &of]);
    conn(orphan);
    let mut o = node(orphan).await.unwrap();
    // (Refused, not timed out: a wait would end in `RedisError::Timeout`.)
    let e = switchover::caught_up(&mut m, &mut o, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(e, RedisError::State(_)), "{e}");
    assert!(e.to_string().contains("link down"), "{e}");
}
