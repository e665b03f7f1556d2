//! One task per pod: starts (or adopts) it, runs its probes, restarts it with exponential
//! backoff when it exits or fails liveness, and stops it when told.

use crate::controller::Controller;
use crate::probes::check;
use crate::types::PodView;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use vd_core::{Probe, Probes, ResourceRef};
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
                state: "Pending".into(),
                ready: false,
                restarts: 0,
                pid: None,
                id: None,
                hash: String::new(),
                started_ms: None,
                message: None,
            },
            terminating: false,
            probe_env: None,
            hash_override: None,
            held: None,
        }
    }
}

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
            let _ = self.ctl.store.put_pod_status(&self.pod, &self.owner, &v);
        }
        self.ctl.notify();
    }

    fn last_log_line(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.ctl.runtime.log_path(&self.pod)).ok()?;
        let tail = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty() && !l.starts_with("--- vd:"))?;
        Some(tail.chars().take(300).collect())
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
    let mut adopted = adopted;
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
                // A master found dead by a restarted controller waits like a crashed one; its
                // launch (REDIS_MASTER_ORDINAL) is resolved after the wait. A master that was
                // held down on purpose (failover paused meanwhile) starts at once.
                if !was_held {
                    tokio::select! {
                        _ = crate::failover::hold_restart(&ctl, &owner, ordinal) => {}
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
                            s.view.state = "Starting".into();
                            s.view.ip = launch.ip.clone();
                        });
                        ctl.runtime
                            .start(&launch)
                            .await
                            .map(|p| (p, probes))
                            .map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        let (running, probes) = match started {
            Ok(v) => v,
            Err(e) => {
                crashes += 1;
                ctl.event("warning", Some(&owner), Some(&pod), "FailedStart", &e);
                sup.update(|s| {
                    s.view.state = "Failed".into();
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
        let override_key = format!("pod-hash:{pod}");
        let hash_override = if fresh {
            let _ = ctl.store.meta_delete(&override_key);
            None
        } else {
            ctl.store.meta_get(&override_key).ok().flatten()
        };
        let info = running.info().clone();
        let no_gate = probes.readiness.is_none() && probes.startup.is_none();
        sup.update(|s| {
            s.view.state = "Running".into();
            s.view.pid = info.pid;
            s.view.id = Some(info.id.clone());
            s.view.ip = info.ip.clone();
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
                "info",
                Some(&owner),
                Some(&pod),
                "Started",
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
                let msg = format!("{exit}{detail}");
                ctl.event("warning", Some(&owner), Some(&pod), "Exited", &msg);
                if since.elapsed() > HEALTHY_RUN {
                    crashes = 0;
                }
                crashes += 1;
                sup.update(|s| {
                    s.view.restarts += 1;
                    s.view.ready = false;
                    s.view.pid = None;
                    s.view.message = Some(msg.clone());
                    s.view.state = if crashes >= 3 {
                        "CrashLoopBackOff".into()
                    } else {
                        "Backoff".into()
                    };
                });
                ctl.failover.pod_exited(&owner, ordinal);
                // A crashed master of a sentinel-watched redis waits for the failover first
                // (with automatic failover, the wait is before the launch below).
                tokio::select! {
                    _ = crate::sentinel::hold_restart(&ctl, &owner, ordinal) => {}
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
                    "warning",
                    Some(&owner),
                    Some(&pod),
                    "Unhealthy",
                    &format!("{why}; restarting"),
                );
                sup.update(|s| {
                    s.view.ready = false;
                    s.view.state = "Restarting".into();
                    s.view.message = Some(why.clone());
                });
                let _ = running.stop(GRACE).await;
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
                    s.view.state = "Stopping".into();
                });
                let _ = running.stop(GRACE).await;
                crashes = 0;
                sup.update(|s| s.view.restarts = 0);
            }
            Outcome::Cmd(Some(PodCmd::Hold)) if is_held(&sup) => {
                sup.update(|s| {
                    s.view.ready = false;
                    s.view.state = "Stopping".into();
                });
                let _ = running.stop(GRACE).await;
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

fn addresses(ip: &str, ctl: &Controller, owner: &ResourceRef) -> Vec<String> {
    let ports = ctl
        .store
        .get(owner)
        .ok()
        .flatten()
        .and_then(|r| crate::workloads::workload_of(&r.resource).map(|w| w.ports))
        .unwrap_or_default();
    if ports.is_empty() {
        return vec![ip.to_string()];
    }
    ports
        .iter()
        .map(|p| format!("{}:{}", p.host_ip.as_deref().unwrap_or(ip), p.port))
        .collect()
}

async fn finish(sup: &Sup, running: Option<Box<dyn RunningPod>>) {
    sup.update(|s| {
        s.view.state = "Stopping".into();
        s.view.ready = false;
        s.terminating = true;
    });
    if let Some(r) = running {
        if let Err(e) = r.stop(GRACE).await {
            sup.ctl.event(
                "warning",
                Some(&sup.owner),
                Some(&sup.pod),
                "StopFailed",
                &e.to_string(),
            );
        }
    }
    if let Err(e) = sup.ctl.runtime.forget(&sup.pod).await {
        tracing::warn!(pod = %sup.pod, error = %e, "could not clean pod state");
    }
    sup.ctl.event(
        "info",
        Some(&sup.owner),
        Some(&sup.pod),
        "Stopped",
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
        s.view.state = "Held".into();
        s.view.ready = false;
        s.view.pid = None;
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
    ) -> Result<PodHold, String> {
        {
            let mut s = shared.lock().map_err(|e| e.to_string())?;
            if s.terminating {
                return Err("it is being stopped or replaced".into());
            }
            if s.held.is_some() {
                return Err("it is already held stopped".into());
            }
            s.held = Some(why.to_string());
        }
        let hold = PodHold { shared, cmd };
        hold.cmd
            .send(PodCmd::Hold)
            .map_err(|_| "its supervisor is gone".to_string())?;
        Ok(hold)
    }

    /// Whether the pod's process is down and stays down (state `Held`).
    pub fn stopped(&self) -> bool {
        self.shared
            .lock()
            .map(|s| s.view.state == "Held" && s.view.pid.is_none())
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
        // Until the first success, retry quickly (25 ms doubling up to the period): a process
        // usually starts listening a few ms after the first check, and waiting a whole period
        // for it would slow every ordered rollout by a period per pod.
        let mut first = Some(Duration::from_millis(25));
        loop {
            let result = run_check(sup, p, pod).await;
            if result.is_ok() {
                first = None;
            }
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
                        sup.ctl
                            .event("warning", Some(&sup.owner), Some(&sup.pod), "NotReady", &e);
                        sup.update(|s| {
                            s.view.ready = false;
                            s.view.message = Some(format!("readiness: {e}"));
                        });
                    } else if bad >= p.failure_threshold {
                        sup.update(|s| s.view.message = Some(format!("readiness: {e}")));
                    }
                }
            }
            let period = Duration::from_millis(p.period_ms);
            match first {
                Some(d) if d < period => {
                    tokio::time::sleep(d).await;
                    first = Some(d * 2);
                }
                _ => tokio::time::sleep(period).await,
            }
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

/// Reports the pod ready, once the runtime has published it under the shared alias.
async fn become_ready(sup: &Sup, pod: &dyn RunningPod) {
    if let Err(e) = pod.publish_ready().await {
        tracing::warn!(pod = %sup.pod, error = %e, "could not add the pod to its shared alias");
    }
    sup.update(|s| {
        s.view.ready = true;
        s.view.message = None;
    });
}

async fn run_check(sup: &Sup, p: &Probe, pod: &dyn RunningPod) -> Result<(), String> {
    // Exec probes use the env the controller last published for this pod (a rotated password
    // reaches probes without a restart), else the env the pod started with.
    let env = sup.shared.lock().ok().and_then(|s| s.probe_env.clone());
    check(
        &p.action,
        &pod.probe_ip(),
        pod,
        env.as_ref(),
        Duration::from_millis(p.timeout_ms.max(1)),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
