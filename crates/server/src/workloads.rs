//! What a stored resource runs: a workload spec as written, or a macro's expansion, plus the
//! files a macro generates (served as a virtual asset named `<name>@redis`).

use vd_core::redis::Expansion;
use vd_core::{AssetSpec, Kind, RedisSpec, Resource, ResourceRef, Spec, WorkloadSpec};

/// Whether a redis block is a sentinel sibling (not a data redis).
pub fn is_sentinel(spec: &RedisSpec) -> bool {
    spec.sentinel.as_ref().is_some_and(|s| s.enabled)
}

/// Whether vd's controller fails this redis over on its own (`failover { automatic = true }` in
/// a data redis).
pub fn automatic_failover(spec: &RedisSpec) -> bool {
    !is_sentinel(spec) && spec.failover.is_some_and(|f| f.automatic)
}

/// The data redis a sentinel sibling watches (`monitor = "scope/name"`), when well-formed.
pub fn monitor_of(spec: &RedisSpec) -> Option<ResourceRef> {
    if !is_sentinel(spec) {
        return None;
    }
    let m = spec.sentinel.as_ref()?.monitor.as_deref()?;
    let (scope, name) = m.split_once('/')?;
    (vd_core::validate_label("scope", scope).is_ok()
        && vd_core::validate_label("name", name).is_ok())
    .then(|| ResourceRef::new(Kind::Redis, scope, name))
}

/// What a redis block expands to: a data redis, or a sentinel sibling with a valid monitor.
fn expansion(r: &Resource, spec: &RedisSpec) -> Option<Expansion> {
    if !is_sentinel(spec) {
        return Some(vd_core::redis::expand(&r.id, spec));
    }
    monitor_of(spec).map(|m| vd_core::redis::expand_sentinel(&r.id, spec, &m))
}

/// The statefulset-shaped spec a resource runs, if it runs pods.
pub fn workload_of(r: &Resource) -> Option<WorkloadSpec> {
    match &r.spec {
        Spec::Workload(w) => Some(w.clone()),
        Spec::Redis(spec) => expansion(r, spec).map(|e| e.workload),
        _ => None,
    }
}

/// The virtual asset holding a macro's generated files.
pub fn generated_asset(r: &Resource) -> Option<(ResourceRef, AssetSpec)> {
    let Spec::Redis(spec) = &r.spec else {
        return None;
    };
    let files = expansion(r, spec)?.files;
    let id = ResourceRef::new(
        Kind::Asset,
        &r.id.scope,
        vd_core::redis::generated_asset_name(&r.id.name),
    );
    Some((id, AssetSpec { files }))
}
