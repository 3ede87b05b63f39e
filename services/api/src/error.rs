//! The API's one error type, and the JSON every error response carries:
//! `{"error": {"code": "...", "message": "...", "field": "..."}}`.
//!
//! `code` is stable and meant for programs; `message` is for people; `field`
//! (when present) names the offending input. Internal errors are logged with
//! their whole cause chain and answered with a bare `internal`, so nothing about
//! the database or the network leaks to clients.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use taskyard_client::ClientError;
use taskyard_store::StoreError;
use taskyard_wire::{Rejection, RejectionCode};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The orchestrator refused the submission (400 `invalid_task`).
    #[error("{field}: {message}")]
    InvalidTask { field: String, message: String },
    /// The pool manager refused a pool operation (400 `invalid_pool`).
    #[error("{field}: {message}")]
    InvalidPool { field: String, message: String },
    /// The owner of a thing refused an operation in its current state, such
    /// as removing a node that is alive (409 `refused`).
    #[error("{field}: {message}")]
    Refused { field: String, message: String },
    /// A path or query parameter is malformed (400 `bad_request`).
    #[error("{field}: {message}")]
    BadRequest { field: String, message: String },
    /// The request body could not be read (400 `bad_request`).
    #[error("cannot read the request body: {0}")]
    BadBody(String),
    /// Nothing has this id (404 `not_found`).
    #[error("{0}")]
    NotFound(String),
    /// The body is larger than we accept (413 `payload_too_large`).
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// No token, or one that is unknown or revoked (401 `unauthorized`,
    /// with `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthorized(String),
    /// The token's role does not allow this (403 `forbidden`).
    #[error("{0}")]
    Forbidden(String),
    /// The path exists but not with this method (405 `method_not_allowed`).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A service we depend on did not answer (503 `unavailable`).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: a bug or an outage (500 `internal`, details only in the log).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A malformed parameter.
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidTask { .. }
            | ApiError::InvalidPool { .. }
            | ApiError::BadRequest { .. }
            | ApiError::BadBody(_) => StatusCode::BAD_REQUEST,
            ApiError::Refused { .. } => StatusCode::CONFLICT,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidTask { .. } => "invalid_task",
            ApiError::InvalidPool { .. } => "invalid_pool",
            ApiError::Refused { .. } => "refused",
            ApiError::BadRequest { .. } | ApiError::BadBody(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The field the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            ApiError::InvalidTask { field, .. }
            | ApiError::InvalidPool { field, .. }
            | ApiError::Refused { field, .. }
            | ApiError::BadRequest { field, .. } => Some(field.as_str()).filter(|f| !f.is_empty()),
            _ => None,
        }
    }

    /// What a client may be told: everything but the internals.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::InvalidTask { message, .. }
            | ApiError::InvalidPool { message, .. }
            | ApiError::Refused { message, .. }
            | ApiError::BadRequest { message, .. } => message.clone(),
            ApiError::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    /// An owner service's refusal (of a pool, node or cancel request) as an
    /// API error, decided by its code, never by its wording: `not_found` is
    /// a 404, and every other code is what `otherwise` makes of the field
    /// and message (a 400 `invalid_pool` for pools, a 409 `refused` for
    /// nodes and cancels), as these routes have always answered.
    pub fn from_refusal(
        error: Rejection,
        otherwise: impl FnOnce(String, String) -> ApiError,
    ) -> ApiError {
        match error.code {
            RejectionCode::NotFound => ApiError::NotFound(error.message),
            RejectionCode::Invalid
            | RejectionCode::Conflict
            | RejectionCode::UnknownPool
            | RejectionCode::Unauthorized
            | RejectionCode::Unavailable => otherwise(error.field, error.message),
        }
    }

    /// Logs an internal error with its cause chain; other errors are the
    /// client's business and are not logged.
    pub(crate) fn log(&self) {
        if let ApiError::Internal(err) = self {
            tracing::error!(error = format!("{err:#}"), "request failed");
        }
    }
}

/// The JSON body of an error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

/// `{"code", "message", "field"?}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// Stable, for programs: `bad_request`, `not_found`, `unauthorized`, …
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                field: self.field(),
                message: self.public_message(),
            },
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        if let ApiError::Unauthorized(_) = self {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"taskyard\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        ApiError::Internal(anyhow::Error::new(err).context("reading Postgres"))
    }
}

/// A request to an owner service that failed. A refusal is best turned into
/// an error by the route, which knows what it means there
/// ([`ApiError::from_refusal`]); one that reaches this is a 409 `refused`.
impl From<ClientError> for ApiError {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::Refused(error) => {
                ApiError::from_refusal(error, |field, message| ApiError::Refused { field, message })
            }
            ClientError::TooLarge { max, .. } => ApiError::PayloadTooLarge { limit: max },
            err if err.is_unavailable() => ApiError::Unavailable(err.to_string()),
            err => ApiError::Internal(anyhow::Error::new(err)),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: crate::routes::tasks::MAX_BODY_BYTES,
            }
        } else {
            ApiError::BadBody(rejection.body_text())
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request("query", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request("path", rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict(field: String, message: String) -> ApiError {
        ApiError::Refused { field, message }
    }

    #[test]
    fn a_refusal_is_answered_by_its_code_not_its_wording() {
        let missing = ApiError::from_refusal(Rejection::not_found("node_id", "gone"), conflict);
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(missing.public_message(), "gone");
        // Worded like a missing pool, but the code says otherwise.
        let worded = ApiError::from_refusal(Rejection::new("name", "no pool named `x`"), conflict);
        assert_eq!(worded.status(), StatusCode::CONFLICT);
        let alive = ApiError::from_refusal(Rejection::conflict("node_id", "alive"), conflict);
        assert_eq!(
            (alive.status(), alive.field()),
            (StatusCode::CONFLICT, Some("node_id"))
        );
    }
}
