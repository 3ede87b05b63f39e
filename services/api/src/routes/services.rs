//! `/api/v1/services`: the NATS micro services on the bus.

use crate::discovery::{self, DISCOVERY_WINDOW, ServiceInstance};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use serde::Serialize;

/// `{"services": [...]}`.
#[derive(Debug, Serialize)]
pub struct ServiceList {
    pub services: Vec<ServiceInstance>,
}

/// `GET /api/v1/services`: every instance that answers `$SRV.INFO` and
/// `$SRV.STATS` within [`DISCOVERY_WINDOW`] (so it takes that long).
pub async fn list(State(state): State<AppState>) -> Result<Json<ServiceList>, ApiError> {
    let services = discovery::discover(&state.nats, DISCOVERY_WINDOW)
        .await
        .map_err(|err| ApiError::Unavailable(err.to_string()))?;
    Ok(Json(ServiceList { services }))
}
