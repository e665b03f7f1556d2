//! `vd redis:import` end to end: a separate password-protected redis-server started by the
//! test is imported into a vd redis live (replication, then detach) and, when it refuses
//! replication, key by key; refusals leave the target as it was.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_every_runtime, unwrapped, Vd};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The source's password: characters a URL must percent-encode.
const SOURCE_PW: &str = "s3cr@t:pw/x";
/// [`SOURCE_PW`] as it goes in a URL.
const SOURCE_PW_URL: &str = "s3cr%40t%3Apw%2Fx";

/// Keys in db 0 and db 2 of the dataset.
const DB0_KEYS: usize = 20_000 + 5 * 40 + 1;
const DB2_KEYS: usize = 500;

/// A redis-server the test starts on the host with a password and extra config lines, on a
/// free port of the address where the target's pods reach the host (the process runtime:
/// the host's address on the pods' network; docker: loopback, which containers cannot reach);
/// killed when dropped, also when the test fails.
struct Source {
    child: Child,
    host: String,
    port: u16,
    dir: tempfile::TempDir,
}

/// Where a source on this host listens: on the process runtime, the host's address on the
/// pods' network (`127.X.0.1`, X from a pod's address), which pods reach; on docker, loopback.
fn source_host(vd: &Vd) -> String {
    if common::is_docker() {
        return "127.0.0.1".into();
    }
    let ip = vd.ip("data-cache.0");
    let mut octets = ip.split('.');
    format!(
        "{}.{}.0.1",
        octets.next().unwrap_or("127"),
        octets.next().unwrap_or("0")
    )
}

/// A connection to a source server, authenticated; `None` while it does not answer.
fn source_conn(host: &str, port: u16) -> Option<redis::Connection> {
    let mut c = redis::Client::open(format!("redis://{host}:{port}/"))
        .ok()?
        .get_connection_with_timeout(Duration::from_secs(1))
        .ok()?;
    redis::cmd("AUTH").arg(SOURCE_PW).query::<()>(&mut c).ok()?;
    Some(c)
}

impl Source {
    fn start(vd: &Vd, extra: &str) -> Source {
        let host = source_host(vd);
        let port = std::net::TcpListener::bind((host.as_str(), 0))
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("source.conf");
        std::fs::write(
            &conf,
            format!(
                "bind {host}\nport {port}\nrequirepass \"{SOURCE_PW}\"\nsave \"\"\nappendonly no\ndir {}\n{extra}\n",
                dir.path().display()
            ),
        )
        .expect("write source.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let s = Source {
            child,
            host,
            port,
            dir,
        };
        let start = Instant::now();
        while s.try_conn().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the source redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn try_conn(&self) -> Option<redis::Connection> {
        source_conn(&self.host, self.port)
    }

    fn conn(&self) -> redis::Connection {
        self.try_conn().expect("source answers")
    }

    fn url(&self) -> String {
        format!("redis://:{SOURCE_PW_URL}@{}:{}", self.host, self.port)
    }
}

/// On docker: a source redis-server in a container on `voodu0`, so the target's containers
/// can reach it (a host process on loopback is out of their reach); the host reaches it at
/// its bridge address. Labelled with the test root, so the harness removes it too.
struct ContainerSource {
    name: String,
    ip: String,
}

impl ContainerSource {
    fn start(vd: &Vd) -> ContainerSource {
        let name = format!("vd-import-source-{}", std::process::id());
        let label = vd_core::hash::short(&vd_core::hash::content_digest(
            vd.path().to_string_lossy().as_bytes(),
        ))
        .to_string();
        let _ = Command::new("docker").args(["rm", "-f", &name]).output();
        let out = Command::new("docker")
            .args(["run", "-d", "--name", &name, "--network", "voodu0"])
            .args(["--label", &format!("vd.root={label}")])
            .args(["redis:7-alpine", "redis-server", "--requirepass", SOURCE_PW])
            .args(["--save", "", "--appendonly", "no"])
            .output()
            .expect("docker run");
        assert!(
            out.status.success(),
            "docker run the source: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ip = Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{(index .NetworkSettings.Networks \"voodu0\").IPAddress}}",
                &name,
            ])
            .output()
            .expect("docker inspect");
        let ip = String::from_utf8_lossy(&ip.stdout).trim().to_string();
        assert!(!ip.is_empty(), "the source container has a voodu0 address");
        let s = ContainerSource { name, ip };
        let start = Instant::now();
        while s.try_conn().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the source container does not answer at {}:6379 from the host",
                s.ip
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    fn try_conn(&self) -> Option<redis::Connection> {
        source_conn(&self.ip, 6379)
    }

    fn url(&self) -> String {
        format!("redis://:{SOURCE_PW_URL}@{}:6379", self.ip)
    }
}

impl Drop for ContainerSource {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn select(c: &mut redis::Connection, db: u32) {
    redis::cmd("SELECT").arg(db).query::<()>(c).unwrap();
}

/// Keys of every common type, a third of them with TTLs, in databases 0 and 2.
fn fill(c: &mut redis::Connection) {
    select(c, 0);
    for chunk in 0..20 {
        let mut p = redis::pipe();
        for i in chunk * 1000..(chunk + 1) * 1000 {
            p.cmd("SET")
                .arg(format!("s:{i}"))
                .arg(format!("value {i}"))
                .ignore();
            if i % 3 == 0 {
                p.cmd("EXPIRE").arg(format!("s:{i}")).arg(3600).ignore();
            }
        }
        let _: () = p.query(c).expect("strings");
    }
    let mut p = redis::pipe();
    for i in 0..40 {
        for f in 0..20 {
            p.cmd("HSET")
                .arg(format!("h:{i}"))
                .arg(format!("f{f}"))
                .arg(f * i)
                .ignore();
            p.cmd("RPUSH").arg(format!("l:{i}")).arg(f).ignore();
            p.cmd("SADD")
                .arg(format!("st:{i}"))
                .arg(format!("m{f}"))
                .ignore();
            p.cmd("ZADD")
                .arg(format!("z:{i}"))
                .arg(f64::from(f) / 3.0)
                .arg(format!("m{f}"))
                .ignore();
            p.cmd("XADD")
                .arg(format!("x:{i}"))
                .arg("*")
                .arg("n")
                .arg(f)
                .ignore();
        }
        if i % 2 == 0 {
            p.cmd("EXPIRE").arg(format!("h:{i}")).arg(7200).ignore();
        }
    }
    p.cmd("SET").arg("blob").arg(vec![7u8; 256 * 1024]).ignore();
    let _: () = p.query(c).expect("collections");
    select(c, 2);
    let mut p = redis::pipe();
    for i in 0..DB2_KEYS {
        p.cmd("SET")
            .arg(format!("other:{i}"))
            .arg(i)
            .arg("EX")
            .arg(1800)
            .ignore();
    }
    let _: () = p.query(c).expect("db 2");
    select(c, 0);
}

fn dbsize(c: &mut redis::Connection, db: u32) -> usize {
    select(c, db);
    let n: usize = redis::cmd("DBSIZE").query(c).unwrap();
    select(c, 0);
    n
}

/// A sample of keys: type, value and TTL class (none, or within what the dataset gave).
fn sample(c: &mut redis::Connection) -> BTreeMap<String, (String, String, i64)> {
    let mut out = BTreeMap::new();
    let keys = [
        "s:0", "s:1", "s:2", "s:3", "s:19998", "s:19999", "h:0", "h:1", "l:5", "st:7", "z:9",
        "x:3", "blob",
    ];
    for k in keys {
        let t: String = redis::cmd("TYPE").arg(k).query(c).unwrap();
        let v = match t.as_str() {
            "string" => format!("{:?}", redis::cmd("GET").arg(k).query::<Vec<u8>>(c)),
            "hash" => format!(
                "{:?}",
                redis::cmd("HGETALL")
                    .arg(k)
                    .query::<BTreeMap<String, String>>(c)
            ),
            "list" => format!(
                "{:?}",
                redis::cmd("LRANGE")
                    .arg(k)
                    .arg(0)
                    .arg(-1)
                    .query::<Vec<String>>(c)
            ),
            "set" => format!(
                "{:?}",
                redis::cmd("SMEMBERS")
                    .arg(k)
                    .query::<std::collections::BTreeSet<String>>(c)
            ),
            "zset" => format!(
                "{:?}",
                redis::cmd("ZRANGE")
                    .arg(k)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query::<Vec<String>>(c)
            ),
            "stream" => format!(
                "{:?}",
                redis::cmd("XRANGE")
                    .arg(k)
                    .arg("-")
                    .arg("+")
                    .query::<redis::Value>(c)
            ),
            other => panic!("unexpected type {other} for {k}"),
        };
        let ttl: i64 = redis::cmd("TTL").arg(k).query(c).unwrap();
        // -1: none; otherwise what it was given, in 10-minute steps (time passes).
        let class = if ttl < 0 { ttl } else { (ttl + 599) / 600 };
        out.insert(k.to_string(), (t, v, class));
    }
    out
}

fn import_json(vd: &Vd, args: &[&str]) -> Value {
    let mut all = vec!["redis:import", "data/cache"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&vd.vd(&all)).expect("import report json")
}

/// The target after an import: master 0 holds the source's keys in both databases, its
/// replicas follow it with the same keys, the sample matches, writes work.
fn assert_imported(vd: &Vd, want: &BTreeMap<String, (String, String, i64)>) {
    let mut m = vd.cache_conn(0).expect("master answers");
    assert_eq!(vd.cache_role(0).unwrap().0, "master");
    assert_eq!(dbsize(&mut m, 0), DB0_KEYS);
    assert_eq!(dbsize(&mut m, 2), DB2_KEYS);
    assert_eq!(&sample(&mut m), want, "types, values and TTLs");
    for o in [1, 2] {
        let (role, host) = vd.cache_role(o).unwrap();
        assert_eq!(role, "slave");
        assert!(host.starts_with("cache-0."), "replica {o} follows {host}");
        let mut r = vd.cache_conn(o).unwrap();
        assert_eq!(dbsize(&mut r, 0), DB0_KEYS, "replica {o}");
        assert_eq!(dbsize(&mut r, 2), DB2_KEYS, "replica {o}");
        assert_eq!(&sample(&mut r), want, "replica {o}");
    }
    let _: () = redis::cmd("SET").arg("after").arg(1).query(&mut m).unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(2).arg(5000).query(&mut m).unwrap();
    assert_eq!(
        acked, 2,
        "both replicas acknowledge a write after the import"
    );
    let _: () = redis::cmd("DEL").arg("after").query(&mut m).unwrap();
}

/// The source's password shows nowhere: not in the server's log, not in events.
fn assert_no_secret(vd: &Vd) {
    let log = std::fs::read_to_string(vd.path().join("test-server.log")).unwrap_or_default();
    let events = vd.vd(&["events", "--limit", "1000", "-o", "json"]);
    for (what, text) in [("server log", &log), ("events", &events)] {
        assert!(
            !text.contains(SOURCE_PW) && !text.contains(SOURCE_PW_URL),
            "the source's password is in the {what}"
        );
    }
}

fn assert_report(r: &Value, mode: &str) {
    assert_eq!(r["mode"], mode, "{r}");
    assert_eq!(r["redis"], "data/cache");
    assert_eq!(r["keys"], (DB0_KEYS + DB2_KEYS) as u64, "{r}");
    let dbs = r["databases"].as_array().unwrap();
    assert_eq!(dbs.len(), 2, "{r}");
    assert_eq!(dbs[0]["db"], 0);
    assert_eq!(dbs[0]["keys"], DB0_KEYS as u64);
    assert_eq!(dbs[1]["db"], 2);
    assert_eq!(dbs[1]["keys"], DB2_KEYS as u64);
    let reps = r["replicas"].as_array().unwrap();
    assert_eq!(reps.len(), 2, "{r}");
    for rep in reps {
        assert_eq!(rep["in_sync"], true, "{r}");
        assert_eq!(rep["keys"], (DB0_KEYS + DB2_KEYS) as u64, "{r}");
    }
    let source = r["source"].as_str().unwrap();
    assert!(source.starts_with("redis://:***@"), "{source}");
}

fn import_live_from_a_password_protected_server() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("r.hcl", common::THREE_PODS));
    let source = Source::start(&vd, "");
    let mut sc = source.conn();
    fill(&mut sc);
    let want = sample(&mut sc);
    let source_run_id = {
        let info: String = redis::cmd("INFO").arg("server").query(&mut sc).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .unwrap()
            .trim()
            .to_string()
    };
    let before = vd.cache_password();

    // ----- refusals leave the target as it was
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!(
        "redis://:{SOURCE_PW_URL}@127.0.0.1:{}",
        free.local_addr().unwrap().port()
    );
    drop(free);
    let e = unwrapped(&vd.vd_fails(&["redis:import", "data/cache", "--from", &dead]));
    assert!(
        e.contains("cannot reach the source at 127.0.0.1:") && e.contains("nothing was changed"),
        "{e}"
    );
    let wrong = format!("redis://:not-it-9f2@{}:{}", source.host, source.port);
    let e = unwrapped(&vd.vd_fails(&["redis:import", "data/cache", "--from", &wrong]));
    assert!(
        e.contains("rejected the credentials: wrong password for the default user")
            && e.contains("nothing was changed"),
        "{e}"
    );
    assert!(!e.contains("not-it-9f2"), "the password is not echoed: {e}");
    let nopw = format!("redis://{}:{}", source.host, source.port);
    let e = unwrapped(&vd.vd_fails(&["redis:import", "data/cache", "--from", &nopw]));
    assert!(
        e.contains("requires a password and the URL has none"),
        "{e}"
    );
    let e = unwrapped(&vd.vd_fails(&["redis:import", "data/cache", "--from", "http://x"]));
    assert!(e.contains("must be a redis:// URL"), "{e}");
    let master_ip = vd.ip("data-cache.0");
    let itself = format!("redis://:{before}@{master_ip}:6379");
    let e = unwrapped(&vd.vd_fails(&["redis:import", "data/cache", "--from", &itself]));
    assert!(
        e.contains("is data-cache.0, a pod of redis/data/cache itself"),
        "{e}"
    );
    let replica_ip = vd.ip("data-cache.2");
    let own_replica = format!("redis://:{before}@{replica_ip}:6379");
    let e = unwrapped(&vd.vd_fails(&["redis:import", "data/cache", "--from", &own_replica]));
    assert!(e.contains("a pod of redis/data/cache itself"), "{e}");
    {
        let mut m = vd.cache_conn(0).unwrap();
        assert_eq!(dbsize(&mut m, 0), 0, "the refusals changed nothing");
        assert_eq!(vd.cache_role(0).unwrap().0, "master");
    }

    // ----- live (on docker, a source on the host's loopback is out of the containers' reach:
    // the import says so and copies instead)
    let r = import_json(&vd, &["--from", &source.url()]);
    if common::is_docker() {
        assert_report(&r, "copy");
        let why = r["fallback"].as_str().unwrap_or_default();
        assert!(why.contains("loopback address"), "{r}");
    } else {
        assert_report(&r, "live");
        assert!(r["fallback"].is_null(), "{r}");
        assert!(r["sync_ms"].as_u64().is_some(), "{r}");
    }
    assert_imported(&vd, &want);
    let mut m = vd.cache_conn(0).unwrap();
    let auth: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("masterauth")
        .query(&mut m)
        .unwrap();
    assert_eq!(
        auth[1], before,
        "masterauth is the redis's own password again"
    );
    let user: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("masteruser")
        .query(&mut m)
        .unwrap();
    assert_eq!(user[1], "", "masteruser as before");
    assert_eq!(vd.cache_password(), before);

    // The source is untouched: same keys, still a master, its run_id unchanged, and the
    // target is no longer its replica.
    assert_eq!(dbsize(&mut sc, 0), DB0_KEYS);
    assert_eq!(dbsize(&mut sc, 2), DB2_KEYS);
    let info: String = redis::cmd("INFO").arg("server").query(&mut sc).unwrap();
    assert!(info.contains(&format!("run_id:{source_run_id}")));
    vd.wait_for(
        "the source to drop its replica",
        Duration::from_secs(10),
        || {
            let rep: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut sc)
                .unwrap();
            rep.contains("role:master") && rep.contains("connected_slaves:0")
        },
    );

    // ----- a target with keys needs --force
    let e = unwrapped(&vd.vd_fails(&["redis:import", "data/cache", "--from", &source.url()]));
    assert!(
        e.contains(&format!("holds {} keys", DB0_KEYS + DB2_KEYS)) && e.contains("--force"),
        "{e}"
    );
    let e = unwrapped(&vd.vd_fails(&[
        "redis:import",
        "data/cache",
        "--from",
        &format!("{}/2", source.url()),
        "--mode",
        "live",
        "--force",
    ]));
    assert!(
        e.contains("cannot import into redis/data/cache live") && e.contains("names database 2"),
        "{e}"
    );
    assert!(vd.events().iter().any(|e| e["reason"] == "Imported"));

    if common::is_docker() {
        // ----- live on docker, from a source the containers can reach; it replaces every
        // key of the target (`stale` goes).
        let container = ContainerSource::start(&vd);
        let mut cc = container.try_conn().expect("source container answers");
        fill(&mut cc);
        let _: () = redis::cmd("SET").arg("stale").arg(1).query(&mut m).unwrap();
        let r = import_json(&vd, &["--from", &container.url(), "--force"]);
        assert_report(&r, "live");
        assert!(r["fallback"].is_null(), "{r}");
        assert_imported(&vd, &sample(&mut cc));
        let mut m = vd.cache_conn(0).unwrap();
        let stale: Option<String> = redis::cmd("GET").arg("stale").query(&mut m).unwrap();
        assert_eq!(stale, None, "live replaces the target's keys");
    }
    assert_no_secret(&vd);
}

/// `--rdb FILE` is `vd redis:restore` (one implementation): the file the source saved
/// becomes the target's data, replicas included.
fn import_rdb_file_is_a_restore() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("r.hcl", common::THREE_PODS));
    let source = Source::start(&vd, "");
    let mut sc = source.conn();
    fill(&mut sc);
    let want = sample(&mut sc);
    let _: () = redis::cmd("SAVE").query(&mut sc).unwrap();
    let file = source.dir.path().join("dump.rdb");
    let out = vd.vd(&[
        "redis:import",
        "data/cache",
        "--rdb",
        &file.display().to_string(),
    ]);
    assert!(out.contains("restored"), "{out}");
    assert_imported(&vd, &want);
    let e = unwrapped(&vd.vd_fails(&[
        "redis:import",
        "data/cache",
        "--rdb",
        "x.rdb",
        "--from",
        &source.url(),
    ]));
    assert!(e.contains("cannot be used with"), "{e}");
}

fn import_copies_keys_when_the_source_refuses_replication() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("r.hcl", common::THREE_PODS));

    // ----- SYNC and PSYNC renamed away, as managed services do: seen before anything
    // changes, so the copy starts at once.
    let source = Source::start(&vd, "rename-command SYNC \"\"\nrename-command PSYNC \"\"");
    let mut sc = source.conn();
    fill(&mut sc);
    let want = sample(&mut sc);
    let r = import_json(&vd, &["--from", &source.url()]);
    assert_report(&r, "copy");
    let why = r["fallback"].as_str().unwrap_or_default();
    let expected = if common::is_docker() {
        "loopback address"
    } else {
        "SYNC/PSYNC disabled or renamed"
    };
    assert!(why.contains(expected), "{r}");
    assert_eq!(r["databases"][0]["copied"], DB0_KEYS as u64, "{r}");
    assert_eq!(r["databases"][0]["skipped"], 0, "{r}");
    assert_eq!(r["databases"][1]["copied"], DB2_KEYS as u64, "{r}");
    assert_imported(&vd, &want);
    assert_eq!(dbsize(&mut sc, 0), DB0_KEYS, "the source keeps its keys");
    // `--mode live` says why it cannot.
    let e = unwrapped(&vd.vd_fails(&[
        "redis:import",
        "data/cache",
        "--from",
        &source.url(),
        "--mode",
        "live",
        "--force",
    ]));
    assert!(
        e.contains("cannot import into redis/data/cache live")
            && e.contains(expected)
            && e.contains("--mode copy"),
        "{e}"
    );
    drop(sc);
    drop(source);

    // ----- an ACL user that may not run SYNC/PSYNC: only the target's attempt tells (its
    // log); the target is detached again and the keys copied. Import over the existing
    // keys with --force.
    let acl = Source::start(
        &vd,
        &format!("user importer on >{SOURCE_PW} ~* &* +@all -sync -psync"),
    );
    let mut ac = acl.conn();
    fill(&mut ac);
    let _: () = redis::cmd("SET")
        .arg("only-in-acl-source")
        .arg("yes")
        .query(&mut ac)
        .unwrap();
    let url = format!("redis://importer:{SOURCE_PW_URL}@{}:{}", acl.host, acl.port);
    let r = import_json(&vd, &["--from", &url, "--force"]);
    assert_eq!(r["mode"], "copy", "{r}");
    let why = r["fallback"].as_str().unwrap_or_default();
    let expected = if common::is_docker() {
        "loopback address"
    } else {
        "may not run the replication commands"
    };
    assert!(why.contains(expected), "{r}");
    assert_eq!(r["keys"], (DB0_KEYS + DB2_KEYS + 1) as u64, "{r}");
    let mut m = vd.cache_conn(0).unwrap();
    let v: String = redis::cmd("GET")
        .arg("only-in-acl-source")
        .query(&mut m)
        .unwrap();
    assert_eq!(v, "yes");
    assert_eq!(vd.cache_role(0).unwrap().0, "master");
    let user: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("masteruser")
        .query(&mut m)
        .unwrap();
    assert_eq!(
        user[1], "",
        "masteruser restored after the refused live attempt"
    );
    assert_no_secret(&vd);
}

on_every_runtime!(
    import_live_from_a_password_protected_server,
    import_copies_keys_when_the_source_refuses_replication,
    import_rdb_file_is_a_restore
);

/// A server killed while the master replicates from the source: at the next start the master
/// is detached, its own replication settings are back, failover did not move it, and an event
/// says the data is partial.
#[test]
fn an_import_cut_off_by_a_server_crash_is_undone_at_the_next_start() {
    let _g = common::own_addresses();
    let mut vd = Vd::start();
    vd.apply(&vd.manifest("r.hcl", common::THREE_PODS));
    // The source waits a minute before it streams its RDB, so the import is caught mid-way.
    let source = Source::start(&vd, "repl-diskless-sync yes\nrepl-diskless-sync-delay 60");
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut source.conn())
        .unwrap();
    let own_pw = vd.cache_password();
    let master_ip = vd.ip("data-cache.0");
    let master = || {
        let url = format!("redis://:{own_pw}@{master_ip}:6379/");
        redis::Client::open(url)
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()
    };
    let setting = |c: &mut redis::Connection, name: &str| -> String {
        let v: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query(c)
            .unwrap_or_default();
        v.get(1).cloned().unwrap_or_default()
    };
    let mut import = Command::new(common::bin())
        .arg("--root")
        .arg(vd.path())
        .args(["redis:import", "data/cache", "--from", &source.url()])
        .env_remove("VD_ROOT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vd redis:import");
    let following = format!("master_port:{}", source.port);
    vd.wait_for(
        "the master to follow the source",
        Duration::from_secs(30),
        || {
            master().is_some_and(|mut c| {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut c)
                    .unwrap_or_default();
                info.contains(&following)
            })
        },
    );
    vd.kill_server();
    let _ = import.kill();
    let _ = import.wait();
    let mut c = master().expect("the master pod outlives the server");
    assert_ne!(
        setting(&mut c, "masterauth"),
        own_pw,
        "the import set the source's"
    );

    vd.start_server();
    vd.wait_for(
        "an ImportInterrupted event",
        Duration::from_secs(60),
        || {
            vd.events()
                .iter()
                .any(|e| e["reason"] == "ImportInterrupted")
        },
    );
    let events = vd.events();
    let ev = events
        .iter()
        .find(|e| e["reason"] == "ImportInterrupted")
        .unwrap();
    let text = ev["message"].as_str().unwrap_or_default();
    assert!(text.contains("was detached from the source"), "{text}");
    assert!(!text.contains(SOURCE_PW), "no secret in events: {text}");
    let mut c = master().expect("the master answers");
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).unwrap();
    assert_eq!(
        role.first(),
        Some(&redis::Value::BulkString(b"master".to_vec())),
        "{role:?}"
    );
    assert_eq!(setting(&mut c, "masterauth"), own_pw);
    assert_eq!(setting(&mut c, "masteruser"), "");
    assert_eq!(
        vd.master_ordinal(),
        0,
        "failover left the master where it was"
    );
    assert!(
        !events
            .iter()
            .any(|e| e["reason"] == "Failover" || e["reason"] == "MasterSwitched"),
        "no failover: {events:?}"
    );
    vd.wait_for("the replicas to follow it", Duration::from_secs(30), || {
        (1..=2).all(|o| {
            vd.cache_role(o)
                .is_some_and(|(r, h)| r == "slave" && !h.is_empty())
        })
    });
}
