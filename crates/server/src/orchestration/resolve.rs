//! From a stored workload spec to what a pod runs: templates rendered, buckets merged, asset
//! paths and digests pinned. Pure over the data it is given, so validation at apply time and
//! launching use the same code.

use crate::types::Problem;
use std::collections::BTreeMap;
use std::path::Path;
use vd_core::env::{identity_env, EnvLayers, EnvMap};
use vd_core::hash::{content_digest, spec_hash};
use vd_core::naming::{pod_name, volume_name};
use vd_core::pod::{PodTemplate, ResolvedMount};
use vd_core::template::{self, TemplateRef};
use vd_core::{AssetSpec, ResourceRef, WorkloadSpec};
use vd_runtime::PodLaunch;

/// Per-pod variables a template may use; they are filled in per pod at launch. Until then they
/// stand as `\0NAME\0`, which no real argument or value can contain (C strings end at NUL).
const IDENTITY_VARS: [&str; 4] = [
    "VOODU_REPLICA_ORDINAL",
    "VOODU_POD_IP",
    "VOODU_SCOPE",
    "VOODU_NAME",
];

fn fill_identity(s: &str, identity: &EnvMap) -> String {
    if !s.contains('\0') {
        return s.to_string();
    }
    let mut out = s.to_string();
    for (k, v) in identity {
        out = out.replace(&format!("\0{k}\0"), v);
    }
    out
}

/// What resolving a workload may look up.
pub struct Context<'a> {
    /// Known assets by (scope, name).
    pub assets: &'a BTreeMap<(String, String), AssetSpec>,
    /// Where asset files are materialized.
    pub assets_dir: &'a Path,
    /// Each `env_from` entry's variables, by the entry as written.
    pub env_from: &'a BTreeMap<String, EnvMap>,
    /// The resource's own bucket.
    pub own: &'a EnvMap,
    /// Facts of this server that specs may name: `VD_EXE` (the vd binary), `VD_TLS_CA` (the
    /// root's CA certificate) and `VD_RUN_DIR`
    /// (its run directory), which the derived proxy mounts. They win over buckets.
    pub host: &'a EnvMap,
}

/// Host path of an asset file.
pub fn asset_path(assets_dir: &Path, scope: &str, name: &str, key: &str) -> std::path::PathBuf {
    assets_dir.join(scope).join(name).join(key)
}

/// Splits an `env_from` entry into a bucket level: `scope` or `scope/name`.
pub fn bucket_of(entry: &str) -> (&str, Option<&str>) {
    match entry.split_once('/') {
        Some((s, n)) => (s, Some(n)),
        None => (entry, None),
    }
}

/// Config buckets as a resolution reads them: each level (`scope`, or `scope/name`) with its
/// variables. Read from the store for the running system, or built by an apply from the store
/// plus what it is about to write, so both resolve specs the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buckets {
    levels: BTreeMap<(String, String), EnvMap>,
}

impl Buckets {
    /// Sets every variable of one level (the scope level when `name` is `None`).
    pub fn insert(&mut self, scope: &str, name: Option<&str>, vars: EnvMap) {
        self.levels
            .insert((scope.to_string(), name.unwrap_or("").to_string()), vars);
    }

    /// Adds `vars` to one level, keeping its other variables.
    pub fn extend(&mut self, scope: &str, name: Option<&str>, vars: &EnvMap) {
        self.levels
            .entry((scope.to_string(), name.unwrap_or("").to_string()))
            .or_default()
            .extend(vars.clone());
    }

    /// The variables of exactly one level.
    pub fn level(&self, scope: &str, name: Option<&str>) -> EnvMap {
        self.levels
            .get(&(scope.to_string(), name.unwrap_or("").to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// The scope level merged with the `name` level; the name level wins per key.
    pub fn effective(&self, scope: &str, name: &str) -> EnvMap {
        let mut vars = self.level(scope, None);
        if !name.is_empty() {
            vars.extend(self.level(scope, Some(name)));
        }
        vars
    }
}

/// What a workload's pods run, as a template and its hash, from plain inputs: the spec, the
/// assets, the buckets, the host facts and the restart generation (`vd restart`). The one
/// place a desired hash is computed, for the reconcile loop and for an apply alike.
pub fn desired(
    id: &ResourceRef,
    spec: &WorkloadSpec,
    assets: &BTreeMap<(String, String), AssetSpec>,
    assets_dir: &Path,
    buckets: &Buckets,
    host: &EnvMap,
    generation: &str,
) -> Result<(PodTemplate, String), Vec<Problem>> {
    let mut env_from: BTreeMap<String, EnvMap> = BTreeMap::new();
    for entry in &spec.env_from {
        let (scope, name) = bucket_of(entry);
        if scope.is_empty() || name == Some("") {
            continue; // reported by `template` as not a bucket reference
        }
        let vars = match name {
            Some(n) => buckets.effective(scope, n),
            None => buckets.level(scope, None),
        };
        env_from.insert(entry.clone(), vars);
    }
    let own = buckets.effective(&id.scope, &id.name);
    let ctx = Context {
        assets,
        assets_dir,
        env_from: &env_from,
        own: &own,
        host,
    };
    template(id, spec, &ctx).map(|t| {
        let hash = spec_hash(&(t.hash(), generation));
        (t, hash)
    })
}

fn problem(id: &ResourceRef, field: String, message: String, help: Option<&str>) -> Problem {
    Problem {
        resource: Some(id.clone()),
        field,
        message,
        help: help.map(str::to_string),
    }
}

/// Renders a workload spec into its pod template, or lists every problem with its field.
pub fn template(
    id: &ResourceRef,
    spec: &WorkloadSpec,
    ctx: &Context<'_>,
) -> Result<PodTemplate, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut from_vars = EnvMap::new();
    for entry in &spec.env_from {
        if let Some(vars) = ctx.env_from.get(entry) {
            from_vars.extend(vars.clone());
        }
    }
    let mut lookup = EnvMap::new();
    lookup.extend(from_vars.clone());
    lookup.extend(ctx.own.clone());
    lookup.extend(ctx.host.clone());

    let mut digest_of = BTreeMap::new();
    let mut render = |field: String, s: &str, problems: &mut Vec<Problem>| -> String {
        let out = template::render(s, |r| match r {
            TemplateRef::Asset { scope, name, key } => {
                let asset = ctx
                    .assets
                    .get(&(scope.clone(), name.clone()))
                    .ok_or_else(|| format!("asset `{scope}/{name}` does not exist"))?;
                let content = asset.files.get(key).ok_or_else(|| {
                    let keys: Vec<&str> = asset.files.keys().map(String::as_str).collect();
                    format!(
                        "asset `{scope}/{name}` has no key `{key}` (it has: {})",
                        keys.join(", ")
                    )
                })?;
                let path = asset_path(ctx.assets_dir, scope, name, key);
                let p = path.to_string_lossy().into_owned();
                digest_of.insert(p.clone(), content_digest(content.as_bytes()));
                Ok(p)
            }
            // Per-pod identity is filled in at launch, and is never empty.
            TemplateRef::Var(v) | TemplateRef::VarOr { name: v, .. }
                if IDENTITY_VARS.contains(&v.as_str()) =>
            {
                Ok(format!("\0{v}\0"))
            }
            TemplateRef::Var(v) => lookup.get(v).cloned().ok_or_else(|| {
                format!(
                    "variable `{v}` is not set in this resource's config or its env_from buckets"
                )
            }),
            TemplateRef::VarOr { name, default } => {
                Ok(template::or_default(lookup.get(name).cloned(), default))
            }
        });
        match out {
            Ok(v) => v,
            Err(e) => {
                let help = match &e {
                    template::TemplateError::Unresolved(m) if m.starts_with("asset") => {
                        Some("declare the asset in the manifest, or fix the reference `${asset.SCOPE.NAME.KEY}`")
                    }
                    template::TemplateError::Unresolved(_) => Some("set it with `vd config SCOPE/NAME set KEY=VALUE`, or add the bucket to env_from"),
                    _ => None,
                };
                problems.push(problem(id, field, e.to_string(), help));
                String::new()
            }
        }
    };

    let command: Vec<String> = spec
        .command
        .iter()
        .enumerate()
        .map(|(i, c)| render(format!("command[{i}]"), c, &mut problems))
        .collect();
    // The image is resolved once for every pod: a per-pod variable has no single value here,
    // and an unresolved one is a problem at `image`, never a literal `${...}` in the name.
    let image = spec.image.as_ref().map(|i| {
        let rendered = render("image".into(), i, &mut problems);
        if rendered.contains('\0') {
            problems.push(problem(
                id,
                "image".into(),
                format!("`{i}` names a per-pod variable; an image is the same for every pod"),
                Some("use a variable from the resource's config or env_from buckets"),
            ));
        }
        rendered
    });
    let manifest_env: EnvMap = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), render(format!("env.{k}"), v, &mut problems)))
        .collect();
    let mut probes = spec.probes.clone();
    for (slot, probe) in [
        ("liveness", &mut probes.liveness),
        ("readiness", &mut probes.readiness),
        ("startup", &mut probes.startup),
    ] {
        if let Some(vd_core::Probe {
            action: vd_core::ProbeAction::Exec { command },
            ..
        }) = probe
        {
            for (i, c) in command.iter_mut().enumerate() {
                *c = render(format!("probes.{slot}.command[{i}]"), c, &mut problems);
            }
        }
    }
    let mut mounts = Vec::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        let source = render(format!("volumes[{i}]"), &v.source, &mut problems);
        if !source.is_empty() && !source.starts_with('/') {
            problems.push(problem(
                id,
                format!("volumes[{i}]"),
                format!("volume source `{source}` is not an absolute path"),
                Some("use `${asset.SCOPE.NAME.KEY}` or an absolute host path"),
            ));
        }
        mounts.push(ResolvedMount {
            source,
            target: v.target.clone(),
            read_only: v.read_only,
            digest: None,
        });
    }
    for m in &mut mounts {
        m.digest = digest_of.get(&m.source).cloned();
    }
    for (i, entry) in spec.env_from.iter().enumerate() {
        if !ctx.env_from.contains_key(entry) {
            problems.push(problem(
                id,
                format!("env_from[{i}]"),
                format!("env_from `{entry}` is not a bucket reference"),
                Some("write \"SCOPE\" or \"SCOPE/NAME\""),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let env = EnvLayers {
        manifest: Some(&manifest_env),
        env_from: vec![&from_vars],
        own: Some(ctx.own),
        ..Default::default()
    }
    .merge();
    Ok(PodTemplate {
        image,
        command,
        env,
        ports: spec.ports.clone(),
        volume_claims: spec.volume_claims.clone(),
        mounts,
        probes,
        resources: spec.resources.clone(),
        certificate: spec.certificate.clone(),
    })
}

/// A pod's probes with per-pod variables filled in.
pub fn pod_probes(id: &ResourceRef, t: &PodTemplate, ordinal: u32, ip: &str) -> vd_core::Probes {
    let identity = identity_env(&id.scope, &id.name, ordinal, ip);
    let mut probes = t.probes.clone();
    for p in [
        &mut probes.liveness,
        &mut probes.readiness,
        &mut probes.startup,
    ]
    .into_iter()
    .flatten()
    {
        if let vd_core::ProbeAction::Exec { command } = &mut p.action {
            for c in command.iter_mut() {
                *c = fill_identity(c, &identity);
            }
        }
    }
    probes
}

/// The launch of one pod of a workload: `ip` is where the host reaches it, `pod_ip` the
/// address the pod sees as its own (`VOODU_POD_IP`; the same on the process runtime,
/// `0.0.0.0` inside a container).
pub fn launch(
    id: &ResourceRef,
    t: &PodTemplate,
    ordinal: u32,
    ip: &str,
    pod_ip: &str,
    hash: &str,
) -> PodLaunch {
    let identity = identity_env(&id.scope, &id.name, ordinal, pod_ip);
    let mut env: EnvMap = t
        .env
        .iter()
        .map(|(k, v)| (k.clone(), fill_identity(v, &identity)))
        .collect();
    env.extend(identity.clone());
    PodLaunch {
        pod: pod_name(id, ordinal),
        owner: id.clone(),
        ordinal,
        ip: ip.to_string(),
        hash: hash.to_string(),
        image: t.image.clone(),
        command: t
            .command
            .iter()
            .map(|c| fill_identity(c, &identity))
            .collect(),
        env,
        // Like the redis image's WORKDIR /data: relative paths (dump.rdb, appendonly) land on
        // the first volume.
        workdir: t
            .volume_claims
            .first()
            .map(|c| c.mount_path.clone())
            .unwrap_or_else(|| "/".into()),
        volumes: t
            .volume_claims
            .iter()
            .map(|c| (volume_name(id, &c.name, ordinal), c.mount_path.clone()))
            .collect(),
        binds: t
            .mounts
            .iter()
            .map(|m| (m.source.clone(), m.target.clone(), m.read_only))
            .collect(),
        ports: t.ports.clone(),
        limits: t.resources.limits.clone(),
        keep_exit: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vd_core::{Kind, VolumeClaim, VolumeMount};

    type Data = (
        BTreeMap<(String, String), AssetSpec>,
        BTreeMap<String, EnvMap>,
        EnvMap,
    );

    fn ctx_data() -> Data {
        let assets = BTreeMap::from([(
            ("data".to_string(), "cfg".to_string()),
            AssetSpec {
                files: BTreeMap::from([("conf".to_string(), "port 1".to_string())]),
            },
        )]);
        let from = BTreeMap::from([(
            "shared".to_string(),
            EnvMap::from([("TOKEN".into(), "t".into())]),
        )]);
        let own = EnvMap::from([("OWN".into(), "o".into())]);
        (assets, from, own)
    }

    fn spec() -> WorkloadSpec {
        WorkloadSpec {
            replicas: 1,
            command: vec!["app".into(), "--token=${TOKEN}".into()],
            env: BTreeMap::from([("A".into(), "1".into())]),
            env_from: vec!["shared".into()],
            volume_claims: vec![VolumeClaim {
                name: "data".into(),
                mount_path: "/data".into(),
            }],
            volumes: vec![VolumeMount::parse("${asset.data.cfg.conf}:/etc/app.conf:ro").unwrap()],
            ..Default::default()
        }
    }

    #[test]
    fn renders_templates_and_pins_asset_digest() {
        let (assets, from, own) = ctx_data();
        let ctx = Context {
            assets: &assets,
            assets_dir: Path::new("/root/assets"),
            env_from: &from,
            own: &own,
            host: &EnvMap::new(),
        };
        let id = ResourceRef::new(Kind::Statefulset, "data", "app");
        let t = template(&id, &spec(), &ctx).unwrap();
        assert_eq!(t.command[1], "--token=t");
        assert_eq!(t.mounts[0].source, "/root/assets/data/cfg/conf");
        assert!(t.mounts[0].digest.is_some());
        assert_eq!(t.env["OWN"], "o");
        assert_eq!(t.env["TOKEN"], "t");
        let l = launch(&id, &t, 2, "127.9.0.4", "127.9.0.4", "h");
        assert_eq!(l.pod, "data-app.2");
        assert_eq!(l.workdir, "/data");
        assert_eq!(l.volumes[0].0, "voodu-data-app-data-2");
        assert_eq!(l.env["VOODU_REPLICA_ORDINAL"], "2");
    }

    #[test]
    fn identity_vars_are_filled_per_pod() {
        let (assets, from, own) = ctx_data();
        let ctx = Context {
            assets: &assets,
            assets_dir: Path::new("/a"),
            env_from: &from,
            own: &own,
            host: &EnvMap::new(),
        };
        let id = ResourceRef::new(Kind::Statefulset, "data", "app");
        let mut s = spec();
        s.command = vec![
            "redis-server".into(),
            "--bind".into(),
            "${VOODU_POD_IP}".into(),
        ];
        s.env
            .insert("ME".into(), "${VOODU_NAME}-${VOODU_REPLICA_ORDINAL}".into());
        let t = template(&id, &s, &ctx).unwrap();
        let a = launch(&id, &t, 0, "127.9.0.2", "127.9.0.2", "h");
        let b = launch(&id, &t, 1, "127.9.0.3", "127.9.0.3", "h");
        assert_eq!(a.command[2], "127.9.0.2");
        assert_eq!(b.command[2], "127.9.0.3");
        assert_eq!(b.env["ME"], "app-1");
    }

    #[test]
    fn reports_problems_by_field() {
        let (assets, _, own) = ctx_data();
        let from = BTreeMap::new();
        let ctx = Context {
            assets: &assets,
            assets_dir: Path::new("/a"),
            env_from: &from,
            own: &own,
            host: &EnvMap::new(),
        };
        let mut s = spec();
        s.volumes
            .push(VolumeMount::parse("${asset.data.nope.conf}:/x").unwrap());
        let id = ResourceRef::new(Kind::Statefulset, "data", "app");
        let problems = template(&id, &s, &ctx).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, vec!["command[1]", "volumes[1]", "env_from[0]"]);
        assert!(problems[1]
            .message
            .contains("asset `data/nope` does not exist"));
    }
}
