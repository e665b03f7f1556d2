//! What a stored resource runs: a workload spec as written, or a macro's expansion, plus the
//! files a macro generates (served as a virtual asset named `<name>@redis`).

use vd_core::{AssetSpec, Kind, RedisSpec, Resource, ResourceRef, Spec, WorkloadSpec};

/// Whether a redis block is a sentinel sibling (not a data redis).
pub fn is_sentinel(spec: &RedisSpec) -> bool {
    spec.sentinel.as_ref().is_some_and(|s| s.enabled)
}

/// The statefulset-shaped spec a resource runs, if it runs pods.
pub fn workload_of(r: &Resource) -> Option<WorkloadSpec> {
    match &r.spec {
        Spec::Workload(w) => Some(w.clone()),
        Spec::Redis(spec) if !is_sentinel(spec) => {
            Some(vd_core::redis::expand(&r.id, spec).workload)
        }
        _ => None,
    }
}

/// The virtual asset holding a macro's generated files.
pub fn generated_asset(r: &Resource) -> Option<(ResourceRef, AssetSpec)> {
    match &r.spec {
        Spec::Redis(spec) if !is_sentinel(spec) => {
            let files = vd_core::redis::expand(&r.id, spec).files;
            let id = ResourceRef::new(
                Kind::Asset,
                &r.id.scope,
                vd_core::redis::generated_asset_name(&r.id.name),
            );
            Some((id, AssetSpec { files }))
        }
        _ => None,
    }
}
