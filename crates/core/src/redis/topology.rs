//! What role a redis block plays: a data redis, or a sentinel sibling watching one, and which
//! failure detector (if any) fails it over. Every part of vd that must tell these apart asks
//! here, so the rules live in one place.

use crate::{validate_label, Kind, RedisSpec, ResourceRef};

/// Whether a redis block is a sentinel sibling (not a data redis).
pub fn is_sentinel(spec: &RedisSpec) -> bool {
    spec.sentinel.as_ref().is_some_and(|s| s.enabled)
}

/// Whether vd's controller fails this redis over on its own by promoting a replica
/// (`failover { automatic = true }` in a data redis that is not a cluster: a cluster's shards
/// fail over through the cluster manager instead).
pub fn automatic_failover(spec: &RedisSpec) -> bool {
    !is_sentinel(spec) && spec.cluster.is_none() && spec.failover.is_some_and(|f| f.automatic)
}

/// The data redis a sentinel sibling watches (`monitor = "scope/name"`), when well-formed.
pub fn monitor_of(spec: &RedisSpec) -> Option<ResourceRef> {
    if !is_sentinel(spec) {
        return None;
    }
    let m = spec.sentinel.as_ref()?.monitor.as_deref()?;
    let (scope, name) = m.split_once('/')?;
    (validate_label("scope", scope).is_ok() && validate_label("name", name).is_ok())
        .then(|| ResourceRef::new(Kind::Redis, scope, name))
}
