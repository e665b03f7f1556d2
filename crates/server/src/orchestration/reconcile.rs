//! The reconcile loop. Level-triggered: every pass reads desired state from the store and
//! observed state from the pod table, asks the pure planner (`vd_core::rollout::plan`) what to
//! do, and hands the actions to pod supervisors. It is woken by applies, config changes and pod
//! status changes, and by a timer as a backstop.

use crate::error::ServerError;
use crate::orchestration::controller::{lock_err, Controller};
use crate::orchestration::pods::PodCmd;
use crate::types::WorkloadStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use vd_core::event::{Level, Reason};
use vd_core::hosts::{self, HostEntry};
use vd_core::naming::pod_name;
use vd_core::rollout::{self, Action, Desired, ObservedPod, Ordering, Plan};
use vd_core::{Kind, ResourceRef};

impl Controller {
    /// Runs for the server's lifetime: a pass on every wake-up, and every 2 s as a backstop.
    pub async fn reconcile_loop(self: Arc<Self>) {
        loop {
            if !self.stopping.load(AtomicOrdering::SeqCst) {
                if let Err(e) = self.reconcile_once().await {
                    tracing::warn!(error = %e, "reconcile failed");
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), self.wake.notified()).await;
        }
    }

    async fn reconcile_once(self: &Arc<Self>) -> Result<(), ServerError> {
        let resources = self.store.list(None)?;
        let assets = self.assets(&[])?;
        let owners: BTreeSet<ResourceRef> =
            resources.iter().map(|r| r.resource.id.clone()).collect();

        // Pods whose workload is gone: stop them (volumes stay).
        let orphans: Vec<(String, mpsc::UnboundedSender<PodCmd>)> = {
            let pods = self.pods.lock().map_err(lock_err)?;
            pods.iter()
                .filter(|(_, e)| !owners.contains(&e.owner))
                .filter(|(_, e)| e.shared.lock().map(|s| !s.terminating).unwrap_or(false))
                .map(|(n, e)| (n.clone(), e.cmd.clone()))
                .collect()
        };
        for (pod, tx) in orphans {
            self.mark_terminating(&pod);
            let _ = tx.send(PodCmd::Stop);
        }

        let mut statuses = BTreeMap::new();
        let gate = self.rollout_gate.lock().map_err(lock_err)?;
        // Under the gate: a `--no-restart` config change and the pods it declares current are
        // seen together or not at all.
        let buckets = self.buckets()?;
        for r in &resources {
            let id = &r.resource.id;
            let Some(spec) = vd_core::workload::workload_of(&r.resource) else {
                continue;
            };
            // A stopped workload keeps its spec and volumes and runs no pods until started.
            let stopped = self.is_stopped(id)?;
            let mut spec = spec;
            if stopped {
                spec.replicas = 0;
            }
            let spec = &spec;
            let ordering = if matches!(id.kind, Kind::Statefulset | Kind::Redis) {
                Ordering::Ordered
            } else {
                Ordering::Parallel
            };
            let mut status = WorkloadStatus {
                desired: spec.replicas,
                revision: r.revision,
                stopped,
                ..Default::default()
            };
            let hash = match self.desired_in(id, spec, &assets, &buckets)? {
                Ok((_, h)) => h,
                Err(problems) => {
                    status.message = problems.first().map(|p| p.message.clone());
                    statuses.insert(id.clone(), status);
                    continue;
                }
            };
            let observed = self.observed(id)?;
            status.generation = self.note_hash(id, &hash)?;
            status.hash = hash.clone();
            status.ready = observed
                .iter()
                .filter(|p| p.ready && !p.terminating)
                .count() as u32;
            status.current = observed
                .iter()
                .filter(|p| p.hash == hash && !p.terminating)
                .count() as u32;
            let plan = rollout::plan(
                &Desired {
                    replicas: spec.replicas,
                    hash: hash.clone(),
                    ordering,
                    anchor: if stopped {
                        None
                    } else {
                        self.hooks().anchor(self, id)
                    },
                },
                &observed,
            );
            match plan {
                Plan::Converged => status.converged = true,
                Plan::Wait(why) => status.message = Some(why),
                Plan::Act(actions) => {
                    for a in actions {
                        if let Action::Remove(o) = a {
                            if !stopped && !self.hooks().may_remove(self, id, o) {
                                status.message = Some(format!(
                                    "pod {o} waits to be removed until it hands over its work"
                                ));
                                continue;
                            }
                        }
                        if let Action::Replace(o) = a {
                            if !self.hooks().may_replace(self, id, o) {
                                status.message = Some(format!(
                                    "pod {o} waits to be replaced until it hands over its work"
                                ));
                                continue;
                            }
                        }
                        self.execute(id, a, &hash);
                    }
                }
            }
            if status.message.is_none() {
                status.message = self.failing_pod_message(id);
            }
            statuses.insert(id.clone(), status);
        }
        drop(gate);
        if let Ok(mut w) = self.workloads.lock() {
            *w = statuses;
        }
        self.refresh_hosts().await
    }

    fn failing_pod_message(&self, id: &ResourceRef) -> Option<String> {
        let pods = self.pods.lock().ok()?;
        pods.values().filter(|e| &e.owner == id).find_map(|e| {
            let s = e.shared.lock().ok()?;
            s.view.state.is_failing().then(|| {
                format!(
                    "pod {} {}: {}",
                    s.view.pod,
                    s.view.state,
                    s.view.message.clone().unwrap_or_default()
                )
            })
        })
    }

    fn observed(&self, id: &ResourceRef) -> Result<Vec<ObservedPod>, ServerError> {
        let pods = self.pods.lock().map_err(lock_err)?;
        let mut out = Vec::new();
        for e in pods.values().filter(|e| &e.owner == id) {
            let s = e.shared.lock().map_err(lock_err)?;
            let hash = s
                .hash_override
                .clone()
                .unwrap_or_else(|| s.view.hash.clone());
            out.push(ObservedPod {
                ordinal: e.ordinal,
                hash,
                ready: s.view.ready,
                terminating: s.terminating,
            });
        }
        Ok(out)
    }

    fn execute(self: &Arc<Self>, id: &ResourceRef, action: Action, hash: &str) {
        match action {
            Action::Create(o) => {
                tracing::info!(resource = %id, ordinal = o, "creating pod");
                crate::orchestration::supervisor::spawn(
                    self,
                    id.clone(),
                    o,
                    None,
                    hash.to_string(),
                );
            }
            Action::Remove(o) | Action::Replace(o) => {
                let pod = pod_name(id, o);
                let tx = self
                    .pods
                    .lock()
                    .ok()
                    .and_then(|p| p.get(&pod).map(|e| e.cmd.clone()));
                if let Some(tx) = tx {
                    self.mark_terminating(&pod);
                    let (cmd, reason) = match action {
                        Action::Remove(_) => (PodCmd::Stop, Reason::Removing),
                        _ => (PodCmd::Replace, Reason::Replacing),
                    };
                    self.event(
                        Level::Info,
                        Some(id),
                        Some(&pod),
                        reason.clone(),
                        &format!("{reason} pod {pod}").to_lowercase(),
                    );
                    let _ = tx.send(cmd);
                }
            }
        }
    }

    async fn refresh_hosts(&self) -> Result<(), ServerError> {
        let entries: Vec<HostEntry> = {
            let pods = self.pods.lock().map_err(lock_err)?;
            pods.values()
                .filter_map(|e| {
                    let s = e.shared.lock().ok()?;
                    (!s.view.ip.is_empty()).then(|| HostEntry {
                        resource: e.owner.clone(),
                        ordinal: e.ordinal,
                        ip: s.view.ip.clone(),
                        ready: s.view.ready && !s.terminating,
                    })
                })
                .collect()
        };
        // Compare what the names resolve to, not the rendered text: the alias rotation would
        // otherwise make every pass a rewrite (and a window where a pod reads a short file).
        let key = hosts::render(&entries, 0);
        let changed = self.hosts_cache.lock().map(|c| *c != key).unwrap_or(true);
        if changed {
            let rotation = self.rotation.fetch_add(1, AtomicOrdering::Relaxed);
            self.runtime.publish_names(&entries, rotation).await?;
            if let Ok(mut c) = self.hosts_cache.lock() {
                *c = key;
            }
        }
        Ok(())
    }
}
