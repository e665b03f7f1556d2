//! Sentinel operations against real processes: a redis-server master, one replica and one
//! redis-sentinel, all on 127.0.0.1 and free ports, in a temporary directory.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{free_ports, HOST};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vd_redisctl::{watch_failovers, Access, FailoverEvent, RedisError, Sentinel};

const MASTER: &str = "voodu-master";
/// Per-request timeout handed to the client.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a condition that needs the processes to do something may take. Generous: these
/// tests assert outcomes, never speed.
const PATIENCE: Duration = Duration::from_secs(30);

/// The processes of one test; every child is killed when this is dropped, also on panic.
struct Deployment {
    dir: tempfile::TempDir,
    master_port: u16,
    replica_port: u16,
    sentinel_port: u16,
    children: Vec<(&'static str, Child)>,
}

impl Deployment {
    fn start() -> Deployment {
        let dir = tempfile::tempdir().expect("tempdir");
        let [master_port, replica_port, sentinel_port] = free_ports::<3>();
        let mut d = Deployment {
            dir,
            master_port,
            replica_port,
            sentinel_port,
            children: Vec::new(),
        };
        d.server("master", master_port, &[]);
        let replicaof = format!("{HOST} {master_port}");
        d.server("replica", replica_port, &["--replicaof", &replicaof]);

        // Sentinel requires a writable config file: it rewrites it with what it learns.
        let conf = d.dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\n\
                 bind {HOST}\n\
                 dir {dir}\n\
                 sentinel monitor {MASTER} {HOST} {master_port} 1\n\
                 sentinel down-after-milliseconds {MASTER} 1000\n\
                 sentinel failover-timeout {MASTER} 5000\n",
                dir = d.dir.path().display()
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new("redis-sentinel")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log(d.dir.path(), "sentinel"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-sentinel");
        d.children.push(("sentinel", child));
        d
    }

    fn server(&mut self, name: &'static str, port: u16, extra: &[&str]) {
        // Each server gets its own directory: a replica writes the synced dataset to disk.
        let dir = self.dir.path().join(name);
        std::fs::create_dir(&dir).expect("server dir");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", HOST])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log(self.dir.path(), name))
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.children.push((name, child));
    }

    /// Stops one process now (the others keep running).
    fn kill(&mut self, name: &str) {
        if let Some(i) = self.children.iter().position(|(n, _)| *n == name) {
            let (_, mut child) = self.children.remove(i);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            // The process logs are the only clue to what the deployment was doing.
            for name in ["master", "replica", "sentinel"] {
                let path = self.dir.path().join(format!("{name}.log"));
                if let Ok(text) = std::fs::read_to_string(&path) {
                    eprintln!("--- {name}.log ---\n{text}");
                }
            }
        }
    }
}

fn log(dir: &Path, name: &str) -> Stdio {
    std::fs::File::create(dir.join(format!("{name}.log")))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// Retries `f` until it returns `Some`, panicking with `what` after [`PATIENCE`].
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn connect(port: u16) -> Sentinel {
    eventually("the sentinel to accept connections", || async move {
        let mut s = Sentinel::connect(HOST, port, None, TIMEOUT).await.ok()?;
        s.ping().await.ok()?;
        Some(s)
    })
    .await
}

/// Waits until the sentinel has a client in subscribed mode, so no event is published before
/// the watch listens.
async fn wait_for_subscriber(port: u16) {
    eventually("the watch to subscribe", || async move {
        let client = redis::Client::open(format!("redis://{HOST}:{port}/")).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut conn)
            .await
            .ok()?;
        list.lines()
            .any(|l| l.split(' ').any(|f| f == "sub=1"))
            .then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_queries_failover_and_switch_master_event() {
    let mut d = Deployment::start();
    let mut s = connect(d.sentinel_port).await;
    assert_eq!(s.addr(), format!("{HOST}:{}", d.sentinel_port));

    assert_eq!(
        s.master_addr(MASTER).await.expect("master_addr"),
        Some((HOST.to_string(), d.master_port))
    );
    assert_eq!(
        s.master_addr("no-such-master").await.expect("master_addr"),
        None
    );

    let master = s.master(MASTER).await.expect("master");
    assert_eq!(master.get("name").map(String::as_str), Some(MASTER));
    assert_eq!(master.get("quorum").map(String::as_str), Some("1"));
    assert!(master.get("flags").is_some_and(|f| f.contains("master")));
    assert!(s.sentinels(MASTER).await.expect("sentinels").is_empty());

    // A forced failover needs a replica the sentinel has seen healthy, so wait for that rather
    // than only for the replica to be listed.
    let replica_port = d.replica_port.to_string();
    let start = Instant::now();
    loop {
        let replicas = s.replicas(MASTER).await.unwrap_or_default();
        let healthy = replicas.iter().any(|r| {
            r.get("port") == Some(&replica_port)
                && r.get("flags").map(String::as_str) == Some("slave")
                && r.get("master-link-status").map(String::as_str) == Some("ok")
        });
        if healthy {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "timed out waiting for a healthy replica; last seen {replicas:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let ok = s.ckquorum(MASTER).await.expect("ckquorum");
    assert!(ok.starts_with("OK"), "{ok}");

    s.set(MASTER, "down-after-milliseconds", "2000")
        .await
        .expect("sentinel set");
    assert_eq!(
        s.master(MASTER).await.expect("master")["down-after-milliseconds"],
        "2000"
    );

    // Two watches: one that sees the failover, one whose receiver is dropped to end it.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<FailoverEvent>();
    let sp = d.sentinel_port;
    let watch =
        tokio::spawn(
            async move { watch_failovers(HOST, sp, Access::default(), TIMEOUT, tx).await },
        );
    let (tx2, rx2) = tokio::sync::mpsc::unbounded_channel::<FailoverEvent>();
    let watch2 =
        tokio::spawn(
            async move { watch_failovers(HOST, sp, Access::default(), TIMEOUT, tx2).await },
        );
    wait_for_subscriber(d.sentinel_port).await;
    let subscribed = Instant::now();

    s.failover(MASTER).await.expect("failover");
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .expect("a failover event within 15 s")
            .expect("the watch is still running")
    };
    // First the promotion of the replica, then the switch.
    let FailoverEvent::Promoting(p) = next().await else {
        panic!("the first event is not the promotion");
    };
    assert_eq!(p.master, MASTER);
    assert_eq!((p.host.as_str(), p.port), (HOST, d.replica_port));
    assert_eq!((p.old_host.as_str(), p.old_port), (HOST, d.master_port));
    let FailoverEvent::Switched(event) = next().await else {
        panic!("the second event is not +switch-master");
    };
    assert_eq!(event.master, MASTER);
    assert_eq!(
        (event.old_host.as_str(), event.old_port),
        (HOST, d.master_port)
    );
    assert_eq!(
        (event.new_host.as_str(), event.new_port),
        (HOST, d.replica_port)
    );

    assert_eq!(
        s.master_addr(MASTER).await.expect("master_addr"),
        Some((HOST.to_string(), d.replica_port))
    );
    assert_eq!(s.reset(MASTER).await.expect("reset"), 1);
    assert_eq!(s.reset("no-such-*").await.expect("reset"), 0);

    match s.ckquorum("no-such-master").await {
        Err(RedisError::State(msg)) => assert!(msg.contains("No such master"), "{msg}"),
        other => panic!("ckquorum of an unknown master: {other:?}"),
    }
    assert!(s.master("no-such-master").await.is_err());
    assert!(s.replicas("no-such-master").await.is_err());

    // An idle watch survives its keepalive PINGs (sent every 5 s in subscribed mode).
    tokio::time::sleep(Duration::from_secs(7).saturating_sub(subscribed.elapsed())).await;
    assert!(!watch2.is_finished(), "watch ended while idle");
    // Closing the receiver ends a watch cleanly.
    drop(rx2);
    let ended = tokio::time::timeout(PATIENCE, watch2)
        .await
        .expect("the watch ends once its receiver is gone")
        .expect("the watch task did not panic");
    assert!(ended.is_ok(), "{ended:?}");

    // Losing the sentinel ends a watch with an error, so the caller reconnects.
    d.kill("sentinel");
    let ended = tokio::time::timeout(PATIENCE, watch)
        .await
        .expect("the watch ends once the sentinel is gone")
        .expect("the watch task did not panic");
    assert!(ended.is_err(), "{ended:?}");
}

#[tokio::test]
async fn nothing_listening_is_an_error_not_a_hang() {
    let [port] = free_ports::<1>();
    let timeout = Duration::from_secs(2);
    assert!(matches!(
        Sentinel::connect(HOST, port, None, timeout).await,
        Err(RedisError::Unreachable { .. })
    ));
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let r = tokio::time::timeout(
        PATIENCE,
        watch_failovers(HOST, port, Access::default(), timeout, tx),
    )
    .await
    .expect("the watch gives up on its own");
    assert!(matches!(r, Err(RedisError::Unreachable { .. })), "{r:?}");
}
