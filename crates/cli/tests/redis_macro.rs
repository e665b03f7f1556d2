//! Redis macro acceptance: real redis-server pods, a real client library.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_every_runtime, redis, unwrapped, Vd};
use redis::Commands;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

/// Probes tuned for tests (the default readiness needs two successes 5 s apart).
const FAST_PROBES: &str = r#"
  probes {
    liveness {
      tcp_socket { port = 6379 }
      period = "2s"
    }
    readiness {
      exec { command = ["redis-cli", "-h", "${VOODU_POD_IP}", "ping"] }
      period = "300ms"
    }
  }
"#;

fn password(vd: &Vd, r: &str) -> String {
    vd.vd(&["config", r, "get", "REDIS_PASSWORD"])
        .trim()
        .to_string()
}

fn authed(vd: &Vd, pod: &str, pw: &str) -> redis::Connection {
    let ip = vd.ip(pod);
    let client = redis::Client::open(format!("redis://:{pw}@{ip}:6379/")).unwrap();
    client
        .get_connection_with_timeout(Duration::from_secs(3))
        .unwrap()
}

fn minimal_redis_requires_auth_and_keeps_password_and_data() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    let f = vd.manifest("r.hcl", "redis \"data\" \"cache\" {}\n");
    vd.apply(&f);
    let pw = password(&vd, "data/cache");
    assert_eq!(pw.len(), 64, "32 random bytes, hex");
    assert!(pw.chars().all(|c| c.is_ascii_hexdigit()));

    let mut anon = redis(&vd.ip("data-cache.0"), 6379);
    let err = redis::cmd("GET")
        .arg("x")
        .query::<Option<String>>(&mut anon)
        .unwrap_err();
    assert!(
        err.to_string().contains("NOAUTH"),
        "auth is required: {err}"
    );
    let _: () = authed(&vd, "data-cache.0", &pw).set("k", "v").unwrap();

    let pid = vd.pid("data-cache.0");
    vd.apply(&f);
    assert_eq!(
        password(&vd, "data/cache"),
        pw,
        "re-apply keeps the password"
    );
    assert_eq!(vd.pid("data-cache.0"), pid, "and restarts nothing");
    let v: String = authed(&vd, "data-cache.0", &pw).get("k").unwrap();
    assert_eq!(v, "v");

    // The password is in none of the places that print things.
    for args in [
        vec!["describe", "redis/data/cache"],
        vec!["get", "-o", "json"],
        vec!["events", "-o", "json"],
        vec!["get", "redis"],
        vec!["redis:info", "data/cache"],
        vec!["logs", "data/cache"],
    ] {
        let out = vd.vd(&args);
        assert!(
            !out.contains(&pw),
            "`vd {}` prints the password",
            args.join(" ")
        );
    }
    // redis:url gives `redis://default:<pw>@<name>.<scope>.voodu:6379`; --external an address
    // usable from this host;
    // redis:cli authenticates through the environment.
    assert_eq!(
        vd.vd(&["redis:url", "data/cache"]).trim(),
        format!("redis://default:{pw}@cache.data.voodu:6379")
    );
    let ext = vd.vd(&["redis:url", "data/cache", "--external"]);
    assert_eq!(
        ext.trim(),
        format!("redis://default:{pw}@{}:6379", vd.ip("data-cache.0"))
    );
    assert_eq!(
        vd.vd(&["redis:cli", "data/cache", "--", "get", "k"]).trim(),
        "v"
    );
    let expanded = vd.vd(&["describe", "redis/data/cache", "--expanded"]);
    for needle in [
        "redis:7-alpine",
        "/usr/local/bin/voodu-redis-entrypoint",
        "repl-diskless-sync yes",
        "include /etc/redis/conf.d/*.conf",
        "REDISCLI_AUTH",
    ] {
        assert!(
            expanded.contains(needle),
            "--expanded shows {needle}: {expanded}"
        );
    }
    assert!(!expanded.contains(&pw));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(&pw),
        "password not in argv"
    );
}

fn replicated(n: u32) -> String {
    format!("redis \"data\" \"cache\" {{\n  replicas = {n}\n{FAST_PROBES}}}\n")
}

fn three_replicas_replicate_and_refuse_writes() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("r.hcl", &replicated(3)));
    let started: Vec<i64> = vd
        .pods()
        .iter()
        .map(|p| p["started_ms"].as_i64().unwrap())
        .collect();
    assert!(
        started.windows(2).all(|w| w[0] <= w[1]),
        "redis pods start bottom-up: {started:?}"
    );
    let created = vd
        .events()
        .iter()
        .filter(|e| e["reason"] == "Started")
        .count();
    assert_eq!(created, 3, "each pod started once");
    let pw = password(&vd, "data/cache");
    let mut master = authed(&vd, "data-cache.0", &pw);
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut master).unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
    vd.wait_for("two replicas online", T, || {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut master)
            .unwrap();
        info.contains("connected_slaves:2")
    });
    let _: () = master.set("replicated", "yes").unwrap();
    for o in [1, 2] {
        let mut r = authed(&vd, &format!("data-cache.{o}"), &pw);
        vd.wait_for("replication", T, || {
            r.get::<_, Option<String>>("replicated").unwrap().as_deref() == Some("yes")
        });
        let err = r.set::<_, _, ()>("nope", 1).unwrap_err();
        assert!(
            err.to_string().to_lowercase().contains("read only"),
            "replica {o} refuses writes: {err}"
        );
        let info: String = redis::cmd("INFO").arg("replication").query(&mut r).unwrap();
        assert!(info.contains("master_host:cache-0.data.voodu"), "{info}");
        assert!(info.contains("master_link_status:up"));
    }
    let out = vd.vd(&["get", "redis"]);
    assert!(out.contains("3/3") && out.contains("cache-0"), "{out}");
}

fn consumer(scope: &str) -> String {
    format!(
        r#"
deployment "{scope}" "web" {{
  image    = "redis:7-alpine"
  command = ["sh", "-c", "echo url=$REDIS_URL read=$REDIS_READ_URL; for i in 1 2 3 4 5 6 7 8 9 10; do redis-cli -u \"$REDIS_URL\" ping && break; sleep 0.5; done; exec sleep 1000"]
}}
"#
    )
}

fn link_modes_write_the_link_variables_and_consumers_ping() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest(
        "r.hcl",
        &format!(
            "{}\n{}",
            replicated(1).replace("\"cache\"", "\"one\""),
            replicated(3)
        ),
    ));
    vd.apply(&vd.manifest(
        "apps.hcl",
        &format!("{}{}{}", consumer("a"), consumer("b"), consumer("c")),
    ));
    let pw_one = password(&vd, "data/one");
    let pw = password(&vd, "data/cache");

    // replicas = 1: one URL on the shared alias.
    vd.vd(&["redis:link", "data/one", "a/web"]);
    assert_eq!(
        vd.vd(&["config", "a/web", "get", "REDIS_URL"]).trim(),
        format!("redis://default:{pw_one}@one.data.voodu:6379")
    );
    assert!(
        vd.try_vd(&["config", "a/web", "get", "REDIS_READ_URL"])
            .status
            .code()
            != Some(0)
    );

    // replicas = 3: master pinned by pod name, reads on the alias.
    vd.vd(&["redis:link", "data/cache", "b/web"]);
    assert_eq!(
        vd.vd(&["config", "b/web", "get", "REDIS_URL"]).trim(),
        format!("redis://default:{pw}@cache-0.data.voodu:6379")
    );
    assert_eq!(
        vd.vd(&["config", "b/web", "get", "REDIS_READ_URL"]).trim(),
        format!("redis://default:{pw}@cache.data.voodu:6379")
    );

    // --reads: a single round-robin URL.
    vd.vd(&["redis:link", "data/cache", "c/web", "--reads"]);
    assert_eq!(
        vd.vd(&["config", "c/web", "get", "REDIS_URL"]).trim(),
        format!("redis://default:{pw}@cache.data.voodu:6379")
    );
    assert!(
        vd.try_vd(&["config", "c/web", "get", "REDIS_READ_URL"])
            .status
            .code()
            != Some(0)
    );

    assert_eq!(
        vd.vd(&["config", "data/cache", "get", "REDIS_LINKED_CONSUMERS"])
            .trim(),
        "b/web,c/web"
    );

    // Consumers were rolled and reach Redis through the names in their env.
    for scope in ["a", "b", "c"] {
        vd.wait_for("consumer PONG", T, || {
            let logs = vd.vd(&["logs", &format!("{scope}/web")]);
            logs.lines().any(|l| l.starts_with("url=redis://")) && logs.contains("PONG")
        });
    }
    // Unlink removes exactly what link added.
    vd.vd(&["redis:unlink", "data/cache", "b/web"]);
    assert!(
        vd.try_vd(&["config", "b/web", "get", "REDIS_URL"])
            .status
            .code()
            != Some(0)
    );
    assert!(
        vd.try_vd(&["config", "b/web", "get", "REDIS_READ_URL"])
            .status
            .code()
            != Some(0)
    );
    assert_eq!(
        vd.vd(&["config", "data/cache", "get", "REDIS_LINKED_CONSUMERS"])
            .trim(),
        "c/web"
    );
}

fn custom_conf_with_command_override_and_safe_acls() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    std::fs::create_dir_all(vd.path().join("conf")).unwrap();
    std::fs::write(
        vd.path().join("conf/redis-prod.conf"),
        "bind 0.0.0.0\nport 6379\nmaxmemory 12mb\nprotected-mode no\n",
    )
    .unwrap();
    std::fs::write(
        vd.path().join("conf/users.conf"),
        "user appwriter on >app-secret ~app:* +@write +@read\nuser appreader on >read-secret ~app:* +@read\n",
    )
    .unwrap();
    let m = format!(
        r#"
asset "data" "redis-config" {{
  conf = file("./conf/redis-prod.conf")
}}

redis "data" "custom" {{
  command = ["redis-server", "/etc/redis/redis.conf", "--bind", "${{VOODU_POD_IP}}"]
  volumes = [
    "${{asset.data.redis-config.conf}}:/etc/redis/redis.conf:ro"
  ]
  probes {{
    readiness {{
      tcp_socket {{ port = 6379 }}
      period = "300ms"
    }}
  }}
}}

asset "data" "acl" {{
  users = file("./conf/users.conf")
}}

redis "data" "acl" {{
  replicas = 2
  volumes = [
    "${{asset.data.acl.users}}:/etc/redis/conf.d/users.conf:ro"
  ]
{FAST_PROBES}}}
"#
    );
    vd.apply(&vd.manifest("m.hcl", &m));
    let mut c = redis(&vd.ip("data-custom.0"), 6379);
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query(&mut c)
        .unwrap();
    assert_eq!(v[1], "12582912", "the operator's redis.conf runs");

    let ip = vd.ip("data-acl.0");
    let user = |u: &str, p: &str| {
        redis::Client::open(format!("redis://{u}:{p}@{ip}:6379/"))
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(3))
            .unwrap()
    };
    let mut w = user("appwriter", "app-secret");
    let _: () = w.set("app:1", "x").unwrap();
    let mut r = user("appreader", "read-secret");
    let got: String = r.get("app:1").unwrap();
    assert_eq!(got, "x");
    let denied = r.set::<_, _, ()>("app:2", "y").unwrap_err().to_string();
    assert!(
        denied.to_lowercase().contains("perm"),
        "appreader cannot write: {denied}"
    );
    let mut anon = redis(&ip, 6379);
    let anon_err = redis::cmd("GET")
        .arg("app:1")
        .query::<Option<String>>(&mut anon)
        .unwrap_err()
        .to_string();
    assert!(
        anon_err.to_lowercase().contains("auth"),
        "default still needs the password: {anon_err}"
    );
    // Replication still authenticates with the macro's password.
    let mut replica = authed(&vd, "data-acl.1", &password(&vd, "data/acl"));
    vd.wait_for("acl replica in sync", T, || {
        replica
            .get::<_, Option<String>>("app:1")
            .unwrap()
            .as_deref()
            == Some("x")
    });

    // The footguns are refused at apply with a located error, and nothing changes.
    for (bad, needle) in [
        ("aclfile /etc/redis/users.acl\n", "aclfile"),
        ("user default on nopass ~* +@all\n", "user default"),
    ] {
        std::fs::write(vd.path().join("conf/users.conf"), bad).unwrap();
        let err = vd.vd_fails(&["apply", "-f", &vd.path().join("m.hcl").to_string_lossy()]);
        assert!(err.contains(needle), "{err}");
        assert!(err.contains("m.hcl:"), "located: {err}");
    }
}

fn switchover_under_writes_loses_nothing_and_restarts_nothing() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("r.hcl", &replicated(3)));
    vd.apply(&vd.manifest("app.hcl", &consumer("app")));
    vd.vd(&["redis:link", "data/cache", "app/web"]);
    let pw = password(&vd, "data/cache");
    let pids: Vec<u64> = (0..3).map(|o| vd.pid(&format!("data-cache.{o}"))).collect();

    // Scale-down that would prune... nothing yet: master is 0. Scale-down below a master at 2 is
    // checked after the failover.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let errors = Arc::new(Mutex::new(0u64));
    let ips: Vec<String> = (0..3).map(|o| vd.ip(&format!("data-cache.{o}"))).collect();
    let writer = {
        let (stop, acked, errors, ips, pw) = (
            stop.clone(),
            acked.clone(),
            errors.clone(),
            ips.clone(),
            pw.clone(),
        );
        std::thread::spawn(move || {
            // A client that follows the master the way an app with a fresh REDIS_URL would: on
            // an error it asks every node for its role and reconnects to the master.
            let connect = |ip: &str| {
                redis::Client::open(format!("redis://:{pw}@{ip}:6379/"))
                    .unwrap()
                    .get_connection_with_timeout(Duration::from_secs(2))
            };
            let find_master = || {
                ips.iter().find_map(|ip| {
                    let mut c = connect(ip).ok()?;
                    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).ok()?;
                    (role[0] == redis::Value::BulkString(b"master".to_vec())).then_some(c)
                })
            };
            let mut conn = find_master().unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                match redis::cmd("RPUSH")
                    .arg("ids")
                    .arg(i)
                    .query::<i64>(&mut conn)
                {
                    Ok(_) => {
                        acked.lock().unwrap().push(i);
                        i += 1;
                    }
                    Err(_) => {
                        *errors.lock().unwrap() += 1;
                        std::thread::sleep(Duration::from_millis(5));
                        if let Some(c) = find_master() {
                            conn = c;
                        }
                    }
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let out = vd.vd(&["redis:failover", "data/cache", "--replica", "2"]);
    assert!(out.contains("cache-2"), "{out}");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();

    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "the writer made progress: {}",
        acked.len()
    );
    let mut new_master = authed(&vd, "data-cache.2", &pw);
    let stored: Vec<u64> = new_master.lrange("ids", 0, -1).unwrap();
    let stored_set: std::collections::BTreeSet<u64> = stored.iter().copied().collect();
    let lost: Vec<&u64> = acked.iter().filter(|i| !stored_set.contains(i)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");

    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut new_master).unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
    for o in [0, 1] {
        let mut r = authed(&vd, &format!("data-cache.{o}"), &pw);
        vd.wait_for("re-pointed replica", T, || {
            let info: String = redis::cmd("INFO").arg("replication").query(&mut r).unwrap();
            info.contains("master_host:cache-2.data.voodu")
                && info.contains("master_link_status:up")
        });
    }
    let after: Vec<u64> = (0..3).map(|o| vd.pid(&format!("data-cache.{o}"))).collect();
    assert_eq!(pids, after, "no redis pod restarted");
    assert_eq!(
        vd.vd(&["config", "data/cache", "get", "REDIS_MASTER_ORDINAL"])
            .trim(),
        "2"
    );
    assert_eq!(
        vd.vd(&["config", "app/web", "get", "REDIS_URL"]).trim(),
        format!("redis://default:{pw}@cache-2.data.voodu:6379")
    );

    // Refusals: out of range, the current master, and scaling below the master's ordinal.
    assert!(vd
        .vd_fails(&["redis:failover", "data/cache", "--replica", "7"])
        .contains("no ordinal 7"));
    assert!(vd
        .vd_fails(&["redis:failover", "data/cache", "--replica", "2"])
        .contains("already the master"));
    let err = vd.vd_fails(&["apply", "-f", &vd.manifest("r.hcl", &replicated(2))]);
    assert!(err.contains("redis:failover"), "{err}");
    vd.vd(&["redis:failover", "data/cache", "--replica", "0"]);
    vd.apply(&vd.manifest("r.hcl", &replicated(2)));
    assert_eq!(vd.pods().iter().filter(|p| p["name"] == "cache").count(), 2);
}

/// `vd redis:failover` without `--replica` picks its target by the automatic failover
/// planner's candidate rules (here: never a replica with replica-priority 0, even the one
/// with data and a live link), and refuses, changing nothing, when no replica qualifies.
fn switchover_chooses_like_the_failover_planner() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("r.hcl", &replicated(3)));
    let pw = password(&vd, "data/cache");
    let mut master = authed(&vd, "data-cache.0", &pw);
    let _: () = master.set("k", "v").unwrap();
    for o in [1, 2] {
        let mut r = authed(&vd, &format!("data-cache.{o}"), &pw);
        vd.wait_for("replica has the data", T, || {
            r.get::<_, Option<String>>("k").unwrap().is_some()
        });
    }
    let mut one = authed(&vd, "data-cache.1", &pw);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("replica-priority")
        .arg("0")
        .query(&mut one)
        .unwrap();
    let out = vd.vd(&["redis:failover", "data/cache", "--no-restart"]);
    assert!(out.contains("cache-2"), "ordinal 1 has priority 0: {out}");
    assert_eq!(
        vd.vd(&["config", "data/cache", "get", "REDIS_MASTER_ORDINAL"])
            .trim(),
        "2"
    );

    // Now the only other replica gets priority 0 too: nothing qualifies.
    let mut zero = authed(&vd, "data-cache.0", &pw);
    vd.wait_for("ordinal 0 follows the new master", T, || {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut zero)
            .unwrap();
        info.contains("master_link_status:up")
    });
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("replica-priority")
        .arg("0")
        .query(&mut zero)
        .unwrap();
    let err = unwrapped(&vd.vd_fails(&["redis:failover", "data/cache"]));
    assert!(
        err.contains("ordinal 0 has replica-priority 0")
            && err.contains("ordinal 1 has replica-priority 0")
            && err.contains("nothing changed"),
        "{err}"
    );
    assert_eq!(
        vd.vd(&["config", "data/cache", "get", "REDIS_MASTER_ORDINAL"])
            .trim(),
        "2"
    );
    let mut two = authed(&vd, "data-cache.2", &pw);
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut two).unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
    // Naming a replica still works: the operator overrides the rules knowingly.
    let out = vd.vd(&[
        "redis:failover",
        "data/cache",
        "--replica",
        "0",
        "--no-restart",
    ]);
    assert!(out.contains("cache-0"), "{out}");
}

fn new_password_reaches_pods_then_consumers_then_revokes_the_old() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("r.hcl", &replicated(2)));
    vd.apply(&vd.manifest("app.hcl", &consumer("app")));
    vd.vd(&["redis:link", "data/cache", "app/web"]);
    let old = password(&vd, "data/cache");
    let pids: Vec<u64> = (0..2).map(|o| vd.pid(&format!("data-cache.{o}"))).collect();
    vd.vd(&["redis:new-password", "data/cache"]);
    let new = password(&vd, "data/cache");
    assert_ne!(old, new);
    for o in 0..2 {
        let ip = vd.ip(&format!("data-cache.{o}"));
        let ok = redis::Client::open(format!("redis://:{new}@{ip}:6379/"))
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(3));
        assert!(ok.is_ok(), "pod {o} accepts the new password");
        let mut c = redis::Client::open(format!("redis://{ip}:6379/"))
            .unwrap()
            .get_connection()
            .unwrap();
        let rejected = redis::cmd("AUTH").arg(&old).query::<String>(&mut c);
        assert!(
            rejected.is_err(),
            "pod {o} no longer accepts the old password"
        );
    }
    assert_eq!(
        vd.vd(&["config", "app/web", "get", "REDIS_URL"]).trim(),
        format!("redis://default:{new}@cache-0.data.voodu:6379")
    );
    let after: Vec<u64> = (0..2).map(|o| vd.pid(&format!("data-cache.{o}"))).collect();
    assert_eq!(pids, after, "no redis pod restarted");
    // Probes authenticate with the new password: pods stay ready.
    std::thread::sleep(Duration::from_secs(2));
    assert!(vd
        .pods()
        .iter()
        .filter(|p| p["name"] == "cache")
        .all(|p| p["ready"] == true));
    let mut m = authed(&vd, "data-cache.0", &new);
    let _: () = m.set("after-rotation", 1).unwrap();
    let mut r = authed(&vd, "data-cache.1", &new);
    vd.wait_for("replication after rotation", T, || {
        r.get::<_, Option<u32>>("after-rotation").unwrap() == Some(1)
    });
}

/// The readiness check vd writes (`redis-cli -e -h <pod> [-p PORT] ping`) is a PING the
/// controller sends itself, so no command runs in a pod per check (on docker, no `docker
/// exec`: costly on a small machine, and able to wedge the daemon on a frozen container). It
/// still means what the command means: a pod whose password no longer matches is not ready.
fn default_readiness_runs_no_command_in_the_pod() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    // The readiness check vd writes, as a user would write it, with a quick period.
    let probes = FAST_PROBES.replace("\"redis-cli\", \"-h\"", "\"redis-cli\", \"-e\", \"-h\"");
    assert!(probes.contains("\"-e\""), "the default shape has -e");
    let m = format!(
        "redis \"data\" \"cache\" {{\n  replicas = 2\n  proxy {{}}\n{probes}}}\n{}",
        common::SENTINEL_SIBLING
    );
    let f = vd.manifest("r.hcl", &m);
    vd.apply(&f);
    let ours = |name: &str| name.starts_with("data-");
    if common::is_docker() {
        let since = common::unix_secs();
        // Readiness every 300 ms on two data pods and the proxy, every 300 ms on three
        // sentinels: dozens of checks in this window.
        std::thread::sleep(Duration::from_secs(4));
        let until = common::unix_secs();
        let execs: Vec<String> = common::docker_names(&[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "event=exec_create",
            "--format",
            "{{.Actor.Attributes.name}}",
        ])
        .into_iter()
        .filter(|n| ours(n))
        .collect();
        assert!(execs.is_empty(), "docker exec per check into {execs:?}");
    }
    // An error reply fails the check, as `-e` makes redis-cli fail: another password on
    // pod 1 takes it out of service, the right one puts it back.
    let pw = password(&vd, "data/cache");
    let mut c = authed(&vd, "data-cache.1", &pw);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("not-the-password")
        .query(&mut c)
        .unwrap();
    let ready = |vd: &Vd| vd.pod("data-cache.1").is_some_and(|p| p["ready"] == true);
    vd.wait_for("pod 1 out of service", T, || !ready(&vd));
    let message = vd
        .pod("data-cache.1")
        .and_then(|p| p["message"].as_str().map(str::to_string))
        .unwrap_or_default();
    assert!(
        message.contains("ping") && !message.contains(&pw),
        "the reason names the check, not the password: {message}"
    );
    let mut c = authed(&vd, "data-cache.1", "not-the-password");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(&pw)
        .query(&mut c)
        .unwrap();
    vd.wait_for("pod 1 back in service", T, || ready(&vd));
}

on_every_runtime!(
    default_readiness_runs_no_command_in_the_pod,
    minimal_redis_requires_auth_and_keeps_password_and_data,
    three_replicas_replicate_and_refuse_writes,
    link_modes_write_the_link_variables_and_consumers_ping,
    custom_conf_with_command_override_and_safe_acls,
    switchover_under_writes_loses_nothing_and_restarts_nothing,
    switchover_chooses_like_the_failover_planner,
    new_password_reaches_pods_then_consumers_then_revokes_the_old,
);
