//! The status page (`vd server --ui-addr`), loaded in a real headless browser (Debian's
//! `chromium`): the demo's manifest with its redis watched by sentinels, beside a redis with a
//! proxy, after a controller failover of the latter:
//! every pod is shown with its role, each topology is an SVG picture, the failover is on the
//! timeline, and no secret is on the page. A busy address fails the server before it starts.
//!
//! With `VD_STATUS_SCREENSHOT=PATH` the test also saves a screenshot of the page there (the
//! README's picture is made this way).

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_every_runtime, Vd};
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

const PROBES: &str = r#"
  probes {
    readiness {
      exec { command = ["redis-cli", "-h", "${VOODU_POD_IP}", "ping"] }
      period = "300ms"
    }
  }
"#;

/// The demo's manifest (`examples/replicated-redis.hcl`: `data/cache` and its app), its redis
/// watched by a sentinel sibling, beside a redis with controller failover and a proxy
/// (`data/fast`).
fn manifest() -> String {
    let demo = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/replicated-redis.hcl"),
    )
    .expect("the demo manifest");
    format!(
        "{demo}\n{}\nredis \"data\" \"fast\" {{\n  replicas = 3\n  failover {{ automatic = true }}\n  proxy {{}}\n{PROBES}}}\n",
        common::SENTINEL_SIBLING
    )
}

/// Chromium, headless; `args` say what to do with `url`.
fn chromium(args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("chromium (Debian's `chromium` package; ./scripts/setup installs it)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status_page_after_a_failover() {
    let _g = common::own_addresses();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let vd = Vd::start_with(&["--ui-addr", &addr]);
    vd.apply(&vd.manifest("status.hcl", &manifest()));
    vd.wait_sentinels_healthy();
    vd.signal_pod("data-fast.0", "-9");
    vd.wait_for("the controller's failover", T, || {
        vd.events()
            .iter()
            .any(|e| e["reason"] == "Failover" && e["resource"]["name"] == "fast")
    });
    let fast_master: u32 = vd
        .vd(&["config", "data/fast", "get", "REDIS_MASTER_ORDINAL"])
        .trim()
        .parse()
        .unwrap();
    vd.wait_for("the old master back as a replica", T, || {
        vd.pod("data-fast.0").is_some_and(|p| p["ready"] == true)
    });

    let url = format!("http://{addr}/");
    let dom = chromium(&["--dump-dom"], &url);
    // Every pod with its role, in words.
    for o in 0..3 {
        let role = if o == fast_master {
            "MASTER"
        } else {
            "replica"
        };
        assert!(
            dom.contains(&format!("<td>fast-{o}</td><td>{role}</td>")),
            "fast-{o} as {role}: {dom}"
        );
        let role = if o == 0 { "MASTER" } else { "replica" };
        assert!(
            dom.contains(&format!("<td>cache-{o}</td><td>{role}</td>")),
            "cache-{o} as {role}: {dom}"
        );
    }
    // The topology as SVG: sentinels naming the master, the proxy pointing at it.
    assert_eq!(dom.matches("<svg class=\"topology\"").count(), 2, "{dom}");
    for o in 0..3 {
        assert!(dom.contains(&format!(">cache-ha-{o}</text>")), "{dom}");
    }
    assert!(dom.contains("names cache-0"), "{dom}");
    assert!(dom.contains(">data-fast-proxy.0</text>"), "{dom}");
    assert!(dom.contains(&format!("to fast-{fast_master}")), "{dom}");
    // The demo's app among the other workloads.
    assert!(dom.contains("<td>deployment/web/app</td>"), "{dom}");
    // The failover on fast's timeline, with its timings.
    let fast = dom
        .split("id=\"redis-data-fast\"")
        .nth(1)
        .expect("a section for data/fast");
    assert!(
        fast.contains("<b>Failover</b>") && fast.contains(&format!("-&gt; cache-{fast_master}"))
            || fast.contains(&format!("fast-0 -&gt; fast-{fast_master}")),
        "the failover on the timeline: {fast}"
    );
    // No secret: neither redis's password nor the sentinels'.
    for (r, var) in [
        ("data/cache", "REDIS_PASSWORD"),
        ("data/fast", "REDIS_PASSWORD"),
        ("data/cache-ha", "REDIS_SENTINEL_PASSWORD"),
    ] {
        let secret = vd.vd(&["config", r, "get", var]).trim().to_string();
        assert!(secret.len() >= 16, "{r} {var}");
        assert!(!dom.contains(&secret), "{r}'s {var} is on the page");
        let fragment = fetch(&addr, "/fragment");
        assert!(
            !fragment.contains(&secret),
            "{r}'s {var} is in the fragment"
        );
    }
    assert!(
        !dom.contains("redis://") && !dom.contains("rediss://"),
        "no URL"
    );

    // Live: the page fetches its live part again and swaps it in (the script marks `#live`
    // with an empty class once it has), without a reload.
    let later = chromium(&["--virtual-time-budget=6000", "--dump-dom"], &url);
    assert!(later.contains(r#"id="live" class="">live"#), "{later}");
    assert!(later.contains("<td>fast-0</td>"), "{later}");
    // A page whose server does not answer says so: the same page, opened from a file.
    let saved = vd.root.path().join("saved.html");
    std::fs::write(&saved, fetch(&addr, "/").split_once("\r\n\r\n").unwrap().1).unwrap();
    let offline = chromium(
        &["--virtual-time-budget=6000", "--dump-dom"],
        &format!("file://{}", saved.display()),
    );
    assert!(
        offline.contains(r#"class="stale">the vd server is not answering"#),
        "{offline}"
    );

    let png = vd.root.path().join("status.png");
    chromium(
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,1800",
            "--hide-scrollbars",
        ],
        &url,
    );
    let bytes = std::fs::read(&png).expect("the screenshot");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    if let Ok(to) = std::env::var("VD_STATUS_SCREENSHOT") {
        std::fs::copy(&png, &to).expect("copy the screenshot");
    }
}

/// `GET path` on `addr` over HTTP/1.0: the body.
fn fetch(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("the status page");
    write!(s, "GET {path} HTTP/1.0\r\nHost: vd\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.0 200") || resp.starts_with("HTTP/1.1 200"),
        "{resp}"
    );
    resp
}

/// A busy `--ui-addr` fails `vd server` before anything starts.
#[test]
fn a_busy_ui_address_fails_the_server() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(common::bin())
        .args(["server", "--root"])
        .arg(root.path())
        .args(["--ui-addr", &addr])
        .stdin(Stdio::null())
        .output()
        .expect("run vd server");
    assert!(!out.status.success(), "a busy address must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr) && err.contains("status page"), "{err}");
    assert!(
        !root.path().join("vd.sock").exists(),
        "nothing started: {err}"
    );
}

on_every_runtime!(status_page_after_a_failover);
