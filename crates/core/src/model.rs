//! The resource model: what a manifest declares, as plain serializable data.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The kind of a resource, the first label of a manifest block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Pods with stable ordinals, names and per-pod volumes.
    Statefulset,
    /// Interchangeable pods without volumes.
    Deployment,
    /// Named files materialized on the host and mounted into pods.
    Asset,
    /// The redis macro: expands server-side into a statefulset plus generated files.
    Redis,
    /// A command run to completion on a schedule (one pod per run).
    Cronjob,
}

impl Kind {
    /// Every kind the controller accepts, in the order `vd get` lists them.
    pub const ALL: [Kind; 5] = [
        Kind::Asset,
        Kind::Statefulset,
        Kind::Deployment,
        Kind::Redis,
        Kind::Cronjob,
    ];

    /// The manifest keyword for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Statefulset => "statefulset",
            Kind::Deployment => "deployment",
            Kind::Asset => "asset",
            Kind::Redis => "redis",
            Kind::Cronjob => "cronjob",
        }
    }

    /// Parses a kind keyword, accepting the plural forms the CLI takes (`vd get statefulsets`).
    pub fn parse(s: &str) -> Option<Kind> {
        match s.trim_end_matches('s') {
            "statefulset" | "sts" => Some(Kind::Statefulset),
            "deployment" | "deploy" => Some(Kind::Deployment),
            "asset" => Some(Kind::Asset),
            "redis" | "redi" => Some(Kind::Redis),
            "cronjob" | "cj" => Some(Kind::Cronjob),
            _ => None,
        }
    }

    /// Whether resources of this kind run pods the reconcile loop keeps running (a cronjob's
    /// runs are started by its scheduler and run to completion).
    pub fn has_pods(self) -> bool {
        matches!(self, Kind::Statefulset | Kind::Deployment | Kind::Redis)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one resource: `kind/scope/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceRef {
    /// The resource's kind.
    pub kind: Kind,
    /// The first label: a namespace shared by related resources.
    pub scope: String,
    /// The second label: unique within kind and scope.
    pub name: String,
}

impl ResourceRef {
    /// Builds a reference from its parts.
    pub fn new(kind: Kind, scope: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind,
            scope: scope.into(),
            name: name.into(),
        }
    }

    /// Parses `kind/scope/name`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [kind, scope, name] if !scope.is_empty() && !name.is_empty() => {
                let kind = Kind::parse(kind).ok_or_else(|| {
                    format!("unknown kind `{kind}` in `{s}`; use statefulset, deployment, asset, redis or cronjob")
                })?;
                Ok(Self::new(kind, *scope, *name))
            }
            _ => Err(format!(
                "`{s}` is not a reference; write KIND/SCOPE/NAME, e.g. statefulset/data/cache"
            )),
        }
    }
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.scope, self.name)
    }
}

/// A declared resource: its identity plus its spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// Who this is.
    #[serde(flatten)]
    pub id: ResourceRef,
    /// What it should be.
    pub spec: Spec,
}

/// The kind-specific body of a resource.
// Resources are few and short-lived in memory; boxing the workload would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Spec {
    /// A statefulset or deployment body.
    Workload(WorkloadSpec),
    /// An asset's files.
    Asset(AssetSpec),
    /// A redis macro block.
    Redis(RedisSpec),
    /// A cronjob block.
    Cronjob(CronjobSpec),
}

impl Spec {
    /// The workload body, if this is one.
    pub fn workload(&self) -> Option<&WorkloadSpec> {
        match self {
            Spec::Workload(w) => Some(w),
            Spec::Asset(_) | Spec::Redis(_) | Spec::Cronjob(_) => None,
        }
    }
}

/// A `redis "scope" "name" {}` block. Statefulset fields are kept as the operator wrote them
/// (`None`: not set, the macro's default applies) so expansion can apply the macro's merge
/// rules: env deep-merged, volumes additive by destination, probes replaced wholesale.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisSpec {
    /// Image; default `redis:7-alpine`.
    pub image: Option<String>,
    /// Pods; default 1.
    pub replicas: Option<u32>,
    /// Overrides the macro's entrypoint wrapper.
    pub command: Option<Vec<String>>,
    /// Deep-merged over the macro's env; operator wins per key.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Buckets added to the env.
    #[serde(default)]
    pub env_from: Vec<String>,
    /// Default `["6379"]`.
    pub ports: Option<Vec<PortSpec>>,
    /// Claims in addition to the macro's `data` claim at `/data`.
    #[serde(default)]
    pub volume_claims: Vec<VolumeClaim>,
    /// Binds, merged with the macro's by destination (the operator's entry wins).
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    /// `None`: the macro's default probes; `Some`: replaces them wholesale (empty disables).
    pub probes: Option<Probes>,
    /// Limits.
    #[serde(default)]
    pub resources: Resources,
    /// `plugin { version = ... }`, recorded (the macro is built in).
    pub plugin_version: Option<String>,
    /// `sentinel { ... }`: this resource is a sentinel sibling.
    pub sentinel: Option<SentinelSpec>,
    /// `failover { ... }`: the controller detects a failed master and promotes a replica.
    /// Default and skipped when absent, so specs stored before the field existed still load
    /// and serialize as they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverSpec>,
    /// `proxy { replicas }` in a data redis: `<name>-proxy` pods running `vd proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxySpec>,
    /// `backup { schedule keep destination source }` in a data redis: the controller takes
    /// backups on a schedule and prunes old ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
    /// `cluster { shards replicas_per_shard }` in a data redis: Redis Cluster mode, the pods
    /// being the cluster's nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterSpec>,
    /// `tls { }` in a data redis: its pods speak TLS only, with certificates issued by the
    /// root's certificate authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// `tls { }` inside a data redis block. Empty: vd's own certificate authority issues each pod
/// its certificate and renews it. `cert`, `key` and `ca` (all three, asset references) are
/// for operators who bring their own certificates; they are parsed so that a half-written set
/// is refused at its line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSpec {
    /// The certificate (PEM) every pod serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// Its private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The CA certificate (PEM) it chains to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
}

/// `cluster { shards replicas_per_shard }` inside a data redis block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSpec {
    /// Masters, each holding an even share of the 16384 slots; default
    /// [`crate::redis::cluster::DEFAULT_SHARDS`], at least
    /// [`crate::redis::cluster::MIN_SHARDS`].
    #[serde(default = "default_shards")]
    pub shards: u32,
    /// Replicas of each master; default 1. With 0 a crashed master takes its slots down until
    /// its pod is back.
    #[serde(default = "default_one")]
    pub replicas_per_shard: u32,
}

impl Default for ClusterSpec {
    /// What an empty `cluster {}` block means: three masters with one replica each.
    fn default() -> Self {
        Self {
            shards: default_shards(),
            replicas_per_shard: 1,
        }
    }
}

impl ClusterSpec {
    /// The pods (cluster nodes) this shape needs.
    pub fn nodes(&self) -> u32 {
        self.shards
            .saturating_mul(self.replicas_per_shard.saturating_add(1))
    }
}

fn default_shards() -> u32 {
    crate::redis::cluster::DEFAULT_SHARDS
}

/// `backup { schedule keep destination source }` inside a data redis block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSpec {
    /// Five-field cron expression, UTC ([`crate::schedule::Schedule`]).
    pub schedule: String,
    /// Backups kept after each run, newest first; default
    /// [`crate::redis::backup::DEFAULT_KEEP`].
    #[serde(default = "default_keep")]
    pub keep: u32,
    /// An absolute directory or `s3://bucket[/prefix]`; default the server's
    /// `<root>/backups/<scope>/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// The ordinal to take backups from; default the highest-ordinal connected replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<u32>,
    /// Config buckets with the S3 credentials, read by the server only: unlike the redis's
    /// own `env_from`, they never reach the pods' environment. Empty: the redis's `env_from`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<String>,
}

fn default_keep() -> u32 {
    crate::redis::backup::DEFAULT_KEEP
}

/// `proxy { enabled replicas }` inside a data redis block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxySpec {
    /// True when the block is present and does not say otherwise.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Proxy pods; default 1.
    #[serde(default = "default_one")]
    pub replicas: u32,
}

impl Default for ProxySpec {
    /// What an empty `proxy {}` block means.
    fn default() -> Self {
        Self {
            enabled: true,
            replicas: 1,
        }
    }
}

fn default_one() -> u32 {
    1
}

/// `sentinel { enabled monitor }` inside a redis block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentinelSpec {
    /// Defaults to true when the block is present.
    pub enabled: bool,
    /// `scope/name` of the data redis to watch.
    pub monitor: Option<String>,
}

/// `failover { automatic down_after }` inside a data redis block: vd's controller, rather than
/// a sentinel sibling, is the failure detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverSpec {
    /// Whether the controller promotes a replica on its own; true when the block is present
    /// and does not say otherwise.
    #[serde(default = "default_true")]
    pub automatic: bool,
    /// How long a running master may fail its checks before it counts as down (a crashed one
    /// counts at once); [`crate::redis::DEFAULT_DOWN_AFTER_MS`] when not written.
    #[serde(default = "default_down_after_ms")]
    pub down_after_ms: u64,
}

impl Default for FailoverSpec {
    /// What an empty `failover {}` block means.
    fn default() -> Self {
        Self {
            automatic: true,
            down_after_ms: crate::redis::DEFAULT_DOWN_AFTER_MS,
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_down_after_ms() -> u64 {
    crate::redis::DEFAULT_DOWN_AFTER_MS
}

/// A `cronjob "scope" "name" {}` block: a command run to completion on a schedule, one pod per
/// run, with the env, buckets and binds a workload pod gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronjobSpec {
    /// Five-field UTC cron expression as written; checked with [`crate::schedule::Schedule`].
    pub schedule: String,
    /// The image to run on docker; ignored on the process runtime.
    #[serde(default)]
    pub image: Option<String>,
    /// argv of the run; empty means the image's default (docker only).
    #[serde(default)]
    pub command: Vec<String>,
    /// Environment set by the manifest (template values, as in workloads).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Config buckets whose variables are added to the env.
    #[serde(default)]
    pub env_from: Vec<String>,
    /// Host paths bound into the run's pod.
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    /// What a slot does while an earlier run still goes.
    #[serde(default)]
    pub concurrency: Concurrency,
    /// Finished runs whose records and logs are kept.
    #[serde(default = "default_cronjob_keep")]
    pub keep: u32,
    /// A run still going after this long is stopped and counts as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

fn default_cronjob_keep() -> u32 {
    CronjobSpec::DEFAULT_KEEP
}

impl CronjobSpec {
    /// Finished runs a cronjob keeps when `keep` is not written.
    pub const DEFAULT_KEEP: u32 = 5;

    /// The one-pod workload a run is resolved as (env, buckets, templates and binds exactly as
    /// a workload's): no ports, claims or probes.
    pub fn workload(&self) -> WorkloadSpec {
        WorkloadSpec {
            image: self.image.clone(),
            replicas: 1,
            command: self.command.clone(),
            env: self.env.clone(),
            env_from: self.env_from.clone(),
            volumes: self.volumes.clone(),
            ..Default::default()
        }
    }
}

/// A cronjob's concurrency policy (Kubernetes' names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Concurrency {
    /// A slot that comes while a run still goes is skipped (and recorded as skipped).
    #[default]
    Forbid,
    /// Runs may overlap.
    Allow,
    /// The running run is stopped and the new one starts.
    Replace,
}

impl Concurrency {
    /// Parses the manifest keyword.
    pub fn parse(s: &str) -> Option<Concurrency> {
        match s {
            "forbid" => Some(Concurrency::Forbid),
            "allow" => Some(Concurrency::Allow),
            "replace" => Some(Concurrency::Replace),
            _ => None,
        }
    }

    /// The manifest keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Concurrency::Forbid => "forbid",
            Concurrency::Allow => "allow",
            Concurrency::Replace => "replace",
        }
    }
}

/// Files of an asset block: key -> content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetSpec {
    /// File contents by key; each key becomes one file named after it.
    pub files: BTreeMap<String, String>,
}

/// The pod template and replica count of a statefulset or deployment.
///
/// String fields that come from HCL templates keep HCL's template syntax: `${asset.s.n.k}` and
/// `${VAR}` are resolved by the server when it launches a pod, and `$${` is a literal `${`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    /// Informational on the process runtime; the image to run on docker.
    pub image: Option<String>,
    /// How many pods.
    pub replicas: u32,
    /// argv of the pod's main process; empty means the image's default.
    #[serde(default)]
    pub command: Vec<String>,
    /// Environment set by the manifest.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Config buckets (`scope` or `scope/name`) whose variables are added to the env.
    #[serde(default)]
    pub env_from: Vec<String>,
    /// Ports the pod listens on.
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// Per-pod persistent volumes.
    #[serde(default)]
    pub volume_claims: Vec<VolumeClaim>,
    /// Host paths (usually assets) mounted into the pod.
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    /// Health checks.
    #[serde(default)]
    pub probes: Probes,
    /// Resource limits.
    #[serde(default)]
    pub resources: Resources,
    /// Where each pod gets its own certificate, issued by the root's certificate authority
    /// before the pod starts: a directory holding `tls.crt`, `tls.key` and `ca.crt`. Skipped
    /// when unset, so the spec hash of a workload without one is what it always was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// The file names in a pod's certificate directory ([`WorkloadSpec::certificate`]).
pub const TLS_CERT_FILE: &str = "tls.crt";
/// The pod's private key.
pub const TLS_KEY_FILE: &str = "tls.key";
/// The CA certificate the pod's certificate chains to.
pub const TLS_CA_FILE: &str = "ca.crt";

/// A port a pod listens on, `[ip:]port[/tcp]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// An explicit host IP to publish on; none means the pod's own loopback address.
    pub host_ip: Option<String>,
    /// The port number.
    pub port: u16,
}

impl PortSpec {
    /// Parses the manifest form `[ip:]port[/tcp]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let body = s.strip_suffix("/tcp").unwrap_or(s);
        if body.ends_with("/udp") {
            return Err(format!(
                "port `{s}`: udp is not supported; use a tcp port like \"6379\""
            ));
        }
        let (ip, port) = match body.rsplit_once(':') {
            Some((ip, port)) => (Some(ip.trim_start_matches('[').trim_end_matches(']')), port),
            None => (None, body),
        };
        if let Some(ip) = ip {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(format!(
                    "port `{s}`: `{ip}` is not an IP address; write \"6379\" or \"0.0.0.0:6379\""
                ));
            }
        }
        let port: u16 = match port.parse() {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(format!(
                "port `{s}` is not a port number; use 1-65535, e.g. \"6379\" or \"127.0.0.1:6379\""
            ))
            }
        };
        Ok(Self {
            host_ip: ip.map(str::to_string),
            port,
        })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host_ip {
            Some(ip) => write!(f, "{ip}:{}", self.port),
            None => write!(f, "{}", self.port),
        }
    }
}

/// A per-pod persistent volume: one directory (or docker volume) per ordinal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeClaim {
    /// The claim name, part of the volume name `voodu-<scope>-<name>-<claim>-<ord>`.
    pub name: String,
    /// Where the volume appears inside the pod.
    pub mount_path: String,
}

/// A bind of a host path (an asset file, usually) into the pod: `src:dst[:ro]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// Host path; may be an `${asset...}` template.
    pub source: String,
    /// Absolute path inside the pod.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

impl VolumeMount {
    /// Parses the manifest form `src:dst[:ro|:rw]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, ro) = match parts.as_slice() {
            [src, dst] => (*src, *dst, false),
            [src, dst, "ro"] => (*src, *dst, true),
            [src, dst, "rw"] => (*src, *dst, false),
            [_, _, mode] => {
                return Err(format!("volume `{s}`: mode `{mode}` is not `ro` or `rw`"));
            }
            _ => return Err(format!("volume `{s}` is not `SOURCE:DEST[:ro]`, e.g. \"${{asset.data.conf.file}}:/etc/app.conf:ro\"")),
        };
        if src.is_empty() {
            return Err(format!("volume `{s}` has an empty source"));
        }
        if !dst.starts_with('/') {
            return Err(format!(
                "volume `{s}`: destination `{dst}` must be an absolute path"
            ));
        }
        Ok(Self {
            source: src.to_string(),
            target: dst.to_string(),
            read_only: ro,
        })
    }
}

/// The three probe slots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probes {
    /// Failing it restarts the pod.
    pub liveness: Option<Probe>,
    /// Gates "ready", rollouts and the shared alias.
    pub readiness: Option<Probe>,
    /// Holds the other two back until it first succeeds.
    pub startup: Option<Probe>,
}

/// One health check and its timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// What to check.
    pub action: ProbeAction,
    /// Time between checks.
    pub period_ms: u64,
    /// How long one check may take.
    pub timeout_ms: u64,
    /// Wait after start before the first check.
    pub initial_delay_ms: u64,
    /// Consecutive failures that count as failed.
    pub failure_threshold: u32,
    /// Consecutive successes that count as passing.
    pub success_threshold: u32,
}

impl Probe {
    /// A probe with Kubernetes' default timing.
    pub fn new(action: ProbeAction) -> Self {
        Self {
            action,
            period_ms: 10_000,
            timeout_ms: 1_000,
            initial_delay_ms: 0,
            failure_threshold: 3,
            success_threshold: 1,
        }
    }
}

/// The check a probe runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeAction {
    /// Connect to the pod's address on this port.
    TcpSocket {
        /// The port.
        port: u16,
    },
    /// Run a command inside the pod; exit 0 passes.
    Exec {
        /// argv.
        command: Vec<String>,
    },
    /// GET a path on the pod's address; 2xx/3xx passes.
    HttpGet {
        /// The port.
        port: u16,
        /// Request path.
        path: String,
    },
}

/// `resources { limits { cpu memory } }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Upper bounds.
    #[serde(default)]
    pub limits: Limits,
}

/// CPU and memory limits, as written in the manifest and parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// CPU in millicores (`"0.5"` or `"500m"` -> 500).
    pub cpu_millis: Option<u64>,
    /// Memory in bytes (`"256Mi"`, `"1G"`, `"512m"`).
    pub memory_bytes: Option<u64>,
}

impl Limits {
    /// Parses a CPU quantity: `"2"`, `"0.5"`, `"500m"`.
    pub fn parse_cpu(s: &str) -> Result<u64, String> {
        let bad = || format!("cpu `{s}` is not a CPU amount; write \"0.5\", \"2\" or \"500m\"");
        let v = if let Some(m) = s.strip_suffix('m') {
            m.parse::<u64>().map_err(|_| bad())?
        } else {
            let f: f64 = s.parse().map_err(|_| bad())?;
            if !f.is_finite() || f < 0.0 {
                return Err(bad());
            }
            (f * 1000.0).round() as u64
        };
        if v == 0 {
            return Err(bad());
        }
        Ok(v)
    }

    /// Parses a memory quantity: `"256Mi"`, `"1Gi"`, `"512M"`, `"512m"`, `"1048576"`.
    pub fn parse_memory(s: &str) -> Result<u64, String> {
        let bad = || format!("memory `{s}` is not a size; write \"256Mi\", \"1Gi\" or \"512m\"");
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "ki" | "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mi" | "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gi" | "gib" => 1 << 30,
            _ => return Err(bad()),
        };
        match n.checked_mul(mult) {
            Some(v) if v > 0 => Ok(v),
            _ => Err(bad()),
        }
    }
}

/// Checks a scope or name label: lowercase letters, digits and `-`, starting with a letter or digit.
pub fn validate_label(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} `{s}` must be 1-63 lowercase letters, digits or `-`, not starting or ending with `-` (it becomes part of host names)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse() {
        assert_eq!(
            PortSpec::parse("6379").unwrap(),
            PortSpec {
                host_ip: None,
                port: 6379
            }
        );
        assert_eq!(
            PortSpec::parse("0.0.0.0:6379/tcp").unwrap(),
            PortSpec {
                host_ip: Some("0.0.0.0".into()),
                port: 6379
            }
        );
        assert!(PortSpec::parse("70000").unwrap_err().contains("1-65535"));
        assert!(PortSpec::parse("0").is_err());
        assert!(PortSpec::parse("abc:1").is_err());
    }

    #[test]
    fn volumes_parse() {
        let v = VolumeMount::parse("/a:/b:ro").unwrap();
        assert!(v.read_only);
        assert!(VolumeMount::parse("/a").is_err());
        assert!(VolumeMount::parse("/a:rel").is_err());
        assert!(VolumeMount::parse("/a:/b:xx").is_err());
    }

    #[test]
    fn quantities() {
        assert_eq!(Limits::parse_cpu("0.5").unwrap(), 500);
        assert_eq!(Limits::parse_cpu("250m").unwrap(), 250);
        assert!(Limits::parse_cpu("-1").is_err());
        assert_eq!(Limits::parse_memory("256Mi").unwrap(), 256 << 20);
        assert_eq!(Limits::parse_memory("1G").unwrap(), 1_000_000_000);
        assert!(Limits::parse_memory("12 parsecs").is_err());
    }

    #[test]
    fn refs_and_labels() {
        let r = ResourceRef::parse("statefulsets/data/cache").unwrap();
        assert_eq!(r.to_string(), "statefulset/data/cache");
        assert!(ResourceRef::parse("data/cache").is_err());
        assert!(validate_label("scope", "clowk-lp").is_ok());
        assert!(validate_label("scope", "Bad_Name").is_err());
    }

    #[test]
    fn cronjob_kind_and_defaults() {
        assert_eq!(Kind::parse("cronjobs"), Some(Kind::Cronjob));
        assert_eq!(Kind::parse("cj"), Some(Kind::Cronjob));
        assert!(!Kind::Cronjob.has_pods());
        let r = ResourceRef::parse("cronjob/clowk-lp/redis-backup").unwrap();
        assert_eq!(r.to_string(), "cronjob/clowk-lp/redis-backup");
        // The smallest stored form takes the defaults.
        let s: CronjobSpec = serde_json::from_str(r#"{"schedule":"@daily"}"#).unwrap();
        assert_eq!(s.keep, CronjobSpec::DEFAULT_KEEP);
        assert_eq!(s.concurrency, Concurrency::Forbid);
        assert!(!serde_json::to_string(&s).unwrap().contains("timeout_ms"));
        let spec: Spec =
            serde_json::from_str(r#"{"type":"cronjob","schedule":"0 * * * *"}"#).unwrap();
        assert!(matches!(spec, Spec::Cronjob(_)));
        let w = s.workload();
        assert_eq!((w.replicas, w.ports.len()), (1, 0));
    }

    #[test]
    fn redis_specs_stored_before_failover_still_load() {
        // A spec as stored before the field existed: no `failover` key at all.
        let old = r#"{"image":null,"replicas":3,"command":null,"ports":null,"probes":null,"plugin_version":null,"sentinel":null}"#;
        let spec: RedisSpec = serde_json::from_str(old).unwrap();
        assert_eq!(spec.failover, None);
        assert_eq!(spec.replicas, Some(3));
        // Without a failover block the stored form is what it was: no new key.
        assert!(!serde_json::to_string(&spec).unwrap().contains("failover"));
        // A partial block takes the block's defaults.
        let f: RedisSpec = serde_json::from_str(r#"{"failover":{}}"#).unwrap();
        assert_eq!(f.failover, Some(FailoverSpec::default()));
        let f: RedisSpec =
            serde_json::from_str(r#"{"failover":{"automatic":false,"down_after_ms":500}}"#)
                .unwrap();
        assert_eq!(
            f.failover,
            Some(FailoverSpec {
                automatic: false,
                down_after_ms: 500
            })
        );
        let back: RedisSpec = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }
}
