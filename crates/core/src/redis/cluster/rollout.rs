//! How a rollout replaces a cluster's pods without losing a write: a pod that is a shard's
//! master hands its slots to an in-sync replica first (`CLUSTER FAILOVER`, which stops the
//! master's writes until the replica has them all), and no pod goes while another replica is
//! still syncing, so every shard keeps a replica to hand over to. Pure: the controller builds
//! the view from `CLUSTER NODES` and each replica's `INFO replication`, and executes the step.

/// One pod of the cluster as the rollout sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its pod's ordinal.
    pub ordinal: u32,
    /// What it is in the cluster.
    pub role: Role,
}

/// A node's part in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The master of shard `shard` (numbered as `shards` numbers them).
    Master {
        /// Its shard.
        shard: usize,
    },
    /// A replica of shard `shard`'s master; `linked`: its replication link is up and it is not
    /// loading, so it holds the shard's data.
    Replica {
        /// Its shard.
        shard: usize,
        /// In sync with the master.
        linked: bool,
    },
    /// Neither (a master without slots, a node not met yet).
    Other,
}

/// What the rollout does about the pod it wants to replace next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Replace it now.
    Replace,
    /// Move its shard's master role to an in-sync replica first (`vd redis:failover --shard`).
    HandOver {
        /// The shard it is the master of.
        shard: usize,
    },
    /// Not yet: a replica is still syncing (its shard would have nobody to hand over to).
    Wait,
}

/// The step for replacing pod `replacing` of the cluster `nodes` describes. A pod the view does
/// not know (not started, not met) is replaced: it serves nothing.
pub fn step(nodes: &[Node], replacing: u32) -> Step {
    let others_linked = nodes
        .iter()
        .all(|n| n.ordinal == replacing || !matches!(n.role, Role::Replica { linked: false, .. }));
    match nodes
        .iter()
        .find(|n| n.ordinal == replacing)
        .map(|n| &n.role)
    {
        Some(Role::Master { shard }) => {
            let replicas: Vec<bool> = nodes
                .iter()
                .filter_map(|n| match n.role {
                    Role::Replica { shard: s, linked } if s == *shard => Some(linked),
                    _ => None,
                })
                .collect();
            if replicas.is_empty() {
                // Nobody to hand over to: the shard is down while its one pod restarts.
                Step::Replace
            } else if replicas.contains(&true) && others_linked {
                Step::HandOver { shard: *shard }
            } else {
                Step::Wait
            }
        }
        _ if others_linked => Step::Replace,
        _ => Step::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ordinal: u32, shard: usize) -> Node {
        Node {
            ordinal,
            role: Role::Master { shard },
        }
    }

    fn r(ordinal: u32, shard: usize, linked: bool) -> Node {
        Node {
            ordinal,
            role: Role::Replica { shard, linked },
        }
    }

    #[test]
    fn step_table() {
        // Seed 004's layout: masters 0..2, replica 3 of shard 0, 4 of 1, 5 of 2.
        let all = || {
            vec![
                m(0, 0),
                m(1, 1),
                m(2, 2),
                r(3, 0, true),
                r(4, 1, true),
                r(5, 2, true),
            ]
        };
        let with = |o: u32, n: Node| {
            let mut v = all();
            v.retain(|x| x.ordinal != o);
            v.push(n);
            v
        };
        let cases: Vec<(&str, Vec<Node>, u32, Step)> = vec![
            ("a linked replica goes", all(), 5, Step::Replace),
            (
                "a master hands over first",
                all(),
                0,
                Step::HandOver { shard: 0 },
            ),
            (
                "a master whose replica syncs waits",
                with(3, r(3, 0, false)),
                0,
                Step::Wait,
            ),
            (
                "a replica waits while another replica syncs",
                with(3, r(3, 0, false)),
                5,
                Step::Wait,
            ),
            (
                "a master waits while another shard's replica syncs",
                with(5, r(5, 2, false)),
                0,
                Step::Wait,
            ),
            (
                "a syncing replica itself may go",
                with(3, r(3, 0, false)),
                3,
                Step::Replace,
            ),
            (
                "a master without replicas goes (downtime)",
                vec![m(0, 0), m(1, 1), m(2, 2)],
                1,
                Step::Replace,
            ),
            (
                "a slotless master goes",
                with(
                    4,
                    Node {
                        ordinal: 4,
                        role: Role::Other,
                    },
                ),
                4,
                Step::Replace,
            ),
            ("a pod the view lacks goes", all(), 9, Step::Replace),
            (
                "after a handover the old master is a linked replica",
                vec![
                    m(3, 0),
                    m(1, 1),
                    m(2, 2),
                    r(0, 0, true),
                    r(4, 1, true),
                    r(5, 2, true),
                ],
                0,
                Step::Replace,
            ),
        ];
        for (what, nodes, replacing, want) in cases {
            assert_eq!(step(&nodes, replacing), want, "{what}");
        }
    }
}
