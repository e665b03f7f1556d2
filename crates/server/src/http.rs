//! The HTTP server on the root's unix socket.

use crate::api;
use crate::controller::Controller;
use crate::error::ServerError;
use axum::routing::{get, post};
use axum::Router;
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
        .with_state(ctl)
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
