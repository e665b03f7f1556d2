//! The vd controller: an HTTP/JSON API on a unix socket, a level-triggered reconcile loop
//! that turns stored specs into pods, and one supervisor task per pod for restarts and probes.

pub mod api;
pub mod assets;
pub mod backup;
pub mod backup_schedule;
pub mod controller;
pub mod cronjob;
pub mod error;
pub mod exclusive;
pub mod failover;
pub mod http;
pub mod import;
pub mod metrics;
pub mod objstore;
pub mod probes;
pub mod proxy;
pub mod redis;
pub mod resolve;
pub mod restore;
pub mod sentinel;
pub mod supervisor;
pub mod types;
pub mod workloads;

pub use controller::{Controller, ServerConfig};
pub use error::ServerError;
pub use http::serve;
pub use metrics::Metrics;
