//! The server's error type and its HTTP rendering.

use crate::types::{ErrorBody, Problem};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Everything an API call or the controller can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] vd_store::StoreError),
    /// The runtime failed.
    #[error("{0}")]
    Runtime(#[from] vd_runtime::RuntimeError),
    /// The request names something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request names something that does not exist, with what to do.
    #[error("{message}")]
    NotFoundHelp {
        /// What does not exist.
        message: String,
        /// What to do.
        help: String,
    },
    /// The request itself is malformed (a body or query that does not parse).
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// How to send it instead.
        help: Option<String>,
    },
    /// The request is invalid; `problems` says where.
    #[error("{message}")]
    Invalid {
        /// Summary.
        message: String,
        /// Field-level details.
        problems: Vec<Problem>,
    },
    /// The request conflicts with current state.
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
        /// How to resolve it.
        help: Option<String>,
    },
    /// Something the request needs does not answer (a Redis pod that is down or unreachable):
    /// retrying later may work.
    #[error("{message}")]
    Unavailable {
        /// What does not answer.
        message: String,
        /// What to check.
        help: Option<String>,
    },
    /// Something the request waited for did not happen in time.
    #[error("{message}")]
    Timeout {
        /// What did not finish.
        message: String,
        /// What to check.
        help: Option<String>,
    },
    /// Filesystem or socket trouble.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl ServerError {
    /// Wraps an IO error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// A refusal because of the current state, with what to do about it.
    pub fn conflict(message: impl Into<String>, help: impl Into<String>) -> Self {
        Self::Conflict {
            message: message.into(),
            help: Some(help.into()),
        }
    }

    /// Something the request needs does not answer, with what to check.
    pub fn unavailable(message: impl Into<String>, help: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            help: Some(help.into()),
        }
    }

    /// A single-problem validation error.
    pub fn invalid(problem: Problem) -> Self {
        Self::Invalid {
            message: problem.message.clone(),
            problems: vec![problem],
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let (status, help, problems) = match &self {
            ServerError::NotFound(_) => (StatusCode::NOT_FOUND, None, vec![]),
            ServerError::NotFoundHelp { help, .. } => {
                (StatusCode::NOT_FOUND, Some(help.clone()), vec![])
            }
            ServerError::BadRequest { help, .. } => (StatusCode::BAD_REQUEST, help.clone(), vec![]),
            ServerError::Invalid { problems, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, None, problems.clone())
            }
            ServerError::Conflict { help, .. } => (StatusCode::CONFLICT, help.clone(), vec![]),
            ServerError::Unavailable { help, .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, help.clone(), vec![])
            }
            ServerError::Timeout { help, .. } => {
                (StatusCode::GATEWAY_TIMEOUT, help.clone(), vec![])
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, None, vec![]),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
        }
        let body = ErrorBody {
            error: self.to_string(),
            help,
            problems,
        };
        (status, axum::Json(body)).into_response()
    }
}
