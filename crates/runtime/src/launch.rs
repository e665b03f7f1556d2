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
