//! The Redis Cluster commands the controller sends a node. Replies come back as Redis gives
//! them (`CLUSTER NODES` as its text): reading them is the pure core's job.

use crate::conn::RedisError;
use crate::info::Info;
use crate::node::Node;

/// How `CLUSTER FAILOVER` is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverKind {
    /// Plain: the replica and its running master agree, no acknowledged write is lost.
    Graceful,
    /// `FORCE`: without the master (it is gone); a majority of masters still votes.
    Force,
    /// `TAKEOVER`: without any vote, when most masters are gone.
    Takeover,
}

/// How a node can move slots between shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotMigration {
    /// Key by key: `CLUSTER SETSLOT IMPORTING/MIGRATING`, `MIGRATE`, `SETSLOT NODE` (every
    /// Redis Cluster; what vd does).
    Keys,
    /// Valkey 9's atomic `CLUSTER MIGRATESLOTS`, sent to the source.
    MigrateSlots,
    /// Redis 8.4's atomic `CLUSTER MIGRATION IMPORT`, sent to the target.
    Migration,
}

impl SlotMigration {
    /// From `COMMAND INFO cluster|migrateslots cluster|migration`: which of the two subcommands
    /// exist (Redis answers nil for a subcommand it does not have).
    pub fn from_known(migrateslots: bool, migration: bool) -> SlotMigration {
        match (migrateslots, migration) {
            (true, _) => SlotMigration::MigrateSlots,
            (false, true) => SlotMigration::Migration,
            (false, false) => SlotMigration::Keys,
        }
    }

    /// What `vd redis:info` says of it: what this server offers, and what vd does.
    pub fn describe(self) -> &'static str {
        match self {
            SlotMigration::Keys => "keys (MIGRATE)",
            SlotMigration::MigrateSlots => {
                "keys (MIGRATE); the server also offers atomic CLUSTER MIGRATESLOTS, not used yet"
            }
            SlotMigration::Migration => {
                "keys (MIGRATE); the server also offers atomic CLUSTER MIGRATION, not used yet"
            }
        }
    }
}

impl Node {
    /// Whether this server has an atomic slot migration, asked with `COMMAND INFO` (present
    /// since Redis 2.8.13; a subcommand it does not know comes back nil).
    pub async fn slot_migration(&mut self) -> Result<SlotMigration, RedisError> {
        let known: Vec<redis::Value> = self
            .run(
                redis::cmd("COMMAND")
                    .arg("INFO")
                    .arg("cluster|migrateslots")
                    .arg("cluster|migration"),
            )
            .await?;
        let present = |i: usize| {
            known
                .get(i)
                .is_some_and(|v| !matches!(v, redis::Value::Nil))
        };
        Ok(SlotMigration::from_known(present(0), present(1)))
    }

    /// `CLUSTER NODES`, as text.
    pub async fn cluster_nodes(&mut self) -> Result<String, RedisError> {
        self.run(redis::cmd("CLUSTER").arg("NODES")).await
    }

    /// `CLUSTER INFO` (`cluster_state`, `cluster_slots_assigned`, ...).
    pub async fn cluster_info(&mut self) -> Result<Info, RedisError> {
        let text: String = self.run(redis::cmd("CLUSTER").arg("INFO")).await?;
        Ok(Info::parse(&text))
    }

    /// `CLUSTER MEET ip port`.
    pub async fn cluster_meet(&mut self, ip: &str, port: u16) -> Result<(), RedisError> {
        let _: String = self
            .run(redis::cmd("CLUSTER").arg("MEET").arg(ip).arg(port))
            .await?;
        Ok(())
    }

    /// `CLUSTER SET-CONFIG-EPOCH epoch` (only a node that knows no other node takes it).
    pub async fn cluster_set_config_epoch(&mut self, epoch: u64) -> Result<(), RedisError> {
        let _: String = self
            .run(redis::cmd("CLUSTER").arg("SET-CONFIG-EPOCH").arg(epoch))
            .await?;
        Ok(())
    }

    /// `CLUSTER ADDSLOTSRANGE a b [a b ...]` (Redis 7.0+).
    pub async fn cluster_add_slots(&mut self, ranges: &[(u16, u16)]) -> Result<(), RedisError> {
        let mut c = redis::cmd("CLUSTER");
        c.arg("ADDSLOTSRANGE");
        for (a, b) in ranges {
            c.arg(*a).arg(*b);
        }
        let _: String = self.run(&c).await?;
        Ok(())
    }

    /// `CLUSTER REPLICATE id`.
    pub async fn cluster_replicate(&mut self, master: &str) -> Result<(), RedisError> {
        let _: String = self
            .run(redis::cmd("CLUSTER").arg("REPLICATE").arg(master))
            .await?;
        Ok(())
    }

    /// `CLUSTER FAILOVER [FORCE|TAKEOVER]`, sent to the replica that is to take over. It
    /// returns once the failover started; the promotion shows in `CLUSTER NODES`.
    pub async fn cluster_failover(&mut self, kind: FailoverKind) -> Result<(), RedisError> {
        let mut c = redis::cmd("CLUSTER");
        c.arg("FAILOVER");
        match kind {
            FailoverKind::Graceful => {}
            FailoverKind::Force => {
                c.arg("FORCE");
            }
            FailoverKind::Takeover => {
                c.arg("TAKEOVER");
            }
        }
        let _: String = self.run(&c).await?;
        Ok(())
    }

    /// `CLUSTER FORGET id`.
    pub async fn cluster_forget(&mut self, id: &str) -> Result<(), RedisError> {
        let _: String = self
            .run(redis::cmd("CLUSTER").arg("FORGET").arg(id))
            .await?;
        Ok(())
    }

    /// `CLUSTER MYID`.
    pub async fn cluster_myid(&mut self) -> Result<String, RedisError> {
        self.run(redis::cmd("CLUSTER").arg("MYID")).await
    }
}

/// What `CLUSTER SETSLOT slot ...` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetSlot<'a> {
    /// `IMPORTING id`: the destination of a move accepts `ASKING` clients for the slot.
    Importing(&'a str),
    /// `MIGRATING id`: the source sends clients of keys it no longer has to the destination.
    Migrating(&'a str),
    /// `NODE id`: the slot belongs to that node (ends a move).
    Node(&'a str),
    /// `STABLE`: drops a move's flag.
    Stable,
}

impl Node {
    /// `CLUSTER SETSLOT slot ...`.
    pub async fn cluster_setslot(&mut self, slot: u16, to: SetSlot<'_>) -> Result<(), RedisError> {
        let mut c = redis::cmd("CLUSTER");
        c.arg("SETSLOT").arg(slot);
        match to {
            SetSlot::Importing(id) => c.arg("IMPORTING").arg(id),
            SetSlot::Migrating(id) => c.arg("MIGRATING").arg(id),
            SetSlot::Node(id) => c.arg("NODE").arg(id),
            SetSlot::Stable => c.arg("STABLE"),
        };
        let _: String = self.run(&c).await?;
        Ok(())
    }
}

impl Node {
    /// Several `CLUSTER SETSLOT`s in one pipeline: one round trip, and one save of
    /// `nodes.conf` (the node writes it before it next sleeps, not per command).
    pub async fn cluster_setslots(&mut self, set: &[(u16, SetSlot<'_>)]) -> Result<(), RedisError> {
        if set.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        for (slot, to) in set {
            let c = p.cmd("CLUSTER").arg("SETSLOT").arg(*slot);
            match to {
                SetSlot::Importing(id) => c.arg("IMPORTING").arg(*id),
                SetSlot::Migrating(id) => c.arg("MIGRATING").arg(*id),
                SetSlot::Node(id) => c.arg("NODE").arg(*id),
                SetSlot::Stable => c.arg("STABLE"),
            }
            .ignore();
        }
        self.pipe::<()>(&p).await
    }

    /// `CLUSTER GETKEYSINSLOT slot count` for several slots in one pipeline: each slot's keys.
    pub async fn cluster_keys_by_slot(
        &mut self,
        slots: &[u16],
        count: usize,
    ) -> Result<Vec<Vec<Vec<u8>>>, RedisError> {
        if slots.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = redis::pipe();
        for s in slots {
            p.cmd("CLUSTER").arg("GETKEYSINSLOT").arg(*s).arg(count);
        }
        self.pipe(&p).await
    }

    /// One `MIGRATE … REPLACE AUTH pw KEYS …` per group, pipelined: in a cluster a `MIGRATE`
    /// takes the keys of one slot only, so each group is one slot's keys.
    pub async fn migrate_groups(
        &mut self,
        host: &str,
        port: u16,
        password: &str,
        groups: &[&[Vec<u8>]],
        timeout_ms: u64,
    ) -> Result<(), RedisError> {
        if groups.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        for keys in groups {
            let c = p
                .cmd("MIGRATE")
                .arg(host)
                .arg(port)
                .arg("")
                .arg(0)
                .arg(timeout_ms)
                .arg("REPLACE")
                .arg("AUTH")
                .arg(password)
                .arg("KEYS");
            for k in *keys {
                c.arg(k.as_slice());
            }
            c.ignore();
        }
        self.pipe::<()>(&p).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_slot_migration_is_named_by_the_subcommands_present() {
        assert_eq!(SlotMigration::from_known(false, false), SlotMigration::Keys);
        assert_eq!(
            SlotMigration::from_known(true, false),
            SlotMigration::MigrateSlots
        );
        assert_eq!(
            SlotMigration::from_known(false, true),
            SlotMigration::Migration
        );
        assert_eq!(
            SlotMigration::from_known(true, true),
            SlotMigration::MigrateSlots
        );
    }
}
