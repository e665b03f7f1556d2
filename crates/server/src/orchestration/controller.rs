//! The controller: owns the store, the runtime and the pod table, and runs the reconcile loop.
//!
//! Level-triggered: every pass reads desired state from the store and observed state from the
//! pod table, asks the pure planner what to do, and hands the actions to pod supervisors. It is
//! woken by applies, config changes and pod status changes, and by a timer as a backstop.

use crate::error::ServerError;
use crate::resolve::{self, bucket_of, Context};
use crate::supervisor::{self, PodCmd, PodShared};
use crate::types::{PodView, Problem, WorkloadStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use vd_core::env::EnvMap;
use vd_core::hash::spec_hash;
use vd_core::hosts::{self, HostEntry};
use vd_core::naming::pod_name;
use vd_core::pod::PodTemplate;
use vd_core::rollout::{self, Action, Desired, ObservedPod, Ordering, Plan};
use vd_core::{AssetSpec, Kind, Probes, ResourceRef, Spec};
use vd_runtime::{PodLaunch, RunningPod, Runtime};
use vd_store::{NewEvent, Store};

/// How the server is set up.
pub struct ServerConfig {
    /// Root directory: store, socket, pods, volumes, logs, assets.
    pub root: PathBuf,
    /// The pod runtime.
    pub runtime: Arc<dyn Runtime>,
}

/// A pod the controller tracks.
pub(crate) struct PodEntry {
    pub owner: ResourceRef,
    pub ordinal: u32,
    pub shared: Arc<Mutex<PodShared>>,
    pub cmd: mpsc::UnboundedSender<PodCmd>,
}

/// The controller's state, shared by the API handlers, the reconcile loop and supervisors.
pub struct Controller {
    /// Root directory.
    pub root: PathBuf,
    /// Desired state and records.
    pub store: Store,
    /// Pod backend.
    pub runtime: Arc<dyn Runtime>,
    pub(crate) pods: Mutex<BTreeMap<String, PodEntry>>,
    workloads: Mutex<BTreeMap<ResourceRef, WorkloadStatus>>,
    wake: Notify,
    /// Set by shutdown: the loop stops creating pods.
    pub(crate) stopping: AtomicBool,
    /// Wakes the HTTP server to exit.
    pub shutdown: Notify,
    /// Prometheus counters (failovers, errors); instance gauges are read at scrape time.
    pub metrics: crate::metrics::Metrics,
    hosts_cache: Mutex<String>,
    rotation: AtomicUsize,
    /// Held by a config change while it declares running pods current for the new config
    /// (`update_config` with `no_restart`), and by the reconcile loop while it plans: the loop
    /// must never see the new config before those pods' new hashes, or it replaces them (a
    /// failover's new master among them).
    rollout_gate: Mutex<()>,
    /// Pod exits and stuck failovers, shared by supervisors and the failover tasks.
    pub failover: crate::failover::Shared,
    /// Cronjob runs going now (`crate::cronjob`).
    pub cronjobs: crate::cronjob::Shared,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

fn lock_err(e: impl std::fmt::Display) -> ServerError {
    ServerError::io("lock", std::io::Error::other(e.to_string()))
}

impl Controller {
    /// Opens the root (taking its lock), the store, and adopts pods left by an earlier server.
    pub async fn start(config: ServerConfig) -> Result<Arc<Self>, ServerError> {
        use std::os::unix::fs::PermissionsExt;
        let root = config.root;
        std::fs::create_dir_all(&root)
            .map_err(|e| ServerError::io(format!("create {}", root.display()), e))?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| ServerError::io(format!("chmod {}", root.display()), e))?;
        let lock_path = root.join("vd.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| ServerError::io(format!("open {}", lock_path.display()), e))?;
        let lock = match nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock)
        {
            Ok(f) => f,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(ServerError::Conflict {
                    message: format!("another vd server is running on {}", root.display()),
                    help: Some("stop it first, or pick another root with --root".into()),
                })
            }
            Err((_, e)) => return Err(lock_err(e)),
        };
        let store = Store::open(&root.join("vd.db"))?;
        let ctl = Arc::new(Controller {
            root,
            store,
            runtime: config.runtime,
            pods: Mutex::new(BTreeMap::new()),
            workloads: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            shutdown: Notify::new(),
            metrics: crate::metrics::Metrics::new(),
            hosts_cache: Mutex::new(String::new()),
            rotation: AtomicUsize::new(0),
            rollout_gate: Mutex::new(()),
            failover: crate::failover::Shared::default(),
            cronjobs: crate::cronjob::Shared::default(),
            _lock: lock,
        });
        for ((scope, name), a) in ctl.assets(&[])? {
            crate::assets::materialize(
                &ctl.assets_dir(),
                &ResourceRef::new(Kind::Asset, scope, name),
                &a,
            )?;
        }
        ctl.adopt_pods().await?;
        let looped = ctl.clone();
        tokio::spawn(async move { looped.reconcile_loop().await });
        let rot = ctl.clone();
        tokio::spawn(async move { rot.rotate_logs_loop().await });
        tokio::spawn(crate::sentinel::follow(ctl.clone()));
        // Before the failover task: an interrupted import's redis stays paused until its
        // master is detached from the source.
        crate::import::recover(&ctl);
        tokio::spawn(crate::failover::run(ctl.clone()));
        tokio::spawn(crate::backup_schedule::run(ctl.clone()));
        tokio::spawn(crate::cronjob::run(ctl.clone()));
        Ok(ctl)
    }

    /// Where asset files live.
    pub fn assets_dir(&self) -> PathBuf {
        self.root.join("assets")
    }

    /// What [`crate::resolve::Context::host`] offers specs.
    fn host_vars(&self) -> vd_core::env::EnvMap {
        let exe = std::env::current_exe()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        vd_core::env::EnvMap::from([
            ("VD_EXE".to_string(), exe),
            (
                "VD_RUN_DIR".to_string(),
                self.root.join("run").to_string_lossy().into_owned(),
            ),
        ])
    }

    /// Wakes the reconcile loop.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Records an event; failures to record are logged, never fatal.
    pub fn event(
        &self,
        level: &str,
        resource: Option<&ResourceRef>,
        pod: Option<&str>,
        reason: &str,
        message: &str,
    ) {
        tracing::info!(level, resource = ?resource.map(|r| r.to_string()), pod, reason, message, "event");
        if let Err(e) = self.store.record_event(NewEvent {
            level,
            resource,
            pod,
            reason,
            message,
        }) {
            tracing::warn!(error = %e, "could not record event");
        }
    }

    async fn adopt_pods(self: &Arc<Self>) -> Result<(), ServerError> {
        let owners: BTreeMap<String, ResourceRef> = self
            .store
            .pod_statuses()?
            .into_iter()
            .map(|(pod, owner, _)| (pod, owner))
            .collect();
        for pod in self.runtime.known_pods().await? {
            // Cronjob runs are not supervised: the scheduler finds them again (cronjob.rs).
            if crate::cronjob::is_run_pod(&pod) {
                continue;
            }
            let Some(owner) = owners.get(&pod) else {
                self.runtime.forget(&pod).await?;
                continue;
            };
            let Some((_, ordinal)) = vd_core::naming::parse_pod_name(&pod) else {
                continue;
            };
            match self.runtime.adopt(&pod).await? {
                Some(running) => {
                    self.event(
                        "info",
                        Some(owner),
                        Some(&pod),
                        "Adopted",
                        "pod kept running across a controller restart",
                    );
                    let hash = self
                        .store
                        .meta_get(&format!("pod-hash:{pod}"))?
                        .unwrap_or_else(|| running.info().hash.clone());
                    self.spawn_pod(owner.clone(), ordinal, Some(running), hash);
                }
                None => {
                    self.runtime.forget(&pod).await?;
                    self.store.delete_pod_status(&pod)?;
                }
            }
        }
        Ok(())
    }

    /// Starts supervising a pod. `hash` is the spec it is (or is about to be) running, so the
    /// planner never mistakes a pod that is still starting for an outdated one and replaces it.
    fn spawn_pod(
        self: &Arc<Self>,
        owner: ResourceRef,
        ordinal: u32,
        adopted: Option<Box<dyn RunningPod>>,
        hash: String,
    ) {
        let pod = pod_name(&owner, ordinal);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut initial = PodShared::new(&owner, ordinal, &pod);
        initial.view.hash = hash;
        let shared = Arc::new(Mutex::new(initial));
        match self.pods.lock() {
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
        let ctl = self.clone();
        tokio::spawn(supervisor::run(ctl, owner, ordinal, adopted, shared, rx));
    }

    /// Called by a supervisor when its pod is gone for good.
    pub(crate) fn pod_gone(&self, pod: &str) {
        if let Ok(mut pods) = self.pods.lock() {
            pods.remove(pod);
        }
        let _ = self.store.delete_pod_status(pod);
        self.notify();
    }

    /// Records that a running pod counts as running `hash` (kept in memory for the reconcile
    /// loop; the store holds it for restarts of the controller).
    pub(crate) fn set_hash_override(&self, pod: &str, hash: Option<String>) {
        if let Ok(pods) = self.pods.lock() {
            if let Some(e) = pods.get(pod) {
                if let Ok(mut s) = e.shared.lock() {
                    s.hash_override = hash;
                }
            }
        }
    }

    /// Publishes the current desired env of a workload's pods to their exec probes.
    pub fn refresh_probe_env(&self, id: &ResourceRef) {
        let entries: Vec<(u32, Arc<Mutex<PodShared>>)> = self
            .pods
            .lock()
            .map(|p| {
                p.values()
                    .filter(|e| &e.owner == id)
                    .map(|e| (e.ordinal, e.shared.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (ordinal, shared) in entries {
            if let Ok((launch, _)) = self.desired_launch(id, ordinal) {
                if let Ok(mut s) = shared.lock() {
                    s.probe_env = Some(launch.env);
                }
            }
        }
    }

    /// Stops a supervised pod and keeps it stopped until the returned guard is dropped
    /// (`why` shows in `vd get pods`); `Err` says why it cannot be held.
    pub fn hold_pod(&self, pod: &str, why: &str) -> Result<supervisor::PodHold, String> {
        let (shared, cmd) = self
            .pods
            .lock()
            .map_err(|e| e.to_string())?
            .get(pod)
            .map(|e| (e.shared.clone(), e.cmd.clone()))
            .ok_or_else(|| format!("pod {pod} is not supervised"))?;
        supervisor::PodHold::new(shared, cmd, why)
    }

    /// Snapshot of every pod.
    pub fn pod_views(&self) -> Vec<PodView> {
        let Ok(pods) = self.pods.lock() else {
            return Vec::new();
        };
        pods.values()
            .filter_map(|e| e.shared.lock().ok().map(|s| s.view.clone()))
            .collect()
    }

    /// Snapshot of a workload's rollout status.
    pub fn workload_status(&self, id: &ResourceRef) -> Option<WorkloadStatus> {
        self.workloads.lock().ok()?.get(id).cloned()
    }

    /// Every asset the store knows (declared, and generated by macros), with `extra` (an
    /// apply not yet stored) taking precedence.
    pub fn assets(
        &self,
        extra: &[vd_core::Resource],
    ) -> Result<BTreeMap<(String, String), AssetSpec>, ServerError> {
        let mut out = BTreeMap::new();
        let stored: Vec<vd_core::Resource> = self
            .store
            .list(None)?
            .into_iter()
            .map(|s| s.resource)
            .collect();
        for r in stored.iter().chain(extra) {
            if let Spec::Asset(a) = &r.spec {
                out.insert((r.id.scope.clone(), r.id.name.clone()), a.clone());
            }
            if let Some((id, a)) = crate::workloads::generated_asset(r) {
                out.insert((id.scope, id.name), a);
            }
        }
        Ok(out)
    }

    /// Resolves a workload's pod template and its desired hash.
    pub fn desired(
        &self,
        id: &ResourceRef,
        spec: &vd_core::WorkloadSpec,
        assets: &BTreeMap<(String, String), AssetSpec>,
    ) -> Result<Result<(PodTemplate, String), Vec<Problem>>, ServerError> {
        self.desired_with(id, spec, assets, None)
    }

    /// [`Self::desired`] with `overlay` added to the resource's own bucket (validation of an
    /// apply that will also write config, such as a new redis's password).
    pub fn desired_with(
        &self,
        id: &ResourceRef,
        spec: &vd_core::WorkloadSpec,
        assets: &BTreeMap<(String, String), AssetSpec>,
        overlay: Option<&EnvMap>,
    ) -> Result<Result<(PodTemplate, String), Vec<Problem>>, ServerError> {
        let mut env_from: BTreeMap<String, EnvMap> = BTreeMap::new();
        for entry in &spec.env_from {
            let (scope, name) = bucket_of(entry);
            if scope.is_empty() || name == Some("") {
                continue; // reported by resolve as not a bucket reference
            }
            let vars = match name {
                Some(n) => self.store.config_effective(scope, n)?,
                None => self.store.config_get(scope, None)?,
            };
            env_from.insert(entry.clone(), vars);
        }
        let mut own = self.store.config_effective(&id.scope, &id.name)?;
        if let Some(o) = overlay {
            own.extend(o.clone());
        }
        let assets_dir = self.assets_dir();
        let ctx = Context {
            assets,
            assets_dir: &assets_dir,
            env_from: &env_from,
            own: &own,
            host: &self.host_vars(),
        };
        let generation = self
            .store
            .meta_get(&format!("restart:{id}"))?
            .unwrap_or_default();
        Ok(resolve::template(id, spec, &ctx).map(|t| {
            let hash = spec_hash(&(t.hash(), generation));
            (t, hash)
        }))
    }

    /// Changes a config bucket. Pods whose env changes roll, unless `no_restart`: then running
    /// pods are declared current for the new config, which reaches them on their next restart.
    pub fn update_config(
        &self,
        scope: &str,
        name: Option<&str>,
        set: &BTreeMap<String, String>,
        unset: &[String],
        no_restart: bool,
    ) -> Result<bool, ServerError> {
        let _gate = self.rollout_gate.lock().map_err(lock_err)?;
        let before = if no_restart {
            self.desired_hashes()?
        } else {
            BTreeMap::new()
        };
        let changed = self.store.config_update(scope, name, set, unset)?;
        if !changed {
            return Ok(false);
        }
        if no_restart {
            let after = self.desired_hashes()?;
            for pod in self.pod_views() {
                let id = ResourceRef::new(pod.kind, &pod.scope, &pod.name);
                let key = format!("pod-hash:{}", pod_name(&id, pod.ordinal));
                let current = self.store.meta_get(&key)?.unwrap_or(pod.hash.clone());
                if let (Some(b), Some(a)) = (before.get(&id), after.get(&id)) {
                    if b != a && current == *b {
                        self.store.meta_set(&key, a)?;
                        self.set_hash_override(&pod_name(&id, pod.ordinal), Some(a.clone()));
                    }
                }
            }
        }
        let level = match name {
            Some(n) => format!("{scope}/{n}"),
            None => scope.to_string(),
        };
        let keys: Vec<&str> = set
            .keys()
            .map(String::as_str)
            .chain(unset.iter().map(String::as_str))
            .collect();
        self.event(
            "info",
            None,
            None,
            "ConfigChanged",
            &format!("{level}: {}", keys.join(", ")),
        );
        self.notify();
        Ok(true)
    }

    /// Desired hash of every workload (for `--no-restart` config changes).
    pub fn desired_hashes(&self) -> Result<BTreeMap<ResourceRef, String>, ServerError> {
        let assets = self.assets(&[])?;
        let mut out = BTreeMap::new();
        for r in self.store.list(None)? {
            if let Some(w) = crate::workloads::workload_of(&r.resource) {
                if let Ok((_, h)) = self.desired(&r.resource.id, &w, &assets)? {
                    out.insert(r.resource.id.clone(), h);
                }
            }
        }
        Ok(out)
    }

    /// The launch for one pod as the store says it should be now, with its probes.
    pub(crate) fn desired_launch(
        &self,
        id: &ResourceRef,
        ordinal: u32,
    ) -> Result<(PodLaunch, Probes), String> {
        let stored = self
            .store
            .get(id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{id} no longer exists"))?;
        let Some(spec) = crate::workloads::workload_of(&stored.resource) else {
            return Err(format!("{id} is not a workload"));
        };
        let spec = &spec;
        let assets = self.assets(&[]).map_err(|e| e.to_string())?;
        let (template, hash) = match self.desired(id, spec, &assets).map_err(|e| e.to_string())? {
            Ok(v) => v,
            Err(problems) => {
                return Err(problems
                    .into_iter()
                    .map(|p| p.message)
                    .collect::<Vec<_>>()
                    .join("; "))
            }
        };
        let pod = pod_name(id, ordinal);
        let ports: Vec<u16> = template
            .ports
            .iter()
            .filter(|p| p.host_ip.is_none())
            .map(|p| p.port)
            .collect();
        let ip = self
            .store
            .allocate_address(&pod, &mut |ip: &str| {
                ports
                    .iter()
                    .all(|p| std::net::TcpListener::bind((ip, *p)).is_ok())
            })
            .map_err(|e| e.to_string())?;
        Ok((
            resolve::launch(
                id,
                &template,
                ordinal,
                &ip,
                &self.runtime.pod_ip(&ip),
                &hash,
            ),
            resolve::pod_probes(id, &template, ordinal, &self.runtime.pod_ip(&ip)),
        ))
    }

    async fn reconcile_loop(self: Arc<Self>) {
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
        for r in &resources {
            let id = &r.resource.id;
            let Some(spec) = crate::workloads::workload_of(&r.resource) else {
                continue;
            };
            let spec = &spec;
            let ordering = if matches!(id.kind, Kind::Statefulset | Kind::Redis) {
                Ordering::Ordered
            } else {
                Ordering::Parallel
            };
            let mut status = WorkloadStatus {
                desired: spec.replicas,
                revision: r.revision,
                ..Default::default()
            };
            let hash = match self.desired(id, spec, &assets)? {
                Ok((_, h)) => h,
                Err(problems) => {
                    status.message = problems.first().map(|p| p.message.clone());
                    statuses.insert(id.clone(), status);
                    continue;
                }
            };
            let observed = self.observed(id)?;
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
                },
                &observed,
            );
            match plan {
                Plan::Converged => status.converged = true,
                Plan::Wait(why) => status.message = Some(why),
                Plan::Act(actions) => {
                    for a in actions {
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
            matches!(
                s.view.state.as_str(),
                "Backoff" | "CrashLoopBackOff" | "Failed"
            )
            .then(|| {
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

    fn mark_terminating(&self, pod: &str) {
        if let Ok(pods) = self.pods.lock() {
            if let Some(e) = pods.get(pod) {
                if let Ok(mut s) = e.shared.lock() {
                    s.terminating = true;
                }
            }
        }
    }

    fn execute(self: &Arc<Self>, id: &ResourceRef, action: Action, hash: &str) {
        match action {
            Action::Create(o) => {
                tracing::info!(resource = %id, ordinal = o, "creating pod");
                self.spawn_pod(id.clone(), o, None, hash.to_string());
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
                        Action::Remove(_) => (PodCmd::Stop, "Removing"),
                        _ => (PodCmd::Replace, "Replacing"),
                    };
                    self.event(
                        "info",
                        Some(id),
                        Some(&pod),
                        reason,
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

    /// Stops every pod (volumes stay) and waits until they are gone.
    pub async fn stop_all_pods(&self, timeout: Duration) {
        self.stopping.store(true, AtomicOrdering::SeqCst);
        let senders: Vec<(String, mpsc::UnboundedSender<PodCmd>)> = self
            .pods
            .lock()
            .map(|p| p.iter().map(|(n, e)| (n.clone(), e.cmd.clone())).collect())
            .unwrap_or_default();
        for (pod, tx) in senders {
            self.mark_terminating(&pod);
            let _ = tx.send(PodCmd::Stop);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.pods.lock().map(|p| p.is_empty()).unwrap_or(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until no pod of `id` is left.
    pub async fn wait_pods_gone(&self, id: &ResourceRef, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = self
                .pods
                .lock()
                .map(|p| p.values().any(|e| &e.owner == id))
                .unwrap_or(false);
            if !left {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn rotate_logs_loop(self: Arc<Self>) {
        const MAX: u64 = 10 << 20;
        loop {
            tokio::time::sleep(Duration::from_secs(30)).await;
            let pods: Vec<String> = self
                .pods
                .lock()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            for pod in pods {
                let path = self.runtime.log_path(&pod);
                if std::fs::metadata(&path)
                    .map(|m| m.len() > MAX)
                    .unwrap_or(false)
                {
                    rotate(&path);
                }
            }
        }
    }
}

/// Copy-truncate rotation keeping three old files: the pod holds its log open with O_APPEND,
/// so truncating in place is safe and the pod needs no signal.
fn rotate(path: &Path) {
    let old = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    for n in (1..3).rev() {
        let _ = std::fs::rename(old(n), old(n + 1));
    }
    if std::fs::copy(path, old(1)).is_ok() {
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(0));
    }
}
