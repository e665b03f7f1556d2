//! Controller automatic failover, end to end.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_every_runtime, unwrapped, Vd};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::Duration;

/// Data pods ready within a second (the default readiness needs two successes 5 s apart).
const FAST_PROBES: &str = r#"
  probes {
    readiness {
      exec { command = ["redis-cli", "-h", "${VOODU_POD_IP}", "ping"] }
      period = "300ms"
    }
  }
"#;

/// Sentinel pods ready within a second.
const FAST_SENTINEL_PROBES: &str = r#"
  probes {
    readiness {
      exec { command = ["redis-cli", "-e", "-h", "${VOODU_POD_IP}", "-p", "26379", "ping"] }
      period = "300ms"
    }
  }
"#;

/// How often `needle` occurs in `haystack`.
fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// The `failover` block's rules as `vd apply` reports them: the parser's own (with file, line
/// and column), and the server's rule against a sentinel sibling monitoring the same redis
/// (two failure detectors), whichever of the two is applied second, and in one apply.
#[test]
fn failover_validation_messages() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    let fails = |name: &str, text: &str, want: &[&str]| {
        let err = unwrapped(&vd.vd_fails(&["apply", "-f", &vd.manifest(name, text)]));
        for w in want {
            assert!(err.contains(w), "{name}: want {w:?} in:\n{err}");
        }
        err
    };
    let two_masters = "both the sentinels and vd's controller would detect the same failure and each promote a replica of its own choosing, leaving two masters";

    // ----- the block itself (the parser; every rule is in crates/manifest/tests/redis.rs)
    fails(
        "one.hcl",
        r#"redis "data" "cache" {
  replicas = 1
  failover { automatic = true }
}
"#,
        &[
            "`failover { automatic = true }` needs replicas >= 2, found replicas = 1",
            "with one pod there is no replica to promote",
            "replicas = 3",
            "one.hcl:2:14",
        ],
    );
    fails(
        "default.hcl",
        "redis \"data\" \"cache\" {\n  failover {}\n}\n",
        &[
            "needs replicas >= 2, found no replicas (the default is 1)",
            "default.hcl:2:3",
        ],
    );
    fails(
        "short.hcl",
        r#"redis "data" "cache" {
  replicas = 3
  failover { down_after = "50ms" }
}
"#,
        &[
            "`failover.down_after` must be at least 100ms, found 50ms",
            "spurious failover",
            "short.hcl:3:27",
        ],
    );
    fails(
        "bare.hcl",
        r#"redis "data" "cache" {
  replicas = 3
  failover { down_after = 1000 }
}
"#,
        &[
            "`failover.down_after` must be a duration string, found the number 1000",
            "down_after = \"1000ms\"",
        ],
    );
    fails(
        "sibling.hcl",
        r#"redis "data" "cache" {}
redis "data" "cache-ha" {
  sentinel { monitor = "data/cache" }
  failover { automatic = true }
}
"#,
        &[
            "`failover` is not allowed in a sentinel sibling",
            "runs sentinels, not data",
            "sibling.hcl:4:3",
        ],
    );
    fails(
        "statefulset.hcl",
        "statefulset \"data\" \"pg\" {\n  failover {}\n}\n",
        &["`failover` is not allowed in a statefulset"],
    );

    // ----- two failure detectors, in one apply: said once, at the failover block
    let err = fails(
        "both.hcl",
        r#"redis "data" "cache" {
  replicas = 3
  failover { automatic = true }
}
redis "data" "cache-ha" {
  sentinel { monitor = "data/cache" }
}
"#,
        &[
            "data/cache has `failover { automatic = true }` and the sentinel sibling data/cache-ha monitors it",
            two_masters,
            "choose one failure detector: remove the `failover` block from data/cache",
            "delete the sentinel sibling data/cache-ha",
            "both.hcl:3:3",
        ],
    );
    assert_eq!(count(&err, "leaving two masters"), 1, "{err}");
    assert_eq!(
        vd.vd(&["get", "-o", "json"]).trim(),
        "[]",
        "nothing applied"
    );

    // ----- a valid block applies, and describe shows it
    vd.apply(&vd.manifest(
        "cache.hcl",
        &format!(
            "redis \"data\" \"cache\" {{\n  replicas = 3\n  failover {{\n    automatic  = true\n    down_after = \"1s\"\n  }}\n{FAST_PROBES}}}\n"
        ),
    ));
    let d = vd.vd(&["describe", "redis/data/cache"]);
    assert!(
        d.contains("\"failover\":{\"automatic\":true,\"down_after_ms\":1000}"),
        "{d}"
    );
    assert!(d.contains("failover:  automatic, down after 1000ms"), "{d}");

    // ----- the data redis first, then a sentinel sibling: refused at its monitor
    let err = fails(
        "cache-ha.hcl",
        r#"redis "data" "cache-ha" {
  sentinel { monitor = "data/cache" }
}
"#,
        &[
            "data/cache has `failover { automatic = true }` and the sentinel sibling data/cache-ha monitors it",
            two_masters,
            "cache-ha.hcl:2:24",
        ],
    );
    assert_eq!(count(&err, "leaving two masters"), 1, "{err}");

    // ----- a sentinel sibling first, then the failover block: refused at the block. Stored is
    // enough for the check; the pods' readiness is other tests' business.
    let plain = vd.manifest(
        "plain.hcl",
        &format!(
            "redis \"data\" \"plain\" {{\n{FAST_PROBES}}}\nredis \"data\" \"plain-ha\" {{\n  replicas = 1\n  sentinel {{ monitor = \"data/plain\" }}\n{FAST_SENTINEL_PROBES}}}\n"
        ),
    );
    vd.vd(&["apply", "-f", &plain, "--no-wait"]);
    let err = fails(
        "plain-failover.hcl",
        r#"redis "data" "plain" {
  replicas = 3
  failover {}
}
"#,
        &[
            "data/plain has `failover { automatic = true }` and the sentinel sibling data/plain-ha monitors it",
            two_masters,
            "plain-failover.hcl:3:3",
        ],
    );
    assert_eq!(count(&err, "leaving two masters"), 1, "{err}");
    // The whole manifest again, the sibling unchanged beside the new block: still said once.
    let err = fails(
        "plain-both.hcl",
        &format!(
            "redis \"data\" \"plain\" {{\n  replicas = 3\n  failover {{}}\n}}\nredis \"data\" \"plain-ha\" {{\n  replicas = 1\n  sentinel {{ monitor = \"data/plain\" }}\n{FAST_SENTINEL_PROBES}}}\n"
        ),
        &[
            "data/plain has `failover { automatic = true }` and the sentinel sibling data/plain-ha monitors it",
            "plain-both.hcl:3:3",
        ],
    );
    assert_eq!(count(&err, "leaving two masters"), 1, "{err}");
    let d = vd.vd(&["describe", "redis/data/plain"]);
    assert!(!d.contains("failover:"), "nothing changed: {d}");
}

// ---- Faults: each ends with one master, the others replicating from it, the bucket right,
// ---- and no write acknowledged by `WAIT 1` lost.

const T: Duration = Duration::from_secs(90);

/// Three data pods with controller failover at `down_after = "1s"`; `extra` goes inside the
/// redis block.
fn failover_manifest(extra: &str) -> String {
    format!(
        r#"
redis "data" "cache" {{
  replicas = 3
  failover {{
    automatic  = true
    down_after = "1s"
  }}
  probes {{
    liveness {{
      tcp_socket {{ port = 6379 }}
      period = "2s"
    }}
    readiness {{
      exec {{ command = ["redis-cli", "-h", "${{VOODU_POD_IP}}", "ping"] }}
      period = "300ms"
    }}
  }}
  {extra}
}}
"#
    )
}

/// Persistence off (no RDB, no AOF): a restarted master comes back empty.
const NO_PERSISTENCE: &str =
    r#"volumes = ["${asset.data.nopersist.conf}:/etc/redis/conf.d/nopersist.conf:ro"]"#;
const NO_PERSISTENCE_ASSET: &str = r#"
asset "data" "nopersist" {
  conf = <<-EOT
    save ""
    appendonly no
  EOT
}
"#;

/// Writes `w:<i>` to whichever pod says it is master, acknowledging a write only when
/// `WAIT 1` reports a replica has it. Returns the acknowledged ids when stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Option<std::thread::JoinHandle<Vec<u64>>>,
}

impl Writer {
    fn start(vd: &Vd) -> Writer {
        let ips: Vec<String> = (0..3).map(|o| vd.ip(&format!("data-cache.{o}"))).collect();
        let pw = vd.cache_password();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let acked = std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut conn: Option<redis::Connection> = None;
            let mut i = 0u64;
            while !flag.load(AtomicOrdering::Relaxed) {
                let Some(c) = conn.as_mut() else {
                    conn = find_master(&ips, &pw);
                    if conn.is_none() {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    continue;
                };
                i += 1;
                let wrote: redis::RedisResult<i64> = redis::cmd("SET")
                    .arg(format!("w:{i}"))
                    .arg(i)
                    .query::<()>(c)
                    .and_then(|_| redis::cmd("WAIT").arg(1).arg(500).query(c));
                match wrote {
                    Ok(n) if n >= 1 => acked.push(i),
                    Ok(_) => {}
                    Err(_) => conn = None,
                }
            }
            acked
        });
        Writer {
            stop,
            acked: Some(acked),
        }
    }

    fn stop(mut self) -> Vec<u64> {
        self.stop.store(true, AtomicOrdering::Relaxed);
        self.acked
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, AtomicOrdering::Relaxed);
    }
}

/// A connection to the pod that answers `ROLE` as master.
fn find_master(ips: &[String], pw: &str) -> Option<redis::Connection> {
    for ip in ips {
        let Ok(client) = redis::Client::open(format!("redis://:{pw}@{ip}:6379/")) else {
            continue;
        };
        let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(300)) else {
            continue;
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
        let role: redis::RedisResult<Vec<redis::Value>> = redis::cmd("ROLE").query(&mut c);
        if matches!(role.as_deref(), Ok([redis::Value::BulkString(r), ..]) if r == b"master") {
            return Some(c);
        }
    }
    None
}

/// Exactly one master, every other pod replicating from it (link up), and the bucket naming
/// it. Returns the master's ordinal.
fn wait_converged(vd: &Vd) -> u32 {
    let mut master = 0;
    vd.wait_for(
        "one master, the others replicating from it, the bucket right",
        T,
        || {
            let roles: Vec<Option<(String, String)>> = (0..3).map(|o| vd.cache_role(o)).collect();
            let masters: Vec<u32> = (0..3)
                .filter(|o| roles[*o as usize].as_ref().is_some_and(|r| r.0 == "master"))
                .collect();
            let [m] = masters[..] else {
                return false;
            };
            master = m;
            let name = format!("cache-{m}.data.voodu");
            (0..3).filter(|o| *o != m).all(|o| {
                roles[o as usize]
                    .as_ref()
                    .is_some_and(|r| r.0 == "slave" && r.1 == name)
            }) && vd.master_ordinal() == m
        },
    );
    master
}

/// Every acknowledged id is on the master.
fn assert_none_lost(vd: &Vd, master: u32, acked: &[u64]) {
    assert!(!acked.is_empty(), "the writer acknowledged writes");
    let mut c = vd.cache_conn(master).expect("the master answers");
    let mut lost = Vec::new();
    for chunk in acked.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|i| format!("w:{i}")).collect();
        let vals: Vec<Option<u64>> = redis::cmd("MGET").arg(&keys).query(&mut c).unwrap();
        lost.extend(
            chunk
                .iter()
                .zip(vals)
                .filter(|(_, v)| v.is_none())
                .map(|(i, _)| *i),
        );
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(20)]
    );
}

fn up(vd: &Vd, extra: &str, assets: &str) {
    vd.apply(&vd.manifest("ha.hcl", &format!("{assets}{}", failover_manifest(extra))));
    wait_converged(vd);
}

/// Lets the writer get going, then returns how many it had acknowledged.
fn warm_up(vd: &Vd) {
    std::thread::sleep(Duration::from_millis(500));
    let _ = vd;
}

fn failover_events(vd: &Vd) -> Vec<Value> {
    vd.events()
        .into_iter()
        .filter(|e| e["reason"] == "Failover")
        .collect()
}

fn master_kill_promotes_a_replica() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    up(&vd, "", "");
    let w = Writer::start(&vd);
    warm_up(&vd);
    vd.signal_pod("data-cache.0", "-9");
    vd.wait_for("a replica promoted", T, || vd.master_ordinal() != 0);
    let m = wait_converged(&vd);
    std::thread::sleep(Duration::from_millis(500));
    let acked = w.stop();
    assert_none_lost(&vd, m, &acked);
    let ev = failover_events(&vd);
    assert_eq!(ev.len(), 1, "one failover: {ev:?}");
    let msg = ev[0]["message"].as_str().unwrap_or_default();
    // Normally the exit is seen first; on a loaded machine the master may already have missed
    // its checks for down_after when it was killed, which the event then says instead.
    assert!(
        (msg.contains("the master exited") || msg.contains("the master stopped answering"))
            && msg.contains("promoted +"),
        "{msg}"
    );
}

fn hung_master_is_replaced_and_demoted_when_it_returns() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    up(&vd, "", "");
    let w = Writer::start(&vd);
    warm_up(&vd);
    vd.hang_pod("data-cache.0");
    vd.wait_for("a replica promoted", T, || vd.master_ordinal() != 0);
    std::thread::sleep(Duration::from_millis(300));
    vd.resume_pod("data-cache.0");
    let m = wait_converged(&vd);
    assert_ne!(m, 0);
    std::thread::sleep(Duration::from_millis(500));
    let acked = w.stop();
    assert_none_lost(&vd, m, &acked);
    assert!(
        vd.events().iter().any(|e| e["reason"] == "MasterDemoted"),
        "the returning master was demoted"
    );
}

fn controller_killed_mid_failover_finishes_it() {
    let _g = common::own_addresses();
    let mut vd = Vd::start_env(&[("VD_TEST_FAULT", "abort-after-failover-stored")]);
    up(&vd, "", "");
    let w = Writer::start(&vd);
    warm_up(&vd);
    vd.signal_pod("data-cache.0", "-9");
    let deadline = std::time::Instant::now() + T;
    while vd.server_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the controller did not reach the fault point"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    vd.clear_env();
    vd.start_server();
    let m = wait_converged(&vd);
    assert_ne!(m, 0);
    std::thread::sleep(Duration::from_millis(500));
    let acked = w.stop();
    assert_none_lost(&vd, m, &acked);
    let ev = failover_events(&vd);
    assert!(
        ev.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("finishing a failover"))),
        "{ev:?}"
    );
}

fn master_restarted_empty_never_wipes_replicas() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    up(&vd, NO_PERSISTENCE, NO_PERSISTENCE_ASSET);
    let mut c = vd.cache_conn(0).expect("master");
    for chunk in (0..1000).collect::<Vec<u32>>().chunks(100) {
        let mut mset = redis::cmd("MSET");
        for i in chunk {
            mset.arg(format!("k:{i}")).arg(i);
        }
        let () = mset.query(&mut c).unwrap();
    }
    let n: i64 = redis::cmd("WAIT").arg(2).arg(5000).query(&mut c).unwrap();
    assert_eq!(n, 2, "both replicas have the data");
    vd.signal_pod("data-cache.0", "-9");
    vd.wait_for("a replica promoted", T, || vd.master_ordinal() != 0);
    let m = wait_converged(&vd);
    for o in 0..3 {
        vd.wait_for(&format!("cache-{o} holds the 1000 keys"), T, || {
            vd.cache_conn(o)
                .and_then(|mut c| redis::cmd("DBSIZE").query::<i64>(&mut c).ok())
                == Some(1000)
        });
    }
    assert_ne!(m, 0);
}

fn three_chained_master_kills_end_with_one_master() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    up(&vd, "", "");
    let w = Writer::start(&vd);
    warm_up(&vd);
    // Each kill hits the master promoted by the previous round as soon as one replica
    // follows it (any sooner and no pod with the data would be left to promote).
    for round in 0..3 {
        let m = vd.master_ordinal();
        vd.signal_pod(&format!("data-cache.{m}"), "-9");
        vd.wait_for(
            &format!("round {round}: a new master with a replica"),
            T,
            || {
                let new = vd.master_ordinal();
                let name = format!("cache-{new}.data.voodu");
                new != m
                    && (0..3).any(|o| {
                        vd.cache_role(o)
                            .is_some_and(|r| r.0 == "slave" && r.1 == name)
                    })
            },
        );
    }
    let m = wait_converged(&vd);
    std::thread::sleep(Duration::from_millis(500));
    let acked = w.stop();
    assert_none_lost(&vd, m, &acked);
}

/// `vd redis:failover` still works with automatic failover on: the controller does not take
/// the promoted replica for a stray master.
fn planned_switchover_is_left_alone() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    up(&vd, "", "");
    let w = Writer::start(&vd);
    warm_up(&vd);
    vd.vd(&["redis:failover", "data/cache", "--no-restart"]);
    let m = wait_converged(&vd);
    assert_ne!(m, 0);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        wait_converged(&vd),
        m,
        "the master stays where the switchover put it"
    );
    let acked = w.stop();
    assert_none_lost(&vd, m, &acked);
    let events = vd.events();
    assert!(
        !events.iter().any(|e| e["reason"] == "MasterDemoted"),
        "{events:?}"
    );
    assert!(
        !failover_events(&vd)
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains("epoch"))),
        "no automatic failover"
    );
}

/// After a failover the master is no longer pod 0. A full stop and start (a host reboot)
/// must bring the set back as it was: the master starts first and its replicas follow it.
/// Started after them it would look like a master that crashed beside running replicas, and
/// be failed over to whichever replica came up first, perhaps one that was behind.
fn a_full_stop_and_start_keeps_the_master_it_had() {
    let _g = common::own_addresses();
    let mut vd = Vd::start();
    up(&vd, "", "");
    vd.signal_pod("data-cache.0", "-9");
    vd.wait_for("a replica promoted", T, || vd.master_ordinal() != 0);
    let m = wait_converged(&vd);
    let w = Writer::start(&vd);
    warm_up(&vd);
    let acked = w.stop();
    assert_eq!(failover_events(&vd).len(), 1);

    vd.stop_everything();
    vd.start_server();
    vd.wait_for("all three pods ready", T, || {
        vd.pods().iter().filter(|p| p["ready"] == true).count() == 3
    });
    assert_eq!(wait_converged(&vd), m, "the master it had");
    let ev = failover_events(&vd);
    assert_eq!(ev.len(), 1, "no failover at the start: {ev:?}");
    assert_none_lost(&vd, m, &acked);
}

on_every_runtime!(
    a_full_stop_and_start_keeps_the_master_it_had,
    planned_switchover_is_left_alone,
    master_kill_promotes_a_replica,
    hung_master_is_replaced_and_demoted_when_it_returns,
    controller_killed_mid_failover_finishes_it,
    master_restarted_empty_never_wipes_replicas,
    three_chained_master_kills_end_with_one_master,
);
