//! What a stored resource runs: a workload spec as written, or a macro's expansion, plus the
//! files a macro generates (served as a virtual asset named `<name>@redis`). The controller's
//! generic orchestration sees only the result, so it never needs to know which macro a
//! resource came from.

use crate::redis::topology::{is_sentinel, monitor_of};
use crate::redis::Expansion;
use crate::{AssetSpec, Kind, RedisSpec, Resource, ResourceRef, Spec, WorkloadSpec};

/// What a redis block expands to: a data redis, or a sentinel sibling with a valid monitor.
fn expansion(r: &Resource, spec: &RedisSpec) -> Option<Expansion> {
    if !is_sentinel(spec) {
        return Some(crate::redis::expand(&r.id, spec));
    }
    monitor_of(spec).map(|m| crate::redis::expand_sentinel(&r.id, spec, &m))
}

/// The most pods one workload may ask for: each is a process (or container) and holds one of
/// the root's 65534 pod addresses, so a typo such as `replicas = 30000` would take the host
/// down rather than scale anything.
pub const MAX_REPLICAS: u32 = 1024;

/// What to write instead of a replica count above [`MAX_REPLICAS`].
pub const MAX_REPLICAS_HELP: &str = "write a smaller count, e.g. replicas = 3: a workload runs \
at most 1024 pods, each a process with one of the root's 65534 pod addresses";

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
        crate::redis::generated_asset_name(&r.id.name),
    );
    Some((id, AssetSpec { files }))
}
