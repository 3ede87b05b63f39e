//! The JSON API under `/api/v1`, and `/healthz`.
//!
//! Handlers are thin: they parse parameters (naming the bad one), call the
//! store or NATS, and shape the JSON. Every error is an [`ApiError`].
//!
//! [`ApiError`]: crate::ApiError

pub mod dead_letters;
pub mod health;
pub mod logs;
pub mod nodes;
pub mod paging;
pub mod pools;
pub mod services;
pub mod summary;
pub mod tasks;
pub mod tenants;
pub mod workflows;

use crate::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

/// The routes of the JSON API.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/tasks",
            get(tasks::list)
                .post(tasks::submit)
                .layer(DefaultBodyLimit::max(tasks::MAX_BODY_BYTES)),
        )
        .route("/api/v1/tasks/{id}", get(tasks::get_one))
        .route("/api/v1/workflows", get(workflows::list))
        .route("/api/v1/workflows/{id}", get(workflows::get_one))
        .route("/api/v1/tasks/{id}/cancel", post(tasks::cancel))
        .route("/api/v1/tasks/{id}/retry", post(tasks::retry))
        .route("/api/v1/tasks/{id}/events", get(tasks::events))
        .route("/api/v1/tenants", get(tenants::list))
        .route("/api/v1/tasks/{id}/logs", get(logs::page))
        .route("/api/v1/tasks/{id}/logs/stream", get(logs::stream))
        .route("/api/v1/dead-letters", get(dead_letters::list))
        .route("/api/v1/nodes", get(nodes::list))
        .route(
            "/api/v1/nodes/{id}",
            get(nodes::get_one).delete(nodes::remove),
        )
        .route("/api/v1/nodes/{id}/drain", post(nodes::drain))
        .route("/api/v1/nodes/{id}/cordon", post(nodes::cordon))
        .route("/api/v1/nodes/{id}/uncordon", post(nodes::uncordon))
        .route(
            "/api/v1/pools",
            get(pools::list)
                .post(pools::create)
                .layer(DefaultBodyLimit::max(tasks::MAX_BODY_BYTES)),
        )
        .route(
            "/api/v1/pools/{name}",
            get(pools::get_one)
                .put(pools::update)
                .delete(pools::delete)
                .layer(DefaultBodyLimit::max(tasks::MAX_BODY_BYTES)),
        )
        .route("/api/v1/services", get(services::list))
        .route("/api/v1/summary", get(summary::get))
        .route("/healthz", get(health::get))
}

/// Any path no route has: the JSON `not_found` error.
pub async fn not_found(uri: axum::http::Uri) -> crate::ApiError {
    crate::ApiError::NotFound(format!("no route is {}", uri.path()))
}

/// A known path with a method it does not have: the JSON
/// `method_not_allowed` error.
pub async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> crate::ApiError {
    crate::ApiError::MethodNotAllowed(format!("{} does not answer {method}", uri.path()))
}
