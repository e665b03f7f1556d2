//! Prometheus metrics: `vd server --metrics-addr` serves `/metrics` over TCP (and the API socket
//! serves it too), with per-pod gauges read from real redis-server pods at scrape time.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_every_runtime, Vd};
use std::io::{Read, Write};
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

const MANIFEST: &str = r#"
redis "data" "cache" {
  replicas = 2
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
"#;

/// A port nothing listens on right now (the kernel's pick for an ephemeral bind).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A plain HTTP/1.0 GET over `stream`: the status line and the body.
fn get(mut stream: impl Read + Write, path: &str) -> (String, String) {
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("send request");
    let mut resp = String::new();
    stream.read_to_string(&mut resp).expect("read response");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, body.to_string())
}

fn scrape_tcp(port: u16) -> String {
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (status, body) = get(s, "/metrics");
    assert!(status.contains(" 200 "), "{status}\n{body}");
    body
}

/// The value of the sample line starting with `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn replicated_pair_is_scraped_per_pod() {
    let _g = common::own_addresses();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let vd = Vd::start_with(&["--metrics-addr", &addr]);
    vd.apply(&vd.manifest("r.hcl", MANIFEST));

    // Ready pods may not have finished their initial sync; the gauges say so until they have.
    let mut text = String::new();
    vd.wait_for(
        "both pods up with one master and one linked replica",
        T,
        || {
            text = scrape_tcp(port);
            let up = |o: u32| {
                value(
                    &text,
                    &format!("vd_redis_up{{redis=\"data/cache\",pod=\"data-cache.{o}\"}}"),
                )
            };
            up(0) == Some(1.0)
                && up(1) == Some(1.0)
                && value(
                    &text,
                    "vd_redis_connected_replicas{redis=\"data/cache\",pod=\"data-cache.0\"}",
                ) == Some(1.0)
        },
    );

    assert_eq!(
        value(
            &text,
            "vd_redis_role{redis=\"data/cache\",pod=\"data-cache.0\",role=\"master\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "vd_redis_role{redis=\"data/cache\",pod=\"data-cache.1\",role=\"replica\"}"
        ),
        Some(1.0),
        "{text}"
    );
    let roles = text
        .lines()
        .filter(|l| l.starts_with("vd_redis_role{"))
        .count();
    assert_eq!(roles, 2, "one role line per pod:\n{text}");
    assert_eq!(
        value(
            &text,
            "vd_redis_replication_lag_bytes{redis=\"data/cache\",pod=\"data-cache.0\"}"
        ),
        Some(0.0),
        "the master lags nothing:\n{text}"
    );
    let lag = value(
        &text,
        "vd_redis_replication_lag_bytes{redis=\"data/cache\",pod=\"data-cache.1\"}",
    );
    assert!(lag.is_some_and(|l| l >= 0.0), "replica lag:\n{text}");
    for help in [
        "# HELP vd_redis_failovers ",
        "# TYPE vd_redis_failovers counter",
        "# HELP vd_redis_failover_duration_seconds ",
        "# HELP vd_controller_errors ",
        "# TYPE vd_controller_errors counter",
    ] {
        assert!(text.contains(help), "missing `{help}`:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
    // Sentinel pods are not data pods: none here, and no other redis was scraped.
    assert!(
        !text.contains("pod=\"data-cache.2\""),
        "only existing pods:\n{text}"
    );

    // The TCP listener serves nothing but /metrics.
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (status, _) = get(s, "/v1/resources");
    assert!(status.contains(" 404 "), "{status}");

    // The API socket serves the same exposition.
    let s = std::os::unix::net::UnixStream::connect(vd.path().join("vd.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (status, body) = get(s, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        body.contains("vd_redis_up{redis=\"data/cache\",pod=\"data-cache.1\"}"),
        "{body}"
    );
}

fn metrics_listener_is_off_by_default_and_a_busy_address_fails_the_server() {
    let _g = common::own_addresses();
    // A busy address: `vd server` exits with an error before starting anything.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let root = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["server", "--runtime", common::runtime(), "--root"])
        .arg(root.path())
        .args(["--metrics-addr", &addr])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run vd server");
    assert!(!out.status.success(), "a busy metrics address must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr), "names the address: {err}");
    assert!(
        !root.path().join("vd.sock").exists(),
        "nothing was started: {err}"
    );

    // Without the flag, only the socket serves metrics.
    let vd = Vd::start();
    let s = std::os::unix::net::UnixStream::connect(vd.path().join("vd.sock")).unwrap();
    let (status, body) = get(s, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    assert!(body.contains("# HELP vd_redis_up "), "{body}");
}

on_every_runtime!(
    replicated_pair_is_scraped_per_pod,
    metrics_listener_is_off_by_default_and_a_busy_address_fails_the_server,
);
