//! The cluster manager's pure planner. Every tick the server observes each pod of a cluster
//! (`CLUSTER NODES`, its replication offset, the runtime's exit events) and asks [`plan`] what
//! to do next; it executes the actions and observes again. Each step is decided from what the
//! nodes say now, never from what the controller remembers doing, so a controller killed
//! halfway picks up where the cluster is: that is what makes every step idempotent.
//!
//! The order of concerns, each only when the ones before it have nothing to do:
//! 1. a shard whose master is gone (pod exited, or silent for `down_after`) gets its best
//!    replica promoted (`CLUSTER FAILOVER FORCE`, or `TAKEOVER` without a majority of masters);
//! 2. nodes no pod is any longer (a pod that lost its `nodes.conf`, a removed pod) are
//!    forgotten;
//! 3. the nodes meet: the lowest running ordinal meets every other pod at its current address,
//!    which also fixes the address of a pod that moved;
//! 4. slots no node serves are assigned, split evenly, to masters that serve none (all of them
//!    on a fresh cluster, so the first `shards` ordinals split the 16384 slots);
//! 5. every other node replicates the master with the fewest replicas.

use super::nodes::Peer;
use super::SLOTS;
use crate::ClusterSpec;
use std::collections::{BTreeMap, BTreeSet};

/// What the controller saw of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Obs {
    /// The pod does not exist or has not been started yet (a rollout creating it).
    Missing,
    /// The runtime reports its process gone: a crash is known at once.
    Exited,
    /// Running but not answering for `down_for_ms` (0 on the first failed check).
    Unreachable {
        /// Milliseconds since the last answer.
        down_for_ms: u64,
    },
    /// Answered.
    Up(View),
}

/// What a reachable node said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Its `CLUSTER NODES`, itself included (flag `myself`).
    pub peers: Vec<Peer>,
    /// `master_repl_offset`: how much of its shard's history it holds.
    pub offset: i64,
    /// Still loading its dataset.
    pub loading: bool,
}

impl View {
    /// The node itself.
    pub fn me(&self) -> Option<&Peer> {
        self.peers.iter().find(|p| p.myself)
    }

    fn knows(&self, id: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.id == id && !p.handshake)
    }
}

/// Everything [`plan`] decides from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The block's shape.
    pub shape: ClusterSpec,
    /// Every pod by ordinal, including pods above the shape that are being removed.
    pub nodes: BTreeMap<u32, Obs>,
    /// The current address of each pod.
    pub addrs: BTreeMap<u32, String>,
    /// The node id each ordinal had when last seen (the store's record).
    pub layout: BTreeMap<u32, String>,
    /// How long a running master may stay silent before its shard fails over.
    pub down_after_ms: u64,
    /// Pods whose process was already running when this controller started. A master pod
    /// missing at start with such a replica crashed while no controller watched: the replica
    /// holds the shard's data, not the master's restart.
    pub long_running: BTreeSet<u32>,
}

/// How a replica takes its master's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverMode {
    /// `CLUSTER FAILOVER FORCE`: no handshake with the dead master; a majority of masters
    /// still votes, so the promotion is agreed.
    Force,
    /// `CLUSTER FAILOVER TAKEOVER`: no vote at all, for when most masters are gone.
    Takeover,
}

/// Why a shard fails over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverReason {
    /// The master's pod exited.
    MasterExited,
    /// The master stopped answering for `down_after`.
    MasterUnreachable,
}

/// One step for the server to execute, on the node of `ordinal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `CLUSTER SET-CONFIG-EPOCH`: distinct epochs for a fresh cluster's masters, so they
    /// need no collision rounds.
    SetConfigEpoch {
        /// The node.
        ordinal: u32,
        /// Its epoch.
        epoch: u64,
    },
    /// `CLUSTER MEET ip port`.
    Meet {
        /// The node that meets.
        ordinal: u32,
        /// The pod it meets.
        peer: u32,
        /// That pod's address.
        ip: String,
    },
    /// `CLUSTER ADDSLOTSRANGE`.
    AddSlots {
        /// The master.
        ordinal: u32,
        /// Inclusive ranges.
        ranges: Vec<(u16, u16)>,
    },
    /// `CLUSTER REPLICATE id`.
    Replicate {
        /// The node that becomes a replica.
        ordinal: u32,
        /// The master's node id.
        master: String,
        /// The master's ordinal.
        master_ordinal: u32,
    },
    /// `CLUSTER FAILOVER FORCE|TAKEOVER` on the replica that takes over.
    Failover {
        /// The replica.
        ordinal: u32,
        /// The master it replaces.
        from: u32,
        /// How.
        mode: FailoverMode,
        /// Why.
        reason: FailoverReason,
    },
    /// Moves slots with their keys: `SETSLOT IMPORTING` on the destination, `MIGRATING` on
    /// the source, `MIGRATE` in batches (clients follow `ASK` meanwhile), then `SETSLOT NODE`
    /// on both. Each step may be repeated, so a move interrupted halfway is finished by
    /// issuing it again.
    MoveSlots {
        /// The source master.
        from: u32,
        /// Its node id.
        from_id: String,
        /// The destination master.
        to: u32,
        /// Its node id.
        to_id: String,
        /// Its address on the pods' network (the source connects to it).
        to_ip: String,
        /// The slots, ascending.
        slots: Vec<u16>,
    },
    /// `CLUSTER SETSLOT slot STABLE`: drops a half-move's flag whose other end is gone.
    Stabilize {
        /// The node holding the flag.
        ordinal: u32,
        /// The slot.
        slot: u16,
    },
    /// `CLUSTER FAILOVER` (graceful) on a replica: its shard moves off a pod being removed.
    Promote {
        /// The replica.
        ordinal: u32,
        /// The master it replaces.
        from: u32,
    },
    /// `CLUSTER FORGET id`.
    Forget {
        /// The node that forgets.
        ordinal: u32,
        /// The node id no pod has any more.
        id: String,
    },
}

/// Where the cluster stands after this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Every slot served, `shards` masters with their replicas, every pod up.
    Healthy,
    /// Work under way or waiting for pods; says what.
    Working(String),
    /// Something vd cannot fix by itself; says what and why.
    Blocked(String),
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Steps, in order.
    pub actions: Vec<Action>,
    /// The node id of every ordinal, to store.
    pub layout: BTreeMap<u32, String>,
    /// Ordinals whose node serves slots and has a running replica (and whose pod has been
    /// started): if such a pod exits it must not start again before its replica has taken
    /// over, or it would come back as the master with only what its last snapshot held.
    pub hold: BTreeSet<u32>,
    /// The masters serving slots, by ordinal, with their slot count.
    pub masters: BTreeMap<u32, u32>,
    /// Pods whose node serves slots or is in the middle of moving one: removing such a pod
    /// (scaling in) waits until its slots are moved away.
    pub serving: BTreeSet<u32>,
    /// Slots no node serves.
    pub uncovered: u32,
    /// Where the cluster stands.
    pub progress: Progress,
}

/// Who serves each slot: for every slot, the claim with the highest config epoch among all the
/// views (the rule the nodes themselves apply).
fn slot_owners(views: &BTreeMap<u32, &View>) -> Vec<Option<(u64, String)>> {
    let mut owners: Vec<Option<(u64, String)>> = vec![None; usize::from(SLOTS)];
    for v in views.values() {
        for p in v.peers.iter().filter(|p| p.master && !p.handshake) {
            for (a, b) in &p.slots {
                for slot in *a..=*b {
                    let o = &mut owners[usize::from(slot)];
                    if o.as_ref().is_none_or(|(e, _)| p.config_epoch > *e) {
                        *o = Some((p.config_epoch, p.id.clone()));
                    }
                }
            }
        }
    }
    owners
}

/// Runs of consecutive slots as inclusive ranges.
fn ranges(slots: &[u16]) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &s in slots {
        match out.last_mut() {
            Some((_, b)) if b.checked_add(1) == Some(s) => *b = s,
            _ => out.push((s, s)),
        }
    }
    out
}

/// Decides the next steps for one cluster.
pub fn plan(input: &Input) -> Plan {
    let wanted = input.shape.nodes();
    let up: BTreeMap<u32, &View> = input
        .nodes
        .iter()
        .filter_map(|(o, n)| match n {
            Obs::Up(v) if v.me().is_some() => Some((*o, v)),
            _ => None,
        })
        .collect();
    let id_of = |o: u32| -> Option<String> {
        match up.get(&o).and_then(|v| v.me()) {
            Some(me) => Some(me.id.clone()),
            None => input.layout.get(&o).cloned(),
        }
    };
    let mut layout: BTreeMap<u32, String> = BTreeMap::new();
    for o in input.nodes.keys() {
        if let Some(id) = id_of(*o) {
            layout.insert(*o, id);
        }
    }
    let ordinal_of = |id: &str| layout.iter().find(|(_, i)| *i == id).map(|(o, _)| *o);

    let owners = slot_owners(&up);
    let mut served: BTreeMap<String, u32> = BTreeMap::new();
    for (_, id) in owners.iter().flatten() {
        *served.entry(id.clone()).or_default() += 1;
    }
    let uncovered = owners.iter().filter(|o| o.is_none()).count() as u32;
    let masters: BTreeMap<u32, u32> = served
        .iter()
        .filter_map(|(id, n)| ordinal_of(id).map(|o| (o, *n)))
        .collect();
    // Whom each pod replicates: its own word when it answers, else what the others say.
    let follows = |o: u32| -> Option<String> {
        if let Some(me) = up.get(&o).and_then(|v| v.me()) {
            return (!me.master).then(|| me.master_id.clone()).flatten();
        }
        let id = layout.get(&o)?;
        up.values()
            .filter_map(|v| v.knows(id))
            .find(|p| !p.master)
            .and_then(|p| p.master_id.clone())
    };
    let running_replicas = |master: &str| -> Vec<u32> {
        up.iter()
            .filter(|(_, v)| {
                v.me()
                    .is_some_and(|me| !me.master && me.master_id.as_deref() == Some(master))
            })
            .map(|(o, _)| *o)
            .collect()
    };
    // A master pod not started yet is held only when a replica of it kept running from
    // before this controller (the master crashed while none watched). When a stopped
    // cluster starts again its replicas hold nothing newer than the masters' own snapshots,
    // and nobody fails those masters over.
    let missing_with_data = |o: u32, id: &str| -> bool {
        matches!(input.nodes.get(&o), Some(Obs::Missing) | None)
            && running_replicas(id)
                .iter()
                .any(|r| input.long_running.contains(r))
    };
    let hold: BTreeSet<u32> = served
        .keys()
        .filter(|id| !running_replicas(id).is_empty())
        .filter_map(|id| Some((ordinal_of(id)?, id)))
        .filter(|(o, id)| {
            !matches!(input.nodes.get(o), Some(Obs::Missing) | None) || missing_with_data(*o, id)
        })
        .map(|(o, _)| o)
        .collect();
    let serving: BTreeSet<u32> = masters
        .keys()
        .copied()
        .chain(
            up.iter()
                .filter(|(_, v)| v.me().is_some_and(|me| !me.open.is_empty()))
                .map(|(o, _)| *o),
        )
        .collect();
    let held = hold.clone();
    let mut out = Plan {
        actions: Vec::new(),
        layout: layout.clone(),
        hold,
        serving,
        masters: masters.clone(),
        uncovered,
        progress: Progress::Healthy,
    };

    // 1. Failover: a master that is gone.
    let gone = |o: u32| -> Option<FailoverReason> {
        match input.nodes.get(&o) {
            Some(Obs::Exited) => Some(FailoverReason::MasterExited),
            Some(Obs::Missing) | None if held.contains(&o) => Some(FailoverReason::MasterExited),
            Some(Obs::Unreachable { down_for_ms }) if *down_for_ms >= input.down_after_ms => {
                Some(FailoverReason::MasterUnreachable)
            }
            _ => None,
        }
    };
    let alive = masters.keys().filter(|o| up.contains_key(o)).count();
    let mut blocked = Vec::new();
    for (id, _) in served.iter() {
        let Some(from) = ordinal_of(id) else { continue };
        let Some(reason) = gone(from) else { continue };
        let best = running_replicas(id)
            .into_iter()
            .filter_map(|o| up.get(&o).map(|v| (o, *v)))
            .filter(|(_, v)| !v.loading)
            .max_by_key(|(o, v)| (v.offset, std::cmp::Reverse(*o)));
        match best {
            Some((to, _)) => out.actions.push(Action::Failover {
                ordinal: to,
                from,
                mode: if alive * 2 > masters.len() {
                    FailoverMode::Force
                } else {
                    FailoverMode::Takeover
                },
                reason,
            }),
            None => blocked.push(format!(
                "the master on pod {from} is down and its shard has no running replica: its \
                 slots are unavailable until the pod is back"
            )),
        }
    }
    if !out.actions.is_empty() {
        out.progress = Progress::Working("failing over".into());
        return out;
    }
    if !blocked.is_empty() {
        out.progress = Progress::Blocked(blocked.join("; "));
        return out;
    }

    // 2. Forget nodes no pod is.
    let ours: BTreeSet<&String> = layout.values().collect();
    for (o, v) in &up {
        let Some(me) = v.me() else { continue };
        for p in &v.peers {
            let foreign = !p.myself && !p.handshake && !ours.contains(&p.id);
            if foreign && p.slot_count() == 0 && me.master_id.as_ref() != Some(&p.id) {
                out.actions.push(Action::Forget {
                    ordinal: *o,
                    id: p.id.clone(),
                });
            }
        }
    }
    if !out.actions.is_empty() {
        out.progress = Progress::Working("forgetting nodes that are gone".into());
        return out;
    }

    // 3. Meet: every running pod, those being removed too while they still run.
    let members = &up;
    let keep = |o: u32| o < wanted;
    if owners.iter().all(Option::is_none) {
        for (o, v) in members {
            if v.me().is_some_and(|me| me.config_epoch == 0) && v.peers.len() == 1 {
                out.actions.push(Action::SetConfigEpoch {
                    ordinal: *o,
                    epoch: u64::from(*o) + 1,
                });
            }
        }
    }
    let meets_at = |v: &View, ip: &str, id: &str| -> bool {
        v.knows(id).is_some_and(|p| p.ip == ip) || v.peers.iter().any(|p| p.handshake && p.ip == ip)
    };
    if let Some((&anchor, av)) = members.iter().next() {
        let anchor_ip = input.addrs.get(&anchor).cloned().unwrap_or_default();
        let anchor_id = av.me().map(|m| m.id.clone()).unwrap_or_default();
        for (&o, v) in members.iter().skip(1) {
            let (Some(ip), Some(me)) = (input.addrs.get(&o), v.me()) else {
                continue;
            };
            if !meets_at(av, ip, &me.id) {
                out.actions.push(Action::Meet {
                    ordinal: anchor,
                    peer: o,
                    ip: ip.clone(),
                });
            }
            if !anchor_ip.is_empty() && !meets_at(v, &anchor_ip, &anchor_id) {
                out.actions.push(Action::Meet {
                    ordinal: o,
                    peer: anchor,
                    ip: anchor_ip.clone(),
                });
            }
        }
    }
    if out.actions.iter().any(|a| matches!(a, Action::Meet { .. })) {
        out.progress = Progress::Working("meeting the nodes".into());
        return out;
    }
    let strangers = members.iter().any(|(_, a)| {
        members
            .values()
            .filter_map(|b| b.me())
            .any(|b| a.knows(&b.id).is_none())
    });
    if strangers {
        out.progress = Progress::Working("waiting for the nodes to learn of each other".into());
        return out;
    }

    // 4. Slots left half-moved (by a controller or pod that died in a move): finished from
    // the node that serves the slot now to the importing shard's master, or made stable when
    // the other end is gone for good. While an end's pod is down and coming back, the slot
    // waits: making it stable then would strand the keys already moved.
    let owner_ordinal = |slot: u16| -> Option<u32> {
        owners[usize::from(slot)]
            .as_ref()
            .and_then(|(_, id)| ordinal_of(id))
    };
    // An end that is a replica now (its pod failed over mid-move) stands for its shard's
    // master, which holds the keys it had: the move goes on from or to that master.
    let master_of = |o: u32| -> Option<u32> {
        match up.get(&o).and_then(|v| v.me()) {
            Some(me) if !me.master => me
                .master_id
                .as_deref()
                .and_then(ordinal_of)
                .filter(|m| up.contains_key(m)),
            Some(_) => Some(o),
            None => None,
        }
    };
    let mut finish: BTreeMap<(u32, u32), BTreeSet<u16>> = BTreeMap::new();
    let mut settled = BTreeSet::new();
    let mut waiting = BTreeSet::new();
    for (o, v) in members {
        let Some(me) = v.me() else { continue };
        for open in &me.open {
            let stabilize = Action::Stabilize {
                ordinal: *o,
                slot: open.slot,
            };
            let peer = ordinal_of(&open.peer);
            let other = match peer {
                // A node no pod is: nothing to finish the move with.
                None => None,
                Some(p) if up.contains_key(&p) => match master_of(p) {
                    Some(m) => Some(m),
                    None => {
                        waiting.insert(p);
                        continue;
                    }
                },
                // The source is down: whoever serves the slot now holds its keys.
                Some(_) if !open.migrating => match owner_ordinal(open.slot) {
                    Some(w) if w != *o && up.contains_key(&w) => Some(w),
                    Some(w) if w != *o && keep(w) => {
                        waiting.insert(w);
                        continue;
                    }
                    _ => None,
                },
                Some(p) if keep(p) => {
                    waiting.insert(p);
                    continue;
                }
                Some(_) => None,
            };
            let (from, to) = match other {
                Some(p) if p == *o => {
                    out.actions.push(stabilize);
                    continue;
                }
                Some(p) if open.migrating => (*o, p),
                Some(p) => (p, *o),
                None => {
                    out.actions.push(stabilize);
                    continue;
                }
            };
            match owner_ordinal(open.slot) {
                Some(owner) if owner == from => {
                    finish.entry((from, to)).or_default().insert(open.slot);
                }
                // The destination already serves it: only the source's flag is left.
                Some(owner) if owner == to && settled.insert(open.slot) => {
                    out.actions.push(Action::Stabilize {
                        ordinal: from,
                        slot: open.slot,
                    });
                }
                _ => out.actions.push(Action::Stabilize {
                    ordinal: *o,
                    slot: open.slot,
                }),
            }
        }
    }
    for ((from, to), slots) in finish {
        if let Some(a) = move_slots(input, &layout, from, to, slots.into_iter().collect()) {
            out.actions.push(a);
        }
    }
    if !out.actions.is_empty() {
        out.progress = Progress::Working("finishing a slot move".into());
        return out;
    }
    if !waiting.is_empty() {
        out.progress = Progress::Working(format!(
            "a slot move waits for pods {waiting:?} to run again"
        ));
        return out;
    }

    // 5. Slots no node serves.
    let missing: Vec<u16> = (0..SLOTS)
        .filter(|s| owners[usize::from(*s)].is_none())
        .collect();
    let kept_masters: Vec<u32> = masters.keys().copied().filter(|o| keep(*o)).collect();
    let shards = input.shape.shards as usize;
    // Masters that serve nothing yet and are to serve: a fresh cluster's, or new shards'.
    let designated: Vec<u32> = members
        .iter()
        .filter(|(o, v)| {
            keep(**o)
                && v.me().is_some_and(|me| me.master && me.slot_count() == 0)
                && !masters.contains_key(o)
        })
        .map(|(o, _)| *o)
        .take(shards.saturating_sub(kept_masters.len()))
        .collect();
    if !missing.is_empty() {
        if (0..wanted).any(|o| !members.contains_key(&o)) {
            out.progress = Progress::Working(format!(
                "{} slots unassigned; waiting for every pod to run",
                missing.len()
            ));
            return out;
        }
        let targets: Vec<u32> = if designated.is_empty() {
            masters
                .iter()
                .filter(|(o, _)| keep(**o))
                .min_by_key(|(o, n)| (**n, **o))
                .map(|(o, _)| *o)
                .into_iter()
                .collect()
        } else {
            designated.clone()
        };
        if targets.is_empty() {
            out.progress = Progress::Blocked("no master to give the unassigned slots to".into());
            return out;
        }
        let (base, extra) = (missing.len() / targets.len(), missing.len() % targets.len());
        let mut start = 0;
        for (i, t) in targets.iter().enumerate() {
            let len = base + usize::from(i < extra);
            out.actions.push(Action::AddSlots {
                ordinal: *t,
                ranges: ranges(&missing[start..start + len]),
            });
            start += len;
        }
        out.progress = Progress::Working(format!("assigning {} slots", missing.len()));
        return out;
    }

    // 6. Replicas: spare nodes join the shard with the fewest replicas, a new shard's master
    // counting as a shard. This comes before slots move: a key migrated onto a new master
    // then has a copy on its replica, not only in the memory of a node without persistence.
    let rps = input.shape.replicas_per_shard as usize;
    let mut count: BTreeMap<String, Vec<u32>> = served
        .keys()
        .filter(|id| ordinal_of(id).is_some_and(keep))
        .chain(designated.iter().filter_map(|o| layout.get(o)))
        .map(|id| (id.clone(), vec![]))
        .collect();
    for o in (0..wanted).filter(|o| !masters.contains_key(o)) {
        if let Some(m) = follows(o) {
            if let Some(list) = count.get_mut(&m) {
                list.push(o);
            }
        }
    }
    let fewest = |count: &BTreeMap<String, Vec<u32>>| -> Option<(String, u32)> {
        count
            .iter()
            .filter_map(|(id, l)| ordinal_of(id).map(|o| (l.len(), o, id.clone())))
            .min()
            .map(|(_, o, id)| (id, o))
    };
    for (o, v) in members.iter().filter(|(o, _)| keep(**o)) {
        let Some(me) = v.me() else { continue };
        // A replica of a master being drained stays with it until its slots are gone.
        let attached = !me.master
            && me
                .master_id
                .as_ref()
                .is_some_and(|m| count.contains_key(m) || served.contains_key(m));
        if attached || masters.contains_key(o) || designated.contains(o) {
            continue;
        }
        if me.slot_count() > 0 {
            // An old master back from a crash still claims its slots until it hears of the
            // higher epoch that replaced it; the cluster then makes it a replica itself.
            continue;
        }
        if let Some((id, mo)) = fewest(&count) {
            out.actions.push(Action::Replicate {
                ordinal: *o,
                master: id.clone(),
                master_ordinal: mo,
            });
            if let Some(l) = count.get_mut(&id) {
                l.push(*o);
            }
        }
    }
    if !out.actions.is_empty() {
        out.progress = Progress::Working("attaching replicas".into());
        return out;
    }

    // 7. Balance: the shape's shards, on the pods it keeps, with even shares. New shards get
    // slots from the others; the shards of pods being removed give theirs away.
    let draining: Vec<u32> = masters.keys().copied().filter(|o| !keep(*o)).collect();
    let mut targets: Vec<u32> = kept_masters.iter().chain(&designated).copied().collect();
    if targets.len() < shards {
        // A shard whose master is on a pod being removed, with a replica on a kept pod: that
        // replica takes over gracefully and the shard stays.
        for d in &draining {
            let id = layout.get(d).cloned().unwrap_or_default();
            if let Some(r) = running_replicas(&id).into_iter().find(|r| keep(*r)) {
                out.actions.push(Action::Promote {
                    ordinal: r,
                    from: *d,
                });
            }
        }
        if !out.actions.is_empty() {
            out.progress = Progress::Working("moving a shard off a pod being removed".into());
            return out;
        }
    }
    targets.sort_unstable();
    let needs_moving = !draining.is_empty() || !designated.is_empty() || {
        let sizes: Vec<u32> = masters.values().copied().collect();
        sizes.iter().max().unwrap_or(&0) - sizes.iter().min().unwrap_or(&0) > 1
            && masters.len() == shards
    };
    if needs_moving && !targets.is_empty() {
        if (0..wanted).any(|o| !members.contains_key(&o)) {
            out.progress = Progress::Working("waiting for every pod to run to move slots".into());
            return out;
        }
        out.actions = balance(input, &layout, &owners, &masters, &targets, &draining);
        if !out.actions.is_empty() {
            out.progress = Progress::Working("moving slots between shards".into());
            return out;
        }
    }

    // 8. A shard with too many replicas gives one to a shard with too few.
    {
        let over = count.iter().find(|(_, l)| l.len() > rps);
        let under = fewest(&count).filter(|(id, _)| count.get(id).is_some_and(|l| l.len() < rps));
        if let (Some((_, l)), Some((id, mo))) = (over, under) {
            if let Some(o) = l.iter().rev().find(|o| members.contains_key(o)) {
                out.actions.push(Action::Replicate {
                    ordinal: *o,
                    master: id,
                    master_ordinal: mo,
                });
            }
        }
    }
    if !out.actions.is_empty() {
        out.progress = Progress::Working("attaching replicas".into());
        return out;
    }

    let down: Vec<u32> = (0..wanted).filter(|o| !members.contains_key(o)).collect();
    out.progress = if !down.is_empty() {
        Progress::Working(format!("pods not running: {down:?}"))
    } else if masters.len() != shards {
        Progress::Working(format!(
            "{} masters serve slots, the block asks for {shards}",
            masters.len()
        ))
    } else {
        Progress::Healthy
    };
    out
}

/// The most slots one tick moves from one source: the manager observes again (a crashed
/// master must not wait for a long rebalance) between batches.
pub const MOVE_BATCH: usize = 256;

/// `MoveSlots` from `from` to `to`, with the ids and address the executor needs.
fn move_slots(
    input: &Input,
    layout: &BTreeMap<u32, String>,
    from: u32,
    to: u32,
    slots: Vec<u16>,
) -> Option<Action> {
    Some(Action::MoveSlots {
        from,
        from_id: layout.get(&from)?.clone(),
        to,
        to_id: layout.get(&to)?.clone(),
        to_ip: input.addrs.get(&to)?.clone(),
        slots,
    })
}

/// The moves that bring every target master to its even share (`even_split` of the shards,
/// the larger shares to the masters holding most already) and empty the draining ones, at
/// most [`MOVE_BATCH`] slots from each source this tick. Each source gives its highest slots
/// first.
fn balance(
    input: &Input,
    layout: &BTreeMap<u32, String>,
    owners: &[Option<(u64, String)>],
    masters: &BTreeMap<u32, u32>,
    targets: &[u32],
    draining: &[u32],
) -> Vec<Action> {
    let sizes: Vec<u32> = super::even_split(targets.len() as u32)
        .iter()
        .map(|(a, b)| u32::from(*b - *a) + 1)
        .collect();
    let mut order: Vec<u32> = targets.to_vec();
    order.sort_by_key(|o| (std::cmp::Reverse(masters.get(o).copied().unwrap_or(0)), *o));
    let mut want: BTreeMap<u32, u32> = order.iter().copied().zip(sizes).collect();
    for d in draining {
        want.insert(*d, 0);
    }
    let have = |o: u32| masters.get(&o).copied().unwrap_or(0);
    // Each source's slots, highest first.
    let mut give: BTreeMap<u32, Vec<u16>> = BTreeMap::new();
    for (o, w) in &want {
        let surplus = have(*o).saturating_sub(*w) as usize;
        if surplus == 0 {
            continue;
        }
        let id = layout.get(o).cloned().unwrap_or_default();
        let slots: Vec<u16> = (0..SLOTS)
            .rev()
            .filter(|s| {
                owners[usize::from(*s)]
                    .as_ref()
                    .is_some_and(|(_, i)| *i == id)
            })
            .take(surplus)
            .collect();
        give.insert(*o, slots);
    }
    let mut left: BTreeMap<u32, usize> = give.keys().map(|s| (*s, MOVE_BATCH)).collect();
    let mut moves: BTreeMap<(u32, u32), Vec<u16>> = BTreeMap::new();
    for t in targets {
        let mut deficit = want.get(t).copied().unwrap_or(0).saturating_sub(have(*t)) as usize;
        if have(*t) == 0 {
            // A master that serves no slot yet takes one first: until it serves one, its
            // shard is not failed over when its pod dies (the nodes elect no replica for an
            // empty master), so whatever it was given lived on that pod alone.
            deficit = deficit.min(1);
        }
        for (src, slots) in give.iter_mut() {
            let budget = left.entry(*src).or_default();
            if deficit == 0 {
                break;
            }
            let n = deficit.min(slots.len()).min(*budget);
            let taken: Vec<u16> = slots.drain(..n).collect();
            if !taken.is_empty() {
                moves.entry((*src, *t)).or_default().extend(taken);
            }
            deficit -= n;
            *budget -= n;
        }
    }
    moves
        .into_iter()
        .filter_map(|((from, to), mut slots)| {
            slots.sort_unstable();
            move_slots(input, layout, from, to, slots)
        })
        .collect()
}

/// A replica of a shard, as a switchover weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its pod.
    pub ordinal: u32,
    /// How much of the shard's history it holds.
    pub offset: i64,
    /// Its replication link to the master is up (`master_link_status:up`).
    pub link_up: bool,
    /// Still loading its dataset.
    pub loading: bool,
}

/// Which replica a graceful switchover of one shard (`CLUSTER FAILOVER`, which waits for the
/// replica to catch up with its master, so no acknowledged write is lost) promotes: the one
/// `asked` for, or the linked replica with the most history (the lowest ordinal on a tie).
/// `Err` says why none can be.
pub fn switchover_target(
    shard: usize,
    candidates: &[Candidate],
    asked: Option<u32>,
) -> Result<u32, String> {
    let ready = |c: &&Candidate| c.link_up && !c.loading;
    if let Some(a) = asked {
        return match candidates.iter().find(|c| c.ordinal == a) {
            None => Err(format!(
                "pod {a} is not a replica of shard {shard}; its replicas are {:?}",
                candidates.iter().map(|c| c.ordinal).collect::<Vec<_>>()
            )),
            Some(c) if !ready(&c) => Err(format!(
                "pod {a} is not in sync with its master (link down or loading)"
            )),
            Some(c) => Ok(c.ordinal),
        };
    }
    if candidates.is_empty() {
        return Err(format!(
            "shard {shard} has no replica; raise `replicas_per_shard` to fail it over"
        ));
    }
    candidates
        .iter()
        .filter(ready)
        .max_by_key(|c| (c.offset, std::cmp::Reverse(c.ordinal)))
        .map(|c| c.ordinal)
        .ok_or_else(|| format!("no replica of shard {shard} is in sync with its master"))
}

#[cfg(test)]
mod tests;
