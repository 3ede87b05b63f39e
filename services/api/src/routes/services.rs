//! `/api/v1/services`: the NATS micro services on the bus.

use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use taskyard_client::{ClientError, DISCOVERY_WINDOW, ServiceInstance};

/// `{"services": [...]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceList {
    pub services: Vec<ServiceInstance>,
}

/// `GET /api/v1/services`: every instance that answers `$SRV.INFO` and
/// `$SRV.STATS` within [`DISCOVERY_WINDOW`] (so it takes that long).
#[utoipa::path(get, path = "/api/v1/services", tag = "cluster",
    responses(
        (status = 200, description = "every micro service instance on the bus", body = ServiceList),
        (status = 503, description = "NATS is unreachable", body = crate::error::ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>) -> Result<Json<ServiceList>, ApiError> {
    let services = state
        .client
        .services(DISCOVERY_WINDOW)
        .await
        .map_err(|err| match err {
            ClientError::Nats { source, .. } => {
                ApiError::Unavailable(format!("cannot ask NATS for its micro services: {source}"))
            }
            other => ApiError::Unavailable(other.to_string()),
        })?;
    Ok(Json(ServiceList { services }))
}
