//! The controller context: the root (and its lock), the store, the runtime, the pod table and
//! the reconcile loop's wake-up. Every task of the server shares it; it holds nothing else, so
//! what a task needs beyond it is visible in that task's own arguments.

use crate::error::ServerError;
use crate::orchestration::pods::{HoldError, PodCmd, PodHold, PodShared};
use crate::orchestration::resolve::{self, Buckets};
use crate::types::{PodView, Problem, WorkloadStatus};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use vd_core::env::EnvMap;
use vd_core::event::{Level, Reason};
use vd_core::naming::pod_name;
use vd_core::pod::PodTemplate;
use vd_core::{AssetSpec, Kind, Probes, ResourceRef, Spec};
use vd_runtime::{PodLaunch, Runtime};
use vd_store::{MetaKey, Store};

/// How the server is set up.
pub struct ServerConfig {
    /// Root directory: store, socket, pods, volumes, logs, assets.
    pub root: PathBuf,
    /// The pod runtime.
    pub runtime: Arc<dyn Runtime>,
    /// How long a pod certificate is valid (renewed at two thirds of it).
    pub pod_cert_validity: std::time::Duration,
}

/// A pod the controller tracks.
pub(crate) struct PodEntry {
    pub owner: ResourceRef,
    pub ordinal: u32,
    pub shared: Arc<Mutex<PodShared>>,
    pub cmd: mpsc::UnboundedSender<PodCmd>,
}

// Where generic orchestration asks the services it runs. A pod supervisor knows nothing of
// Redis, but a crashed Redis master must not simply restart (it would come back as a master
// with stale data while a replica is being promoted). So the supervisor calls these hooks at
// the moments that matter and the service side, registered at start, decides.

/// A future a hook returns; boxed so the trait stays object-safe.
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
/// How a pod takes a renewed certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertReload {
    /// It loaded it while running.
    Live,
    /// It cannot load one while running: orchestration restarts it (one pod at a time,
    /// waiting for it to be ready again).
    Restart,
}

/// What [`PodHooks::native_check`] resolves to: the check passed, or why it failed.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// What [`PodHooks::certificate_renewed`] resolves to: how the pod took its new certificate, or
/// why it could not be told.
pub type HookOutcome<'a> = Pin<Box<dyn Future<Output = Result<CertReload, String>> + Send + 'a>>;

/// What a pod supervisor asks before it acts. Every method must return promptly when there
/// is nothing to wait for: it runs on every start and exit of every pod.
pub trait PodHooks: Send + Sync {
    /// A pod's process exited (crash, kill or liveness restart). Called at once, before any
    /// backoff, so a failure detector learns of a crash without polling.
    fn pod_exited(&self, owner: &ResourceRef, ordinal: u32);

    /// Before the pod's process is launched again (not after a deliberate hold): resolves when
    /// it may start. Its launch is resolved after this returns, so what it waited for (a new
    /// master recorded in the store) is what it boots with.
    fn before_launch<'a>(
        &'a self,
        ctl: &'a Controller,
        owner: &'a ResourceRef,
        ordinal: u32,
    ) -> HookFuture<'a>;

    /// After the pod's process exited, before the restart backoff: resolves when it may be
    /// restarted.
    fn after_exit<'a>(
        &'a self,
        ctl: &'a Controller,
        owner: &'a ResourceRef,
        ordinal: u32,
    ) -> HookFuture<'a>;

    /// A running pod's certificate was issued again (the files it mounts are replaced): make
    /// the pod load it without a restart, or say it needs one. A pod that could not be told is
    /// asked again at the next renewal check.
    fn certificate_renewed<'a>(
        &'a self,
        ctl: &'a Controller,
        owner: &'a ResourceRef,
        ordinal: u32,
    ) -> HookOutcome<'a>;

    /// Before the rollout removes a pod its workload no longer wants (a scale-down): whether
    /// it may go now. A pod kept is asked again on the next reconcile; a stopped workload's
    /// pods are removed without asking.
    fn may_remove(&self, ctl: &Controller, owner: &ResourceRef, ordinal: u32) -> bool;

    /// The pod of `owner` the others follow, if any: an ordered start creates it first, and a
    /// rollout replaces it after every other one is current and ready (it hands its work to a
    /// peer before it goes).
    fn anchor(&self, _ctl: &Controller, _owner: &ResourceRef) -> Option<u32> {
        None
    }

    /// An exec probe's command that the service can answer itself over the network, from the
    /// controller: the same check without a process in the pod per check (on the container
    /// runtime, a `docker exec` each time). `ip` is where the controller's own connections
    /// reach the pod (the address its certificate names), `env`
    /// the env the command would run with; the caller also bounds the whole check by
    /// `timeout`. `None`: the command runs in the pod as written.
    fn native_check<'a>(
        &'a self,
        _ctl: &'a Controller,
        _command: &'a [String],
        _ip: &'a str,
        _env: &'a BTreeMap<String, String>,
        _timeout: Duration,
    ) -> Option<CheckFuture<'a>> {
        None
    }

    /// Before the rollout replaces an outdated pod: whether it may go now. A pod kept (while
    /// it hands its work over) is asked again on the next reconcile.
    fn may_replace(&self, _ctl: &Controller, _owner: &ResourceRef, _ordinal: u32) -> bool {
        true
    }
}

/// The hooks of a controller that runs nothing special: every pod restarts at once.
pub struct NoHooks;

impl PodHooks for NoHooks {
    fn pod_exited(&self, _: &ResourceRef, _: u32) {}

    fn may_remove(&self, _: &Controller, _: &ResourceRef, _: u32) -> bool {
        true
    }

    fn before_launch<'a>(
        &'a self,
        _: &'a Controller,
        _: &'a ResourceRef,
        _: u32,
    ) -> HookFuture<'a> {
        Box::pin(std::future::ready(()))
    }

    fn after_exit<'a>(&'a self, _: &'a Controller, _: &'a ResourceRef, _: u32) -> HookFuture<'a> {
        Box::pin(std::future::ready(()))
    }

    fn certificate_renewed<'a>(
        &'a self,
        _: &'a Controller,
        _: &'a ResourceRef,
        _: u32,
    ) -> HookOutcome<'a> {
        Box::pin(std::future::ready(Err(
            "no service knows how to reload it; it is loaded at the next restart".to_string(),
        )))
    }
}

/// The controller's state, shared by the API handlers, the reconcile loop and supervisors.
pub struct Controller {
    /// Root directory.
    pub root: PathBuf,
    /// Desired state and records.
    pub store: Store,
    /// Pod backend.
    pub runtime: Arc<dyn Runtime>,
    /// The root's certificate authority and the pods' certificates.
    pub certs: crate::orchestration::certs::Authority,
    pub(crate) pods: Mutex<BTreeMap<String, PodEntry>>,
    pub(crate) workloads: Mutex<BTreeMap<ResourceRef, WorkloadStatus>>,
    /// The generation of each workload's desired hash.
    pub(crate) generations: Mutex<crate::orchestration::generation::Generations>,
    pub(crate) wake: Notify,
    /// Set by shutdown: the loop stops creating pods.
    pub(crate) stopping: AtomicBool,
    /// Wakes the HTTP server to exit.
    pub shutdown: Notify,
    pub(crate) hosts_cache: Mutex<String>,
    pub(crate) rotation: AtomicUsize,
    /// Held by a config change while it declares running pods current for the new config
    /// (`update_config` with `no_restart`), and by the reconcile loop while it plans: the loop
    /// must never see the new config before those pods' new hashes, or it replaces them (a
    /// failover's new master among them).
    pub(crate) rollout_gate: Mutex<()>,
    /// What supervisors ask before they restart a pod; registered once, before any pod is
    /// supervised ([`Controller::set_hooks`]).
    hooks: OnceLock<Arc<dyn PodHooks>>,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// Why a pod's launch could not be resolved or started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Its resource was deleted meanwhile.
    #[error("{0} no longer exists")]
    Gone(ResourceRef),
    /// Its resource runs no pods.
    #[error("{0} is not a workload")]
    NotAWorkload(ResourceRef),
    /// Its spec no longer resolves (every problem, joined).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] vd_store::StoreError),
    /// Reading the stored state failed.
    #[error("{0}")]
    Server(#[from] ServerError),
    /// The runtime could not start it.
    #[error("{0}")]
    Runtime(#[from] vd_runtime::RuntimeError),
}

impl LaunchError {
    /// A spec's problems as one error.
    pub fn invalid(problems: Vec<Problem>) -> LaunchError {
        LaunchError::Invalid(
            problems
                .into_iter()
                .map(|p| p.message)
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

pub(crate) fn lock_err(e: impl std::fmt::Display) -> ServerError {
    ServerError::io("lock", std::io::Error::other(e.to_string()))
}

impl Controller {
    /// Opens the root (taking its lock) and the store, and materializes the stored assets.
    /// Nothing runs yet: the composition root registers the hooks, then adopts pods
    /// ([`super::supervisor::adopt`]) and starts the loops.
    pub fn open(config: ServerConfig) -> Result<Arc<Self>, ServerError> {
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
        // A new root's pods get a subnet no other root on this host uses.
        store.subnet_avoiding(&config.runtime.taken_subnets())?;
        let ctl = Arc::new(Controller {
            certs: crate::orchestration::certs::Authority::new(&root, config.pod_cert_validity),
            root,
            store,
            runtime: config.runtime,
            pods: Mutex::new(BTreeMap::new()),
            workloads: Mutex::new(BTreeMap::new()),
            generations: Mutex::new(crate::orchestration::generation::Generations::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                    .unwrap_or(0),
            )),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            shutdown: Notify::new(),
            hosts_cache: Mutex::new(String::new()),
            rotation: AtomicUsize::new(0),
            rollout_gate: Mutex::new(()),
            hooks: OnceLock::new(),
            _lock: lock,
        });
        for ((scope, name), a) in ctl.assets(&[])? {
            crate::orchestration::assets::materialize(
                &ctl.assets_dir(),
                &ResourceRef::new(Kind::Asset, scope, name),
                &a,
            )?;
        }
        Ok(ctl)
    }

    /// Registers what supervisors ask before restarting a pod. Only the first call counts, and
    /// it must come before [`super::supervisor::adopt`]; until then pods restart at once.
    pub fn set_hooks(&self, hooks: Arc<dyn PodHooks>) {
        if self.hooks.set(hooks).is_err() {
            tracing::error!("pod hooks registered twice; keeping the first");
        }
    }

    /// The registered hooks (none: every pod restarts at once).
    pub(crate) fn hooks(&self) -> Arc<dyn PodHooks> {
        match self.hooks.get() {
            Some(h) => h.clone(),
            None => Arc::new(NoHooks),
        }
    }

    /// Where asset files live.
    pub fn assets_dir(&self) -> PathBuf {
        self.root.join("assets")
    }

    /// What [`crate::orchestration::resolve::Context::host`] offers specs.
    pub fn host_vars(&self) -> vd_core::env::EnvMap {
        let exe = std::env::current_exe()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        vd_core::env::EnvMap::from([
            ("VD_EXE".to_string(), exe),
            (
                "VD_RUN_DIR".to_string(),
                self.root.join("run").to_string_lossy().into_owned(),
            ),
            // The root's CA certificate, which TLS redis pods' certificates chain to: what a
            // consumer mounts to verify them (`${VD_TLS_CA}:/etc/redis-ca.crt:ro`). It exists
            // once a TLS redis has been applied.
            (
                "VD_TLS_CA".to_string(),
                self.certs.ca_file().to_string_lossy().into_owned(),
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
        level: Level,
        resource: Option<&ResourceRef>,
        pod: Option<&str>,
        reason: Reason,
        message: &str,
    ) {
        tracing::info!(level = level.as_str(), resource = ?resource.map(|r| r.to_string()), pod, reason = reason.as_str(), message, "event");
        if let Err(e) = self.store.record(level, resource, pod, reason, message) {
            tracing::warn!(error = %e, "could not record event");
        }
    }

    /// Called by a supervisor when its pod is gone for good.
    pub(crate) fn pod_gone(&self, pod: &str) {
        if let Ok(mut pods) = self.pods.lock() {
            pods.remove(pod);
        }
        crate::tidy::log_failure(
            self.store.delete_pod_status(pod),
            "drop a stopped pod's status",
        );
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

    /// The generation of `hash` as `id`'s desired hash now (see
    /// [`Generations`](crate::orchestration::generation::Generations)).
    pub(crate) fn note_hash(&self, id: &ResourceRef, hash: &str) -> Result<u64, ServerError> {
        Ok(self.generations.lock().map_err(lock_err)?.note(id, hash))
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
    pub fn hold_pod(&self, pod: &str, why: &str) -> Result<PodHold, HoldError> {
        let (shared, cmd) = self
            .pods
            .lock()
            .map_err(|_| HoldError::Poisoned)?
            .get(pod)
            .map(|e| (e.shared.clone(), e.cmd.clone()))
            .ok_or_else(|| HoldError::NotSupervised(pod.to_string()))?;
        PodHold::new(shared, cmd, why)
    }

    /// A running pod's handle and the env its exec probes use now (a rotated password
    /// reaches them without a restart), for `vd exec`.
    pub fn running_pod(
        &self,
        pod: &str,
    ) -> Option<(std::sync::Arc<dyn vd_runtime::RunningPod>, Option<EnvMap>)> {
        let pods = self.pods.lock().ok()?;
        let s = pods.get(pod)?.shared.lock().ok()?;
        Some((s.running.clone()?.0, s.probe_env.clone()))
    }

    /// Whether `pod` runs and passes its readiness probe.
    pub fn pod_ready(&self, pod: &str) -> bool {
        let Ok(pods) = self.pods.lock() else {
            return false;
        };
        pods.get(pod)
            .and_then(|e| e.shared.lock().ok().map(|s| s.view.ready))
            .unwrap_or(false)
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
            if let Some((id, a)) = vd_core::workload::generated_asset(r) {
                out.insert((id.scope, id.name), a);
            }
        }
        Ok(out)
    }

    /// Every config bucket level as stored now.
    pub fn buckets(&self) -> Result<Buckets, ServerError> {
        let mut out = Buckets::default();
        for (scope, name) in self.store.config_buckets()? {
            let vars = self.store.config_get(&scope, name.as_deref())?;
            out.insert(&scope, name.as_deref(), vars);
        }
        Ok(out)
    }

    /// Whether a workload was stopped with `vd stop` (and not started since).
    pub fn is_stopped(&self, id: &ResourceRef) -> Result<bool, ServerError> {
        Ok(self.store.meta(&MetaKey::Stopped(id.clone()))?.is_some())
    }

    /// Stops a workload's pods (top-down, volumes kept) until [`Controller::start_workload`];
    /// `false` when it was stopped already.
    pub fn stop_workload(&self, id: &ResourceRef) -> Result<bool, ServerError> {
        if self.is_stopped(id)? {
            return Ok(false);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis().to_string())
            .unwrap_or_default();
        self.store.set_meta(&MetaKey::Stopped(id.clone()), &now)?;
        self.notify();
        Ok(true)
    }

    /// Runs a stopped workload's pods again; `false` when it was not stopped.
    pub fn start_workload(&self, id: &ResourceRef) -> Result<bool, ServerError> {
        if !self.is_stopped(id)? {
            return Ok(false);
        }
        self.store.delete_meta(&MetaKey::Stopped(id.clone()))?;
        self.notify();
        Ok(true)
    }

    /// The restart generation of a workload (`vd restart` bumps it; part of its hash).
    pub fn generation(&self, id: &ResourceRef) -> Result<String, ServerError> {
        Ok(self
            .store
            .meta(&MetaKey::Restart(id.clone()))?
            .unwrap_or_default())
    }

    /// Resolves a workload's pod template and its desired hash as the store says now.
    pub fn desired(
        &self,
        id: &ResourceRef,
        spec: &vd_core::WorkloadSpec,
        assets: &BTreeMap<(String, String), AssetSpec>,
    ) -> Result<Result<(PodTemplate, String), Vec<Problem>>, ServerError> {
        self.desired_in(id, spec, assets, &self.buckets()?)
    }

    /// [`Controller::desired`] with the buckets already read (a pass over many workloads
    /// reads them once).
    pub fn desired_in(
        &self,
        id: &ResourceRef,
        spec: &vd_core::WorkloadSpec,
        assets: &BTreeMap<(String, String), AssetSpec>,
        buckets: &Buckets,
    ) -> Result<Result<(PodTemplate, String), Vec<Problem>>, ServerError> {
        Ok(resolve::desired(
            id,
            spec,
            assets,
            &self.assets_dir(),
            buckets,
            &self.host_vars(),
            &self.generation(id)?,
        ))
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
            self.declare_current(&before, &after, |_| true)?;
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
            Level::Info,
            None,
            None,
            Reason::ConfigChanged,
            &format!("{level}: {}", keys.join(", ")),
        );
        self.notify();
        Ok(true)
    }

    /// Declares the running pods of each workload `which` accepts current for its new desired
    /// hash, when only config they pick up on their next restart changed (`before` and
    /// `after` are [`Controller::desired_hashes`] around the change). The caller holds the
    /// rollout gate, so the reconcile loop sees the new config and the overrides together.
    pub(crate) fn declare_current(
        &self,
        before: &BTreeMap<ResourceRef, String>,
        after: &BTreeMap<ResourceRef, String>,
        which: impl Fn(&ResourceRef) -> bool,
    ) -> Result<(), ServerError> {
        for pod in self.pod_views() {
            let id = ResourceRef::new(pod.kind, &pod.scope, &pod.name);
            if !which(&id) {
                continue;
            }
            let key = MetaKey::PodHash(pod_name(&id, pod.ordinal));
            let current = self.store.meta(&key)?.unwrap_or(pod.hash.clone());
            if let (Some(b), Some(a)) = (before.get(&id), after.get(&id)) {
                if b != a && current == *b {
                    self.store.set_meta(&key, a)?;
                    self.set_hash_override(&pod_name(&id, pod.ordinal), Some(a.clone()));
                }
            }
        }
        Ok(())
    }

    /// Desired hash of every workload (for `--no-restart` config changes).
    pub fn desired_hashes(&self) -> Result<BTreeMap<ResourceRef, String>, ServerError> {
        let assets = self.assets(&[])?;
        let buckets = self.buckets()?;
        let mut out = BTreeMap::new();
        for r in self.store.list(None)? {
            if let Some(w) = vd_core::workload::workload_of(&r.resource) {
                if let Ok((_, h)) = self.desired_in(&r.resource.id, &w, &assets, &buckets)? {
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
    ) -> Result<(PodLaunch, Probes), LaunchError> {
        let stored = self
            .store
            .get(id)?
            .ok_or_else(|| LaunchError::Gone(id.clone()))?;
        let Some(spec) = vd_core::workload::workload_of(&stored.resource) else {
            return Err(LaunchError::NotAWorkload(id.clone()));
        };
        let spec = &spec;
        let assets = self.assets(&[])?;
        let (template, hash) = self
            .desired(id, spec, &assets)?
            .map_err(LaunchError::invalid)?;
        let pod = pod_name(id, ordinal);
        // Pods with a network of their own have every port to themselves; only pods that bind
        // on the host's addresses need theirs free there.
        let ports: Vec<u16> = if self.runtime.pods_share_host_ports() {
            template
                .ports
                .iter()
                .filter(|p| p.host_ip.is_none())
                .map(|p| p.port)
                .collect()
        } else {
            Vec::new()
        };
        let ip = self.store.allocate_address(&pod, &mut |ip: &str| {
            ports
                .iter()
                .all(|p| std::net::TcpListener::bind((ip, *p)).is_ok())
        })?;
        let pod_ip = self.runtime.pod_ip(&ip);
        let mut launch = resolve::launch(id, &template, ordinal, &ip, &pod_ip, &hash);
        if let Some(target) = &template.certificate {
            // Issued (or renewed, or extended to a new address) before every start, so a pod
            // never starts on a certificate that does not cover it.
            let subject = crate::orchestration::certs::pod_subject(id, ordinal, &[&ip, &pod_ip]);
            self.certs
                .ensure(&pod, &subject)
                .map_err(ServerError::from)?;
            let source = self.certs.pod_dir(&pod).display().to_string();
            launch.binds.push((source, target.clone(), true));
        }
        Ok((launch, resolve::pod_probes(id, &template, ordinal, &pod_ip)))
    }

    /// Restarts one supervised pod (its supervisor stops it and starts it again) and waits up
    /// to `timeout` for it to run again and be ready; whether it did.
    pub(crate) async fn restart_pod_and_wait(&self, pod: &str, timeout: Duration) -> bool {
        let before = self.pod_views().into_iter().find(|p| p.pod == pod);
        let Some(before) = before else {
            return false;
        };
        let tx = self
            .pods
            .lock()
            .ok()
            .and_then(|p| p.get(pod).map(|e| e.cmd.clone()));
        let Some(tx) = tx else {
            return false;
        };
        self.mark_terminating(pod);
        if tx.send(PodCmd::Replace).is_err() {
            return false;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let back = self.pod_views().into_iter().any(|p| {
                p.pod == pod
                    && p.ready
                    && p.started_ms.is_some()
                    && p.started_ms != before.started_ms
            });
            if back {
                return true;
            }
        }
        false
    }

    pub(crate) fn mark_terminating(&self, pod: &str) {
        if let Ok(pods) = self.pods.lock() {
            if let Some(e) = pods.get(pod) {
                if let Ok(mut s) = e.shared.lock() {
                    s.terminating = true;
                }
            }
        }
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
                // Nothing runs any more: what the runtime set up on the host can go.
                crate::tidy::log_failure(self.runtime.release().await, "release the pods' network");
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
}
