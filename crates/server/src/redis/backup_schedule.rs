//! Scheduled backups: `backup { schedule keep destination source }` in a data redis. One task
//! for the server's lifetime checks every redis with the block each tick, asks the pure
//! [`vd_core::schedule::due`] whether a slot has come, takes the backup with the same code as
//! `vd redis:backup`, then removes that redis's backups beyond `keep` at the destination.
//!
//! The slot a run is for is written to the store (`backup-slot:<redis>`) before the run
//! starts: a restarted server neither runs a slot twice nor makes up every slot it missed
//! (one run covers them). A redis seen for the first time starts from "now", so adding the
//! block does not trigger a run for a slot that passed before it existed. A failed run is
//! recorded (event `BackupFailed`, metric) and the next slot runs as usual.

use crate::orchestration::controller::Controller;
use crate::redis::backup::{self, BackupRequest};
use crate::redis::backup_names;
use crate::redis::ops::Ops;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vd_core::event::{Level, Reason};
use vd_core::schedule::{due, Due, Schedule};
use vd_core::{BackupSpec, Kind, ResourceRef, Spec};
use vd_store::{MetaKey, StoreError};

/// How often the schedules are checked; slots are whole minutes.
const TICK: Duration = Duration::from_secs(1);

/// Tests only: `VD_TEST_SCHEDULE_SPEEDUP=N` makes the scheduler's clock run N times faster
/// than the real one (from the server's start), so a test sees "* * * * *" fire every 60/N
/// seconds with the real cron evaluation.
const SPEEDUP_VAR: &str = "VD_TEST_SCHEDULE_SPEEDUP";

fn slot_key(id: &ResourceRef) -> MetaKey {
    MetaKey::BackupSlot(id.clone())
}

/// The scheduler's clock: unix seconds, sped up in tests.
struct Clock {
    start_unix: f64,
    start: Instant,
    speedup: f64,
}

impl Clock {
    fn from_env() -> Clock {
        let speedup = std::env::var(SPEEDUP_VAR)
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| *s >= 1.0)
            .unwrap_or(1.0);
        if speedup > 1.0 {
            tracing::warn!(
                speedup,
                "{SPEEDUP_VAR} is set: backup schedules run faster than the clock"
            );
        }
        let start_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Clock {
            start_unix,
            start: Instant::now(),
            speedup,
        }
    }

    fn now(&self) -> i64 {
        (self.start_unix + self.start.elapsed().as_secs_f64() * self.speedup) as i64
    }
}

/// The data redis resources with a backup block whose schedule parses (it was validated at
/// apply; one that does not parse any more is skipped rather than guessed at).
fn scheduled(ctl: &Controller) -> Vec<(ResourceRef, BackupSpec, Schedule, bool)> {
    let resources = match ctl.store.list(Some(Kind::Redis)) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "backup schedules: cannot list redis resources");
            return Vec::new();
        }
    };
    resources
        .into_iter()
        .filter_map(|r| {
            let Spec::Redis(spec) = r.resource.spec else {
                return None;
            };
            if vd_core::redis::topology::is_sentinel(&spec) {
                return None;
            }
            let cluster = vd_core::redis::cluster::is_cluster(&spec);
            let b = spec.backup?;
            let schedule = Schedule::parse(&b.schedule).ok()?;
            Some((r.resource.id, b, schedule, cluster))
        })
        .collect()
}

/// Runs for the server's lifetime.
pub async fn run(ops: Arc<Ops>) {
    let ctl = ops.ctl.clone();
    let clock = Clock::from_env();
    let mut running: HashMap<ResourceRef, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut known: HashSet<ResourceRef> = HashSet::new();
    loop {
        if ctl.stopping.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let now = clock.now();
        let wanted = scheduled(&ctl);
        let ids: HashSet<ResourceRef> = wanted.iter().map(|(id, ..)| id.clone()).collect();
        // A block removed while this server runs: forget its slot, so adding it back starts
        // from then rather than running for the slots in between.
        for gone in known.difference(&ids) {
            if let Err(e) = ctl.store.delete_meta(&slot_key(gone)) {
                tracing::warn!(redis = %gone, error = %e, "backup schedule");
            }
        }
        known = ids;
        running.retain(|_, t| !t.is_finished());
        for (id, spec, schedule, cluster) in wanted {
            if let Err(e) = tick(&ops, &id, &spec, &schedule, cluster, now, &mut running) {
                tracing::warn!(redis = %id, error = %e, "backup schedule");
                ops.metrics.controller_error("backup");
            }
        }
        tokio::time::sleep(TICK).await;
    }
}

/// One redis, one tick.
fn tick(
    ops: &Arc<Ops>,
    id: &ResourceRef,
    spec: &BackupSpec,
    schedule: &Schedule,
    cluster: bool,
    now: i64,
    running: &mut HashMap<ResourceRef, tokio::task::JoinHandle<()>>,
) -> Result<(), crate::error::ServerError> {
    let ctl = &ops.ctl;
    let key = slot_key(id);
    // An unreadable slot starts over from now, like a redis seen for the first time.
    let last = match ctl.store.meta_parsed::<i64>(&key) {
        Err(StoreError::CorruptMeta { message, .. }) => {
            tracing::warn!(redis = %id, %message, "unreadable backup slot; starting from now");
            None
        }
        other => other?,
    };
    let Some(last) = last else {
        ctl.store.set_meta(&key, &now.to_string())?;
        return Ok(());
    };
    let Due::Now(slot) = due(schedule, Some(last), now, now) else {
        return Ok(());
    };
    // Stored first: a server killed during the run does not take this slot again.
    ctl.store.set_meta(&key, &slot.to_string())?;
    let at = backup::iso(slot);
    if running.contains_key(id) {
        ops.metrics.scheduled_backup(id, false);
        ctl.event(
            Level::Warning,
            Some(id),
            None,
            Reason::BackupFailed,
            &format!("scheduled backup for {at} skipped: the previous one is still running (the schedule may be too frequent for the data size)"));
        return Ok(());
    }
    let task = tokio::spawn(run_once(ops.clone(), id.clone(), spec.clone(), cluster, at));
    running.insert(id.clone(), task);
    Ok(())
}

/// Takes one scheduled backup, then prunes; records the outcome.
async fn run_once(ops: Arc<Ops>, id: ResourceRef, spec: BackupSpec, cluster: bool, at: String) {
    let ctl = &ops.ctl;
    let req = BackupRequest {
        destination: spec.destination.clone(),
        source: spec.source,
    };
    let taken = if cluster {
        crate::redis::cluster_backup::backup(ctl, &id, &req, true).await
    } else {
        backup::take(ctl, &id.scope, &id.name, &req, true).await
    };
    match taken {
        Ok(_) => ops.metrics.scheduled_backup(&id, true),
        Err(e) => {
            ops.metrics.scheduled_backup(&id, false);
            let help = match &e {
                crate::error::ServerError::Conflict { help: Some(h), .. } => format!(" ({h})"),
                _ => String::new(),
            };
            ctl.event(
                Level::Warning,
                Some(&id),
                None,
                Reason::BackupFailed,
                &format!("scheduled backup for {at} failed: {e}{help}"),
            );
            // Nothing new was written: pruning now could only remove good backups.
            return;
        }
    }
    match prune(ctl, &id, spec.destination.as_deref(), spec.keep).await {
        Ok(removed) if removed.is_empty() => {}
        Ok(removed) => ctl.event(
            Level::Info,
            Some(&id),
            None,
            Reason::BackupsPruned,
            &format!(
                "removed {} backup(s) beyond keep = {}: {}",
                removed.len(),
                spec.keep,
                removed.join(", ")
            ),
        ),
        Err(e) => ctl.event(
            Level::Warning,
            Some(&id),
            None,
            Reason::BackupPruneFailed,
            &format!("could not remove backups beyond keep = {}: {e}", spec.keep),
        ),
    }
}

/// Removes the oldest backups of `id` at `destination` (default directory when `None`) beyond
/// the newest `keep`, a cluster backup with its shard files; returns the backups removed.
/// Only files named as `id`'s backups count.
async fn prune(
    ctl: &Controller,
    id: &ResourceRef,
    destination: Option<&str>,
    keep: u32,
) -> Result<Vec<String>, crate::error::ServerError> {
    match backup::target(ctl, id, destination)? {
        backup::Target::Local(dir) => {
            let names: Vec<String> = std::fs::read_dir(&dir)
                .and_then(|rd| {
                    rd.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                        .collect()
                })
                .map_err(|e| crate::error::ServerError::io(format!("list {}", dir.display()), e))?;
            let doomed = backup_names::to_remove(id, &names, keep);
            for f in &doomed.files {
                let path = dir.join(f);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(crate::error::ServerError::io(
                            format!("remove {}", path.display()),
                            e,
                        ))
                    }
                }
            }
            Ok(doomed.backups)
        }
        #[cfg(feature = "s3")]
        backup::Target::S3 { store, .. } => {
            let names: Vec<String> = store.list().await?.into_iter().map(|(n, _)| n).collect();
            let doomed = backup_names::to_remove(id, &names, keep);
            for f in &doomed.files {
                store.delete(f).await?;
            }
            Ok(doomed.backups)
        }
    }
}
