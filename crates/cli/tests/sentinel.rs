//! Sentinel HA acceptance (a data redis plus a sentinel sibling watching it): real
//! redis-server and redis-sentinel pods, redis-py's Sentinel as the sentinel-aware client.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_every_runtime, redis, Vd};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

/// The sentinel HA pair, with test-speed probes and a sentinel-overrides file
/// (down-after 1000 instead of the default 5000).
fn ha_manifest() -> String {
    r#"
redis "data" "cache" {
  replicas = 3
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
}
"#
    .to_string()
        + common::SENTINEL_SIBLING
}

/// A writer that speaks sentinel (redis-py), acknowledging a write only when `WAIT 1` says a
/// replica has it; it prints `ok <id> <replicas>` or `err <id> <error>` per attempt.
const WRITER: &str = r#"
deployment "web" "writer" {
  image   = "redis:7-alpine"
  command = ["/usr/bin/python3", "-u", "-c", <<-EOT
import os, time, redis
from redis.sentinel import Sentinel
hosts = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in os.environ["REDIS_SENTINEL_HOSTS"].split(",")]
pw = redis.Redis.from_url(os.environ["REDIS_URL"]).connection_pool.connection_kwargs["password"]
m = Sentinel(hosts, sentinel_kwargs={"password": os.environ["REDIS_SENTINEL_PASSWORD"]}, socket_timeout=0.5).master_for(os.environ["REDIS_MASTER_NAME"], password=pw, socket_timeout=0.5)
i = 0
while True:
    i += 1
    try:
        m.set("w:%d" % i, i)
        print("ok %d %d" % (i, m.execute_command("WAIT", 1, 500)), flush=True)
    except Exception as e:
        print("err %d %s" % (i, type(e).__name__), flush=True)
        time.sleep(0.05)
    time.sleep(0.005)
EOT
  ]
}
"#;

/// The sentinels' generated password, from the sibling's bucket.
fn sentinel_password(vd: &Vd) -> String {
    vd.vd(&["config", "data/cache-ha", "get", "REDIS_SENTINEL_PASSWORD"])
        .trim()
        .to_string()
}

fn sentinel_auth(c: &mut redis::Connection, pw: &str) {
    let ok: String = redis::cmd("AUTH").arg(pw).query(c).unwrap();
    assert_eq!(ok, "OK");
}

fn sentinels(vd: &Vd) -> Value {
    let v: Value =
        serde_json::from_str(&vd.vd(&["redis:info", "data/cache", "-o", "json"])).unwrap();
    v["sentinels"].clone()
}

fn wait_healthy(vd: &Vd) {
    vd.wait_for("sentinels healthy and agreeing", T, || {
        sentinels(vd)["healthy"] == true
    });
}

/// Exactly one master, every other pod replicating from it, the sentinels agreeing on it and
/// the bucket naming it.
fn wait_converged(vd: &Vd) -> u32 {
    let mut master = 0;
    vd.wait_for(
        "one master, replicas following it, sentinels agreeing",
        T,
        || {
            let roles: Vec<Option<(String, String)>> = (0..3).map(|o| vd.cache_role(o)).collect();
            let masters: Vec<u32> = (0..3)
                .filter(|o| roles[*o as usize].as_ref().is_some_and(|r| r.0 == "master"))
                .collect();
            if masters.len() != 1 {
                return false;
            }
            let m = masters[0];
            let name = format!("cache-{m}.data.voodu");
            let replicas_ok = (0..3).filter(|o| *o != m).all(|o| {
                roles[o as usize]
                    .as_ref()
                    .is_some_and(|r| r.0 == "slave" && r.1 == name)
            });
            let s = sentinels(vd);
            let agree = s["healthy"] == true
                && s["rows"]
                    .as_array()
                    .is_some_and(|rows| rows.iter().all(|r| r["master"] == format!("cache-{m}")));
            master = m;
            replicas_ok && agree && vd.master_ordinal() == m
        },
    );
    master
}

fn ha_pair_comes_up_and_follows_a_master_kill() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("ha.hcl", &ha_manifest()));
    assert_eq!(vd.pods().len(), 6, "3 data pods + 3 sentinels");
    wait_healthy(&vd);
    let s = sentinels(&vd);
    for row in s["rows"].as_array().unwrap() {
        assert_eq!(row["master"], "cache-0", "{s}");
        assert!(row["quorum"].as_str().unwrap().starts_with("OK"), "{s}");
        assert_eq!(row["other_sentinels"], 2, "{s}");
    }
    // A sentinel refuses a client without its password, and takes the generated one.
    let sip = vd.ip("data-cache-ha.0");
    let mut sc = redis(&sip, 26379);
    let refused = redis::cmd("PING").query::<String>(&mut sc).unwrap_err();
    assert_eq!(refused.code(), Some("NOAUTH"), "{refused}");
    let spw = sentinel_password(&vd);
    assert_eq!(spw.len(), 64, "32 random bytes, hex");
    assert_ne!(
        spw,
        vd.cache_password(),
        "the sentinels' password is their own"
    );
    let wrong = redis::cmd("AUTH")
        .arg(vd.cache_password())
        .query::<String>(&mut sc);
    assert!(wrong.is_err(), "the data password opens no sentinel");
    sentinel_auth(&mut sc, &spw);
    // redis-cli with it, as a probe or an operator would.
    let pong = std::process::Command::new("redis-cli")
        .args(["-e", "-h", &sip, "-p", "26379", "ping"])
        .env("REDISCLI_AUTH", &spw)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&pong.stdout).trim(), "PONG");
    // The override file changes the live values.
    let m: Vec<String> = redis::cmd("SENTINEL")
        .arg("MASTER")
        .arg("voodu-master")
        .query(&mut sc)
        .unwrap();
    let fields: BTreeMap<&str, &str> = m
        .chunks(2)
        .filter_map(|c| Some((c.first()?.as_str(), c.get(1)?.as_str())))
        .collect();
    assert_eq!(fields["down-after-milliseconds"], "1000", "{fields:?}");
    assert_eq!(fields["failover-timeout"], "5000");
    assert_eq!(fields["quorum"], "2");
    assert_eq!(fields["parallel-syncs"], "1");

    // The sentinel-aware link's three variables, and the documented sentinel URL.
    let url = vd.vd(&["redis:sentinel-url", "data/cache"]);
    assert_eq!(
        url.trim(),
        "redis-sentinel://cache-ha-0.data.voodu:26379,cache-ha-1.data.voodu:26379,cache-ha-2.data.voodu:26379/voodu-master"
    );
    vd.vd(&["redis:link", "data/cache", "web/writer", "--sentinel"]);
    let get = |k: &str| {
        vd.vd(&["config", "web/writer", "get", k])
            .trim()
            .to_string()
    };
    assert_eq!(
        get("REDIS_SENTINEL_HOSTS"),
        "cache-ha-0.data.voodu:26379,cache-ha-1.data.voodu:26379,cache-ha-2.data.voodu:26379"
    );
    assert_eq!(get("REDIS_MASTER_NAME"), "voodu-master");
    assert_eq!(get("REDIS_SENTINEL_PASSWORD"), spw);
    assert!(get("REDIS_URL").contains("@cache-0.data.voodu:6379"));
    let how = vd.vd_stderr(&["redis:sentinel-url", "data/cache"]);
    assert!(
        how.contains("REDIS_SENTINEL_PASSWORD in the bucket data/cache-ha"),
        "{how}"
    );

    // The sentinel-aware client runs in a pod (pod names resolve there); the process runtime
    // runs it from the host's python3-redis, the docker image has no python.
    let writer = !common::is_docker();
    if writer {
        vd.apply(&vd.manifest("writer.hcl", WRITER));
        vd.wait_for("the writer writes", T, || {
            vd.vd(&["logs", "web/writer"]).contains("ok 20 ")
        });
    }
    vd.signal_pod("data-cache.0", "-9");
    vd.wait_for("the sentinels promote a replica", T, || {
        vd.master_ordinal() != 0
    });
    // The event follows the bucket's update by the consumers' rewrite.
    vd.wait_for("a MasterSwitched event", T, || {
        vd.events().iter().any(|e| e["reason"] == "MasterSwitched")
    });
    // The old master comes back as a replica of the new one; all agree, the bucket too. (With
    // down-after 1000 ms a loaded machine may see the sentinels fail over a second time, so
    // the final master is not necessarily the first one they promoted.)
    let new = wait_converged(&vd);
    vd.wait_for("the consumer's REDIS_URL to follow", T, || {
        get("REDIS_URL").contains(&format!("@cache-{new}.data.voodu:6379"))
    });
    if writer {
        let before = vd.vd(&["logs", "web/writer"]).lines().count();
        vd.wait_for("the writer keeps writing after the failover", T, || {
            let logs = vd.vd(&["logs", "web/writer"]);
            logs.lines()
                .skip(before)
                .filter(|l| l.starts_with("ok "))
                .count()
                > 50
        });
        let logs = vd.vd(&["logs", "web/writer"]);
        vd.vd(&["delete", "deployment/web/writer"]);
        vd.wait_for("writer stopped", T, || vd.pod("web-writer.0").is_none());
        let mut c = vd.cache_conn(new).expect("new master");
        let (mut waited, mut waited_lost, mut plain, mut plain_lost) = (0, 0, 0, 0);
        for l in logs.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 3 || f[0] != "ok" {
                continue;
            }
            let exists: bool = redis::cmd("EXISTS")
                .arg(format!("w:{}", f[1]))
                .query(&mut c)
                .unwrap();
            if f[2] != "0" {
                waited += 1;
                waited_lost += u32::from(!exists);
            } else {
                plain += 1;
                plain_lost += u32::from(!exists);
            }
        }
        eprintln!(
            "writes acknowledged by WAIT 1: {waited}, lost {waited_lost}; acknowledged by the master alone: {plain}, lost {plain_lost}"
        );
        assert!(waited > 50);
        assert_eq!(waited_lost, 0, "no write acknowledged by WAIT 1 is lost");
    }
}

fn three_chained_master_kills_end_with_one_master() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("ha.hcl", &ha_manifest()));
    wait_healthy(&vd);
    for round in 0..3 {
        let m = vd.master_ordinal();
        vd.signal_pod(&format!("data-cache.{m}"), "-9");
        vd.wait_for(&format!("round {round}: a new master"), T, || {
            vd.master_ordinal() != m
        });
    }
    wait_converged(&vd);
}

fn failover_command_asks_the_sentinels() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("ha.hcl", &ha_manifest()));
    wait_healthy(&vd);
    let out = vd.vd(&["redis:failover", "data/cache", "--no-restart"]);
    assert!(out.contains("sentinels promoted"), "{out}");
    let m = wait_converged(&vd);
    assert_ne!(m, 0);
    let err = vd.vd_fails(&["redis:failover", "data/cache", "--replica", "1"]);
    assert!(err.contains("sentinels choose"), "{err}");

    // The sentinel sibling answers for the redis it watches: its pods and its sentinels...
    let info: serde_json::Value =
        serde_json::from_str(&vd.vd(&["redis:info", "data/cache-ha", "-o", "json"])).unwrap();
    assert_eq!(info["nodes"].as_array().map(Vec::len), Some(3), "{info}");
    assert_eq!(info["sentinels"]["healthy"], true, "{info}");
    // ...and fails it over by asking its sentinels.
    wait_healthy(&vd);
    let out = vd.vd(&["redis:failover", "data/cache-ha", "--no-restart"]);
    assert!(out.contains("sentinels promoted"), "{out}");
    let second = wait_converged(&vd);
    assert_ne!(second, m);

    // The sentinels' password rotates live: a client connected before keeps working, the
    // old password opens no new connection, the new one does, a consumer linked with
    // --sentinel gets it, no sentinel restarts, and vd's own connections follow (the
    // sentinels stay healthy in its eyes and a requested failover still goes through them).
    vd.vd(&[
        "redis:link",
        "data/cache",
        "web/app",
        "--sentinel",
        "--no-restart",
    ]);
    let old = sentinel_password(&vd);
    let sip = vd.ip("data-cache-ha.1");
    let mut before = redis(&sip, 26379);
    sentinel_auth(&mut before, &old);
    let started = || -> Vec<Value> {
        (0..3)
            .map(|o| vd.pod(&format!("data-cache-ha.{o}")).unwrap()["started_ms"].clone())
            .collect()
    };
    let before_rotation = started();
    let out = vd.vd(&["redis:new-password", "data/cache-ha"]);
    assert!(out.contains("REDIS_SENTINEL_PASSWORD"), "{out}");
    let new = sentinel_password(&vd);
    assert_ne!(new, old);
    let pong: String = redis::cmd("PING").query(&mut before).unwrap();
    assert_eq!(
        pong, "PONG",
        "a connection made before the rotation keeps working"
    );
    for o in 0..3 {
        let mut c = redis(&vd.ip(&format!("data-cache-ha.{o}")), 26379);
        let refused = redis::cmd("AUTH").arg(&old).query::<String>(&mut c);
        assert!(
            refused.is_err(),
            "sentinel {o} still takes the old password"
        );
        sentinel_auth(&mut c, &new);
    }
    assert_eq!(
        vd.vd(&["config", "web/app", "get", "REDIS_SENTINEL_PASSWORD"])
            .trim(),
        new
    );
    // The data password is untouched.
    assert!(vd
        .vd(&["config", "web/app", "get", "REDIS_URL"])
        .contains(&vd.cache_password()));
    assert_eq!(before_rotation, started(), "no sentinel restarted");
    wait_healthy(&vd);
    let out = vd.vd(&["redis:failover", "data/cache", "--no-restart"]);
    assert!(out.contains("sentinels promoted"), "{out}");
    assert_ne!(wait_converged(&vd), second);
}

/// A master that only stalls (SIGSTOP) and wakes while the sentinels are still promoting its
/// replacement must find no replica left to acknowledge its writes: such a write is lost once
/// the replicas resynchronise from the new master, so `WAIT` must not count it. vd moves the
/// other replica to the promoted one as soon as a sentinel orders the promotion, where the
/// sentinels would only do so once they saw the promoted one answer as master. Freezing the
/// promoted replica right after it is ordered to take over keeps the sentinels from seeing
/// that, so only vd can have moved the other one.
#[test]
fn a_stalled_master_waking_mid_failover_gets_no_acknowledgement() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("ha.hcl", &ha_manifest()));
    wait_healthy(&vd);
    let m = wait_converged(&vd);

    // Every sentinel's promotion announcements, subscribed before the stall.
    let (tx, promotions) = std::sync::mpsc::channel::<String>();
    for o in 0..3 {
        let mut c = vd.sentinel_conn(o);
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut ps = c.as_pubsub();
            ps.subscribe("+failover-state-wait-promotion").unwrap();
            // Bounded, so the thread ends with the test even when no message comes.
            ps.set_read_timeout(Some(T)).unwrap();
            ready_tx.send(()).unwrap();
            if let Ok(msg) = ps.get_message() {
                let _ = tx.send(msg.get_payload().unwrap_or_default());
            }
        });
        ready.recv_timeout(T).expect("subscribed");
    }
    let old = format!("data-cache.{m}");
    vd.hang_pod(&old);
    let payload = promotions
        .recv_timeout(T)
        .expect("a sentinel orders a promotion");
    let p = vd_redisctl::parse_promotion(&payload).expect("a promotion payload");
    let promoted: u32 = p
        .host
        .strip_prefix("cache-")
        .and_then(|h| h.strip_suffix(".data.voodu"))
        .and_then(|o| o.parse().ok())
        .unwrap_or_else(|| panic!("a data pod's name in {payload:?}"));
    vd.hang_pod(&format!("data-cache.{promoted}"));
    let other = (0..3).find(|o| *o != m && *o != promoted).unwrap();
    vd.wait_for("the other replica to follow the promoted one", T, || {
        vd.cache_role(other) == Some(("slave".into(), p.host.clone()))
    });

    // The old master wakes with no replica attached: a write it takes is acknowledged by
    // none (or refused outright when it requires a replica to write).
    vd.resume_pod(&old);
    let mut c = vd.cache_conn(m).expect("the old master answers");
    match redis::cmd("SET")
        .arg("stalled")
        .arg("1")
        .query::<()>(&mut c)
    {
        Ok(()) => {
            let acks: i64 = redis::cmd("WAIT").arg(1).arg(500).query(&mut c).unwrap();
            assert_eq!(
                acks, 0,
                "a replica acknowledged a write of the stalled master"
            );
        }
        Err(e) => assert_eq!(e.code(), Some("NOREPLICAS"), "{e}"),
    }
    vd.resume_pod(&format!("data-cache.{promoted}"));
    let now = wait_converged(&vd);
    assert_ne!(now, m, "the stalled master was replaced");
}

on_every_runtime!(
    ha_pair_comes_up_and_follows_a_master_kill,
    failover_command_asks_the_sentinels,
    three_chained_master_kills_end_with_one_master,
);

/// Every sentinel validation rule, with its message (the manifest parser's own rules are
/// covered in crates/manifest; these need the server's view of other resources).
#[test]
fn sentinel_validation_messages() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    let fails = |name: &str, text: &str, want: &[&str]| {
        let err = vd.vd_fails(&["apply", "-f", &vd.manifest(name, text)]);
        for w in want {
            assert!(err.contains(w), "{name}: want {w:?} in:\n{err}");
        }
    };
    fails(
        "missing.hcl",
        r#"redis "data" "cache-ha" {
  sentinel { monitor = "data/nothing" }
}
"#,
        &["data/nothing", "does not exist", "missing.hcl:2:"],
    );
    fails(
        "cross.hcl",
        r#"redis "data" "cache-ha" {
  sentinel { monitor = "other/cache" }
}
"#,
        &["scope"],
    );
    fails(
        "self.hcl",
        r#"redis "data" "cache-ha" {
  sentinel { monitor = "data/cache-ha" }
}
"#,
        &["itself"],
    );
    fails(
        "malformed.hcl",
        r#"redis "data" "cache-ha" {
  sentinel { monitor = "cache" }
}
"#,
        &["scope/name"],
    );
    fails(
        "nomonitor.hcl",
        r#"redis "data" "cache-ha" {
  sentinel {}
}
"#,
        &["monitor"],
    );
    fails(
        "two.hcl",
        r#"redis "data" "cache" {}
redis "data" "cache-ha" {
  replicas = 2
  sentinel { monitor = "data/cache" }
}
"#,
        &["quorum", "replicas = 3"],
    );
    fails(
        "watcher.hcl",
        r#"redis "data" "cache" {}
redis "data" "cache-ha" {
  sentinel { monitor = "data/cache" }
}
redis "data" "cache-ha2" {
  sentinel { monitor = "data/cache-ha" }
}
"#,
        &["is itself a"],
    );
    fails(
        "twice.hcl",
        r#"redis "data" "cache" {}
redis "data" "cache-ha" {
  sentinel { monitor = "data/cache" }
}
redis "data" "cache-hb" {
  sentinel { monitor = "data/cache" }
}
"#,
        &["already watched"],
    );
    fails(
        "override.hcl",
        r#"asset "data" "o" {
  defs = "sentinel monitor other 127.0.0.1 6379 2\n"
}
redis "data" "cache" {}
redis "data" "cache-ha" {
  sentinel { monitor = "data/cache" }
  volumes = ["${asset.data.o.defs}:/etc/sentinel/conf.d/o.conf:ro"]
}
"#,
        &["sentinel monitor"],
    );
    assert_eq!(
        vd.vd(&["get", "-o", "json"]).trim(),
        "[]",
        "nothing applied"
    );
    // enabled = false: a plain data redis.
    vd.apply(&vd.manifest(
        "off.hcl",
        r#"redis "data" "plain" {
  sentinel {
    enabled = false
  }
  probes {
    readiness {
      exec { command = ["redis-cli", "-h", "${VOODU_POD_IP}", "ping"] }
      period = "300ms"
    }
  }
}
"#,
    ));
    let list = vd.vd(&["get", "redis"]);
    assert!(list.contains("standalone"), "{list}");
}
