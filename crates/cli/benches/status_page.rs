//! How fast the status page is with many redis: the server's answer to `GET /` (gathering every
//! pod's `INFO` and events, then rendering), the page's size, and a real browser loading and
//! rendering it, next to the anchors of the same browser loading an empty page and the page of
//! one redis, measured in the same run.
//!
//! Run with `cargo bench -p vd-cli --bench status_page` after `cargo build --release -p vd-cli`,
//! as root (the process runtime), with `redis-server`, `redis-cli` and `chromium`. It prints a
//! markdown section and appends it to docs/benchmarks.md. Tests never assert on speed; this
//! program only measures and reports. Knobs (environment): `VD_BENCH_UI_REDIS` (50),
//! `VD_BENCH_UI_RUNS` (10), `VD_BENCH_UI_DOCS=0` (print only).

mod common;
#[path = "common/ha.rs"]
#[allow(dead_code)]
mod ha;

use common::{env_num, ms, sleep, Bench, Setup};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const COMMAND: &str = "cargo bench -p vd-cli --bench status_page";

fn main() {
    common::main(
        &Setup {
            prefix: "vd-bench-ui-",
            programs: &["redis-server", "redis-cli", "chromium"],
            packages: "redis-server redis-tools chromium",
            shutdown_limit: Duration::from_secs(120),
        },
        run,
    );
}

fn manifest(scope: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("redis \"{scope}\" \"r{i}\" {{\n{}}}\n", ha::DATA_PROBES))
        .collect()
}

/// `GET /` over HTTP/1.0: (time to the whole answer, body bytes).
fn get(addr: &str) -> Result<(f64, usize), String> {
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    write!(s, "GET / HTTP/1.0\r\nHost: vd\r\n\r\n").map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let took = ms(t.elapsed());
    let body = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |i| resp.len() - i - 4);
    if !resp.starts_with(b"HTTP/1.0 200") && !resp.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "GET / answered {}",
            String::from_utf8_lossy(&resp[..resp.len().min(80)])
        ));
    }
    Ok((took, body))
}

/// Chromium, headless, loading `url` and printing its DOM: wall time in ms.
fn browser(url: &str) -> Result<f64, String> {
    let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
    let t = Instant::now();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("chromium: {e}"))?;
    let took = ms(t.elapsed());
    if !out.status.success() || out.stdout.is_empty() {
        return Err(format!("chromium could not load {url}"));
    }
    Ok(took)
}

fn p50(v: &[f64]) -> (f64, f64) {
    ha::p50_max(v.to_vec())
}

fn run(b: &Bench) -> Result<String, String> {
    let n = env_num("VD_BENCH_UI_REDIS", 50);
    let runs = env_num("VD_BENCH_UI_RUNS", 10);
    let started = Instant::now();
    // The server again, with the status page on a free port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let addr = format!("127.0.0.1:{port}");
    if let Some(mut c) = b.server.lock().map_err(|_| "server lock")?.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    b.spawn_server_with(&["--ui-addr", &addr], &[])?;
    b.wait_server()?;
    let url = format!("http://{addr}/");
    let empty = b.write(
        "empty.html",
        "<!doctype html><title>empty</title><p>empty</p>",
    )?;
    let mut rows = Vec::new();
    for (label, count) in [("1 redis (anchor)", 1usize), ("many", n)] {
        let scope = if count == 1 { "one" } else { "many" };
        let file = b.write(&format!("{scope}.hcl"), &manifest(scope, count))?;
        eprintln!("{label}: applying {count} redis");
        b.vd(&["apply", "-f", &file, "--timeout", "600s"])?;
        sleep(Duration::from_secs(2))?;
        let mut server = Vec::new();
        let mut size = 0;
        let mut chrome = Vec::new();
        let mut blank = Vec::new();
        for _ in 0..runs {
            let (t, bytes) = get(&addr)?;
            server.push(t);
            size = bytes;
            chrome.push(browser(&url)?);
            blank.push(browser(&format!("file://{empty}"))?);
        }
        let redis_on_page = b.json(&["get", "redis"])?.as_array().map_or(0, Vec::len);
        rows.push((
            if count == 1 {
                label.to_string()
            } else {
                format!("{count} redis")
            },
            redis_on_page,
            p50(&server),
            size,
            p50(&chrome),
            p50(&blank),
        ));
        if count == 1 {
            b.vd(&["delete", "-f", &file])?;
        }
    }
    let report = report(&rows, runs, started.elapsed());
    if std::env::var("VD_BENCH_UI_DOCS").as_deref() != Ok("0") {
        ha::append_to_docs(&report)?;
    }
    Ok(report)
}

type Row = (String, usize, (f64, f64), usize, (f64, f64), (f64, f64));

fn report(rows: &[Row], runs: usize, took: Duration) -> String {
    let mut s = ha::report_head(
        "Status page: load and render time (issue 21)",
        COMMAND,
        took,
    );
    s.push_str(&format!(
        "- One `vd server --ui-addr` (process runtime) with one-pod redis resources (readiness every 300 ms). Per row, {runs} rounds of: `GET /` over HTTP/1.0 (the server gathers every pod's `INFO`, sentinel and cluster reports and events, and renders the page), then headless Chromium loading the page and printing its DOM (`chromium --headless --dump-dom`, a fresh profile each time), then the same Chromium loading an empty local page (the anchor: the browser's own start-up and teardown, measured in the same rounds).\n\n"
    ));
    s.push_str("| page | redis listed | server answer p50 / max (ms) | page size | Chromium load + render p50 / max (ms) | Chromium, empty page p50 / max (ms) | page's own cost (p50 difference, ms) |\n");
    s.push_str("|---|---|---|---|---|---|---|\n");
    for (label, listed, server, size, chrome, blank) in rows {
        s.push_str(&format!(
            "| {label} | {listed} | {:.0} / {:.0} | {:.1} kB | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} |\n",
            server.0,
            server.1,
            *size as f64 / 1024.0,
            chrome.0,
            chrome.1,
            blank.0,
            blank.1,
            chrome.0 - blank.0
        ));
    }
    s.push('\n');
    s
}
