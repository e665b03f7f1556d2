//! The HTTP server on the root's unix socket.

use crate::api;
use crate::controller::Controller;
use crate::error::ServerError;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

/// The socket's path under a root.
pub fn socket_path(root: &std::path::Path) -> PathBuf {
    root.join("vd.sock")
}

/// The API's routes.
pub fn router(ctl: Arc<Controller>) -> Router {
    Router::new()
        .route("/v1/health", get(api::health))
        .route("/v1/apply", post(api::apply))
        .route("/v1/resources", get(api::list))
        .route(
            "/v1/resources/{kind}/{scope}/{name}",
            get(api::describe).delete(api::delete),
        )
        .route(
            "/v1/resources/{kind}/{scope}/{name}/restart",
            post(api::restart),
        )
        .route("/v1/pods", get(api::pods))
        .route("/v1/config", get(api::config_list))
        .route(
            "/v1/config/{scope}",
            get(api::config_get).post(api::config_update),
        )
        .route("/v1/events", get(api::events))
        .route("/v1/shutdown", post(api::shutdown))
        .route("/v1/redis", get(api::redis_list))
        .route("/v1/redis/{scope}/{name}/link", post(api::redis_link))
        .route("/v1/redis/{scope}/{name}/unlink", post(api::redis_unlink))
        .route(
            "/v1/redis/{scope}/{name}/failover",
            post(api::redis_failover),
        )
        .route("/v1/redis/{scope}/{name}/info", get(api::redis_info))
        .route(
            "/v1/redis/{scope}/{name}/sentinels",
            get(api::redis_sentinels),
        )
        .route(
            "/v1/redis/{scope}/{name}/new-password",
            post(api::redis_new_password),
        )
        .route(
            "/v1/redis/{scope}/{name}/endpoints",
            get(api::redis_endpoints),
        )
        .route(
            "/v1/redis/{scope}/{name}/backup",
            post(crate::backup::api_backup),
        )
        .route(
            "/v1/redis/{scope}/{name}/backups",
            get(crate::backup::api_backups),
        )
        .route(
            "/v1/redis/{scope}/{name}/restore",
            post(crate::restore::api_restore),
        )
        .route(
            "/v1/redis/{scope}/{name}/import",
            post(crate::import::api_import),
        )
        .route("/v1/cronjobs", get(crate::cronjob::api_list))
        .route("/v1/cronjobs/{scope}/{name}", get(crate::cronjob::api_get))
        .route(
            "/v1/cronjobs/{scope}/{name}/run",
            post(crate::cronjob::api_run),
        )
        .route("/metrics", get(metrics))
        .with_state(ctl)
}

/// `GET /metrics`: the Prometheus exposition, instance gauges collected now.
async fn metrics(State(ctl): State<Arc<Controller>>) -> impl IntoResponse {
    let body = ctl.metrics.render(&ctl).await;
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body)
}

/// Binds the TCP metrics listener (`--metrics-addr`); called before the controller starts so
/// an address in use fails the command before anything runs.
pub async fn bind_metrics(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServerError::io(format!("listen for metrics on {addr}"), e))
}

/// Serves only `GET /metrics` on `listener` for the life of the process: unlike the socket,
/// this port may be reachable by others, so the API is not on it.
pub async fn serve_metrics(
    ctl: Arc<Controller>,
    listener: tokio::net::TcpListener,
) -> Result<(), ServerError> {
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::io("read the metrics listener's address", e))?;
    tracing::info!(%addr, "serving Prometheus metrics on http://{addr}/metrics");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(ctl);
    axum::serve(listener, app)
        .await
        .map_err(|e| ServerError::io(format!("serve metrics on {addr}"), e))
}

/// Serves the API on `<root>/vd.sock` (mode 0600) until a shutdown request or `stop` resolves.
pub async fn serve(
    ctl: Arc<Controller>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let path = socket_path(&ctl.root);
    // The root lock is held, so a socket file left here belongs to a dead server.
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(|e| ServerError::io(format!("listen on {}", path.display()), e))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| ServerError::io(format!("chmod {}", path.display()), e))?;
    tracing::info!(socket = %path.display(), runtime = ctl.runtime.name(), "vd server listening");
    let c = ctl.clone();
    let shutdown = async move {
        tokio::select! {
            _ = c.shutdown.notified() => {},
            _ = stop => {},
        }
    };
    axum::serve(listener, router(ctl.clone()))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| ServerError::io("serve", e))?;
    let _ = std::fs::remove_file(&path);
    Ok(())
}
