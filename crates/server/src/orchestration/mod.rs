//! Generic orchestration: the controller context (store, runtime, pod table, wake-up), the
//! reconcile loop, pod supervisors and their probes, resolution of specs into launches, and
//! cronjobs. Nothing here knows Redis; the Redis side plugs in through [`controller::PodHooks`].

pub mod assets;
pub mod cert_renewal;
pub mod certs;
pub mod controller;
pub mod cronjob;
pub mod generation;
pub mod logs;
pub mod pods;
pub mod probes;
pub mod reconcile;
pub mod resolve;
pub mod supervisor;
pub mod time;
