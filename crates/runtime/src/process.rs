//! The process runtime: each pod is a host process tree in its own session and mount
//! namespace (see [`crate::init`]), tracked by a pid file holding pid and start time so a
//! restarted controller can adopt it, and watched through a pidfd so an exit is known at once.

use crate::init::{InitSpec, EXEC_ARG, INIT_ARG};
use crate::launch::{ExecOutput, ExitInfo, PodInfo, PodLaunch};
use crate::mounts::{plan_root, PodMount, RealFs};
use crate::{procfs, RunningPod, Runtime, RuntimeError};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// Runs pods as namespaced host processes under a root directory.
pub struct ProcessRuntime {
    root: PathBuf,
    exe: PathBuf,
    /// A short hash of the root: names its network interfaces on the host.
    label: String,
    /// Pods start concurrently; the root's host network is created by one of them at a time.
    net_setup: tokio::sync::Mutex<()>,
}

/// What survives a controller restart: enough to find the process again and exec into it.
#[derive(Debug, Serialize, Deserialize)]
struct PodState {
    pid: u32,
    start_ticks: u64,
    hash: String,
    ip: String,
    started_ms: i64,
    rootfs: PathBuf,
    workdir: String,
    /// Whether the pod has a network namespace of its own (false for pods started before vd
    /// gave them one: they bind their address on the host).
    #[serde(default)]
    own_net: bool,
}

/// Debian's Redis, which the shim runs.
const REAL_REDIS_SERVER: &str = "/usr/bin/redis-server";
/// Where the shim is in every pod: before `/usr/bin` on the default PATH.
const SHIM_TARGET: &str = "/usr/local/bin/redis-server";

/// The official Redis images build Redis with protected mode off: in a container no client
/// comes from loopback, so protected mode (on when no password is set) would refuse every
/// other pod and the host. Debian's binary defaults to on; a pod here has a network of its
/// own just like a container, so every pod gets this `redis-server` first on its PATH, which
/// turns protected mode off the same way, unless the arguments or the config file set it, and
/// leaves sentinel mode alone. It is the same script as in the docker runtime's local image.
const REDIS_SERVER_SHIM: &str = r#"#!/bin/sh
real=/usr/bin/redis-server
case " $* " in
*protected-mode* | *" --sentinel "*) exec "$real" "$@" ;;
esac
case $1 in
-v | --version | -h | --help | --test-memory | --check-system) exec "$real" "$@" ;;
"" | --*) exec "$real" --protected-mode no "$@" ;;
esac
if [ -f "$1" ] && grep -qiE '^[[:space:]]*protected-mode' "$1"; then
  exec "$real" "$@"
fi
conf=$1
shift
exec "$real" "$conf" --protected-mode no "$@"
"#;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn mkdir_private(p: &Path) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(p).map_err(|e| RuntimeError::at("create", p, e))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| RuntimeError::at("chmod", p, e))
}

fn write_private(p: &Path, data: &[u8]) -> Result<(), RuntimeError> {
    let tmp = p.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| RuntimeError::at("write", &tmp, e))?;
    f.write_all(data)
        .map_err(|e| RuntimeError::at("write", &tmp, e))?;
    std::fs::rename(&tmp, p).map_err(|e| RuntimeError::at("rename", p, e))
}

/// The Debian package that ships a program, for the "not installed" hint.
fn package_for(program: &str) -> &str {
    match program {
        "redis-server" | "redis-check-rdb" | "redis-check-aof" => "redis-server",
        "redis-sentinel" => "redis-sentinel",
        "redis-cli" | "redis-benchmark" => "redis-tools",
        other => other,
    }
}

/// Finds a bare program name on the host's PATH (pods see the host's system directories).
fn on_path(program: &str, env: &BTreeMap<String, String>) -> bool {
    if program.contains('/') {
        return true; // an absolute or relative path may point into a mount; init reports it
    }
    let path = env
        .get("PATH")
        .map(String::as_str)
        .unwrap_or(crate::init::DEFAULT_PATH);
    path.split(':')
        .any(|d| Path::new(d).join(program).is_file())
}

/// A pidfd for `pid`: readable once the process exits, and immune to pid reuse.
// `unsafe`: neither std (its PidFd is unstable) nor nix offers a safe pidfd_open, so this is the
// raw syscall, and the descriptor it returns has to be adopted by hand.
#[allow(unsafe_code)]
fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, touches no memory of ours, and returns a new fd
    // or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a fresh, valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `fd` registered with tokio's reactor for readability (a pidfd turns readable at exit).
// `unsafe`: tokio's AsyncFd registration is an unsafe fn (the fd must stay open and the same for
// the AsyncFd's life), and tokio has no safe constructor that is not deprecated as unsound.
#[allow(unsafe_code)]
fn readable(fd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: `fd` is an OwnedFd moved into the AsyncFd, so it stays open and unchanged for
    // the AsyncFd's whole life.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into())
}

impl ProcessRuntime {
    /// A runtime keeping its state under `root`; `exe` is the `vd` binary (for pod-init/exec).
    pub fn new(root: &Path, exe: PathBuf) -> Result<Self, RuntimeError> {
        let root = root.to_path_buf();
        for d in ["pods", "volumes", "logs", "run"] {
            mkdir_private(&root.join(d))?;
        }
        // What the official Redis images do, for manifests written for them (see the shim).
        let shim = root.join("run/redis-server");
        if std::fs::read(&shim).ok().as_deref() != Some(REDIS_SERVER_SHIM.as_bytes()) {
            std::fs::write(&shim, REDIS_SERVER_SHIM)
                .and_then(|()| {
                    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755))
                })
                .map_err(|e| RuntimeError::at("write", &shim, e))?;
        }
        let hosts = root.join("run/hosts");
        if !hosts.exists() {
            std::fs::write(&hosts, vd_core::hosts::render(&[], 0))
                .map_err(|e| RuntimeError::at("write", &hosts, e))?;
        }
        let digest = vd_core::hash::content_digest(root.to_string_lossy().as_bytes());
        let label = vd_core::hash::short(&digest).to_string();
        Ok(Self {
            root,
            exe,
            label,
            net_setup: tokio::sync::Mutex::new(()),
        })
    }

    /// The host side of the root's pod network for a pod address (none for an address outside
    /// `127.0.0.0/8`, which a root never allocates).
    fn host_net(&self, address: &str) -> Option<crate::netns::HostNet> {
        crate::netns::HostNet::subnet_of(address)
            .map(|subnet| crate::netns::HostNet::new(&self.label, &subnet))
    }

    fn pod_dir(&self, pod: &str) -> PathBuf {
        self.root.join("pods").join(pod)
    }

    fn volume_dir(&self, name: &str) -> PathBuf {
        self.root.join("volumes").join(name)
    }

    fn watch(
        &self,
        pod: &str,
        state: PodState,
        child: Option<std::process::Child>,
    ) -> Result<Box<dyn RunningPod>, RuntimeError> {
        let fd =
            pidfd_open(state.pid).map_err(|e| RuntimeError::io(format!("watch pod {pod}"), e))?;
        let fd = readable(fd).map_err(|e| RuntimeError::io(format!("watch pod {pod}"), e))?;
        let init = std::fs::read(self.pod_dir(pod).join("init.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<InitSpec>(&b).ok());
        let exit_file = init.as_ref().and_then(|s| s.exit_file.clone());
        let env = init.map(|s| s.env).unwrap_or_default();
        Ok(Box::new(ProcessPod {
            info: PodInfo {
                pod: pod.to_string(),
                id: format!("pid:{}:{}", state.pid, state.start_ticks),
                pid: Some(state.pid),
                ip: state.ip.clone(),
                hash: state.hash.clone(),
                started_ms: state.started_ms,
            },
            start_ticks: state.start_ticks,
            rootfs: state.rootfs,
            workdir: state.workdir,
            env,
            exe: self.exe.clone(),
            pidfd: fd,
            child: Mutex::new(child),
            exit: Mutex::new(None),
            exit_file,
        }))
    }
}

/// Where a run to completion's waiter writes its command's exit status, in the pod's directory.
const EXIT_FILE: &str = "exit.json";

/// An exit status as the waiter wrote it.
fn exit_info(bytes: &[u8]) -> Option<ExitInfo> {
    let r: crate::init::ExitRecord = serde_json::from_slice(bytes).ok()?;
    Some(ExitInfo {
        code: r.code,
        signal: r.signal,
    })
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    fn limits_support(&self) -> Result<(), String> {
        Err("not enforced: the process runtime does not apply cgroup limits yet".into())
    }

    fn pod_ip(&self, _allocated: &str) -> String {
        // Each pod has a network namespace of its own: it binds all of its addresses, as in a
        // container; the allocated address is where the host and the other pods reach it.
        "0.0.0.0".into()
    }

    fn pods_share_host_ports(&self) -> bool {
        false
    }

    fn taken_subnets(&self) -> Vec<String> {
        crate::netns::subnets_in_use(&crate::netns::HostNet::new(&self.label, "127.0"))
    }

    async fn release(&self) -> Result<(), RuntimeError> {
        // The subnet does not matter for removal: the names come from the root alone.
        crate::netns::remove_host(&crate::netns::HostNet::new(&self.label, "127.0")).await
    }

    async fn ensure_volume(&self, name: &str) -> Result<(), RuntimeError> {
        let p = self.volume_dir(name);
        std::fs::create_dir_all(&p).map_err(|e| RuntimeError::at("create volume", &p, e))
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        let p = self.volume_dir(name);
        match std::fs::remove_dir_all(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(RuntimeError::at("remove volume", &p, e))
            }
            _ => Ok(()),
        }
    }

    async fn list_volumes(&self) -> Result<Vec<String>, RuntimeError> {
        let dir = self.root.join("volumes");
        let rd = std::fs::read_dir(&dir).map_err(|e| RuntimeError::at("list", &dir, e))?;
        let mut v: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        v.sort();
        Ok(v)
    }

    async fn volume_path(&self, name: &str) -> Result<PathBuf, RuntimeError> {
        // A claim is a plain directory under the root, bind-mounted into the pod.
        let p = self.volume_dir(name);
        std::fs::metadata(&p)
            .map(|_| p.clone())
            .map_err(|e| RuntimeError::at("find volume", &p, e))
    }

    async fn start(&self, l: &PodLaunch) -> Result<Box<dyn RunningPod>, RuntimeError> {
        let program = l.command.first().ok_or_else(|| RuntimeError::Invalid {
            pod: l.pod.clone(),
            message: "no command: the process runtime runs host programs and cannot run an image's default command; set `command = [\"PROGRAM\", ...]`, or run the server with `--runtime docker`".into(),
        })?;
        if !on_path(program, &l.env) {
            return Err(RuntimeError::MissingProgram {
                pod: l.pod.clone(),
                program: program.clone(),
                package: package_for(program).to_string(),
            });
        }
        let mut mounts = Vec::new();
        for (volume, target) in &l.volumes {
            self.ensure_volume(volume).await?;
            mounts.push(PodMount {
                source: self.volume_dir(volume),
                target: target.into(),
                read_only: false,
            });
        }
        for (source, target, ro) in &l.binds {
            mounts.push(PodMount {
                source: source.into(),
                target: target.into(),
                read_only: *ro,
            });
        }
        mounts.push(PodMount {
            source: self.root.join("run/hosts"),
            target: "/etc/hosts".into(),
            read_only: true,
        });
        if Path::new(REAL_REDIS_SERVER).exists()
            && !mounts.iter().any(|m| m.target == Path::new(SHIM_TARGET))
        {
            mounts.push(PodMount {
                source: self.root.join("run/redis-server"),
                target: SHIM_TARGET.into(),
                read_only: true,
            });
        }
        let hide: Vec<PathBuf> = std::fs::canonicalize(&self.root).into_iter().collect();
        let ops = plan_root(&RealFs, &mounts, &hide).map_err(|source| RuntimeError::Mounts {
            pod: l.pod.clone(),
            source,
        })?;

        let dir = self.pod_dir(&l.pod);
        mkdir_private(&dir)?;
        let rootfs = dir.join("rootfs");
        let host_net = self.host_net(&l.ip);
        if let Some(net) = &host_net {
            let _one_at_a_time = self.net_setup.lock().await;
            crate::netns::ensure_host(net).await?;
            // The address may have been kept on the host for an older pod of the same name.
            crate::netns::release_from_host(&l.ip).await?;
        }
        let spec = InitSpec {
            rootfs: rootfs.clone(),
            ops,
            command: l.command.clone(),
            env: l.env.clone(),
            workdir: l.workdir.clone(),
            net: host_net.as_ref().map(|n| crate::init::PodNet {
                address: l.ip.clone(),
                subnet: n.subnet.clone(),
            }),
            exit_file: l.keep_exit.then(|| dir.join(EXIT_FILE)),
        };
        let spec_path = dir.join("init.json");
        let json = serde_json::to_vec(&spec)
            .map_err(|e| RuntimeError::io("encode init spec", e.into()))?;
        write_private(&spec_path, &json)?;

        let log_path = self.log_path(&l.pod);
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .map_err(|e| RuntimeError::at("open log", &log_path, e))?;
        let _ = writeln!(
            log,
            "--- vd: starting {} (spec {})",
            l.pod,
            vd_core::hash::short(&l.hash)
        );
        let err = log
            .try_clone()
            .map_err(|e| RuntimeError::at("open log", &log_path, e))?;
        let mut child = std::process::Command::new(&self.exe)
            .arg(INIT_ARG)
            .arg(&spec_path)
            .env_clear()
            // With a network of its own, the init waits on stdin for its eth0 (netns.rs).
            .stdin(if host_net.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| RuntimeError::io(format!("start pod {}", l.pod), e))?;
        let pid = child.id();
        if let Some(net) = &host_net {
            let linked = crate::netns::add_pod_link(net, pid, &l.ip).await;
            let told = linked.and_then(|()| {
                let mut stdin = child.stdin.take().ok_or_else(|| {
                    RuntimeError::io(
                        "start pod",
                        std::io::Error::other("no stdin to the pod init"),
                    )
                })?;
                writeln!(stdin, "{}", crate::init::NET_READY)
                    .map_err(|e| RuntimeError::io(format!("start pod {}", l.pod), e))
            });
            if let Err(e) = told {
                // Never leave a pod waiting for a network that will not come.
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        }
        let start_ticks = procfs::stat(pid).map(|(_, s)| s).unwrap_or(0);
        let state = PodState {
            pid,
            start_ticks,
            hash: l.hash.clone(),
            ip: l.ip.clone(),
            started_ms: now_ms(),
            rootfs,
            workdir: l.workdir.clone(),
            own_net: host_net.is_some(),
        };
        let json = serde_json::to_vec(&state)
            .map_err(|e| RuntimeError::io("encode pod state", e.into()))?;
        write_private(&dir.join("state.json"), &json)?;
        tracing::info!(pod = %l.pod, pid, "pod started");
        self.watch(&l.pod, state, Some(child))
    }

    async fn adopt(&self, pod: &str) -> Result<Option<Box<dyn RunningPod>>, RuntimeError> {
        let Ok(bytes) = std::fs::read(self.pod_dir(pod).join("state.json")) else {
            return Ok(None);
        };
        let Ok(state) = serde_json::from_slice::<PodState>(&bytes) else {
            return Ok(None);
        };
        if !procfs::alive(state.pid, state.start_ticks) {
            return Ok(None);
        }
        if !state.own_net {
            // Started by an older vd on the host's network: its address must stay the host's
            // own, although the root's pod network now takes the rest of the subnet.
            crate::netns::keep_on_host(&state.ip).await?;
        }
        tracing::info!(pod, pid = state.pid, "pod adopted");
        self.watch(pod, state, None).map(Some)
    }

    async fn recorded_exit(&self, pod: &str) -> Option<ExitInfo> {
        let bytes = std::fs::read(self.pod_dir(pod).join(EXIT_FILE)).ok()?;
        exit_info(&bytes)
    }

    async fn known_pods(&self) -> Result<Vec<String>, RuntimeError> {
        let dir = self.root.join("pods");
        let rd = std::fs::read_dir(&dir).map_err(|e| RuntimeError::at("list", &dir, e))?;
        Ok(rd
            .flatten()
            .filter(|e| e.path().join("state.json").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect())
    }

    async fn forget(&self, pod: &str) -> Result<(), RuntimeError> {
        let dir = self.pod_dir(pod);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(RuntimeError::at("remove", &dir, e))
            }
            _ => Ok(()),
        }
    }

    async fn publish_names(
        &self,
        entries: &[vd_core::hosts::HostEntry],
        rotation: usize,
    ) -> Result<(), RuntimeError> {
        // In place, never renamed: pods bind the file's inode.
        let p = self.root.join("run/hosts");
        crate::in_place::overwrite(&p, vd_core::hosts::render(entries, rotation).as_bytes())
            .map_err(|e| RuntimeError::at("write", &p, e))
    }

    fn log_path(&self, pod: &str) -> PathBuf {
        self.root.join("logs").join(format!("{pod}.log"))
    }
}

struct ProcessPod {
    info: PodInfo,
    start_ticks: u64,
    rootfs: PathBuf,
    workdir: String,
    env: BTreeMap<String, String>,
    exe: PathBuf,
    pidfd: AsyncFd<OwnedFd>,
    child: Mutex<Option<std::process::Child>>,
    exit: Mutex<Option<ExitInfo>>,
    /// Where its waiter writes the exit status (a run to completion), for a pod this process
    /// did not start and so cannot reap.
    exit_file: Option<PathBuf>,
}

impl ProcessPod {
    fn pid(&self) -> i32 {
        self.info.pid.unwrap_or(0) as i32
    }

    fn reap(&self) -> ExitInfo {
        use std::os::unix::process::ExitStatusExt;
        if let Ok(mut guard) = self.exit.lock() {
            if let Some(e) = *guard {
                return e;
            }
            self.kill_leftovers();
            let info = self
                .child
                .lock()
                .ok()
                .and_then(|mut c| c.as_mut().and_then(|c| c.try_wait().ok().flatten()))
                .map(|st| ExitInfo {
                    code: st.code(),
                    signal: st.signal(),
                })
                .or_else(|| self.recorded_exit())
                .unwrap_or_default();
            *guard = Some(info);
            return info;
        }
        ExitInfo::default()
    }

    /// What the pod's waiter wrote down (an adopted run to completion).
    fn recorded_exit(&self) -> Option<ExitInfo> {
        exit_info(&std::fs::read(self.exit_file.as_ref()?).ok()?)
    }

    /// The pod's main process leads its own session and process group;
    /// anything it started in the background (`redis-server &` in a shell
    /// entrypoint) stays in that group after the leader exits and would keep
    /// running, holding the pod's ports and network namespace. A pod ends
    /// when its main process ends, so the rest of the group goes with it.
    /// Processes that left the group (`setsid`, double-fork daemons) are out
    /// of reach here.
    fn kill_leftovers(&self) {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        let pid = self.pid();
        if pid <= 0 {
            return;
        }
        let ours = self.child.lock().map(|c| c.is_some()).unwrap_or(false);
        // Our own child is an unreaped zombie here, so its pid (and the
        // group id) cannot have been recycled. For an adopted pod we are not
        // the parent: if anything now owns that pid, it is not our pod.
        if !ours && std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        // ESRCH just means nothing was left behind.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        use nix::sys::signal::{kill, killpg};
        use nix::unistd::Pid;
        let pid = self.pid();
        if pid <= 0 || self.exit.lock().map(|e| e.is_some()).unwrap_or(false) {
            return;
        }
        // Never signal a recycled pid.
        if self.start_ticks != 0 && !procfs::alive(pid as u32, self.start_ticks) {
            return;
        }
        if killpg(Pid::from_raw(pid), sig).is_err() {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }
}

#[async_trait]
impl RunningPod for ProcessPod {
    fn info(&self) -> &PodInfo {
        &self.info
    }

    fn env(&self) -> BTreeMap<String, String> {
        self.env.clone()
    }

    async fn wait(&self) -> ExitInfo {
        loop {
            match self.pidfd.readable().await {
                Ok(_) => return self.reap(),
                Err(e) => {
                    tracing::warn!(pod = %self.info.pod, error = %e, "pidfd wait failed; polling");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if !procfs::alive(self.pid() as u32, self.start_ticks) {
                        return self.reap();
                    }
                }
            }
        }
    }

    async fn stop(&self, grace: Duration) -> Result<ExitInfo, RuntimeError> {
        use nix::sys::signal::Signal;
        self.signal(Signal::SIGTERM);
        if let Ok(e) = tokio::time::timeout(grace, self.wait()).await {
            return Ok(e);
        }
        tracing::warn!(pod = %self.info.pod, "pod ignored SIGTERM; killing");
        self.signal(Signal::SIGKILL);
        tokio::time::timeout(Duration::from_secs(10), self.wait())
            .await
            .map_err(|_| RuntimeError::Timeout(Duration::from_secs(10)))
    }

    async fn exec(
        &self,
        argv: &[String],
        env: Option<&BTreeMap<String, String>>,
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.arg(EXEC_ARG)
            .arg(self.pid().to_string())
            .arg(&self.rootfs)
            .arg(&self.workdir)
            .arg("--")
            .args(argv)
            .env_clear()
            .envs(env.unwrap_or(&self.env))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| RuntimeError::io("exec in pod", e))?;
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let run = async {
            let mut output = ExecOutput::default();
            let mut truncated = false;
            let (stdout, stderr) = tokio::join!(read_capped(out), read_capped(err));
            ExecOutput::keep(&mut output.stdout, &stdout.0, &mut truncated);
            ExecOutput::keep(&mut output.stderr, &stderr.0, &mut truncated);
            output.truncated = truncated || stdout.1 || stderr.1;
            let status = child.wait().await?;
            output.code = status.code().unwrap_or(-1);
            Ok::<_, std::io::Error>(output)
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(e)) => Err(RuntimeError::io("exec in pod", e)),
            Err(_) => Err(RuntimeError::Timeout(timeout)),
        }
    }
}

/// Reads a child's stream to its end, keeping at most [`ExecOutput::LIMIT`] bytes; whether
/// more came.
async fn read_capped(stream: Option<impl tokio::io::AsyncRead + Unpin>) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt;
    let (mut kept, mut truncated) = (Vec::new(), false);
    let Some(mut stream) = stream else {
        return (kept, truncated);
    };
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, truncated),
            Ok(n) => ExecOutput::keep(&mut kept, &buf[..n], &mut truncated),
        }
    }
}
