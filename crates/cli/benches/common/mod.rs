//! The harness the benchmark programs share: Ctrl-C handling, the environment knobs, finding
//! the release `vd`, a `vd server` on a temporary root that stops everything when dropped, and
//! the small helpers of their reports (timing, percentiles, date, machine).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set [`INTERRUPTED`] instead of ending the program.
// `unsafe`: installing a signal handler has no safe API among this crate's dependencies (nix's
// is an unsafe fn too); it is sound as long as the handler is async-signal-safe.
#[allow(unsafe_code)]
fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

fn check_interrupt() -> Result<(), String> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// Makes Ctrl-C and SIGTERM stop [`sleep`] with an error, for a program that manages its own
/// processes instead of going through [`main`] (`proxy.rs`; the others do not call it).
#[allow(dead_code)]
pub fn catch_signals() {
    install_signal_handlers();
}

/// Sleeps in small steps so Ctrl-C still cleans up promptly.
pub fn sleep(d: Duration) -> Result<(), String> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        check_interrupt()?;
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(100)));
    }
    check_interrupt()
}

pub fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What a benchmark program needs of the host and of its server.
pub struct Setup {
    /// Prefix of the temporary root's name.
    pub prefix: &'static str,
    /// Programs that must be on `PATH`.
    pub programs: &'static [&'static str],
    /// The apt packages that provide them, for the error message.
    pub packages: &'static str,
    /// How long the final `vd shutdown --stop-pods` may take.
    pub shutdown_limit: Duration,
}

/// The whole program: checks the host, starts the server, runs `run`, stops the server and
/// every pod (also on Ctrl-C or an error), then prints the report `run` returned.
pub fn main(setup: &Setup, run: fn(&Bench) -> Result<String, String>) {
    install_signal_handlers();
    let bin = match locate_vd() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = require_host(setup) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let bench = match Bench::start(bin, setup) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let result = run(&bench);
    if let Err(e) = &result {
        eprintln!("error: {e}\nserver log tail:\n{}", bench.log_tail(30));
    }
    eprintln!("stopping the server and all pods…");
    drop(bench);
    match result {
        Ok(report) => println!("\n{report}"),
        Err(_) => std::process::exit(1),
    }
}

/// The release `vd`: `VD_BIN`, else `target/release/vd` under the workspace root.
pub fn locate_vd() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("VD_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("VD_BIN={} does not exist", p.display()))
        };
    }
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .ancestors()
        .nth(2)
        .ok_or("cannot find the workspace root")?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_relative() {
                workspace.join(t)
            } else {
                t
            }
        })
        .unwrap_or_else(|| workspace.join("target"));
    let p = target.join("release").join("vd");
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "{} not found; build it first with `cargo build --release -p vd-cli` (or set VD_BIN)",
            p.display()
        ))
    }
}

fn require_host(setup: &Setup) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("the process runtime needs root; run the benchmark as root".into());
    }
    for bin in setup.programs {
        let on_path = std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .any(|d| Path::new(d).join(bin).is_file());
        if !on_path {
            return Err(format!(
                "`{bin}` is not installed (apt-get install {})",
                setup.packages
            ));
        }
    }
    Ok(())
}

/// A `vd server` on a temporary root. Dropping it stops the server and every pod.
pub struct Bench {
    pub bin: PathBuf,
    root: tempfile::TempDir,
    /// The server process; a benchmark may kill it and start another with
    /// [`Bench::spawn_server`].
    pub server: Mutex<Option<Child>>,
    shutdown_limit: Duration,
}

impl Bench {
    fn start(bin: PathBuf, setup: &Setup) -> Result<Bench, String> {
        let root = tempfile::Builder::new()
            .prefix(setup.prefix)
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let bench = Bench {
            bin,
            root,
            server: Mutex::new(None),
            shutdown_limit: setup.shutdown_limit,
        };
        bench.spawn_server(&[])?;
        bench.wait_server()?;
        Ok(bench)
    }

    /// Starts `vd server` on the root with `env` added, appending to `<root>/server.log`;
    /// returns without waiting for it to answer. Any previous server must have exited.
    pub fn spawn_server(&self, env: &[(&str, &str)]) -> Result<(), String> {
        self.spawn_server_with(&[], env)
    }

    /// [`Bench::spawn_server`] with extra `vd server` arguments (`--ui-addr IP:PORT`).
    pub fn spawn_server_with(&self, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root().join("server.log"))
            .map_err(|e| format!("server log: {e}"))?;
        let err = log.try_clone().map_err(|e| format!("server log: {e}"))?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(["server", "--root"])
            .arg(self.root())
            .args(args)
            .env_remove("VD_ROOT")
            .env(
                "VD_LOG",
                std::env::var("VD_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        // Its own process group: Ctrl-C reaches only this program, which then shuts down
        // the server and its pods in order.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().map_err(|e| format!("spawn vd server: {e}"))?;
        let mut server = self.server.lock().map_err(|_| "server lock poisoned")?;
        *server = Some(child);
        Ok(())
    }

    /// Waits until the server answers `vd get` (20 s at most).
    pub fn wait_server(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.vd(&["get"]).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "server did not answer within 20 s\n{}",
                    self.log_tail(30)
                ));
            }
            sleep(Duration::from_millis(100))?;
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Runs `vd ARGS --root ROOT`; returns stdout, or an error with stdout and stderr.
    pub fn vd(&self, args: &[&str]) -> Result<String, String> {
        check_interrupt()?;
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--root")
            .arg(self.root())
            .env_remove("VD_ROOT")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run vd: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "vd {} failed ({}):\nstdout: {}\nstderr: {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    pub fn json(&self, args: &[&str]) -> Result<Value, String> {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let text = self.vd(&a)?;
        serde_json::from_str(&text).map_err(|e| format!("vd {}: bad json: {e}", args.join(" ")))
    }

    pub fn write(&self, name: &str, text: &str) -> Result<String, String> {
        let p = self.root().join(name);
        std::fs::write(&p, text).map_err(|e| format!("write {}: {e}", p.display()))?;
        Ok(p.to_string_lossy().into_owned())
    }

    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.root().join("server.log"), n)
    }

    fn pod_pids(&self) -> Vec<i32> {
        let Ok(rd) = std::fs::read_dir(self.root().join("pods")) else {
            return vec![];
        };
        rd.flatten()
            .filter_map(|e| std::fs::read(e.path().join("state.json")).ok())
            .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
            .filter_map(|v| v["pid"].as_i64())
            .filter_map(|p| i32::try_from(p).ok())
            .collect()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let server = self.server.get_mut().ok().and_then(Option::take);
        if let Some(mut server) = server {
            // An orderly stop: every pod, then the server. Bounded, in case it is wedged.
            if let Ok(mut c) = Command::new(&self.bin)
                .args(["shutdown", "--stop-pods", "--root"])
                .arg(self.root.path())
                .env_remove("VD_ROOT")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                wait_until(&mut c, self.shutdown_limit);
                let _ = c.kill();
                let _ = c.wait();
            }
            wait_until(&mut server, Duration::from_secs(15));
            let _ = server.kill();
            let _ = server.wait();
        }
        // Whatever is left (a failed shutdown): kill the pods' process groups.
        for pid in self.pod_pids() {
            if pid > 1 {
                use nix::sys::signal::{kill, Signal};
                use nix::unistd::Pid;
                let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

fn wait_until(c: &mut Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `n` lines of a file (empty if it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn utc_now() -> String {
    let secs = now_ms() / 1000;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Kernel, CPUs and memory of this machine, for the report.
pub fn machine() -> String {
    let uname = Command::new("uname")
        .arg("-srm")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let cpus = Command::new("nproc")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get().to_string())
                .unwrap_or_else(|_| "?".into())
        });
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{uname}, {cpus} CPUs ({model}), {mem_gb} RAM")
}
