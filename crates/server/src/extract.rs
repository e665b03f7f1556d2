//! The API's request extractors and fallbacks: a body that is not the JSON a route expects, a
//! query that does not parse, an unknown route or method, each answered with vd's error body
//! (what is wrong and what to do), as every other refusal is, never axum's plain text.

use crate::error::ServerError;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, Uri};

/// A JSON request body; a body that does not parse is a 400 with vd's error body.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ServerError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(r) => Err(ServerError::BadRequest {
                message: format!(
                    "the request body is not what this route takes: {}",
                    r.body_text()
                ),
                help: Some(
                    "send a JSON object with `Content-Type: application/json` as the vd CLI does; \
                     the CLI of the same version as the server always does"
                        .into(),
                ),
            }),
        }
    }
}

/// A query string; one that does not parse is a 400 with vd's error body.
pub struct Params<T>(pub T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ServerError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Params(v)),
            Err(r) => Err(ServerError::BadRequest {
                message: format!("the query string does not parse: {}", r.body_text()),
                help: Some(
                    "see the vd CLI's `-o json` output for the fields each route takes".into(),
                ),
            }),
        }
    }
}

/// Any route the API does not have.
pub async fn unknown_route(method: Method, uri: Uri) -> ServerError {
    ServerError::NotFoundHelp {
        message: format!("no API route {method} {}", uri.path()),
        help:
            "the server may be older or newer than this client: use the vd binary the server runs"
                .into(),
    }
}
