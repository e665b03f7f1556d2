//! `vd proxy` against real redis-server processes (a master and a replica on loopback) with a
//! real client: protocol coverage, the planned switch under a writer (no client error, no
//! lost write) and an unplanned one (errors only until the promotion, nothing on the demoted
//! master after the switch).

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vd_proxy::feed::{self, Feed};

const PW: &str = "s3cret-pw";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A redis-server child, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(dir: &Path, replica_of: Option<u16>) -> Redis {
        Redis::start_on(dir, free_port(), replica_of)
    }

    fn start_on(dir: &Path, port: u16, replica_of: Option<u16>) -> Redis {
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            PW,
            "--masterauth",
            PW,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.to_string_lossy(),
            "--dbfilename",
            &format!("dump-{port}.rdb"),
        ]
        .map(String::from)
        .to_vec();
        if let Some(m) = replica_of {
            args.extend(["--replicaof".into(), "127.0.0.1".into(), m.to_string()]);
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (./scripts/setup installs it)");
        let r = Redis { child, port };
        wait_for("redis-server to answer", || r.conn_opt().is_some());
        r
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn conn_opt(&self) -> Option<redis::Connection> {
        let c = redis::Client::open(format!("redis://:{PW}@127.0.0.1:{}/", self.port)).ok()?;
        let mut c = c
            .get_connection_with_timeout(Duration::from_millis(300))
            .ok()?;
        redis::cmd("PING").query::<String>(&mut c).ok()?;
        Some(c)
    }

    fn conn(&self) -> redis::Connection {
        self.conn_opt().expect("connection to redis-server")
    }

    /// Waits until it replicates from the redis on `master_port`, link up.
    fn wait_following(&self, master_port: u16) {
        wait_for("the replica to sync", || {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut self.conn())
                .unwrap_or_default();
            info.contains(&format!("master_port:{master_port}"))
                && info.contains("master_link_status:up")
        });
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// A master, a replica in sync, and a proxy in front of both, with a feed file.
struct Rig {
    _dir: tempfile::TempDir,
    master: Redis,
    replica: Redis,
    feed: PathBuf,
    port: u16,
    read_port: u16,
    proxy: Proxy,
}

/// The proxy's runtime, driven by a thread of its own (a one-thread runtime runs its tasks
/// only while someone blocks on it); dropping it stops the proxy.
struct Proxy {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    driver: Option<std::thread::JoinHandle<()>>,
    _rt: Arc<tokio::runtime::Runtime>,
}

impl Proxy {
    fn drive(rt: tokio::runtime::Runtime) -> Proxy {
        let rt = Arc::new(rt);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let on = rt.clone();
        let driver = std::thread::spawn(move || {
            let _ = on.block_on(stopped);
        });
        Proxy {
            stop: Some(stop),
            driver: Some(driver),
            _rt: rt,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(d) = self.driver.take() {
            let _ = d.join();
        }
        // `rt`, its last handle now, drops next with its tasks (listeners, connections).
    }
}

impl Rig {
    fn start(multiplex: bool) -> Rig {
        let dir = tempfile::tempdir().expect("temp dir");
        let master = Redis::start(dir.path(), None);
        let replica = Redis::start(dir.path(), Some(master.port));
        replica.wait_following(master.port);
        let feed = dir.path().join("feed").join(feed::FILE);
        feed::write(
            feed.parent().unwrap(),
            &Feed {
                epoch: 1,
                master: Some(master.addr()),
                hold: false,
            },
        )
        .unwrap();
        let (port, read_port) = (free_port(), free_port());
        // As `vd proxy` runs: lanes on one event loop by default, `--dedicated --threads 2`
        // otherwise, so both runtimes are covered.
        let rt = if multiplex {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
        .enable_all()
        .build()
        .unwrap();
        let opts = vd_proxy::Options {
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            read_listen: Some(format!("127.0.0.1:{read_port}").parse().unwrap()),
            discovery: vd_proxy::discovery::Config {
                upstreams: vec![master.addr(), replica.addr()],
                sentinels: vec![],
                master_name: "voodu-master".into(),
                feed: Some(feed.clone()),
                id: "0".into(),
                password: Some(PW.into()),
                sentinel_password: None,
                tls: None,
            },
            multiplex,
            stats: vd_proxy::metrics::Stats::default(),
            tls: None,
        };
        rt.spawn(async move {
            if let Err(e) = vd_proxy::run(opts).await {
                panic!("proxy: {e}");
            }
        });
        let proxy = Proxy::drive(rt);
        let rig = Rig {
            _dir: dir,
            master,
            replica,
            feed,
            port,
            read_port,
            proxy,
        };
        wait_for("the proxy to reach the master", || {
            rig.client(rig.port)
                .get_connection()
                .ok()
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c).ok())
                .is_some()
        });
        rig
    }

    fn client(&self, port: u16) -> redis::Client {
        redis::Client::open(format!("redis://:{PW}@127.0.0.1:{port}/")).unwrap()
    }

    fn conn(&self) -> redis::Connection {
        self.client(self.port).get_connection().unwrap()
    }

    fn publish(&self, epoch: u64, master: &Redis, hold: bool) {
        feed::write(
            self.feed.parent().unwrap(),
            &Feed {
                epoch,
                master: Some(master.addr()),
                hold,
            },
        )
        .unwrap();
    }
}

fn role(c: &mut redis::Connection) -> String {
    let v: Vec<redis::Value> = redis::cmd("ROLE").query(c).unwrap();
    match v.first() {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    }
}

#[test]
fn commands_behave_as_against_redis() {
    commands_behave_as_against_redis_with(true);
}

#[test]
fn commands_behave_as_against_redis_without_multiplexing() {
    commands_behave_as_against_redis_with(false);
}

fn commands_behave_as_against_redis_with(multiplex: bool) {
    let rig = Rig::start(multiplex);
    let mut c = rig.conn();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v, "v");
    assert_eq!(role(&mut c), "master");

    // A pipeline of 500 commands, answered in order.
    let mut p = redis::pipe();
    for i in 0..500 {
        p.cmd("INCR").arg("counter").ignore();
        p.cmd("RPUSH").arg("list").arg(i).ignore();
    }
    p.cmd("GET").arg("counter");
    let (n,): (i64,) = p.query(&mut c).unwrap();
    assert_eq!(n, 500);

    // MULTI/EXEC, and WATCH aborting a transaction.
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("tx")
        .cmd("INCR")
        .arg("tx")
        .query(&mut c)
        .unwrap();
    assert_eq!((a, b), (1, 2));
    let _: () = redis::cmd("WATCH").arg("tx").query(&mut c).unwrap();
    let _: () = redis::cmd("SET")
        .arg("tx")
        .arg(100)
        .query(&mut rig.master.conn())
        .unwrap();
    let r: Option<(i64,)> = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("tx")
        .query(&mut c)
        .unwrap();
    assert_eq!(r, None, "a watched key changed: EXEC answers nil");

    // SELECT and CLIENT SETNAME stick to the connection.
    let mut db1 = rig.client(rig.port).get_connection().unwrap();
    let _: () = redis::cmd("SELECT").arg(1).query(&mut db1).unwrap();
    let _: () = redis::cmd("SET")
        .arg("in1")
        .arg("x")
        .query(&mut db1)
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("app")
        .query(&mut db1)
        .unwrap();
    let name: String = redis::cmd("CLIENT").arg("GETNAME").query(&mut db1).unwrap();
    assert_eq!(name, "app");
    let mut m = rig.master.conn();
    let _: () = redis::cmd("SELECT").arg(1).query(&mut m).unwrap();
    let got: Option<String> = redis::cmd("GET").arg("in1").query(&mut m).unwrap();
    assert_eq!(got.as_deref(), Some("x"));

    // RESP3: HELLO 3 through the proxy.
    let mut r3 = redis::Client::open(format!(
        "redis://:{PW}@127.0.0.1:{}/?protocol=resp3",
        rig.port
    ))
    .unwrap()
    .get_connection()
    .unwrap();
    let h: redis::Value = redis::cmd("HELLO").arg(3).query(&mut r3).unwrap();
    assert!(matches!(h, redis::Value::Map(_)), "{h:?}");
    let v: String = redis::cmd("GET").arg("k").query(&mut r3).unwrap();
    assert_eq!(v, "v");

    // BLPOP waits through the proxy until a push.
    let pusher = std::thread::spawn({
        let mut m = rig.master.conn();
        move || {
            std::thread::sleep(Duration::from_millis(200));
            let _: () = redis::cmd("RPUSH")
                .arg("q")
                .arg("job")
                .query(&mut m)
                .unwrap();
        }
    });
    let got: (String, String) = redis::cmd("BLPOP").arg("q").arg(5).query(&mut c).unwrap();
    assert_eq!(got.1, "job");
    pusher.join().unwrap();

    // Pub/sub: subscribe through the proxy, publish directly.
    let mut sub = rig.conn();
    let mut ps = sub.as_pubsub();
    ps.subscribe("news").unwrap();
    ps.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg("news")
        .arg("hello")
        .query(&mut rig.master.conn())
        .unwrap();
    let msg = ps.get_message().unwrap();
    assert_eq!(msg.get_payload::<String>().unwrap(), "hello");
    drop(ps);

    // MONITOR would break reply accounting: refused with an explanation.
    let e = redis::cmd("MONITOR").query::<String>(&mut c).unwrap_err();
    assert!(
        e.to_string().contains("not supported through vd proxy"),
        "{e}"
    );

    // Without AUTH the master's refusal comes through unchanged.
    let mut anon = redis::Client::open(format!("redis://127.0.0.1:{}/", rig.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let e = redis::cmd("GET")
        .arg("k")
        .query::<String>(&mut anon)
        .unwrap_err();
    assert!(e.to_string().contains("NOAUTH"), "{e}");

    // A value larger than the proxy's limit on waiting input goes through whole.
    let big = vec![b'x'; 9 << 20];
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&big)
        .query(&mut c)
        .unwrap();
    let back: Vec<u8> = redis::cmd("GET").arg("big").query(&mut c).unwrap();
    assert_eq!(back.len(), big.len());

    // The read port reaches the replica.
    let mut r = rig.client(rig.read_port).get_connection().unwrap();
    wait_for("the read port to use the replica", || {
        let mut r = rig.client(rig.read_port).get_connection().unwrap();
        role(&mut r) == "slave"
    });
    let v: String = redis::cmd("GET").arg("k").query(&mut r).unwrap();
    assert_eq!(v, "v");
}

/// Writes `SET w:<i> i` back-to-back through the proxy, counting errors and recording
/// acknowledged ids.
struct Writer {
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<Vec<u64>>,
}

impl Writer {
    fn start(client: redis::Client) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let (s, e) = (stop.clone(), errors.clone());
        let handle = std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut conn = None;
            let mut i = 0u64;
            while !s.load(Ordering::SeqCst) {
                if conn.is_none() {
                    conn = client.get_connection().ok();
                }
                let Some(c) = conn.as_mut() else {
                    e.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                i += 1;
                match redis::cmd("SET")
                    .arg(format!("w:{i}"))
                    .arg(i)
                    .query::<()>(c)
                {
                    Ok(()) => acked.push(i),
                    Err(err) => {
                        e.fetch_add(1, Ordering::SeqCst);
                        if err.is_connection_dropped() || err.is_io_error() {
                            conn = None;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            acked
        });
        Writer {
            stop,
            errors,
            handle,
        }
    }

    fn finish(self) -> (Vec<u64>, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let acked = self.handle.join().unwrap();
        (acked, self.errors.load(Ordering::SeqCst))
    }
}

fn offset(r: &Redis, field: &str) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut r.conn())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1)
}

#[test]
fn planned_switch_under_a_writer_has_no_error_and_loses_nothing() {
    planned_switch_under_a_writer_has_no_error_and_loses_nothing_with(true);
}

#[test]
fn planned_switch_under_a_writer_has_no_error_and_loses_nothing_without_multiplexing() {
    planned_switch_under_a_writer_has_no_error_and_loses_nothing_with(false);
}

fn planned_switch_under_a_writer_has_no_error_and_loses_nothing_with(multiplex: bool) {
    let rig = Rig::start(multiplex);
    let writer = Writer::start(rig.client(rig.port));
    // A blocked pop on the old master must end up served by the new one.
    let popper = std::thread::spawn({
        let client = rig.client(rig.port);
        move || {
            let mut c = client.get_connection().unwrap();
            redis::cmd("BLPOP")
                .arg("jobs")
                .arg(20)
                .query::<(String, String)>(&mut c)
        }
    });
    std::thread::sleep(Duration::from_millis(300));

    // What the controller does: hold, wait for the proxy, pause, promote, re-point, release.
    rig.publish(2, &rig.replica, true);
    let held = feed::held_path(&rig.feed, "0");
    wait_for("the proxy to hold", || {
        std::fs::read_to_string(&held).is_ok_and(|s| s.trim() == "2")
    });
    let mut m = rig.master.conn();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(5000)
        .arg("WRITE")
        .query(&mut m)
        .unwrap();
    let target = offset(&rig.master, "master_repl_offset");
    wait_for("the replica to catch up", || {
        offset(&rig.replica, "slave_repl_offset") >= target
    });
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut rig.replica.conn())
        .unwrap();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(rig.replica.port)
        .query(&mut m)
        .unwrap();
    let _: () = redis::cmd("CLIENT").arg("UNPAUSE").query(&mut m).unwrap();
    rig.publish(3, &rig.replica, false);
    std::thread::sleep(Duration::from_millis(500));
    let _: () = redis::cmd("RPUSH")
        .arg("jobs")
        .arg("after")
        .query(&mut rig.replica.conn())
        .unwrap();
    let popped = popper
        .join()
        .unwrap()
        .expect("BLPOP answered without error");
    assert_eq!(popped.1, "after");
    let (acked, errors) = writer.finish();
    assert!(acked.len() > 50, "the writer wrote ({})", acked.len());
    assert_eq!(errors, 0, "a planned switch shows clients no error");
    let mut new = rig.replica.conn();
    let keys: i64 = redis::cmd("DBSIZE").query(&mut new).unwrap();
    assert!(keys as usize >= acked.len());
    for i in acked.iter().step_by(7) {
        let v: Option<u64> = redis::cmd("GET")
            .arg(format!("w:{i}"))
            .query(&mut new)
            .unwrap();
        assert_eq!(v, Some(*i), "acknowledged write w:{i} is on the new master");
    }
    drop(rig.proxy);
}

#[test]
fn unplanned_switch_errors_only_until_promotion_and_never_writes_the_old_master() {
    unplanned_switch_errors_only_until_promotion_and_never_writes_the_old_master_with(true);
}

#[test]
fn unplanned_switch_errors_only_until_promotion_and_never_writes_the_old_master_without_multiplexing(
) {
    unplanned_switch_errors_only_until_promotion_and_never_writes_the_old_master_with(false);
}

fn unplanned_switch_errors_only_until_promotion_and_never_writes_the_old_master_with(
    multiplex: bool,
) {
    let mut rig = Rig::start(multiplex);
    let writer = Writer::start(rig.client(rig.port));
    std::thread::sleep(Duration::from_millis(300));
    rig.master.kill();
    std::thread::sleep(Duration::from_millis(300));
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut rig.replica.conn())
        .unwrap();
    rig.publish(2, &rig.replica, false);
    let switched = Instant::now();
    // The old master comes back empty at its address, as a master: a stray the proxy, told
    // of the new master, must not write to.
    let stray_dir = tempfile::tempdir().unwrap();
    let stray = Redis::start_on(stray_dir.path(), rig.master.port, None);
    std::thread::sleep(Duration::from_millis(800));
    let errors_mid = writer.errors.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(800));
    let (acked, errors) = writer.finish();
    eprintln!(
        "errors while the master was down: {errors}, after the switch: {}",
        errors - errors_mid
    );
    assert_eq!(
        errors,
        errors_mid,
        "no error once the new master is in place ({:?} after the switch)",
        switched.elapsed()
    );
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut stray.conn()).unwrap();
    assert_eq!(dbsize, 0, "nothing reached a stray master");
    let last = *acked.last().unwrap();
    let v: Option<u64> = redis::cmd("GET")
        .arg(format!("w:{last}"))
        .query(&mut rig.replica.conn())
        .unwrap();
    assert_eq!(v, Some(last));
}

fn signal(r: &Redis, sig: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{sig} {}", r.child.id()))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} redis-server");
}

#[test]
fn a_wait_after_an_unplanned_switch_confirms_nothing_the_old_master_took() {
    a_wait_after_an_unplanned_switch_confirms_nothing_the_old_master_took_with(true);
}

#[test]
fn a_wait_after_an_unplanned_switch_confirms_nothing_the_old_master_took_without_multiplexing() {
    a_wait_after_an_unplanned_switch_confirms_nothing_the_old_master_took_with(false);
}

/// A master hangs with a client's write unanswered and is failed over; when it wakes it runs
/// the write and answers it, and the client's next command, its WAIT, would reach the new
/// master, whose replicas have nothing to wait for on a fresh connection: a WAIT of 1 there
/// would confirm a write the new master never had. The proxy answers it 0 itself.
fn a_wait_after_an_unplanned_switch_confirms_nothing_the_old_master_took_with(multiplex: bool) {
    let rig = Rig::start(multiplex);
    // A second replica, which the failover re-points to the new master: a replica there to
    // count.
    let dir = tempfile::tempdir().unwrap();
    let other = Redis::start(dir.path(), Some(rig.master.port));
    let mut c = rig.conn();
    let _: () = redis::cmd("SET")
        .arg("before")
        .arg(1)
        .query(&mut c)
        .unwrap();
    let n: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut c).unwrap();
    assert_eq!(n, 1, "a WAIT through the proxy counts the replica");

    signal(&rig.master, "STOP");
    let write = std::thread::spawn(move || {
        let r = redis::cmd("SET").arg("lost").arg(1).query::<()>(&mut c);
        (c, r)
    });
    std::thread::sleep(Duration::from_millis(300));
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut rig.replica.conn())
        .unwrap();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(rig.replica.port)
        .query(&mut other.conn())
        .unwrap();
    other.wait_following(rig.replica.port);
    rig.publish(2, &rig.replica, false);
    wait_for("the proxy to follow the new master", || {
        // A fresh connection each time, given up on quickly: one that reached the proxy
        // before the switch waits on the hung master (it ends once the master wakes).
        let client = rig.client(rig.port);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let wrote = client
                .get_connection()
                .and_then(|mut p| redis::cmd("SET").arg("probe").arg(1).query::<()>(&mut p));
            let _ = tx.send(wrote.is_ok());
        });
        if rx.recv_timeout(Duration::from_millis(300)) != Ok(true) {
            return false;
        }
        let on_new: Option<i64> = redis::cmd("GET")
            .arg("probe")
            .query(&mut rig.replica.conn())
            .unwrap();
        on_new.is_some()
    });
    signal(&rig.master, "CONT");
    let (mut c, wrote) = write.join().unwrap();
    wrote.expect("the woken master ran the write and answered it");
    let n: i64 = redis::cmd("WAIT").arg(1).arg(1000).query(&mut c).unwrap();
    assert_eq!(
        n, 0,
        "the new master's replica does not have the old master's write"
    );
    let on_new: Option<i64> = redis::cmd("GET")
        .arg("lost")
        .query(&mut rig.replica.conn())
        .unwrap();
    assert_eq!(on_new, None, "the premise: the new master never had it");

    // Told once, the connection goes on: its next write and WAIT are about the new master.
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(rig.replica.port)
        .query(&mut rig.master.conn())
        .unwrap();
    let _: () = redis::cmd("SET").arg("after").arg(1).query(&mut c).unwrap();
    let n: i64 = redis::cmd("WAIT").arg(1).arg(10_000).query(&mut c).unwrap();
    assert!(
        n >= 1,
        "a write to the new master is confirmed by its replicas"
    );
}

/// Plain commands from clients in the same state share upstream connections; a client with a
/// wrong password gets Redis's own refusal and no access through anyone else's connection.
#[test]
fn clients_in_the_same_state_share_an_upstream() {
    let rig = Rig::start(true);
    let mut clients: Vec<redis::Connection> = (0..20).map(|_| rig.conn()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let _: () = redis::cmd("SET")
            .arg(format!("shared:{i}"))
            .arg(i)
            .query(c)
            .unwrap();
    }
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut rig.master.conn())
        .unwrap();
    // The proxy's ROLE poller, the rig's own connection and a few lanes, not twenty.
    let upstream = list.lines().count();
    assert!(
        upstream < 10,
        "{upstream} connections on the master:\n{list}"
    );
    for (i, c) in clients.iter_mut().enumerate() {
        let v: usize = redis::cmd("GET")
            .arg(format!("shared:{i}"))
            .query(c)
            .unwrap();
        assert_eq!(v, i);
    }

    let raw = |port: u16| {
        let c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        c.get_connection().unwrap()
    };
    let mut bad = raw(rig.port);
    let e = redis::cmd("AUTH")
        .arg("wrong")
        .query::<()>(&mut bad)
        .unwrap_err();
    assert!(e.to_string().contains("WRONGPASS"), "{e}");
    let e = redis::cmd("GET")
        .arg("shared:1")
        .query::<Option<String>>(&mut bad)
        .unwrap_err();
    assert!(e.to_string().contains("NOAUTH"), "{e}");
    // The right password afterwards works, pipelined with a command behind it.
    let (ok, v): (String, usize) = redis::pipe()
        .cmd("AUTH")
        .arg(PW)
        .cmd("GET")
        .arg("shared:1")
        .query(&mut bad)
        .unwrap();
    assert_eq!((ok.as_str(), v), ("OK", 1));
    drop(clients);
    drop(rig.proxy);
}

/// Clients that connect at the same moment (a pool starting, every client moving after a
/// failover) wait for one lane instead of each opening its own.
#[test]
fn clients_that_connect_at_once_share_an_upstream() {
    let rig = Rig::start(true);
    let clients = 24;
    let start = Arc::new(std::sync::Barrier::new(clients));
    let done = Arc::new(std::sync::Barrier::new(clients + 1));
    let checked = Arc::new(std::sync::Barrier::new(clients + 1));
    let workers: Vec<_> = (0..clients)
        .map(|i| {
            let url = format!("redis://127.0.0.1:{}/", rig.port);
            let (start, done, checked) = (start.clone(), done.clone(), checked.clone());
            std::thread::spawn(move || {
                let raw = redis::Client::open(url).and_then(|c| c.get_connection());
                start.wait();
                // AUTH and the first SET in one write, as redis-benchmark sends them.
                let result = raw.and_then(|mut c| {
                    let (_, _): (String, String) = redis::pipe()
                        .cmd("AUTH")
                        .arg(PW)
                        .cmd("SET")
                        .arg(format!("together:{i}"))
                        .arg(i)
                        .query(&mut c)?;
                    Ok(c)
                });
                done.wait();
                checked.wait();
                result.map(|_| ())
            })
        })
        .collect();
    done.wait();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut rig.master.conn())
        .unwrap();
    checked.wait();
    for w in workers {
        w.join().unwrap().unwrap();
    }
    // Every client ran SET last; a lane shows as one connection whose last command was SET.
    let lanes = list.lines().filter(|l| l.contains("cmd=set")).count();
    assert_eq!(
        lanes, 1,
        "{lanes} upstream connections for {clients} clients:\n{list}"
    );
    drop(rig.proxy);
}
