//! Redis Cluster mode (`cluster { shards replicas_per_shard }` in a data redis): the redis's
//! own pods are the cluster's nodes, each keeping `nodes.conf` on its `data` claim, and vd's
//! controller is the cluster's manager. This module holds the rules of the block, what
//! `CLUSTER NODES` says ([`nodes`]) and the pure planner that decides every step the controller
//! takes ([`plan`]): meeting the nodes, the slot split, attaching replicas, failing a shard
//! over, fixing addresses and forgetting nodes that are gone; and how a rollout replaces the
//! nodes without losing a write ([`rollout`]).

pub mod nodes;
pub mod plan;
pub mod rollout;

pub use nodes::{parse_nodes, shards, NodesError, OpenSlot, Peer, Shard};

use super::validate::RedisProblem;
use crate::RedisSpec;

/// Hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;
/// `cluster.shards` when not written: seed 004's three masters.
pub const DEFAULT_SHARDS: u32 = 3;
/// The fewest shards: a failover needs a majority of masters to vote, and with fewer than
/// three the loss of one master leaves no majority.
pub const MIN_SHARDS: u32 = 3;
/// The most shards: each is at least one pod with its own address and memory on this host;
/// beyond this a single machine is better served by fewer, larger shards.
pub const MAX_SHARDS: u32 = 64;
/// The most replicas per shard.
pub const MAX_REPLICAS_PER_SHARD: u32 = 5;
/// `cluster-node-timeout` vd writes: how long the nodes themselves wait before marking an
/// unreachable node failed and electing a replica. vd's controller fails a crashed master
/// over at once and a hung one after `failover.down_after` (1 s by default), so this is the
/// fallback when the controller is not running; 5 s instead of Redis' 15 s keeps that
/// fallback short without flagging a node that is merely busy (a fork, a long command).
pub const NODE_TIMEOUT_MS: u64 = 5000;
/// The cluster bus port: the client port plus 10000, as Redis does by default.
pub const BUS_PORT: u16 = super::REDIS_PORT + 10000;

/// Whether the redis runs in cluster mode.
pub fn is_cluster(spec: &RedisSpec) -> bool {
    spec.cluster.is_some() && !super::topology::is_sentinel(spec)
}

/// The slots `0..SLOTS` split evenly into `parts` inclusive ranges, the first ones one slot
/// longer when the split is not exact.
pub fn even_split(parts: u32) -> Vec<(u16, u16)> {
    let parts = parts.max(1);
    let total = u32::from(SLOTS);
    let (base, extra) = (total / parts, total % parts);
    let mut out = Vec::new();
    let mut start = 0u32;
    for i in 0..parts {
        let len = base + u32::from(i < extra);
        if len == 0 {
            continue;
        }
        // Both bounds are below SLOTS, which fits u16.
        out.push((start as u16, (start + len - 1) as u16));
        start += len;
    }
    out
}

/// The rules of a `cluster` block, run by the manifest parser and the server alike. Refused:
/// the block in a sentinel sibling, a top-level `replicas` beside it (the shape sets the pod
/// count), shards or replicas out of range, a `proxy` (cluster clients reach the nodes
/// themselves), a backup `source` (a cluster backup reads every shard) and
/// `failover { automatic = false }` (the nodes fail over on their own anyway).
pub fn validate_cluster(spec: &RedisSpec) -> Vec<RedisProblem> {
    let Some(c) = &spec.cluster else {
        return Vec::new();
    };
    if super::topology::is_sentinel(spec) {
        return vec![RedisProblem::new(
            "cluster",
            "`cluster` is not allowed in a sentinel sibling",
            "sentinels do not watch a Redis Cluster (its nodes fail over among themselves, and \
             vd's controller drives it); remove the `cluster` block here, or remove the \
             `sentinel` block to make this a cluster",
        )];
    }
    let mut problems = Vec::new();
    if let Some(n) = spec.replicas {
        problems.push(RedisProblem::new(
            "replicas",
            format!("`replicas = {n}` cannot be combined with `cluster`"),
            format!(
                "a cluster's pods are its shards times (1 + replicas_per_shard), {} with this \
                 block; remove `replicas` and set `cluster {{ shards = N  replicas_per_shard = M \
                 }}` instead",
                c.nodes()
            ),
        ));
    }
    if c.shards < MIN_SHARDS {
        problems.push(RedisProblem::new(
            "cluster.shards",
            format!(
                "`cluster.shards` must be at least {MIN_SHARDS}, found {}",
                c.shards
            ),
            "a cluster fails a shard over only with a majority of masters voting, which fewer \
             than three masters cannot give after losing one; write shards = 3 (the default) or \
             more, or remove the `cluster` block and use `replicas` with `failover {}` for one \
             replicated master",
        ));
    } else if c.shards > MAX_SHARDS {
        problems.push(RedisProblem::new(
            "cluster.shards",
            format!(
                "`cluster.shards` must be at most {MAX_SHARDS}, found {}",
                c.shards
            ),
            format!(
                "every shard is a pod (plus its replicas) on this host; write shards = \
                 {MAX_SHARDS} or fewer"
            ),
        ));
    }
    if c.replicas_per_shard > MAX_REPLICAS_PER_SHARD {
        problems.push(RedisProblem::new(
            "cluster.replicas_per_shard",
            format!(
                "`cluster.replicas_per_shard` must be at most {MAX_REPLICAS_PER_SHARD}, found {}",
                c.replicas_per_shard
            ),
            "one replica per shard survives a crash; more add copies on the same host. Write \
             replicas_per_shard = 1 (the default) or 2",
        ));
    }
    if spec.failover.is_some_and(|f| !f.automatic) {
        problems.push(RedisProblem::new(
            "failover.automatic",
            "`failover { automatic = false }` cannot be combined with `cluster`",
            format!(
                "a cluster's nodes elect a new master on their own after {} s whatever vd does; \
                 vd's controller only does it sooner. Remove `automatic = false` (keep \
                 `down_after` to tune how soon a hung master is replaced)",
                NODE_TIMEOUT_MS / 1000
            ),
        ));
    }
    if spec.proxy.is_some_and(|p| p.enabled) {
        problems.push(RedisProblem::new(
            "proxy",
            "`proxy` cannot be combined with `cluster` yet",
            "cluster clients (redis-py's RedisCluster, go-redis' ClusterClient, ioredis' \
             Cluster) connect to the nodes themselves: link them with `vd redis:link` (it writes \
             REDIS_URL and REDIS_CLUSTER_NODES) and remove the `proxy` block",
        ));
    }
    if let Some(n) = spec.backup.as_ref().and_then(|b| b.source) {
        problems.push(RedisProblem::new(
            "backup.source",
            format!("`backup.source = {n}` cannot be combined with `cluster`"),
            "a cluster backup takes one file from every shard, each from a replica of that \
             shard where one is up; remove `source`",
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClusterSpec, FailoverSpec, ProxySpec, SentinelSpec};

    fn cluster(shards: u32, rps: u32) -> RedisSpec {
        RedisSpec {
            cluster: Some(ClusterSpec {
                shards,
                replicas_per_shard: rps,
            }),
            ..RedisSpec::default()
        }
    }

    #[test]
    fn even_split_covers_every_slot_once() {
        for parts in 1..=MAX_SHARDS {
            let ranges = even_split(parts);
            assert_eq!(ranges.len(), parts as usize);
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges.last().unwrap().1, SLOTS - 1);
            for w in ranges.windows(2) {
                assert_eq!(w[0].1 + 1, w[1].0);
            }
            let sizes: Vec<u32> = ranges.iter().map(|(a, b)| u32::from(*b - *a) + 1).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        }
        assert_eq!(even_split(3), [(0, 5461), (5462, 10922), (10923, 16383)]);
    }

    #[test]
    fn the_default_block_is_seed_004s_six_nodes() {
        assert_eq!(ClusterSpec::default().nodes(), 6);
        assert!(validate_cluster(&cluster(3, 1)).is_empty());
        assert!(validate_cluster(&cluster(3, 0)).is_empty());
    }

    #[test]
    fn refuses_what_cannot_work() {
        let fields = |s: &RedisSpec| -> Vec<String> {
            validate_cluster(s).into_iter().map(|p| p.field).collect()
        };
        assert_eq!(fields(&cluster(2, 1)), ["cluster.shards"]);
        assert_eq!(fields(&cluster(65, 1)), ["cluster.shards"]);
        assert_eq!(fields(&cluster(3, 6)), ["cluster.replicas_per_shard"]);
        let mut s = cluster(3, 1);
        s.replicas = Some(6);
        s.failover = Some(FailoverSpec {
            automatic: false,
            down_after_ms: 1000,
        });
        s.proxy = Some(ProxySpec::default());
        assert_eq!(fields(&s), ["replicas", "failover.automatic", "proxy"]);
        let mut s = cluster(3, 1);
        s.sentinel = Some(SentinelSpec {
            enabled: true,
            monitor: Some("data/x".into()),
        });
        assert_eq!(fields(&s), ["cluster"]);
        let mut s = cluster(3, 1);
        s.failover = Some(FailoverSpec::default());
        assert!(validate_cluster(&s).is_empty(), "down_after tuning is fine");
    }

    #[test]
    fn a_scheduled_backup_is_fine_without_a_source() {
        let mut s = cluster(3, 1);
        s.backup = Some(crate::BackupSpec {
            schedule: "@daily".into(),
            keep: 3,
            destination: None,
            source: None,
            env_from: Vec::new(),
        });
        assert!(validate_cluster(&s).is_empty());
        assert!(crate::redis::backup::validate_backup(&s).is_empty());
        if let Some(b) = s.backup.as_mut() {
            b.source = Some(4);
        }
        let problems = validate_cluster(&s);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "backup.source");
        // Said once, by the cluster's rules, not also as "no ordinal 4".
        assert!(crate::redis::backup::validate_backup(&s).is_empty());
    }
}
