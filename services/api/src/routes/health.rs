//! `/healthz`: whether this process can reach Postgres and NATS.

use crate::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use std::time::Duration;

/// How long the database may take to answer a health check.
pub const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `{"status": "ok", "database": "ok", "nats": "ok"}`; a failed dependency
/// reads `"unavailable"` (the cause is logged, not shown).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub database: &'static str,
    pub nats: &'static str,
}

/// `GET /healthz`: 200 when both answer, 503 otherwise.
#[utoipa::path(get, path = "/healthz", tag = "cluster", security(()),
    responses(
        (status = 200, description = "Postgres and NATS answer", body = Health),
        (status = 503, description = "one does not", body = Health),
    ))]
pub async fn get(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let database = match tokio::time::timeout(DATABASE_CHECK_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "health check: Postgres does not answer");
            false
        }
        Err(_) => {
            tracing::warn!(timeout = ?DATABASE_CHECK_TIMEOUT, "health check: Postgres is too slow");
            false
        }
    };
    let nats = state.nats.connection_state() == async_nats::connection::State::Connected;
    if !nats {
        tracing::warn!("health check: not connected to NATS");
    }
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let (status, overall) = if database && nats {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        status,
        Json(Health {
            status: overall,
            database: word(database),
            nats: word(nats),
        }),
    )
}
