//! The two tiny programs the `vd` binary becomes inside a pod: `__pod-init` builds the pod's
//! private root and execs its command; `__pod-exec` joins a running pod to run a probe or a
//! user command. Both run single-threaded, before any async runtime starts, because
//! `unshare`/`setns` of a mount namespace require it.

use crate::mounts::MountOp;
use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// The hidden subcommand that starts a pod.
pub const INIT_ARG: &str = "__pod-init";
/// The hidden subcommand that runs a command inside a pod.
pub const EXEC_ARG: &str = "__pod-exec";

/// Default PATH when the pod env sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What `__pod-init` reads from its file (mode 0600: it holds the pod's env).
#[derive(Debug, Serialize, Deserialize)]
pub struct InitSpec {
    /// Host directory that becomes the pod's root.
    pub rootfs: PathBuf,
    /// How to build it.
    pub ops: Vec<MountOp>,
    /// argv.
    pub command: Vec<String>,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// Working directory inside the pod.
    pub workdir: String,
    /// The pod's own network: its address and the root's subnet (`127.X`). Absent: the pod
    /// shares the host's network.
    #[serde(default)]
    pub net: Option<PodNet>,
    /// Where to write the command's exit status (a host path, opened before the pod's root
    /// replaces the host's): the init process then stays as the command's parent, waits for it
    /// and writes it down, so a controller that adopted the pod after a restart learns how it
    /// ended. Absent: the init process becomes the command.
    #[serde(default)]
    pub exit_file: Option<PathBuf>,
}

/// What the waiter writes to [`InitSpec::exit_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
}

/// A pod's address on the root's network (see `netns.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodNet {
    /// Its address, `127.X.Y.Z`.
    pub address: String,
    /// The root's subnet, `127.X`.
    pub subnet: String,
}

/// The line the runtime writes on a pod init's stdin once the pod's `eth0` exists.
pub const NET_READY: &str = "net-ready";

fn fail(msg: String) -> ! {
    eprintln!("vd pod-init: {msg}");
    std::process::exit(127)
}

fn in_root(rootfs: &Path, p: &Path) -> PathBuf {
    rootfs.join(p.strip_prefix("/").unwrap_or(p))
}

/// Flags of the mount at `p` that a read-only remount must keep (the kernel refuses to drop
/// locked flags such as nosuid/nodev inherited from the source).
fn kept_flags(p: &Path) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let mut out = MsFlags::empty();
    if let Ok(st) = statvfs(p) {
        let f = st.flags();
        for (fs, ms) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(fs) {
                out |= ms;
            }
        }
    }
    out
}

fn apply(rootfs: &Path, op: &MountOp) -> Result<(), String> {
    let none: Option<&str> = None;
    match op {
        MountOp::Tmpfs { target } => {
            let t = in_root(rootfs, target);
            mount(
                Some("tmpfs"),
                &t,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some("mode=755"),
            )
            .map_err(|e| format!("tmpfs on {}: {e}", target.display()))
        }
        MountOp::Mkdir { path } => match std::fs::create_dir(in_root(rootfs, path)) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                Err(format!("mkdir {}: {e}", path.display()))
            }
            _ => Ok(()),
        },
        MountOp::Touch { path } => std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(in_root(rootfs, path))
            .map(drop)
            .map_err(|e| format!("create {}: {e}", path.display())),
        MountOp::Symlink { to, path } => std::os::unix::fs::symlink(to, in_root(rootfs, path))
            .map_err(|e| format!("symlink {}: {e}", path.display())),
        MountOp::Bind {
            source,
            target,
            read_only,
        } => {
            let t = in_root(rootfs, target);
            mount(
                Some(source.as_path()),
                &t,
                none,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none,
            )
            .map_err(|e| format!("bind {} -> {}: {e}", source.display(), target.display()))?;
            if *read_only {
                let flags =
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | kept_flags(&t);
                mount(none, &t, none, flags, none)
                    .map_err(|e| format!("read-only remount of {}: {e}", target.display()))?;
            }
            Ok(())
        }
    }
}

fn cstrings(items: impl IntoIterator<Item = String>) -> Vec<CString> {
    items
        .into_iter()
        .filter_map(|s| CString::new(s).ok())
        .collect()
}

fn env_strings(env: &BTreeMap<String, String>) -> Vec<CString> {
    let mut env = env.clone();
    env.entry("PATH".into())
        .or_insert_with(|| DEFAULT_PATH.into());
    cstrings(env.into_iter().map(|(k, v)| format!("{k}={v}")))
}

fn exec(command: &[String], env: &[CString]) -> ! {
    let argv = cstrings(command.iter().cloned());
    let Some(prog) = argv.first() else {
        fail("the pod has no command".into())
    };
    // execvpe searches PATH of the *calling* process, which we set to the pod's PATH.
    if let Some(path) = env
        .iter()
        .find_map(|e| e.to_str().ok()?.strip_prefix("PATH=").map(str::to_string))
    {
        std::env::set_var("PATH", path);
    }
    let err = nix::unistd::execvpe(prog, &argv, env).unwrap_err();
    fail(format!("cannot run `{}`: {err}", command[0]))
}

/// `vd __pod-init SPEC`: new session, new mount namespace, private root, exec.
pub fn run_init(spec_path: &Path) -> ! {
    let text = std::fs::read_to_string(spec_path)
        .unwrap_or_else(|e| fail(format!("read {}: {e}", spec_path.display())));
    let spec: InitSpec =
        serde_json::from_str(&text).unwrap_or_else(|e| fail(format!("bad spec: {e}")));
    // Own session and process group: the controller dying (even SIGKILL) leaves the pod
    // running, and stopping the pod signals its whole group.
    let _ = nix::unistd::setsid();
    let flags = match spec.net {
        Some(_) => CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET,
        None => CloneFlags::CLONE_NEWNS,
    };
    unshare(flags).unwrap_or_else(|e| {
        fail(format!(
            "unshare mount/network namespace: {e} (vd needs root or CAP_SYS_ADMIN)"
        ))
    });
    if let Some(net) = &spec.net {
        // The runtime creates our eth0 from outside, then says so on stdin.
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        if line.trim() != NET_READY {
            fail("the runtime did not set up the pod's network".into());
        }
        crate::netns::configure_inside(&net.address, &net.subnet)
            .unwrap_or_else(|e| fail(format!("pod network: {e}")));
        // The pod's own stdin is /dev/null, as without a network of its own.
        if let Ok(null) = std::fs::File::open("/dev/null") {
            use std::os::fd::AsFd;
            let _ = nix::unistd::dup2_stdin(null.as_fd());
        }
    }
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .unwrap_or_else(|e| fail(format!("make / private: {e}")));
    let _ = std::fs::create_dir_all(&spec.rootfs);
    mount(
        Some("tmpfs"),
        &spec.rootfs,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=755"),
    )
    .unwrap_or_else(|e| fail(format!("tmpfs root: {e}")));
    for op in &spec.ops {
        if let Err(e) = apply(&spec.rootfs, op) {
            fail(e);
        }
    }
    // Opened while the host's filesystem is still in view.
    let exit_file = spec.exit_file.as_ref().map(|p| {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(p)
            .unwrap_or_else(|e| fail(format!("open {}: {e}", p.display())))
    });
    nix::unistd::chroot(&spec.rootfs).unwrap_or_else(|e| fail(format!("chroot: {e}")));
    if nix::unistd::chdir(spec.workdir.as_str()).is_err() {
        let _ = nix::unistd::chdir("/");
    }
    if let Some(file) = exit_file {
        wait_and_record(&spec.command, &spec.env, file)
    }
    exec(&spec.command, &env_strings(&spec.env))
}

/// Runs the command as a child and stays as its parent: stop signals reach the whole process
/// group, so the waiter blocks them (the child starts with none blocked: `std::process` resets
/// the mask) and ends with the command, writing its exit status to `file` and then ending the
/// same way (the same code, or the same signal).
fn wait_and_record(
    command: &[String],
    env: &BTreeMap<String, String>,
    mut file: std::fs::File,
) -> ! {
    use nix::sys::signal::{SigSet, Signal};
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    let stops = [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ];
    let mut blocked = SigSet::empty();
    for s in stops {
        blocked.add(s);
    }
    let _ = blocked.thread_block();
    let Some((prog, args)) = command.split_first() else {
        fail("the pod has no command".into())
    };
    // As for `exec`: the program is looked up on the pod's PATH (the command's own env).
    let mut env = env.clone();
    env.entry("PATH".into())
        .or_insert_with(|| DEFAULT_PATH.into());
    let mut child = std::process::Command::new(prog)
        .args(args)
        .env_clear()
        .envs(&env)
        .spawn()
        .unwrap_or_else(|e| fail(format!("cannot run `{prog}`: {e}")));
    let status = child
        .wait()
        .unwrap_or_else(|e| fail(format!("wait for `{prog}`: {e}")));
    let record = ExitRecord {
        code: status.code(),
        signal: status.signal(),
    };
    if let Ok(json) = serde_json::to_vec(&record) {
        let _ = file.write_all(&json);
        let _ = file.sync_all();
    }
    if let Some(sig) = record.signal.and_then(|s| Signal::try_from(s).ok()) {
        let _ = blocked.thread_unblock();
        let _ = nix::sys::signal::raise(sig);
    }
    std::process::exit(record.code.unwrap_or(128 + record.signal.unwrap_or(0)))
}

/// `vd __pod-exec PID ROOTFS WORKDIR -- ARGV…`: join the pod's mount namespace and run ARGV
/// with the environment this process was given.
pub fn run_exec(args: &[String]) -> ! {
    let [pid, rootfs, workdir, dashdash, argv @ ..] = args else {
        fail("usage: __pod-exec PID ROOTFS WORKDIR -- ARGV...".into())
    };
    if dashdash != "--" || argv.is_empty() {
        fail("usage: __pod-exec PID ROOTFS WORKDIR -- ARGV...".into());
    }
    // The network first: joining it needs the host's view of /proc, which the mount
    // namespace's private root changes. A pod on the host's network joins the same one.
    let net = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .unwrap_or_else(|e| fail(format!("pod process {pid} is gone: {e}")));
    setns(&net, CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| fail(format!("join pod network: {e}")));
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
        .unwrap_or_else(|e| fail(format!("pod process {pid} is gone: {e}")));
    setns(&ns, CloneFlags::CLONE_NEWNS).unwrap_or_else(|e| fail(format!("join pod: {e}")));
    nix::unistd::chroot(rootfs.as_str()).unwrap_or_else(|e| fail(format!("chroot: {e}")));
    if nix::unistd::chdir(workdir.as_str()).is_err() {
        let _ = nix::unistd::chdir("/");
    }
    let env: BTreeMap<String, String> = std::env::vars().collect();
    exec(argv, &env_strings(&env))
}
