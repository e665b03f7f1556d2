//! Every Redis operation of the server, over the generic orchestration: facts about a redis
//! (spec, password, master, pod addresses), links, the live switchover, the sentinel follower,
//! controller failover, the cluster manager, the derived proxy and its feed, backups and their schedule, S3,
//! restore, import and Redis metrics. Decisions are pure functions in `vd_core::redis`; these
//! modules gather their inputs and perform the IO.
//!
//! Layers (a module uses only those on earlier lines):
//! 1. `facts`, `state`, `exclusive`, `hold`, `backup_names`
//! 2. `link`, `feed`, `metrics`, `ha`, `info`, `validate`, `objstore`, `tls`
//! 3. `ops` (the Redis side's context)
//! 4. `master` (the one way to record a new master)
//! 5. `failover`, `cluster`, `sentinel`, `proxy`, `backup`, `restore`, `import`
//! 6. `switchover`, `password`, `cluster_backup`
//! 7. `backup_schedule` (takes a cluster's backups with `cluster_backup`, any other's with `backup`)
//! 8. `hooks` (what orchestration asks), `api` (the HTTP handlers)

pub mod api;
pub mod backup;
pub mod backup_names;
pub mod backup_schedule;
pub mod cluster;
pub mod cluster_backup;
pub mod exclusive;
pub mod facts;
pub mod failover;
pub mod feed;
pub mod ha;
pub mod hold;
pub mod hooks;
pub mod import;
pub mod info;
pub mod link;
pub mod master;
pub mod metrics;
pub mod objstore;
pub mod ops;
pub mod password;
pub mod proxy;
pub mod restore;
pub mod sentinel;
pub mod state;
pub mod switchover;
pub mod tls;
pub mod validate;
