//! What a rollout costs a redis's clients: the write gap while a conf change replaces every
//! pod, straight to the master and through the proxy, for each HA mode, next to the anchor of
//! a one-pod redis (no replica to hand the master to, so its rollout is downtime), all measured
//! in the same run on one server.
//!
//! Run with `cargo bench -p vd-cli --bench rollout` after `cargo build --release -p vd-cli`, as
//! root (the process runtime), with `redis-server` and `redis-cli`. It prints a markdown
//! section and appends it to docs/benchmarks.md. Tests never assert on speed; this program
//! only measures and reports.
//!
//! Three redis in their own scopes, each with `proxy {}` and readiness every 300 ms:
//! - `ctl`: 3 pods, `failover { automatic = true }`;
//! - `sen`: 3 pods watched by a 3-sentinel sibling;
//! - `one`: 1 pod (the anchor).
//!
//! Each gets R rollouts, each a change of a conf.d file's content (`maxmemory-policy`) applied
//! with `vd apply` (which returns once every pod runs it and is ready). Meanwhile two writers
//! run, one to whichever pod answers `ROLE` master (finding it again after an error) and one
//! through the proxy, each sending `SET` + `WAIT 1 100` back to back (`SET` alone for `one`,
//! which has no replica to wait for). Measured per rollout and writer: the longest time
//! between two acknowledged writes, the errors seen, and at the end every acknowledged write
//! is looked up on the master. Knobs (environment): `VD_BENCH_ROLLOUTS` (5),
//! `VD_BENCH_ROLLOUT_DOCS=0` (print only).

mod common;
#[path = "common/ha.rs"]
#[allow(dead_code)]
mod ha;
#[path = "common/writers.rs"]
#[allow(dead_code)]
mod writers;

use common::{env_num, ms, sleep, Bench, Setup};
use std::sync::Arc;
use std::time::{Duration, Instant};
use writers::{client, master_of, Writer};

const COMMAND: &str = "cargo bench -p vd-cli --bench rollout";

fn main() {
    common::main(
        &Setup {
            prefix: "vd-bench-rollout-",
            programs: &["redis-server", "redis-cli", "redis-sentinel"],
            packages: "redis-server redis-sentinel redis-tools",
            shutdown_limit: Duration::from_secs(60),
        },
        run,
    );
}

/// One redis measured.
struct Mode {
    scope: &'static str,
    what: &'static str,
    pods: u32,
    sentinels: bool,
}

const MODES: [Mode; 3] = [
    Mode {
        scope: "ctl",
        what: "3 pods, controller failover",
        pods: 3,
        sentinels: false,
    },
    Mode {
        scope: "sen",
        what: "3 pods, sentinels",
        pods: 3,
        sentinels: true,
    },
    Mode {
        scope: "one",
        what: "1 pod (anchor: no handover possible)",
        pods: 1,
        sentinels: false,
    },
];

fn manifest(m: &Mode, policy: &str) -> String {
    let scope = m.scope;
    let (asset, extra) = ha::tuned(scope, policy);
    if m.sentinels {
        return asset + &ha::sentinel_pair(scope, 1000, &extra);
    }
    let failover = if m.pods > 1 {
        "  failover { automatic = true }\n"
    } else {
        ""
    };
    format!(
        "{asset}redis \"{scope}\" \"cache\" {{\n  replicas = {}\n{}{failover}{extra}}}\n",
        m.pods,
        ha::DATA_PROBES
    )
}

/// One rollout's figures.
struct Rolled {
    took: f64,
    direct_gap: f64,
    direct_errors: u64,
    proxy_gap: f64,
    proxy_errors: u64,
}

fn pod_ip(b: &Bench, name: &str) -> Result<String, String> {
    let pods = b.json(&["get", "pods"])?;
    pods.as_array()
        .and_then(|a| a.iter().find(|p| p["pod"] == name))
        .and_then(|p| p["ip"].as_str().map(str::to_string))
        .ok_or_else(|| format!("no pod {name}"))
}

fn run(b: &Bench) -> Result<String, String> {
    let rollouts = env_num("VD_BENCH_ROLLOUTS", 5);
    let started = Instant::now();
    let mut results = Vec::new();
    for m in &MODES {
        let file = b.write(&format!("{}.hcl", m.scope), &manifest(m, "noeviction"))?;
        b.vd(&["apply", "-f", &file, "--timeout", "180s"])?;
        let r = format!("{}/cache", m.scope);
        if m.sentinels {
            // Sentinels learn the replicas from the master's INFO every 10 s.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !b.json(&["redis:info", &r])?["sentinels"]["healthy"]
                .as_bool()
                .unwrap_or(false)
            {
                if Instant::now() > deadline {
                    return Err("the sentinels did not become healthy".into());
                }
                sleep(Duration::from_millis(500))?;
            }
        }
        let pw = b
            .vd(&["config", &r, "get", "REDIS_PASSWORD"])?
            .trim()
            .to_string();
        let ips: Vec<String> = (0..m.pods)
            .map(|o| pod_ip(b, &format!("{}-cache.{o}", m.scope)))
            .collect::<Result<_, _>>()?;
        let proxy = pod_ip(b, &format!("{}-cache-proxy.0", m.scope))?;
        let mut rolled = Vec::new();
        let mut acked = Vec::new();
        for n in 0..rollouts {
            sleep(Duration::from_secs(2))?;
            let wait = m.pods > 1;
            let (ips2, pw2) = (ips.clone(), pw.clone());
            let direct = Writer::start(
                format!("d{n}"),
                wait,
                Duration::ZERO,
                Arc::new(move || master_of(&ips2, &pw2)),
            );
            let (proxy2, pw3) = (proxy.clone(), pw.clone());
            let proxied = Writer::start(
                format!("p{n}"),
                wait,
                Duration::ZERO,
                Arc::new(move || client(&proxy2, &pw3)),
            );
            sleep(Duration::from_secs(1))?;
            let policy = if n % 2 == 0 {
                "allkeys-lru"
            } else {
                "noeviction"
            };
            let file = b.write(&format!("{}.hcl", m.scope), &manifest(m, policy))?;
            let t = Instant::now();
            b.vd(&["apply", "-f", &file, "--timeout", "180s"])?;
            let took = ms(t.elapsed());
            sleep(Duration::from_secs(1))?;
            let (direct_gap, direct_errors, dk) = direct.stop();
            let (proxy_gap, proxy_errors, pk) = proxied.stop();
            eprintln!(
                "{} rollout {n}: {took:.0} ms; direct gap {direct_gap:.0} ms ({direct_errors} errors), proxy gap {proxy_gap:.0} ms ({proxy_errors} errors)",
                m.scope
            );
            acked.extend(dk);
            acked.extend(pk);
            rolled.push(Rolled {
                took,
                direct_gap,
                direct_errors,
                proxy_gap,
                proxy_errors,
            });
        }
        let mut c = master_of(&ips, &pw).ok_or("no master after the rollouts")?;
        let lost = writers::missing(&mut c, &acked)?.len();
        let events = b.json(&["events", "--limit", "10000"])?;
        let count = |reason: &str| {
            events.as_array().map_or(0, |a| {
                a.iter()
                    .filter(|e| e["reason"] == reason && e["resource"]["scope"] == m.scope)
                    .count()
            })
        };
        let failovers = count("Failover");
        let moves = count("Handover") + count("MasterSwitched");
        let retried = count("HandoverFailed");
        for e in events.as_array().into_iter().flatten() {
            if e["reason"] == "HandoverFailed" && e["resource"]["scope"] == m.scope {
                eprintln!("{}: {}", m.scope, e["message"]);
            }
        }
        results.push((m, rolled, acked.len(), lost, failovers, (moves, retried)));
    }
    let report = report(&results, rollouts, started.elapsed());
    if std::env::var("VD_BENCH_ROLLOUT_DOCS").as_deref() != Ok("0") {
        ha::append_to_docs(&report)?;
    }
    Ok(report)
}

type Result6<'a> = (&'a Mode, Vec<Rolled>, usize, usize, usize, (usize, usize));

fn report(results: &[Result6<'_>], rollouts: usize, took: Duration) -> String {
    let mut s = ha::report_head(
        "Rollouts: the write gap while every pod is replaced (issue 20)",
        COMMAND,
        took,
    );
    s.push_str(&format!(
        "- Three redis on one `vd server` (process runtime), each with `proxy {{}}` and readiness every 300 ms: 3 pods with controller failover, 3 pods with a 3-sentinel sibling, and the anchor, 1 pod (no replica to hand the master to). Each gets {rollouts} rollouts: a conf.d file's content changed and applied with `vd apply`, which returns once every pod runs it and is ready. Two writers run meanwhile, one to the pod that answers `ROLE` master (finding it again after an error) and one through the proxy, each `SET` + `WAIT 1 100` back to back (`SET` alone for the 1-pod redis).\n"
    ));
    s.push_str("- Gap: the longest time between two acknowledged writes of a writer during a rollout (from 1 s before `vd apply` to 1 s after it returned). Errors: commands that failed (a refused connection counts once per attempt, every 5 ms). Lost: acknowledged writes missing on the master at the end. Moves: `Handover`/`MasterSwitched` events; retried: `HandoverFailed` events (the rollout waited and tried again); unplanned: `Failover` events.\n\n");
    s.push_str("| redis | rollout time p50 / max (ms) | direct: gap p50 / max (ms) | direct errors | proxy: gap p50 / max (ms) | proxy errors | acknowledged / lost | master moves / retried / unplanned failovers |\n");
    s.push_str("|---|---|---|---|---|---|---|---|\n");
    for (m, rolled, acked, lost, failovers, (moves, retried)) in results {
        let (t50, tmax) = ha::p50_max(rolled.iter().map(|r| r.took).collect());
        let (d50, dmax) = ha::p50_max(rolled.iter().map(|r| r.direct_gap).collect());
        let (p50, pmax) = ha::p50_max(rolled.iter().map(|r| r.proxy_gap).collect());
        let de: u64 = rolled.iter().map(|r| r.direct_errors).sum();
        let pe: u64 = rolled.iter().map(|r| r.proxy_errors).sum();
        s.push_str(&format!(
            "| {} | {t50:.0} / {tmax:.0} | {d50:.0} / {dmax:.0} | {de} | {p50:.0} / {pmax:.0} | {pe} | {acked} / {lost} | {moves} / {retried} / {failovers} |\n",
            m.what
        ));
    }
    s.push('\n');
    s
}
