//! One task per pod: starts (or adopts) it, runs its probes, restarts it with exponential
//! backoff when it exits or fails liveness, and stops it when told.

use crate::error::ServerError;
use crate::orchestration::controller::{Controller, LaunchError, PodEntry};
use crate::orchestration::pods::{ExecHandle, PodCmd, PodShared};
use crate::orchestration::probes::{check, ProbeError};
use crate::types::PodState;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use vd_core::event::{Level, Reason};
use vd_core::{Probe, ProbeAction, Probes, ResourceRef};
use vd_runtime::RunningPod;
use vd_store::MetaKey;

/// Grace between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(10);
/// A pod that ran this long before exiting is not crash-looping.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// Longest wait between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

fn backoff(crashes: u32) -> Duration {
    let secs = 1u64 << crashes.saturating_sub(1).min(6);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

enum Outcome {
    Exited(vd_runtime::ExitInfo),
    Unhealthy(String),
    Cmd(Option<PodCmd>),
}

struct Sup {
    ctl: Arc<Controller>,
    owner: ResourceRef,
    shared: Arc<Mutex<PodShared>>,
    pod: String,
}

impl Sup {
    fn update(&self, f: impl FnOnce(&mut PodShared)) {
        let snapshot = match self.shared.lock() {
            Ok(mut s) => {
                f(&mut s);
                s.view.clone()
            }
            Err(_) => return,
        };
        if let Ok(v) = serde_json::to_value(&snapshot) {
            // The store's copy is what a restarted controller adopts by; the in-memory view
            // stays right either way.
            if let Err(e) = self.ctl.store.put_pod_status(&self.pod, &self.owner, &v) {
                tracing::warn!(pod = %self.pod, error = %e, "could not store the pod's status");
            }
        }
        self.ctl.notify();
    }

    fn last_log_line(&self) -> Option<String> {
        self.last_log_lines(1).pop()
    }

    /// The pod's last `n` log lines (vd's own markers left out), oldest first.
    fn last_log_lines(&self, n: usize) -> Vec<String> {
        let Ok(text) = std::fs::read_to_string(self.ctl.runtime.log_path(&self.pod)) else {
            return Vec::new();
        };
        let mut lines: Vec<String> = text
            .lines()
            .rev()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("--- vd:"))
            .take(n)
            .map(|l| l.chars().take(300).collect())
            .collect();
        lines.reverse();
        lines
    }
}

/// Supervises one pod until it is stopped for good.
pub async fn run(
    ctl: Arc<Controller>,
    owner: ResourceRef,
    ordinal: u32,
    adopted: Option<Box<dyn RunningPod>>,
    shared: Arc<Mutex<PodShared>>,
    mut rx: mpsc::UnboundedReceiver<PodCmd>,
) {
    let pod = vd_core::naming::pod_name(&owner, ordinal);
    let sup = Sup {
        ctl: ctl.clone(),
        owner: owner.clone(),
        shared,
        pod: pod.clone(),
    };
    let hooks = ctl.hooks();
    // Shared: the pod table keeps a handle so `vd exec` reaches the running process.
    let mut adopted: Option<Arc<dyn RunningPod>> = adopted.map(Arc::from);
    let mut crashes: u32 = 0;
    loop {
        let fresh = adopted.is_none();
        // A pod held stopped waits here, whichever way it got here (stopped by the hold, or
        // exited and in backoff when the hold came).
        let was_held = if fresh {
            match wait_held(&sup, &mut rx).await {
                Some(held) => held,
                None => return finish(&sup, None).await,
            }
        } else {
            false
        };
        let started = match adopted.take() {
            Some(p) => {
                // An adopted pod keeps running even if its spec can no longer be resolved;
                // the reconciler decides whether it stays.
                let probes = ctl
                    .desired_launch(&owner, ordinal)
                    .map(|(_, pr)| pr)
                    .unwrap_or_default();
                Ok((p, probes))
            }
            None => {
                // The hooks may keep a pod down (a crashed master waiting for a failover); its
                // launch is resolved after the wait. A pod that was held down on purpose
                // starts at once.
                if !was_held {
                    tokio::select! {
                        _ = hooks.before_launch(&ctl, &owner, ordinal) => {}
                        cmd = rx.recv() => {
                            if matches!(cmd, Some(PodCmd::Stop) | None) {
                                return finish(&sup, None).await;
                            }
                        }
                    }
                    // A hold that came during that wait.
                    if is_held(&sup) {
                        continue;
                    }
                }
                match ctl.desired_launch(&owner, ordinal) {
                    Ok((launch, probes)) => {
                        sup.update(|s| {
                            s.view.state = PodState::Starting;
                            s.view.ip = launch.ip.clone();
                        });
                        ctl.runtime
                            .start(&launch)
                            .await
                            .map(|p| (Arc::<dyn RunningPod>::from(p), probes))
                            .map_err(LaunchError::from)
                    }
                    Err(e) => Err(e),
                }
            }
        };
        let (running, probes) = match started {
            Ok(v) => v,
            Err(e) => {
                crashes += 1;
                let e = e.to_string();
                ctl.event(
                    Level::Warning,
                    Some(&owner),
                    Some(&pod),
                    Reason::FailedStart,
                    &e,
                );
                sup.update(|s| {
                    s.view.state = PodState::Failed;
                    s.view.ready = false;
                    s.view.message = Some(e.clone());
                    s.terminating = false;
                });
                match wait_backoff(&mut rx, backoff(crashes)).await {
                    Some(PodCmd::Stop) => return finish(&sup, None).await,
                    Some(PodCmd::Replace) => crashes = 0,
                    Some(PodCmd::Hold | PodCmd::Release) | None => {}
                }
                continue;
            }
        };
        let override_key = MetaKey::PodHash(pod.clone());
        let hash_override = if fresh {
            // A fresh process runs its own hash: an override left from before is stale.
            if let Err(e) = ctl.store.delete_meta(&override_key) {
                tracing::warn!(pod = %pod, error = %e, "could not drop the pod's hash override");
            }
            None
        } else {
            match ctl.store.meta(&override_key) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(pod = %pod, error = %e, "could not read the pod's hash override");
                    None
                }
            }
        };
        let info = running.info().clone();
        let no_gate = probes.readiness.is_none() && probes.startup.is_none();
        sup.update(|s| {
            s.running = Some(ExecHandle(running.clone()));
            s.view.state = PodState::Running;
            s.view.pid = info.pid;
            s.view.id = Some(info.id.clone());
            s.view.ip = info.ip.clone();
            s.view.net_ip = running.probe_ip();
            s.view.hash = info.hash.clone();
            s.view.started_ms = Some(info.started_ms);
            s.view.address = addresses(&info.ip, &ctl, &owner);
            s.view.ready = false;
            s.terminating = false;
            if fresh {
                s.probe_env = None;
            }
            s.hash_override = hash_override.clone();
        });
        if fresh {
            ctl.event(
                Level::Info,
                Some(&owner),
                Some(&pod),
                Reason::Started,
                &format!("pid {}", info.pid.unwrap_or(0)),
            );
        }
        if no_gate {
            become_ready(&sup, running.as_ref()).await;
        }
        let since = Instant::now();
        let outcome = tokio::select! {
            exit = running.wait() => Outcome::Exited(exit),
            why = probe_loop(&sup, running.as_ref(), &probes) => Outcome::Unhealthy(why),
            cmd = rx.recv() => Outcome::Cmd(cmd),
        };
        match outcome {
            Outcome::Exited(exit) => {
                let detail = sup
                    .last_log_line()
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default();
                // vd's own pod-init lines are not the program's: their errors say what they are.
                let program_said: Vec<String> = sup
                    .last_log_lines(5)
                    .into_iter()
                    .filter(|l| !l.starts_with("vd pod-init:"))
                    .collect();
                let hint = in_use_hint(&program_said.join("\n"), &pod, &ctl, &owner);
                let msg = format!("{exit}{detail}{hint}");
                ctl.event(
                    Level::Warning,
                    Some(&owner),
                    Some(&pod),
                    Reason::Exited,
                    &msg,
                );
                if since.elapsed() > HEALTHY_RUN {
                    crashes = 0;
                }
                crashes += 1;
                sup.update(|s| {
                    s.view.restarts += 1;
                    s.view.ready = false;
                    s.view.pid = None;
                    s.running = None;
                    s.view.message = Some(msg.clone());
                    s.view.state = if crashes >= 3 {
                        PodState::CrashLoopBackOff
                    } else {
                        PodState::Backoff
                    };
                });
                hooks.pod_exited(&owner, ordinal);
                tokio::select! {
                    _ = hooks.after_exit(&ctl, &owner, ordinal) => {}
                    cmd = rx.recv() => {
                        if matches!(cmd, Some(PodCmd::Stop) | None) {
                            return finish(&sup, None).await;
                        }
                    }
                }
                match wait_backoff(&mut rx, backoff(crashes)).await {
                    Some(PodCmd::Stop) => return finish(&sup, None).await,
                    Some(PodCmd::Replace) => {
                        crashes = 0;
                        sup.update(|s| s.view.restarts = 0);
                    }
                    Some(PodCmd::Hold | PodCmd::Release) | None => {}
                }
            }
            Outcome::Unhealthy(why) => {
                ctl.event(
                    Level::Warning,
                    Some(&owner),
                    Some(&pod),
                    Reason::Unhealthy,
                    &format!("{why}; restarting"),
                );
                sup.update(|s| {
                    s.view.ready = false;
                    s.view.state = PodState::Restarting;
                    s.view.message = Some(why.clone());
                });
                crate::tidy::log_failure(running.stop(GRACE).await, "stop the pod");
                crashes += 1;
                sup.update(|s| s.view.restarts += 1);
                if let Some(PodCmd::Stop) =
                    wait_backoff(&mut rx, backoff(crashes).min(Duration::from_secs(1))).await
                {
                    return finish(&sup, None).await;
                }
            }
            Outcome::Cmd(Some(PodCmd::Replace)) => {
                sup.update(|s| {
                    s.view.ready = false;
                    s.view.state = PodState::Stopping;
                });
                crate::tidy::log_failure(running.stop(GRACE).await, "stop the pod");
                crashes = 0;
                sup.update(|s| s.view.restarts = 0);
            }
            Outcome::Cmd(Some(PodCmd::Hold)) if is_held(&sup) => {
                sup.update(|s| {
                    s.view.ready = false;
                    s.view.state = PodState::Stopping;
                });
                crate::tidy::log_failure(running.stop(GRACE).await, "stop the pod");
                crashes = 0;
                // The loop's top keeps it stopped until the hold is released.
            }
            Outcome::Cmd(Some(PodCmd::Hold | PodCmd::Release)) => {
                // A hold already released: nothing to do but go on supervising. The process
                // keeps running, so it is adopted back (no restart).
                adopted = Some(running);
            }
            Outcome::Cmd(Some(PodCmd::Stop)) | Outcome::Cmd(None) => {
                return finish(&sup, Some(running)).await
            }
        }
    }
}

/// Starts supervising a pod. `hash` is the spec it is (or is about to be) running, so the
/// planner never mistakes a pod that is still starting for an outdated one and replaces it.
pub(crate) fn spawn(
    ctl: &Arc<Controller>,
    owner: ResourceRef,
    ordinal: u32,
    adopted: Option<Box<dyn RunningPod>>,
    hash: String,
) {
    let pod = vd_core::naming::pod_name(&owner, ordinal);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut initial = PodShared::new(&owner, ordinal, &pod);
    initial.view.hash = hash;
    if let Some(running) = &adopted {
        // An adopted pod is running from the moment it is in the table, not only once its
        // task first runs: the Redis tasks start right after adoption, and a shard master
        // seen "not started" beside its running replica is taken for a master that crashed
        // while no controller watched, and failed over.
        let info = running.info();
        initial.view.state = PodState::Running;
        initial.view.pid = info.pid;
        initial.view.id = Some(info.id.clone());
        initial.view.ip = info.ip.clone();
        initial.view.net_ip = running.probe_ip();
        initial.view.started_ms = Some(info.started_ms);
    }
    let shared = Arc::new(Mutex::new(initial));
    match ctl.pods.lock() {
        Ok(mut pods) if !pods.contains_key(&pod) => {
            pods.insert(
                pod,
                PodEntry {
                    owner: owner.clone(),
                    ordinal,
                    shared: shared.clone(),
                    cmd: tx,
                },
            );
        }
        // One supervisor per pod, always: a second would leak the first one's process.
        _ => {
            tracing::error!(pod, "pod is already supervised; not starting another");
            return;
        }
    }
    let ctl = ctl.clone();
    tokio::spawn(run(ctl, owner, ordinal, adopted, shared, rx));
}

/// Supervises again the pods an earlier server left running (they kept running while no
/// server did), and forgets those that are gone.
pub async fn adopt(ctl: &Arc<Controller>) -> Result<(), ServerError> {
    let owners: std::collections::BTreeMap<String, ResourceRef> = ctl
        .store
        .pod_statuses()?
        .into_iter()
        .map(|(pod, owner, _)| (pod, owner))
        .collect();
    for pod in ctl.runtime.known_pods().await? {
        // Cronjob runs are not supervised: the scheduler finds them again (cronjob.rs).
        if vd_core::naming::is_run_pod(&pod) {
            continue;
        }
        let Some(owner) = owners.get(&pod) else {
            ctl.runtime.forget(&pod).await?;
            continue;
        };
        let Some((_, ordinal)) = vd_core::naming::parse_pod_name(&pod) else {
            continue;
        };
        match ctl.runtime.adopt(&pod).await? {
            Some(running) => {
                ctl.event(
                    Level::Info,
                    Some(owner),
                    Some(&pod),
                    Reason::Adopted,
                    "pod kept running across a controller restart",
                );
                let hash = ctl
                    .store
                    .meta(&MetaKey::PodHash(pod.clone()))?
                    .unwrap_or_else(|| running.info().hash.clone());
                spawn(ctl, owner.clone(), ordinal, Some(running), hash);
            }
            None => {
                ctl.runtime.forget(&pod).await?;
                ctl.store.delete_pod_status(&pod)?;
            }
        }
    }
    Ok(())
}

/// When a pod's last words say a port was taken, which pod and which of its ports: the
/// program's own message names neither (Redis says only "Address already in use").
fn in_use_hint(last_words: &str, pod: &str, ctl: &Controller, owner: &ResourceRef) -> String {
    let lower = last_words.to_ascii_lowercase();
    if !["address already in use", "eaddrinuse", "address in use"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return String::new();
    }
    let ports: Vec<String> = ctl
        .store
        .get(owner)
        .ok()
        .flatten()
        .and_then(|r| vd_core::workload::workload_of(&r.resource))
        .map(|w| w.ports.iter().map(|p| p.port.to_string()).collect())
        .unwrap_or_default();
    let which = if ports.is_empty() {
        "a port it listens on".to_string()
    } else {
        format!("one of its ports ({})", ports.join(", "))
    };
    format!(
        " (pod {pod} could not listen: {which} is already taken inside the pod, by another of its processes, or on the address it binds)"
    )
}

fn addresses(ip: &str, ctl: &Controller, owner: &ResourceRef) -> Vec<String> {
    let ports = ctl
        .store
        .get(owner)
        .ok()
        .flatten()
        .and_then(|r| vd_core::workload::workload_of(&r.resource).map(|w| w.ports))
        .unwrap_or_default();
    if ports.is_empty() {
        return vec![ip.to_string()];
    }
    ports
        .iter()
        .map(|p| format!("{}:{}", p.host_ip.as_deref().unwrap_or(ip), p.port))
        .collect()
}

async fn finish(sup: &Sup, running: Option<Arc<dyn RunningPod>>) {
    sup.update(|s| {
        s.view.state = PodState::Stopping;
        s.view.ready = false;
        s.terminating = true;
        s.running = None;
    });
    if let Some(r) = running {
        if let Err(e) = r.stop(GRACE).await {
            sup.ctl.event(
                Level::Warning,
                Some(&sup.owner),
                Some(&sup.pod),
                Reason::StopFailed,
                &e.to_string(),
            );
        }
    }
    if let Err(e) = sup.ctl.runtime.forget(&sup.pod).await {
        tracing::warn!(pod = %sup.pod, error = %e, "could not clean pod state");
    }
    sup.ctl.event(
        Level::Info,
        Some(&sup.owner),
        Some(&sup.pod),
        Reason::Stopped,
        "pod stopped",
    );
    sup.ctl.pod_gone(&sup.pod);
}

fn is_held(sup: &Sup) -> bool {
    sup.shared.lock().map(|s| s.held.is_some()).unwrap_or(false)
}

/// Waits while the pod is held stopped: `Some(true)` when it was, `Some(false)` when it was
/// not, `None` when it must stop for good. A `Replace` meanwhile needs nothing: the pod
/// starts with the current desired spec when released.
async fn wait_held(sup: &Sup, rx: &mut mpsc::UnboundedReceiver<PodCmd>) -> Option<bool> {
    let Some(why) = sup.shared.lock().ok().and_then(|s| s.held.clone()) else {
        return Some(false);
    };
    sup.update(|s| {
        s.view.state = PodState::Held;
        s.view.ready = false;
        s.view.pid = None;
        s.running = None;
        s.view.message = Some(why.clone());
    });
    while is_held(sup) {
        tokio::select! {
            // The flag is what counts; the poll covers a Release sent before this wait began.
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            cmd = rx.recv() => {
                if matches!(cmd, Some(PodCmd::Stop) | None) {
                    return None;
                }
            }
        }
    }
    sup.update(|s| s.view.message = None);
    Some(true)
}

async fn wait_backoff(rx: &mut mpsc::UnboundedReceiver<PodCmd>, delay: Duration) -> Option<PodCmd> {
    tokio::select! {
        _ = tokio::time::sleep(delay) => None,
        cmd = rx.recv() => Some(cmd.unwrap_or(PodCmd::Stop)),
    }
}

/// Runs startup, then readiness and liveness; returns only when the pod must be restarted.
async fn probe_loop(sup: &Sup, pod: &dyn RunningPod, probes: &Probes) -> String {
    if let Some(p) = &probes.startup {
        tokio::time::sleep(Duration::from_millis(p.initial_delay_ms)).await;
        let mut fails = 0;
        loop {
            match run_check(sup, p, pod).await {
                Ok(()) => break,
                Err(e) => {
                    fails += 1;
                    if fails >= p.failure_threshold {
                        return format!("startup probe failed {fails} times: {e}");
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(p.period_ms)).await;
        }
        if probes.readiness.is_none() {
            become_ready(sup, pod).await;
        }
    }
    let readiness = async {
        let Some(p) = &probes.readiness else {
            return std::future::pending::<()>().await;
        };
        tokio::time::sleep(Duration::from_millis(p.initial_delay_ms)).await;
        let (mut ok, mut bad) = (0u32, 0u32);
        let mut cadence = Cadence::default();
        loop {
            let result = run_check(sup, p, pod).await;
            let passed = result.is_ok();
            match result {
                Ok(()) => {
                    ok += 1;
                    bad = 0;
                    if ok >= p.success_threshold
                        && !sup.shared.lock().map(|s| s.view.ready).unwrap_or(true)
                    {
                        become_ready(sup, pod).await;
                    }
                }
                Err(e) => {
                    bad += 1;
                    ok = 0;
                    if bad >= p.failure_threshold
                        && sup.shared.lock().map(|s| s.view.ready).unwrap_or(false)
                    {
                        sup.ctl.event(
                            Level::Warning,
                            Some(&sup.owner),
                            Some(&sup.pod),
                            Reason::NotReady,
                            &e.to_string(),
                        );
                        sup.update(|s| {
                            s.view.ready = false;
                            s.view.message = Some(format!("readiness: {e}"));
                        });
                    } else if bad >= p.failure_threshold {
                        sup.update(|s| s.view.message = Some(format!("readiness: {e}")));
                    }
                }
            }
            let ready = sup.shared.lock().map(|s| s.view.ready).unwrap_or(false);
            let period = Duration::from_millis(p.period_ms);
            tokio::time::sleep(cadence.next(passed, ready, period)).await;
        }
    };
    let liveness = async {
        let Some(p) = &probes.liveness else {
            return std::future::pending::<String>().await;
        };
        tokio::time::sleep(Duration::from_millis(p.initial_delay_ms)).await;
        let mut bad = 0u32;
        loop {
            match run_check(sup, p, pod).await {
                Ok(()) => bad = 0,
                Err(e) => {
                    bad += 1;
                    if bad >= p.failure_threshold {
                        return format!("liveness probe failed {bad} times: {e}");
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(p.period_ms)).await;
        }
    };
    tokio::select! {
        why = liveness => why,
        _ = readiness => String::new(),
    }
}

/// When the readiness probe checks next. Until the pod is first ready, checks come quickly: a
/// process usually starts listening a few ms after the first check, and a success streak
/// counted a period apart (5 s with the redis macro's default probe) would make every pod of
/// an ordered rollout wait `success_threshold - 1` periods after Redis answers. So: 25 ms
/// doubling while nothing answers, [`STREAK_EVERY`] while a streak builds, and the probe's
/// period (never more) once the pod has been ready; from then on periods and thresholds mean
/// what they say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cadence {
    /// The pod has been ready since this loop began.
    was_ready: bool,
    /// The next wait while nothing answers.
    backoff: Duration,
}

/// The wait between checks while a first success streak builds.
const STREAK_EVERY: Duration = Duration::from_millis(100);

impl Default for Cadence {
    fn default() -> Self {
        Cadence {
            was_ready: false,
            backoff: Duration::from_millis(25),
        }
    }
}

impl Cadence {
    /// The wait after a check that succeeded (`ok`) or not, with the pod ready (`ready`) or not.
    fn next(&mut self, ok: bool, ready: bool, period: Duration) -> Duration {
        self.was_ready |= ready;
        if self.was_ready {
            return period;
        }
        if ok {
            return STREAK_EVERY.min(period);
        }
        let d = self.backoff.min(period);
        self.backoff = self.backoff.saturating_mul(2);
        d
    }
}

/// Reports the pod ready, once the runtime has published it under the shared alias.
async fn become_ready(sup: &Sup, pod: &dyn RunningPod) {
    if let Err(e) = pod.publish_ready().await {
        tracing::warn!(pod = %sup.pod, error = %e, "could not add the pod to its shared alias");
    }
    // Publishing may have moved it on the pods' network (docker keeps the address where it
    // can).
    let net_ip = pod.probe_ip();
    sup.update(|s| {
        s.view.ready = true;
        s.view.message = None;
        s.view.net_ip = net_ip;
    });
}

async fn run_check(sup: &Sup, p: &Probe, pod: &dyn RunningPod) -> Result<(), ProbeError> {
    // Exec probes use the env the controller last published for this pod (a rotated password
    // reaches probes without a restart), else the env the pod started with.
    let env = sup.shared.lock().ok().and_then(|s| s.probe_env.clone());
    let ip = pod.probe_ip();
    let timeout = Duration::from_millis(p.timeout_ms.max(1));
    if let ProbeAction::Exec { command } = &p.action {
        let env = env.clone().unwrap_or_else(|| pod.env());
        // Where the controller's own connections reach the pod (its certificate names this
        // address; on docker the probe address is the container's, which it does not).
        let addr = Some(pod.info().ip.clone())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| ip.clone());
        let hooks = sup.ctl.hooks();
        let native = hooks.native_check(&sup.ctl, command, &addr, &env, timeout);
        if let Some(check) = native {
            let command = command.join(" ");
            return match tokio::time::timeout(timeout, check).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(ProbeError::Failed { command, reason }),
                Err(_) => Err(ProbeError::Timeout {
                    what: format!("`{command}`"),
                    timeout,
                }),
            };
        }
    }
    check(&p.action, &ip, pod, env.as_ref(), timeout).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn readiness_checks_quickly_until_first_ready_then_every_period() {
        use super::Cadence;
        use std::time::Duration;
        let ms = Duration::from_millis;
        let period = ms(5_000);
        let mut c = Cadence::default();
        // (check ok, pod ready after it, wait before the next check)
        let steps = [
            (false, false, ms(25)),
            (false, false, ms(50)),
            (false, false, ms(100)),
            (true, false, ms(100)),
            (false, false, ms(200)),
            (true, false, ms(100)),
            (true, true, period),
            (false, true, period),
            (false, false, period),
            (true, false, period),
        ];
        for (i, (ok, ready, want)) in steps.into_iter().enumerate() {
            assert_eq!(c.next(ok, ready, period), want, "step {i}");
        }
        // The backoff never exceeds the period, nor does the streak cadence.
        let mut c = Cadence::default();
        for _ in 0..40 {
            assert!(c.next(false, false, ms(60)) <= ms(60));
        }
        assert_eq!(Cadence::default().next(true, false, ms(30)), ms(30));
    }

    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
