//! The redis endpoints of the API: thin translations between HTTP and the Redis operations.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::redis::ops::Ops;
use crate::types::{FailoverReport, FailoverRequest};
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

type Ctl = State<Arc<Controller>>;

/// `GET /v1/redis`. A cluster's mode says how much of it serves, asked live.
pub async fn list(
    State(ctl): Ctl,
) -> Result<Json<Vec<crate::redis::info::RedisView>>, ServerError> {
    let mut views = crate::redis::info::list(&ctl)?;
    for v in views.iter_mut().filter(|v| v.mode.starts_with("cluster")) {
        let id = crate::redis::facts::redis_ref(&v.scope, &v.name);
        v.mode = match crate::redis::cluster::report(&ctl, &id).await {
            Ok(Some(c)) => format!(
                "cluster: {}/{} shards, {}/16384 slots, {}",
                c.shards.len(),
                c.shards_wanted,
                c.slots_ok,
                c.state
            ),
            Ok(None) => v.mode.clone(),
            Err(e) => format!("cluster: unreachable ({e})"),
        };
    }
    Ok(Json(views))
}

/// `GET /v1/redis/{scope}/{name}/cluster`: the cluster's shards, `null` for another redis.
pub async fn cluster(
    State(ctl): Ctl,
    Path((scope, name)): Path<(String, String)>,
) -> Result<Json<Option<crate::redis::cluster::ClusterReport>>, ServerError> {
    let id = crate::redis::facts::redis_ref(&scope, &name);
    Ok(Json(crate::redis::cluster::report(&ctl, &id).await?))
}

/// `POST /v1/redis/{scope}/{name}/link`.
pub async fn link(
    State(ctl): Ctl,
    Path((scope, name)): Path<(String, String)>,
    crate::extract::Body(req): crate::extract::Body<crate::redis::link::LinkRequest>,
) -> Result<Json<BTreeMap<String, String>>, ServerError> {
    Ok(Json(crate::redis::link::link(&ctl, &scope, &name, &req)?))
}

/// Body of `POST /v1/redis/{scope}/{name}/unlink`.
#[derive(Debug, Deserialize, serde::Serialize)]
pub struct UnlinkRequest {
    /// `scope/name`.
    pub consumer: String,
    /// Don't roll the consumer.
    #[serde(default)]
    pub no_restart: bool,
}

/// `POST /v1/redis/{scope}/{name}/unlink`.
pub async fn unlink(
    State(ctl): Ctl,
    Path((scope, name)): Path<(String, String)>,
    crate::extract::Body(req): crate::extract::Body<UnlinkRequest>,
) -> Result<Json<serde_json::Value>, ServerError> {
    crate::redis::link::unlink(&ctl, &scope, &name, &req.consumer, req.no_restart)?;
    Ok(Json(serde_json::json!({ "unlinked": req.consumer })))
}

/// `POST /v1/redis/{scope}/{name}/failover`.
pub async fn failover(
    State(ops): State<Arc<Ops>>,
    Path((scope, name)): Path<(String, String)>,
    crate::extract::Body(req): crate::extract::Body<FailoverRequest>,
) -> Result<Json<FailoverReport>, ServerError> {
    Ok(Json(
        crate::redis::switchover::failover(&ops, &scope, &name, &req).await?,
    ))
}

/// `GET /v1/redis/{scope}/{name}/info`.
pub async fn info(
    State(ctl): Ctl,
    Path((scope, name)): Path<(String, String)>,
) -> Result<Json<Vec<crate::redis::info::NodeInfo>>, ServerError> {
    Ok(Json(crate::redis::info::info(&ctl, &scope, &name).await?))
}

/// `GET /v1/redis/{scope}/{name}/sentinels`: the sentinels watching a redis, if any.
pub async fn sentinels(
    State(ctl): Ctl,
    Path((scope, name)): Path<(String, String)>,
) -> Result<Json<Option<crate::redis::sentinel::SentinelReport>>, ServerError> {
    Ok(Json(
        crate::redis::sentinel::report(&ctl, &scope, &name).await?,
    ))
}

/// `GET /v1/redis/{scope}/{name}/endpoints`.
pub async fn endpoints(
    State(ctl): Ctl,
    Path((scope, name)): Path<(String, String)>,
) -> Result<Json<crate::redis::info::Endpoints>, ServerError> {
    Ok(Json(crate::redis::info::endpoints(&ctl, &scope, &name)?))
}

/// `POST /v1/redis/{scope}/{name}/new-password`.
pub async fn new_password(
    State(ops): State<Arc<Ops>>,
    Path((scope, name)): Path<(String, String)>,
    crate::extract::Body(req): crate::extract::Body<UnlinkNoRestart>,
) -> Result<Json<serde_json::Value>, ServerError> {
    crate::redis::password::rotate_password(&ops, &scope, &name, req.no_restart).await?;
    Ok(Json(
        serde_json::json!({ "rotated": format!("{scope}/{name}") }),
    ))
}

/// Body with only `no_restart`.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct UnlinkNoRestart {
    /// Don't roll linked consumers.
    #[serde(default)]
    pub no_restart: bool,
}

/// `POST /v1/redis/{scope}/{name}/backup`: a cluster's shards, or one RDB.
pub async fn backup(
    State(ctl): Ctl,
    Path((scope, name)): Path<(String, String)>,
    crate::extract::Body(req): crate::extract::Body<crate::redis::backup::BackupRequest>,
) -> Result<Json<crate::redis::backup::BackupReport>, ServerError> {
    let id = crate::redis::facts::redis_ref(&scope, &name);
    if is_cluster(&ctl, &id) {
        return Ok(Json(
            crate::redis::cluster_backup::backup(&ctl, &id, &req, false).await?,
        ));
    }
    Ok(Json(
        crate::redis::backup::backup(&ctl, &scope, &name, &req).await?,
    ))
}

/// `POST /v1/redis/{scope}/{name}/restore`: a cluster's shards from an index, or one RDB.
pub async fn restore(
    State(ops): State<Arc<Ops>>,
    Path((scope, name)): Path<(String, String)>,
    crate::extract::Body(req): crate::extract::Body<crate::redis::restore::RestoreRequest>,
) -> Result<Json<crate::redis::restore::RestoreReport>, ServerError> {
    let id = crate::redis::facts::redis_ref(&scope, &name);
    if is_cluster(&ops.ctl, &id) {
        return Ok(Json(
            crate::redis::cluster_backup::restore(&ops, &id, &req).await?,
        ));
    }
    Ok(Json(
        crate::redis::restore::restore(&ops, &scope, &name, &req).await?,
    ))
}

fn is_cluster(ctl: &Controller, id: &vd_core::ResourceRef) -> bool {
    crate::redis::facts::load(ctl, id).is_ok_and(|s| vd_core::redis::cluster::is_cluster(&s))
}
