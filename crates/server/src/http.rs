//! The HTTP server on the root's unix socket.

use crate::api;
use crate::error::ServerError;
use crate::redis::api as redis_api;
use crate::redis::ops::Ops;
use crate::start::Server;
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
pub fn router(server: Server) -> Router {
    Router::new()
        .route("/v1/health", get(api::health))
        .route("/v1/apply", post(crate::apply::apply))
        .route("/v1/resources", get(api::list))
        .route(
            "/v1/resources/{kind}/{scope}/{name}",
            get(api::describe).delete(api::delete),
        )
        .route(
            "/v1/resources/{kind}/{scope}/{name}/restart",
            post(api::restart),
        )
        .route(
            "/v1/resources/{kind}/{scope}/{name}/scale",
            post(api::scale),
        )
        .route("/v1/resources/{kind}/{scope}/{name}/stop", post(api::stop))
        .route(
            "/v1/resources/{kind}/{scope}/{name}/start",
            post(api::start),
        )
        .route("/v1/pods", get(api::pods))
        .route("/v1/pods/{pod}/exec", post(api::exec))
        .route("/v1/config", get(api::config_list))
        .route(
            "/v1/config/{scope}",
            get(api::config_get).post(api::config_update),
        )
        .route("/v1/events", get(api::events))
        .route("/v1/shutdown", post(api::shutdown))
        .route("/v1/redis", get(redis_api::list))
        .route("/v1/redis/{scope}/{name}/link", post(redis_api::link))
        .route("/v1/redis/{scope}/{name}/unlink", post(redis_api::unlink))
        .route(
            "/v1/redis/{scope}/{name}/failover",
            post(redis_api::failover),
        )
        .route("/v1/redis/{scope}/{name}/info", get(redis_api::info))
        .route("/v1/redis/{scope}/{name}/cluster", get(redis_api::cluster))
        .route(
            "/v1/redis/{scope}/{name}/sentinels",
            get(redis_api::sentinels),
        )
        .route(
            "/v1/redis/{scope}/{name}/new-password",
            post(redis_api::new_password),
        )
        .route(
            "/v1/redis/{scope}/{name}/endpoints",
            get(redis_api::endpoints),
        )
        .route("/v1/redis/{scope}/{name}/backup", post(redis_api::backup))
        .route(
            "/v1/redis/{scope}/{name}/backups",
            get(crate::redis::backup::api_backups),
        )
        .route("/v1/redis/{scope}/{name}/restore", post(redis_api::restore))
        .route(
            "/v1/redis/{scope}/{name}/import",
            post(crate::redis::import::api_import),
        )
        .route("/v1/cronjobs", get(crate::orchestration::cronjob::api_list))
        .route(
            "/v1/cronjobs/{scope}/{name}",
            get(crate::orchestration::cronjob::api_get),
        )
        .route(
            "/v1/cronjobs/{scope}/{name}/run",
            post(crate::orchestration::cronjob::api_run),
        )
        .route("/metrics", get(metrics))
        .fallback(crate::extract::unknown_route)
        .method_not_allowed_fallback(crate::extract::unknown_route)
        .with_state(server)
}

/// `GET /metrics`: the Prometheus exposition, instance gauges collected now.
async fn metrics(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    let body = ops.metrics.render(&ops.ctl).await;
    (
        [(header::CONTENT_TYPE, crate::redis::metrics::CONTENT_TYPE)],
        body,
    )
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
    server: Server,
    listener: tokio::net::TcpListener,
) -> Result<(), ServerError> {
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::io("read the metrics listener's address", e))?;
    tracing::info!(%addr, "serving Prometheus metrics on http://{addr}/metrics");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(server);
    axum::serve(listener, app)
        .await
        .map_err(|e| ServerError::io(format!("serve metrics on {addr}"), e))
}

/// Serves only `GET /metrics` on `listener`, with the body `render` makes at each request,
/// until the process ends: for processes other than the server (`vd proxy`).
pub async fn serve_rendered_metrics(
    listener: tokio::net::TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) -> Result<(), ServerError> {
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::io("read the metrics listener's address", e))?;
    tracing::info!(%addr, "serving Prometheus metrics on http://{addr}/metrics");
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let body = render();
            async move {
                (
                    [(header::CONTENT_TYPE, crate::redis::metrics::CONTENT_TYPE)],
                    body,
                )
            }
        }),
    );
    axum::serve(listener, app)
        .await
        .map_err(|e| ServerError::io(format!("serve metrics on {addr}"), e))
}

/// Serves the API on `<root>/vd.sock` (mode 0600) until a shutdown request or `stop` resolves.
pub async fn serve(
    server: Server,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let ctl = server.ctl.clone();
    let path = socket_path(&ctl.root);
    // The root lock is held, so a socket file left here belongs to a dead server.
    crate::tidy::remove_file(&path, "a socket left by a dead server");
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
    axum::serve(listener, router(server))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| ServerError::io("serve", e))?;
    crate::tidy::remove_file(&path, "the API socket");
    Ok(())
}
