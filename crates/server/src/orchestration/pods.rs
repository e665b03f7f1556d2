//! The pod table's shared state: what the controller and a pod's supervisor share (the view
//! `vd get pods` shows, whether it is stopping, held or declared current for a new hash) and
//! the commands the controller sends. Plain state, no tasks.

use crate::types::{PodState, PodView};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use vd_core::ResourceRef;
use vd_runtime::RunningPod;

/// What the controller can ask of a pod's supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodCmd {
    /// Stop the pod for good.
    Stop,
    /// Stop it and start it again with the current desired spec.
    Replace,
    /// [`PodShared::held`] was set: stop the pod and keep it stopped until it is cleared.
    Hold,
    /// [`PodShared::held`] was cleared: start the held pod again.
    Release,
}

/// A running pod's handle in the pod table: commands run in it through the runtime.
#[derive(Clone)]
pub struct ExecHandle(pub Arc<dyn RunningPod>);

impl std::fmt::Debug for ExecHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExecHandle({})", self.0.info().pod)
    }
}

/// State a supervisor shares with the controller.
#[derive(Debug, Clone)]
pub struct PodShared {
    /// What `vd get pods` shows.
    pub view: PodView,
    /// Being stopped or replaced.
    pub terminating: bool,
    /// Env for exec probes when it changed since the pod started.
    pub probe_env: Option<std::collections::BTreeMap<String, String>>,
    /// The hash the pod counts as running after a `--no-restart` config change.
    pub hash_override: Option<String>,
    /// The running process, for `vd exec` (none while the pod does not run).
    pub running: Option<ExecHandle>,
    /// Kept stopped (neither restarted nor replaced) while set, with why: `vd redis:restore`
    /// replaces the files of a stopped master. See [`PodHold`].
    pub held: Option<String>,
}

impl PodShared {
    /// A pod not started yet.
    pub fn new(owner: &ResourceRef, ordinal: u32, pod: &str) -> Self {
        Self {
            view: PodView {
                kind: owner.kind,
                scope: owner.scope.clone(),
                name: owner.name.clone(),
                pod: pod.to_string(),
                ordinal,
                address: Vec::new(),
                ip: String::new(),
                net_ip: String::new(),
                state: PodState::Pending,
                ready: false,
                restarts: 0,
                pid: None,
                id: None,
                hash: String::new(),
                started_ms: None,
                message: None,
            },
            terminating: false,
            running: None,
            probe_env: None,
            hash_override: None,
            held: None,
        }
    }
}

/// Why a pod cannot be held stopped.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// No supervisor runs it.
    #[error("pod {0} is not supervised")]
    NotSupervised(String),
    /// It is being stopped or replaced.
    #[error("it is being stopped or replaced")]
    Terminating,
    /// Something else holds it already.
    #[error("it is already held stopped")]
    AlreadyHeld,
    /// Its supervisor ended.
    #[error("its supervisor is gone")]
    SupervisorGone,
    /// A lock was poisoned by a panicked task.
    #[error("the pod table is unusable after a task panicked")]
    Poisoned,
}

/// Keeps a supervised pod stopped until dropped (then it starts again, with its current
/// desired spec). Neither the supervisor's restarts nor the reconcile loop start it meanwhile:
/// the pod stays in the pod table, unready, with its hash, so the planner neither creates nor
/// replaces it.
pub struct PodHold {
    shared: Arc<Mutex<PodShared>>,
    cmd: mpsc::UnboundedSender<PodCmd>,
}

impl PodHold {
    /// Holds the pod whose shared state and command channel these are; `why` is shown in
    /// `vd get pods`.
    pub(crate) fn new(
        shared: Arc<Mutex<PodShared>>,
        cmd: mpsc::UnboundedSender<PodCmd>,
        why: &str,
    ) -> Result<PodHold, HoldError> {
        {
            let mut s = shared.lock().map_err(|_| HoldError::Poisoned)?;
            if s.terminating {
                return Err(HoldError::Terminating);
            }
            if s.held.is_some() {
                return Err(HoldError::AlreadyHeld);
            }
            s.held = Some(why.to_string());
        }
        let hold = PodHold { shared, cmd };
        hold.cmd
            .send(PodCmd::Hold)
            .map_err(|_| HoldError::SupervisorGone)?;
        Ok(hold)
    }

    /// Whether the pod's process is down and stays down (state `Held`).
    pub fn stopped(&self) -> bool {
        self.shared
            .lock()
            .map(|s| s.view.state == PodState::Held && s.view.pid.is_none())
            .unwrap_or(false)
    }
}

impl Drop for PodHold {
    fn drop(&mut self) {
        if let Ok(mut s) = self.shared.lock() {
            s.held = None;
        }
        let _ = self.cmd.send(PodCmd::Release);
    }
}
