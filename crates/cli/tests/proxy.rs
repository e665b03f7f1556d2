//! The redis macro's `proxy {}` block, end to end: `<name>-proxy` pods running
//! `vd proxy`, links on the proxy that no failover rewrites, a planned failover under a
//! writer with no client error and no lost acknowledged write, and a master kill that shows
//! errors only until the controller promotes a replica.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_every_runtime, Vd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

fn manifest() -> String {
    r#"
redis "data" "cache" {
  replicas = 3
  probes {
    readiness {
      exec { command = ["redis-cli", "-h", "${VOODU_POD_IP}", "ping"] }
      period = "300ms"
    }
  }
  failover { automatic = true }
  proxy {}
}

deployment "a" "web" {
  image   = "redis:7-alpine"
  command = ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do redis-cli -u \"$REDIS_URL\" ping && break; sleep 0.5; done; exec sleep 1000"]
}
"#
    .to_string()
}

/// `SET w:<i>` + `WAIT 1 500` back-to-back through the proxy's master port; counts errors.
struct Writer {
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<Vec<u64>>>,
}

impl Writer {
    fn start(url: String) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let (s, e) = (stop.clone(), errors.clone());
        let handle = std::thread::spawn(move || {
            let client = redis::Client::open(url).expect("proxy url");
            let mut conn = None;
            let mut acked = Vec::new();
            let mut i = 0u64;
            while !s.load(Ordering::SeqCst) {
                if conn.is_none() {
                    conn = client
                        .get_connection_with_timeout(Duration::from_secs(1))
                        .ok();
                }
                let Some(c) = conn.as_mut() else {
                    e.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
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
                    Err(err) => {
                        if e.fetch_add(1, Ordering::SeqCst) < 5 {
                            eprintln!("writer error: {err}");
                        }
                        if err.is_io_error() || err.is_connection_dropped() {
                            conn = None;
                        }
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

    fn errors(&self) -> u64 {
        self.errors.load(Ordering::SeqCst)
    }

    fn stop(mut self) -> (Vec<u64>, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let acked = self
            .handle
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (acked, self.errors())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Every acknowledged write is on the master `m`.
fn all_on(vd: &Vd, m: u32, acked: &[u64]) {
    let mut c = vd.cache_conn(m).expect("the master answers");
    for i in acked {
        let v: Option<u64> = redis::cmd("GET")
            .arg(format!("w:{i}"))
            .query(&mut c)
            .unwrap();
        assert_eq!(v, Some(*i), "acknowledged write w:{i} is on the master");
    }
}

/// `/metrics` of the proxy pod at `ip`.
fn scrape(ip: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect((ip, vd_core::redis::proxy::PROXY_METRICS_PORT))
        .expect("connect to the proxy's metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: proxy\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}

fn proxy_follows_failovers() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("p.hcl", &manifest()));
    let listed = vd.vd(&["get"]);
    assert!(listed.contains("cache-proxy"), "{listed}");
    let pw = vd.cache_password();

    // The default link of a redis with a proxy names the proxy, on both ports.
    vd.vd(&["redis:link", "data/cache", "a/web"]);
    let url = vd.vd(&["config", "a/web", "get", "REDIS_URL"]);
    assert_eq!(
        url.trim(),
        format!("redis://default:{pw}@cache-proxy.data.voodu:6379")
    );
    assert_eq!(
        vd.vd(&["config", "a/web", "get", "REDIS_READ_URL"]).trim(),
        format!("redis://default:{pw}@cache-proxy.data.voodu:6380")
    );
    vd.wait_for("the consumer's PONG through the proxy", T, || {
        vd.vd(&["logs", "a/web"]).contains("PONG")
    });
    let consumer_pid = vd.pid("a-web.0");

    // Reads on 6380 reach a replica.
    let proxy_ip = vd.ip("data-cache-proxy.0");
    vd.wait_for("the read port to reach a replica", T, || {
        let url = format!("redis://:{pw}@{proxy_ip}:6380/");
        redis::Client::open(url)
            .ok()
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)).ok())
            .and_then(|mut c| redis::cmd("ROLE").query::<Vec<redis::Value>>(&mut c).ok())
            .is_some_and(
                |v| matches!(v.first(), Some(redis::Value::BulkString(b)) if b == b"slave"),
            )
    });

    // Planned: the proxy holds commands while vd promotes; the client sees no error.
    let writer = Writer::start(format!("redis://:{pw}@{proxy_ip}:6379/"));
    std::thread::sleep(Duration::from_millis(800));
    let out = vd.vd(&["redis:failover", "data/cache", "--replica", "1"]);
    assert!(out.contains('1'), "{out}");
    std::thread::sleep(Duration::from_millis(800));
    let (acked, errors) = writer.stop();
    assert!(acked.len() > 20, "the writer wrote ({})", acked.len());
    assert_eq!(
        errors, 0,
        "a planned failover through the proxy shows no error"
    );
    assert_eq!(vd.master_ordinal(), 1);
    all_on(&vd, 1, &acked);

    // Unplanned: errors only until the controller promotes; then none, and nothing lost.
    let writer = Writer::start(format!("redis://:{pw}@{proxy_ip}:6379/"));
    std::thread::sleep(Duration::from_millis(800));
    vd.signal_pod("data-cache.1", "-9");
    vd.wait_for("a new master", T, || vd.master_ordinal() != 1);
    std::thread::sleep(Duration::from_millis(500));
    let settled = writer.errors();
    std::thread::sleep(Duration::from_millis(1500));
    let (acked, errors) = writer.stop();
    eprintln!("errors during the unplanned failover: {errors}");
    assert_eq!(errors, settled, "no error once the new master is promoted");
    let m = vd.master_ordinal();
    all_on(&vd, m, &acked);

    // The proxy's metrics: what it forwarded, and the two master switches it followed.
    let metrics = scrape(&proxy_ip);
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} in:\n{metrics}"))
    };
    assert!(value("vd_proxy_commands_total{port=\"master\"}") > 20.0);
    assert!(value("vd_proxy_connections_total{port=\"master\"}") >= 2.0);
    assert!(value("vd_proxy_connections_total{port=\"read\"}") >= 1.0);
    assert!(value("vd_proxy_master_switches_total") >= 2.0);
    assert!(value("vd_proxy_holds_total") >= 1.0);
    assert!(value("vd_proxy_hold_seconds_total") > 0.0);
    value("vd_proxy_upstream_errors_total{port=\"master\"}");
    assert!(!metrics.contains(&pw), "no secret in the metrics");

    // The link named the proxy, so neither failover touched the consumer.
    assert_eq!(vd.vd(&["config", "a/web", "get", "REDIS_URL"]), url);
    assert_eq!(
        vd.pid("a-web.0"),
        consumer_pid,
        "the consumer was not restarted"
    );

    // Without the block the proxy goes away.
    let without = manifest().replace("  proxy {}\n", "");
    vd.apply(&vd.manifest("p.hcl", &without));
    vd.wait_for("the proxy to be removed", T, || {
        vd.pod("data-cache-proxy.0").is_none()
    });
    // The default link no longer names the proxy.
    let m = vd.master_ordinal();
    assert_eq!(
        vd.vd(&["config", "a/web", "get", "REDIS_URL"]).trim(),
        format!("redis://default:{pw}@cache-{m}.data.voodu:6379")
    );
}

/// With a sentinel sibling the proxy follows the sentinels' failover (and the controller's
/// record of it): after a master kill the writer recovers through the same address.
fn proxy_follows_sentinels() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    let text =
        manifest().replace("  failover { automatic = true }\n", "") + common::SENTINEL_SIBLING;
    vd.apply(&vd.manifest("s.hcl", &text));
    let pw = vd.cache_password();
    let proxy_ip = vd.ip("data-cache-proxy.0");
    // Sentinels learn the replicas from the master's INFO every 10 s: one killed sooner
    // has no replica to promote (`-failover-abort-no-good-slave`).
    vd.wait_sentinels_healthy();
    let writer = Writer::start(format!("redis://:{pw}@{proxy_ip}:6379/"));
    std::thread::sleep(Duration::from_millis(800));
    vd.signal_pod("data-cache.0", "-9");
    vd.wait_for("the sentinels' new master", T, || vd.master_ordinal() != 0);
    std::thread::sleep(Duration::from_millis(1500));
    let settled = writer.errors();
    std::thread::sleep(Duration::from_millis(1500));
    let (acked, errors) = writer.stop();
    eprintln!("errors during the sentinel failover: {errors}");
    assert_eq!(errors, settled, "no error once the sentinels promoted");
    assert!(!acked.is_empty());
    all_on(&vd, vd.master_ordinal(), &acked);
    // No proxy block, no proxy link.
    let err = vd.vd_fails(&["redis:link", "data/cache-ha", "a/web", "--proxy"]);
    assert!(err.contains("sentinel sibling"), "{err}");
}

/// A password rotation reaches the proxy too: after it, a master that restarted (the proxy's
/// `ROLE` check reconnects to it) is still confirmed and followed when it is promoted again.
fn proxy_follows_after_a_password_rotation() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("p.hcl", &manifest()));
    let proxy_ip = vd.ip("data-cache-proxy.0");
    vd.vd(&["redis:new-password", "data/cache"]);
    let pw = vd.cache_password();
    // Pod 0 restarts: every connection to it is new from here on.
    vd.signal_pod("data-cache.0", "-9");
    vd.wait_for("a new master", T, || vd.master_ordinal() != 0);
    vd.wait_for("pod 0 back and ready", T, || {
        vd.pod("data-cache.0").is_some_and(|p| p["ready"] == true)
    });
    vd.vd(&["redis:failover", "data/cache", "--replica", "0"]);
    assert_eq!(vd.master_ordinal(), 0);
    let url = format!("redis://:{pw}@{proxy_ip}:6379/");
    vd.wait_for("a write through the proxy to land on pod 0", T, || {
        let wrote = redis::Client::open(url.as_str())
            .ok()
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)).ok())
            .and_then(|mut c| {
                redis::cmd("SET")
                    .arg("after-rotation")
                    .arg("1")
                    .query::<String>(&mut c)
                    .ok()
            });
        wrote.is_some()
            && vd.cache_conn(0).is_some_and(|mut c| {
                redis::cmd("EXISTS")
                    .arg("after-rotation")
                    .query::<i64>(&mut c)
                    .ok()
                    == Some(1)
            })
    });
}

on_every_runtime!(
    proxy_follows_failovers,
    proxy_follows_sentinels,
    proxy_follows_after_a_password_rotation,
);
