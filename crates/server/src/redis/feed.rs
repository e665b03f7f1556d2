//! The feed that tells a data redis's proxies where the master is the moment the controller
//! knows (after a promotion, before anything else), and asks them to hold commands during a
//! planned failover.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::redis::facts::{
    has_proxy, master_ordinal, password, proxy_ref, sentinel_password, watcher_of,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vd_core::redis::proxy as core;
use vd_core::ResourceRef;
use vd_proxy::feed::{self, Feed};

/// How long a planned failover waits for every proxy to hold.
const HOLD_WAIT: Duration = Duration::from_secs(1);

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

/// Writes the passwords `data`'s proxies use themselves (the data password for their `ROLE`
/// checks and, with a sentinel sibling, the sentinels') beside the feed, where a proxy reads
/// them at every new connection: a rotation reaches running proxies without a restart. Only
/// written when they changed. Without a proxy, nothing.
pub fn publish_secrets(ctl: &Controller, data: &ResourceRef) -> Result<(), ServerError> {
    if !has_proxy(ctl, data)? {
        return Ok(());
    }
    let sentinel_password = match watcher_of(ctl, data)? {
        Some((sid, _)) => sentinel_password(ctl, &sid)?,
        None => None,
    };
    let want = feed::Secrets {
        password: password(ctl, data).ok(),
        sentinel_password,
    };
    let dir = feed_dir(ctl, data);
    if feed::read_secrets(&dir.join(feed::SECRETS_FILE)).as_ref() == Some(&want) {
        return Ok(());
    }
    feed::write_secrets(&dir, &want).map_err(|e| ServerError::Io {
        context: "write the proxy's secrets".into(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Keeps the feed true to the stored master (a new proxy, a restarted controller), unless a
/// hold is in progress, and the proxies' secrets true to the buckets.
pub fn refresh(ctl: &Controller, data: &ResourceRef) -> Result<(), ServerError> {
    if !has_proxy(ctl, data)? {
        return Ok(());
    }
    publish_secrets(ctl, data)?;
    let m = master_ordinal(ctl, data)?;
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
