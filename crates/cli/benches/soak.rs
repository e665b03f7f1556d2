//! A chaos soak: two replicated redis (controller failover; a sentinel sibling), each behind a
//! proxy, under `WAIT`ing writers and readers, while faults drawn from a seeded list hit them
//! one after another for a given time. Reports per fault class and HA mode: how often it ran,
//! the write gap it caused, how long until everything settled, acknowledged writes lost,
//! spurious master moves, two masters seen at once, and states that never settled (that would
//! need a human).
//!
//! Run with `cargo bench -p vd-cli --bench soak` after `cargo build --release -p vd-cli`, as
//! root (the process runtime), with `redis-server`, `redis-cli` and `redis-sentinel`. It
//! prints a markdown section and appends it to docs/benchmarks.md. Tests never assert on
//! speed; this program only measures and reports. Knobs (environment): `VD_SOAK_MINUTES`
//! (30), `VD_SOAK_SEED` (the clock's milliseconds; printed, so a run can be repeated),
//! `VD_SOAK_DOCS=0` (print only).
//!
//! The redis (one `vd server`, process runtime, readiness every 300 ms):
//! - `ctl`: 3 pods, `failover { automatic = true  down_after = "1s" }`, `proxy {}`;
//! - `sen`: 3 pods watched by 3 sentinels (`down-after-milliseconds` 1000), `proxy {}`.
//!
//! Each has a writer straight to the pod answering `ROLE` master and one through its proxy,
//! each `SET` + `WAIT 1 100` every 2 ms, and a reader through the proxy that reads the direct
//! writer's latest acknowledged key back. A watcher asks every data pod `ROLE` every 200 ms
//! and counts the times two answer master.
//!
//! A round: wait until both redis have settled (one master, both replicas following it with
//! the link up, the sentinels healthy and agreeing, the store naming it); a pause of 2 to 6 s;
//! the fault; wait until both have settled again and every writer of the redis hit has
//! written since the fault; then look up every write acknowledged since the previous round on
//! the master and count the master moves in the event log. At the end every write
//! acknowledged during the whole run is looked up once more.

mod common;
#[path = "common/ha.rs"]
#[allow(dead_code)]
mod ha;
#[path = "common/writers.rs"]
#[allow(dead_code)]
mod writers;

use common::{env_num, ms, sleep, Bench, Setup};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use writers::{client, longest_gap, master_of, Connector, Reader, Writer};

const COMMAND: &str = "cargo bench -p vd-cli --bench soak";
const DOWN_AFTER_MS: u64 = 1000;
/// Pause between two writes of a writer: keeps a half-hour run's dataset small.
const PACE: Duration = Duration::from_millis(2);
/// How long a SIGSTOP lasts: well past `down_after`, so a stopped master is failed over.
const STOP_FOR: Duration = Duration::from_secs(3);
/// A stop shorter than `down_after`: a master stopped this long must not be failed over.
const BLIP_FOR: Duration = Duration::from_millis(400);
/// A fault after which a redis has not settled within this long is reported as stuck.
const STUCK_AFTER: Duration = Duration::from_secs(180);
/// How long the soak waits for a stuck redis before it gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(600);

fn main() {
    common::main(
        &Setup {
            prefix: "vd-bench-soak-",
            programs: &["redis-server", "redis-cli", "redis-sentinel"],
            packages: "redis-server redis-sentinel redis-tools",
            shutdown_limit: Duration::from_secs(90),
        },
        run,
    );
}

/// One HA mode measured.
struct Mode {
    scope: &'static str,
    what: &'static str,
    sentinels: bool,
}

const MODES: [Mode; 2] = [
    Mode {
        scope: "ctl",
        what: "controller failover + proxy",
        sentinels: false,
    },
    Mode {
        scope: "sen",
        what: "sentinels + proxy",
        sentinels: true,
    },
];

fn manifest(m: &Mode, policy: &str) -> String {
    let scope = m.scope;
    let (asset, extra) = ha::tuned(scope, policy);
    if m.sentinels {
        return asset + &ha::sentinel_pair(scope, DOWN_AFTER_MS, &extra);
    }
    format!(
        "{asset}redis \"{scope}\" \"{}\" {{\n  replicas = {}\n  failover {{\n    automatic  = true\n    down_after = \"{DOWN_AFTER_MS}ms\"\n  }}\n{}{extra}}}\n",
        ha::DATA,
        ha::NODES,
        ha::DATA_PROBES
    )
}

/// The faults, drawn uniformly from those that fit the redis drawn.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Fault {
    KillMaster,
    StopMaster,
    BlipMaster,
    KillReplica,
    StopReplica,
    KillSentinel,
    StopSentinel,
    KillProxy,
    StopProxy,
    ChainedKills,
    Rollout,
    KillController,
    StopController,
    StopEverything,
}

impl Fault {
    const ALL: [Fault; 14] = [
        Fault::KillMaster,
        Fault::StopMaster,
        Fault::BlipMaster,
        Fault::KillReplica,
        Fault::StopReplica,
        Fault::KillSentinel,
        Fault::StopSentinel,
        Fault::KillProxy,
        Fault::StopProxy,
        Fault::ChainedKills,
        Fault::Rollout,
        Fault::KillController,
        Fault::StopController,
        Fault::StopEverything,
    ];

    fn label(self) -> &'static str {
        match self {
            Fault::KillMaster => "`kill -9` master",
            Fault::StopMaster => "SIGSTOP master 3 s",
            Fault::BlipMaster => "SIGSTOP master 0.4 s (below down_after)",
            Fault::KillReplica => "`kill -9` replica",
            Fault::StopReplica => "SIGSTOP replica 3 s",
            Fault::KillSentinel => "`kill -9` sentinel",
            Fault::StopSentinel => "SIGSTOP sentinel 3 s",
            Fault::KillProxy => "`kill -9` proxy",
            Fault::StopProxy => "SIGSTOP proxy 3 s",
            Fault::ChainedKills => "chained: master, then the new master",
            Fault::Rollout => "rollout (conf change)",
            Fault::KillController => "`kill -9` controller, restarted",
            Fault::StopController => "SIGSTOP controller 3 s",
            Fault::StopEverything => "everything stopped and started",
        }
    }

    /// Whether it hits every redis at once (the controller, everything).
    fn global(self) -> bool {
        matches!(
            self,
            Fault::KillController | Fault::StopController | Fault::StopEverything
        )
    }

    fn fits(self, m: &Mode) -> bool {
        m.sentinels || !matches!(self, Fault::KillSentinel | Fault::StopSentinel)
    }

    /// Whether the master is meant to move: then a master move is not spurious. A rollout
    /// moves it by a planned handover, which the event log tells apart.
    fn moves_master(self) -> bool {
        matches!(
            self,
            Fault::KillMaster | Fault::StopMaster | Fault::ChainedKills
        )
    }
}

/// splitmix64: a fixed, seedable sequence, so a seed repeats a run's faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One redis under load: what the benchmark knows of it and its clients.
struct Target {
    mode: &'static Mode,
    topo: ha::Topo,
    /// Data pod addresses, shared with the direct writer and the watcher.
    ips: Arc<Mutex<Vec<String>>>,
    proxy_ip: Arc<Mutex<String>>,
    direct: Writer,
    proxied: Writer,
    reader: Reader,
    two_masters: Arc<AtomicU64>,
    watch_stop: Arc<AtomicBool>,
    /// Every key acknowledged during the run, for the final look-up.
    all_keys: Vec<String>,
    /// The conf's current `maxmemory-policy` (a rollout flips it).
    lru: bool,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.watch_stop.store(true, Ordering::Relaxed);
    }
}

impl Target {
    fn start(b: &Bench, mode: &'static Mode) -> Result<Target, String> {
        let topo = ha::Topo::load(b, mode.scope, mode.sentinels)?;
        let ips = Arc::new(Mutex::new(topo.data_ips.clone()));
        let proxy_ip = Arc::new(Mutex::new(pod_ip(b, &proxy_pod(mode))?));
        let pw = topo.password.clone();
        let direct_to: Connector = {
            let (ips, pw) = (ips.clone(), pw.clone());
            Arc::new(move || {
                let now = ips.lock().map(|v| v.clone()).unwrap_or_default();
                master_of(&now, &pw)
            })
        };
        let proxy_to: Connector = {
            let (ip, pw) = (proxy_ip.clone(), pw.clone());
            Arc::new(move || {
                let now = ip.lock().map(|v| v.clone()).unwrap_or_default();
                client(&now, &pw)
            })
        };
        let direct = Writer::start(format!("{}-d", mode.scope), true, PACE, direct_to);
        let proxied = Writer::start(format!("{}-p", mode.scope), true, PACE, proxy_to.clone());
        let reader = Reader::start(&direct, Duration::from_millis(5), proxy_to);
        let two_masters = Arc::new(AtomicU64::new(0));
        let watch_stop = Arc::new(AtomicBool::new(false));
        watch_roles(ips.clone(), pw, two_masters.clone(), watch_stop.clone());
        Ok(Target {
            mode,
            topo,
            ips,
            proxy_ip,
            direct,
            proxied,
            reader,
            two_masters,
            watch_stop,
            all_keys: Vec::new(),
            lru: false,
        })
    }

    /// The pods' addresses again (a restarted pod may have a new pid, never a new address on
    /// the process runtime, but nothing here relies on that).
    fn refresh(&mut self, b: &Bench) -> Result<(), String> {
        ha::refresh(b, &mut self.topo)?;
        if let Ok(mut ips) = self.ips.lock() {
            ips.clone_from(&self.topo.data_ips);
        }
        let proxy = pod_ip(b, &proxy_pod(self.mode))?;
        if let Ok(mut ip) = self.proxy_ip.lock() {
            *ip = proxy;
        }
        Ok(())
    }

    /// Whether both writers have an acknowledged write after `t`.
    fn wrote_since(&self, t: Instant) -> bool {
        [&self.direct, &self.proxied]
            .iter()
            .all(|w| w.acked_since(t))
    }
}

/// Counts the times two data pods answer `ROLE` master in the same look (every 200 ms).
fn watch_roles(
    ips: Arc<Mutex<Vec<String>>>,
    pw: String,
    two: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            let now = ips.lock().map(|v| v.clone()).unwrap_or_default();
            let masters = now
                .iter()
                .filter(|ip| {
                    ha::connect(ip, ha::PORT, Some(&pw), Duration::from_millis(200))
                        .ok()
                        .and_then(|mut c| redis::cmd("ROLE").query::<Vec<redis::Value>>(&mut c).ok())
                        .is_some_and(|r| {
                            matches!(r.first(), Some(redis::Value::BulkString(x)) if x == b"master")
                        })
                })
                .count();
            if masters > 1 {
                two.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
}

fn proxy_pod(m: &Mode) -> String {
    format!("{}-{}-proxy.0", m.scope, ha::DATA)
}

fn pod_field(b: &Bench, name: &str, field: &str) -> Result<Value, String> {
    let pods = b.json(&["get", "pods"])?;
    pods.as_array()
        .and_then(|a| a.iter().find(|p| p["pod"] == name))
        .map(|p| p[field].clone())
        .ok_or_else(|| format!("no pod {name}"))
}

fn pod_ip(b: &Bench, name: &str) -> Result<String, String> {
    pod_field(b, name, "ip")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("no address for pod {name}"))
}

fn pod_pid(b: &Bench, name: &str) -> Result<u64, String> {
    pod_field(b, name, "pid")?
        .as_u64()
        .filter(|p| *p > 1)
        .ok_or_else(|| format!("no pid for pod {name}"))
}

fn signal(pid: u64, sig: nix::sys::signal::Signal) -> Result<(), String> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
        .map_err(|e| format!("{sig} {pid}: {}", std::io::Error::from(e)))
}

/// SIGSTOP for `d`, then SIGCONT (also when sleeping is interrupted).
fn stop_for(pid: u64, d: Duration) -> Result<(), String> {
    struct Cont(u64);
    impl Drop for Cont {
        fn drop(&mut self) {
            let _ = signal(self.0, nix::sys::signal::Signal::SIGCONT);
        }
    }
    signal(pid, nix::sys::signal::Signal::SIGSTOP)?;
    let _cont = Cont(pid);
    sleep(d)
}

fn server_pid(b: &Bench) -> Result<u64, String> {
    b.server
        .lock()
        .ok()
        .and_then(|s| s.as_ref().map(|c| u64::from(c.id())))
        .ok_or_else(|| "no server running".into())
}

/// Kills the server, or (`kill` false) gives it 30 s to exit as it was told to, then starts
/// another.
fn start_server_again(b: &Bench, kill: bool) -> Result<(), String> {
    if let Ok(mut server) = b.server.lock() {
        if let Some(mut c) = server.take() {
            let deadline = Instant::now() + Duration::from_secs(if kill { 0 } else { 30 });
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    b.spawn_server(&[])?;
    b.wait_server()
}

/// Event counts by (scope, reason).
fn event_counts(b: &Bench) -> Result<BTreeMap<(String, String), usize>, String> {
    let events = b.json(&["events", "--limit", "1000000"])?;
    let mut n = BTreeMap::new();
    for e in events.as_array().into_iter().flatten() {
        let (Some(scope), Some(reason)) = (e["resource"]["scope"].as_str(), e["reason"].as_str())
        else {
            continue;
        };
        *n.entry((scope.to_string(), reason.to_string()))
            .or_insert(0) += 1;
    }
    Ok(n)
}

/// Carries the fault out; returns when it is over (the process continued, the server
/// started again, the rollout applied).
fn inject(
    b: &Bench,
    t: &mut Target,
    fault: Fault,
    rng: &mut Rng,
    master: u32,
) -> Result<(), String> {
    use nix::sys::signal::Signal::SIGKILL;
    let scope = t.mode.scope;
    let data = |o: u32| format!("{scope}-{}.{o}", ha::DATA);
    let replica = {
        let others: Vec<u32> = (0..ha::NODES).filter(|o| *o != master).collect();
        others[rng.below(others.len())]
    };
    let sentinel = format!("{scope}-{}.{}", ha::SENTINEL, rng.below(ha::NODES as usize));
    match fault {
        Fault::KillMaster => signal(pod_pid(b, &data(master))?, SIGKILL),
        Fault::StopMaster => stop_for(pod_pid(b, &data(master))?, STOP_FOR),
        Fault::BlipMaster => stop_for(pod_pid(b, &data(master))?, BLIP_FOR),
        Fault::KillReplica => signal(pod_pid(b, &data(replica))?, SIGKILL),
        Fault::StopReplica => stop_for(pod_pid(b, &data(replica))?, STOP_FOR),
        Fault::KillSentinel => signal(pod_pid(b, &sentinel)?, SIGKILL),
        Fault::StopSentinel => stop_for(pod_pid(b, &sentinel)?, STOP_FOR),
        Fault::KillProxy => signal(pod_pid(b, &proxy_pod(t.mode))?, SIGKILL),
        Fault::StopProxy => stop_for(pod_pid(b, &proxy_pod(t.mode))?, STOP_FOR),
        Fault::ChainedKills => {
            signal(pod_pid(b, &data(master))?, SIGKILL)?;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(next) = new_master_with_replica(&t.topo, master) {
                    return signal(pod_pid(b, &data(next))?, SIGKILL);
                }
                if Instant::now() > deadline {
                    return Err("chained kills: no new master with a replica within 60 s".into());
                }
                sleep(Duration::from_millis(50))?;
            }
        }
        Fault::Rollout => {
            t.lru = !t.lru;
            let policy = if t.lru { "allkeys-lru" } else { "noeviction" };
            let file = b.write(&format!("{scope}.hcl"), &manifest(t.mode, policy))?;
            b.vd(&["apply", "-f", &file, "--timeout", "300s"]).map(drop)
        }
        Fault::KillController => start_server_again(b, true),
        Fault::StopController => stop_for(server_pid(b)?, STOP_FOR),
        Fault::StopEverything => {
            b.vd(&["shutdown", "--stop-pods"])?;
            start_server_again(b, false)
        }
    }
}

/// A pod other than `victim` answering master with a replica following it, link up.
fn new_master_with_replica(t: &ha::Topo, victim: u32) -> Option<u32> {
    let infos: Vec<Option<String>> = (0..ha::NODES)
        .map(|o| {
            let mut c = ha::connect(
                &t.data_ips[o as usize],
                ha::PORT,
                Some(&t.password),
                Duration::from_millis(200),
            )
            .ok()?;
            redis::cmd("INFO").arg("replication").query(&mut c).ok()
        })
        .collect();
    let name = |o: u32| ha::host(&t.scope, o);
    (0..ha::NODES).filter(|m| *m != victim).find(|m| {
        infos[*m as usize]
            .as_deref()
            .is_some_and(|i| ha::field(i, "role") == Some("master"))
            && (0..ha::NODES).any(|o| {
                o != *m
                    && infos[o as usize].as_deref().is_some_and(|i| {
                        ha::field(i, "master_host") == Some(name(*m).as_str())
                            && ha::field(i, "master_link_status") == Some("up")
                    })
            })
    })
}

/// For a finding: the redis's recent events and, with sentinels, their logs' last lines.
fn explain(b: &Bench, t: &Target) {
    if let Ok(events) = b.json(&["events", "--limit", "200"]) {
        for e in events.as_array().into_iter().flatten() {
            if e["resource"]["scope"] == t.mode.scope
                || e["pod"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(t.mode.scope))
            {
                eprintln!(
                    "  event {} {} {}: {}",
                    e["time"], e["pod"], e["reason"], e["message"]
                );
            }
        }
    }
    if t.mode.sentinels {
        eprintln!("{}", ha::log_tails(&t.topo.sentinel_logs(b), 40));
    }
}

/// What a fault class did to one redis, over all its rounds.
#[derive(Default)]
struct Stat {
    rounds: usize,
    direct_gaps: Vec<f64>,
    proxy_gaps: Vec<f64>,
    settled_in: Vec<f64>,
    direct_errors: u64,
    proxy_errors: u64,
    reads: u64,
    read_errors: u64,
    read_missing: u64,
    acked: usize,
    lost: usize,
    moves: usize,
    spurious: usize,
    two_masters: u64,
    stuck: usize,
}

/// Waits until every target in `hit` has settled and written since `since`, and every other
/// target has settled. Ok(ms it took, the stuck ones' reasons).
fn recover(
    b: &Bench,
    targets: &mut [Target],
    hit: &[bool],
    since: Instant,
) -> Result<(f64, Vec<(usize, String)>), String> {
    let mut stuck: Vec<(usize, String)> = Vec::new();
    loop {
        let mut waiting = None;
        for (i, t) in targets.iter_mut().enumerate() {
            if let Err(e) = t
                .refresh(b)
                .and_then(|()| ha::settled(b, &t.topo).map(drop))
            {
                waiting = Some((i, e));
                break;
            }
            if hit[i] && !t.wrote_since(since) {
                waiting = Some((i, "a writer has not written since the fault".into()));
                break;
            }
        }
        let Some((i, why)) = waiting else {
            return Ok((ms(since.elapsed()), stuck));
        };
        if since.elapsed() > STUCK_AFTER && !stuck.iter().any(|(j, _)| *j == i) {
            eprintln!("STUCK: {}: {why}", targets[i].mode.scope);
            stuck.push((i, why.clone()));
        }
        if since.elapsed() > GIVE_UP_AFTER {
            return Err(format!(
                "{} has not settled {} s after a fault: {why}",
                targets[i].mode.scope,
                GIVE_UP_AFTER.as_secs()
            ));
        }
        sleep(Duration::from_millis(200))?;
    }
}

type Stats = BTreeMap<(usize, Option<Fault>), Stat>;

fn run(b: &Bench) -> Result<String, String> {
    let minutes = env_num("VD_SOAK_MINUTES", 30);
    let seed = std::env::var("VD_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| common::now_ms() as u64);
    eprintln!("soak: {minutes} min, seed {seed}");
    // `VD_SOAK_FAULTS=StopMaster,KillProxy`: only these (to reproduce a finding).
    let only: Vec<Fault> = match std::env::var("VD_SOAK_FAULTS") {
        Ok(v) => v
            .split(',')
            .map(|n| {
                Fault::ALL
                    .into_iter()
                    .find(|f| format!("{f:?}") == n.trim())
                    .ok_or_else(|| format!("VD_SOAK_FAULTS: no fault {n}"))
            })
            .collect::<Result<_, _>>()?,
        Err(_) => Fault::ALL.to_vec(),
    };
    let mut rng = Rng(seed);
    let started = Instant::now();
    for m in &MODES {
        let file = b.write(&format!("{}.hcl", m.scope), &manifest(m, "noeviction"))?;
        b.vd(&["apply", "-f", &file, "--timeout", "180s"])?;
    }
    let mut targets = Vec::new();
    for m in &MODES {
        let t = ha::Topo::load(b, m.scope, m.sentinels)?;
        ha::wait_settled(b, &t)?;
        targets.push(Target::start(b, m)?);
    }
    let mut stats = Stats::new();
    let end = Instant::now() + Duration::from_secs(minutes as u64 * 60);
    let mut round = 0usize;
    while Instant::now() < end {
        round += 1;
        let fault = only[rng.below(only.len())];
        let fitting: Vec<usize> = (0..targets.len())
            .filter(|i| fault.fits(targets[*i].mode))
            .collect();
        let aim = fitting[rng.below(fitting.len())];
        let hit: Vec<bool> = (0..targets.len())
            .map(|i| fault.global() || i == aim)
            .collect();
        let quiet = vec![false; targets.len()];
        let (_, stuck_before) = recover(b, &mut targets, &quiet, Instant::now())?;
        if !stuck_before.is_empty() {
            return Err(format!(
                "round {round}: not settled before the fault: {stuck_before:?}"
            ));
        }
        let master = ha::settled(b, &targets[aim].topo)?;
        sleep(Duration::from_millis(2000 + rng.below(4000) as u64))?;
        let events_before = event_counts(b)?;
        let two_before: Vec<u64> = targets
            .iter()
            .map(|t| t.two_masters.load(Ordering::Relaxed))
            .collect();
        let errors_before: Vec<(u64, u64)> = targets
            .iter()
            .map(|t| (t.direct.errors(), t.proxied.errors()))
            .collect();
        for t in &targets {
            t.reader.take();
        }
        let t0 = Instant::now();
        eprintln!(
            "round {round} ({:.1} min): {} on {}",
            started.elapsed().as_secs_f64() / 60.0,
            fault.label(),
            if fault.global() {
                "both"
            } else {
                targets[aim].mode.scope
            }
        );
        inject(b, &mut targets[aim], fault, &mut rng, master)?;
        let (took, stuck) = recover(b, &mut targets, &hit, t0)?;
        let events_after = event_counts(b)?;
        for (i, t) in targets.iter_mut().enumerate() {
            let key = (i, hit[i].then_some(fault));
            let s = stats.entry(key).or_default();
            s.rounds += 1;
            let scope = t.mode.scope.to_string();
            let count = |reason: &str, ev: &BTreeMap<(String, String), usize>| {
                ev.get(&(scope.clone(), reason.to_string()))
                    .copied()
                    .unwrap_or(0)
            };
            let delta = |reason: &str| {
                count(reason, &events_after).saturating_sub(count(reason, &events_before))
            };
            let unplanned = delta("Failover") + delta("MasterSwitched");
            let planned = delta("Handover");
            s.moves += unplanned + planned;
            let spurious = if !hit[i] || !fault.moves_master() {
                if fault == Fault::Rollout && hit[i] {
                    // A sentinel-watched redis's handover is the sentinels' own failover,
                    // recorded as MasterSwitched; only the controller's Failover is unplanned.
                    delta("Failover")
                } else {
                    unplanned
                }
            } else {
                0
            };
            if spurious > 0 {
                eprintln!("SPURIOUS: {scope}: {spurious} master moves after {fault:?}");
                explain(b, t);
            }
            s.spurious += spurious;
            s.two_masters += t.two_masters.load(Ordering::Relaxed) - two_before[i];
            let (de, pe) = errors_before[i];
            s.direct_errors += t.direct.errors() - de;
            s.proxy_errors += t.proxied.errors() - pe;
            let r = t.reader.take();
            s.reads += r.reads;
            s.read_errors += r.errors;
            s.read_missing += r.missing;
            let mut keys = Vec::new();
            for (w, gaps) in [
                (&t.direct, &mut s.direct_gaps),
                (&t.proxied, &mut s.proxy_gaps),
            ] {
                let rec = w.drain();
                let after: Vec<_> = rec
                    .acks
                    .iter()
                    .filter(|(at, _)| *at >= t0)
                    .cloned()
                    .collect();
                gaps.push(longest_gap(&after, Some(t0)));
                keys.extend(rec.acks.into_iter().map(|(_, k)| k));
            }
            if hit[i] {
                s.settled_in.push(took);
            }
            if stuck.iter().any(|(j, _)| *j == i) {
                s.stuck += 1;
            }
            let now = t.ips.lock().map(|v| v.clone()).unwrap_or_default();
            let mut c = master_of(&now, &t.topo.password).ok_or("no master to check against")?;
            let gone = writers::missing(&mut c, &keys)?;
            if !gone.is_empty() {
                eprintln!(
                    "LOST: {scope}: {} of {} acknowledged writes after {fault:?}, e.g. {:?}",
                    gone.len(),
                    keys.len(),
                    &gone[..gone.len().min(5)]
                );
                explain(b, t);
            }
            s.acked += keys.len();
            s.lost += gone.len();
            t.all_keys.extend(keys);
        }
    }
    let mut finals = Vec::new();
    for t in &mut targets {
        // The writes of the last moments, then everything once more.
        for w in [&t.direct, &t.proxied] {
            t.all_keys
                .extend(w.drain().acks.into_iter().map(|(_, k)| k));
        }
        let now = t.ips.lock().map(|v| v.clone()).unwrap_or_default();
        let mut c = master_of(&now, &t.topo.password).ok_or("no master at the end")?;
        let gone = writers::missing(&mut c, &t.all_keys)?;
        finals.push((t.all_keys.len(), gone.len()));
    }
    let report = report(&stats, &finals, seed, minutes, round, started.elapsed());
    if std::env::var("VD_SOAK_DOCS").as_deref() != Ok("0") {
        ha::append_to_docs(&report)?;
    }
    Ok(report)
}

fn report(
    stats: &Stats,
    finals: &[(usize, usize)],
    seed: u64,
    minutes: usize,
    rounds: usize,
    took: Duration,
) -> String {
    let mut s = ha::report_head("Chaos soak: faults under writers (issue 20)", COMMAND, took);
    s.push_str(&format!(
        "- Seed {seed} (`VD_SOAK_SEED={seed} VD_SOAK_MINUTES={minutes}` repeats the faults), {minutes} min of faults, {rounds} rounds. One `vd server` (process runtime) runs two redis of 3 pods, readiness every 300 ms, each with `proxy {{}}`: `ctl` with `failover {{ automatic = true  down_after = \"1s\" }}`, `sen` watched by 3 sentinels (`down-after-milliseconds` 1000). Each has a writer to the pod answering `ROLE` master and one through its proxy (`SET` + `WAIT 1 100` every 2 ms; a write counts once WAIT says a replica has it), and a reader through the proxy reading the direct writer's latest acknowledged key. A watcher asks each data pod `ROLE` every 200 ms.\n"
    ));
    s.push_str("- A round: both redis settled (one master, both replicas following it with the link up, sentinels healthy and agreeing, the store naming it), 2 to 6 s of writes, a fault drawn from the list (on one redis drawn at random; the controller faults and the full stop hit both), then wait until both settled again and the hit redis's writers wrote again. Gap: the longest time between two acknowledged writes of a writer from the fault until then. Settled: from the fault until then. Lost: writes acknowledged since the previous round missing on the master. Moves: `Failover`, `MasterSwitched` and `Handover` events; spurious: those after a fault that should not move the master (for a rollout only the unplanned `Failover`). Two masters: watcher looks in which two pods answered master (a stopped old master answers so between waking and being turned into a replica; with no replica it takes no write). Stuck: not settled 180 s after the fault (a state that would need a human).\n\n");
    for (i, m) in MODES.iter().enumerate() {
        s.push_str(&format!("### `{}`: {}\n\n", m.scope, m.what));
        s.push_str("| fault | rounds | direct gap p50 / max (ms) | proxy gap p50 / max (ms) | settled p50 / max (ms) | errors direct / proxy | reads (errors, missing) | acknowledged / lost | moves / spurious | two masters | stuck |\n");
        s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
        let rows = Fault::ALL
            .iter()
            .map(|f| Some(*f))
            .chain(std::iter::once(None));
        for f in rows {
            let Some(st) = stats.get(&(i, f)) else {
                continue;
            };
            let label = f.map_or("(a fault on the other redis)", Fault::label);
            let (d50, dmax) = ha::p50_max(st.direct_gaps.clone());
            let (p50, pmax) = ha::p50_max(st.proxy_gaps.clone());
            let settled = if st.settled_in.is_empty() {
                "–".to_string()
            } else {
                let (s50, smax) = ha::p50_max(st.settled_in.clone());
                format!("{s50:.0} / {smax:.0}")
            };
            s.push_str(&format!(
                "| {label} | {} | {d50:.0} / {dmax:.0} | {p50:.0} / {pmax:.0} | {settled} | {} / {} | {} ({}, {}) | {} / {} | {} / {} | {} | {} |\n",
                st.rounds,
                st.direct_errors,
                st.proxy_errors,
                st.reads,
                st.read_errors,
                st.read_missing,
                st.acked,
                st.lost,
                st.moves,
                st.spurious,
                st.two_masters,
                st.stuck
            ));
        }
        let (acked, lost) = finals.get(i).copied().unwrap_or_default();
        s.push_str(&format!(
            "\nEvery write acknowledged during the run, looked up on the master at the end: {acked}, missing {lost}.\n\n"
        ));
    }
    s
}
