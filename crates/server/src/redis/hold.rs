//! The restart hold both HA modes share: a crashed master waits, before it starts again, for
//! a replica to be promoted, so it boots as a replica instead of as a master with stale (or,
//! without persistence, no) data that the replicas would copy.

use crate::orchestration::controller::Controller;
use std::time::{Duration, Instant};
use vd_core::event::{Level, Reason};
use vd_core::ResourceRef;

/// What a held master waits for, asked every 50 ms.
pub enum Release {
    /// Keep waiting.
    Wait,
    /// A replica took over: start (as a replica).
    Promoted,
    /// No failover will come: start as it was, saying why.
    GiveUp(&'static str),
}

/// The restart hold both HA modes share: records why the pod waits, waits at most `limit`
/// for `release`, and records it when the master restarts without a failover.
pub async fn hold_master(
    ctl: &Controller,
    owner: &ResourceRef,
    ordinal: u32,
    limit: Duration,
    waiting: &str,
    release: impl Fn(&Controller) -> Release,
) {
    let pod = vd_core::naming::pod_name(owner, ordinal);
    ctl.event(
        Level::Info,
        Some(owner),
        Some(&pod),
        Reason::WaitingForFailover,
        waiting,
    );
    let deadline = Instant::now() + limit;
    let why = loop {
        match release(ctl) {
            Release::Promoted => return,
            Release::GiveUp(why) => break why.to_string(),
            Release::Wait if Instant::now() >= deadline => {
                break format!("no failover within {} s", limit.as_secs())
            }
            Release::Wait => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    ctl.event(
        Level::Warning,
        Some(owner),
        Some(&pod),
        Reason::NoFailover,
        &format!("{why}; restarting the master as it was"),
    );
}
