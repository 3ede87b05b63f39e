//! `/healthz`: whether this process can reach Postgres and NATS.

use crate::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use taskyard_runtime::health::Dependency;

/// `{"status": "ok", "database": "ok", "nats": "ok"}`; a failed dependency
/// reads `"unavailable"`. The cause is logged once, when the outage begins
/// ([`taskyard_runtime::health`]), and shown on the metrics port's
/// `/healthz`, not here: this port may face the world.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub database: &'static str,
    pub nats: &'static str,
}

/// `GET /healthz`: 200 when both answer, 503 otherwise. Postgres is judged
/// by the probe the service runs every second, NATS by the client's
/// connection state: a check costs nothing, however often it is asked.
#[utoipa::path(get, path = "/healthz", tag = "cluster", security(()),
    responses(
        (status = 200, description = "Postgres and NATS answer", body = Health),
        (status = 503, description = "one does not", body = Health),
    ))]
pub async fn get(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let health = taskyard_runtime::health::health();
    let database = !health.is_down(Dependency::Postgres);
    let nats = !health.is_down(Dependency::Nats)
        && state.nats.connection_state() == async_nats::connection::State::Connected;
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
