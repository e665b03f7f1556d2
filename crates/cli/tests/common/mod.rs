//! Test harness: a real `vd server` on a temporary root, driven through the real `vd` binary.
//! Every process it starts is stopped on drop, also when the test fails.

#![allow(dead_code)]

use serde_json::Value;
use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// Declares each listed test body once per runtime backend: `process::NAME` and `docker::NAME`.
/// The docker variants are skipped, saying so, when no Docker daemon is reachable.
macro_rules! on_every_runtime {
    ($($name:ident),* $(,)?) => {
        mod process {
            $(#[test]
            fn $name() {
                super::common::on_runtime("process", super::$name)
            })*
        }
        mod docker {
            $(#[test]
            fn $name() {
                super::common::on_runtime("docker", super::$name)
            })*
        }
    };
}
pub(crate) use on_every_runtime;

thread_local! {
    /// The backend the current test runs against (each test has its own thread).
    static RUNTIME: Cell<&'static str> = const { Cell::new("process") };
}

/// Runs a test body against `runtime`; a docker test without a daemon is skipped, loudly.
pub fn on_runtime(runtime: &'static str, body: fn()) {
    if runtime == "docker" {
        if let Err(why) = docker_ready() {
            // Written past the test harness's capture so the skip shows in every run.
            let _ = writeln!(std::io::stderr(), "SKIPPED docker test: {why}");
            return;
        }
    }
    RUNTIME.with(|r| r.set(runtime));
    body();
}

/// Whether docker tests can run here: a reachable daemon (else skip) with the test image
/// (else fail, naming the fix).
fn docker_ready() -> Result<(), String> {
    static DAEMON: OnceLock<Result<(), String>> = OnceLock::new();
    DAEMON
        .get_or_init(|| {
            let info = Command::new("docker")
                .args(["info", "--format", "{{.ServerVersion}}"])
                .output();
            match info {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(format!(
                    "no Docker daemon is reachable (`docker info`: {})",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => Err(format!("the docker CLI is not installed ({e})")),
            }
        })
        .clone()?;
    let image = docker(&["image", "inspect", "redis:7-alpine"]);
    assert!(
        image.status.success(),
        "the image redis:7-alpine is missing; build the local stand-in with ./scripts/build-redis-image"
    );
    Ok(())
}

/// Tests whose pods bind the wildcard address (a plain `redis-server`) must not run
/// beside pods binding their own address on the same port.
static PORTS: RwLock<()> = RwLock::new(());

/// Holds a test's share of the host.
pub enum HostGuard {
    /// Beside other tests.
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    /// Alone.
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// Shared access for tests whose pods bind their own addresses. On docker every test runs
/// alone: container and volume names are global to the daemon.
pub fn own_addresses() -> HostGuard {
    if is_docker() {
        return wildcard();
    }
    HostGuard::Shared(PORTS.read().unwrap_or_else(|e| e.into_inner()))
}

/// Exclusive access for a test whose pods bind 0.0.0.0.
pub fn wildcard() -> HostGuard {
    HostGuard::Exclusive(PORTS.write().unwrap_or_else(|e| e.into_inner()))
}

/// Whether the tests run against the docker runtime.
pub fn is_docker() -> bool {
    runtime() == "docker"
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

/// Sends `signal` to every process of container `pod`, by host pid (`docker top` reads them
/// without entering the container).
fn signal_container(pod: &str, signal: &str) {
    let top = docker(&["top", pod, "-o", "pid"]);
    assert!(top.status.success(), "docker top {pod}");
    let pids: Vec<String> = String::from_utf8_lossy(&top.stdout)
        .lines()
        .skip(1)
        .map(|l| l.trim().to_string())
        .filter(|p| p.parse::<u32>().is_ok())
        .collect();
    // A probe's process may end between `docker top` and the signal: only the rest count.
    let signalled = pids
        .iter()
        .filter(|pid| {
            Command::new("kill")
                .args([signal, pid.as_str()])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .count();
    assert!(signalled > 0, "kill {signal} {pids:?} ({pod})");
}

/// The lines `docker ARGS` prints (names of containers, volumes, ...).
pub fn docker_names(args: &[&str]) -> Vec<String> {
    let out = docker(args);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Seconds since the Unix epoch (for `docker events --since`).
pub fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The runtime the current test runs against.
pub fn runtime() -> &'static str {
    RUNTIME.with(Cell::get)
}

/// Fails with a clear message when the test host lacks what the tests need.
pub fn require_host() {
    for bin in ["redis-server", "redis-cli"] {
        let found = std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .any(|d| Path::new(d).join(bin).is_file());
        assert!(found, "`{bin}` is not installed; run ./scripts/setup (apt-get install redis-server redis-tools)");
    }
}

/// A vd server on its own temporary root.
pub struct Vd {
    pub root: tempfile::TempDir,
    server: Option<Child>,
    server_env: Vec<(String, String)>,
    /// Extra `vd server` arguments, kept for restarts.
    server_args: Vec<String>,
}

/// An error report as one line: miette wraps messages and help at 80 columns and draws a bar
/// before continued lines, so the words are compared without either.
pub fn unwrapped(report: &str) -> String {
    report
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vd"))
}

impl Vd {
    /// Starts a server and waits until it answers.
    pub fn start() -> Vd {
        Vd::start_with(&[])
    }

    /// Starts a server with extra `vd server` arguments (kept for restarts).
    pub fn start_with(server_args: &[&str]) -> Vd {
        Vd::start_full(server_args, &[])
    }

    /// Starts a server with extra environment (test-only fault injection: `VD_TEST_FAULT`).
    pub fn start_env(env: &[(&str, &str)]) -> Vd {
        Vd::start_full(&[], env)
    }

    fn start_full(server_args: &[&str], env: &[(&str, &str)]) -> Vd {
        require_host();
        let root = tempfile::Builder::new()
            .prefix("vd-test-")
            .tempdir()
            .expect("tempdir");
        let mut vd = Vd {
            root,
            server: None,
            server_args: server_args.iter().map(|a| a.to_string()).collect(),
            server_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        vd.start_server();
        vd
    }

    /// Drops the extra environment for the next `start_server`.
    pub fn clear_env(&mut self) {
        self.server_env.clear();
    }

    /// Whether the server process is still alive (reaps it once it has exited).
    pub fn server_running(&mut self) -> bool {
        match self.server.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) => {
                self.server = None;
                false
            }
            _ => false,
        }
    }

    /// (Re)starts the server process on this root.
    pub fn start_server(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("test-server.log"))
            .expect("server log");
        let child = Command::new(bin())
            .args(["server", "--runtime", runtime(), "--root"])
            .arg(self.root.path())
            .args(&self.server_args)
            .envs(self.server_env.iter().map(|(k, v)| (k, v)))
            .env("VD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn vd server");
        self.server = Some(child);
        self.wait_for("server to answer", Duration::from_secs(20), || {
            self.try_vd(&["get"]).status.success()
        });
    }

    /// `vd shutdown --stop-pods`, then waits until the server has exited.
    pub fn stop_everything(&mut self) {
        self.vd(&["shutdown", "--stop-pods"]);
        let start = std::time::Instant::now();
        while self.server_running() {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "the server did not stop"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server with SIGKILL (pods must survive).
    pub fn kill_server(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// On a failed test: the tail of the server's and every pod's log, so CI output alone
    /// explains the failure (the root is deleted with the test).
    fn dump_logs(&self) {
        let mut files = vec![self.root.path().join("test-server.log")];
        if let Ok(rd) = std::fs::read_dir(self.root.path().join("logs")) {
            let mut pods: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            pods.sort();
            files.extend(pods);
        }
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("----- {} (last 60 lines) -----", f.display());
            for l in &lines[lines.len().saturating_sub(60)..] {
                eprintln!("{l}");
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// Runs `vd ARGS --root ROOT` and returns its output.
    pub fn try_vd(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("--root")
            .arg(self.root.path())
            .args(args)
            .env_remove("VD_ROOT")
            .stdin(Stdio::null())
            .output()
            .expect("run vd")
    }

    /// Runs vd and asserts success; returns stdout.
    pub fn vd(&self, args: &[&str]) -> String {
        let out = self.try_vd(args);
        assert!(
            out.status.success(),
            "vd {args:?} failed:\nstdout: {}\nstderr: {}\nserver log tail:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.server_log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs vd and asserts success; returns stderr (what a command tells a person beside its
    /// output).
    pub fn vd_stderr(&self, args: &[&str]) -> String {
        let out = self.try_vd(args);
        assert!(
            out.status.success(),
            "vd {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs vd and asserts failure; returns stderr.
    pub fn vd_fails(&self, args: &[&str]) -> String {
        let out = self.try_vd(args);
        assert!(
            !out.status.success(),
            "vd {args:?} succeeded but should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn server_log_tail(&self) -> String {
        let s =
            std::fs::read_to_string(self.root.path().join("test-server.log")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Writes a manifest file under the root and returns its path.
    pub fn manifest(&self, name: &str, text: &str) -> String {
        let p = self.root.path().join(name);
        std::fs::write(&p, text).expect("write manifest");
        p.to_string_lossy().into_owned()
    }

    /// `vd apply -f FILE` with a timeout, asserting success.
    pub fn apply(&self, file: &str) -> String {
        self.vd(&["apply", "-f", file, "--timeout", "90s"])
    }

    /// `vd get pods -o json`.
    pub fn pods(&self) -> Vec<Value> {
        serde_json::from_str(&self.vd(&["get", "pods", "-o", "json"])).expect("pods json")
    }

    /// The pod with this name.
    pub fn pod(&self, name: &str) -> Option<Value> {
        self.pods().into_iter().find(|p| p["pod"] == name)
    }

    /// `ip` of a pod.
    pub fn ip(&self, name: &str) -> String {
        self.pod(name)
            .and_then(|p| p["ip"].as_str().map(str::to_string))
            .expect("pod ip")
    }

    /// pid of a pod.
    pub fn pid(&self, name: &str) -> u64 {
        self.pod(name).and_then(|p| p["pid"].as_u64()).unwrap_or(0)
    }

    /// Events as JSON.
    pub fn events(&self) -> Vec<Value> {
        serde_json::from_str(&self.vd(&["events", "--limit", "1000", "-o", "json"]))
            .expect("events json")
    }

    /// Polls `cond` until true or panics after `timeout` naming `what`.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out after {timeout:?} waiting for {what}\nserver log tail:\n{}",
            self.server_log_tail()
        );
    }

    /// Whether a per-pod volume exists (a directory on the process runtime, a named volume on docker).
    pub fn volume_exists(&self, name: &str) -> bool {
        if is_docker() {
            return docker(&["volume", "inspect", name]).status.success();
        }
        self.root.path().join("volumes").join(name).exists()
    }

    /// Runs a command inside a pod (what the pod sees).
    pub fn in_pod(&self, pod: &str, args: &[&str]) -> Output {
        if is_docker() {
            return Command::new("docker")
                .arg("exec")
                .arg(pod)
                .args(args)
                .output()
                .expect("docker exec");
        }
        let pid = self.pid(pod);
        Command::new("nsenter")
            .arg("-t")
            .arg(pid.to_string())
            .args(["-m", "-r", "--"])
            .args(args)
            .output()
            .expect("nsenter")
    }

    /// The label docker pods of this root carry.
    fn root_label(&self) -> String {
        let d = vd_core::hash::content_digest(self.root.path().to_string_lossy().as_bytes());
        vd_core::hash::short(&d).to_string()
    }

    fn pod_pids(&self) -> Vec<i32> {
        let Ok(rd) = std::fs::read_dir(self.root.path().join("pods")) else {
            return vec![];
        };
        rd.flatten()
            .filter_map(|e| std::fs::read(e.path().join("state.json")).ok())
            .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
            .filter_map(|v| v["pid"].as_i64().map(|p| p as i32))
            .collect()
    }
}

impl Drop for Vd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
            // The tails above are often not enough to tell why: keep the whole root on request.
            if let Ok(keep) = std::env::var("VD_TEST_KEEP") {
                let _ = Command::new("cp")
                    .args(["-a"])
                    .arg(self.root.path())
                    .arg(&keep)
                    .status();
            }
        }
        if self.server.is_some() {
            let _ = Command::new(bin())
                .args(["shutdown", "--stop-pods", "--root"])
                .arg(self.root.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if let Some(mut c) = self.server.take() {
                let deadline = Instant::now() + Duration::from_secs(15);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = c.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // Whatever is left (a failed shutdown, a server killed by the test): kill pod groups.
        for pid in self.pod_pids() {
            kill_group(pid);
        }
        // And the root's pod network on the host, which a clean `shutdown --stop-pods`
        // removes itself (the process runtime's interfaces are named after the root).
        let label: String = self.root_label().chars().take(8).collect();
        for link in [format!("vdh{label}"), format!("vdp{label}")] {
            if Path::new("/sys/class/net").join(&link).exists() {
                let _ = Command::new(vd_runtime::netns::ip_program())
                    .args(["link", "del", &link])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if is_docker() {
            // Container and volume names are global: leave none for the next test.
            let filter = format!("label=vd.root={}", self.root_label());
            let ids = docker(&["ps", "-aq", "--filter", &filter]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = docker(&["rm", "-f", id]);
            }
            let vols = docker(&["volume", "ls", "-q", "--filter", &filter]);
            for v in String::from_utf8_lossy(&vols.stdout).split_whitespace() {
                let _ = docker(&["volume", "rm", "-f", v]);
            }
        }
    }
}

fn kill_group(pid: i32) {
    if pid > 1 {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// A real Redis client connection to `ip:port`.
pub fn redis(ip: &str, port: u16) -> redis::Connection {
    connect_to(&format!("redis://{ip}:{port}/"), ip, port)
}

/// [`redis`], authenticating as `default` with `password` (hex, as vd generates them).
pub fn redis_auth(ip: &str, port: u16, password: &str) -> redis::Connection {
    connect_to(&format!("redis://:{password}@{ip}:{port}/"), ip, port)
}

fn connect_to(url: &str, ip: &str, port: u16) -> redis::Connection {
    let client = redis::Client::open(url).expect("client");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client.get_connection_with_timeout(Duration::from_secs(2)) {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {ip}:{port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

impl Vd {
    /// A pod's address while no server runs (from the runtime's own records).
    pub fn ip_from_state(&self, ordinal: u32) -> String {
        if is_docker() {
            let out = docker(&[
                "inspect",
                "-f",
                "{{index .Config.Labels \"vd.ip\"}}",
                &format!("data-cache.{ordinal}"),
            ]);
            return String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        let dir = self
            .root
            .path()
            .join("pods")
            .join(format!("data-cache.{ordinal}"))
            .join("state.json");
        let v: Value = serde_json::from_slice(&std::fs::read(dir).expect("state")).expect("json");
        v["ip"].as_str().expect("ip").to_string()
    }
}

/// The data pods of the redis `data/cache` the HA tests run: its password, roles, master.
impl Vd {
    /// A connection to sentinel `ordinal` of `data/cache-ha` ([`SENTINEL_SIBLING`]),
    /// authenticated with the sentinels' own password.
    pub fn sentinel_conn(&self, ordinal: u32) -> redis::Connection {
        let pw = self.vd(&["config", "data/cache-ha", "get", "REDIS_SENTINEL_PASSWORD"]);
        let ip = self.ip(&format!("data-cache-ha.{ordinal}"));
        redis_auth(&ip, 26379, pw.trim())
    }

    /// Waits until `vd redis:info data/cache` says its sentinels are healthy: each knows both
    /// replicas and its peers. Sentinels learn the replicas from the master's `INFO` every
    /// 10 s, and one asked to fail over sooner has no replica to promote.
    pub fn wait_sentinels_healthy(&self) {
        self.wait_for(
            "every sentinel to know both replicas",
            Duration::from_secs(90),
            || {
                serde_json::from_str::<Value>(&self.vd(&["redis:info", "data/cache", "-o", "json"]))
                    .is_ok_and(|v| v["sentinels"]["healthy"] == true)
            },
        );
    }

    /// `REDIS_PASSWORD` of `data/cache`.
    pub fn cache_password(&self) -> String {
        self.vd(&["config", "data/cache", "get", "REDIS_PASSWORD"])
            .trim()
            .to_string()
    }

    /// The bucket's `REDIS_MASTER_ORDINAL` of `data/cache` (unset until a failover: 0).
    pub fn master_ordinal(&self) -> u32 {
        let out = self.try_vd(&["config", "data/cache", "get", "REDIS_MASTER_ORDINAL"]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// An authenticated connection to `data-cache.<ordinal>`, if it answers.
    pub fn cache_conn(&self, ordinal: u32) -> Option<redis::Connection> {
        let ip = self.pod(&format!("data-cache.{ordinal}"))?["ip"]
            .as_str()?
            .to_string();
        let url = format!("redis://:{}@{ip}:6379/", self.cache_password());
        let client = redis::Client::open(url).ok()?;
        client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()
    }

    /// `ROLE` of `data-cache.<ordinal>`: ("master", "") or ("slave", master host).
    pub fn cache_role(&self, ordinal: u32) -> Option<(String, String)> {
        let mut c = self.cache_conn(ordinal)?;
        let v: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).ok()?;
        let text = |v: &redis::Value| match v {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            redis::Value::SimpleString(s) => s.clone(),
            _ => String::new(),
        };
        let r = text(v.first()?);
        let host = if r == "slave" {
            text(v.get(1)?)
        } else {
            String::new()
        };
        Some((r, host))
    }

    /// Freezes every process of a pod (a hang, not a crash): `docker pause` on docker, whose
    /// pod pid is the container's init, SIGSTOP on the process runtime.
    pub fn hang_pod(&self, pod: &str) {
        if is_docker() {
            // Not `docker pause`: the cgroup freezer deadlocks with an exec probe that starts
            // while the container freezes (the exec's runc init is frozen holding the
            // container's lock, and `docker unpause` waits for it forever; seen in CI).
            // Stopping the container's processes from the host hangs Redis the same way.
            signal_container(pod, "-STOP");
        } else {
            self.signal_pod(pod, "-STOP");
        }
    }

    /// Undoes [`Vd::hang_pod`].
    pub fn resume_pod(&self, pod: &str) {
        if is_docker() {
            signal_container(pod, "-CONT");
        } else {
            self.signal_pod(pod, "-CONT");
        }
    }

    /// `kill -9` of a pod's processes while the server is down (no API to ask): by container
    /// on docker, by the pid the process runtime keeps in the pod's `state.json`.
    pub fn crash_pod_offline(&self, pod: &str) {
        if is_docker() {
            signal_container(pod, "-9");
            return;
        }
        let state: Value = serde_json::from_slice(
            &std::fs::read(self.path().join("pods").join(pod).join("state.json"))
                .expect("the pod's state.json"),
        )
        .expect("state.json is JSON");
        let pid = state["pid"].as_u64().expect("a pid");
        let ok = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -9 {pod} ({pid})");
    }

    /// The pod at `ip` while the server is down: from the pods' `state.json` (process
    /// runtime) or the containers' addresses (docker).
    pub fn pod_at_offline(&self, ip: &str, candidates: &[String]) -> Option<String> {
        candidates
            .iter()
            .find(|pod| {
                if is_docker() {
                    let out = docker(&[
                        "inspect",
                        "-f",
                        // Its network addresses and the host address its ports are
                        // published on (where the host reaches it).
                        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}{{range $p, $c := .NetworkSettings.Ports}}{{range $c}}{{.HostIp}} {{end}}{{end}}",
                        pod,
                    ]);
                    String::from_utf8_lossy(&out.stdout)
                        .split_whitespace()
                        .any(|a| a == ip)
                } else {
                    std::fs::read(
                        self.path()
                            .join("pods")
                            .join(pod.as_str())
                            .join("state.json"),
                    )
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                    .is_some_and(|v| v["ip"] == ip)
                }
            })
            .cloned()
    }

    /// Sends `signal` (`-9`, `-STOP`, `-CONT`) to a pod's main process.
    pub fn signal_pod(&self, pod: &str, signal: &str) {
        let pid = self.pid(pod);
        assert!(pid > 0, "{pod} has a pid");
        let ok = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {signal} {pod} ({pid})");
    }
}

/// A sentinel sibling `data/cache-ha` watching `data/cache`, with test timing (down-after
/// 1000 ms, failover-timeout 5000 ms) and fast readiness: the HA tests' second resource.
pub const SENTINEL_SIBLING: &str = r#"
asset "data" "ha-overrides" {
  defs = <<-EOT
    sentinel down-after-milliseconds voodu-master 1000
    sentinel failover-timeout voodu-master 5000
  EOT
}

redis "data" "cache-ha" {
  sentinel {
    monitor = "data/cache"
  }
  volumes = ["${asset.data.ha-overrides.defs}:/etc/sentinel/conf.d/overrides.conf:ro"]
  probes {
    readiness {
      exec { command = ["redis-cli", "-e", "-h", "${VOODU_POD_IP}", "-p", "26379", "ping"] }
      period = "300ms"
    }
  }
}
"#;

// ----- S3 (moto)

/// `python3 -m moto.server` (a local S3-compatible server from PyPI) on 127.0.0.1 and a free port; killed when dropped.
pub struct Moto {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Moto {
    /// Starts it and waits until it listens.
    pub fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto (scripts/setup installs moto[server])");
        let moto = Moto { child, port };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto did not listen on {port} (is `moto[server]` installed? scripts/setup)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// One plain HTTP/1.1 request (moto accepts unsigned ones); (status, body).
    pub fn http(&self, method: &str, path: &str) -> (u16, Vec<u8>) {
        let mut s =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        use std::io::Read;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("moto's answer");
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP answer");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(
            !head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "{head}"
        );
        (status, raw[split + 4..].to_vec())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto with `bucket` created.
impl Vd {
    /// Writes config bucket `aws` with test credentials for `moto`'s endpoint (what the
    /// redis's `env_from` or its backup block's names).
    pub fn aws_config_for(&self, moto: &Moto) {
        self.vd(&[
            "config",
            "aws",
            "set",
            "AWS_ACCESS_KEY_ID=AKIAVDTESTKEYID",
            "AWS_SECRET_ACCESS_KEY=vdTestSecretAccessKey",
            "AWS_REGION=us-east-1",
            &format!("AWS_ENDPOINT_URL=http://127.0.0.1:{}", moto.port),
            "AWS_ALLOW_HTTP=true",
        ]);
    }
}

pub fn moto_with_bucket(bucket: &str) -> Moto {
    let moto = Moto::start();
    let (status, body) = moto.http("PUT", &format!("/{bucket}"));
    assert_eq!(
        status,
        200,
        "create the bucket: {}",
        String::from_utf8_lossy(&body)
    );
    moto
}

/// A 3-pod data redis whose pods are ready within a second (the default readiness needs two
/// successes 5 s apart).
pub const THREE_PODS: &str = r#"redis "data" "cache" {
  replicas = 3
  probes {
    readiness {
      exec { command = ["redis-cli", "-h", "${VOODU_POD_IP}", "ping"] }
      period = "300ms"
    }
  }
}
"#;
