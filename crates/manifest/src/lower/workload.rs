//! Lowering of the pod fields statefulset, deployment and redis blocks share (image, replicas,
//! command, env, env_from, ports, volumes, volume claims, probes, resources), and of the
//! container fields a cronjob shares with them. The redis macro adds its own blocks through
//! [`MacroBlocks`]; every other kind refuses them here, with a pointer to the macro.

mod probes;

use crate::lower::attrs::Nested;
use crate::lower::cx::{header_span, Cx};
use crate::lower::values::{num, unparen, Num, Str};
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Attribute, Block, BlockLabel, Body, Structure};
use hcl_edit::Span;
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use vd_core::env::valid_env_key;
use vd_core::{
    validate_label, Kind, Limits, PortSpec, Probes, Resources, VolumeClaim, VolumeMount,
    WorkloadSpec,
};

/// Every field a statefulset takes.
pub(super) const WORKLOAD_FIELDS: [&str; 11] = [
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
/// Every field a deployment takes: a statefulset's without the per-pod volume claims.
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
/// Workload fields written `name { ... }` rather than `name = ...`.
const WORKLOAD_BLOCKS: [&str; 3] = ["volume_claim", "probes", "resources"];
/// Blocks only macros (`redis`) take; every other kind refuses them.
pub(super) const MACRO_BLOCKS: [&str; 7] = [
    "plugin", "sentinel", "failover", "proxy", "backup", "cluster", "tls",
];
/// The fields of the container itself, which every kind that runs one takes (cronjobs too).
const CONTAINER_FIELDS: [&str; 5] = ["image", "command", "env", "env_from", "volumes"];

/// A volume claim with the spans of its name and mount path, for duplicate checks.
pub(super) type LocatedClaim = (VolumeClaim, Option<Range<usize>>, Option<Range<usize>>);
/// A volume mount with the span of its list item, for duplicate checks.
pub(super) type LocatedMount = (VolumeMount, Option<Range<usize>>);

/// The container fields as written: `None` where the operator wrote nothing (or wrote
/// something invalid, which is also an error).
#[derive(Default)]
pub(super) struct Container {
    /// `image`, as template text.
    pub(super) image: Option<String>,
    /// `command`, each argument as template text.
    pub(super) command: Option<Vec<String>>,
    /// `env`, values as template text.
    pub(super) env: BTreeMap<String, String>,
    /// `env_from`: config buckets, "scope" or "scope/name".
    pub(super) env_from: Vec<String>,
    /// `volumes`, in source order.
    pub(super) volumes: Vec<LocatedMount>,
}

/// The fields of a statefulset, deployment or redis body as written: `None` where the operator
/// wrote nothing (or wrote something invalid, which is also an error).
#[derive(Default)]
pub(super) struct PodFields {
    /// The container fields.
    pub(super) container: Container,
    /// With the span of the value, for the sentinel quorum check.
    pub(super) replicas: Option<(u32, Option<Range<usize>>)>,
    /// `ports`.
    pub(super) ports: Option<Vec<PortSpec>>,
    /// Claims from both forms (`volume_claim` blocks and the `volume_claims` list), in source
    /// order.
    pub(super) claims: Vec<LocatedClaim>,
    /// `probes { ... }`, whole as written.
    pub(super) probes: Option<Probes>,
    /// `resources { ... }`.
    pub(super) resources: Resources,
}

/// The blocks a macro adds to a statefulset body (the redis macro's `sentinel`, `backup`, ...).
pub(super) trait MacroBlocks {
    /// The macro's own fields; its block takes a statefulset's as well.
    fn fields(&self) -> &'static [&'static str];
    /// Lowers one of the macro's own blocks. Only names in `MACRO_BLOCKS` arrive here, each at
    /// most once per body, and labels on them have already been reported.
    fn block(&mut self, cx: &mut Cx<'_>, b: &Block);
}

/// Drops the spans kept for duplicate checks.
pub(super) fn unlocated_claims(claims: Vec<LocatedClaim>) -> Vec<VolumeClaim> {
    claims.into_iter().map(|(c, _, _)| c).collect()
}

/// Drops the spans kept for duplicate checks.
pub(super) fn unlocated_mounts(mounts: Vec<LocatedMount>) -> Vec<VolumeMount> {
    mounts.into_iter().map(|(m, _)| m).collect()
}

impl Cx<'_> {
    /// A statefulset or deployment block.
    pub(super) fn workload(&mut self, kind: Kind, body: &Body) -> WorkloadSpec {
        let f = self.pod_fields(kind, body, None);
        self.distinct_mounts(&f, None);
        WorkloadSpec {
            image: f.container.image,
            replicas: f.replicas.map_or(1, |(n, _)| n),
            command: f.container.command.unwrap_or_default(),
            env: f.container.env,
            env_from: f.container.env_from,
            ports: f.ports.unwrap_or_default(),
            volume_claims: unlocated_claims(f.claims),
            volumes: unlocated_mounts(f.container.volumes),
            probes: f.probes.unwrap_or_default(),
            resources: f.resources,
            // Only the redis macro gives its pods certificates.
            certificate: None,
        }
    }

    /// The body of a statefulset, deployment or redis block, checked field by field; `own` is
    /// the macro's, for a redis block. Duplicate claims and mounts are the caller's next step
    /// (`distinct_mounts`), after any checks of its own on them.
    pub(super) fn pod_fields(
        &mut self,
        kind: Kind,
        body: &Body,
        mut own: Option<&mut dyn MacroBlocks>,
    ) -> PodFields {
        let mut w = PodFields::default();
        let ctx = kind.as_str();
        let is_macro = own.is_some();
        let known: Vec<&str> = match (&own, kind) {
            (Some(m), _) => WORKLOAD_FIELDS.iter().chain(m.fields()).copied().collect(),
            (None, Kind::Deployment) => DEPLOYMENT_FIELDS.to_vec(),
            (None, _) => WORKLOAD_FIELDS.to_vec(),
        };
        let claims_allowed = kind != Kind::Deployment;
        let mut seen_blocks: HashSet<&str> = HashSet::new();
        let mut claim_count = 0usize;

        for structure in body.iter() {
            match structure {
                Structure::Attribute(a) => {
                    if self.container_field(a, &mut w.container) {
                        continue;
                    }
                    let key = a.key.as_str();
                    let v = &a.value;
                    if matches!(key, "replicas" | "ports" | "volume_claims") {
                        self.record(key, v.span());
                    }
                    match key {
                        "replicas" => {
                            if let Some(n) = self.whole(
                                v,
                                "replicas",
                                0,
                                u64::from(vd_core::workload::MAX_REPLICAS),
                                "replicas = 3",
                            ) {
                                w.replicas = Some((u32::try_from(n).unwrap_or(u32::MAX), v.span()));
                            }
                        }
                        "ports" => w.ports = Some(self.ports(v)),
                        "volume_claims" if claims_allowed => {
                            let listed = self.claim_list(v, &mut claim_count);
                            w.claims.extend(listed);
                        }
                        "volume_claims" => {
                            self.no_claims_in_deployment(a.key.span(), "volume_claims")
                        }
                        "volume_claim" if !claims_allowed => {
                            self.no_claims_in_deployment(a.key.span(), "volume_claim")
                        }
                        k if !is_macro && MACRO_BLOCKS.contains(&k) => {
                            self.macro_only(k, a.key.span(), ctx)
                        }
                        k if WORKLOAD_BLOCKS.contains(&k) || MACRO_BLOCKS.contains(&k) => self.err(
                            a.key.span(),
                            format!("`{k}` is a block, not an attribute"),
                            format!("write `{k} {{ ... }}` without `=`"),
                        ),
                        other => self.unknown_field(other, a.key.span(), ctx, &known),
                    }
                }
                Structure::Block(b) => {
                    let name = b.ident.as_str();
                    let single = matches!(name, "probes" | "resources")
                        || (is_macro && MACRO_BLOCKS.contains(&name));
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
                                w.claims.push(c);
                            }
                            claim_count += 1;
                        }
                        "volume_claim" | "volume_claims" => {
                            self.no_claims_in_deployment(b.ident.span(), name)
                        }
                        "probes" => w.probes = Some(self.probes(b)),
                        "resources" => w.resources = self.resources(b),
                        k if MACRO_BLOCKS.contains(&k) => match own.as_deref_mut() {
                            Some(m) => m.block(self, b),
                            None => self.macro_only(k, b.ident.span(), ctx),
                        },
                        k if known.contains(&k) => self.err(
                            b.ident.span(),
                            format!("`{k}` is an attribute, not a block"),
                            format!("write `{k} = ...`"),
                        ),
                        other => self.unknown_field(other, b.ident.span(), ctx, &known),
                    }
                }
            }
        }
        w
    }

    /// Claim names must be unique: they name the per-pod volumes. Mount paths too: two mounts
    /// on one path would shadow each other inside the pod. `reserved` is the claim a macro adds
    /// itself (name, mount path); a claim or volume taking either has its own error already.
    pub(super) fn distinct_mounts(&mut self, f: &PodFields, reserved: Option<(&str, &str)>) {
        let mut names: HashSet<&str> = HashSet::new();
        for (c, name_span, _) in &f.claims {
            if reserved.is_some_and(|(name, _)| c.name == name) {
                continue;
            }
            if !names.insert(&c.name) {
                self.err(
                    name_span.clone(),
                    format!("volume claim `{}` is declared twice", c.name),
                    "give each claim its own name",
                );
            }
        }
        let mut targets: HashSet<&str> = HashSet::new();
        let mounts = f
            .claims
            .iter()
            .map(|(c, _, span)| (c.mount_path.as_str(), span))
            .chain(
                f.container
                    .volumes
                    .iter()
                    .map(|(v, s)| (v.target.as_str(), s)),
            )
            .filter(|(target, _)| !reserved.is_some_and(|(_, path)| same_path(target, path)));
        for (target, span) in mounts {
            if !targets.insert(target) {
                self.err(
                    span.clone(),
                    format!("mount path `{target}` is used twice"),
                    "each volume and volume claim needs its own path inside the pod",
                );
            }
        }
    }

    /// Lowers `a` into `c` when it is one of the container fields, recording its span first;
    /// false, with nothing done, for any other name.
    pub(super) fn container_field(&mut self, a: &Attribute, c: &mut Container) -> bool {
        let key = a.key.as_str();
        if !CONTAINER_FIELDS.contains(&key) {
            return false;
        }
        let v = &a.value;
        self.record(key, v.span());
        match key {
            "image" => c.image = self.string(v, "image", Str::Template),
            "command" => c.command = self.string_list(v, "command", Str::Template),
            "env" => c.env = self.env(v),
            "env_from" => c.env_from = self.env_from(v),
            _ => c.volumes.extend(self.volumes(v)),
        }
        true
    }

    /// One of the macro's blocks (`MACRO_BLOCKS`) outside a redis block.
    fn macro_only(&mut self, name: &str, span: Option<Range<usize>>, ctx: &str) {
        let help = match name {
            "plugin" => "`plugin { version = \"...\" }` belongs to macros such as `redis`; remove it from this block".to_string(),
            "failover" => format!("`failover {{ automatic = true }}` belongs to the redis macro, which knows which pod is the master: write it inside a data `redis \"scope\" \"name\" {{ ... }}` block, not in a {ctx}"),
            "proxy" => format!("`proxy {{ replicas = 1 }}` belongs to the redis macro, which knows which pod is the master: write it inside a data `redis \"scope\" \"name\" {{ ... }}` block, not in a {ctx}"),
            "cluster" => format!("`cluster {{ shards = 3 }}` belongs to the redis macro, which forms and manages the cluster: write it inside a data `redis \"scope\" \"name\" {{ ... }}` block, not in a {ctx}"),
            "tls" => format!("`tls {{}}` belongs to the redis macro, whose pods vd issues certificates to and whose clients it tells how to verify them: write it inside a data `redis \"scope\" \"name\" {{ ... }}` block, not in a {ctx}"),
            "backup" => format!("`backup {{ schedule = \"0 */6 * * *\" }}` belongs to the redis macro, which knows how to snapshot its data: write it inside a data `redis \"scope\" \"name\" {{ ... }}` block, not in a {ctx}"),
            _ => format!("`sentinel {{ monitor = \"scope/name\" }}` belongs to the redis macro: declare a sentinel sibling as `redis \"scope\" \"name-ha\" {{ sentinel {{ ... }} }}`, not in a {ctx}"),
        };
        self.err(span, format!("`{name}` is not allowed in a {ctx}"), help);
    }

    /// A volume claim in a deployment, whose pods have no volumes of their own.
    fn no_claims_in_deployment(&mut self, span: Option<Range<usize>>, name: &str) {
        self.err(
            span,
            format!("`{name}` is not allowed in a deployment"),
            "use a statefulset for per-pod volumes; deployment pods are interchangeable and have none",
        );
    }

    /// `env = { KEY = "value" }`; numbers and bools are taken as their text.
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

    /// `env_from = ["scope", "scope/name"]`: the config buckets to read variables from.
    pub(super) fn env_from(&mut self, v: &Expression) -> Vec<String> {
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

    /// `ports = ["6379", "127.0.0.1:6380"]`, each port at most once.
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

    /// `volumes = ["SOURCE:/path/in/pod[:ro]"]`, each with the span of its item.
    fn volumes(&mut self, v: &Expression) -> Vec<LocatedMount> {
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
        let sub = format!("{field}.mount_path");
        self.attributes(
            &b.body,
            "volume_claim",
            &["mount_path"],
            Nested::Unknown,
            |cx, a| {
                cx.record(&sub, a.value.span());
                mount = cx
                    .string(&a.value, &sub, Str::Literal)
                    .map(|s| (s, a.value.span()));
            },
        );
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

    /// A claim from either form, once its name and mount path are checked.
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

    /// `resources { limits { ... } }`.
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

    /// `limits { cpu = "0.5"  memory = "256Mi" }` inside `resources`.
    fn limits(&mut self, b: &Block) -> Limits {
        self.record("resources.limits", Some(header_span(b)));
        let mut limits = Limits::default();
        self.attributes(
            &b.body,
            "resources.limits",
            &["cpu", "memory"],
            Nested::Unknown,
            |cx, a| {
                let key = a.key.as_str();
                let field = format!("resources.limits.{key}");
                cx.record(&field, a.value.span());
                // `cpu = 0.5` and `memory = 1048576` are as clear as their quoted forms.
                let text = match num(&a.value) {
                    Some(_) => Some(cx.src(a.value.span()).to_string()),
                    None => cx.string(&a.value, &field, Str::Literal),
                };
                let Some(text) = text else { return };
                if key == "cpu" {
                    match Limits::parse_cpu(&text) {
                        Ok(v) => limits.cpu_millis = Some(v),
                        Err(m) => cx.err(
                            a.value.span(),
                            m,
                            "CPU is in cores: \"0.5\", \"2\" or \"500m\" (millicores)",
                        ),
                    }
                } else {
                    match Limits::parse_memory(&text) {
                        Ok(v) => limits.memory_bytes = Some(v),
                        Err(m) => cx.err(
                            a.value.span(),
                            m,
                            "memory is bytes with a unit: \"256Mi\", \"1Gi\", \"512M\"",
                        ),
                    }
                }
            },
        );
        limits
    }
}

/// Two absolute paths name the same place, trailing slashes aside.
pub(super) fn same_path(a: &str, b: &str) -> bool {
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
