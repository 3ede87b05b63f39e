//! `/api/v1/dead-letters`: messages a consumer gave up on after its max
//! deliveries, with their raw payload and why (kept by the pool manager).

use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use taskyard_store::dead_letters::DeadLetterRow;

/// Most dead letters one page shows.
pub const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "default_limit")]
    pub limit: u32,
}

fn default_limit() -> u32 {
    100
}

/// `{"dead_letters": [...]}`, newest first.
#[derive(Debug, Serialize)]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetterRow>,
}

/// `GET /api/v1/dead-letters?limit=N`.
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let Query(params) = params.map_err(|err| ApiError::bad_request("query", err.body_text()))?;
    if params.limit == 0 || params.limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let dead_letters = state.store.list_dead_letters(params.limit).await?;
    Ok(Json(DeadLetterList { dead_letters }))
}
