//! Request and response bodies of the API, shared with the CLI.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vd_core::{Concurrency, Resource, ResourceRef};
pub use vd_store::{ChangeKind, Event};

/// The API's path prefix.
pub const API: &str = "/v1";

/// `POST /v1/apply`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyRequest {
    /// Resources to create or update.
    pub resources: Vec<Resource>,
    /// Only report what would change.
    #[serde(default)]
    pub dry_run: bool,
}

/// One resource's outcome of an apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeView {
    /// Which resource.
    pub id: ResourceRef,
    /// Created, changed or unchanged.
    pub change: ChangeKind,
    /// Revision after the apply.
    pub revision: u64,
    /// The stored spec before the change, for `vd diff`.
    pub before: Option<serde_json::Value>,
    /// The spec after it.
    pub after: serde_json::Value,
    /// For workloads: the desired spec hash after the apply (asset contents and config
    /// included), which the rollout status reports once it reaches it.
    pub hash: Option<String>,
    /// For workloads (not in a dry run): the generation of that hash; the change has rolled
    /// out once the status is converged at this generation or a later one.
    #[serde(default)]
    pub generation: Option<u64>,
    /// What the change costs that the user should know (a one-pod redis's rollout has
    /// downtime).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Answer to an apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyResponse {
    /// Per resource.
    pub changes: Vec<ChangeView>,
}

/// A problem with one field of one resource, so the CLI can point at the manifest line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Problem {
    /// The resource.
    pub resource: Option<ResourceRef>,
    /// Field path, e.g. `volumes[0]` (empty for the whole resource).
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

/// Every error the API returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// How to fix it.
    pub help: Option<String>,
    /// Field-level problems (validation).
    #[serde(default)]
    pub problems: Vec<Problem>,
}

/// A pod as `vd get pods` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PodView {
    /// Owning resource's kind.
    pub kind: vd_core::Kind,
    /// Owning resource's scope.
    pub scope: String,
    /// Owning resource's name.
    pub name: String,
    /// Pod name.
    pub pod: String,
    /// Ordinal.
    pub ordinal: u32,
    /// `ip:port` for each port (the pod's IP alone when it declares none).
    pub address: Vec<String>,
    /// Pod IP: where the host reaches the pod (on docker, the loopback address its ports are
    /// published on).
    pub ip: String,
    /// Where other pods reach it: the pod's own address on the pods' network (the same as
    /// `ip` on the process runtime; its `voodu0` address on docker). Empty until it runs.
    #[serde(default)]
    pub net_ip: String,
    /// Where the pod is in its life.
    pub state: PodState,
    /// Readiness.
    pub ready: bool,
    /// Restarts since the pod was created.
    pub restarts: u32,
    /// Main process pid.
    pub pid: Option<u32>,
    /// Runtime id.
    pub id: Option<String>,
    /// Spec hash the pod runs.
    pub hash: String,
    /// Start of the current process, unix ms.
    pub started_ms: Option<i64>,
    /// Last notable thing that happened.
    pub message: Option<String>,
}

/// Where a pod is in its life, as `vd get pods` shows it (serialized as the variant's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PodState {
    /// Supervised, not started yet (or waiting before its first start).
    Pending,
    /// Its process is being launched.
    Starting,
    /// Its process runs.
    Running,
    /// Stopped by a failed liveness probe; starts again after a short backoff.
    Restarting,
    /// Exited; waiting out the restart backoff.
    Backoff,
    /// Exited three times in a row without running long: restarts are spaced out.
    CrashLoopBackOff,
    /// Could not be started (the error is in its message); retried after the backoff.
    Failed,
    /// Kept stopped on purpose until released (a restore replaces its files meanwhile).
    Held,
    /// Being stopped.
    Stopping,
}

impl PodState {
    /// The name `vd get pods` shows and JSON carries.
    pub fn as_str(self) -> &'static str {
        match self {
            PodState::Pending => "Pending",
            PodState::Starting => "Starting",
            PodState::Running => "Running",
            PodState::Restarting => "Restarting",
            PodState::Backoff => "Backoff",
            PodState::CrashLoopBackOff => "CrashLoopBackOff",
            PodState::Failed => "Failed",
            PodState::Held => "Held",
            PodState::Stopping => "Stopping",
        }
    }

    /// Whether the pod is failing to run (its message says why).
    pub fn is_failing(self) -> bool {
        matches!(
            self,
            PodState::Backoff | PodState::CrashLoopBackOff | PodState::Failed
        )
    }
}

impl std::fmt::Display for PodState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workload's rollout state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WorkloadStatus {
    /// Desired replicas.
    pub desired: u32,
    /// Ready pods.
    pub ready: u32,
    /// Pods running the desired spec.
    pub current: u32,
    /// Desired spec hash.
    pub hash: String,
    /// The generation of that hash: grows every time the desired hash changes, so "converged
    /// at generation N or later" stays true once reached, whatever changes follow.
    #[serde(default)]
    pub generation: u64,
    /// Every pod exists, is current and ready.
    pub converged: bool,
    /// Why the rollout waits, or what failed.
    pub message: Option<String>,
    /// The spec revision this status was computed for.
    pub revision: u64,
    /// Stopped with `vd stop`: it runs no pods until `vd start`.
    #[serde(default)]
    pub stopped: bool,
}

/// A resource with its status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceView {
    /// Identity.
    pub id: ResourceRef,
    /// Revision.
    pub revision: u64,
    /// Spec as stored.
    pub spec: vd_core::Spec,
    /// Rollout status (workloads only).
    pub status: Option<WorkloadStatus>,
    /// Last change, unix ms.
    pub updated_ms: i64,
}

/// `vd describe`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DescribeView {
    /// The resource.
    pub resource: ResourceView,
    /// Its pods.
    pub pods: Vec<PodView>,
    /// Recent events.
    pub events: Vec<Event>,
    /// Whether resource limits are enforced on this runtime, or why not.
    pub limits: Option<String>,
    /// Runtime name.
    pub runtime: String,
    /// For a cronjob: its schedule, next slot and kept runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cronjob: Option<CronjobView>,
}

/// `POST /v1/config/{scope}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConfigRequest {
    /// Name level (none: scope level).
    pub name: Option<String>,
    /// Variables to set.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Variables to remove.
    #[serde(default)]
    pub unset: Vec<String>,
    /// Don't roll pods; the change applies on their next restart.
    #[serde(default)]
    pub no_restart: bool,
}

/// A config bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigView {
    /// Scope.
    pub scope: String,
    /// Name (none: scope level).
    pub name: Option<String>,
    /// Variables at this level.
    pub vars: BTreeMap<String, String>,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// vd version.
    pub version: String,
    /// Runtime name.
    pub runtime: String,
    /// Server pid.
    pub pid: u32,
    /// Root directory.
    pub root: String,
}

/// `POST /v1/shutdown`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShutdownRequest {
    /// Stop every pod before exiting (volumes stay).
    #[serde(default)]
    pub stop_pods: bool,
}

/// `DELETE` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeleteQuery {
    /// Also destroy volumes.
    #[serde(default)]
    pub prune: bool,
}

/// `POST /v1/redis/{scope}/{name}/failover`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FailoverRequest {
    /// Ordinal to promote (default: the replica with the highest offset).
    pub replica: Option<u32>,
    /// In a cluster: the shard to switch over (numbered by its lowest slot).
    #[serde(default)]
    pub shard: Option<u32>,
    /// Don't roll linked consumers.
    #[serde(default)]
    pub no_restart: bool,
}

/// What a switchover did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailoverReport {
    /// Old master ordinal.
    pub from: u32,
    /// New master ordinal.
    pub to: u32,
    /// How long writes were held, ms (with sentinels: how long they took to agree).
    pub write_pause_ms: u64,
    /// Whether sentinels performed it.
    #[serde(default)]
    pub by_sentinels: bool,
}

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Its pod is running.
    Running,
    /// Exit code 0.
    Succeeded,
    /// A non-zero exit, a signal, a timeout, or a pod that could not start.
    Failed,
    /// The server restarted while it ran and could not learn how it ended.
    Unknown,
}

impl RunStatus {
    /// Lowercase name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Unknown => "unknown",
        }
    }
}

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Its schedule's slot came.
    Schedule,
    /// `vd run`.
    Manual,
}

/// One run as recorded in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// 1, 2, ... per cronjob.
    pub id: u64,
    /// Its pod's name.
    pub pod: String,
    /// Schedule or manual.
    pub trigger: Trigger,
    /// The slot it ran for (unix seconds), for scheduled runs.
    pub slot: Option<i64>,
    /// Unix ms.
    pub started_ms: i64,
    /// Unix ms, once it ended.
    pub ended_ms: Option<i64>,
    /// Running, succeeded, failed, unknown.
    pub status: RunStatus,
    /// Exit code, when known.
    pub exit_code: Option<i32>,
    /// Signal that ended it, when known.
    pub signal: Option<i32>,
    /// Why it failed, when the exit code alone does not say.
    pub message: Option<String>,
    /// Its log file on the server's host.
    pub log: String,
}

/// A cronjob as `vd get cronjobs` and `vd describe` show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CronjobView {
    /// Which cronjob.
    pub id: ResourceRef,
    /// The schedule as written (UTC).
    pub schedule: String,
    /// Concurrency policy.
    pub concurrency: Concurrency,
    /// Finished runs kept.
    pub keep: u32,
    /// The next slot (unix seconds), if the schedule fires again.
    pub next_run: Option<i64>,
    /// Slots skipped so far because a run was still going.
    pub skipped: u64,
    /// Kept runs, newest first.
    pub runs: Vec<RunRecord>,
}

/// `POST /v1/cronjobs/{scope}/{name}/run`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunRequest {
    /// Answer once the run started instead of when it ended.
    #[serde(default)]
    pub detach: bool,
}

/// Answer to a run request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// The cronjob.
    pub cronjob: ResourceRef,
    /// The run (finished unless detached).
    pub run: RunRecord,
    /// Its output, when the request waited for it.
    pub log: Option<String>,
}
