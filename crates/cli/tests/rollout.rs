//! Zero-downtime rollouts of a replicated redis, end to end: a conf change and `vd restart`
//! roll the replicas first, move the master to an up-to-date replica with a live switchover
//! (through the sentinels when they watch it), then replace the old master. Under a `WAIT`ing
//! writer to the master and another through the proxy: no acknowledged write lost, no
//! unplanned failover, and the proxy's client sees no error at all.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_every_runtime, Vd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

/// Three data pods with a proxy and fast readiness; `ha` is the failover block (or nothing,
/// with a sentinel sibling), `policy` goes into a conf.d file, so changing it rolls the pods.
fn manifest(ha: &str, policy: &str) -> String {
    format!(
        r#"
asset "data" "tuning" {{
  conf = "maxmemory-policy {policy}\n"
}}

redis "data" "cache" {{
  replicas = 3
  volumes  = ["${{asset.data.tuning.conf}}:/etc/redis/conf.d/tuning.conf:ro"]
  probes {{
    readiness {{
      exec {{ command = ["redis-cli", "-h", "${{VOODU_POD_IP}}", "ping"] }}
      period = "300ms"
    }}
  }}
  {ha}
  proxy {{}}
}}
"#
    )
}

/// `SET w:<i>` + `WAIT 1 500` back to back on what `connect` gives; an acknowledged write is
/// one `WAIT` counted a replica for. Counts errors (a refused connection is one).
struct Writer {
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Writer {
    fn start(
        prefix: &'static str,
        connect: impl Fn() -> Option<redis::Connection> + Send + 'static,
    ) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let (s, e) = (stop.clone(), errors.clone());
        let handle = std::thread::spawn(move || {
            let mut conn = None;
            let mut acked = Vec::new();
            let mut i = 0u64;
            while !s.load(Ordering::SeqCst) {
                if conn.is_none() {
                    conn = connect();
                }
                let Some(c) = conn.as_mut() else {
                    e.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                i += 1;
                let key = format!("{prefix}:{i}");
                let wrote: redis::RedisResult<i64> = redis::cmd("SET")
                    .arg(&key)
                    .arg(i)
                    .query::<()>(c)
                    .and_then(|_| redis::cmd("WAIT").arg(1).arg(500).query(c));
                match wrote {
                    Ok(n) if n >= 1 => acked.push(key),
                    Ok(_) => {}
                    Err(err) => {
                        if e.fetch_add(1, Ordering::SeqCst) < 5 {
                            eprintln!("{prefix} writer error: {err}");
                        }
                        conn = None;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
            acked
        });
        Writer {
            stop,
            errors,
            handle: Some(handle),
        }
    }

    fn stop(mut self) -> (Vec<String>, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let acked = self
            .handle
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (acked, self.errors.load(Ordering::SeqCst))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A connection to whichever data pod answers `ROLE` as master.
fn master_of(ips: &[String], pw: &str) -> Option<redis::Connection> {
    ips.iter().find_map(|ip| {
        let client = redis::Client::open(format!("redis://:{pw}@{ip}:6379/")).ok()?;
        let mut c = client
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).ok()?;
        matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master").then_some(c)
    })
}

/// Both writers: straight to the master, and through the proxy.
struct Writers {
    direct: Writer,
    proxied: Writer,
}

impl Writers {
    fn start(vd: &Vd) -> Writers {
        let pw = vd.cache_password();
        let ips: Vec<String> = (0..3).map(|o| vd.ip(&format!("data-cache.{o}"))).collect();
        let proxy = format!("redis://:{pw}@{}:6379/", vd.ip("data-cache-proxy.0"));
        let direct = Writer::start("direct", move || master_of(&ips, &pw));
        let proxied = Writer::start("proxied", move || {
            redis::Client::open(proxy.as_str())
                .ok()?
                .get_connection_with_timeout(Duration::from_secs(1))
                .ok()
        });
        // Both write before the rollout starts.
        std::thread::sleep(Duration::from_secs(1));
        Writers { direct, proxied }
    }

    /// Stops both; checks every acknowledged write is on the master and that the proxy's
    /// client saw no error.
    fn stop_and_check(self, vd: &Vd) {
        std::thread::sleep(Duration::from_secs(1));
        let (direct, direct_errors) = self.direct.stop();
        let (proxied, proxied_errors) = self.proxied.stop();
        eprintln!(
            "acknowledged: {} direct ({direct_errors} errors), {} through the proxy",
            direct.len(),
            proxied.len()
        );
        assert_eq!(proxied_errors, 0, "the proxy's client saw no error");
        assert!(direct.len() > 10 && proxied.len() > 10, "both wrote");
        let mut c = vd
            .cache_conn(vd.master_ordinal())
            .expect("the master answers");
        let mut lost = Vec::new();
        for chunk in direct.chunks(500).chain(proxied.chunks(500)) {
            let vals: Vec<Option<u64>> = redis::cmd("MGET").arg(chunk).query(&mut c).unwrap();
            lost.extend(
                chunk
                    .iter()
                    .zip(vals)
                    .filter(|(_, v)| v.is_none())
                    .map(|(k, _)| k.clone()),
            );
        }
        assert!(
            lost.is_empty(),
            "{} acknowledged writes lost: {:?}",
            lost.len(),
            &lost[..lost.len().min(20)]
        );
    }
}

fn count(vd: &Vd, reason: &str) -> usize {
    vd.events()
        .iter()
        .filter(|e| {
            e["reason"] == reason
                && e["resource"]["kind"] == "redis"
                && e["resource"]["name"] == "cache"
        })
        .count()
}

/// Every data pod ready, with a pid none of `before` had.
fn wait_all_replaced(vd: &Vd, before: &[u64]) {
    vd.wait_for("every data pod replaced and ready", T, || {
        (0..3).all(|o| {
            vd.pod(&format!("data-cache.{o}")).is_some_and(|p| {
                p["ready"] == true && p["pid"].as_u64().is_some_and(|x| !before.contains(&x))
            })
        })
    });
}

fn pids(vd: &Vd) -> Vec<u64> {
    (0..3).map(|o| vd.pid(&format!("data-cache.{o}"))).collect()
}

/// A conf change, then `vd restart`, each rolled under both writers; `moves` is the event a
/// master move records (`Handover` by the controller, `MasterSwitched` by the sentinels).
fn rolls_without_loss(ha: &str, extra: &str, moves: &str) {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("cache.hcl", &(manifest(ha, "noeviction") + extra)));
    if !extra.is_empty() {
        vd.wait_sentinels_healthy();
    }

    // ----- a conf change
    let before = pids(&vd);
    let writers = Writers::start(&vd);
    let out = vd.apply(&vd.manifest("cache.hcl", &(manifest(ha, "allkeys-lru") + extra)));
    assert!(
        !out.contains("note:"),
        "a replicated redis rolls with no downtime: {out}"
    );
    wait_all_replaced(&vd, &before);
    writers.stop_and_check(&vd);
    assert_eq!(count(&vd, moves), 1, "one planned master move");
    assert_eq!(count(&vd, "Failover"), 0, "no unplanned failover");
    let m = vd.master_ordinal();
    let mut c = vd.cache_conn(m).unwrap();
    let policy: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query(&mut c)
        .unwrap();
    assert_eq!(policy[1], "allkeys-lru", "the master runs the new conf");

    // ----- vd restart
    let before = pids(&vd);
    let writers = Writers::start(&vd);
    vd.vd(&["restart", "data/cache"]);
    wait_all_replaced(&vd, &before);
    vd.wait_for("the second master move recorded", T, || {
        count(&vd, moves) == 2
    });
    writers.stop_and_check(&vd);
    assert_eq!(count(&vd, "Failover"), 0, "no unplanned failover");
    assert_eq!(count(&vd, "HandoverFailed"), 0);
}

fn controller_failover_rolls_without_loss() {
    rolls_without_loss("failover { automatic = true }", "", "Handover");
}

fn sentinels_roll_without_loss() {
    rolls_without_loss("", common::SENTINEL_SIBLING, "MasterSwitched");
}

on_every_runtime!(
    controller_failover_rolls_without_loss,
    sentinels_roll_without_loss
);

/// A one-pod redis has nobody to hand over to: `vd apply` says its rollout has downtime.
#[test]
fn a_one_pod_rollout_says_it_has_downtime() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    let one = |policy: &str| {
        manifest("", policy)
            .replace("replicas = 3", "replicas = 1")
            .replace("  proxy {}\n", "")
    };
    let out = vd.apply(&vd.manifest("one.hcl", &one("noeviction")));
    assert!(
        !out.contains("note:"),
        "a first apply replaces nothing: {out}"
    );
    let out = vd.apply(&vd.manifest("one.hcl", &one("allkeys-lru")));
    assert!(
        out.contains("note: its one pod is replaced: clients are refused until it is back"),
        "{out}"
    );
    let json = vd.vd(&[
        "apply",
        "-f",
        &vd.manifest("one.hcl", &one("noeviction")),
        "-o",
        "json",
    ]);
    assert!(json.contains("its one pod is replaced"), "{json}");
}
