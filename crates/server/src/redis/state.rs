//! State the Redis side keeps in memory for the server's lifetime and shares between its
//! tasks: pod exits (a crashed master is known at once), redis resources whose failover is
//! stuck, and pauses of automatic failover while an operation moves a master on purpose.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::broadcast;
use vd_core::{Kind, ResourceRef};

/// What the supervisors and the failover tasks share through the controller.
pub struct FailoverState {
    /// Pod exits, as (owner, ordinal, when): a crashed master is known at once.
    pub(crate) exits: broadcast::Sender<(ResourceRef, u32, Instant)>,
    /// Redis resources whose master is lost with no replica to promote (a held master may
    /// then restart: it holds the only data there is).
    stuck: Mutex<HashSet<ResourceRef>>,
    /// Redis resources a planned switchover (`vd redis:failover`), a restore or an import is
    /// moving, with how many of them hold a pause: the planner would otherwise see the
    /// promoted replica beside the old master and demote it. A count, so the first operation
    /// to end does not lift the pause another still needs.
    paused: Arc<Mutex<HashMap<ResourceRef, usize>>>,
    /// Per redis, how many pauses ever started: an observation made while one started (and
    /// perhaps ended) may predate the master it moved, and is thrown away.
    pauses_started: Mutex<HashMap<ResourceRef, u64>>,
    /// Per cluster, what its manager last saw that pod supervisors and the rollout ask about.
    clusters: Mutex<HashMap<ResourceRef, ClusterFacts>>,
    /// Held while a master the sentinels moved to is compared with the stored one and
    /// recorded: the follower and a requested failover may both learn of the same move.
    pub(crate) recording: Mutex<()>,
}

/// What a cluster's manager last saw, for the restart hold and the scale-in gate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterFacts {
    /// Pods whose node serves slots and has a running replica: such a pod, once exited, waits
    /// for its replica to take over before it starts again.
    pub hold: BTreeSet<u32>,
    /// Pods whose node serves slots or is moving one: not removed until they no longer do.
    pub serving: BTreeSet<u32>,
}

/// Keeps the failover task of a redis idle while it lives.
pub struct Pause {
    id: ResourceRef,
    held: Arc<Mutex<HashMap<ResourceRef, usize>>>,
}

impl Drop for Pause {
    fn drop(&mut self) {
        if let Ok(mut m) = self.held.lock() {
            if let Some(n) = m.get_mut(&self.id) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&self.id);
                }
            }
        }
    }
}

impl Default for FailoverState {
    fn default() -> Self {
        FailoverState {
            exits: broadcast::channel(64).0,
            stuck: Mutex::new(HashSet::new()),
            paused: Arc::new(Mutex::new(HashMap::new())),
            pauses_started: Mutex::new(HashMap::new()),
            clusters: Mutex::new(HashMap::new()),
            recording: Mutex::new(()),
        }
    }
}

impl FailoverState {
    /// Called by a pod's supervisor when its process exits.
    pub fn pod_exited(&self, owner: &ResourceRef, ordinal: u32) {
        if owner.kind == Kind::Redis {
            // No receiver (no redis with automatic failover) is not an error.
            let _ = self.exits.send((owner.clone(), ordinal, Instant::now()));
        }
    }

    /// Idles the failover task of `id` until the returned guard is dropped.
    pub fn pause(&self, id: &ResourceRef) -> Pause {
        if let Ok(mut m) = self.paused.lock() {
            *m.entry(id.clone()).or_default() += 1;
        }
        if let Ok(mut m) = self.pauses_started.lock() {
            *m.entry(id.clone()).or_default() += 1;
        }
        Pause {
            id: id.clone(),
            held: self.paused.clone(),
        }
    }

    /// How many pauses of `id` ever started.
    pub(crate) fn pauses_started(&self, id: &ResourceRef) -> u64 {
        self.pauses_started
            .lock()
            .map(|m| m.get(id).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub(crate) fn is_paused(&self, id: &ResourceRef) -> bool {
        self.paused
            .lock()
            .map(|m| m.contains_key(id))
            .unwrap_or(false)
    }

    pub(crate) fn set_stuck(&self, id: &ResourceRef, stuck: bool) {
        if let Ok(mut s) = self.stuck.lock() {
            if stuck {
                s.insert(id.clone());
            } else {
                s.remove(id);
            }
        }
    }

    /// Records what a cluster's manager saw; `None` when it stops managing it.
    pub(crate) fn set_cluster(&self, id: &ResourceRef, facts: Option<ClusterFacts>) {
        if let Ok(mut m) = self.clusters.lock() {
            match facts {
                Some(f) => m.insert(id.clone(), f),
                None => m.remove(id),
            };
        }
    }

    /// Whether the pod `ordinal` of cluster `id` must wait for its replica to take over;
    /// `None` until the cluster's manager has looked at it once.
    pub(crate) fn cluster_holds(&self, id: &ResourceRef, ordinal: u32) -> Option<bool> {
        self.clusters
            .lock()
            .ok()
            .and_then(|m| m.get(id).map(|f| f.hold.contains(&ordinal)))
    }

    /// Whether the pod `ordinal` of cluster `id` may be removed: its manager has seen it
    /// serve no slot. Unknown (the manager has not looked yet) is no.
    pub(crate) fn cluster_may_remove(&self, id: &ResourceRef, ordinal: u32) -> bool {
        self.clusters
            .lock()
            .map(|m| m.get(id).is_some_and(|f| !f.serving.contains(&ordinal)))
            .unwrap_or(false)
    }

    pub(crate) fn is_stuck(&self, id: &ResourceRef) -> bool {
        self.stuck.lock().map(|s| s.contains(id)).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_lasts_until_its_last_holder_lets_go() {
        let shared = FailoverState::default();
        let id = ResourceRef::new(Kind::Redis, "data", "cache");
        let other = ResourceRef::new(Kind::Redis, "data", "other");
        let switchover = shared.pause(&id);
        let restore = shared.pause(&id);
        assert!(shared.is_paused(&id) && !shared.is_paused(&other));
        drop(switchover);
        assert!(shared.is_paused(&id), "the restore still holds it");
        drop(restore);
        assert!(!shared.is_paused(&id));
    }
}
