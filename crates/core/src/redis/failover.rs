//! Controller failover (vd's controller, not sentinel, detects a failed master and promotes a
//! replica): the pure planner. The server
//! observes every pod of a redis with `failover { automatic = true }` (reachability, `INFO`,
//! the runtime's exit events) and asks [`plan`] what to do; it executes the actions and feeds
//! the result back on the next tick. Nothing here does IO, so every branch is a table test.

/// What the controller saw of one pod on this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeObs {
    /// The pod's ordinal.
    pub ordinal: u32,
    /// Its state.
    pub state: NodeState,
}

/// Reachability and replication state of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeState {
    /// The runtime reports the pod's process is not running (a crash is known at once).
    Exited,
    /// Running but not answering `INFO` for `down_for_ms` (0 on the first failed check).
    Unreachable {
        /// Milliseconds since the last successful check.
        down_for_ms: u64,
    },
    /// Answered `INFO`.
    Up(NodeInfo),
}

/// A node's role as its `INFO replication` states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRole {
    /// Accepts writes.
    Master,
    /// Follows `following` (the ordinal its `master_host` names; `None` when it names no pod of
    /// this redis).
    Replica {
        /// Ordinal of the pod it replicates from.
        following: Option<u32>,
        /// `master_link_status:up`.
        link_up: bool,
    },
}

/// What `INFO` told about a reachable node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its role.
    pub role: NodeRole,
    /// `master_replid`: the replication history it is on.
    pub replid: String,
    /// `master_replid2`: the history it continued from after a promotion.
    pub replid2: String,
    /// `master_repl_offset` (how much of the history it holds).
    pub offset: i64,
    /// `replica-priority`: lower is preferred, 0 never promoted.
    pub priority: u32,
    /// `loading:1` (still reading its dataset; cannot serve).
    pub loading: bool,
    /// `run_id`: changes on every restart.
    pub run_id: String,
    /// Keys over all databases (`INFO keyspace`); 0 for an empty dataset.
    pub keys: u64,
}

/// The last healthy observation of the master, kept by the controller between ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterMemory {
    /// Which pod it was.
    pub ordinal: u32,
    /// Its `run_id` then.
    pub run_id: String,
    /// Its `master_replid` then: candidates must share this history.
    pub replid: String,
    /// Its `master_replid2` then: the history it continued from when it was promoted (all
    /// zeros, or empty when unknown, for none). A replica that had not yet resynced with it
    /// when it died is still on that history, and holds everything but the writes since the
    /// promotion, which no replica acknowledged.
    pub replid2: String,
    /// Its offset then.
    pub offset: i64,
    /// Its key count then.
    pub keys: u64,
}

/// A failover written to the store and not yet finished (the controller may have died in it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    /// The epoch it was written under.
    pub epoch: u64,
    /// The master it replaces.
    pub from: u32,
    /// The replica being promoted.
    pub to: u32,
}

/// Everything the planner decides from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// One observation per pod ordinal.
    pub nodes: Vec<NodeObs>,
    /// `REDIS_MASTER_ORDINAL` in the bucket: the master of the current epoch.
    pub master: u32,
    /// The stored epoch (bumped by every failover).
    pub epoch: u64,
    /// A failover started and not finished.
    pub pending: Option<Pending>,
    /// `failover.down_after` in milliseconds: how long an unreachable master is tolerated.
    pub down_after_ms: u64,
    /// The last healthy observation of the master, if the controller has one.
    pub last_master: Option<MasterMemory>,
}

/// Why a failover starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The runtime reported the master's process gone.
    MasterExited,
    /// The master did not answer for `down_after`.
    MasterUnreachable,
    /// The master came back with an empty dataset while a replica holds the data.
    MasterRestartedEmpty,
    /// The master of the epoch answers as a replica and no node is master.
    NoMaster,
    /// Finishing a failover a previous controller wrote to the store and did not finish.
    Resume,
}

/// One step for the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store `Pending { epoch, from, to }` (and the epoch), then promote `to`, re-point the
    /// others, set `REDIS_MASTER_ORDINAL`, rewrite consumers, clear the pending record.
    Failover {
        /// The epoch to store (the stored one + 1, or the pending one when resuming).
        epoch: u64,
        /// The master being replaced.
        from: u32,
        /// The replica to promote.
        to: u32,
        /// Why.
        reason: Reason,
    },
    /// `REPLICAOF <master>` on a replica that follows another node or none.
    Repoint {
        /// The replica.
        ordinal: u32,
        /// The master it must follow.
        to: u32,
    },
    /// A node that acts as master but is not the epoch's: `REPLICAOF <master>`, then
    /// `CLIENT KILL TYPE normal` so its clients reconnect and find the real master.
    Demote {
        /// The stray master.
        ordinal: u32,
        /// The master it must follow.
        to: u32,
    },
}

/// The planner's answer: actions in order, and why it waits when it cannot act.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// What to do now, in order.
    pub actions: Vec<Action>,
    /// Set when the master is lost and nothing can be promoted (shown in events and logs).
    pub waiting: Option<String>,
}

/// Decides what to do from one tick's observations.
///
/// A pending failover is finished (or, when its target is gone, replaced under a new epoch)
/// before anything else. Otherwise the epoch's master decides: exited or unreachable for
/// `down_after` → fail over; restarted empty while another node holds its history's data →
/// fail over to a node with data; answering as a replica → promote the best node (possibly
/// itself); loading → wait; healthy → re-point stray replicas and demote stray masters.
pub fn plan(input: &Input) -> Plan {
    if let Some(pending) = &input.pending {
        return plan_pending(input, pending);
    }
    let m = input.master;
    let next_epoch = input.epoch.saturating_add(1);
    match state_of(input, m) {
        // A master missing from the observations has no process: the same as an exit.
        None | Some(NodeState::Exited) => fail_over(
            input,
            Loss {
                from: m,
                reason: Reason::MasterExited,
                epoch: next_epoch,
                include_from: false,
                data_only: false,
                history: history(input, &[m]),
                lead: format!("the master (ordinal {m}) exited"),
            },
        ),
        Some(NodeState::Unreachable { down_for_ms }) if *down_for_ms >= input.down_after_ms => {
            fail_over(
                input,
                Loss {
                    from: m,
                    reason: Reason::MasterUnreachable,
                    epoch: next_epoch,
                    include_from: false,
                    data_only: false,
                    history: history(input, &[m]),
                    lead: format!("the master (ordinal {m}) has not answered for {down_for_ms} ms"),
                },
            )
        }
        // A blip shorter than `down_after` must never cause a failover, and re-pointing the
        // others meanwhile would only churn: wait for the next tick.
        Some(NodeState::Unreachable { .. }) => Plan::default(),
        // Still reading its dataset (Sentinel also counts a LOADING reply as alive): its keys
        // and role are not final yet, so neither a failover nor a re-point is safe.
        Some(NodeState::Up(info)) if info.loading => Plan::default(),
        Some(NodeState::Up(info)) => match info.role {
            NodeRole::Master => match restarted_empty(input, m, info) {
                // Re-pointing the replicas at it would make them full-sync its empty dataset
                // and lose the data: promote a replica that holds it instead, and if none can
                // be promoted, wait without touching anything.
                Some(lost) => fail_over(
                    input,
                    Loss {
                        from: m,
                        reason: Reason::MasterRestartedEmpty,
                        epoch: next_epoch,
                        include_from: false,
                        data_only: true,
                        history: Some(History::of(lost)),
                        lead: format!(
                            "the master (ordinal {m}) restarted empty while another node holds \
                             its data"
                        ),
                    },
                ),
                None => Plan {
                    actions: follow(input, m),
                    waiting: None,
                },
            },
            // Nothing takes writes where the epoch says something should: the best node
            // overall, the epoch's master included, becomes master.
            NodeRole::Replica { .. } => fail_over(
                input,
                Loss {
                    from: m,
                    reason: Reason::NoMaster,
                    epoch: next_epoch,
                    include_from: true,
                    data_only: false,
                    history: history(input, &[m]),
                    lead: format!("the master (ordinal {m}) answers as a replica"),
                },
            ),
        },
    }
}

/// The nodes that may replace `from`, best first: reachable, not loading, priority > 0 and on
/// the history of `input.last_master` when it describes `from` (any history otherwise);
/// ordered nodes with data before empty ones, then by priority (lower first), then offset
/// (higher first), then ordinal.
pub fn candidates(input: &Input, from: u32) -> Vec<u32> {
    ranked(input, Some(from), history(input, &[from]))
        .into_iter()
        .map(|(ordinal, _)| ordinal)
        .collect()
}

/// A lost master and how to replace it.
struct Loss<'a> {
    /// The master being replaced.
    from: u32,
    /// Why it is replaced.
    reason: Reason,
    /// The epoch the failover is written under.
    epoch: u64,
    /// Whether `from` may itself be chosen (it answers, just not as master).
    include_from: bool,
    /// Whether only a node with keys may be chosen (promoting an empty node gains nothing).
    data_only: bool,
    /// The replication history candidates must share; `None` when unknown.
    history: Option<History<'a>>,
    /// What happened, for the waiting message.
    lead: String,
}

/// Finishes a stored failover, or replaces its target when the target is gone.
fn plan_pending(input: &Input, p: &Pending) -> Plan {
    let to = p.to;
    // Above both the stored epoch and the pending one: the executor may have died between
    // writing the pending record and the epoch.
    let epoch = input.epoch.max(p.epoch).saturating_add(1);
    // The memory may still describe the master being replaced, or already the new one.
    let lost_history = history(input, &[p.from, p.to]);
    let lead = |what: String| {
        format!(
            "the failover of epoch {} to ordinal {to} cannot finish: ordinal {to} {what}",
            p.epoch
        )
    };
    let loss = |reason, what| Loss {
        from: to,
        reason,
        epoch,
        include_from: false,
        data_only: false,
        history: lost_history,
        lead: lead(what),
    };
    match state_of(input, to) {
        Some(NodeState::Up(info)) if !info.loading => {
            // Redone from the start: every step of the executor is idempotent, and the
            // target may already be master.
            let mut actions = vec![Action::Failover {
                epoch: p.epoch,
                from: p.from,
                to,
                reason: Reason::Resume,
            }];
            actions.extend(follow(input, to));
            Plan {
                actions,
                waiting: None,
            }
        }
        Some(NodeState::Up(_)) => fail_over(
            input,
            loss(Reason::MasterUnreachable, "is loading".to_string()),
        ),
        // The same tolerance as for a master: a blip of the target must not start a second
        // failover (which could leave two promoted masters).
        Some(NodeState::Unreachable { down_for_ms }) if *down_for_ms < input.down_after_ms => {
            Plan {
                actions: Vec::new(),
                waiting: Some(lead(format!(
                    "has not answered for {down_for_ms} ms; another replica is chosen after {} ms",
                    input.down_after_ms
                ))),
            }
        }
        Some(NodeState::Unreachable { down_for_ms }) => fail_over(
            input,
            loss(
                Reason::MasterUnreachable,
                format!("has not answered for {down_for_ms} ms"),
            ),
        ),
        None | Some(NodeState::Exited) => {
            fail_over(input, loss(Reason::MasterExited, "exited".to_string()))
        }
    }
}

/// Promotes the best candidate for `loss` and re-points the rest at it, or explains why not.
fn fail_over(input: &Input, loss: Loss<'_>) -> Plan {
    let exclude = (!loss.include_from).then_some(loss.from);
    let best = ranked(input, exclude, loss.history)
        .into_iter()
        .next()
        .filter(|(_, info)| !loss.data_only || info.keys > 0);
    match best {
        Some((to, _)) => {
            let mut actions = vec![Action::Failover {
                epoch: loss.epoch,
                from: loss.from,
                to,
                reason: loss.reason,
            }];
            actions.extend(follow(input, to));
            Plan {
                actions,
                waiting: None,
            }
        }
        None => Plan {
            actions: Vec::new(),
            waiting: Some(why_not(input, &loss, exclude)),
        },
    }
}

/// The eligible nodes (see [`candidates`]) other than `exclude`, best first.
fn ranked<'a>(
    input: &'a Input,
    exclude: Option<u32>,
    history: Option<History<'_>>,
) -> Vec<(u32, &'a NodeInfo)> {
    let mut eligible: Vec<(u32, &NodeInfo)> = input
        .nodes
        .iter()
        .filter(|n| Some(n.ordinal) != exclude)
        .filter_map(|n| match &n.state {
            NodeState::Up(info) if eligible(info, history) => Some((n.ordinal, info)),
            _ => None,
        })
        .collect();
    // Data first: an empty node promoted over one with data would make that one full-sync
    // the empty dataset. Then Redis' own replica-priority, then the most complete copy.
    eligible.sort_by_key(|(ordinal, info)| {
        (
            info.keys == 0,
            info.priority,
            std::cmp::Reverse(info.offset),
            *ordinal,
        )
    });
    eligible
}

/// Whether a reachable node may be promoted.
fn eligible(info: &NodeInfo, history: Option<History<'_>>) -> bool {
    !info.loading && info.priority > 0 && history.is_none_or(|h| shares(info, h))
}

/// The replication history of a remembered master, as a candidate must share it.
#[derive(Debug, Clone, Copy)]
struct History<'a> {
    /// The master's `master_replid`.
    replid: &'a str,
    /// The history it continued from after its promotion, when known.
    prior: Option<&'a str>,
}

impl<'a> History<'a> {
    fn of(lm: &'a MasterMemory) -> History<'a> {
        // Redis reports a node that was never promoted with an all-zero `master_replid2`.
        let none = lm.replid2.is_empty() || lm.replid2.bytes().all(|b| b == b'0');
        History {
            replid: &lm.replid,
            prior: (!none).then_some(lm.replid2.as_str()),
        }
    }
}

/// Whether `info` is on history `h`: on the master's own (or continued from it after a
/// promotion of its own), or still on the one the master continued from (it had not resynced
/// with the master yet).
fn shares(info: &NodeInfo, h: History<'_>) -> bool {
    info.replid == h.replid || info.replid2 == h.replid || h.prior == Some(info.replid.as_str())
}

/// The remembered master's history when the memory describes one of `lost`.
fn history<'a>(input: &'a Input, lost: &[u32]) -> Option<History<'a>> {
    input
        .last_master
        .as_ref()
        .filter(|lm| lost.contains(&lm.ordinal))
        .map(History::of)
}

/// The remembered master when `m` is it after a restart (new `run_id`), has no keys, and
/// another node on the remembered history holds keys (loading nodes count: their data is
/// coming back and must not be replaced by an empty dataset).
fn restarted_empty<'a>(input: &'a Input, m: u32, info: &NodeInfo) -> Option<&'a MasterMemory> {
    let lm = input.last_master.as_ref()?;
    let restarted = lm.ordinal == m && lm.run_id != info.run_id && info.keys == 0;
    let data_elsewhere = input.nodes.iter().any(|n| {
        n.ordinal != m
            && matches!(&n.state, NodeState::Up(other) if other.keys > 0 && shares(other, History::of(lm)))
    });
    (restarted && data_elsewhere).then_some(lm)
}

/// The observation of `ordinal`, if any.
fn state_of(input: &Input, ordinal: u32) -> Option<&NodeState> {
    input
        .nodes
        .iter()
        .find(|n| n.ordinal == ordinal)
        .map(|n| &n.state)
}

/// The steady state under `master`: every other reachable, non-loading node that is a master
/// is demoted, every replica not following `master` is re-pointed. Loading nodes refuse
/// `REPLICAOF` and unreachable ones cannot be told; both are handled on a later tick.
fn follow(input: &Input, master: u32) -> Vec<Action> {
    let mut nodes: Vec<&NodeObs> = input.nodes.iter().filter(|n| n.ordinal != master).collect();
    nodes.sort_by_key(|n| n.ordinal);
    nodes
        .into_iter()
        .filter_map(|n| match &n.state {
            NodeState::Up(info) if !info.loading => match info.role {
                NodeRole::Master => Some(Action::Demote {
                    ordinal: n.ordinal,
                    to: master,
                }),
                NodeRole::Replica { following, .. } if following != Some(master) => {
                    Some(Action::Repoint {
                        ordinal: n.ordinal,
                        to: master,
                    })
                }
                NodeRole::Replica { .. } => None,
            },
            _ => None,
        })
        .collect()
}

/// Why no node can replace the lost master: one clause per other pod, by ordinal.
fn why_not(input: &Input, loss: &Loss<'_>, exclude: Option<u32>) -> String {
    let mut nodes: Vec<&NodeObs> = input
        .nodes
        .iter()
        .filter(|n| Some(n.ordinal) != exclude)
        .collect();
    nodes.sort_by_key(|n| n.ordinal);
    let reasons: Vec<String> = nodes
        .iter()
        .map(|n| {
            let o = n.ordinal;
            match &n.state {
                NodeState::Exited => format!("ordinal {o} exited"),
                NodeState::Unreachable { .. } => format!("ordinal {o} is unreachable"),
                NodeState::Up(info) if info.loading => format!("ordinal {o} is loading"),
                NodeState::Up(info) if info.priority == 0 => {
                    format!("ordinal {o} has replica-priority 0")
                }
                NodeState::Up(info) if !loss.history.is_none_or(|h| shares(info, h)) => {
                    format!("ordinal {o} is on another replication history")
                }
                NodeState::Up(_) => format!("ordinal {o} is empty"),
            }
        })
        .collect();
    let what = if loss.data_only {
        "no node with its data can take over (replicas are not re-pointed at the empty master)"
    } else {
        "no replica can take over"
    };
    if reasons.is_empty() {
        format!("{} and {what}: no other pod exists", loss.lead)
    } else {
        format!("{} and {what}: {}", loss.lead, reasons.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DOWN_AFTER: u64 = 5000;
    const EPOCH: u64 = 7;

    /// A reachable node on history "h1", with data, priority 100, offset 100.
    fn node(ordinal: u32, role: NodeRole) -> NodeObs {
        NodeObs {
            ordinal,
            state: NodeState::Up(NodeInfo {
                role,
                replid: "h1".into(),
                replid2: "0".into(),
                offset: 100,
                priority: 100,
                loading: false,
                run_id: format!("run{ordinal}"),
                keys: 10,
            }),
        }
    }

    fn master(ordinal: u32) -> NodeObs {
        node(ordinal, NodeRole::Master)
    }

    fn replica(ordinal: u32, of: u32) -> NodeObs {
        node(
            ordinal,
            NodeRole::Replica {
                following: Some(of),
                link_up: true,
            },
        )
    }

    fn exited(ordinal: u32) -> NodeObs {
        NodeObs {
            ordinal,
            state: NodeState::Exited,
        }
    }

    fn unreachable(ordinal: u32, down_for_ms: u64) -> NodeObs {
        NodeObs {
            ordinal,
            state: NodeState::Unreachable { down_for_ms },
        }
    }

    /// One-line tweaks of a reachable node.
    trait Tweak: Sized {
        fn with(self, f: impl FnOnce(&mut NodeInfo)) -> Self;
        fn offset(self, v: i64) -> Self {
            self.with(|i| i.offset = v)
        }
        fn prio(self, v: u32) -> Self {
            self.with(|i| i.priority = v)
        }
        fn keys(self, v: u64) -> Self {
            self.with(|i| i.keys = v)
        }
        fn loading(self) -> Self {
            self.with(|i| i.loading = true)
        }
        fn replid(self, v: &str) -> Self {
            self.with(|i| i.replid = v.into())
        }
        fn replid2(self, v: &str) -> Self {
            self.with(|i| i.replid2 = v.into())
        }
        /// A new `run_id`: the node restarted since the controller last saw it.
        fn restarted(self) -> Self {
            self.with(|i| i.run_id = format!("{}-new", i.run_id))
        }
        fn following(self, v: Option<u32>) -> Self {
            self.with(|i| {
                i.role = NodeRole::Replica {
                    following: v,
                    link_up: v.is_some(),
                }
            })
        }
    }

    impl Tweak for NodeObs {
        fn with(mut self, f: impl FnOnce(&mut NodeInfo)) -> Self {
            if let NodeState::Up(info) = &mut self.state {
                f(info);
            }
            self
        }
    }

    /// Epoch 7, no pending, and a memory of `master` as built by [`master`] (history "h1").
    fn input(master: u32, nodes: Vec<NodeObs>) -> Input {
        Input {
            nodes,
            master,
            epoch: EPOCH,
            pending: None,
            down_after_ms: DOWN_AFTER,
            last_master: Some(MasterMemory {
                ordinal: master,
                run_id: format!("run{master}"),
                replid: "h1".into(),
                replid2: "0".into(),
                offset: 100,
                keys: 10,
            }),
        }
    }

    fn no_memory(mut i: Input) -> Input {
        i.last_master = None;
        i
    }

    fn pending(mut i: Input, epoch: u64, from: u32, to: u32) -> Input {
        i.pending = Some(Pending { epoch, from, to });
        i
    }

    fn fo(from: u32, to: u32, reason: Reason) -> Action {
        Action::Failover {
            epoch: EPOCH + 1,
            from,
            to,
            reason,
        }
    }

    fn fo_at(epoch: u64, from: u32, to: u32, reason: Reason) -> Action {
        Action::Failover {
            epoch,
            from,
            to,
            reason,
        }
    }

    fn rp(ordinal: u32, to: u32) -> Action {
        Action::Repoint { ordinal, to }
    }

    fn dm(ordinal: u32, to: u32) -> Action {
        Action::Demote { ordinal, to }
    }

    /// Checks rows expecting exactly `actions` and no waiting message.
    fn check_actions(rows: Vec<(&str, Input, Vec<Action>)>) {
        for (name, input, actions) in rows {
            let got = plan(&input);
            assert_eq!(
                got,
                Plan {
                    actions,
                    waiting: None
                },
                "row {name:?}"
            );
        }
    }

    /// Checks rows expecting no action and a waiting message containing every fragment.
    fn check_waiting(rows: Vec<(&str, Input, Vec<&str>)>) {
        for (name, input, fragments) in rows {
            let got = plan(&input);
            assert_eq!(got.actions, vec![], "row {name:?}");
            let waiting = got.waiting.unwrap_or_default();
            for f in fragments {
                assert!(waiting.contains(f), "row {name:?}: {waiting:?} lacks {f:?}");
            }
        }
    }

    #[test]
    fn steady_state() {
        use Reason::*;
        check_actions(vec![
            (
                "healthy",
                input(0, vec![master(0), replica(1, 0), replica(2, 0)]),
                vec![],
            ),
            (
                "replica follows wrong node",
                input(0, vec![master(0), replica(1, 2), replica(2, 0)]),
                vec![rp(1, 0)],
            ),
            (
                "replica follows nothing",
                input(0, vec![master(0), replica(1, 0).following(None)]),
                vec![rp(1, 0)],
            ),
            (
                "stray master demoted",
                input(0, vec![master(0), master(1), replica(2, 1)]),
                vec![dm(1, 0), rp(2, 0)],
            ),
            (
                "returning old master demoted",
                input(1, vec![master(0).restarted(), master(1), replica(2, 1)]),
                vec![dm(0, 1)],
            ),
            (
                "down nodes get nothing",
                input(0, vec![master(0), exited(1), unreachable(2, 60_000)]),
                vec![],
            ),
            (
                "loading replica left for later",
                input(0, vec![master(0), replica(1, 2).loading()]),
                vec![],
            ),
            (
                "restarted with its data",
                input(0, vec![master(0).restarted(), replica(1, 0)]),
                vec![],
            ),
            (
                "restarted empty, replicas empty too",
                input(
                    0,
                    vec![
                        master(0).restarted().keys(0),
                        replica(1, 2).keys(0),
                        replica(2, 0).keys(0),
                    ],
                ),
                vec![rp(1, 0)],
            ),
            (
                "restarted empty, data on another history",
                input(
                    0,
                    vec![master(0).restarted().keys(0), replica(1, 0).replid("h9")],
                ),
                vec![],
            ),
            (
                "empty but same run_id (flushed, not restarted)",
                input(0, vec![master(0).keys(0), replica(1, 0)]),
                vec![],
            ),
            (
                "empty restart unknown without memory",
                no_memory(input(0, vec![master(0).restarted().keys(0), replica(1, 2)])),
                vec![rp(1, 0)],
            ),
            (
                "unreachable blip",
                input(
                    0,
                    vec![unreachable(0, DOWN_AFTER - 1), replica(1, 0), replica(2, 1)],
                ),
                vec![],
            ),
            (
                "first failed check",
                input(0, vec![unreachable(0, 0), replica(1, 0)]),
                vec![],
            ),
            (
                "master loading",
                input(0, vec![master(0).loading(), replica(1, 2)]),
                vec![],
            ),
            (
                "master loading as replica",
                input(0, vec![replica(0, 1).loading(), replica(1, 0)]),
                vec![],
            ),
            (
                "master restarted empty but loading",
                input(
                    0,
                    vec![master(0).restarted().keys(0).loading(), replica(1, 0)],
                ),
                vec![],
            ),
            // Not steady, but the boundary of the blip rows above.
            (
                "unreachable at down_after",
                input(0, vec![unreachable(0, DOWN_AFTER), replica(1, 0)]),
                vec![fo(0, 1, MasterUnreachable)],
            ),
        ]);
    }

    #[test]
    fn failover_triggers() {
        use Reason::*;
        check_actions(vec![
            (
                "master exited",
                input(0, vec![exited(0), replica(1, 0), replica(2, 0)]),
                vec![fo(0, 1, MasterExited), rp(2, 1)],
            ),
            (
                "master missing",
                input(0, vec![replica(1, 0), replica(2, 0)]),
                vec![fo(0, 1, MasterExited), rp(2, 1)],
            ),
            (
                "master unreachable past down_after",
                input(0, vec![unreachable(0, 9000), replica(1, 0), replica(2, 0)]),
                vec![fo(0, 1, MasterUnreachable), rp(2, 1)],
            ),
            (
                "restarted empty, replica has data",
                input(
                    0,
                    vec![
                        master(0).restarted().keys(0).replid("h2"),
                        replica(1, 0),
                        replica(2, 0),
                    ],
                ),
                vec![fo(0, 1, MasterRestartedEmpty), dm(0, 1), rp(2, 1)],
            ),
            (
                "restarted empty, skips the resynced empty replica",
                input(
                    0,
                    vec![
                        master(0).restarted().keys(0).replid("h2"),
                        replica(1, 0).keys(0).replid("h2").offset(999),
                        replica(2, 0),
                    ],
                ),
                vec![fo(0, 2, MasterRestartedEmpty), dm(0, 2), rp(1, 2)],
            ),
            (
                "no master: best node overall",
                input(
                    0,
                    vec![replica(0, 2), replica(1, 0).offset(200), replica(2, 0)],
                ),
                vec![fo(0, 1, NoMaster), rp(0, 1), rp(2, 1)],
            ),
            (
                "no master: re-promote itself",
                input(
                    0,
                    vec![replica(0, 1).offset(300), replica(1, 0), replica(2, 1)],
                ),
                vec![fo(0, 0, NoMaster), rp(2, 0)],
            ),
            (
                "no master: the stray master it follows is adopted",
                input(0, vec![replica(0, 1), master(1).offset(150), replica(2, 1)]),
                vec![fo(0, 1, NoMaster)],
            ),
            (
                "failover demotes a stray master",
                input(
                    0,
                    vec![
                        exited(0),
                        replica(1, 0).offset(200),
                        master(2),
                        replica(3, 2),
                    ],
                ),
                vec![fo(0, 1, MasterExited), dm(2, 1), rp(3, 1)],
            ),
            (
                "new master's replicas left alone",
                input(0, vec![exited(0), replica(1, 0).offset(200), replica(2, 1)]),
                vec![fo(0, 1, MasterExited)],
            ),
        ]);
    }

    #[test]
    fn candidate_order() {
        use Reason::*;
        let gone = |nodes: Vec<NodeObs>| {
            let mut all = vec![exited(0)];
            all.extend(nodes);
            input(0, all)
        };
        let winner = |to: u32| fo(0, to, MasterExited);
        check_actions(vec![
            (
                "lower priority wins over offset",
                gone(vec![
                    replica(1, 0).prio(50).offset(10),
                    replica(2, 0).offset(500),
                ]),
                vec![winner(1), rp(2, 1)],
            ),
            (
                "priority 0 never",
                gone(vec![replica(1, 0).prio(0).offset(900), replica(2, 0)]),
                vec![winner(2), rp(1, 2)],
            ),
            (
                "loading excluded",
                gone(vec![replica(1, 0).loading().offset(900), replica(2, 0)]),
                vec![winner(2)],
            ),
            (
                "history mismatch excluded",
                gone(vec![replica(1, 0).replid("h9").offset(900), replica(2, 0)]),
                vec![winner(2), rp(1, 2)],
            ),
            (
                "continued history (replid2) qualifies",
                gone(vec![
                    replica(1, 0).replid("h2").replid2("h1").offset(900),
                    replica(2, 0),
                ]),
                vec![winner(1), rp(2, 1)],
            ),
            (
                // The master was promoted from h0 and died before its replicas resynced with
                // it (chained kills): they are still on h0 and hold all but its last writes.
                "the history the master continued from qualifies; the most data wins",
                {
                    let mut i = gone(vec![
                        replica(1, 0).replid("h0").offset(90),
                        replica(2, 0).replid("h1").replid2("h0").offset(95),
                        replica(3, 0).replid("h7").replid2("h0").offset(99),
                    ]);
                    if let Some(lm) = &mut i.last_master {
                        lm.replid2 = "h0".into();
                    }
                    i
                },
                // h7 forked from h0 apart from the master: never.
                vec![winner(2), rp(1, 2), rp(3, 2)],
            ),
            (
                "a prior history that is only zeros names none",
                {
                    let mut i = gone(vec![replica(1, 0).replid("0").offset(900), replica(2, 0)]);
                    if let Some(lm) = &mut i.last_master {
                        lm.replid2 = "0".into();
                    }
                    i
                },
                vec![winner(2), rp(1, 2)],
            ),
            (
                "unknown history: any",
                no_memory(gone(vec![
                    replica(1, 0).replid("h9").offset(900),
                    replica(2, 0),
                ])),
                vec![winner(1), rp(2, 1)],
            ),
            (
                "memory of another pod: history unknown",
                {
                    let mut i = gone(vec![replica(1, 0).replid("h9").offset(900), replica(2, 0)]);
                    if let Some(lm) = &mut i.last_master {
                        lm.ordinal = 3;
                    }
                    i
                },
                vec![winner(1), rp(2, 1)],
            ),
            (
                "data before empty, even with better priority and offset",
                gone(vec![
                    replica(1, 0).keys(0).prio(1).offset(900),
                    replica(2, 0),
                ]),
                vec![winner(2), rp(1, 2)],
            ),
            (
                "empty promoted when all are empty",
                gone(vec![
                    replica(1, 0).keys(0),
                    replica(2, 0).keys(0).offset(200),
                ]),
                vec![winner(2), rp(1, 2)],
            ),
            (
                "offset tiebreak",
                gone(vec![replica(1, 0).offset(100), replica(2, 0).offset(101)]),
                vec![winner(2), rp(1, 2)],
            ),
            (
                "ordinal tiebreak",
                gone(vec![replica(2, 0), replica(1, 0)]),
                vec![winner(1), rp(2, 1)],
            ),
            (
                "unreachable and exited replicas skipped",
                gone(vec![unreachable(1, 0), exited(2), replica(3, 0).offset(1)]),
                vec![winner(3)],
            ),
        ]);
    }

    #[test]
    fn candidates_helper_orders_eligible_nodes() {
        let i = input(
            0,
            vec![
                exited(0),
                replica(1, 0).keys(0).prio(1),
                replica(2, 0).offset(50),
                replica(3, 0).offset(60),
                replica(4, 0).prio(10),
                replica(5, 0).prio(0),
                replica(6, 0).loading(),
            ],
        );
        assert_eq!(candidates(&i, 0), vec![4, 3, 2, 1]);
        assert_eq!(candidates(&i, 4), vec![3, 2, 1]);
    }

    #[test]
    fn pending_failovers() {
        use Reason::*;
        let resume = |from, to| fo_at(EPOCH, from, to, Resume);
        check_actions(vec![
            (
                "resume after crash",
                pending(
                    input(0, vec![exited(0), replica(1, 0), replica(2, 0)]),
                    EPOCH,
                    0,
                    1,
                ),
                vec![resume(0, 1), rp(2, 1)],
            ),
            (
                "resume when already promoted",
                pending(
                    input(0, vec![exited(0), master(1), replica(2, 1)]),
                    EPOCH,
                    0,
                    1,
                ),
                vec![resume(0, 1)],
            ),
            (
                "resume demotes the returned old master",
                pending(
                    input(0, vec![master(0), master(1), replica(2, 0)]),
                    EPOCH,
                    0,
                    1,
                ),
                vec![resume(0, 1), dm(0, 1), rp(2, 1)],
            ),
            (
                "resume even with priority 0",
                pending(
                    input(0, vec![exited(0), replica(1, 0).prio(0)]),
                    EPOCH,
                    0,
                    1,
                ),
                vec![resume(0, 1)],
            ),
            (
                "target exited: new epoch",
                pending(
                    input(0, vec![exited(0), exited(1), replica(2, 0)]),
                    EPOCH,
                    0,
                    1,
                ),
                vec![fo_at(EPOCH + 1, 1, 2, MasterExited)],
            ),
            (
                "target exited: epoch above the pending one",
                pending(
                    input(0, vec![exited(0), exited(1), replica(2, 0)]),
                    EPOCH + 3,
                    0,
                    1,
                ),
                vec![fo_at(EPOCH + 4, 1, 2, MasterExited)],
            ),
            (
                "target unreachable past down_after",
                pending(
                    input(
                        0,
                        vec![exited(0), unreachable(1, DOWN_AFTER), replica(2, 1)],
                    ),
                    EPOCH,
                    0,
                    1,
                ),
                vec![fo_at(EPOCH + 1, 1, 2, MasterUnreachable)],
            ),
            (
                "target loading",
                pending(
                    input(0, vec![exited(0), replica(1, 0).loading(), replica(2, 0)]),
                    EPOCH,
                    0,
                    1,
                ),
                vec![fo_at(EPOCH + 1, 1, 2, MasterUnreachable)],
            ),
            (
                "old master back is a candidate",
                pending(
                    input(0, vec![master(0).offset(300), exited(1), replica(2, 1)]),
                    EPOCH,
                    0,
                    1,
                ),
                vec![fo_at(EPOCH + 1, 1, 0, MasterExited), rp(2, 0)],
            ),
            (
                "history of the new master counts",
                {
                    let mut i = pending(
                        input(
                            0,
                            vec![
                                exited(0),
                                exited(1),
                                replica(2, 1).replid("h9"),
                                replica(3, 1).replid("h1"),
                            ],
                        ),
                        EPOCH,
                        0,
                        1,
                    );
                    if let Some(lm) = &mut i.last_master {
                        lm.ordinal = 1;
                    }
                    i
                },
                vec![fo_at(EPOCH + 1, 1, 3, MasterExited), rp(2, 3)],
            ),
        ]);
    }

    #[test]
    fn waiting_messages() {
        check_waiting(vec![
            ("exited, nothing promotable", input(0, vec![exited(0), unreachable(1, 10), replica(2, 0).prio(0), replica(3, 0).loading(), replica(4, 0).replid("h9"), exited(5)]),
                vec!["the master (ordinal 0) exited and no replica can take over: ordinal 1 is unreachable, ordinal 2 has replica-priority 0, ordinal 3 is loading, ordinal 4 is on another replication history, ordinal 5 exited"]),
            ("single pod", input(0, vec![exited(0)]), vec!["no other pod exists"]),
            ("unreachable", input(0, vec![unreachable(0, 7000), exited(1)]), vec!["has not answered for 7000 ms", "ordinal 1 exited"]),
            ("restarted empty, data holder loading", input(0, vec![master(0).restarted().keys(0), replica(1, 0).loading(), replica(2, 0).keys(0).replid("h2")]),
                vec!["restarted empty", "ordinal 1 is loading", "ordinal 2 is on another replication history", "not re-pointed"]),
            ("restarted empty, data holder priority 0", input(0, vec![master(0).restarted().keys(0), replica(1, 0).prio(0), replica(2, 0).keys(0)]),
                vec!["ordinal 1 has replica-priority 0", "ordinal 2 is empty"]),
            ("no master, nothing promotable", input(0, vec![replica(0, 1).prio(0), exited(1)]), vec!["answers as a replica", "ordinal 0 has replica-priority 0", "ordinal 1 exited"]),
            ("pending target gone, nothing promotable", pending(input(0, vec![exited(0), exited(1), replica(2, 0).prio(0)]), EPOCH, 0, 1),
                vec!["the failover of epoch 7 to ordinal 1 cannot finish: ordinal 1 exited", "ordinal 0 exited", "ordinal 2 has replica-priority 0"]),
            ("pending target blip", pending(input(0, vec![exited(0), unreachable(1, 100), replica(2, 0)]), EPOCH, 0, 1),
                vec!["ordinal 1 has not answered for 100 ms", "after 5000 ms"]),
        ]);
    }

    // ---- invariants over random inputs ----

    const POOL: [&str; 3] = ["h1", "h2", "h3"];

    fn arb_info(n: u32) -> impl Strategy<Value = NodeInfo> {
        (
            prop_oneof![Just(None), (0..n).prop_map(Some),],
            any::<bool>(),
            any::<bool>(),
            (0usize..3, 0usize..4),
            0i64..4,
            0u32..3,
            prop::bool::weighted(0.15),
            0usize..2,
            0u64..3,
        )
            .prop_map(
                |(
                    following,
                    is_master,
                    link_up,
                    (r1, r2),
                    offset,
                    priority,
                    loading,
                    run,
                    keys,
                )| {
                    NodeInfo {
                        role: if is_master {
                            NodeRole::Master
                        } else {
                            NodeRole::Replica { following, link_up }
                        },
                        replid: POOL[r1].into(),
                        replid2: POOL.get(r2).copied().unwrap_or("0").into(),
                        offset,
                        priority,
                        loading,
                        run_id: format!("run{run}"),
                        keys,
                    }
                },
            )
    }

    fn arb_state(n: u32) -> impl Strategy<Value = NodeState> {
        prop_oneof![
            1 => Just(NodeState::Exited),
            1 => prop_oneof![Just(0u64), Just(DOWN_AFTER - 1), Just(DOWN_AFTER), 0u64..12_000]
                .prop_map(|down_for_ms| NodeState::Unreachable { down_for_ms }),
            4 => arb_info(n).prop_map(NodeState::Up),
        ]
    }

    fn arb_input() -> impl Strategy<Value = Input> {
        (3u32..=5).prop_flat_map(|n| {
            (
                prop::collection::vec(arb_state(n), n as usize),
                0..n,
                0u64..5,
                prop::option::weighted(0.3, (0u64..8, 0..n, 0..n)),
                prop::option::of((0..n, 0usize..2, 0usize..3, 0usize..4, 0u64..3)),
            )
                .prop_map(|(states, master, epoch, pending, memory)| Input {
                    nodes: states
                        .into_iter()
                        .zip(0..)
                        .map(|(state, ordinal)| NodeObs { ordinal, state })
                        .collect(),
                    master,
                    epoch,
                    pending: pending.map(|(epoch, from, to)| Pending { epoch, from, to }),
                    down_after_ms: DOWN_AFTER,
                    last_master: memory.map(|(ordinal, run, r, r2, keys)| MasterMemory {
                        ordinal,
                        run_id: format!("run{run}"),
                        replid: POOL[r].into(),
                        replid2: POOL.get(r2).copied().unwrap_or("0").into(),
                        offset: 2,
                        keys,
                    }),
                })
        })
    }

    fn info_of(input: &Input, ordinal: u32) -> Option<&NodeInfo> {
        input.nodes.iter().find_map(|n| match &n.state {
            NodeState::Up(info) if n.ordinal == ordinal => Some(info),
            _ => None,
        })
    }

    /// Whether `i` is on the history of `lm`, written independently of [`shares`].
    fn on_history(i: &NodeInfo, lm: &MasterMemory) -> bool {
        i.replid == lm.replid
            || i.replid2 == lm.replid
            || (lm.replid2 != "0" && !lm.replid2.is_empty() && i.replid == lm.replid2)
    }

    /// The eligible set, written independently of [`ranked`]: every node the failover
    /// `from` may promote under `reason`.
    fn oracle_eligible(input: &Input, from: u32, reason: Reason) -> Vec<(u32, NodeInfo)> {
        let lost: Vec<u32> = match &input.pending {
            Some(p) => vec![p.from, p.to],
            None => vec![from],
        };
        let history = input
            .last_master
            .as_ref()
            .filter(|lm| lost.contains(&lm.ordinal));
        input
            .nodes
            .iter()
            .filter(|n| reason == Reason::NoMaster || n.ordinal != from)
            .filter_map(|n| match &n.state {
                NodeState::Up(i) => Some((n.ordinal, i.clone())),
                _ => None,
            })
            .filter(|(_, i)| !i.loading && i.priority > 0)
            .filter(|(_, i)| history.is_none_or(|lm| on_history(i, lm)))
            .collect()
    }

    /// The epoch's master is a healthy master that did not come back empty.
    fn healthy_master(input: &Input) -> bool {
        let Some(info) = info_of(input, input.master) else {
            return false;
        };
        if info.loading || info.role != NodeRole::Master {
            return false;
        }
        let empty_restart = input.last_master.as_ref().is_some_and(|lm| {
            lm.ordinal == input.master
                && lm.run_id != info.run_id
                && info.keys == 0
                && input.nodes.iter().any(|n| {
                    n.ordinal != input.master
                        && matches!(&n.state, NodeState::Up(o) if o.keys > 0 && on_history(o, lm))
                })
        });
        !empty_restart
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn plan_invariants(input in arb_input()) {
            let out = plan(&input);
            let failovers: Vec<&Action> = out
                .actions
                .iter()
                .filter(|a| matches!(a, Action::Failover { .. }))
                .collect();
            prop_assert!(failovers.len() <= 1, "{out:?}");
            // A plan acts or explains, never both.
            prop_assert!(out.actions.is_empty() || out.waiting.is_none());
            if let Some(first) = out.actions.first() {
                if !failovers.is_empty() {
                    prop_assert!(matches!(first, Action::Failover { .. }), "failover first");
                }
            }

            // The master every other action points at.
            let mut new_master = input.pending.as_ref().map_or(input.master, |p| p.to);
            if let Some(Action::Failover { epoch, from, to, reason }) = failovers.first().copied() {
                new_master = *to;
                match (&input.pending, reason) {
                    (Some(p), Reason::Resume) => {
                        prop_assert_eq!(*epoch, p.epoch);
                        prop_assert_eq!((*from, *to), (p.from, p.to));
                    }
                    (Some(p), _) => {
                        prop_assert_eq!(*epoch, input.epoch.max(p.epoch) + 1);
                        prop_assert_eq!(*from, p.to);
                    }
                    (None, r) => {
                        prop_assert!(*r != Reason::Resume);
                        prop_assert_eq!(*epoch, input.epoch + 1);
                        prop_assert_eq!(*from, input.master);
                    }
                }
                let chosen = info_of(&input, *to);
                prop_assert!(chosen.is_some_and(|i| !i.loading), "promoted node is up");
                if *reason != Reason::Resume {
                    let eligible = oracle_eligible(&input, *from, *reason);
                    let Some((_, chosen)) = eligible.iter().find(|(o, _)| o == to) else {
                        return Err(TestCaseError::fail(format!("{to} not eligible: {out:?}")));
                    };
                    prop_assert!(chosen.priority > 0);
                    if eligible.iter().any(|(_, i)| i.keys > 0) {
                        prop_assert!(chosen.keys > 0, "empty promoted over data: {out:?}");
                    }
                    if *reason == Reason::MasterRestartedEmpty {
                        prop_assert!(chosen.keys > 0);
                    }
                    let class = |i: &NodeInfo| i.keys == 0;
                    for (o, i) in &eligible {
                        if class(i) == class(chosen) {
                            prop_assert!(i.priority >= chosen.priority, "priority: {o} beats {to}");
                            if i.priority == chosen.priority {
                                prop_assert!(i.offset <= chosen.offset, "offset: {o} beats {to}");
                            }
                        }
                    }
                }
            }

            if input.pending.is_none() {
                if healthy_master(&input) {
                    prop_assert!(failovers.is_empty(), "failover of a healthy master: {out:?}");
                }
                if let Some(NodeObs { state: NodeState::Unreachable { down_for_ms }, .. }) =
                    input.nodes.iter().find(|n| n.ordinal == input.master)
                {
                    if *down_for_ms < input.down_after_ms {
                        prop_assert_eq!(&out, &Plan::default());
                    }
                }
            }

            // Re-points and demotions go to the (new) master, only to reachable, settled
            // nodes, never to the master itself, and match the node's role.
            for a in &out.actions {
                let (ordinal, to, demote) = match a {
                    Action::Repoint { ordinal, to } => (*ordinal, *to, false),
                    Action::Demote { ordinal, to } => (*ordinal, *to, true),
                    Action::Failover { .. } => continue,
                };
                prop_assert_eq!(to, new_master);
                prop_assert!(ordinal != to);
                let info = info_of(&input, ordinal);
                prop_assert!(info.is_some_and(|i| !i.loading), "{a:?} to a node that cannot take it");
                if let Some(info) = info {
                    prop_assert_eq!(demote, info.role == NodeRole::Master);
                }
            }
        }
    }
}
