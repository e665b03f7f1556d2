//! Cronjobs: a scheduler task that starts a run when a cronjob's slot has come
//! ([`vd_core::schedule::due`], with the last planned slot kept in the store so a restarted
//! server neither runs a slot twice nor forgets one it missed), runs started now by `vd run`,
//! and the records and logs of the last runs.
//!
//! A run is one pod started through the runtime like a workload pod (same env resolution, same
//! hosts file and network), named `<scope>-<name>.run-<n>`, waited to completion and then
//! forgotten by the runtime; its log file stays until the run falls out of `keep`.

use crate::error::ServerError;
use crate::orchestration::controller::{Controller, LaunchError};
use crate::types::Problem;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use vd_core::event::{Level, Reason};
use vd_core::schedule::{self, Due, Schedule};
use vd_core::{Concurrency, CronjobSpec, Kind, Resource, ResourceRef, Spec};
use vd_runtime::{ExitInfo, RunningPod};
use vd_store::{MetaKey, StoreError};

/// How often the scheduler looks at the clock: slots are whole minutes.
const TICK: Duration = Duration::from_secs(1);
/// Grace between SIGTERM and SIGKILL when a run is stopped.
const GRACE: Duration = Duration::from_secs(10);
pub use crate::types::{CronjobView, RunRecord, RunRequest, RunResult, RunStatus, Trigger};
pub use vd_core::naming::{is_run_pod, run_pod_name};

/// A cronjob's persisted scheduling state and run history (oldest run first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronState {
    /// The last slot the scheduler planned for (run or skipped).
    pub last_slot: Option<i64>,
    /// The last run number handed out.
    pub last_run: u64,
    /// Slots skipped because a run was still going (`concurrency = "forbid"`).
    pub skipped: u64,
    /// Kept runs, oldest first.
    pub runs: Vec<RunRecord>,
}

/// What the scheduler does for one cronjob at one tick: the pure part of a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing due; the next slot, if any.
    Idle(Option<i64>),
    /// Start a run for this slot, stopping the running ones first if `replace`.
    Start {
        /// The slot.
        slot: i64,
        /// Stop runs still going first (`concurrency = "replace"`).
        replace: bool,
    },
    /// The slot came while a run still goes and the policy forbids overlap: record, don't run.
    Skip(i64),
}

/// Decides one tick for a cronjob created at `created` (unix s) whose last planned slot is
/// `last`, at `now`, with a run going or not.
pub fn decide(
    s: &Schedule,
    last: Option<i64>,
    created: i64,
    now: i64,
    running: bool,
    policy: Concurrency,
) -> Decision {
    match schedule::due(s, last, created, now) {
        Due::Never => Decision::Idle(None),
        Due::At(t) => Decision::Idle(Some(t)),
        Due::Now(slot) => match (running, policy) {
            (false, _) | (true, Concurrency::Allow) => Decision::Start {
                slot,
                replace: false,
            },
            (true, Concurrency::Replace) => Decision::Start {
                slot,
                replace: true,
            },
            (true, Concurrency::Forbid) => Decision::Skip(slot),
        },
    }
}

/// Records to drop so that at most `keep` finished runs stay (running ones always stay).
pub fn to_prune(runs: &[RunRecord], keep: u32) -> Vec<u64> {
    let finished: Vec<u64> = runs
        .iter()
        .filter(|r| r.status != RunStatus::Running)
        .map(|r| r.id)
        .collect();
    let extra = finished.len().saturating_sub(keep as usize);
    finished.into_iter().take(extra).collect()
}

/// The cronjob scheduler's context: the controller context plus the runs going now.
pub struct Cronjobs {
    /// The controller context.
    pub ctl: Arc<Controller>,
    /// Serializes read-modify-write of a cronjob's stored state. Lock order: `running`, then
    /// `state` (only `start_run` holds both).
    state: Mutex<()>,
    /// Runs going now, by pod: the cronjob they belong to and what stops them.
    running: Mutex<BTreeMap<String, (ResourceRef, Arc<Notify>)>>,
}

impl Cronjobs {
    /// The scheduler's context over `ctl`, with no run going.
    pub fn new(ctl: Arc<Controller>) -> Arc<Cronjobs> {
        Arc::new(Cronjobs {
            ctl,
            state: Mutex::new(()),
            running: Mutex::new(BTreeMap::new()),
        })
    }
}

fn unix_ms() -> i64 {
    crate::orchestration::time::now_ms()
}

fn state_key(id: &ResourceRef) -> MetaKey {
    MetaKey::CronjobState(id.clone())
}

fn load(ctl: &Controller, id: &ResourceRef) -> Result<CronState, ServerError> {
    match ctl.store.meta_json::<CronState>(&state_key(id)) {
        Ok(state) => Ok(state.unwrap_or_default()),
        Err(StoreError::CorruptMeta { message, .. }) => {
            tracing::warn!(cronjob = %id, %message, "unreadable cronjob state; starting afresh");
            Ok(CronState::default())
        }
        Err(e) => Err(e.into()),
    }
}

/// Loads, changes and stores a cronjob's state under the state lock.
fn update<T>(
    cj: &Cronjobs,
    id: &ResourceRef,
    f: impl FnOnce(&mut CronState) -> T,
) -> Result<T, ServerError> {
    let ctl = &cj.ctl;
    let _guard = cj
        .state
        .lock()
        .map_err(|e| ServerError::io("cronjob state", std::io::Error::other(e.to_string())))?;
    let mut state = load(ctl, id)?;
    let out = f(&mut state);
    ctl.store.set_meta_json(&state_key(id), &state)?;
    Ok(out)
}

fn running_of(cj: &Cronjobs, id: &ResourceRef) -> Vec<(String, Arc<Notify>)> {
    cj.running
        .lock()
        .map(|m| {
            m.iter()
                .filter(|(_, (owner, _))| owner == id)
                .map(|(pod, (_, stop))| (pod.clone(), stop.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Asks every run of `id` to stop and waits (bounded) until they have ended and are recorded.
async fn stop_runs(cj: &Cronjobs, id: &ResourceRef) -> bool {
    for (_, stop) in running_of(cj, id) {
        stop.notify_one();
    }
    let deadline = tokio::time::Instant::now() + GRACE + Duration::from_secs(20);
    while !running_of(cj, id).is_empty() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

fn spec_of(r: &Resource) -> Option<&CronjobSpec> {
    match &r.spec {
        Spec::Cronjob(c) => Some(c),
        _ => None,
    }
}

fn stored(ctl: &Controller, id: &ResourceRef) -> Result<(CronjobSpec, i64), ServerError> {
    let s = ctl
        .store
        .get(id)?
        .ok_or_else(|| ServerError::NotFound(format!("{id} does not exist")))?;
    let spec = spec_of(&s.resource)
        .cloned()
        .ok_or_else(|| ServerError::NotFound(format!("{id} is not a cronjob")))?;
    Ok((spec, s.created_ms))
}

/// Apply-time checks of a cronjob: the schedule, what this runtime needs, and the env and
/// binds resolved exactly as a run will resolve them.
/// Apply-time checks of a cronjob beyond its pod template (which the apply resolves like any
/// workload's, from [`CronjobSpec::workload`]): the schedule, and what the runtime needs.
pub fn validate(r: &Resource, spec: &CronjobSpec, runtime: &str) -> Vec<Problem> {
    let problem = |field: &str, message: String, help: &str| Problem {
        resource: Some(r.id.clone()),
        field: field.to_string(),
        message,
        help: Some(help.to_string()),
    };
    let mut problems = Vec::new();
    if let Err(e) = Schedule::parse(&spec.schedule) {
        problems.push(problem(
            "schedule",
            e.to_string(),
            "e.g. schedule = \"0 */6 * * *\" (UTC)",
        ));
    }
    match runtime {
        "process" if spec.command.is_empty() => problems.push(problem(
            "command",
            format!("{} has no command; the process runtime runs the command on this host and cannot run an image's default", r.id),
            "set command = [\"sh\", \"-c\", \"...\"]",
        )),
        "docker" if spec.image.is_none() => problems.push(problem(
            "image",
            format!("{} has no image; the docker runtime runs each run in a container", r.id),
            "set image = \"alpine:latest\" (or any image with the tools the command needs)",
        )),
        _ => {}
    }
    problems
}

/// Starts a run of `id`. The returned receiver yields the record once the run has ended.
pub async fn start_run(
    cj: &Arc<Cronjobs>,
    id: &ResourceRef,
    spec: &CronjobSpec,
    trigger: Trigger,
    slot: Option<i64>,
) -> Result<(RunRecord, oneshot::Receiver<RunRecord>), ServerError> {
    let ctl = &cj.ctl;
    if trigger == Trigger::Manual
        && spec.concurrency == Concurrency::Replace
        && !running_of(cj, id).is_empty()
    {
        stop_runs(cj, id).await;
    }
    let stop = Arc::new(Notify::new());
    let record = {
        // Checked and registered under one lock: two `vd run`s at once cannot both pass.
        let mut running = cj
            .running
            .lock()
            .map_err(|e| ServerError::io("cronjob runs", std::io::Error::other(e.to_string())))?;
        let going: Vec<&str> = running
            .iter()
            .filter(|(_, (owner, _))| owner == id)
            .map(|(pod, _)| pod.as_str())
            .collect();
        if trigger == Trigger::Manual
            && spec.concurrency == Concurrency::Forbid
            && !going.is_empty()
        {
            return Err(ServerError::Conflict {
                message: format!(
                    "{id} is still running ({}); concurrency = \"forbid\"",
                    going.join(", ")
                ),
                help: Some(format!(
                    "wait for it (`vd describe {id}`), or set concurrency = \"allow\" or \"replace\" in the manifest"
                )),
            });
        }
        // Reserve the run (and the slot) in the store before anything starts: a server that
        // dies from here on finds the record and never runs the slot again.
        let record = update(cj, id, |s| {
            s.last_run += 1;
            if slot.is_some() {
                s.last_slot = slot;
            }
            let pod = run_pod_name(id, s.last_run);
            let r = RunRecord {
                id: s.last_run,
                log: ctl.runtime.log_path(&pod).to_string_lossy().into_owned(),
                pod,
                trigger,
                slot,
                started_ms: unix_ms(),
                ended_ms: None,
                status: RunStatus::Running,
                exit_code: None,
                signal: None,
                message: None,
            };
            s.runs.push(r.clone());
            r
        })?;
        running.insert(record.pod.clone(), (id.clone(), stop.clone()));
        record
    };
    let (tx, rx) = oneshot::channel();
    // A log left by an earlier cronjob of the same name (deleted, then declared again).
    crate::tidy::remove_file(&record.log, "an old run log");
    match launch(ctl, id, spec, &record.pod).await {
        Ok(pod) => {
            ctl.event(
                Level::Info,
                Some(id),
                Some(&record.pod),
                Reason::RunStarted,
                &format!(
                    "run {} started ({})",
                    record.id,
                    match (trigger, slot) {
                        (Trigger::Schedule, Some(s)) =>
                            format!("slot {}", crate::orchestration::time::iso(s)),
                        _ => "vd run".to_string(),
                    }
                ),
            );
            let (cj2, id2, rec) = (cj.clone(), id.clone(), record.clone());
            let (timeout, keep) = (spec.timeout_ms.map(Duration::from_millis), spec.keep);
            tokio::spawn(async move {
                let (exit, message) = watch(pod.as_ref(), &stop, timeout).await;
                let done = finish(&cj2, &id2, &rec, exit, message, keep).await;
                let _ = tx.send(done);
            });
        }
        Err(message) => {
            let done = finish(
                cj,
                id,
                &record,
                None,
                Some(format!("could not start: {message}")),
                spec.keep,
            )
            .await;
            let _ = tx.send(done);
        }
    }
    Ok((record, rx))
}

/// Resolves and starts a run's pod, like a workload pod with ordinal 0.
async fn launch(
    ctl: &Arc<Controller>,
    id: &ResourceRef,
    spec: &CronjobSpec,
    pod: &str,
) -> Result<Box<dyn RunningPod>, LaunchError> {
    let assets = ctl.assets(&[])?;
    let (template, hash) = ctl
        .desired(id, &spec.workload(), &assets)?
        .map_err(LaunchError::invalid)?;
    // A run has no ports; the address only gives it a VOODU_POD_IP like any pod.
    let ip = ctl.store.allocate_address(pod, &mut |_| true)?;
    let mut l = crate::orchestration::resolve::launch(
        id,
        &template,
        0,
        &ip,
        &ctl.runtime.pod_ip(&ip),
        &hash,
    );
    l.pod = pod.to_string();
    // How a run ended is its whole point, also when the server restarted meanwhile.
    l.keep_exit = true;
    Ok(ctl.runtime.start(&l).await?)
}

/// Waits for a run's pod to exit, stopping it on request or after `timeout`.
async fn watch(
    pod: &dyn RunningPod,
    stop: &Notify,
    timeout: Option<Duration>,
) -> (Option<ExitInfo>, Option<String>) {
    let limit = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let why = tokio::select! {
        exit = pod.wait() => return (Some(exit), None),
        _ = stop.notified() => "stopped (cronjob deleted, replaced or server stopping)".to_string(),
        _ = limit => format!(
            "timed out after {}",
            humanize(timeout.unwrap_or_default())
        ),
    };
    match pod.stop(GRACE).await {
        Ok(exit) => (Some(exit), Some(why)),
        Err(e) => (None, Some(format!("{why}; stopping failed: {e}"))),
    }
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) && s > 0 {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) && s > 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Docker streams a container's output into the log file from a separate task, which may
/// still be writing when the container's exit is reported: wait until the file stops growing
/// (bounded) before the container, and with it the stream, is removed.
async fn settle_log(path: &str) {
    let size = || std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut last = size();
    let mut still = 0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = size();
        if now == last {
            still += 1;
            if still >= 3 {
                return;
            }
        } else {
            (last, still) = (now, 0);
        }
    }
}

/// Records how a run ended, prunes beyond `keep`, cleans its pod up and records an event.
async fn finish(
    cj: &Cronjobs,
    id: &ResourceRef,
    rec: &RunRecord,
    exit: Option<ExitInfo>,
    message: Option<String>,
    keep: u32,
) -> RunRecord {
    let ctl = &cj.ctl;
    if ctl.runtime.name() == "docker" {
        settle_log(&rec.log).await;
    }
    if let Err(e) = ctl.runtime.forget(&rec.pod).await {
        tracing::warn!(pod = %rec.pod, error = %e, "could not clean up a finished run");
    }
    crate::tidy::log_failure(
        ctl.store.release_address(&rec.pod),
        "release a finished run's address",
    );
    let status = match (exit, &message) {
        (Some(ExitInfo { code: Some(0), .. }), None) => RunStatus::Succeeded,
        (
            Some(ExitInfo {
                code: None,
                signal: None,
            }),
            None,
        ) => RunStatus::Unknown,
        (None, None) => RunStatus::Unknown,
        _ => RunStatus::Failed,
    };
    let mut done = rec.clone();
    done.ended_ms = Some(unix_ms());
    done.status = status;
    done.exit_code = exit.and_then(|e| e.code);
    done.signal = exit.and_then(|e| e.signal);
    done.message = message;
    let pruned = update(cj, id, |s| {
        if let Some(r) = s.runs.iter_mut().find(|r| r.id == done.id) {
            *r = done.clone();
        } else {
            s.runs.push(done.clone());
        }
        let drop = to_prune(&s.runs, keep);
        let (gone, kept): (Vec<RunRecord>, Vec<RunRecord>) =
            s.runs.drain(..).partition(|r| drop.contains(&r.id));
        s.runs = kept;
        gone
    });
    match pruned {
        Ok(gone) => {
            for r in gone {
                remove_log(&r.log);
            }
        }
        Err(e) => tracing::warn!(cronjob = %id, error = %e, "could not record a run"),
    }
    let how = describe_end(&done);
    let (level, reason) = match status {
        RunStatus::Succeeded => (Level::Info, Reason::RunSucceeded),
        RunStatus::Failed => (Level::Warning, Reason::RunFailed),
        _ => (Level::Warning, Reason::RunUnknown),
    };
    ctl.event(
        level,
        Some(id),
        Some(&rec.pod),
        reason,
        &format!("run {} {how}", done.id),
    );
    if let Ok(mut m) = cj.running.lock() {
        m.remove(&rec.pod);
    }
    done
}

/// "succeeded", "failed: exit code 3", "failed: timed out after 5m (killed by signal 15)".
pub fn describe_end(r: &RunRecord) -> String {
    let exit = match (r.exit_code, r.signal) {
        (Some(c), _) => Some(format!("exit code {c}")),
        (None, Some(s)) => Some(format!("killed by signal {s}")),
        _ => None,
    };
    let detail = match (&r.message, exit) {
        (Some(m), Some(e)) => format!(": {m} ({e})"),
        (Some(m), None) => format!(": {m}"),
        (None, Some(e)) if r.status != RunStatus::Succeeded => format!(": {e}"),
        _ => String::new(),
    };
    format!("{}{detail}", r.status.as_str())
}

fn remove_log(path: &str) {
    crate::tidy::remove_file(path, "a run log");
    for n in 1..=3 {
        crate::tidy::remove_file(format!("{path}.{n}"), "a rotated run log");
    }
}

/// Stops a deleted cronjob's runs, then forgets its state and logs.
pub async fn remove(cj: &Cronjobs, id: &ResourceRef) -> Result<(), ServerError> {
    let ctl = &cj.ctl;
    if !stop_runs(cj, id).await {
        return Err(ServerError::Conflict {
            message: format!("runs of {id} did not stop within {}s", GRACE.as_secs() + 20),
            help: Some("check `vd events`; the cronjob itself is deleted".into()),
        });
    }
    for r in load(ctl, id)?.runs {
        remove_log(&r.log);
    }
    ctl.store.delete_meta(&state_key(id))?;
    Ok(())
}

/// Runs the server had going when it last stopped: watched again when their pod still runs;
/// one that ended meanwhile is recorded as it ended when the runtime kept its exit status, as
/// unknown otherwise.
async fn recover(cj: &Arc<Cronjobs>) -> Result<(), ServerError> {
    let ctl = &cj.ctl;
    for s in ctl.store.list(Some(Kind::Cronjob))? {
        let id = s.resource.id.clone();
        let keep = spec_of(&s.resource).map_or(CronjobSpec::DEFAULT_KEEP, |c| c.keep);
        let running: Vec<RunRecord> = load(ctl, &id)?
            .runs
            .into_iter()
            .filter(|r| r.status == RunStatus::Running)
            .collect();
        for rec in running {
            match ctl.runtime.adopt(&rec.pod).await {
                Ok(Some(pod)) => {
                    tracing::info!(pod = %rec.pod, "cronjob run adopted");
                    let stop = Arc::new(Notify::new());
                    if let Ok(mut m) = cj.running.lock() {
                        m.insert(rec.pod.clone(), (id.clone(), stop.clone()));
                    }
                    let (cj2, id2) = (cj.clone(), id.clone());
                    tokio::spawn(async move {
                        let (exit, message) = watch(pod.as_ref(), &stop, None).await;
                        finish(&cj2, &id2, &rec, exit, message, keep).await;
                    });
                }
                _ => match ctl.runtime.recorded_exit(&rec.pod).await {
                    // It ended on its own while no server watched: its status says how.
                    Some(exit) => {
                        finish(cj, &id, &rec, Some(exit), None, keep).await;
                    }
                    None => {
                        let why = "the server restarted while it ran; how it ended is not known";
                        finish(cj, &id, &rec, None, Some(why.into()), keep).await;
                    }
                },
            }
        }
    }
    Ok(())
}

/// The scheduler: one task for the server's lifetime.
pub async fn run(cj: Arc<Cronjobs>) {
    let ctl = &cj.ctl;
    if let Err(e) = recover(&cj).await {
        tracing::warn!(error = %e, "could not recover cronjob runs");
    }
    let mut warned: BTreeSet<(ResourceRef, String)> = BTreeSet::new();
    loop {
        tokio::time::sleep(TICK).await;
        if ctl.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            // `vd shutdown --stop-pods`: runs stop with the other pods.
            let ids: BTreeSet<ResourceRef> = cj
                .running
                .lock()
                .map(|m| m.values().map(|(id, _)| id.clone()).collect())
                .unwrap_or_default();
            for id in ids {
                for (_, stop) in running_of(&cj, &id) {
                    stop.notify_one();
                }
            }
            continue;
        }
        if let Err(e) = tick(&cj, &mut warned).await {
            tracing::warn!(error = %e, "cronjob scheduler tick failed");
        }
    }
}

async fn tick(
    cj: &Arc<Cronjobs>,
    warned: &mut BTreeSet<(ResourceRef, String)>,
) -> Result<(), ServerError> {
    let ctl = &cj.ctl;
    let now = unix_ms() / 1000;
    for s in ctl.store.list(Some(Kind::Cronjob))? {
        let id = s.resource.id.clone();
        let Some(spec) = spec_of(&s.resource) else {
            continue;
        };
        let sched = match Schedule::parse(&spec.schedule) {
            Ok(sched) => sched,
            Err(e) => {
                // Apply refuses these; a store edited by hand is reported once.
                if warned.insert((id.clone(), spec.schedule.clone())) {
                    ctl.event(
                        Level::Warning,
                        Some(&id),
                        None,
                        Reason::BadSchedule,
                        &e.to_string(),
                    );
                }
                continue;
            }
        };
        let state = load(ctl, &id)?;
        let going = running_of(cj, &id);
        let decision = decide(
            &sched,
            state.last_slot,
            s.created_ms / 1000,
            now,
            !going.is_empty(),
            spec.concurrency,
        );
        match decision {
            Decision::Idle(_) => {}
            Decision::Skip(slot) => {
                update(cj, &id, |st| {
                    st.last_slot = Some(slot);
                    st.skipped += 1;
                })?;
                let pods: Vec<&str> = going.iter().map(|(p, _)| p.as_str()).collect();
                ctl.event(
                    Level::Warning,
                    Some(&id),
                    None,
                    Reason::RunSkipped,
                    &format!(
                        "slot {} skipped: {} still running (concurrency = \"forbid\")",
                        crate::orchestration::time::iso(slot),
                        pods.join(", ")
                    ),
                );
            }
            Decision::Start { slot, replace } => {
                if replace {
                    stop_runs(cj, &id).await;
                }
                if let Err(e) = start_run(cj, &id, spec, Trigger::Schedule, Some(slot)).await {
                    // The slot counts as planned either way: never a retry burst.
                    // Not taken again either way: the slot is recorded as planned.
                    crate::tidy::log_failure(
                        update(cj, &id, |st| st.last_slot = Some(slot)),
                        "record a skipped cronjob slot",
                    );
                    ctl.event(
                        Level::Warning,
                        Some(&id),
                        None,
                        Reason::RunFailed,
                        &format!("slot {}: {e}", crate::orchestration::time::iso(slot)),
                    );
                }
            }
        }
    }
    Ok(())
}

/// A cronjob's view: schedule, next slot, kept runs newest first.
pub fn view(ctl: &Controller, id: &ResourceRef) -> Result<CronjobView, ServerError> {
    let (spec, created_ms) = stored(ctl, id)?;
    let state = load(ctl, id)?;
    let next_run = Schedule::parse(&spec.schedule).ok().and_then(|s| {
        match schedule::due(&s, state.last_slot, created_ms / 1000, unix_ms() / 1000) {
            Due::At(t) | Due::Now(t) => Some(t),
            Due::Never => None,
        }
    });
    let mut runs = state.runs;
    runs.reverse();
    Ok(CronjobView {
        id: id.clone(),
        schedule: spec.schedule,
        concurrency: spec.concurrency,
        keep: spec.keep,
        next_run,
        skipped: state.skipped,
        runs,
    })
}

/// `GET /v1/cronjobs`.
pub async fn api_list(
    State(ctl): State<Arc<Controller>>,
) -> Result<Json<Vec<CronjobView>>, ServerError> {
    let mut out = Vec::new();
    for s in ctl.store.list(Some(Kind::Cronjob))? {
        out.push(view(&ctl, &s.resource.id)?);
    }
    Ok(Json(out))
}

/// `GET /v1/cronjobs/{scope}/{name}`.
pub async fn api_get(
    State(ctl): State<Arc<Controller>>,
    Path((scope, name)): Path<(String, String)>,
) -> Result<Json<CronjobView>, ServerError> {
    let id = ResourceRef::new(Kind::Cronjob, scope, name);
    Ok(Json(view(&ctl, &id)?))
}

/// `POST /v1/cronjobs/{scope}/{name}/run`: runs it now, ignoring the schedule; waits for the
/// end unless `detach`.
pub async fn api_run(
    State(cj): State<Arc<Cronjobs>>,
    Path((scope, name)): Path<(String, String)>,
    crate::extract::Body(req): crate::extract::Body<RunRequest>,
) -> Result<Json<RunResult>, ServerError> {
    let id = ResourceRef::new(Kind::Cronjob, scope, name);
    let (spec, _) = stored(&cj.ctl, &id)?;
    let (started, done) = start_run(&cj, &id, &spec, Trigger::Manual, None).await?;
    if req.detach {
        return Ok(Json(RunResult {
            cronjob: id,
            run: started,
            log: None,
        }));
    }
    let run = done.await.map_err(|_| {
        ServerError::io(
            format!("wait for run {} of {id}", started.id),
            std::io::Error::other("the run's task ended without a result"),
        )
    })?;
    let log = std::fs::read_to_string(&run.log).ok();
    Ok(Json(RunResult {
        cronjob: id,
        run,
        log,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-21T00:00:00Z
    const MIDNIGHT: i64 = 1_795_219_200;

    fn every_minute() -> Schedule {
        Schedule::parse("* * * * *").unwrap()
    }

    #[test]
    fn run_pods_are_told_apart_from_workload_pods() {
        let id = ResourceRef::new(Kind::Cronjob, "clowk-lp", "redis-backup");
        let pod = run_pod_name(&id, 12);
        assert_eq!(pod, "clowk-lp-redis-backup.run-12");
        assert!(is_run_pod(&pod));
        assert!(!is_run_pod("clowk-lp-redis.2"));
        assert!(!is_run_pod("a.run-"));
        assert!(!is_run_pod("a.run-x"));
        // Docker's container name rule: [a-zA-Z0-9][a-zA-Z0-9_.-]+
        assert!(pod
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
    }

    #[test]
    fn first_slot_after_creation_then_each_minute() {
        let s = every_minute();
        let created = MIDNIGHT + 10;
        let d = |last, now, running, p| decide(&s, last, created, now, running, p);
        assert_eq!(
            d(None, MIDNIGHT + 30, false, Concurrency::Forbid),
            Decision::Idle(Some(MIDNIGHT + 60))
        );
        assert_eq!(
            d(None, MIDNIGHT + 61, false, Concurrency::Forbid),
            Decision::Start {
                slot: MIDNIGHT + 60,
                replace: false
            }
        );
        // Planned for 00:01: nothing more until 00:02.
        assert_eq!(
            d(
                Some(MIDNIGHT + 60),
                MIDNIGHT + 90,
                false,
                Concurrency::Forbid
            ),
            Decision::Idle(Some(MIDNIGHT + 120))
        );
    }

    #[test]
    fn a_restart_runs_a_missed_slot_once_and_never_twice() {
        let s = Schedule::parse("0 */6 * * *").unwrap();
        // Planned for 00:00, server down from 01:00 to 13:30: one run, for 12:00.
        let now = MIDNIGHT + 13 * 3600 + 1800;
        let first = decide(
            &s,
            Some(MIDNIGHT),
            MIDNIGHT - 100,
            now,
            false,
            Concurrency::Forbid,
        );
        assert_eq!(
            first,
            Decision::Start {
                slot: MIDNIGHT + 12 * 3600,
                replace: false
            }
        );
        // That slot is stored before the run starts; a second restart at once does not rerun it.
        let again = decide(
            &s,
            Some(MIDNIGHT + 12 * 3600),
            MIDNIGHT - 100,
            now + 5,
            false,
            Concurrency::Forbid,
        );
        assert_eq!(again, Decision::Idle(Some(MIDNIGHT + 18 * 3600)));
    }

    #[test]
    fn concurrency_policies() {
        let s = every_minute();
        let d = |p| decide(&s, Some(MIDNIGHT), MIDNIGHT - 100, MIDNIGHT + 61, true, p);
        assert_eq!(d(Concurrency::Forbid), Decision::Skip(MIDNIGHT + 60));
        assert_eq!(
            d(Concurrency::Allow),
            Decision::Start {
                slot: MIDNIGHT + 60,
                replace: false
            }
        );
        assert_eq!(
            d(Concurrency::Replace),
            Decision::Start {
                slot: MIDNIGHT + 60,
                replace: true
            }
        );
    }

    fn rec(id: u64, status: RunStatus) -> RunRecord {
        RunRecord {
            id,
            pod: format!("s-n.run-{id}"),
            trigger: Trigger::Manual,
            slot: None,
            started_ms: 0,
            ended_ms: None,
            status,
            exit_code: None,
            signal: None,
            message: None,
            log: String::new(),
        }
    }

    #[test]
    fn pruning_keeps_the_newest_finished_and_every_running_run() {
        let runs = vec![
            rec(1, RunStatus::Succeeded),
            rec(2, RunStatus::Running),
            rec(3, RunStatus::Failed),
            rec(4, RunStatus::Succeeded),
            rec(5, RunStatus::Succeeded),
        ];
        assert_eq!(to_prune(&runs, 2), vec![1, 3]);
        assert_eq!(to_prune(&runs, 5), Vec::<u64>::new());
        assert_eq!(to_prune(&runs, 1), vec![1, 3, 4]);
    }

    #[test]
    fn ends_are_described() {
        let mut r = rec(1, RunStatus::Failed);
        r.exit_code = Some(3);
        assert_eq!(describe_end(&r), "failed: exit code 3");
        r.message = Some("timed out after 5m".into());
        r.exit_code = None;
        r.signal = Some(15);
        assert_eq!(
            describe_end(&r),
            "failed: timed out after 5m (killed by signal 15)"
        );
        let mut ok = rec(2, RunStatus::Succeeded);
        ok.exit_code = Some(0);
        assert_eq!(describe_end(&ok), "succeeded");
    }
}
