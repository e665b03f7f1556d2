//! Pod runtimes: the [`Runtime`] trait the controller drives, and the `process` backend that
//! runs each pod as a host process tree in its own mount namespace.
//!
//! A runtime knows how to start, find again (adopt), stop and exec into pods, and how to keep
//! per-pod volumes. It decides nothing: what to start and when is the server's business.

#[cfg(feature = "docker")]
pub mod docker;
pub mod docker_hosts;
pub mod error;
pub mod in_place;
pub mod init;
pub mod launch;
pub mod mounts;
pub mod netns;
pub mod process;
pub mod procfs;

use async_trait::async_trait;
use std::path::PathBuf;
use std::time::Duration;

pub use error::RuntimeError;
pub use launch::{ExecOutput, ExitInfo, PodInfo, PodLaunch};

/// A backend that runs pods.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Short name shown to users (`process`, `docker`).
    fn name(&self) -> &'static str;
    /// The address a pod sees as its own (`VOODU_POD_IP`) given its allocated host address.
    fn pod_ip(&self, allocated: &str) -> String {
        allocated.to_string()
    }
    /// Whether pods bind ports on the host's own addresses (the controller then checks an
    /// address's ports are free before allocating it to a pod).
    fn pods_share_host_ports(&self) -> bool {
        true
    }
    /// Pod subnets (`127.X`) that other roots on this host use; a new root avoids them.
    fn taken_subnets(&self) -> Vec<String> {
        Vec::new()
    }
    /// Gives back what the runtime set up on the host for the root's pods, once every pod has
    /// stopped (`vd shutdown --stop-pods`).
    async fn release(&self) -> Result<(), RuntimeError> {
        Ok(())
    }
    /// Whether cpu/memory limits are enforced, or why not.
    fn limits_support(&self) -> Result<(), String>;
    /// Makes sure a per-pod volume exists.
    async fn ensure_volume(&self, name: &str) -> Result<(), RuntimeError>;
    /// Destroys a volume and its data.
    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError>;
    /// Names of all volumes.
    async fn list_volumes(&self) -> Result<Vec<String>, RuntimeError>;
    /// Where an existing volume's files are on this host. `vd redis:restore` replaces a
    /// stopped pod's `dump.rdb` in place: the pod is down, so nothing inside it can do the
    /// write, and the controller runs on the same host as the pods (process pods bind loopback
    /// addresses; docker publishes ports on them), so the host path is the direct way in.
    async fn volume_path(&self, name: &str) -> Result<PathBuf, RuntimeError>;
    /// Starts a pod.
    async fn start(&self, launch: &PodLaunch) -> Result<Box<dyn RunningPod>, RuntimeError>;
    /// Finds a pod an earlier controller started that still runs, without touching it.
    async fn adopt(&self, pod: &str) -> Result<Option<Box<dyn RunningPod>>, RuntimeError>;
    /// How a run to completion ([`PodLaunch::keep_exit`]) an earlier controller started ended,
    /// when it ended while no controller watched it; `None` when that is not known.
    async fn recorded_exit(&self, _pod: &str) -> Option<ExitInfo> {
        None
    }
    /// Pods this runtime has state for (running or not).
    async fn known_pods(&self) -> Result<Vec<String>, RuntimeError>;
    /// Forgets a pod that was stopped for good (its volumes stay).
    async fn forget(&self, pod: &str) -> Result<(), RuntimeError>;
    /// Publishes the names pods resolve: per-ordinal names for every pod, the shared alias for
    /// ready ones. `rotation` varies the alias order between publications.
    async fn publish_names(
        &self,
        entries: &[vd_core::hosts::HostEntry],
        rotation: usize,
    ) -> Result<(), RuntimeError>;
    /// Where a pod's output is written.
    fn log_path(&self, pod: &str) -> PathBuf;
}

/// A started (or adopted) pod.
#[async_trait]
pub trait RunningPod: Send + Sync {
    /// Identity and launch facts.
    fn info(&self) -> &PodInfo;
    /// Where the host reaches the pod's own ports for tcp/http probes: the pod itself, never a
    /// proxy that would accept connections for it.
    fn probe_ip(&self) -> String {
        self.info().ip.clone()
    }
    /// Called before the pod is reported ready: a runtime whose names cannot follow readiness
    /// cheaply (docker) adds the pod to its shared alias here, once.
    async fn publish_ready(&self) -> Result<(), RuntimeError> {
        Ok(())
    }
    /// Resolves when the pod's main process has exited.
    async fn wait(&self) -> ExitInfo;
    /// Stops the pod: SIGTERM to its process group, SIGKILL after `grace`.
    async fn stop(&self, grace: Duration) -> Result<ExitInfo, RuntimeError>;
    /// The env the pod was started with (what [`RunningPod::exec`] runs with when given none).
    fn env(&self) -> std::collections::BTreeMap<String, String>;
    /// Runs a command inside the pod (its mounts; `env`, or the env it was started with) and
    /// returns its exit code and what it printed.
    async fn exec(
        &self,
        argv: &[String],
        env: Option<&std::collections::BTreeMap<String, String>>,
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError>;
}
