//! Apply-time checks of a redis resource. Pure: the apply pipeline gathers what they read of
//! the stored state ([`Stored`]) once, and these feed the rules in `vd_core::redis` (with the
//! mounted conf contents, the sibling resources and the current master) and turn their
//! findings into located problems.

use crate::redis::facts::{problem, spec_of};
use crate::types::Problem;
use std::collections::BTreeMap;
use vd_core::redis as macro_;
use vd_core::template::{self, TemplateRef};
use vd_core::{AssetSpec, RedisSpec, Resource, ResourceRef};

/// What the redis checks read of the stored state.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// Every stored redis resource.
    pub redis: BTreeMap<ResourceRef, Resource>,
    /// `REDIS_MASTER_ORDINAL` of each stored redis (0 when unset).
    pub masters: BTreeMap<ResourceRef, u32>,
}

/// Every check of one redis resource of an apply (`applied`: the whole apply).
pub fn validate(
    r: &Resource,
    spec: &RedisSpec,
    assets: &BTreeMap<(String, String), AssetSpec>,
    applied: &[Resource],
    stored: &Stored,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut mounted: Vec<(usize, String)> = Vec::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        if let Ok(refs) = template::refs(&v.source) {
            for t in refs {
                if let TemplateRef::Asset { scope, name, key } = t {
                    if let Some(content) =
                        assets.get(&(scope, name)).and_then(|a| a.files.get(&key))
                    {
                        mounted.push((i, content.clone()));
                    }
                }
            }
        }
    }
    let mounted_refs: Vec<(usize, &str)> = mounted.iter().map(|(i, c)| (*i, c.as_str())).collect();
    // Before the split: it also refuses a `failover` block in a sentinel sibling.
    for p in macro_::validate_failover(spec)
        .into_iter()
        .chain(macro_::cluster::validate_cluster(spec))
        .chain(macro_::validate_proxy(spec))
        .chain(macro_::validate_backup(spec))
        .chain(macro_::tls::validate_tls(spec))
    {
        out.push(problem(&r.id, &p.field, p.message, Some(p.help)));
    }
    if vd_core::redis::topology::is_sentinel(spec) {
        let overrides: Vec<(usize, &str)> = mounted_refs
            .iter()
            .filter(|(i, _)| macro_::is_sentinel_override_target(&spec.volumes[*i].target))
            .copied()
            .collect();
        for p in macro_::validate_sentinel_overrides(&overrides) {
            out.push(problem(&r.id, &p.field, p.message, Some(p.help)));
        }
        out.extend(validate_monitor(r, spec, applied, stored));
        return out;
    }
    for p in macro_::validate(spec, &mounted_refs) {
        out.push(problem(&r.id, &p.field, p.message, Some(p.help)));
    }
    if vd_core::redis::topology::automatic_failover(spec) {
        // Sentinel siblings watching this redis once the apply is done: the stored ones it
        // does not replace, and its own (`sentinel::validate_monitor` covers a new sibling of a
        // stored redis).
        let after = stored
            .redis
            .values()
            .filter(|s| !applied.iter().any(|a| a.id == s.id))
            .cloned()
            .chain(applied.iter().cloned());
        for s in after {
            if spec_of(&s)
                .and_then(vd_core::redis::topology::monitor_of)
                .as_ref()
                == Some(&r.id)
            {
                let p = macro_::two_failure_detectors("failover", &r.id, &s.id);
                out.push(problem(&r.id, &p.field, p.message, Some(p.help)));
            }
        }
    }
    if let Some(p) = stored
        .redis
        .get(&r.id)
        .and_then(|s| cluster_change(spec_of(s), spec))
    {
        out.push(problem(&r.id, &p.0, p.1, Some(p.2)));
    }
    if let Some(p) = stored
        .redis
        .get(&r.id)
        .and_then(spec_of)
        .and_then(|before| macro_::tls::validate_tls_change(before, spec))
    {
        out.push(problem(&r.id, &p.field, p.message, Some(p.help)));
    }
    if stored.redis.contains_key(&r.id) && spec.cluster.is_none() {
        let m = stored.masters.get(&r.id).copied().unwrap_or(0);
        if let Err(p) = macro_::check_scale(spec.replicas.unwrap_or(1), m) {
            out.push(problem(&r.id, &p.field, p.message, Some(p.help)));
        }
    }
    out
}

/// A change to a stored redis's cluster mode that a running redis cannot take: turning it on
/// or off (the data layout differs: one keyspace against 16384 slots). As (field, message,
/// help).
fn cluster_change(
    stored: Option<&RedisSpec>,
    spec: &RedisSpec,
) -> Option<(String, String, String)> {
    let before = stored?.cluster;
    match (before, spec.cluster) {
        (None, None) => None,
        // Shards and replicas change on a running cluster: the manager moves slots.
        (Some(_), Some(_)) => None,
        (None, Some(_)) => Some((
            "cluster".into(),
            "a running redis cannot be turned into a cluster".into(),
            "a cluster keeps its keys in 16384 slots across shards: apply the cluster as a new \
             redis and copy the data in with `vd redis:import`, or remove the `cluster` block"
                .into(),
        )),
        (Some(_), None) => Some((
            "cluster".into(),
            "a running cluster cannot be turned back into a single-master redis".into(),
            "keep the `cluster` block, or delete this redis (`vd delete`) and apply it anew".into(),
        )),
    }
}

/// Apply-time checks of a sentinel sibling against the other resources (the manifest parser
/// checks the block itself; these hold for API clients too).
pub fn validate_monitor(
    res: &Resource,
    spec: &RedisSpec,
    applied: &[Resource],
    stored: &Stored,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let raw = spec
        .sentinel
        .as_ref()
        .and_then(|s| s.monitor.clone())
        .unwrap_or_default();
    let Some(target) = vd_core::redis::topology::monitor_of(spec) else {
        out.push(problem(
            &res.id,
            "sentinel.monitor",
            format!("`sentinel.monitor` must be \"scope/name\", found {raw:?}"),
            Some(format!(
                "name the data redis this sentinel watches, e.g. monitor = \"{}/cache\"",
                res.id.scope
            )),
        ));
        return out;
    };
    if target.scope != res.id.scope {
        out.push(problem(
            &res.id,
            "sentinel.monitor",
            format!(
                "`sentinel.monitor` names {} in scope `{}`; a sentinel watches a redis of its own scope `{}`",
                target, target.scope, res.id.scope
            ),
            Some("declare a sentinel sibling in that redis's scope instead".into()),
        ));
        return out;
    }
    if target == res.id {
        out.push(problem(
            &res.id,
            "sentinel.monitor",
            "a sentinel cannot watch itself".into(),
            Some("monitor the data redis, e.g. `monitor = \"scope/cache\"`".into()),
        ));
        return out;
    }
    if let Some(n) = spec.replicas.filter(|n| *n == 2) {
        out.push(problem(
            &res.id,
            "replicas",
            format!(
                "{n} sentinels need {} votes to fail over (quorum floor(N/2)+1), so losing either one stops failover: strictly worse than 1",
                macro_::quorum(n)
            ),
            Some("use replicas = 3 (or more) for HA, or 1 for an observer".into()),
        ));
    }
    // Everything this apply leaves in place: its resources over the stored ones.
    let mut all: BTreeMap<ResourceRef, Resource> = stored.redis.clone();
    for a in applied {
        all.insert(a.id.clone(), a.clone());
    }
    match all.get(&target).and_then(spec_of) {
        None => out.push(problem(
            &res.id,
            "sentinel.monitor",
            format!("{target} does not exist"),
            Some(format!(
                "declare `redis \"{}\" \"{}\" {{}}` in this manifest or apply it first",
                target.scope, target.name
            )),
        )),
        Some(t) if vd_core::redis::topology::is_sentinel(t) => out.push(problem(
            &res.id,
            "sentinel.monitor",
            format!("{target} is itself a sentinel sibling"),
            Some("monitor the data redis the sentinels should fail over".into()),
        )),
        Some(t) if macro_::cluster::is_cluster(t) => out.push(problem(
            &res.id,
            "sentinel.monitor",
            format!("{target} is a Redis Cluster, which sentinels cannot watch"),
            Some(
                "a cluster's shards fail over among its own nodes, driven by vd's controller; \
                 delete this sentinel sibling"
                    .into(),
            ),
        )),
        // In the same apply the data redis reports it (`redis::validate`), so it is said once.
        Some(t)
            if vd_core::redis::topology::automatic_failover(t)
                && !applied.iter().any(|a| a.id == target) =>
        {
            let p = macro_::two_failure_detectors("sentinel.monitor", &target, &res.id);
            out.push(problem(&res.id, &p.field, p.message, Some(p.help)));
        }
        Some(t) => {
            if let Some(p) = macro_::tls::validate_monitored_tls(t, spec) {
                out.push(problem(&res.id, &p.field, p.message, Some(p.help)));
            }
        }
    }
    for (id, other) in &all {
        if id == &res.id {
            continue;
        }
        if spec_of(other).and_then(vd_core::redis::topology::monitor_of) == Some(target.clone()) {
            out.push(problem(
                &res.id,
                "sentinel.monitor",
                format!("{target} is already watched by the sentinel sibling {id}"),
                Some(
                    "two sentinel groups would each fail the master over on their own; keep one"
                        .into(),
                ),
            ));
        }
    }
    out
}
