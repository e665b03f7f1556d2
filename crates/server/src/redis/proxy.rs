//! The data redis's proxy: the `statefulset/<scope>/<name>-proxy` the server derives from a
//! `proxy {}` block at apply, and its removal with the block. Where the proxies point is
//! [`crate::redis::feed`].

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::redis::facts::{marker, proxy_ref};
use vd_core::event::{Level, Reason};
use vd_core::redis::proxy::{self as core, ProxyFor};
use vd_core::{Resource, ResourceRef, Spec};

/// The proxies an apply adds: one statefulset per data redis with an enabled proxy block
/// (with what it must know of the redis and of a sentinel sibling watching it). A stored
/// statefulset of that name the server did not derive is a conflict, as a hand-written one
/// in the same apply is (declared twice).
pub fn derive(ctl: &Controller, applied: &[Resource]) -> Result<Vec<Resource>, ServerError> {
    let mut out = Vec::new();
    for r in applied {
        let Some(spec) = crate::redis::facts::spec_of(r) else {
            continue;
        };
        if vd_core::redis::topology::is_sentinel(spec) {
            continue;
        }
        let sentinels = applied
            .iter()
            .filter_map(|a| {
                let s = crate::redis::facts::spec_of(a)?;
                (vd_core::redis::topology::monitor_of(s).as_ref() == Some(&r.id))
                    .then(|| (a.id.clone(), s.clone()))
            })
            .next()
            .map_or_else(
                || crate::redis::facts::watcher_of(ctl, &r.id),
                |w| Ok(Some(w)),
            )?
            .map(|(sid, s)| {
                let n = s
                    .replicas
                    .unwrap_or(vd_core::redis::SENTINEL_DEFAULT_REPLICAS);
                (sid.name, n)
            });
        let of = ProxyFor {
            data: r.id.clone(),
            upstreams: spec.replicas.unwrap_or(1),
            sentinels,
        };
        let Some((id, w)) = core::derive(spec, &of) else {
            continue;
        };
        if ctl.store.get(&id)?.is_some() && ctl.store.meta(&marker(&id))?.is_none() {
            return Err(ServerError::Conflict {
                message: format!(
                    "{id} already exists and was not made by {}'s proxy block",
                    r.id
                ),
                help: Some(format!("delete {id} or rename it, then apply again")),
            });
        }
        out.push(Resource {
            id,
            spec: Spec::Workload(w),
        });
    }
    Ok(out)
}

/// Records the derived proxies as the server's, and deletes those whose redis no longer has
/// an enabled proxy block (stored after the apply).
pub fn settle(
    ctl: &Controller,
    applied: &[Resource],
    derived: &[Resource],
) -> Result<(), ServerError> {
    for d in derived {
        ctl.store
            .set_meta(&marker(&d.id), vd_store::DERIVED_MARKER)?;
    }
    // The feed directory is bind-mounted into the proxy pods: it must exist before they start.
    for r in applied {
        crate::redis::feed::refresh(ctl, &r.id)?;
    }
    for r in applied {
        if crate::redis::facts::spec_of(r).is_none() {
            continue;
        }
        let id = proxy_ref(&r.id);
        if derived.iter().any(|d| d.id == id) {
            continue;
        }
        remove(ctl, &r.id)?;
    }
    Ok(())
}

/// Deletes `data`'s derived proxy, if any (its pods stop; it has no volumes), and points the
/// consumers it served back at the redis.
pub fn remove(ctl: &Controller, data: &ResourceRef) -> Result<(), ServerError> {
    let id = proxy_ref(data);
    if ctl.store.meta(&marker(&id))?.is_none() {
        return Ok(());
    }
    if ctl.store.get(&id)?.is_some() {
        ctl.store.delete(&id)?;
        ctl.event(
            Level::Info,
            Some(&id),
            None,
            Reason::Deleted,
            &format!("{data} has no proxy block any more"),
        );
    }
    ctl.store.delete_meta(&marker(&id))?;
    // Default links named the proxy: they go back to the pods' names.
    if ctl.store.get(data)?.is_some() {
        crate::redis::link::rewrite_consumers(ctl, data, false)?;
    }
    ctl.notify();
    Ok(())
}
