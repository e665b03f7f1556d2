//! From the HCL syntax tree to resources: every check, every recorded span.
//!
//! Errors are collected, never thrown: each field is checked on its own so one load reports as
//! many problems as it can. Only a syntax error stops a file, because there is no tree to walk.

mod cronjob;

use crate::diag::{self, Diagnostic};
use crate::{io, Options};
use hcl_edit::expr::{Expression, FuncCall, ObjectKey, TraversalOperator, UnaryOperator};
use hcl_edit::structure::{Block, BlockLabel, Body, Structure};
use hcl_edit::template::{Element, Strip};
use hcl_edit::Span;
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vd_core::env::valid_env_key;
use vd_core::template::{self, Part, TemplateError, TemplateRef};
use vd_core::{
    validate_label, AssetSpec, BackupSpec, FailoverSpec, Kind, Limits, PortSpec, Probe,
    ProbeAction, Probes, ProxySpec, RedisSpec, Resource, ResourceRef, Resources, SentinelSpec,
    Spec, VolumeClaim, VolumeMount, WorkloadSpec,
};

/// A resource with its header span and the spans of its fields.
pub(crate) type LoweredResource = (Resource, Range<usize>, Vec<(String, Range<usize>)>);

/// A volume claim with the spans of its name and mount path, for duplicate checks.
type LocatedClaim = (VolumeClaim, Option<Range<usize>>, Option<Range<usize>>);

/// An object entry: key, key span, value.
type Entry<'e> = (String, Option<Range<usize>>, &'e Expression);

/// What one file produced.
pub(crate) struct Lowered {
    /// Resources whose block header was valid, in file order.
    pub resources: Vec<LoweredResource>,
    /// Every error found in the file.
    pub errors: Vec<Diagnostic>,
}

const KINDS: [&str; 5] = ["statefulset", "redis", "deployment", "asset", "cronjob"];
const WORKLOAD_FIELDS: [&str; 11] = [
    "image",
    "replicas",
    "command",
    "env",
    "env_from",
    "ports",
    "volumes",
    "volume_claim",
    "volume_claims",
    "probes",
    "resources",
];
const DEPLOYMENT_FIELDS: [&str; 9] = [
    "image",
    "replicas",
    "command",
    "env",
    "env_from",
    "ports",
    "volumes",
    "probes",
    "resources",
];
/// A redis block takes every statefulset field plus the macro's own blocks.
const REDIS_FIELDS: [&str; 16] = [
    "image",
    "replicas",
    "command",
    "env",
    "env_from",
    "ports",
    "volumes",
    "volume_claim",
    "volume_claims",
    "probes",
    "resources",
    "plugin",
    "sentinel",
    "failover",
    "proxy",
    "backup",
];
/// Workload fields written `name { ... }` rather than `name = ...`.
const WORKLOAD_BLOCKS: [&str; 3] = ["volume_claim", "probes", "resources"];
/// Blocks only macros (`redis`) take.
const MACRO_BLOCKS: [&str; 5] = ["plugin", "sentinel", "failover", "proxy", "backup"];
const SENTINEL_FIELDS: [&str; 2] = ["enabled", "monitor"];
const FAILOVER_FIELDS: [&str; 2] = ["automatic", "down_after"];
const PROXY_FIELDS: [&str; 2] = ["enabled", "replicas"];
const BACKUP_FIELDS: [&str; 5] = ["schedule", "keep", "destination", "source", "env_from"];
/// The claim the redis macro always adds, and where it mounts it.
const RESERVED_CLAIM: &str = "data";
const RESERVED_MOUNT: &str = "/data";
const PROBE_SLOTS: [&str; 3] = ["liveness", "readiness", "startup"];
const PROBE_ACTIONS: [&str; 3] = ["tcp_socket", "exec", "http_get"];
const PROBE_FIELDS: [&str; 8] = [
    "tcp_socket",
    "exec",
    "http_get",
    "period",
    "timeout",
    "initial_delay",
    "failure_threshold",
    "success_threshold",
];
const FUNCTIONS_HELP: &str =
    "manifests have two functions: file(\"rel/path\") and url(\"https://...\")";
const INTERP_HELP: &str = "the server resolves `${asset.SCOPE.NAME.KEY}` (an asset file's path) and `${VAR}` (a variable from env_from); write `$${` for a literal `${`";
const PROBE_ACTION_HELP: &str =
    "add one of `tcp_socket { port = 6379 }`, `exec { command = [...] }` or `http_get { port = 8080  path = \"/healthz\" }`";

/// Parses and lowers one file.
pub(crate) fn lower_file(path: &Path, text: &Arc<str>, opts: &Options) -> Lowered {
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut cx = Cx {
        path,
        text,
        base_dir,
        opts,
        errors: Vec::new(),
        spans: Vec::new(),
    };
    let mut resources = Vec::new();
    match hcl_edit::parser::parse_body(text) {
        Ok(body) => {
            for structure in body.iter() {
                match structure {
                    Structure::Attribute(a) => cx.err(
                        a.key.span(),
                        format!("attribute `{}` outside of a block", a.key.as_str()),
                        "put it inside a block such as `statefulset \"scope\" \"name\" { ... }`",
                    ),
                    Structure::Block(b) => {
                        if let Some(r) = cx.resource(b) {
                            resources.push(r);
                        }
                    }
                }
            }
        }
        Err(e) => cx.syntax_error(&e),
    }
    Lowered {
        resources,
        errors: cx.errors,
    }
}

/// How a string field treats `${...}`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Str {
    /// Plain text: interpolation is an error, the value is the literal text.
    Literal,
    /// Kept as vd template text for the server: literals escaped, `${...}` checked and kept.
    Template,
}

/// A number as written, before range checks.
enum Num {
    Int(i128),
    Float(f64),
}

/// The fields of a workload-shaped block as written: `None` where the operator wrote nothing
/// (or wrote something invalid, which is also an error).
#[derive(Default)]
struct Fields {
    image: Option<String>,
    /// With the span of the value, for the sentinel quorum check.
    replicas: Option<(u32, Option<Range<usize>>)>,
    command: Option<Vec<String>>,
    env: BTreeMap<String, String>,
    env_from: Vec<String>,
    ports: Option<Vec<PortSpec>>,
    volume_claims: Vec<VolumeClaim>,
    volumes: Vec<VolumeMount>,
    probes: Option<Probes>,
    resources: Resources,
    plugin_version: Option<String>,
    sentinel: Option<LocatedSentinel>,
    failover: Option<LocatedFailover>,
    proxy: Option<LocatedProxy>,
    backup: Option<LocatedBackup>,
}

/// A `sentinel { }` block with what its checks need to point at.
struct LocatedSentinel {
    spec: SentinelSpec,
    header: Range<usize>,
    monitor_span: Option<Range<usize>>,
    /// `monitor` was written, even if its value was not a string.
    monitor_written: bool,
    /// `enabled` was not written or was a bool: the checks that depend on it can run.
    enabled_known: bool,
}

/// A `failover { }` block with what its checks need to point at.
struct LocatedFailover {
    spec: FailoverSpec,
    header: Range<usize>,
    /// `automatic` was not written or was a bool: the checks that depend on it can run.
    automatic_known: bool,
}

/// A `proxy { }` block with what its checks need to point at.
struct LocatedProxy {
    spec: ProxySpec,
    header: Range<usize>,
}

/// A `backup { }` block with what its checks need to point at.
struct LocatedBackup {
    spec: BackupSpec,
    header: Range<usize>,
    /// `schedule` was written as a string: its rules can run.
    schedule_known: bool,
}

/// The lowering state of one file.
struct Cx<'a> {
    path: &'a Path,
    text: &'a Arc<str>,
    base_dir: PathBuf,
    opts: &'a Options,
    errors: Vec<Diagnostic>,
    /// Field spans of the resource being lowered.
    spans: Vec<(String, Range<usize>)>,
}

impl Cx<'_> {
    fn err(
        &mut self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        help: impl AsRef<str>,
    ) {
        let d = match span {
            Some(span) => {
                Diagnostic::located(self.path, self.text, span, message, Some(help.as_ref()))
            }
            // Only hand-built trees lack spans; point at the start rather than lose the file name.
            None => Diagnostic::located(self.path, self.text, 0..0, message, Some(help.as_ref())),
        };
        self.errors.push(d);
    }

    fn record(&mut self, field: &str, span: Option<Range<usize>>) {
        if let Some(span) = span {
            self.spans.push((field.to_string(), span));
        }
    }

    /// The source text of a span, for quoting what the user wrote.
    fn src(&self, span: Option<Range<usize>>) -> &str {
        span.and_then(|s| self.text.get(s)).map_or("", str::trim)
    }

    fn syntax_error(&mut self, e: &hcl_edit::parser::Error) {
        let loc = e.location();
        let start = diag::offset_of(self.text, loc.line(), loc.column());
        let rest = &self.text[start..];
        let msg = e.message();
        let (span_len, message, help) = if msg.contains("redefined attribute") {
            let name = leading_word(rest);
            (
                name.len(),
                format!("attribute `{name}` is set twice in this block"),
                "remove one of them; each attribute may appear once per block".to_string(),
            )
        } else if msg.contains("redefined object key") {
            let name = leading_word(rest);
            (
                name.len(),
                format!("key `{name}` appears twice in this object"),
                "remove one of them".to_string(),
            )
        } else {
            (
                rest.chars().next().filter(|c| *c != '\n').map_or(0, char::len_utf8),
                format!("syntax error: {msg}"),
                "blocks are written `KIND \"scope\" \"name\" { ... }` and attributes `key = value`, one per line; look for a missing quote, bracket, brace or line break".to_string(),
            )
        };
        self.err(Some(start..start + span_len), message, help);
    }

    // ----- resources -----

    fn resource(&mut self, b: &Block) -> Option<LoweredResource> {
        let header = header_span(b);
        let kind = match b.ident.as_str() {
            "statefulset" => Kind::Statefulset,
            "deployment" => Kind::Deployment,
            "asset" => Kind::Asset,
            "redis" => Kind::Redis,
            "cronjob" => Kind::Cronjob,
            other => {
                let mut help =
                    "supported kinds are statefulset, redis, deployment, asset and cronjob"
                        .to_string();
                if let Some(s) = suggest(other, &KINDS) {
                    help = format!("did you mean `{s}`? {help}");
                }
                self.err(
                    b.ident.span(),
                    format!("kind `{other}` is not supported yet"),
                    help,
                );
                return None;
            }
        };
        self.spans.clear();
        self.record("", Some(header.clone()));
        let labels = self.labels(b, kind);
        let spec = match kind {
            Kind::Asset => Spec::Asset(self.asset(&b.body)),
            Kind::Redis => Spec::Redis(self.redis(&b.body, labels.as_ref())),
            Kind::Cronjob => Spec::Cronjob(self.cronjob(&b.body, header.clone())),
            Kind::Statefulset | Kind::Deployment => Spec::Workload(self.workload(kind, &b.body)),
        };
        let spans = std::mem::take(&mut self.spans);
        let (scope, name) = labels?;
        Some((
            Resource {
                id: ResourceRef::new(kind, scope, name),
                spec,
            },
            header,
            spans,
        ))
    }

    fn labels(&mut self, b: &Block, kind: Kind) -> Option<(String, String)> {
        let form = format!("write `{kind} \"scope\" \"name\" {{ ... }}`, e.g. `{kind} \"data\" \"cache\" {{ ... }}`");
        let n = b.labels.len();
        if n != 2 {
            let message = match n {
                0 => format!("`{kind}` block has no labels; it needs a scope and a name"),
                1 => format!("`{kind}` block has one label; it needs a scope and a name"),
                _ => format!(
                    "`{kind}` block has {n} labels; it needs exactly two, a scope and a name"
                ),
            };
            let span = b
                .labels
                .get(2)
                .and_then(Span::span)
                .unwrap_or_else(|| header_span(b));
            self.err(Some(span), message, form);
            return None;
        }
        let mut out = Vec::with_capacity(2);
        for (label, what) in b.labels.iter().zip(["scope", "name"]) {
            match label {
                BlockLabel::String(s) => match validate_label(what, s.as_str()) {
                    Ok(()) => out.push(s.to_string()),
                    Err(m) => self.err(s.span(), m, "e.g. `data`, `redis-cache` or `web2`"),
                },
                BlockLabel::Ident(i) => self.err(
                    i.span(),
                    format!("the {what} label must be a quoted string"),
                    format!("write \"{}\"; {form}", i.as_str()),
                ),
            }
        }
        match out.as_slice() {
            [scope, name] => Some((scope.clone(), name.clone())),
            _ => None,
        }
    }

    // ----- statefulset / deployment / redis -----

    fn workload(&mut self, kind: Kind, body: &Body) -> WorkloadSpec {
        let f = self.fields(kind, body);
        WorkloadSpec {
            image: f.image,
            replicas: f.replicas.map_or(1, |(n, _)| n),
            command: f.command.unwrap_or_default(),
            env: f.env,
            env_from: f.env_from,
            ports: f.ports.unwrap_or_default(),
            volume_claims: f.volume_claims,
            volumes: f.volumes,
            probes: f.probes.unwrap_or_default(),
            resources: f.resources,
        }
    }

    /// The redis macro: statefulset fields as written (unset stays `None` for the server's
    /// defaults), plus `plugin`, `sentinel`, `failover` and `proxy`. `id` is the block's (scope, name)
    /// when valid.
    fn redis(&mut self, body: &Body, id: Option<&(String, String)>) -> RedisSpec {
        let f = self.fields(Kind::Redis, body);
        // An `enabled` that was not a bool leaves unknown whether this is a sentinel sibling.
        let sentinel_known = f.sentinel.as_ref().is_none_or(|s| s.enabled_known);
        let sentinel = f.sentinel.map(|s| {
            self.check_sentinel(&s, f.replicas.as_ref(), id);
            s.spec
        });
        let spec = RedisSpec {
            image: f.image,
            replicas: f.replicas.map(|(n, _)| n),
            command: f.command,
            env: f.env,
            env_from: f.env_from,
            ports: f.ports,
            volume_claims: f.volume_claims,
            volumes: f.volumes,
            probes: f.probes,
            resources: f.resources,
            plugin_version: f.plugin_version,
            sentinel,
            failover: f.failover.as_ref().map(|l| l.spec),
            proxy: f.proxy.as_ref().map(|l| l.spec),
            backup: f.backup.as_ref().map(|l| l.spec.clone()),
        };
        if let Some(l) = &f.failover {
            self.check_failover(&spec, l, sentinel_known);
        }
        if let Some(l) = &f.proxy {
            self.check_proxy(&spec, l, sentinel_known);
        }
        if let Some(l) = &f.backup {
            self.check_backup(&spec, l, sentinel_known);
        }
        spec
    }

    /// The body of a statefulset, deployment or redis block, checked field by field.
    fn fields(&mut self, kind: Kind, body: &Body) -> Fields {
        let mut w = Fields::default();
        let ctx = kind.as_str();
        let is_redis = kind == Kind::Redis;
        let known: &[&str] = match kind {
            Kind::Redis => &REDIS_FIELDS,
            Kind::Deployment => &DEPLOYMENT_FIELDS,
            _ => &WORKLOAD_FIELDS,
        };
        let claims_allowed = kind != Kind::Deployment;
        let mut seen_blocks: HashSet<&str> = HashSet::new();
        // Claims from both forms, in source order, with the span of each name and mount path.
        let mut claims: Vec<LocatedClaim> = Vec::new();
        let mut claim_count = 0usize;
        let mut volume_spans: Vec<Option<Range<usize>>> = Vec::new();

        for structure in body.iter() {
            match structure {
                Structure::Attribute(a) => {
                    let key = a.key.as_str();
                    let v = &a.value;
                    if matches!(
                        key,
                        "image"
                            | "replicas"
                            | "command"
                            | "env"
                            | "env_from"
                            | "ports"
                            | "volumes"
                            | "volume_claims"
                    ) {
                        self.record(key, v.span());
                    }
                    match key {
                        "image" => w.image = self.string(v, "image", Str::Template),
                        "replicas" => {
                            if let Some(n) =
                                self.whole(v, "replicas", 0, u64::from(u32::MAX), "replicas = 3")
                            {
                                w.replicas = Some((u32::try_from(n).unwrap_or(u32::MAX), v.span()));
                            }
                        }
                        "command" => w.command = self.string_list(v, "command", Str::Template),
                        "env" => w.env = self.env(v),
                        "env_from" => w.env_from = self.env_from(v),
                        "ports" => w.ports = Some(self.ports(v)),
                        "volumes" => {
                            for (m, span) in self.volumes(v) {
                                w.volumes.push(m);
                                volume_spans.push(span);
                            }
                        }
                        "volume_claims" if claims_allowed => {
                            for (claim, name_span, mount_span) in
                                self.claim_list(v, &mut claim_count)
                            {
                                claims.push((claim, name_span, mount_span));
                            }
                        }
                        "volume_claims" => {
                            self.no_claims_in_deployment(a.key.span(), "volume_claims")
                        }
                        "volume_claim" if !claims_allowed => {
                            self.no_claims_in_deployment(a.key.span(), "volume_claim")
                        }
                        "plugin" | "sentinel" | "failover" | "proxy" | "backup" if !is_redis => {
                            self.macro_only(key, a.key.span(), ctx)
                        }
                        k if WORKLOAD_BLOCKS.contains(&k) || MACRO_BLOCKS.contains(&k) => self.err(
                            a.key.span(),
                            format!("`{k}` is a block, not an attribute"),
                            format!("write `{k} {{ ... }}` without `=`"),
                        ),
                        other => self.unknown_field(other, a.key.span(), ctx, known),
                    }
                }
                Structure::Block(b) => {
                    let name = b.ident.as_str();
                    let single = matches!(name, "probes" | "resources")
                        || (is_redis && MACRO_BLOCKS.contains(&name));
                    if single {
                        if !seen_blocks.insert(name) {
                            self.err(
                                Some(header_span(b)),
                                format!("`{name}` appears twice in this {ctx}"),
                                format!("merge them into one `{name} {{ ... }}` block"),
                            );
                            continue;
                        }
                        self.no_labels(b);
                    }
                    match name {
                        "volume_claim" if claims_allowed => {
                            if let Some(c) = self.claim_block(b, claim_count) {
                                claims.push(c);
                            }
                            claim_count += 1;
                        }
                        "volume_claim" | "volume_claims" => {
                            self.no_claims_in_deployment(b.ident.span(), name)
                        }
                        "probes" => w.probes = Some(self.probes(b)),
                        "resources" => w.resources = self.resources(b),
                        "plugin" if is_redis => w.plugin_version = self.plugin(b),
                        "sentinel" if is_redis => w.sentinel = Some(self.sentinel(b)),
                        "failover" if is_redis => w.failover = Some(self.failover(b)),
                        "proxy" if is_redis => w.proxy = Some(self.proxy(b)),
                        "backup" if is_redis => w.backup = Some(self.backup(b)),
                        "plugin" | "sentinel" | "failover" | "proxy" | "backup" => {
                            self.macro_only(name, b.ident.span(), ctx)
                        }
                        k if known.contains(&k) => self.err(
                            b.ident.span(),
                            format!("`{k}` is an attribute, not a block"),
                            format!("write `{k} = ...`"),
                        ),
                        other => self.unknown_field(other, b.ident.span(), ctx, known),
                    }
                }
            }
        }

        // The macro brings its own `data` claim at /data; nothing may take its name or path.
        if is_redis {
            for (c, name_span, mount_span) in &claims {
                if c.name == RESERVED_CLAIM {
                    self.err(
                        name_span.clone(),
                        "volume claim `data` is reserved by the redis macro",
                        "the macro already provides `data` at /data; remove this claim, or give an additional claim another name, e.g. \"backups\"",
                    );
                } else if same_path(&c.mount_path, RESERVED_MOUNT) {
                    self.err(
                        mount_span.clone(),
                        format!("mount path `{}` is taken by the redis macro's `data` claim", c.mount_path),
                        "the macro already provides `data` at /data; mount this claim elsewhere, e.g. \"/backups\"",
                    );
                }
            }
            for (v, span) in w.volumes.iter().zip(&volume_spans) {
                if same_path(&v.target, RESERVED_MOUNT) {
                    self.err(
                        span.clone(),
                        format!(
                            "mount path `{}` is taken by the redis macro's `data` claim",
                            v.target
                        ),
                        "the macro already provides `data` at /data; mount this volume elsewhere",
                    );
                }
            }
        }
        // Claim names must be unique: they name the per-pod volumes.
        let mut names: HashSet<String> = HashSet::new();
        for (c, name_span, _) in &claims {
            if is_redis && c.name == RESERVED_CLAIM {
                continue;
            }
            if !names.insert(c.name.clone()) {
                self.err(
                    name_span.clone(),
                    format!("volume claim `{}` is declared twice", c.name),
                    "give each claim its own name",
                );
            }
        }
        // Two mounts on one path would shadow each other inside the pod.
        let mut targets: HashSet<String> = HashSet::new();
        let mounts = claims
            .iter()
            .map(|(c, _, span)| (c.mount_path.clone(), span.clone()))
            .chain(
                w.volumes
                    .iter()
                    .zip(&volume_spans)
                    .map(|(v, s)| (v.target.clone(), s.clone())),
            )
            .filter(|(target, _)| !(is_redis && same_path(target, RESERVED_MOUNT)));
        let mut dups = Vec::new();
        for (target, span) in mounts {
            if !targets.insert(target.clone()) {
                dups.push((target, span));
            }
        }
        for (target, span) in dups {
            self.err(
                span,
                format!("mount path `{target}` is used twice"),
                "each volume and volume claim needs its own path inside the pod",
            );
        }
        w.volume_claims = claims.into_iter().map(|(c, _, _)| c).collect();
        w
    }

    /// `plugin`, `sentinel`, `failover` or `proxy` outside a redis block.
    fn macro_only(&mut self, name: &str, span: Option<Range<usize>>, ctx: &str) {
        let help = match name {
            "plugin" => "`plugin { version = \"...\" }` belongs to macros such as `redis`; remove it from this block".to_string(),
            "failover" => format!("`failover {{ automatic = true }}` belongs to the redis macro, which knows which pod is the master: write it inside a data `redis \"scope\" \"name\" {{ ... }}` block, not in a {ctx}"),
            "proxy" => format!("`proxy {{ replicas = 1 }}` belongs to the redis macro, which knows which pod is the master: write it inside a data `redis \"scope\" \"name\" {{ ... }}` block, not in a {ctx}"),
            "backup" => format!("`backup {{ schedule = \"0 */6 * * *\" }}` belongs to the redis macro, which knows how to snapshot its data: write it inside a data `redis \"scope\" \"name\" {{ ... }}` block, not in a {ctx}"),
            _ => format!("`sentinel {{ monitor = \"scope/name\" }}` belongs to the redis macro: declare a sentinel sibling as `redis \"scope\" \"name-ha\" {{ sentinel {{ ... }} }}`, not in a {ctx}"),
        };
        self.err(span, format!("`{name}` is not allowed in a {ctx}"), help);
    }

    // ----- redis macro blocks -----

    /// `plugin { version = "..." }`: recorded, the macro is built in.
    fn plugin(&mut self, b: &Block) -> Option<String> {
        self.record("plugin", Some(header_span(b)));
        let mut version = None;
        for structure in b.body.iter() {
            match structure {
                Structure::Attribute(a) if a.key.as_str() == "version" => {
                    self.record("plugin.version", a.value.span());
                    let Some(v) = self.string(&a.value, "plugin.version", Str::Literal) else {
                        continue;
                    };
                    if v.trim().is_empty() {
                        self.err(
                            a.value.span(),
                            "`plugin.version` is empty",
                            "write the plugin version, e.g. version = \"0.14.0\", or remove the plugin block",
                        );
                    } else {
                        version = Some(v);
                    }
                }
                Structure::Attribute(a) => {
                    self.unknown_field(a.key.as_str(), a.key.span(), "plugin", &["version"])
                }
                Structure::Block(inner) => self.unknown_field(
                    inner.ident.as_str(),
                    inner.ident.span(),
                    "plugin",
                    &["version"],
                ),
            }
        }
        version
    }

    /// `sentinel { enabled = bool  monitor = "scope/name" }`; checked with the rest of the
    /// block by `check_sentinel`.
    fn sentinel(&mut self, b: &Block) -> LocatedSentinel {
        let header = header_span(b);
        self.record("sentinel", Some(header.clone()));
        let mut s = LocatedSentinel {
            spec: SentinelSpec {
                enabled: true,
                monitor: None,
            },
            header,
            monitor_span: None,
            monitor_written: false,
            enabled_known: true,
        };
        for structure in b.body.iter() {
            match structure {
                Structure::Attribute(a) => {
                    let key = a.key.as_str();
                    let v = &a.value;
                    match key {
                        "enabled" => {
                            self.record("sentinel.enabled", v.span());
                            match unparen(v) {
                                Expression::Bool(flag) => s.spec.enabled = *flag.value(),
                                other => {
                                    s.enabled_known = false;
                                    let help = match other {
                                        Expression::String(t)
                                            if matches!(t.value().as_str(), "true" | "false") =>
                                        {
                                            format!("write enabled = {} (no quotes)", t.value())
                                        }
                                        _ => "write enabled = true or enabled = false".to_string(),
                                    };
                                    self.err(
                                        v.span(),
                                        format!(
                                            "`sentinel.enabled` must be true or false, found {}",
                                            describe(other)
                                        ),
                                        help,
                                    );
                                }
                            }
                        }
                        "monitor" => {
                            self.record("sentinel.monitor", v.span());
                            s.monitor_written = true;
                            s.monitor_span = v.span();
                            s.spec.monitor = self.string(v, "sentinel.monitor", Str::Literal);
                        }
                        other => {
                            self.unknown_field(other, a.key.span(), "sentinel", &SENTINEL_FIELDS)
                        }
                    }
                }
                Structure::Block(inner) => self.unknown_field(
                    inner.ident.as_str(),
                    inner.ident.span(),
                    "sentinel",
                    &SENTINEL_FIELDS,
                ),
            }
        }
        s
    }

    /// Seed 000's sentinel rules: a monitor is required when enabled and must name another
    /// redis in the same scope; two sentinels are rejected (quorum).
    fn check_sentinel(
        &mut self,
        s: &LocatedSentinel,
        replicas: Option<&(u32, Option<Range<usize>>)>,
        id: Option<&(String, String)>,
    ) {
        let scope = id.map_or("scope", |(scope, _)| scope.as_str());
        // An `enabled` that was not a bool has its own error; its intent is unknown.
        let enabled = s.spec.enabled && s.enabled_known;
        match &s.spec.monitor {
            Some(m) => self.check_monitor(m, s.monitor_span.clone(), id),
            // A monitor that was written but did not parse has its own error already.
            None if enabled && !s.monitor_written => self.err(
                Some(s.header.clone()),
                "`sentinel` has no monitor",
                format!("a sentinel sibling watches a data redis: write `monitor = \"{scope}/NAME\"` in the sentinel block (the data redis in this scope), or `enabled = false` to turn sentinel mode off"),
            ),
            None => {}
        }
        if let Some((2, span)) = replicas {
            if enabled {
                self.err(
                    span.clone(),
                    "`replicas = 2` is rejected for a sentinel sibling: quorum floor(2/2)+1 = 2: any single sentinel outage blocks failover, strictly worse than 1",
                    "use 1 (observer) or 3+: replicas = 3 gives real HA, replicas = 1 an observer only",
                );
            }
        }
    }

    /// `failover { automatic = bool  down_after = "1s" }` (issue 6); checked with the rest of
    /// the block by `check_failover`. `down_after` is a duration string (`"500ms"`, `"1.5s"`,
    /// `"2m"`); a bare number is refused rather than guessed at, as in probe durations: `1000`
    /// may mean milliseconds (sentinel's `down-after-milliseconds`) or seconds.
    fn failover(&mut self, b: &Block) -> LocatedFailover {
        let header = header_span(b);
        self.record("failover", Some(header.clone()));
        let mut f = LocatedFailover {
            spec: FailoverSpec::default(),
            header,
            automatic_known: true,
        };
        for structure in b.body.iter() {
            match structure {
                Structure::Attribute(a) => {
                    let v = &a.value;
                    match a.key.as_str() {
                        "automatic" => {
                            self.record("failover.automatic", v.span());
                            match unparen(v) {
                                Expression::Bool(flag) => f.spec.automatic = *flag.value(),
                                other => {
                                    f.automatic_known = false;
                                    let help = match other {
                                        Expression::String(t)
                                            if matches!(t.value().as_str(), "true" | "false") =>
                                        {
                                            format!("write automatic = {} (no quotes)", t.value())
                                        }
                                        _ => "write automatic = true or automatic = false"
                                            .to_string(),
                                    };
                                    self.err(
                                        v.span(),
                                        format!(
                                            "`failover.automatic` must be true or false, found {}",
                                            describe(other)
                                        ),
                                        help,
                                    );
                                }
                            }
                        }
                        "down_after" => {
                            self.record("failover.down_after", v.span());
                            if let Some(ms) = self.down_after(v) {
                                f.spec.down_after_ms = ms;
                            }
                        }
                        other => {
                            self.unknown_field(other, a.key.span(), "failover", &FAILOVER_FIELDS)
                        }
                    }
                }
                Structure::Block(inner) => {
                    let name = inner.ident.as_str();
                    if FAILOVER_FIELDS.contains(&name) {
                        self.err(
                            inner.ident.span(),
                            format!("`{name}` is an attribute, not a block"),
                            format!("write `{name} = ...`, e.g. automatic = true or down_after = \"1s\""),
                        );
                    } else {
                        self.unknown_field(name, inner.ident.span(), "failover", &FAILOVER_FIELDS);
                    }
                }
            }
        }
        f
    }

    /// `failover.down_after` in milliseconds. Its range is one of `check_failover`'s rules.
    fn down_after(&mut self, v: &Expression) -> Option<u64> {
        let field = "failover.down_after";
        if let Some(n) = num(v) {
            let shown = self.src(v.span()).to_string();
            let help = match n {
                Num::Int(i) if i > 0 => format!("write the unit: down_after = \"{i}ms\" for milliseconds (what sentinel's down-after-milliseconds counts) or \"{i}s\" for seconds"),
                _ => "write a duration with its unit, e.g. down_after = \"1s\" (the default) or \"500ms\"".to_string(),
            };
            self.err(
                v.span(),
                format!("`{field}` must be a duration string, found the number {shown}"),
                help,
            );
            return None;
        }
        self.duration_ms(v, field, 0)
    }

    /// Issue 6's failover rules, which the server also runs (`validate_failover` in vd-core),
    /// each reported at the field it names.
    fn check_failover(&mut self, spec: &RedisSpec, l: &LocatedFailover, sentinel_known: bool) {
        // A value that did not parse has its own error; the rules that depend on it stay quiet.
        let mut checked = spec.clone();
        if let Some(f) = checked.failover.as_mut() {
            f.automatic &= l.automatic_known;
        }
        if !sentinel_known {
            checked.sentinel = None;
        }
        for p in vd_core::redis::validate_failover(&checked) {
            if !sentinel_known && p.field != "failover.down_after" {
                continue;
            }
            let span = self.span_of(&p.field).or_else(|| Some(l.header.clone()));
            self.err(span, p.message, p.help);
        }
    }

    /// `proxy { enabled = bool  replicas = N }` (issue 7); checked with the rest of the block
    /// by `check_proxy`. `replicas` is parsed as any whole number here; its range is one of
    /// `check_proxy`'s rules.
    fn proxy(&mut self, b: &Block) -> LocatedProxy {
        let header = header_span(b);
        self.record("proxy", Some(header.clone()));
        let mut p = LocatedProxy {
            spec: ProxySpec::default(),
            header,
        };
        for structure in b.body.iter() {
            match structure {
                Structure::Attribute(a) => {
                    let v = &a.value;
                    match a.key.as_str() {
                        "enabled" => {
                            self.record("proxy.enabled", v.span());
                            match unparen(v) {
                                Expression::Bool(flag) => p.spec.enabled = *flag.value(),
                                other => {
                                    let help = match other {
                                        Expression::String(t)
                                            if matches!(t.value().as_str(), "true" | "false") =>
                                        {
                                            format!("write enabled = {} (no quotes)", t.value())
                                        }
                                        _ => "write enabled = true or enabled = false".to_string(),
                                    };
                                    self.err(
                                        v.span(),
                                        format!(
                                            "`proxy.enabled` must be true or false, found {}",
                                            describe(other)
                                        ),
                                        help,
                                    );
                                }
                            }
                        }
                        "replicas" => {
                            self.record("proxy.replicas", v.span());
                            if let Some(n) = self.whole(
                                v,
                                "proxy.replicas",
                                0,
                                u64::from(u32::MAX),
                                "replicas = 2",
                            ) {
                                p.spec.replicas = u32::try_from(n).unwrap_or(u32::MAX);
                            }
                        }
                        other => self.unknown_field(other, a.key.span(), "proxy", &PROXY_FIELDS),
                    }
                }
                Structure::Block(inner) => {
                    let name = inner.ident.as_str();
                    if PROXY_FIELDS.contains(&name) {
                        self.err(
                            inner.ident.span(),
                            format!("`{name}` is an attribute, not a block"),
                            format!("write `{name} = ...`, e.g. enabled = true or replicas = 2"),
                        );
                    } else {
                        self.unknown_field(name, inner.ident.span(), "proxy", &PROXY_FIELDS);
                    }
                }
            }
        }
        p
    }

    /// Issue 7's proxy rules, which the server also runs (`validate_proxy` in vd-core), each
    /// reported at the field it names.
    fn check_proxy(&mut self, spec: &RedisSpec, l: &LocatedProxy, sentinel_known: bool) {
        // A sentinel `enabled` that was not a bool has its own error; whether this is a sibling
        // is unknown, so only what holds either way (the replicas range) is reported.
        let mut checked = spec.clone();
        if !sentinel_known {
            checked.sentinel = None;
        }
        for p in vd_core::redis::validate_proxy(&checked) {
            let span = self.span_of(&p.field).or_else(|| Some(l.header.clone()));
            self.err(span, p.message, p.help);
        }
    }

    /// `backup { schedule = "0 */6 * * *"  keep = 10  destination = "..."  source = 2
    /// env_from = ["aws"] }`
    /// (issue 8); checked with the rest of the block by `check_backup`.
    fn backup(&mut self, b: &Block) -> LocatedBackup {
        let header = header_span(b);
        self.record("backup", Some(header.clone()));
        let mut l = LocatedBackup {
            spec: BackupSpec {
                schedule: String::new(),
                keep: vd_core::redis::backup::DEFAULT_KEEP,
                destination: None,
                source: None,
                env_from: Vec::new(),
            },
            header: header.clone(),
            schedule_known: false,
        };
        let mut schedule_written = false;
        for structure in b.body.iter() {
            match structure {
                Structure::Attribute(a) => {
                    let v = &a.value;
                    match a.key.as_str() {
                        "schedule" => {
                            schedule_written = true;
                            self.record("backup.schedule", v.span());
                            if let Some(s) = self.string(v, "backup.schedule", Str::Literal) {
                                l.spec.schedule = s;
                                l.schedule_known = true;
                            }
                        }
                        "keep" => {
                            self.record("backup.keep", v.span());
                            if let Some(n) =
                                self.whole(v, "backup.keep", 0, u64::from(u32::MAX), "keep = 10")
                            {
                                l.spec.keep = u32::try_from(n).unwrap_or(u32::MAX);
                            }
                        }
                        "destination" => {
                            self.record("backup.destination", v.span());
                            l.spec.destination = self.string(v, "backup.destination", Str::Literal);
                        }
                        "source" => {
                            self.record("backup.source", v.span());
                            if let Some(n) =
                                self.whole(v, "backup.source", 0, u64::from(u32::MAX), "source = 2")
                            {
                                l.spec.source = Some(u32::try_from(n).unwrap_or(u32::MAX));
                            }
                        }
                        "env_from" => {
                            self.record("backup.env_from", v.span());
                            l.spec.env_from = self.env_from(v);
                        }
                        other => self.unknown_field(other, a.key.span(), "backup", &BACKUP_FIELDS),
                    }
                }
                Structure::Block(inner) => {
                    let name = inner.ident.as_str();
                    if BACKUP_FIELDS.contains(&name) {
                        self.err(
                            inner.ident.span(),
                            format!("`{name}` is an attribute, not a block"),
                            format!("write `{name} = ...`, e.g. schedule = \"0 */6 * * *\" or keep = 10"),
                        );
                    } else {
                        self.unknown_field(name, inner.ident.span(), "backup", &BACKUP_FIELDS);
                    }
                }
            }
        }
        if !schedule_written {
            self.err(
                Some(header),
                "`backup` needs a `schedule`",
                "add schedule = \"0 */6 * * *\" (five cron fields, UTC: here every six hours) or \"@daily\"; `vd redis:backup` takes one backup now",
            );
        }
        l
    }

    /// The backup rules, which the server also runs (`validate_backup` in vd-core), each
    /// reported at the field it names.
    fn check_backup(&mut self, spec: &RedisSpec, l: &LocatedBackup, sentinel_known: bool) {
        let mut checked = spec.clone();
        if !sentinel_known {
            checked.sentinel = None;
        }
        for p in vd_core::redis::validate_backup(&checked) {
            // A schedule that was missing or not a string has its own error.
            if p.field == "backup.schedule" && !l.schedule_known {
                continue;
            }
            let span = self.span_of(&p.field).or_else(|| Some(l.header.clone()));
            self.err(span, p.message, p.help);
        }
    }

    /// The span recorded for `field` of the resource being lowered, else for its nearest
    /// recorded parent (`failover.automatic` -> `failover`), as `SpanIndex::lookup` does.
    fn span_of(&self, field: &str) -> Option<Range<usize>> {
        let mut f = field;
        loop {
            if let Some((_, span)) = self.spans.iter().rev().find(|(k, _)| k == f) {
                return Some(span.clone());
            }
            f = f.rsplit_once('.')?.0;
        }
    }

    fn check_monitor(
        &mut self,
        m: &str,
        span: Option<Range<usize>>,
        id: Option<&(String, String)>,
    ) {
        let scope = id.map_or("scope", |(scope, _)| scope.as_str());
        let example = format!("e.g. monitor = \"{scope}/redis\"");
        let parts: Vec<&str> = m.split('/').collect();
        let [ms, mn] = parts.as_slice() else {
            self.err(
                span,
                format!("`sentinel.monitor` must be \"scope/name\", found \"{m}\""),
                format!("write the data redis this sentinel watches as \"scope/name\", {example}"),
            );
            return;
        };
        for (part, what) in [(ms, "monitor scope"), (mn, "monitor name")] {
            if let Err(e) = validate_label(what, part) {
                self.err(
                    span,
                    format!("in `sentinel.monitor`: {e}"),
                    format!(
                        "write the data redis this sentinel watches as \"scope/name\", {example}"
                    ),
                );
                return;
            }
        }
        let Some((own_scope, own_name)) = id else {
            return;
        };
        if ms != own_scope {
            self.err(
                span,
                format!("`sentinel.monitor` \"{m}\" is in scope `{ms}`, but this redis is in scope `{own_scope}`"),
                format!("sentinel siblings must watch a redis in the same scope; multi-scope clusters need their own sentinel siblings: monitor a redis in `{own_scope}` here, and declare a sentinel sibling in scope `{ms}` to watch {m}"),
            );
        } else if mn == own_name {
            self.err(
                span,
                format!("`sentinel.monitor` points at this redis itself (\"{m}\")"),
                format!("a sentinel sibling watches a separate data redis: declare the data redis as its own block, e.g. `redis \"{own_scope}\" \"redis\" {{}}`, and write monitor = \"{own_scope}/redis\" here"),
            );
        }
    }

    fn no_claims_in_deployment(&mut self, span: Option<Range<usize>>, name: &str) {
        self.err(
            span,
            format!("`{name}` is not allowed in a deployment"),
            "use a statefulset for per-pod volumes; deployment pods are interchangeable and have none",
        );
    }

    fn env(&mut self, v: &Expression) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(items) = self.object(v, "env") else {
            return out;
        };
        for (key, key_span, value) in items {
            let field = format!("env.{key}");
            self.record(&field, value.span());
            if !valid_env_key(&key) {
                self.err(
                    key_span,
                    format!("`{key}` is not a valid environment variable name"),
                    "use letters, digits and `_`, not starting with a digit, e.g. `REDIS_URL`",
                );
                continue;
            }
            // Numbers and bools are what a user means as their text: `PORT = 8080`.
            let text = match (num(value), unparen(value)) {
                (Some(Num::Int(i)), _) => Some(i.to_string()),
                (Some(Num::Float(f)), _) => Some(f.to_string()),
                (None, Expression::Bool(b)) => Some(b.value().to_string()),
                _ => self.string(value, &field, Str::Template),
            };
            if let Some(text) = text {
                out.insert(key, text);
            }
        }
        out
    }

    fn env_from(&mut self, v: &Expression) -> Vec<String> {
        let mut out = Vec::new();
        let Some(items) = self.list(v, "env_from") else {
            return out;
        };
        for (i, item) in items.iter().enumerate() {
            let field = format!("env_from[{i}]");
            self.record(&field, item.span());
            let Some(s) = self.string(item, &field, Str::Literal) else {
                continue;
            };
            let parts: Vec<&str> = s.split('/').collect();
            let valid = matches!(parts.len(), 1 | 2)
                && parts
                    .iter()
                    .zip(["scope", "name"])
                    .all(|(p, what)| validate_label(what, p).is_ok());
            if valid {
                out.push(s);
            } else {
                self.err(
                    item.span(),
                    format!("`{s}` is not a config bucket"),
                    "write a bucket as \"scope\" or \"scope/name\" (lowercase letters, digits and `-`), e.g. \"data/cache\"",
                );
            }
        }
        out
    }

    fn ports(&mut self, v: &Expression) -> Vec<PortSpec> {
        let mut out: Vec<PortSpec> = Vec::new();
        let Some(items) = self.list(v, "ports") else {
            return out;
        };
        for (i, item) in items.iter().enumerate() {
            let field = format!("ports[{i}]");
            self.record(&field, item.span());
            let text = match num(item) {
                Some(Num::Int(n)) => Some(n.to_string()),
                Some(Num::Float(_)) => Some(self.src(item.span()).to_string()),
                None => self.string(item, &field, Str::Literal),
            };
            let Some(text) = text else { continue };
            match PortSpec::parse(&text) {
                Ok(p) if out.iter().any(|q| q.port == p.port) => self.err(
                    item.span(),
                    format!("port {} is listed twice", p.port),
                    "a pod listens on each port once; remove the duplicate",
                ),
                Ok(p) => out.push(p),
                Err(m) => self.err(
                    item.span(),
                    m,
                    "write ports like [\"6379\"] or [\"127.0.0.1:6379\"]",
                ),
            }
        }
        out
    }

    fn volumes(&mut self, v: &Expression) -> Vec<(VolumeMount, Option<Range<usize>>)> {
        let mut out = Vec::new();
        let Some(items) = self.list(v, "volumes") else {
            return out;
        };
        for (i, item) in items.iter().enumerate() {
            let field = format!("volumes[{i}]");
            self.record(&field, item.span());
            let Some(text) = self.string(item, &field, Str::Template) else {
                continue;
            };
            match VolumeMount::parse(&text) {
                Ok(m) => out.push((m, item.span())),
                Err(m) => self.err(
                    item.span(),
                    m,
                    "write \"SOURCE:/path/in/pod[:ro]\", e.g. \"${asset.data.cfg.conf}:/etc/app.conf:ro\"",
                ),
            }
        }
        out
    }

    /// `volume_claims = [{ name = "data", mount_path = "/data" }]`.
    fn claim_list(&mut self, v: &Expression, count: &mut usize) -> Vec<LocatedClaim> {
        let mut out = Vec::new();
        let Some(items) = self.list(v, "volume_claims") else {
            return out;
        };
        for item in items {
            let field = format!("volume_claims[{count}]");
            *count += 1;
            self.record(&field, item.span());
            let Some(entries) = self.object(item, &field) else {
                continue;
            };
            let (mut name, mut mount) = (None, None);
            for (key, key_span, value) in entries {
                let sub = format!("{field}.{key}");
                match key.as_str() {
                    "name" => {
                        self.record(&sub, value.span());
                        name = self
                            .string(value, &sub, Str::Literal)
                            .map(|s| (s, value.span()));
                    }
                    "mount_path" => {
                        self.record(&sub, value.span());
                        mount = self
                            .string(value, &sub, Str::Literal)
                            .map(|s| (s, value.span()));
                    }
                    other => self.unknown_field(
                        other,
                        key_span,
                        "a volume claim",
                        &["name", "mount_path"],
                    ),
                }
            }
            let example = "write { name = \"data\", mount_path = \"/data\" }";
            match (name, mount) {
                (Some(n), Some(m)) => {
                    if let Some(c) = self.claim(n, m) {
                        out.push(c);
                    }
                }
                (None, _) => self.err(item.span(), format!("`{field}` has no name"), example),
                (_, None) => self.err(item.span(), format!("`{field}` has no mount_path"), example),
            }
        }
        out
    }

    /// `volume_claim "data" { mount_path = "/data" }`.
    fn claim_block(&mut self, b: &Block, index: usize) -> Option<LocatedClaim> {
        let field = format!("volume_claims[{index}]");
        self.record(&field, Some(header_span(b)));
        let example = "write `volume_claim \"data\" { mount_path = \"/data\" }`";
        let name = match b.labels.as_slice() {
            [BlockLabel::String(s)] => Some((s.to_string(), s.span())),
            [BlockLabel::Ident(i)] => {
                self.err(
                    i.span(),
                    "the claim name must be a quoted string",
                    format!("write \"{}\"", i.as_str()),
                );
                None
            }
            _ => {
                self.err(
                    Some(header_span(b)),
                    "`volume_claim` needs one label, the claim name",
                    example,
                );
                None
            }
        };
        let mut mount = None;
        for structure in b.body.iter() {
            match structure {
                Structure::Attribute(a) if a.key.as_str() == "mount_path" => {
                    let sub = format!("{field}.mount_path");
                    self.record(&sub, a.value.span());
                    mount = self
                        .string(&a.value, &sub, Str::Literal)
                        .map(|s| (s, a.value.span()));
                }
                Structure::Attribute(a) => self.unknown_field(
                    a.key.as_str(),
                    a.key.span(),
                    "volume_claim",
                    &["mount_path"],
                ),
                Structure::Block(inner) => self.unknown_field(
                    inner.ident.as_str(),
                    inner.ident.span(),
                    "volume_claim",
                    &["mount_path"],
                ),
            }
        }
        let no_mount = mount.is_none()
            && !b
                .body
                .iter()
                .any(|s| s.as_attribute().is_some_and(|a| a.has_key("mount_path")));
        if no_mount {
            self.err(
                Some(header_span(b)),
                "`volume_claim` has no mount_path",
                example,
            );
        }
        self.claim(name?, mount?)
    }

    fn claim(
        &mut self,
        (name, name_span): (String, Option<Range<usize>>),
        (mount_path, mount_span): (String, Option<Range<usize>>),
    ) -> Option<LocatedClaim> {
        let mut ok = true;
        if let Err(m) = validate_label("volume claim name", &name) {
            self.err(name_span.clone(), m, "e.g. \"data\" or \"wal\"");
            ok = false;
        }
        if !mount_path.starts_with('/') {
            self.err(
                mount_span.clone(),
                format!("mount_path `{mount_path}` must be an absolute path"),
                "write a path inside the pod starting with `/`, e.g. \"/data\"",
            );
            ok = false;
        }
        ok.then_some((VolumeClaim { name, mount_path }, name_span, mount_span))
    }

    // ----- probes -----

    fn probes(&mut self, b: &Block) -> Probes {
        self.record("probes", Some(header_span(b)));
        let mut probes = Probes::default();
        let mut seen: HashSet<String> = HashSet::new();
        for structure in b.body.iter() {
            match structure {
                Structure::Block(p) => {
                    let slot = p.ident.as_str();
                    if !PROBE_SLOTS.contains(&slot) {
                        self.unknown_field(slot, p.ident.span(), "probes", &PROBE_SLOTS);
                        continue;
                    }
                    if !seen.insert(slot.to_string()) {
                        self.err(
                            Some(header_span(p)),
                            format!("the {slot} probe is declared twice"),
                            "keep one `{slot} { ... }` block",
                        );
                        continue;
                    }
                    self.no_labels(p);
                    let probe = self.probe(p, &format!("probes.{slot}"));
                    match slot {
                        "liveness" => probes.liveness = probe,
                        "readiness" => probes.readiness = probe,
                        _ => probes.startup = probe,
                    }
                }
                Structure::Attribute(a) => {
                    let k = a.key.as_str();
                    if PROBE_SLOTS.contains(&k) {
                        self.err(
                            a.key.span(),
                            format!("`{k}` is a block, not an attribute"),
                            format!("write `{k} {{ tcp_socket {{ port = 6379 }} }}` without `=`"),
                        );
                    } else {
                        self.unknown_field(k, a.key.span(), "probes", &PROBE_SLOTS);
                    }
                }
            }
        }
        probes
    }

    fn probe(&mut self, b: &Block, field: &str) -> Option<Probe> {
        self.record(field, Some(header_span(b)));
        let mut action: Option<ProbeAction> = None;
        let mut actions = 0usize;
        let mut ok = true;
        let mut p = Probe::new(ProbeAction::TcpSocket { port: 1 });
        for structure in b.body.iter() {
            match structure {
                Structure::Block(a) => {
                    let name = a.ident.as_str();
                    if !PROBE_ACTIONS.contains(&name) {
                        self.unknown_field(name, a.ident.span(), field, &PROBE_FIELDS);
                        continue;
                    }
                    actions += 1;
                    if actions > 1 {
                        self.err(
                            Some(header_span(a)),
                            format!("`{field}` has more than one check"),
                            "a probe runs exactly one of tcp_socket, exec or http_get; remove the others",
                        );
                        ok = false;
                        continue;
                    }
                    self.no_labels(a);
                    match self.probe_action(a, &format!("{field}.{name}")) {
                        Some(act) => action = Some(act),
                        None => ok = false,
                    }
                }
                Structure::Attribute(a) => {
                    let key = a.key.as_str();
                    let sub = format!("{field}.{key}");
                    let v = &a.value;
                    match key {
                        "period" | "timeout" | "initial_delay" => {
                            self.record(&sub, v.span());
                            let min = if key == "initial_delay" { 0 } else { 1 };
                            match self.duration_ms(v, &sub, min) {
                                Some(ms) if key == "period" => p.period_ms = ms,
                                Some(ms) if key == "timeout" => p.timeout_ms = ms,
                                Some(ms) => p.initial_delay_ms = ms,
                                None => ok = false,
                            }
                        }
                        "failure_threshold" | "success_threshold" => {
                            self.record(&sub, v.span());
                            let example = format!("{key} = 3");
                            match self.whole(v, &sub, 1, u64::from(u32::MAX), &example) {
                                Some(n) => {
                                    let n = u32::try_from(n).unwrap_or(u32::MAX);
                                    if key == "failure_threshold" {
                                        p.failure_threshold = n;
                                    } else {
                                        p.success_threshold = n;
                                    }
                                }
                                None => ok = false,
                            }
                        }
                        k if PROBE_ACTIONS.contains(&k) => {
                            self.err(
                                a.key.span(),
                                format!("`{k}` is a block, not an attribute"),
                                format!("write `{k} {{ ... }}` without `=`"),
                            );
                            ok = false;
                        }
                        other => self.unknown_field(other, a.key.span(), field, &PROBE_FIELDS),
                    }
                }
            }
        }
        if actions == 0 {
            self.err(
                Some(header_span(b)),
                format!("`{field}` has no check"),
                PROBE_ACTION_HELP,
            );
            return None;
        }
        p.action = action?;
        ok.then_some(p)
    }

    fn probe_action(&mut self, b: &Block, field: &str) -> Option<ProbeAction> {
        self.record(field, Some(header_span(b)));
        let name = b.ident.as_str();
        let known: &[&str] = match name {
            "tcp_socket" => &["port"],
            "exec" => &["command"],
            _ => &["port", "path"],
        };
        let (mut port, mut command, mut path) = (None, None, None);
        let mut ok = true;
        for structure in b.body.iter() {
            let Structure::Attribute(a) = structure else {
                let inner = structure
                    .as_block()
                    .map(|i| (i.ident.as_str().to_string(), i.ident.span()));
                if let Some((n, span)) = inner {
                    self.unknown_field(&n, span, field, known);
                }
                ok = false;
                continue;
            };
            let key = a.key.as_str();
            let sub = format!("{field}.{key}");
            if !known.contains(&key) {
                self.unknown_field(key, a.key.span(), field, known);
                ok = false;
                continue;
            }
            self.record(&sub, a.value.span());
            match key {
                "port" => port = self.port_number(&a.value, &sub),
                "command" => command = self.string_list(&a.value, &sub, Str::Template),
                _ => path = self.string(&a.value, &sub, Str::Literal),
            }
            ok &= match key {
                "port" => port.is_some(),
                "command" => command.is_some(),
                _ => path.is_some(),
            };
        }
        let declared = |k: &str| {
            b.body
                .iter()
                .any(|s| s.as_attribute().is_some_and(|a| a.has_key(k)))
        };
        match name {
            "tcp_socket" | "http_get" => {
                if !declared("port") {
                    self.err(
                        Some(header_span(b)),
                        format!("`{field}` has no port"),
                        format!("write `{name} {{ port = 6379 }}`"),
                    );
                    return None;
                }
                let port = port?;
                if name == "tcp_socket" {
                    return ok.then_some(ProbeAction::TcpSocket { port });
                }
                let path = path.unwrap_or_else(|| "/".to_string());
                if !path.starts_with('/') {
                    let span = b.body.get_attribute("path").and_then(|a| a.value.span());
                    self.err(
                        span,
                        format!("http_get path `{path}` must start with `/`"),
                        "e.g. \"/healthz\"",
                    );
                    return None;
                }
                ok.then_some(ProbeAction::HttpGet { port, path })
            }
            _ => {
                if !declared("command") {
                    self.err(
                        Some(header_span(b)),
                        format!("`{field}` has no command"),
                        "write `exec { command = [\"redis-cli\", \"ping\"] }`",
                    );
                    return None;
                }
                let command = command?;
                if command.is_empty() {
                    let span = b.body.get_attribute("command").and_then(|a| a.value.span());
                    self.err(
                        span,
                        format!("`{field}.command` is empty"),
                        "write the argv to run, e.g. [\"redis-cli\", \"ping\"]",
                    );
                    return None;
                }
                ok.then_some(ProbeAction::Exec { command })
            }
        }
    }

    /// A TCP port as a number (or a quoted number, which is what `ports` takes).
    fn port_number(&mut self, v: &Expression, field: &str) -> Option<u16> {
        if let Expression::String(s) = unparen(v) {
            return match s.value().parse::<u16>() {
                Ok(p) if p > 0 => Some(p),
                _ => {
                    self.err(
                        v.span(),
                        format!(
                            "`{field}` must be a port number 1-65535, found \"{}\"",
                            s.value()
                        ),
                        "e.g. port = 6379",
                    );
                    None
                }
            };
        }
        self.whole(v, field, 1, u64::from(u16::MAX), "port = 6379")
            .and_then(|n| u16::try_from(n).ok())
    }

    /// A duration string through humantime, in milliseconds, at least `min_ms`.
    fn duration_ms(&mut self, v: &Expression, field: &str, min_ms: u64) -> Option<u64> {
        let help = "write a duration like \"10s\", \"500ms\" or \"1m\"";
        if num(v).is_some() {
            let shown = self.src(v.span()).to_string();
            self.err(
                v.span(),
                format!("`{field}` must be a duration string, found the number {shown}"),
                format!("{help}; a bare number has no unit, e.g. \"{shown}s\""),
            );
            return None;
        }
        let s = self.string(v, field, Str::Literal)?;
        let ms = match humantime::parse_duration(s.trim()) {
            Ok(d) => u64::try_from(d.as_millis()).ok(),
            Err(e) => {
                self.err(
                    v.span(),
                    format!("`{field}`: `{s}` is not a duration ({e})"),
                    help,
                );
                return None;
            }
        };
        match ms {
            Some(ms) if ms >= min_ms => Some(ms),
            Some(_) => {
                self.err(
                    v.span(),
                    format!("`{field}` must be at least {min_ms}ms, found `{s}`"),
                    help,
                );
                None
            }
            None => {
                self.err(v.span(), format!("`{field}` is too long: `{s}`"), help);
                None
            }
        }
    }

    // ----- resources -----

    fn resources(&mut self, b: &Block) -> Resources {
        self.record("resources", Some(header_span(b)));
        let mut res = Resources::default();
        let mut seen = false;
        for structure in b.body.iter() {
            match structure {
                Structure::Block(l) if l.ident.as_str() == "limits" => {
                    if seen {
                        self.err(
                            Some(header_span(l)),
                            "`limits` appears twice in resources",
                            "merge them into one block",
                        );
                        continue;
                    }
                    seen = true;
                    self.no_labels(l);
                    res.limits = self.limits(l);
                }
                Structure::Block(other) => self.unknown_field(
                    other.ident.as_str(),
                    other.ident.span(),
                    "resources",
                    &["limits"],
                ),
                Structure::Attribute(a) if a.key.as_str() == "limits" => self.err(
                    a.key.span(),
                    "`limits` is a block, not an attribute",
                    "write `limits { cpu = \"0.5\"  memory = \"256Mi\" }` without `=`",
                ),
                Structure::Attribute(a) => {
                    self.unknown_field(a.key.as_str(), a.key.span(), "resources", &["limits"])
                }
            }
        }
        res
    }

    fn limits(&mut self, b: &Block) -> Limits {
        self.record("resources.limits", Some(header_span(b)));
        let mut limits = Limits::default();
        for structure in b.body.iter() {
            let Structure::Attribute(a) = structure else {
                if let Some(i) = structure.as_block() {
                    self.unknown_field(
                        i.ident.as_str(),
                        i.ident.span(),
                        "resources.limits",
                        &["cpu", "memory"],
                    );
                }
                continue;
            };
            let key = a.key.as_str();
            if !matches!(key, "cpu" | "memory") {
                self.unknown_field(key, a.key.span(), "resources.limits", &["cpu", "memory"]);
                continue;
            }
            let field = format!("resources.limits.{key}");
            self.record(&field, a.value.span());
            // `cpu = 0.5` and `memory = 1048576` are as clear as their quoted forms.
            let text = match num(&a.value) {
                Some(_) => Some(self.src(a.value.span()).to_string()),
                None => self.string(&a.value, &field, Str::Literal),
            };
            let Some(text) = text else { continue };
            if key == "cpu" {
                match Limits::parse_cpu(&text) {
                    Ok(v) => limits.cpu_millis = Some(v),
                    Err(m) => self.err(
                        a.value.span(),
                        m,
                        "CPU is in cores: \"0.5\", \"2\" or \"500m\" (millicores)",
                    ),
                }
            } else {
                match Limits::parse_memory(&text) {
                    Ok(v) => limits.memory_bytes = Some(v),
                    Err(m) => self.err(
                        a.value.span(),
                        m,
                        "memory is bytes with a unit: \"256Mi\", \"1Gi\", \"512M\"",
                    ),
                }
            }
        }
        limits
    }

    // ----- assets -----

    fn asset(&mut self, body: &Body) -> AssetSpec {
        let mut files = BTreeMap::new();
        for structure in body.iter() {
            match structure {
                Structure::Block(b) => self.err(
                    b.ident.span(),
                    format!("unexpected block `{}` in asset", b.ident.as_str()),
                    "an asset's attributes are its files: KEY = \"content\", file(\"path\") or url(\"https://...\")",
                ),
                Structure::Attribute(a) => {
                    let key = a.key.as_str();
                    let field = format!("files.{key}");
                    self.record(&field, a.value.span());
                    if !valid_asset_key(key) {
                        self.err(
                            a.key.span(),
                            format!("asset key `{key}` is not a valid file name"),
                            "asset keys become file names: use ASCII letters, digits, `_`, `.` and `-`",
                        );
                        continue;
                    }
                    if let Some(content) = self.asset_value(&a.value, &field) {
                        files.insert(key.to_string(), content);
                    }
                }
            }
        }
        AssetSpec { files }
    }

    fn asset_value(&mut self, v: &Expression, field: &str) -> Option<String> {
        match v {
            Expression::FuncCall(f) => self.call(f),
            Expression::Parenthesis(p) => self.asset_value(p.inner(), field),
            Expression::String(_)
            | Expression::StringTemplate(_)
            | Expression::HeredocTemplate(_) => self.string(v, field, Str::Literal),
            other => {
                self.err(
                    other.span(),
                    format!("`{field}` must be a string, file(...) or url(...), found {}", describe(other)),
                    "write the content as a string or heredoc, or load it with file(\"./path\") or url(\"https://...\")",
                );
                None
            }
        }
    }

    /// Evaluates `file(...)` or `url(...)` in an asset.
    fn call(&mut self, f: &FuncCall) -> Option<String> {
        let name = func_name(f);
        if name != "file" && name != "url" {
            self.unknown_function(f, &name);
            return None;
        }
        let example = if name == "file" {
            "file(\"./configs/redis.conf\")"
        } else {
            "url(\"https://example.com/redis.conf\")"
        };
        if f.args.len() != 1 || f.args.expand_final() {
            self.err(
                f.span(),
                format!("`{name}()` takes exactly one argument"),
                format!("write {example}"),
            );
            return None;
        }
        let arg = f.args.get(0)?;
        let what = format!("{name}(...)");
        let value = self.string(arg, &what, Str::Literal)?;
        if name == "file" {
            if !self.opts.read_files {
                self.err(
                    f.span(),
                    "file() is disabled for this load",
                    "load the manifest from disk to resolve file()",
                );
                return None;
            }
            let path = self.base_dir.join(&value);
            let shown = std::path::absolute(&path).unwrap_or(path.clone());
            match io::read_file(&shown) {
                Ok(s) => Some(s),
                Err(m) => {
                    let help = format!(
                        "file() paths are relative to the manifest's directory ({})",
                        std::path::absolute(&self.base_dir)
                            .unwrap_or(self.base_dir.clone())
                            .display()
                    );
                    self.err(arg.span(), m, help);
                    None
                }
            }
        } else {
            if !(value.starts_with("http://") || value.starts_with("https://")) {
                self.err(
                    arg.span(),
                    format!("`{value}` is not an http(s) URL"),
                    format!("write {example}"),
                );
                return None;
            }
            if !self.opts.fetch_urls {
                self.err(
                    f.span(),
                    "url() is disabled for this load",
                    "allow network access to resolve url()",
                );
                return None;
            }
            match io::fetch_url(&value, self.opts.url_timeout) {
                Ok(s) => Some(s),
                Err(m) => {
                    self.err(
                        arg.span(),
                        m,
                        "url() is fetched when the manifest is read; check the address and the network, or download the file and use file()",
                    );
                    None
                }
            }
        }
    }

    fn unknown_function(&mut self, f: &FuncCall, name: &str) {
        let help = match suggest(name, &["file", "url"]) {
            Some(s) => format!("did you mean `{s}`? {FUNCTIONS_HELP}"),
            None => FUNCTIONS_HELP.to_string(),
        };
        self.err(
            f.name.name.span().or_else(|| f.span()),
            format!("unknown function `{name}`"),
            help,
        );
    }

    // ----- values -----

    /// A string value, as literal text or as kept template text.
    fn string(&mut self, e: &Expression, field: &str, mode: Str) -> Option<String> {
        match e {
            Expression::String(s) => Some(match mode {
                Str::Template => template::escape(s.value()),
                Str::Literal => s.value().clone(),
            }),
            Expression::StringTemplate(t) => self.elements(t.iter(), field, mode),
            Expression::HeredocTemplate(h) => self.elements(h.template.iter(), field, mode),
            Expression::Parenthesis(p) => self.string(p.inner(), field, mode),
            Expression::FuncCall(f) => {
                let name = func_name(f);
                if name == "file" || name == "url" {
                    self.err(
                        f.span(),
                        format!("`{name}()` can only be used in asset blocks"),
                        "put the content in an asset (`asset \"scope\" \"name\" { key = file(\"...\") }`) and refer to its path as \"${asset.scope.name.key}\"",
                    );
                } else {
                    self.unknown_function(f, &name);
                }
                None
            }
            other => {
                let found = describe(other);
                let shown = self.src(other.span()).to_string();
                let help = match other {
                    Expression::Variable(_) => format!("quote it: \"{shown}\""),
                    Expression::Traversal(_) => {
                        format!("references go inside a string: \"${{{shown}}}\"")
                    }
                    _ if num(other).is_some() => format!("quote it: \"{shown}\""),
                    Expression::Bool(_) => format!("quote it: \"{shown}\""),
                    _ => "write a quoted string, e.g. \"...\"".to_string(),
                };
                self.err(
                    other.span(),
                    format!("`{field}` must be a string, found {found}"),
                    help,
                );
                None
            }
        }
    }

    fn elements<'e>(
        &mut self,
        elems: impl Iterator<Item = &'e Element>,
        field: &str,
        mode: Str,
    ) -> Option<String> {
        let mut out = String::new();
        let mut ok = true;
        for el in elems {
            match el {
                Element::Literal(l) => match mode {
                    Str::Template => out.push_str(&template::escape(l.value())),
                    Str::Literal => out.push_str(l.value()),
                },
                Element::Interpolation(i) => {
                    if mode == Str::Literal {
                        let help = if field.starts_with("files.") {
                            "asset contents are stored verbatim, not rendered; write `$${` for a literal `${`"
                        } else {
                            "this field is not a template: write the value itself; `$${` gives a literal `${`"
                        };
                        self.err(
                            i.span(),
                            format!("`{field}` cannot use `${{...}}` interpolation"),
                            help,
                        );
                        ok = false;
                    } else if let Some(t) = self.interpolation(i) {
                        out.push_str(&t);
                    } else {
                        ok = false;
                    }
                }
                Element::Directive(d) => {
                    self.err(
                        d.span(),
                        "template directives (`%{ if }`, `%{ for }`) are not supported",
                        "write the text out literally; `%%{` gives a literal `%{`",
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// Checks one `${...}` and returns it in canonical vd template form.
    fn interpolation(&mut self, i: &hcl_edit::template::Interpolation) -> Option<String> {
        if i.strip != Strip::None {
            self.err(
                i.span(),
                "`~` whitespace stripping in `${~ ... ~}` is not supported",
                "remove the `~`",
            );
            return None;
        }
        let Some(path) = traversal_path(&i.expr) else {
            let written = self.src(i.expr.span()).to_string();
            self.err(
                i.span(),
                TemplateError::Unsupported(written).to_string(),
                INTERP_HELP,
            );
            return None;
        };
        let text = format!("${{{path}}}");
        let parts = match template::parse(&text) {
            Ok(parts) => parts,
            Err(e) => {
                self.err(i.span(), e.to_string(), INTERP_HELP);
                return None;
            }
        };
        // An asset reference that can never resolve is better caught here than at pod start.
        for part in parts {
            if let Part::Ref(TemplateRef::Asset { scope, name, key }) = part {
                let bad = validate_label("asset scope", &scope)
                    .and_then(|()| validate_label("asset name", &name))
                    .err()
                    .or_else(|| {
                        (!valid_asset_key(&key))
                            .then(|| format!("asset key `{key}` is not a valid file name"))
                    });
                if let Some(m) = bad {
                    self.err(i.span(), format!("in `{text}`: {m}"), INTERP_HELP);
                    return None;
                }
            }
        }
        Some(text)
    }

    /// A whole number in `min..=max`.
    fn whole(
        &mut self,
        e: &Expression,
        field: &str,
        min: u64,
        max: u64,
        example: &str,
    ) -> Option<u64> {
        let span = e.span();
        let Some(n) = num(e) else {
            let found = describe(e);
            let extra = if found == "a string" {
                " (no quotes)"
            } else {
                ""
            };
            self.err(
                span,
                format!("`{field}` must be a whole number, found {found}"),
                format!("write {example}{extra}"),
            );
            return None;
        };
        let shown = self.src(span.clone()).to_string();
        let (lo, hi) = (i128::from(min), i128::from(max));
        let value = match n {
            Num::Float(f) if !f.is_finite() || f.fract() != 0.0 => {
                self.err(
                    span,
                    format!("`{field}` must be a whole number, found {shown}"),
                    format!("write {example}"),
                );
                return None;
            }
            Num::Float(f) if f < 0.0 => lo - 1,
            Num::Float(_) => hi + 1,
            Num::Int(i) => i,
        };
        if value < lo {
            let message = if min == 0 {
                format!("`{field}` cannot be negative, found {shown}")
            } else {
                format!("`{field}` must be at least {min}, found {shown}")
            };
            self.err(span, message, format!("write {example}"));
            return None;
        }
        if value > hi {
            self.err(
                span,
                format!("`{field}` is too large: {shown} (at most {max})"),
                format!("write {example}"),
            );
            return None;
        }
        u64::try_from(value).ok()
    }

    fn list<'e>(&mut self, e: &'e Expression, field: &str) -> Option<Vec<&'e Expression>> {
        match e {
            Expression::Array(a) => Some(a.iter().collect()),
            Expression::Parenthesis(p) => self.list(p.inner(), field),
            other => {
                let leaf = leaf(field);
                let help = match other {
                    Expression::String(s) => {
                        let words: Vec<String> = s
                            .value()
                            .split_whitespace()
                            .map(|w| format!("\"{w}\""))
                            .collect();
                        format!("write a list: {leaf} = [{}]", words.join(", "))
                    }
                    _ => format!("write a list: {leaf} = [\"...\"]"),
                };
                self.err(
                    other.span(),
                    format!("`{field}` must be a list, found {}", describe(other)),
                    help,
                );
                None
            }
        }
    }

    fn string_list(&mut self, e: &Expression, field: &str, mode: Str) -> Option<Vec<String>> {
        let items = self.list(e, field)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let sub = format!("{field}[{i}]");
            self.record(&sub, item.span());
            match self.string(item, &sub, mode) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Object entries as (key, key span, value).
    fn object<'e>(&mut self, e: &'e Expression, field: &str) -> Option<Vec<Entry<'e>>> {
        match e {
            Expression::Object(o) => {
                let mut out = Vec::with_capacity(o.len());
                for (k, v) in o.iter() {
                    let key = match k {
                        ObjectKey::Ident(i) => i.as_str().to_string(),
                        ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                        ObjectKey::Expression(other) => {
                            self.err(
                                other.span(),
                                format!("keys in `{field}` must be names or quoted strings"),
                                "write `KEY = value` or `\"KEY\" = value`",
                            );
                            continue;
                        }
                    };
                    out.push((key, k.span(), v.expr()));
                }
                Some(out)
            }
            Expression::Parenthesis(p) => self.object(p.inner(), field),
            other => {
                self.err(
                    other.span(),
                    format!("`{field}` must be an object, found {}", describe(other)),
                    format!("write {} = {{ KEY = \"value\" }}", leaf(field)),
                );
                None
            }
        }
    }

    fn no_labels(&mut self, b: &Block) {
        if let Some(l) = b.labels.first() {
            let name = b.ident.as_str();
            self.err(
                l.span(),
                format!("`{name}` takes no labels"),
                format!("write `{name} {{ ... }}`"),
            );
        }
    }

    fn unknown_field(&mut self, name: &str, span: Option<Range<usize>>, ctx: &str, known: &[&str]) {
        let help = match suggest(name, known) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("valid fields here: {}", known.join(", ")),
        };
        self.err(span, format!("unknown field `{name}` in {ctx}"), help);
    }
}

/// Kind and labels of a block: the span errors about the block as a whole point at.
fn header_span(b: &Block) -> Range<usize> {
    let start = b.ident.span().or_else(|| b.span()).map_or(0, |s| s.start);
    let end = b
        .labels
        .last()
        .and_then(Span::span)
        .or_else(|| b.ident.span())
        .map_or(start, |s| s.end);
    start..end.max(start)
}

fn unparen(e: &Expression) -> &Expression {
    match e {
        Expression::Parenthesis(p) => unparen(p.inner()),
        other => other,
    }
}

fn num(e: &Expression) -> Option<Num> {
    match e {
        Expression::Number(n) => {
            let n = n.value();
            Some(match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Num::Int(i128::from(u)),
                (None, Some(i)) => Num::Int(i128::from(i)),
                _ => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
            })
        }
        Expression::Parenthesis(p) => num(p.inner()),
        Expression::UnaryOp(u) if *u.operator.value() == UnaryOperator::Neg => {
            match num(&u.expr)? {
                Num::Int(i) => Some(Num::Int(-i)),
                Num::Float(f) => Some(Num::Float(-f)),
            }
        }
        _ => None,
    }
}

/// What kind of value an expression is, for "found ..." messages.
fn describe(e: &Expression) -> &'static str {
    if num(e).is_some() {
        return "a number";
    }
    match e {
        Expression::Null(_) => "null",
        Expression::Bool(_) => "a bool",
        Expression::Number(_) => "a number",
        Expression::String(_) | Expression::StringTemplate(_) | Expression::HeredocTemplate(_) => {
            "a string"
        }
        Expression::Array(_) => "a list",
        Expression::Object(_) => "an object",
        Expression::Parenthesis(p) => describe(p.inner()),
        Expression::Variable(_) | Expression::Traversal(_) => "a reference",
        Expression::FuncCall(_) => "a function call",
        Expression::Conditional(_)
        | Expression::UnaryOp(_)
        | Expression::BinaryOp(_)
        | Expression::ForExpr(_) => "an expression",
    }
}

/// `a.b.c` for a variable or a chain of attribute accesses; anything else is not a vd reference.
fn traversal_path(e: &Expression) -> Option<String> {
    match e {
        Expression::Variable(v) => Some(v.as_str().to_string()),
        Expression::Traversal(t) => {
            let Expression::Variable(root) = &t.expr else {
                return None;
            };
            let mut out = root.as_str().to_string();
            for op in &t.operators {
                match op.value() {
                    TraversalOperator::GetAttr(name) => {
                        out.push('.');
                        out.push_str(name.as_str());
                    }
                    _ => return None,
                }
            }
            Some(out)
        }
        _ => None,
    }
}

fn func_name(f: &FuncCall) -> String {
    let mut parts: Vec<&str> = f.name.namespace.iter().map(|n| n.as_str()).collect();
    parts.push(f.name.name.as_str());
    parts.join("::")
}

/// Asset keys become file names on the host.
fn valid_asset_key(k: &str) -> bool {
    !k.is_empty()
        && k != "."
        && k != ".."
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The last segment of a field path, for "write NAME = ..." examples.
fn leaf(field: &str) -> &str {
    let f = field.rsplit('.').next().unwrap_or(field);
    f.split('[').next().unwrap_or(f)
}

/// Two absolute paths name the same place, trailing slashes aside.
fn same_path(a: &str, b: &str) -> bool {
    let trim = |p: &str| {
        let t = p.trim_end_matches('/');
        if t.is_empty() {
            "/".to_string()
        } else {
            t.to_string()
        }
    };
    trim(a) == trim(b)
}

/// The identifier or quoted key at the start of `s`.
fn leading_word(s: &str) -> &str {
    if let Some(rest) = s.strip_prefix('"') {
        return rest.split('"').next().unwrap_or(rest);
    }
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The closest known name, if it is close enough to be what the user meant.
fn suggest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = name.to_ascii_lowercase();
    let len = lower.chars().count();
    let limit = (len / 3).max(2);
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&lower, k), *k))
        .filter(|(d, _)| *d <= limit && *d < len)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("replica", &WORKLOAD_FIELDS), Some("replicas"));
        assert_eq!(suggest("img", &WORKLOAD_FIELDS), Some("image"));
        assert_eq!(suggest("Ports", &WORKLOAD_FIELDS), Some("ports"));
        assert_eq!(
            suggest("volume_clam", &WORKLOAD_FIELDS),
            Some("volume_claim")
        );
        assert_eq!(suggest("zzzzzz", &WORKLOAD_FIELDS), None);
        assert_eq!(suggest("x", &["url"]), None);
    }

    #[test]
    fn helpers() {
        assert!(valid_asset_key("redis.conf"));
        assert!(!valid_asset_key("a/b"));
        assert!(!valid_asset_key("é"));
        assert_eq!(leaf("probes.liveness.exec.command"), "command");
        assert_eq!(leaf("volume_claims[0]"), "volume_claims");
        assert_eq!(leading_word("abc = 2"), "abc");
        assert_eq!(leading_word("\"C\" = 1"), "C");
    }
}
