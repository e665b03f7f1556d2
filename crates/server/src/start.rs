//! The composition root: opens the controller context, builds the Redis side and the cronjob
//! scheduler over it, registers the Redis side's pod hooks, adopts the pods an earlier server
//! left running, and starts every task. Nothing else in the crate spawns a long-lived task, so
//! this is the one place to read what a running server does.

use crate::error::ServerError;
use crate::orchestration::controller::{Controller, ServerConfig};
use crate::orchestration::cronjob::Cronjobs;
use crate::redis::hooks::RedisHooks;
use crate::redis::ops::Ops;
use axum::extract::FromRef;
use std::sync::Arc;

/// A running server: the contexts its API handlers need.
#[derive(Clone)]
pub struct Server {
    /// The controller context.
    pub ctl: Arc<Controller>,
    /// The Redis side.
    pub redis: Arc<Ops>,
    /// The cronjob scheduler.
    pub cronjobs: Arc<Cronjobs>,
}

impl FromRef<Server> for Arc<Controller> {
    fn from_ref(s: &Server) -> Self {
        s.ctl.clone()
    }
}

impl FromRef<Server> for Arc<Ops> {
    fn from_ref(s: &Server) -> Self {
        s.redis.clone()
    }
}

impl FromRef<Server> for Arc<Cronjobs> {
    fn from_ref(s: &Server) -> Self {
        s.cronjobs.clone()
    }
}

impl Server {
    /// Opens the root (taking its lock) and the store, adopts pods left by an earlier server,
    /// and starts the reconcile loop and every Redis and cronjob task.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        let ctl = Controller::open(config)?;
        let redis = Ops::new(ctl.clone());
        let cronjobs = Cronjobs::new(ctl.clone());
        // Before any pod is supervised: a master found dead at adoption must already wait
        // for its failover.
        ctl.set_hooks(Arc::new(RedisHooks::new(&redis)));
        crate::orchestration::supervisor::adopt(&ctl).await?;
        tokio::spawn(ctl.clone().reconcile_loop());
        tokio::spawn(ctl.clone().rotate_logs_loop());
        tokio::spawn(ctl.clone().renew_certificates_loop());
        tokio::spawn(crate::redis::sentinel::follow(redis.clone()));
        // Before the failover task: an interrupted import's redis stays paused until its
        // master is detached from the source.
        crate::redis::import::recover(&redis);
        tokio::spawn(crate::redis::failover::run(redis.clone()));
        tokio::spawn(crate::redis::cluster::run(redis.clone()));
        tokio::spawn(crate::redis::backup_schedule::run(redis.clone()));
        tokio::spawn(crate::orchestration::cronjob::run(cronjobs.clone()));
        Ok(Server {
            ctl,
            redis,
            cronjobs,
        })
    }
}
