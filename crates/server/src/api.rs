//! API handlers: thin translations between HTTP and the controller and store.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::orchestration::cronjob::Cronjobs;
use crate::types::*;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use vd_core::event::{Level, Reason};
use vd_core::{Kind, ResourceRef};
use vd_store::MetaKey;

type Ctl = State<Arc<Controller>>;

fn parse_ref(kind: &str, scope: String, name: String) -> Result<ResourceRef, ServerError> {
    let kind =
        Kind::parse(kind).ok_or_else(|| ServerError::NotFound(format!("unknown kind `{kind}`")))?;
    Ok(ResourceRef::new(kind, scope, name))
}

/// `GET /v1/health`.
pub async fn health(State(ctl): Ctl) -> Json<Health> {
    Json(Health {
        version: env!("CARGO_PKG_VERSION").into(),
        runtime: ctl.runtime.name().into(),
        pid: std::process::id(),
        root: ctl.root.display().to_string(),
    })
}

/// Query of `GET /v1/resources`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    kind: Option<String>,
}

fn view(ctl: &Controller, s: vd_store::StoredResource) -> ResourceView {
    let status = s
        .resource
        .id
        .kind
        .has_pods()
        .then(|| ctl.workload_status(&s.resource.id).unwrap_or_default());
    ResourceView {
        id: s.resource.id,
        revision: s.revision,
        spec: s.resource.spec,
        status,
        updated_ms: s.updated_ms,
    }
}

/// `GET /v1/resources`.
pub async fn list(
    State(ctl): Ctl,
    crate::extract::Params(q): crate::extract::Params<ListQuery>,
) -> Result<Json<Vec<ResourceView>>, ServerError> {
    let kind = match q.kind.as_deref() {
        None | Some("") | Some("all") => None,
        Some(k) => Some(Kind::parse(k).ok_or_else(|| {
            ServerError::NotFound(format!(
                "unknown kind `{k}`; use statefulset, deployment, asset, redis, cronjob or pods"
            ))
        })?),
    };
    let out = ctl
        .store
        .list(kind)?
        .into_iter()
        .map(|s| view(&ctl, s))
        .collect();
    Ok(Json(out))
}

fn pods_of(ctl: &Controller, id: &ResourceRef) -> Vec<PodView> {
    let mut pods: Vec<PodView> = ctl
        .pod_views()
        .into_iter()
        .filter(|p| p.kind == id.kind && p.scope == id.scope && p.name == id.name)
        .collect();
    pods.sort_by_key(|p| p.ordinal);
    pods
}

/// `GET /v1/resources/{kind}/{scope}/{name}`.
pub async fn describe(
    State(ctl): Ctl,
    Path((kind, scope, name)): Path<(String, String, String)>,
) -> Result<Json<DescribeView>, ServerError> {
    let id = parse_ref(&kind, scope, name)?;
    let stored = ctl
        .store
        .get(&id)?
        .ok_or_else(|| ServerError::NotFound(format!("{id} does not exist")))?;
    let events = ctl.store.events(Some(&id), 0, 20)?;
    let limits = match vd_core::workload::workload_of(&stored.resource) {
        Some(w)
            if w.resources.limits.cpu_millis.is_some()
                || w.resources.limits.memory_bytes.is_some() =>
        {
            Some(match ctl.runtime.limits_support() {
                Ok(()) => "enforced".to_string(),
                Err(why) => why,
            })
        }
        _ => None,
    };
    let cronjob = match id.kind {
        Kind::Cronjob => Some(crate::orchestration::cronjob::view(&ctl, &id)?),
        _ => None,
    };
    Ok(Json(DescribeView {
        cronjob,
        pods: pods_of(&ctl, &id),
        resource: view(&ctl, stored),
        events,
        limits,
        runtime: ctl.runtime.name().into(),
    }))
}

/// `DELETE /v1/resources/{kind}/{scope}/{name}?prune=`.
pub async fn delete(
    State(ctl): Ctl,
    State(cronjobs): State<Arc<Cronjobs>>,
    Path((kind, scope, name)): Path<(String, String, String)>,
    crate::extract::Params(q): crate::extract::Params<DeleteQuery>,
) -> Result<Json<serde_json::Value>, ServerError> {
    let id = parse_ref(&kind, scope, name)?;
    let stored = ctl
        .store
        .get(&id)?
        .ok_or_else(|| ServerError::NotFound(format!("{id} does not exist")))?;
    if id.kind == Kind::Asset {
        let users: Vec<String> = ctl
            .store
            .list(None)?
            .into_iter()
            .filter(|r| {
                vd_core::workload::workload_of(&r.resource).is_some_and(|w| {
                    let needle = format!("${{asset.{}.{}.", id.scope, id.name);
                    w.volumes.iter().any(|v| v.source.contains(&needle))
                        || w.env.values().any(|v| v.contains(&needle))
                        || w.command.iter().any(|c| c.contains(&needle))
                })
            })
            .map(|r| r.resource.id.to_string())
            .collect();
        if !users.is_empty() {
            return Err(ServerError::Conflict {
                message: format!("{id} is used by {}", users.join(", ")),
                help: Some("delete or change those first".into()),
            });
        }
    }
    ctl.store.delete(&id)?;
    // The resource is gone either way; a stale generation only changes the hash of a
    // resource re-created under the same name (one rolling restart).
    if let Err(e) = ctl.store.delete_meta(&MetaKey::Restart(id.clone())) {
        tracing::warn!(resource = %id, error = %e, "could not drop the restart generation");
    }
    if id.kind == Kind::Redis {
        crate::redis::proxy::remove(&ctl, &id)?;
    }
    // Running runs are stopped: "deleted" means nothing of it runs any more.
    if id.kind == Kind::Cronjob {
        crate::orchestration::cronjob::remove(&cronjobs, &id).await?;
    }
    ctl.event(
        Level::Info,
        Some(&id),
        None,
        Reason::Deleted,
        if q.prune {
            "deleted with --prune"
        } else {
            "deleted; volumes kept"
        },
    );
    ctl.notify();
    if id.kind == Kind::Asset {
        crate::orchestration::assets::remove(&ctl.assets_dir(), &id);
    }
    let mut pruned = Vec::new();
    // A delete returns once the pods are stopped, so "deleted" means nothing runs any more.
    if id.kind.has_pods() && !ctl.wait_pods_gone(&id, Duration::from_secs(60)).await {
        return Err(ServerError::Conflict {
            message: format!("pods of {id} did not stop within 60s; volumes were kept"),
            help: Some("check `vd events`, then run the delete with --prune again".into()),
        });
    }
    if q.prune {
        if let Some(w) = vd_core::workload::workload_of(&stored.resource) {
            let volumes = ctl.runtime.list_volumes().await?;
            for claim in &w.volume_claims {
                let prefix = format!("voodu-{}-{}-{}-", id.scope, id.name, claim.name);
                for v in volumes.iter().filter(|v| {
                    v.strip_prefix(&prefix)
                        .is_some_and(|o| !o.is_empty() && o.chars().all(|c| c.is_ascii_digit()))
                }) {
                    ctl.runtime.remove_volume(v).await?;
                    pruned.push(v.clone());
                }
            }
            let base = format!("{}-{}.", id.scope, id.name);
            for pod in ctl.store.addresses()?.keys() {
                if pod
                    .strip_prefix(&base)
                    .is_some_and(|o| o.chars().all(|c| c.is_ascii_digit()))
                {
                    ctl.store.release_address(pod)?;
                    // Its certificate names the address just given up.
                    ctl.certs.remove(pod);
                }
            }
        }
    }
    Ok(Json(
        serde_json::json!({ "deleted": id, "pruned_volumes": pruned }),
    ))
}

/// `POST /v1/resources/{kind}/{scope}/{name}/restart`: a rolling restart.
pub async fn restart(
    State(ctl): Ctl,
    Path((kind, scope, name)): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, ServerError> {
    let id = parse_ref(&kind, scope, name)?;
    if !id.kind.has_pods() || ctl.store.get(&id)?.is_none() {
        return Err(ServerError::NotFound(format!(
            "{id} is not a workload that exists"
        )));
    }
    let generation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos().to_string())
        .unwrap_or_default();
    ctl.store
        .set_meta(&MetaKey::Restart(id.clone()), &generation)?;
    ctl.event(
        Level::Info,
        Some(&id),
        None,
        Reason::Restart,
        "rolling restart requested",
    );
    ctl.notify();
    Ok(Json(serde_json::json!({ "restarting": id })))
}

/// `GET /v1/pods`.
pub async fn pods(State(ctl): Ctl) -> Json<Vec<PodView>> {
    let mut pods = ctl.pod_views();
    pods.sort_by(|a, b| {
        (a.kind, &a.scope, &a.name, a.ordinal).cmp(&(b.kind, &b.scope, &b.name, b.ordinal))
    });
    Json(pods)
}

/// Query naming a config level.
#[derive(Debug, Deserialize)]
pub struct ConfigQuery {
    name: Option<String>,
}

/// `GET /v1/config`: every bucket.
pub async fn config_list(State(ctl): Ctl) -> Result<Json<Vec<ConfigView>>, ServerError> {
    let mut out = Vec::new();
    for (scope, name) in ctl.store.config_buckets()? {
        let vars = ctl.store.config_get(&scope, name.as_deref())?;
        out.push(ConfigView { scope, name, vars });
    }
    Ok(Json(out))
}

/// `GET /v1/config/{scope}?name=`.
pub async fn config_get(
    State(ctl): Ctl,
    Path(scope): Path<String>,
    crate::extract::Params(q): crate::extract::Params<ConfigQuery>,
) -> Result<Json<ConfigView>, ServerError> {
    let vars = ctl.store.config_get(&scope, q.name.as_deref())?;
    Ok(Json(ConfigView {
        scope,
        name: q.name,
        vars,
    }))
}

/// `POST /v1/config/{scope}`: set and unset variables.
pub async fn config_update(
    State(ctl): Ctl,
    Path(scope): Path<String>,
    crate::extract::Body(req): crate::extract::Body<ConfigRequest>,
) -> Result<Json<ConfigView>, ServerError> {
    for k in req.set.keys().chain(req.unset.iter()) {
        if !vd_core::env::valid_env_key(k) {
            return Err(ServerError::invalid(Problem {
                resource: None,
                field: k.clone(),
                message: format!("`{k}` is not a valid variable name"),
                help: Some("use letters, digits and `_`, not starting with a digit".into()),
            }));
        }
    }
    ctl.update_config(
        &scope,
        req.name.as_deref(),
        &req.set,
        &req.unset,
        req.no_restart,
    )?;
    let vars = ctl.store.config_get(&scope, req.name.as_deref())?;
    Ok(Json(ConfigView {
        scope,
        name: req.name,
        vars,
    }))
}

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    kind: Option<String>,
    scope: Option<String>,
    name: Option<String>,
    #[serde(default)]
    after: i64,
    limit: Option<usize>,
}

/// `GET /v1/events`.
pub async fn events(
    State(ctl): Ctl,
    crate::extract::Params(q): crate::extract::Params<EventsQuery>,
) -> Result<Json<Vec<Event>>, ServerError> {
    let id = match (q.kind, q.scope, q.name) {
        (Some(k), Some(s), Some(n)) => Some(parse_ref(&k, s, n)?),
        _ => None,
    };
    Ok(Json(ctl.store.events(
        id.as_ref(),
        q.after,
        q.limit.unwrap_or(100),
    )?))
}

/// `POST /v1/shutdown`.
pub async fn shutdown(
    State(ctl): Ctl,
    crate::extract::Body(req): crate::extract::Body<ShutdownRequest>,
) -> Json<serde_json::Value> {
    if req.stop_pods {
        ctl.stop_all_pods(Duration::from_secs(60)).await;
    }
    ctl.shutdown.notify_one();
    Json(serde_json::json!({ "stopping": true }))
}

/// Body of `POST /v1/resources/{kind}/{scope}/{name}/scale`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct ScaleRequest {
    /// The new number of pods.
    pub replicas: u32,
}

/// `POST /v1/resources/{kind}/{scope}/{name}/scale`: the stored spec with a new replica count,
/// applied through the apply pipeline (validated, stored, rolled out like `vd apply`).
pub async fn scale(
    State(ctl): Ctl,
    Path((kind, scope, name)): Path<(String, String, String)>,
    crate::extract::Body(req): crate::extract::Body<ScaleRequest>,
) -> Result<Json<ApplyResponse>, ServerError> {
    let id = parse_ref(&kind, scope, name)?;
    let mut r = ctl
        .store
        .get(&id)?
        .ok_or_else(|| ServerError::NotFound(format!("{id} does not exist")))?
        .resource;
    match &mut r.spec {
        vd_core::Spec::Workload(w) => w.replicas = req.replicas,
        vd_core::Spec::Redis(s) => s.replicas = Some(req.replicas),
        _ => {
            return Err(ServerError::invalid(Problem {
                resource: Some(id.clone()),
                field: "replicas".into(),
                message: format!("{id} has no pods to scale"),
                help: Some("scale a statefulset, deployment or redis".into()),
            }))
        }
    }
    let resp = crate::apply::run(
        &ctl,
        ApplyRequest {
            resources: vec![r],
            dry_run: false,
        },
    )?;
    ctl.event(
        Level::Info,
        Some(&id),
        None,
        Reason::Scaled,
        &format!("replicas = {}", req.replicas),
    );
    Ok(Json(resp))
}

fn workload_ref(
    ctl: &Controller,
    kind: &str,
    scope: String,
    name: String,
) -> Result<ResourceRef, ServerError> {
    let id = parse_ref(kind, scope, name)?;
    if !id.kind.has_pods() || ctl.store.get(&id)?.is_none() {
        return Err(ServerError::NotFound(format!(
            "{id} is not a workload that exists"
        )));
    }
    Ok(id)
}

/// `POST /v1/resources/{kind}/{scope}/{name}/stop`: removes its pods (top-down, volumes kept)
/// until started again; the spec stays.
pub async fn stop(
    State(ctl): Ctl,
    Path((kind, scope, name)): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, ServerError> {
    let id = workload_ref(&ctl, &kind, scope, name)?;
    let changed = ctl.stop_workload(&id)?;
    if changed {
        ctl.event(
            Level::Info,
            Some(&id),
            None,
            Reason::WorkloadStopped,
            "stopped; volumes kept",
        );
    }
    Ok(Json(
        serde_json::json!({ "stopped": id, "changed": changed }),
    ))
}

/// `POST /v1/resources/{kind}/{scope}/{name}/start`: runs a stopped workload's pods again.
pub async fn start(
    State(ctl): Ctl,
    Path((kind, scope, name)): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, ServerError> {
    let id = workload_ref(&ctl, &kind, scope, name)?;
    let changed = ctl.start_workload(&id)?;
    if changed {
        ctl.event(
            Level::Info,
            Some(&id),
            None,
            Reason::WorkloadStarted,
            "started",
        );
    }
    Ok(Json(
        serde_json::json!({ "started": id, "changed": changed }),
    ))
}

/// Body of `POST /v1/pods/{pod}/exec`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct ExecRequest {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// How long it may run, ms (default 60 s).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// `POST /v1/pods/{pod}/exec`: runs a command inside a running pod (its mounts, network and
/// env) and answers with its exit code and output.
pub async fn exec(
    State(ctl): Ctl,
    Path(pod): Path<String>,
    crate::extract::Body(req): crate::extract::Body<ExecRequest>,
) -> Result<Json<vd_runtime::ExecOutput>, ServerError> {
    if req.command.is_empty() {
        return Err(ServerError::invalid(Problem {
            resource: None,
            field: "command".into(),
            message: "no command to run".into(),
            help: Some("e.g. vd exec data/cache -- redis-cli ping".into()),
        }));
    }
    let (running, env) = ctl
        .running_pod(&pod)
        .ok_or_else(|| ServerError::NotFound(format!("pod {pod} is not running")))?;
    let timeout = Duration::from_millis(req.timeout_ms.unwrap_or(60_000).max(1));
    let out = running
        .exec(&req.command, env.as_ref(), timeout)
        .await
        .map_err(|e| match e {
            vd_runtime::RuntimeError::Timeout(t) => ServerError::Timeout {
                message: format!("`{}` did not finish within {t:?}", req.command.join(" ")),
                help: Some("pass a longer --timeout".into()),
            },
            other => ServerError::from(other),
        })?;
    Ok(Json(out))
}
