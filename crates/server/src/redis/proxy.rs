//! The data redis's proxy (issue 7): the `statefulset/<scope>/<name>-proxy` the server derives
//! from a `proxy {}` block at apply, and the feed that tells its pods where the master is the
//! moment the controller knows (after a promotion, before anything else) and asks them to hold
//! commands during a planned failover.

use crate::controller::Controller;
use crate::error::ServerError;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vd_core::redis::proxy::{self as core, ProxyFor};
use vd_core::{Kind, Resource, ResourceRef, Spec};
use vd_proxy::feed::{self, Feed};

/// How long a planned failover waits for every proxy to hold.
const HOLD_WAIT: Duration = Duration::from_secs(1);

/// The derived proxy's id for a data redis.
pub fn proxy_ref(data: &ResourceRef) -> ResourceRef {
    ResourceRef::new(Kind::Statefulset, &data.scope, core::proxy_name(&data.name))
}

fn marker(id: &ResourceRef) -> String {
    format!("proxy-derived:{id}")
}

/// The data redis a derived proxy statefulset fronts (from its spec).
pub fn fronted(r: &Resource) -> Option<ResourceRef> {
    let Spec::Workload(w) = &r.spec else {
        return None;
    };
    let is_proxy = r.id.kind == Kind::Statefulset
        && w.command.first().map(String::as_str) == Some(core::PROXY_EXE_PATH)
        && w.command.get(1).map(String::as_str) == Some("proxy");
    let (scope, name) = w.env_from.first()?.split_once('/')?;
    (is_proxy && core::proxy_name(name) == r.id.name)
        .then(|| ResourceRef::new(Kind::Redis, scope, name))
}

/// Whether `data` has a proxy the server derived.
pub fn has_proxy(ctl: &Controller, data: &ResourceRef) -> Result<bool, ServerError> {
    let id = proxy_ref(data);
    Ok(ctl.store.meta_get(&marker(&id))?.is_some() && ctl.store.get(&id)?.is_some())
}

/// The proxies an apply adds: one statefulset per data redis with an enabled proxy block
/// (with what it must know of the redis and of a sentinel sibling watching it). A stored
/// statefulset of that name the server did not derive is a conflict, as a hand-written one
/// in the same apply is (declared twice).
pub fn derive(ctl: &Controller, applied: &[Resource]) -> Result<Vec<Resource>, ServerError> {
    let mut out = Vec::new();
    for r in applied {
        let Some(spec) = crate::redis::spec_of(r) else {
            continue;
        };
        if crate::workloads::is_sentinel(spec) {
            continue;
        }
        let sentinels = applied
            .iter()
            .filter_map(|a| {
                let s = crate::redis::spec_of(a)?;
                (crate::workloads::monitor_of(s).as_ref() == Some(&r.id))
                    .then(|| (a.id.clone(), s.clone()))
            })
            .next()
            .map_or_else(|| crate::sentinel::watcher_of(ctl, &r.id), |w| Ok(Some(w)))?
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
        if ctl.store.get(&id)?.is_some() && ctl.store.meta_get(&marker(&id))?.is_none() {
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
        ctl.store.meta_set(&marker(&d.id), "1")?;
    }
    // The feed directory is bind-mounted into the proxy pods: it must exist before they start.
    for r in applied {
        refresh(ctl, &r.id)?;
    }
    for r in applied {
        if crate::redis::spec_of(r).is_none() {
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
    if ctl.store.meta_get(&marker(&id))?.is_none() {
        return Ok(());
    }
    if ctl.store.get(&id)?.is_some() {
        ctl.store.delete(&id)?;
        ctl.event(
            "info",
            Some(&id),
            None,
            "Deleted",
            &format!("{data} has no proxy block any more"),
        );
    }
    ctl.store.meta_delete(&marker(&id))?;
    // Default links named the proxy: they go back to the pods' names.
    if ctl.store.get(data)?.is_some() {
        crate::redis::rewrite_consumers(ctl, data, false)?;
    }
    ctl.notify();
    Ok(())
}

/// The host directory bind-mounted into `data`'s proxy pods.
pub fn feed_dir(ctl: &Controller, data: &ResourceRef) -> PathBuf {
    ctl.root
        .join("run")
        .join(core::feed_subdir(&data.scope, &data.name))
}

/// Tells `data`'s proxies the master (`hold`: and to hold commands). Returns the epoch.
/// Without a proxy, nothing.
pub fn publish(
    ctl: &Controller,
    data: &ResourceRef,
    master: u32,
    hold: bool,
) -> Result<Option<u64>, ServerError> {
    if !has_proxy(ctl, data)? {
        return Ok(None);
    }
    let dir = feed_dir(ctl, data);
    let last = feed::read(&dir.join(feed::FILE)).unwrap_or_default();
    let next = Feed {
        epoch: last.epoch + 1,
        master: Some(core::upstream(data, master)),
        hold,
    };
    feed::write(&dir, &next).map_err(|e| ServerError::Io {
        context: "write the proxy feed".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    tracing::info!(redis = %data, master, hold, epoch = next.epoch, "proxy feed");
    Ok(Some(next.epoch))
}

/// Keeps the feed true to the stored master (a new proxy, a restarted controller), unless a
/// hold is in progress.
pub fn refresh(ctl: &Controller, data: &ResourceRef) -> Result<(), ServerError> {
    if !has_proxy(ctl, data)? {
        return Ok(());
    }
    let m = crate::redis::master_ordinal(ctl, data)?;
    let now = feed::read(&feed_dir(ctl, data).join(feed::FILE));
    let want = Some(core::upstream(data, m));
    match now {
        Some(f) if f.master == want && !f.hold => Ok(()),
        Some(f) if f.hold => Ok(()),
        _ => publish(ctl, data, m, false).map(drop),
    }
}

/// Before a planned failover: asks the proxies to hold, and waits (at most [`HOLD_WAIT`]) until
/// every running proxy pod has nothing in flight, so no command reaches the old master
/// after writes are paused. Proxies that do not answer in time only cost their clients a
/// retried command.
pub async fn hold(ctl: &Controller, data: &ResourceRef, master: u32) -> Result<(), ServerError> {
    let Some(epoch) = publish(ctl, data, master, true)? else {
        return Ok(());
    };
    let dir = feed_dir(ctl, data);
    let pods = ctl
        .workload_status(&proxy_ref(data))
        .map(|s| s.ready)
        .unwrap_or(0);
    let start = Instant::now();
    while start.elapsed() < HOLD_WAIT {
        let held = (0..pods)
            .filter(|o| feed::read_held(&dir, &o.to_string()) == Some(epoch))
            .count() as u32;
        if held >= pods {
            tracing::info!(redis = %data, proxies = pods, waited_ms = start.elapsed().as_millis() as u64, "proxies hold");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tracing::warn!(redis = %data, "not every proxy confirmed the hold in time");
    Ok(())
}
