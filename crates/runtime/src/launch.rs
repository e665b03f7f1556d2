//! What the controller hands a runtime to start a pod, and what it gets back.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use vd_core::{Limits, PortSpec, ResourceRef};

/// Everything a runtime needs to start one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodLaunch {
    /// Pod name, `<scope>-<name>.<ord>`.
    pub pod: String,
    /// The owning workload.
    pub owner: ResourceRef,
    /// Ordinal.
    pub ordinal: u32,
    /// The pod's address (a loopback address on the process runtime).
    pub ip: String,
    /// Spec hash of the template it runs.
    pub hash: String,
    /// Image (informational on the process runtime).
    pub image: Option<String>,
    /// argv.
    pub command: Vec<String>,
    /// Complete environment.
    pub env: BTreeMap<String, String>,
    /// Working directory inside the pod.
    pub workdir: String,
    /// Per-pod volumes: (volume name, mount path).
    pub volumes: Vec<(String, String)>,
    /// Host path binds: (host path, pod path, read-only).
    pub binds: Vec<(String, String, bool)>,
    /// Ports.
    pub ports: Vec<PortSpec>,
    /// Limits.
    pub limits: Limits,
    /// A run to completion (a cronjob's): its exit status must be known even when the
    /// controller that started it is gone by the time it ends. On the process runtime the pod
    /// then keeps a small waiter that writes the status down; docker keeps it anyway.
    #[serde(default)]
    pub keep_exit: bool,
}

/// Facts about a running pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodInfo {
    /// Pod name.
    pub pod: String,
    /// Runtime id (`pid:<pid>:<start>` or a container id).
    pub id: String,
    /// Host pid of the main process, where there is one.
    pub pid: Option<u32>,
    /// Address.
    pub ip: String,
    /// Spec hash it was started with.
    pub hash: String,
    /// Start time, unix ms.
    pub started_ms: i64,
}

/// What a command run inside a pod printed, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// Its exit code (-1 when it was killed by a signal).
    pub code: i32,
    /// Its standard output, at most [`ExecOutput::LIMIT`] bytes.
    pub stdout: Vec<u8>,
    /// Its standard error, at most [`ExecOutput::LIMIT`] bytes.
    pub stderr: Vec<u8>,
    /// Whether either stream was longer than the limit (the rest was read and dropped).
    pub truncated: bool,
}

impl ExecOutput {
    /// How much of each stream is kept: enough for any probe's or `vd exec`'s answer, bounded
    /// so a runaway command cannot fill the controller's memory.
    pub const LIMIT: usize = 4 << 20;

    /// Appends `bytes` to a stream, keeping at most [`ExecOutput::LIMIT`] bytes.
    pub fn keep(stream: &mut Vec<u8>, bytes: &[u8], truncated: &mut bool) {
        let room = Self::LIMIT.saturating_sub(stream.len());
        if bytes.len() > room {
            *truncated = true;
        }
        stream.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The last non-empty line the command printed (stderr first, where tools explain a
    /// failure), at most 200 characters: what a failed probe shows.
    pub fn last_line(&self) -> Option<String> {
        [&self.stderr, &self.stdout].into_iter().find_map(|s| {
            let text = String::from_utf8_lossy(s);
            text.lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(|l| l.chars().take(200).collect())
        })
    }
}

/// How a pod's main process ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code, when it exited normally and we could learn it.
    pub code: Option<i32>,
    /// Signal that killed it, when known.
    pub signal: Option<i32>,
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "killed by signal {s}"),
            (None, None) => write!(f, "exited"),
        }
    }
}
