use super::*;
use crate::redis::cluster::{even_split, OpenSlot};

/// One node of a simulated cluster, as every node sees it.
#[derive(Clone)]
struct N {
    id: String,
    master_of: Option<u32>,
    slots: Vec<(u16, u16)>,
    epoch: u64,
    failed: bool,
}

fn id(o: u32) -> String {
    format!("{:040x}", o + 1)
}

fn ip(o: u32) -> String {
    format!("127.9.0.{}", o + 10)
}

fn master(o: u32, slots: (u16, u16)) -> N {
    N {
        id: id(o),
        master_of: None,
        slots: vec![slots],
        epoch: u64::from(o) + 1,
        failed: false,
    }
}

fn replica(o: u32, of: u32) -> N {
    N {
        id: id(o),
        master_of: Some(of),
        slots: vec![],
        epoch: 0,
        failed: false,
    }
}

fn empty(o: u32) -> N {
    N {
        id: id(o),
        master_of: None,
        slots: vec![],
        epoch: 0,
        failed: false,
    }
}

fn peer(n: &N, o: u32, me: bool) -> Peer {
    Peer {
        id: n.id.clone(),
        ip: ip(o),
        port: 6379,
        myself: me,
        master: n.master_of.is_none(),
        failed: n.failed,
        suspected: false,
        handshake: false,
        noaddr: false,
        master_id: n.master_of.map(id),
        config_epoch: n.epoch,
        connected: true,
        slots: n.slots.clone(),
        open: vec![],
    }
}

/// Every pod up, each knowing all the others as `world` says.
fn views(world: &[N]) -> BTreeMap<u32, Obs> {
    (0..world.len() as u32)
        .map(|o| {
            let peers = world
                .iter()
                .enumerate()
                .map(|(i, n)| peer(n, i as u32, i as u32 == o))
                .collect();
            (
                o,
                Obs::Up(View {
                    peers,
                    offset: 100,
                    loading: false,
                }),
            )
        })
        .collect()
}

fn input(shards: u32, rps: u32, nodes: BTreeMap<u32, Obs>) -> Input {
    let addrs = nodes.keys().map(|o| (*o, ip(*o))).collect();
    let layout = nodes.keys().map(|o| (*o, id(*o))).collect();
    Input {
        shape: ClusterSpec {
            shards,
            replicas_per_shard: rps,
        },
        nodes,
        addrs,
        layout,
        down_after_ms: 1000,
        long_running: BTreeSet::new(),
    }
}

/// The healthy seed-004 cluster: masters 0..3, replica 3+i of master i.
fn healthy() -> Vec<N> {
    let r = even_split(3);
    vec![
        master(0, r[0]),
        master(1, r[1]),
        master(2, r[2]),
        replica(3, 0),
        replica(4, 1),
        replica(5, 2),
    ]
}

fn only(p: &Plan) -> &[Action] {
    &p.actions
}

#[test]
fn a_fresh_cluster_gets_distinct_epochs_and_meets_through_the_lowest_pod() {
    let nodes: BTreeMap<u32, Obs> = (0..6)
        .map(|o| {
            let v = View {
                peers: vec![peer(&empty(o), o, true)],
                offset: 0,
                loading: false,
            };
            (o, Obs::Up(v))
        })
        .collect();
    let p = plan(&input(3, 1, nodes));
    let epochs: Vec<_> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::SetConfigEpoch { ordinal, epoch } => Some((*ordinal, *epoch)),
            _ => None,
        })
        .collect();
    assert_eq!(epochs, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]);
    let meets: Vec<_> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Meet { ordinal, peer, ip } => Some((*ordinal, *peer, ip.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(meets.len(), 10, "0 meets 1..5, and each of them meets 0");
    assert!(meets.contains(&(0, 5, ip(5))) && meets.contains(&(5, 0, ip(0))));
    assert!(matches!(p.progress, Progress::Working(_)));
}

#[test]
fn a_handshake_under_way_is_not_repeated() {
    let mut nodes = views(&(0..6).map(empty).collect::<Vec<_>>());
    if let Some(Obs::Up(v)) = nodes.get_mut(&0) {
        v.peers.retain(|p| p.id != id(5));
        v.peers.push(Peer {
            id: "ab".repeat(20),
            handshake: true,
            ..peer(&empty(5), 5, false)
        });
    }
    let p = plan(&input(3, 1, nodes));
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert!(matches!(p.progress, Progress::Working(ref w) if w.contains("learn")));
}

#[test]
fn met_nodes_get_the_slots_split_evenly_over_the_first_shards() {
    let p = plan(&input(3, 1, views(&(0..6).map(empty).collect::<Vec<_>>())));
    let r = even_split(3);
    assert_eq!(
        only(&p),
        [
            Action::AddSlots {
                ordinal: 0,
                ranges: vec![r[0]]
            },
            Action::AddSlots {
                ordinal: 1,
                ranges: vec![r[1]]
            },
            Action::AddSlots {
                ordinal: 2,
                ranges: vec![r[2]]
            },
        ]
    );
    assert_eq!(p.uncovered, 16384);
}

#[test]
fn slot_assignment_interrupted_halfway_is_finished() {
    let r = even_split(3);
    let mut world: Vec<N> = (0..6).map(empty).collect();
    world[0] = master(0, r[0]);
    let p = plan(&input(3, 1, views(&world)));
    assert_eq!(
        only(&p),
        [
            Action::AddSlots {
                ordinal: 1,
                ranges: vec![r[1]]
            },
            Action::AddSlots {
                ordinal: 2,
                ranges: vec![r[2]]
            },
        ]
    );
}

#[test]
fn slots_wait_for_every_pod() {
    let mut nodes = views(&(0..6).map(empty).collect::<Vec<_>>());
    nodes.insert(5, Obs::Missing);
    let p = plan(&input(3, 1, nodes));
    assert!(p.actions.is_empty());
}

#[test]
fn spare_nodes_replicate_the_master_with_fewest_replicas() {
    let r = even_split(3);
    let mut world = healthy();
    for o in 3..6 {
        world[o as usize] = empty(o);
    }
    world[0].slots = vec![r[0]];
    let p = plan(&input(3, 1, views(&world)));
    let rep = |o, m: u32| Action::Replicate {
        ordinal: o,
        master: id(m),
        master_ordinal: m,
    };
    assert_eq!(only(&p), [rep(3, 0), rep(4, 1), rep(5, 2)]);
}

#[test]
fn a_healthy_cluster_needs_nothing_and_holds_its_masters() {
    let p = plan(&input(3, 1, views(&healthy())));
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.progress, Progress::Healthy);
    assert_eq!(p.hold, BTreeSet::from([0, 1, 2]));
    assert_eq!(p.masters.values().sum::<u32>(), 16384);
    assert_eq!(p.uncovered, 0);
}

#[test]
fn a_crashed_master_is_replaced_by_its_own_replica_at_once() {
    let mut nodes = views(&healthy());
    nodes.insert(1, Obs::Exited);
    let p = plan(&input(3, 1, nodes));
    assert_eq!(
        only(&p),
        [Action::Failover {
            ordinal: 4,
            from: 1,
            mode: FailoverMode::Force,
            reason: FailoverReason::MasterExited
        }]
    );
}

#[test]
fn the_replica_with_the_most_history_wins() {
    let r = even_split(3);
    let world = vec![
        master(0, r[0]),
        master(1, r[1]),
        master(2, r[2]),
        replica(3, 0),
        replica(4, 0),
        replica(5, 1),
        replica(6, 1),
        replica(7, 2),
        replica(8, 2),
    ];
    let mut nodes = views(&world);
    nodes.insert(0, Obs::Exited);
    if let Some(Obs::Up(v)) = nodes.get_mut(&4) {
        v.offset = 500;
    }
    let p = plan(&input(3, 2, nodes.clone()));
    assert!(matches!(
        p.actions[..],
        [Action::Failover { ordinal: 4, .. }]
    ));
    // A loading replica cannot serve: the other one takes over.
    if let Some(Obs::Up(v)) = nodes.get_mut(&4) {
        v.loading = true;
    }
    let p = plan(&input(3, 2, nodes));
    assert!(matches!(
        p.actions[..],
        [Action::Failover { ordinal: 3, .. }]
    ));
}

#[test]
fn a_silent_master_waits_for_down_after() {
    let mut nodes = views(&healthy());
    nodes.insert(2, Obs::Unreachable { down_for_ms: 999 });
    assert!(plan(&input(3, 1, nodes.clone())).actions.is_empty());
    nodes.insert(2, Obs::Unreachable { down_for_ms: 1000 });
    assert_eq!(
        only(&plan(&input(3, 1, nodes))),
        [Action::Failover {
            ordinal: 5,
            from: 2,
            mode: FailoverMode::Force,
            reason: FailoverReason::MasterUnreachable
        }]
    );
}

#[test]
fn without_a_majority_of_masters_replicas_take_over_without_a_vote() {
    let mut nodes = views(&healthy());
    nodes.insert(0, Obs::Exited);
    nodes.insert(1, Obs::Exited);
    let p = plan(&input(3, 1, nodes));
    assert_eq!(p.actions.len(), 2);
    for a in &p.actions {
        assert!(matches!(
            a,
            Action::Failover {
                mode: FailoverMode::Takeover,
                ..
            }
        ));
    }
}

#[test]
fn a_master_without_replica_is_reported_not_failed_over() {
    let r = even_split(3);
    let world = vec![master(0, r[0]), master(1, r[1]), master(2, r[2])];
    let mut nodes = views(&world);
    nodes.insert(0, Obs::Exited);
    let p = plan(&input(3, 0, nodes));
    assert!(p.actions.is_empty());
    assert!(matches!(p.progress, Progress::Blocked(ref w) if w.contains("pod 0")));
    assert!(
        p.hold.is_empty(),
        "nothing to wait for: it restarts at once"
    );
}

#[test]
fn pods_not_created_yet_are_not_failed_over() {
    let mut nodes = views(&healthy());
    nodes.insert(1, Obs::Missing);
    let p = plan(&input(3, 1, nodes));
    assert!(p.actions.is_empty());
    assert!(matches!(p.progress, Progress::Working(_)));
    assert_eq!(
        p.hold,
        BTreeSet::from([0, 2]),
        "a pod not started yet is not held"
    );
}

#[test]
fn after_a_failover_the_higher_epoch_wins_and_nothing_more_is_done() {
    let r = even_split(3);
    let mut world = healthy();
    // 4 took over shard 1 with epoch 7; 1 restarted and still claims the slots at epoch 2
    // in its own view until it hears of that.
    world[4] = N {
        epoch: 7,
        ..master(4, r[1])
    };
    world[1] = replica(1, 4);
    let mut nodes = views(&world);
    if let Some(Obs::Up(v)) = nodes.get_mut(&1) {
        for p in v.peers.iter_mut() {
            if p.myself {
                p.master = true;
                p.master_id = None;
                p.slots = vec![r[1]];
                p.config_epoch = 2;
            }
            if p.id == id(4) {
                p.master = false;
                p.master_id = Some(id(1));
                p.slots = vec![];
            }
        }
    }
    let p = plan(&input(3, 1, nodes));
    assert_eq!(p.masters.keys().copied().collect::<Vec<_>>(), [0, 2, 4]);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
}

#[test]
fn a_pod_that_lost_its_node_id_has_the_old_one_forgotten() {
    let mut world = healthy();
    world[3] = empty(3);
    world[3].id = "fe".repeat(20);
    let mut nodes = views(&world);
    // The others still remember the old replica, failed.
    for o in [0, 1, 2, 4, 5] {
        if let Some(Obs::Up(v)) = nodes.get_mut(&o) {
            v.peers.push(Peer {
                failed: true,
                connected: false,
                ..peer(&replica(3, 0), 3, false)
            });
        }
    }
    let p = plan(&input(3, 1, nodes));
    assert_eq!(p.layout[&3], "fe".repeat(20));
    assert_eq!(p.actions.len(), 5);
    assert!(p
        .actions
        .iter()
        .all(|a| matches!(a, Action::Forget { id: i, .. } if *i == id(3))));
}

#[test]
fn a_pod_on_a_new_address_is_met_there() {
    let mut inp = input(3, 1, views(&healthy()));
    inp.addrs.insert(2, "127.9.1.99".into());
    let p = plan(&inp);
    assert_eq!(
        only(&p),
        [Action::Meet {
            ordinal: 0,
            peer: 2,
            ip: "127.9.1.99".into()
        }]
    );
}

#[test]
fn replicas_are_rebalanced_between_shards() {
    let mut world = healthy();
    world[5] = replica(5, 0);
    let p = plan(&input(3, 1, views(&world)));
    assert_eq!(
        only(&p),
        [Action::Replicate {
            ordinal: 5,
            master: id(2),
            master_ordinal: 2
        }]
    );
}

#[test]
fn a_removed_pods_node_is_forgotten_once_gone() {
    let mut world = healthy();
    world.push(replica(6, 0));
    let mut nodes = views(&world);
    nodes.remove(&6);
    let mut inp = input(3, 1, nodes);
    inp.layout.remove(&6);
    let p = plan(&inp);
    assert_eq!(p.actions.len(), 6);
    assert!(p
        .actions
        .iter()
        .all(|a| matches!(a, Action::Forget { id: i, .. } if *i == id(6))));
}

#[test]
fn a_switchover_promotes_the_linked_replica_with_most_history() {
    let c = |ordinal, offset, link_up| Candidate {
        ordinal,
        offset,
        link_up,
        loading: false,
    };
    let all = [c(3, 10, true), c(6, 20, true), c(9, 30, false)];
    assert_eq!(switchover_target(0, &all, None), Ok(6));
    assert_eq!(switchover_target(0, &all, Some(3)), Ok(3));
    assert!(switchover_target(0, &all, Some(9))
        .unwrap_err()
        .contains("not in sync"));
    assert!(switchover_target(0, &all, Some(4))
        .unwrap_err()
        .contains("not a replica of shard 0"));
    assert!(switchover_target(2, &[], None)
        .unwrap_err()
        .contains("replicas_per_shard"));
    assert!(switchover_target(1, &[c(3, 1, false)], None)
        .unwrap_err()
        .contains("no replica of shard 1 is in sync"));
}

/// The plan's `Replicate` actions as (replica, master).
fn replicates(p: &Plan) -> Vec<(u32, u32)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Replicate {
                ordinal,
                master_ordinal,
                ..
            } => Some((*ordinal, *master_ordinal)),
            _ => None,
        })
        .collect()
}

fn moves(p: &Plan) -> Vec<(u32, u32, usize)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::MoveSlots {
                from, to, slots, ..
            } => Some((*from, *to, slots.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_new_shard_gets_slots_from_the_others_a_batch_at_a_time() {
    let mut world = healthy();
    world.push(empty(6));
    world.push(empty(7));
    // First 6, the master-to-be, gets its replica: keys moved to it then have a copy.
    let p = plan(&input(4, 1, views(&world)));
    assert!(moves(&p).is_empty(), "{:?}", p.actions);
    let reps = replicates(&p);
    assert_eq!(reps, [(7, 6)]);
    world[7] = replica(7, 6);
    // Then a single slot: until 6 serves one, its shard cannot fail over.
    let p = plan(&input(4, 1, views(&world)));
    let m = moves(&p);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0].1, m[0].2), (6, 1), "{m:?}");
    let r = even_split(3);
    world[2] = master(2, (r[2].0, 16382));
    world[6] = master(6, (16383, 16383));
    let p = plan(&input(4, 1, views(&world)));
    let m = moves(&p);
    assert!(m.iter().all(|(_, to, _)| *to == 6), "{m:?}");
    assert_eq!(m.len(), 3, "a batch from each of the three");
    assert!(m.iter().all(|(_, _, n)| *n == MOVE_BATCH), "{m:?}");
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::Replicate { .. })),
        "6 is a master-to-be"
    );
    match &p.actions[0] {
        Action::MoveSlots {
            from_id,
            to_id,
            to_ip,
            slots,
            ..
        } => {
            assert_eq!(
                (from_id.as_str(), to_id.as_str()),
                (id(0).as_str(), id(6).as_str())
            );
            assert_eq!(*to_ip, ip(6));
            // The source's highest slots first.
            assert_eq!(*slots.last().unwrap(), 5461);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_balanced_scale_out_ends_with_replicas_attached() {
    let mut world = healthy();
    let r = even_split(4);
    for (o, range) in r.iter().enumerate() {
        world[o] = master(o as u32, *range);
    }
    world.truncate(3);
    world.push(master(3, r[3]));
    world.extend([replica(4, 0), replica(5, 1), empty(6), empty(7)]);
    // 4 masters 0..3 balanced, 4 and 5 replicas: 6 and 7 join the shards with none.
    let p = plan(&input(4, 1, views(&world)));
    let reps = replicates(&p);
    assert_eq!(reps, [(6, 2), (7, 3)]);
}

#[test]
fn scaling_in_drains_the_shards_of_removed_pods() {
    let r = even_split(4);
    let mut world: Vec<N> = (0..4).map(|o| master(o, r[o as usize])).collect();
    world.extend([replica(4, 0), replica(5, 1), replica(6, 2), replica(7, 3)]);
    // Shards = 3 keeps pods 0..5; master 3 is on a kept pod, the removed ones are replicas.
    let p = plan(&input(3, 1, views(&world)));
    assert!(moves(&p).is_empty(), "{:?}", p.actions);
    // With master 3 and replica 7 swapped (7 serves shard 3), 7's slots go to 0..2.
    let mut world = world.clone();
    world[3] = replica(3, 7);
    world[7] = master(7, r[3]);
    let p = plan(&input(3, 1, views(&world)));
    let m = moves(&p);
    assert!(
        !m.is_empty() && m.iter().all(|(from, to, _)| *from == 7 && *to < 3),
        "{m:?}"
    );
}

/// Three shards whose shard 1 failed over from pod 1 to pod 4 (pod 1 is its replica now).
fn shard_1_on_pod_4() -> Vec<N> {
    let r = even_split(3);
    vec![
        master(0, r[0]),
        replica(1, 4),
        master(2, r[2]),
        replica(3, 0),
        N {
            epoch: 9,
            ..master(4, r[1])
        },
        replica(5, 2),
    ]
}

#[test]
fn a_shard_on_a_removed_pod_moves_to_its_kept_replica_when_shards_would_be_missing() {
    // Shard 1's master moved to 4 (a pod the shape 3x0 removes), its replica is 1.
    let world = shard_1_on_pod_4();
    let p = plan(&input(3, 0, views(&world)));
    assert_eq!(
        only(&p),
        [Action::Promote {
            ordinal: 1,
            from: 4
        }]
    );
}

#[test]
fn a_half_moved_slot_is_finished_or_made_stable() {
    let mut nodes = views(&healthy());
    let open = |slot, peer: u32, migrating| OpenSlot {
        slot,
        peer: id(peer),
        migrating,
    };
    let set_open = |nodes: &mut BTreeMap<u32, Obs>, o: u32, list: Vec<OpenSlot>| {
        if let Some(Obs::Up(v)) = nodes.get_mut(&o) {
            for p in v.peers.iter_mut().filter(|p| p.myself) {
                p.open = list.clone();
            }
        }
    };
    set_open(&mut nodes, 0, vec![open(100, 1, true)]);
    set_open(&mut nodes, 1, vec![open(100, 0, false)]);
    let p = plan(&input(3, 1, nodes.clone()));
    assert_eq!(moves(&p), [(0, 1, 1)]);
    // A flag toward a node no pod is: dropped.
    let mut stray = nodes.clone();
    set_open(&mut stray, 1, vec![]);
    set_open(&mut stray, 0, vec![open(100, 40, true)]);
    assert_eq!(
        only(&plan(&input(3, 1, stray))),
        [Action::Stabilize {
            ordinal: 0,
            slot: 100
        }]
    );
    // The destination is gone: the source's flag is dropped.
    nodes.insert(1, Obs::Exited);
    let mut inp = input(3, 1, nodes);
    inp.down_after_ms = 1000;
    let p = plan(&inp);
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::Failover { .. })),
        "failover first"
    );
}

fn with_open(nodes: &mut BTreeMap<u32, Obs>, o: u32, list: Vec<OpenSlot>) {
    if let Some(Obs::Up(v)) = nodes.get_mut(&o) {
        for p in v.peers.iter_mut().filter(|p| p.myself) {
            p.open = list.clone();
        }
    }
}

fn open_slot(slot: u16, peer: u32, migrating: bool) -> OpenSlot {
    OpenSlot {
        slot,
        peer: id(peer),
        migrating,
    }
}

#[test]
fn a_move_whose_source_failed_over_goes_on_from_the_new_master() {
    // Shard 0's master (pod 0) was replaced by its replica 3 in the middle of moving slot 100
    // to pod 1: 3 serves shard 0's slots now and 0 is its replica (its flags gone). The move
    // goes on from 3, which holds the keys 0 had; dropping 1's flag would strand the keys
    // already moved to it.
    let r = even_split(3);
    let world = vec![
        replica(0, 3),
        master(1, r[1]),
        master(2, r[2]),
        N {
            epoch: 9,
            ..master(3, r[0])
        },
        replica(4, 1),
        replica(5, 2),
    ];
    let mut nodes = views(&world);
    with_open(&mut nodes, 1, vec![open_slot(100, 0, false)]);
    let p = plan(&input(3, 1, nodes.clone()));
    assert_eq!(moves(&p), [(3, 1, 1)], "{:?}", p.actions);
    // While 0's pod is down and 3 has not been seen taking over, the slot waits.
    nodes.insert(0, Obs::Exited);
    let mut world_before = world.clone();
    world_before[3] = replica(3, 0);
    world_before[0] = master(0, r[0]);
    let mut before = views(&world_before);
    before.insert(0, Obs::Missing);
    with_open(&mut before, 1, vec![open_slot(100, 0, false)]);
    let p = plan(&input(3, 1, before));
    assert!(
        p.actions.is_empty() && matches!(&p.progress, Progress::Working(w) if w.contains("waits")),
        "{:?} {:?}",
        p.actions,
        p.progress
    );
}

#[test]
fn a_move_whose_destination_failed_over_goes_on_to_its_new_master() {
    // Pod 1 was importing slot 100 from 0 and was replaced by its replica 4: 0 still says
    // MIGRATING to 1, which is a replica of 4 now. The rest of the slot goes to 4.
    let world = shard_1_on_pod_4();
    let mut nodes = views(&world);
    with_open(&mut nodes, 0, vec![open_slot(100, 1, true)]);
    let p = plan(&input(3, 1, nodes));
    assert_eq!(moves(&p), [(0, 4, 1)], "{:?}", p.actions);
}

#[test]
fn a_master_that_crashed_while_no_controller_watched_is_held_and_replaced() {
    // The server starts: pod 0's process is gone (its pod not created yet), its replica 3 kept
    // running from before. 0 must not start empty (3 would copy the emptiness): it is held
    // and 3 takes over.
    let mut nodes = views(&healthy());
    nodes.insert(0, Obs::Missing);
    let mut inp = input(3, 1, nodes.clone());
    inp.long_running = [1, 2, 3, 4, 5].into_iter().collect();
    let p = plan(&inp);
    assert!(p.hold.contains(&0), "{:?}", p.hold);
    assert!(
        matches!(
            only(&p),
            [Action::Failover {
                ordinal: 3,
                from: 0,
                ..
            }]
        ),
        "{:?}",
        p.actions
    );
    // A whole cluster starting again (its replicas started by this controller): nobody is
    // held and nothing fails over.
    let p = plan(&input(3, 1, nodes));
    assert!(!p.hold.contains(&0));
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::Failover { .. })),
        "{:?}",
        p.actions
    );
}
