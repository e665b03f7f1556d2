//! The vd controller: an HTTP/JSON API on a unix socket, a level-triggered reconcile loop
//! that turns stored specs into pods, and one supervisor task per pod for restarts and probes.
//!
//! Two layers, which the folders show:
//! - [`orchestration`]: generic pod orchestration (the controller context, reconcile loop,
//!   supervisors, probes, resolution of specs into launches, cronjobs). It knows nothing of
//!   Redis; where it must ask (may this pod start now? a pod exited) it calls the
//!   [`orchestration::controller::PodHooks`] registered at start.
//! - [`redis`]: every Redis operation (links, switchover, the sentinel follower, controller
//!   failover, the proxy feed, backups, restore, import, Redis metrics).
//!
//! [`start`] is the composition root that builds both and starts every task; [`apply`] is the
//! apply pipeline; [`api`] and [`http`] are the HTTP edge.

pub mod api;
pub mod apply;
pub mod error;
pub mod extract;
pub mod http;
pub mod orchestration;
pub mod redis;
pub mod start;
pub mod tidy;
pub mod types;
pub mod ui;

pub use error::ServerError;
pub use http::serve;
pub use orchestration::controller::{Controller, ServerConfig};
pub use start::Server;
