//! The read-only status page (`vd server --ui-addr IP:PORT`): every redis with its topology
//! drawn as SVG, its timeline and backups, and the other workloads, updated live. It is served
//! on its own listener, apart from the API socket, and shows no secret: what it renders is
//! gathered by `snapshot` (which never reads a password) and rendered by the pure `render`.

pub mod render;
pub mod snapshot;

use crate::error::ServerError;
use crate::start::Server;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;

/// Binds the status page's listener; called before the controller starts so a busy address
/// fails the command with nothing started.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServerError::io(format!("listen for the status page on {addr}"), e))
}

const HTML: &str = "text/html; charset=utf-8";

async fn page(State(s): State<Server>) -> impl IntoResponse {
    let snap = snapshot::gather(&s.ctl).await;
    (
        [
            (header::CONTENT_TYPE, HTML),
            (header::CACHE_CONTROL, "no-store"),
        ],
        render::page(&snap),
    )
}

async fn fragment(State(s): State<Server>) -> impl IntoResponse {
    let snap = snapshot::gather(&s.ctl).await;
    (
        [
            (header::CONTENT_TYPE, HTML),
            (header::CACHE_CONTROL, "no-store"),
        ],
        render::fragment(&snap),
    )
}

/// Serves the page on `listener` for the life of the process.
pub async fn serve(server: Server, listener: tokio::net::TcpListener) -> Result<(), ServerError> {
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::io("read the status page listener's address", e))?;
    tracing::info!(%addr, "serving the status page on http://{addr}/");
    let app = Router::new()
        .route("/", get(page))
        .route("/fragment", get(fragment))
        .with_state(server);
    axum::serve(listener, app)
        .await
        .map_err(|e| ServerError::io("serve the status page", e))
}
