//! Which replica a planned switchover (`vd redis:failover` without `--replica`) promotes. The
//! candidates are the automatic failover planner's own (reachable, not loading,
//! replica-priority above 0, on the master's replication history; data first, then priority,
//! then offset, then ordinal), narrowed to replicas whose link to the live master is up: a
//! switchover waits for its target to catch up with the master, which only a connected replica
//! can do.

use crate::redis::failover::{candidates, Input, MasterMemory, NodeObs, NodeRole, NodeState};
use crate::RedisSpec;

/// The pod a rollout of a data redis replaces last, after handing its master role to an
/// up-to-date replica with a live switchover: the master of a redis with replicas. A one-pod
/// redis has nobody to hand over to (its rollout has downtime); a cluster's shard masters hand
/// over one by one (`cluster::rollout`); a sentinel sibling's pods hold no data.
pub fn rollout_handover(spec: &RedisSpec, master: u32) -> Option<u32> {
    let replicated = spec.replicas.unwrap_or(1) >= 2 && master < spec.replicas.unwrap_or(1);
    (replicated && !crate::redis::topology::is_sentinel(spec) && spec.cluster.is_none())
        .then_some(master)
}

/// Whether a rollout of a replicated redis whose master is `master` may replace pod `replacing`
/// now: every other replica's link to the master is up (`linked`, from the master's `INFO
/// replication`). A replica that is ready (it answers) may still be loading its first sync;
/// replacing the next pod then would leave the master with no replica to acknowledge writes
/// (`min-replicas-to-write` refuses them) and nobody to hand the master role to.
pub fn may_replace_now(
    replicas: u32,
    master: u32,
    replacing: u32,
    linked: &std::collections::BTreeSet<u32>,
) -> bool {
    (0..replicas)
        .filter(|o| *o != master && *o != replacing)
        .all(|o| linked.contains(&o))
}

/// What a rollout that replaces `spec`'s pods costs its clients, when it is not nothing: a data
/// redis with one pod is down while that pod restarts.
pub fn rollout_downtime(spec: &RedisSpec) -> Option<&'static str> {
    let alone = spec.replicas.unwrap_or(1) < 2
        && !crate::redis::topology::is_sentinel(spec)
        && spec.cluster.is_none();
    alone.then_some(
        "its one pod is replaced: clients are refused until it is back (with replicas = 2 or \
         more the master moves to an up-to-date replica first, with no downtime)",
    )
}

/// Why no replica can take over in a planned switchover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoTarget {
    /// One sentence on why, naming each pod.
    pub reason: String,
}

/// The replica a switchover from the live master `master` promotes, chosen by the planner's
/// candidate rules among the replicas connected to it; `Err` says why none qualifies.
pub fn choose_target(nodes: &[NodeObs], master: u32) -> Result<u32, NoTarget> {
    let master_info = nodes
        .iter()
        .find(|n| n.ordinal == master)
        .and_then(|n| match &n.state {
            NodeState::Up(info) if info.role == NodeRole::Master => Some(info),
            _ => None,
        })
        .ok_or_else(|| NoTarget {
            reason: format!(
                "the master (ordinal {master}) does not answer as a master, so there is nothing to switch over from"
            ),
        })?;
    let input = Input {
        nodes: nodes.to_vec(),
        master,
        epoch: 0,
        pending: None,
        down_after_ms: 0,
        last_master: Some(MasterMemory {
            ordinal: master,
            run_id: master_info.run_id.clone(),
            replid: master_info.replid.clone(),
            replid2: master_info.replid2.clone(),
            offset: master_info.offset,
            keys: master_info.keys,
        }),
    };
    let connected = |o: u32| {
        nodes.iter().any(|n| {
            n.ordinal == o
                && matches!(&n.state, NodeState::Up(info) if matches!(
                    info.role,
                    NodeRole::Replica { following: Some(f), link_up: true } if f == master
                ))
        })
    };
    candidates(&input, master)
        .into_iter()
        .find(|o| connected(*o))
        .ok_or_else(|| NoTarget {
            reason: why_none(nodes, master, &master_info.replid),
        })
}

/// One clause per pod other than the master, by ordinal.
fn why_none(nodes: &[NodeObs], master: u32, replid: &str) -> String {
    let mut others: Vec<&NodeObs> = nodes.iter().filter(|n| n.ordinal != master).collect();
    others.sort_by_key(|n| n.ordinal);
    if others.is_empty() {
        return "no replica qualifies: the redis has no other pod".into();
    }
    let clauses: Vec<String> = others
        .iter()
        .map(|n| {
            let o = n.ordinal;
            match &n.state {
                NodeState::Exited => format!("ordinal {o} is not running"),
                NodeState::Unreachable { .. } => format!("ordinal {o} does not answer"),
                NodeState::Up(info) if info.loading => format!("ordinal {o} is loading"),
                NodeState::Up(info) if info.priority == 0 => {
                    format!("ordinal {o} has replica-priority 0")
                }
                NodeState::Up(info) if info.replid != replid && info.replid2 != replid => {
                    format!("ordinal {o} is on another replication history")
                }
                NodeState::Up(info) => match info.role {
                    NodeRole::Master => format!("ordinal {o} acts as a master"),
                    NodeRole::Replica {
                        following: Some(f), ..
                    } if f != master => format!("ordinal {o} follows ordinal {f}, not the master"),
                    NodeRole::Replica {
                        following: None, ..
                    } => {
                        format!("ordinal {o} follows no pod of this redis")
                    }
                    NodeRole::Replica { .. } => {
                        format!("ordinal {o}'s link to the master is down")
                    }
                },
            }
        })
        .collect();
    format!("no replica qualifies: {}", clauses.join(", "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pod_is_replaced_only_while_every_other_replica_is_linked() {
        let linked = |v: &[u32]| {
            v.iter()
                .copied()
                .collect::<std::collections::BTreeSet<u32>>()
        };
        // (replicas, master, replacing, linked) -> may replace
        let table = [
            (3, 0, 2, linked(&[1, 2]), true),
            (3, 0, 2, linked(&[1]), true),
            // The replica replaced just before is still syncing.
            (3, 0, 1, linked(&[1]), false),
            // The master goes once both replicas are linked.
            (3, 0, 0, linked(&[1, 2]), true),
            (3, 0, 0, linked(&[1]), false),
            (2, 1, 1, linked(&[0]), true),
            (2, 1, 0, linked(&[]), true),
        ];
        for (replicas, master, replacing, linked, want) in table {
            assert_eq!(
                super::may_replace_now(replicas, master, replacing, &linked),
                want,
                "{replicas} pods, master {master}, replacing {replacing}, linked {linked:?}"
            );
        }
    }

    #[test]
    fn a_rollout_hands_the_master_over_when_a_replica_can_take_it() {
        use crate::{ClusterSpec, SentinelSpec};
        let redis = |replicas: u32| crate::RedisSpec {
            replicas: Some(replicas),
            ..Default::default()
        };
        // (spec, stored master) -> the pod replaced last
        let table = [
            (redis(3), 0, Some(0)),
            (redis(3), 2, Some(2)),
            (redis(2), 1, Some(1)),
            (redis(1), 0, None),
            // A master ordinal beyond the replicas is a scale-down in progress.
            (redis(2), 2, None),
            (
                crate::RedisSpec {
                    cluster: Some(ClusterSpec::default()),
                    ..redis(6)
                },
                0,
                None,
            ),
            (
                crate::RedisSpec {
                    sentinel: Some(SentinelSpec {
                        enabled: true,
                        monitor: Some("data/cache".into()),
                    }),
                    ..redis(3)
                },
                0,
                None,
            ),
        ];
        for (spec, master, want) in table {
            assert_eq!(super::rollout_handover(&spec, master), want, "{spec:?}");
            assert_eq!(
                super::rollout_downtime(&spec).is_some(),
                spec.replicas == Some(1),
                "{spec:?}"
            );
        }
    }

    use super::*;
    use crate::redis::failover::NodeInfo;

    const HISTORY: &str = "aaaa";

    fn master(keys: u64) -> NodeState {
        NodeState::Up(NodeInfo {
            role: NodeRole::Master,
            replid: HISTORY.into(),
            replid2: String::new(),
            offset: 1000,
            priority: 100,
            loading: false,
            run_id: "m".into(),
            keys,
        })
    }

    fn replica(offset: i64, priority: u32, keys: u64) -> NodeInfo {
        NodeInfo {
            role: NodeRole::Replica {
                following: Some(0),
                link_up: true,
            },
            replid: HISTORY.into(),
            replid2: String::new(),
            offset,
            priority,
            loading: false,
            run_id: "r".into(),
            keys,
        }
    }

    fn obs(states: Vec<NodeState>) -> Vec<NodeObs> {
        states
            .into_iter()
            .enumerate()
            .map(|(o, state)| NodeObs {
                ordinal: o as u32,
                state,
            })
            .collect()
    }

    fn up(info: NodeInfo) -> NodeState {
        NodeState::Up(info)
    }

    #[test]
    fn chooses_like_the_failover_planner() {
        let loading = NodeInfo {
            loading: true,
            ..replica(2000, 100, 10)
        };
        let other_history = NodeInfo {
            replid: "bbbb".into(),
            ..replica(2000, 100, 10)
        };
        let link_down = NodeInfo {
            role: NodeRole::Replica {
                following: Some(0),
                link_up: false,
            },
            ..replica(2000, 100, 10)
        };
        let follows_other = NodeInfo {
            role: NodeRole::Replica {
                following: Some(1),
                link_up: true,
            },
            ..replica(2000, 100, 10)
        };
        let continued = NodeInfo {
            replid: "cccc".into(),
            replid2: HISTORY.into(),
            ..replica(900, 100, 10)
        };
        let cases: Vec<(&str, Vec<NodeState>, Result<u32, &str>)> = vec![
            (
                "highest offset among equals",
                vec![master(10), up(replica(900, 100, 10)), up(replica(950, 100, 10))],
                Ok(2),
            ),
            (
                "priority before offset (lower is preferred)",
                vec![master(10), up(replica(900, 10, 10)), up(replica(950, 100, 10))],
                Ok(1),
            ),
            (
                "data before priority: never an empty replica over one with data",
                vec![master(10), up(replica(990, 1, 0)), up(replica(900, 100, 10))],
                Ok(2),
            ),
            (
                "priority 0 is never promoted",
                vec![master(10), up(replica(990, 0, 10)), up(replica(900, 100, 10))],
                Ok(2),
            ),
            (
                "ties go to the lower ordinal",
                vec![master(10), up(replica(900, 100, 10)), up(replica(900, 100, 10))],
                Ok(1),
            ),
            (
                "loading, another history, link down and a chained replica are skipped",
                vec![
                    master(10),
                    up(loading),
                    up(other_history),
                    up(link_down),
                    up(follows_other),
                    up(replica(100, 100, 10)),
                ],
                Ok(5),
            ),
            (
                "a replica that continued the master's history qualifies",
                vec![master(10), up(continued)],
                Ok(1),
            ),
            (
                "unreachable and exited pods are skipped",
                vec![
                    master(10),
                    NodeState::Unreachable { down_for_ms: 5 },
                    NodeState::Exited,
                    up(replica(1, 100, 10)),
                ],
                Ok(3),
            ),
            (
                "no replica qualifies",
                vec![
                    master(10),
                    NodeState::Exited,
                    up(replica(990, 0, 10)),
                    up(NodeInfo {
                        role: NodeRole::Replica {
                            following: Some(0),
                            link_up: false,
                        },
                        ..replica(990, 100, 10)
                    }),
                ],
                Err("no replica qualifies: ordinal 1 is not running, ordinal 2 has replica-priority 0, ordinal 3's link to the master is down"),
            ),
            (
                "a master that does not answer as one",
                vec![up(replica(1, 100, 10)), up(replica(1, 100, 10))],
                Err("the master (ordinal 0) does not answer as a master, so there is nothing to switch over from"),
            ),
            (
                "a lone master",
                vec![master(10)],
                Err("no replica qualifies: the redis has no other pod"),
            ),
        ];
        for (what, states, want) in cases {
            let got = choose_target(&obs(states), 0).map_err(|e| e.reason);
            assert_eq!(got, want.map_err(String::from), "{what}");
        }
    }
}
