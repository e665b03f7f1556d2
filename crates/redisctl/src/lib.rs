//! The one Redis client layer of vd: connecting to an instance, reading `INFO`, and the
//! replication operations the controller performs (switchover, password rotation), and
//! redis-sentinel queries, commands and failover announcements.

pub mod cluster;
mod conn;
pub mod info;
pub mod migrate;
pub mod node;
pub mod rdb;
pub mod sentinel;
pub mod switchover;

pub use conn::{tls_provider, Access, RedisError, TlsTrust};
pub use info::{Info, Replication, Role};
pub use node::Node;
pub use sentinel::{
    parse_failover_event, parse_promotion, parse_switch_master, watch_failovers, FailoverEvent,
    Promotion, Sentinel, SwitchMaster,
};
