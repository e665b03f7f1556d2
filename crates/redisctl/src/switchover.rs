//! A planned, live master switchover that loses no acknowledged write and restarts nothing.
//!
//! Writes are paused on the master (`CLIENT PAUSE WRITE`: reads and replication go on), the
//! target replica is given time to reach the master's offset, then it is promoted and the old
//! master re-pointed *before* writes are released, so no write can land on the old master
//! after the target took over. If the target does not catch up in time nothing is changed.

use crate::conn::RedisError;
use crate::info::Role;
use crate::node::Node;
use std::time::{Duration, Instant};

/// What a switchover did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// How long writes were held on the old master.
    pub write_pause: Duration,
    /// The offset the target reached before promotion.
    pub offset: i64,
}

/// Switches the master role from `master` to `target`; `target_host` is the name the other
/// nodes use to reach the target (its pod name), `others` are re-pointed to it afterwards.
pub async fn switchover(
    master: &mut Node,
    target: &mut Node,
    others: &mut [Node],
    target_host: &str,
    port: u16,
    catch_up: Duration,
) -> Result<Report, RedisError> {
    let r = target.replication().await?;
    if r.role != Role::Replica || !r.link_up {
        return Err(RedisError::State(format!(
            "{} is not a connected replica (role {:?}, link {}); nothing changed",
            target.addr(),
            r.role,
            if r.link_up { "up" } else { "down" }
        )));
    }
    let m = master.replication().await?;
    if m.role != Role::Master {
        return Err(RedisError::State(format!(
            "{} is not a master; nothing changed",
            master.addr()
        )));
    }

    // The pause outlives the catch-up wait so a slow step cannot release writes early; it is
    // lifted explicitly below.
    let pause_ms = (catch_up + Duration::from_secs(5)).as_millis() as u64;
    let paused = Instant::now();
    master.pause_writes(pause_ms).await?;
    let result = promote_when_caught_up(master, target, target_host, port, catch_up).await;
    let unpaused = master.unpause().await;
    let write_pause = paused.elapsed();
    let offset = result?;
    unpaused?;
    for o in others.iter_mut() {
        if let Err(e) = o.replicaof(target_host, port).await {
            tracing::warn!(node = o.addr(), error = %e, "could not re-point replica; the controller retries");
        }
    }
    Ok(Report {
        write_pause,
        offset,
    })
}

/// Readies `master` for a failover another party carries out (the sentinels): writes pause for
/// `pause` (`CLIENT PAUSE WRITE`) and every replica whose link is up is given `catch_up` to
/// reach the master's offset, so whichever is promoted has every write the master
/// acknowledged. The caller lifts the pause (`unpause`) once the master is demoted, so no write
/// lands on it in between; if `catch_up` passes, the pause is lifted and nothing else changed.
pub async fn drain_writes(
    master: &mut Node,
    replicas: &mut [Node],
    pause: Duration,
    catch_up: Duration,
) -> Result<i64, RedisError> {
    let m = master.replication().await?;
    if m.role != Role::Master {
        return Err(RedisError::State(format!(
            "{} is not a master; nothing changed",
            master.addr()
        )));
    }
    master.pause_writes(pause.as_millis() as u64).await?;
    let drained = async {
        let goal = master.replication().await?.master_repl_offset;
        let start = Instant::now();
        for r in replicas.iter_mut() {
            loop {
                let at = r.replication().await?;
                if !at.link_up || at.replica_repl_offset.unwrap_or(0) >= goal {
                    break;
                }
                if start.elapsed() > catch_up {
                    return Err(RedisError::Timeout(format!(
                        "{} did not catch up within {catch_up:?} (offset {} of {goal}); nothing changed",
                        r.addr(),
                        at.replica_repl_offset.unwrap_or(0)
                    )));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        Ok(goal)
    }
    .await;
    if drained.is_err() {
        let _ = master.unpause().await;
    }
    drained
}

async fn promote_when_caught_up(
    master: &mut Node,
    target: &mut Node,
    target_host: &str,
    port: u16,
    catch_up: Duration,
) -> Result<i64, RedisError> {
    let at = caught_up(master, target, catch_up)
        .await
        .map_err(|e| match e {
            RedisError::Timeout(m) => RedisError::Timeout(format!("{m}; nothing changed")),
            RedisError::State(m) => RedisError::State(format!("{m}; nothing changed")),
            e => e,
        })?;
    target.promote().await?;
    if let Err(e) = master.replicaof(target_host, port).await {
        // Never leave two masters: undo the promotion.
        let _ = target.replicaof_addr_of(master).await;
        return Err(e);
    }
    Ok(at)
}

/// Waits until `replica` has everything `master` had written when this was called (its
/// offset reached the master's), at most `within`; the offset it reached. A replica whose
/// link is down does not count as caught up: it is refused at once, it may be anywhere.
pub async fn caught_up(
    master: &mut Node,
    replica: &mut Node,
    within: Duration,
) -> Result<i64, RedisError> {
    let goal = master.replication().await?.master_repl_offset;
    let start = Instant::now();
    let mut at = 0;
    loop {
        let r = replica.replication().await?;
        if r.role != Role::Replica || !r.link_up {
            return Err(RedisError::State(format!(
                "{} is not a connected replica (role {:?}, link {})",
                replica.addr(),
                r.role,
                if r.link_up { "up" } else { "down" }
            )));
        }
        at = r.replica_repl_offset.unwrap_or(at);
        if at >= goal {
            return Ok(at);
        }
        if start.elapsed() > within {
            return Err(RedisError::Timeout(format!(
                "{} did not catch up within {within:?} (offset {at} of {goal})",
                replica.addr()
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

impl Node {
    /// Re-points this node at `other` by its address (rollback path only).
    async fn replicaof_addr_of(&mut self, other: &Node) -> Result<(), RedisError> {
        let (host, port) = other
            .addr()
            .rsplit_once(':')
            .unwrap_or((other.addr(), "6379"));
        let port: u16 = port.parse().unwrap_or(6379);
        let host = host.to_string();
        self.replicaof(&host, port).await
    }
}
