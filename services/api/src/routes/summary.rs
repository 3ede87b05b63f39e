//! `/api/v1/summary`: counts for a dashboard.

use crate::bodies::NodeHealthState;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use std::collections::BTreeMap;
use taskyard_store::Store;
use taskyard_wire::TaskState;

/// `{"states": {"queued": n, ...}, "nodes": {"alive": n, ...}}`. Every state
/// and every health is present, with 0 when nothing is in it, so clients need
/// no list of names of their own.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub states: BTreeMap<&'static str, i64>,
    pub nodes: BTreeMap<&'static str, i64>,
}

/// `GET /api/v1/summary`.
#[utoipa::path(get, path = "/api/v1/summary", tag = "cluster",
    responses((status = 200, description = "tasks per state, nodes per health", body = Summary)))]
pub async fn get(State(state): State<AppState>) -> Result<Json<Summary>, ApiError> {
    Ok(Json(summarize(&state.store).await?))
}

/// Task counts by state and node counts by health.
pub async fn summarize(store: &Store) -> Result<Summary, ApiError> {
    let (counts, nodes) = tokio::try_join!(store.state_counts(None), store.list_nodes())?;
    let mut states: BTreeMap<&'static str, i64> =
        TaskState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for (state, n) in counts {
        states.insert(state.as_str(), n);
    }
    let mut health: BTreeMap<&'static str, i64> = NodeHealthState::ALL
        .iter()
        .map(|h| (h.as_str(), 0))
        .collect();
    for node in &nodes {
        *health
            .entry(NodeHealthState::from(node.health).as_str())
            .or_default() += 1;
    }
    Ok(Summary {
        states,
        nodes: health,
    })
}
