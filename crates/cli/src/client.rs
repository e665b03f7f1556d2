//! A small HTTP/JSON client for the server's unix socket.

use crate::error::CliError;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};
use vd_server::types::ErrorBody;

/// Talks to one server.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for the server of `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            socket: vd_server::http::socket_path(root),
        }
    }

    /// Whether a server answers.
    pub async fn alive(&self) -> bool {
        self.get::<vd_server::types::Health>("/v1/health")
            .await
            .is_ok()
    }

    /// GET a JSON resource.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    /// POST a JSON body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CliError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// DELETE.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.call(Method::DELETE, path, None::<&()>).await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, CliError> {
        let no_server = || CliError::NoServer {
            socket: self.socket.clone(),
        };
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|_| no_server())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| no_server())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let bytes = match body {
            Some(b) => {
                serde_json::to_vec(b).map_err(|e| CliError::io("encode request", e.into()))?
            }
            None => Vec::new(),
        };
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("host", "vd")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| CliError::io("build request", std::io::Error::other(e)))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| CliError::io("request", std::io::Error::other(e)))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CliError::io("read response", std::io::Error::other(e)))?
            .to_bytes();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body).trim().to_string();
            let err: ErrorBody = serde_json::from_slice(&body).unwrap_or(ErrorBody {
                // An answer without vd's error body (an older server lacking the route, a
                // proxy in between): say what came back rather than nothing.
                error: if text.is_empty() {
                    format!("the server answered {status} to {method} {path}")
                } else {
                    format!("the server answered {status} to {method} {path}: {text}")
                },
                help: (status == hyper::StatusCode::NOT_FOUND).then(|| {
                    "the server may be older than this vd; restart it with this vd binary".into()
                }),
                problems: vec![],
            });
            // One field's problem (a refused `vd scale`): its own help is the error's help.
            let help = match (err.help, err.problems.as_slice()) {
                (None, [one]) => one.help.clone(),
                (help, _) => help,
            };
            return Err(CliError::Api {
                status: status.as_u16(),
                message: err.error,
                help,
                problems: err.problems,
            });
        }
        serde_json::from_slice(&body).map_err(|e| CliError::io("decode response", e.into()))
    }
}
