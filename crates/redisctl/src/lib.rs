//! The one Redis client layer of vd: connecting to an instance, reading `INFO`, and the
//! replication operations the controller performs (switchover, password rotation).

pub mod info;
pub mod node;
pub mod switchover;

pub use info::{Info, Replication, Role};
pub use node::{Node, RedisError};
