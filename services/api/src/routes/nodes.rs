//! `/api/v1/nodes`: the node registry.

use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::Serialize;
use taskyard_store::nodes::NodeRow;

/// `{"nodes": [...]}`.
#[derive(Debug, Serialize)]
pub struct NodeList {
    pub nodes: Vec<NodeRow>,
}

/// `GET /api/v1/nodes`: every node, with what placed tasks reserve on it.
pub async fn list(State(state): State<AppState>) -> Result<Json<NodeList>, ApiError> {
    let nodes = state.store.list_nodes().await?;
    Ok(Json(NodeList { nodes }))
}

/// `GET /api/v1/nodes/{id}`.
pub async fn get_one(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<NodeRow>, ApiError> {
    let Path(id) = id?;
    let node = state.store.get_node(&id).await?;
    node.map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no node has the id `{id}`")))
}
