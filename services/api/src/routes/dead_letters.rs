//! `/api/v1/dead-letters`: messages a consumer gave up on after its max
//! deliveries, with their raw payload and why (kept by the pool manager).

use crate::bodies::DeadLetter;
use crate::error::ErrorBody;
use crate::routes::paging::{check_limit, decode_cursor, encode_cursor, next_position};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

/// Most dead letters one page shows.
pub const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// The previous page's `next_cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// The kind of a cursor of this list (a dead letter's id).
pub const DEAD_LETTERS_CURSOR: &str = "dead-letters";

fn default_limit() -> u32 {
    100
}

/// `{"dead_letters": [...]}`, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetter>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/dead-letters?limit=N`.
#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "cluster",
    params(
        ("limit" = Option<u32>, Query, description = "1 to 1000; 100 when absent"),
        ("cursor" = Option<String>, Query, description = "the previous page's `next_cursor`"),
    ),
    responses(
        (status = 200, description = "dead letters, newest first", body = DeadLetterList),
        (status = 400, description = "a bad parameter", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let Query(params) = params.map_err(|err| ApiError::bad_request("query", err.body_text()))?;
    check_limit(params.limit, MAX_LIMIT)?;
    let before = params
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|raw| decode_cursor(DEAD_LETTERS_CURSOR, raw, "cursor"))
        .transpose()?;
    let dead_letters = state
        .store
        .list_dead_letters_before(params.limit, before)
        .await?;
    let next_cursor = next_position(&dead_letters, params.limit, |d| d.id)
        .map(|id| encode_cursor(DEAD_LETTERS_CURSOR, id));
    Ok(Json(DeadLetterList {
        dead_letters: dead_letters.into_iter().map(DeadLetter::from).collect(),
        next_cursor,
    }))
}
