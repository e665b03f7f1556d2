//! The pure core of vd: plain data and decisions over it, no IO.
//!
//! Everything here is unit-tested without processes: the resource model shared by the CLI and
//! the server, pod naming, env composition, template rendering, spec hashing and the rollout
//! planner that decides which pod to create, replace or remove next.

pub mod duration;
pub mod env;
pub mod event;
pub mod hash;
pub mod hosts;
pub mod model;
pub mod naming;
pub mod pod;
pub mod redis;
pub mod rollout;
pub mod schedule;
pub mod template;
pub mod workload;

pub use model::*;
