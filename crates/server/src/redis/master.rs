//! The one way to record a new master, whoever moved it (a planned switchover, the
//! controller's failover, the sentinels): the proxies' feed first (they move new commands
//! within milliseconds), then `REDIS_MASTER_ORDINAL` in the redis's bucket (with `--no-restart`
//! semantics: running pods stay as they are, a restarted pod boots as what it now is), then
//! every linked consumer, then the metric and the event.

use crate::error::ServerError;
use crate::redis::facts::{master_ordinal, MASTER_ORDINAL};
use crate::redis::link::rewrite_consumers;
use crate::redis::ops::Ops;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use vd_core::event::{Level, Reason};
use vd_core::ResourceRef;

/// Who moved the master, which decides the event and the metric.
#[derive(Debug, Clone)]
pub enum Cause {
    /// A planned switchover on a redis without sentinels: writes were paused this long.
    Switchover {
        /// How long writes were held.
        write_pause: Duration,
        /// Who asked for it.
        by: Planned,
    },
    /// The controller's automatic failover; `started` is when the fault was first seen.
    ControllerFailover {
        /// When the fault was first seen (the metric measures from here).
        started: Instant,
    },
    /// The sentinels moved it; seen after the fact, so no duration.
    Sentinels {
        /// How the follower learned of it (`+switch-master`, a poll, `vd redis:failover`).
        how: String,
    },
}

/// Who asked for a planned master move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planned {
    /// A person, with `vd redis:failover`.
    Request,
    /// A rollout, moving the master off a pod it is about to replace.
    Rollout,
}

/// When each step of [`record`] was done.
#[derive(Debug, Clone, Copy)]
pub struct Recorded {
    /// The proxies' feed names the new master.
    pub feed: Instant,
    /// `REDIS_MASTER_ORDINAL` is stored.
    pub bucket: Instant,
    /// Every consumer's link env is rewritten.
    pub consumers: Instant,
}

/// A master change to record.
#[derive(Debug, Clone)]
pub struct NewMaster<'a> {
    /// The data redis.
    pub redis: &'a ResourceRef,
    /// The master before.
    pub from: u32,
    /// The master now.
    pub to: u32,
    /// Who moved it.
    pub cause: Cause,
    /// Rewrite consumers without rolling them (their new env applies on their next restart).
    pub no_restart_consumers: bool,
}

/// Records `new` (feed, bucket, consumers, metric); `describe` writes the event's message from
/// the step times. Every step is idempotent, so a caller that dies half-way may record again.
pub fn record(
    ops: &Ops,
    new: &NewMaster<'_>,
    describe: impl FnOnce(&Recorded) -> String,
) -> Result<Recorded, ServerError> {
    let ctl = &ops.ctl;
    let id = new.redis;
    if let Err(e) = crate::redis::feed::publish(ctl, id, new.to, false) {
        // The next rescan rewrites a feed that drifted; the bucket below is what counts.
        tracing::warn!(redis = %id, error = %e, "proxy feed after a master change");
    }
    let feed = Instant::now();
    let set = BTreeMap::from([(MASTER_ORDINAL.to_string(), new.to.to_string())]);
    ctl.update_config(&id.scope, Some(&id.name), &set, &[], true)?;
    let bucket = Instant::now();
    rewrite_consumers(ctl, id, new.no_restart_consumers)?;
    let consumers = Instant::now();
    let times = Recorded {
        feed,
        bucket,
        consumers,
    };
    let message = describe(&times);
    let reason = match &new.cause {
        Cause::Switchover { write_pause, by } => {
            let (label, reason) = match by {
                Planned::Request => ("manual", Reason::Failover),
                Planned::Rollout => ("rollout", Reason::Handover),
            };
            ops.metrics.failover(id, label, write_pause.as_secs_f64());
            reason
        }
        Cause::ControllerFailover { started } => {
            ops.metrics.failover(
                id,
                "controller",
                consumers.duration_since(*started).as_secs_f64(),
            );
            Reason::Failover
        }
        Cause::Sentinels { .. } => {
            ops.metrics.switch_observed(id, "sentinel");
            Reason::MasterSwitched
        }
    };
    ctl.event(Level::Info, Some(id), None, reason, &message);
    Ok(times)
}

/// Records a master the sentinels moved to, unless the bucket already names it; `Ok(false)`
/// when there was nothing to record.
pub fn follow_sentinels(
    ops: &Ops,
    data: &ResourceRef,
    to: u32,
    how: &str,
    no_restart_consumers: bool,
) -> Result<bool, ServerError> {
    let _one_at_a_time = ops
        .failover
        .recording
        .lock()
        .map_err(crate::orchestration::controller::lock_err)?;
    let from = master_ordinal(&ops.ctl, data)?;
    if from == to {
        return Ok(false);
    }
    let n = &data.name;
    record(
        ops,
        &NewMaster {
            redis: data,
            from,
            to,
            cause: Cause::Sentinels { how: how.into() },
            no_restart_consumers,
        },
        |_| format!("sentinels moved the master {n}-{from} -> {n}-{to} ({how})"),
    )?;
    Ok(true)
}
