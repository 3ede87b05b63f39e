//! `/api/v1/nodes`: the node registry (read from Postgres), and operations
//! on one node (drain, cordon, uncordon, remove), which the resource manager
//! performs at our request over NATS.

use crate::auth::Actor;
use crate::bodies::Node;
use crate::error::ErrorBody;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::Serialize;
use taskyard_client::{ClientError, NodeOp};

/// `{"nodes": [...]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NodeList {
    pub nodes: Vec<Node>,
}

/// `GET /api/v1/nodes`: every node, with what placed tasks reserve on it.
#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes",
    responses((status = 200, description = "every node", body = NodeList)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<NodeList>, ApiError> {
    let nodes = state.store.list_nodes().await?;
    Ok(Json(NodeList {
        nodes: nodes.into_iter().map(Node::from).collect(),
    }))
}

/// `GET /api/v1/nodes/{id}`.
#[utoipa::path(get, path = "/api/v1/nodes/{id}", tag = "nodes",
    params(("id" = String, Path, description = "the node's id")),
    responses(
        (status = 200, description = "the node", body = Node),
        (status = 404, description = "no such node", body = ErrorBody),
    ))]
pub async fn get_one(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Node>, ApiError> {
    let Path(id) = id?;
    let node = state.store.get_node(&id).await?;
    node.map(|node| Json(Node::from(node)))
        .ok_or_else(|| ApiError::NotFound(format!("no node has the id `{id}`")))
}

/// A node after an operation: the resource manager's answer.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NodeOutcome {
    pub node_id: String,
    pub health: String,
    pub cordoned: bool,
    pub draining: bool,
    pub removed: bool,
}

/// `POST /api/v1/nodes/{id}/drain`: no new work, and the worker finishes
/// what it runs and leaves.
#[utoipa::path(post, path = "/api/v1/nodes/{id}/drain", tag = "nodes",
    params(("id" = String, Path, description = "the node's id")),
    responses(
        (status = 200, description = "the node after the operation", body = NodeOutcome),
        (status = 404, description = "no such node", body = ErrorBody),
        (status = 409, description = "refused in its state", body = ErrorBody),
        (status = 503, description = "the resource manager did not answer", body = ErrorBody),
    ))]
pub async fn drain(
    state: State<AppState>,
    actor: Actor,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<NodeOutcome>, ApiError> {
    operate(state, actor, id, NodeOp::Drain).await
}

/// `POST /api/v1/nodes/{id}/cordon`: no new work; running tasks go on.
#[utoipa::path(post, path = "/api/v1/nodes/{id}/cordon", tag = "nodes",
    params(("id" = String, Path, description = "the node's id")),
    responses(
        (status = 200, description = "the node after the operation", body = NodeOutcome),
        (status = 404, description = "no such node", body = ErrorBody),
        (status = 503, description = "the resource manager did not answer", body = ErrorBody),
    ))]
pub async fn cordon(
    state: State<AppState>,
    actor: Actor,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<NodeOutcome>, ApiError> {
    operate(state, actor, id, NodeOp::Cordon).await
}

/// `POST /api/v1/nodes/{id}/uncordon`: new work again.
#[utoipa::path(post, path = "/api/v1/nodes/{id}/uncordon", tag = "nodes",
    params(("id" = String, Path, description = "the node's id")),
    responses(
        (status = 200, description = "the node after the operation", body = NodeOutcome),
        (status = 404, description = "no such node", body = ErrorBody),
        (status = 503, description = "the resource manager did not answer", body = ErrorBody),
    ))]
pub async fn uncordon(
    state: State<AppState>,
    actor: Actor,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<NodeOutcome>, ApiError> {
    operate(state, actor, id, NodeOp::Uncordon).await
}

/// `DELETE /api/v1/nodes/{id}`: forgets the node; refused (409) while it is
/// alive and not drained.
#[utoipa::path(delete, path = "/api/v1/nodes/{id}", tag = "nodes",
    params(("id" = String, Path, description = "the node's id")),
    responses(
        (status = 200, description = "the node, removed", body = NodeOutcome),
        (status = 404, description = "no such node", body = ErrorBody),
        (status = 409, description = "alive and not drained", body = ErrorBody),
        (status = 503, description = "the resource manager did not answer", body = ErrorBody),
    ))]
pub async fn remove(
    state: State<AppState>,
    actor: Actor,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<NodeOutcome>, ApiError> {
    operate(state, actor, id, NodeOp::Remove).await
}

/// Asks the resource manager; `not_found` is a 404, any other refusal a 409
/// `refused` (the node's state forbids it), silence a 503.
async fn operate(
    State(state): State<AppState>,
    actor: Actor,
    id: Result<Path<String>, PathRejection>,
    op: NodeOp,
) -> Result<Json<NodeOutcome>, ApiError> {
    let Path(id) = id?;
    match state.client_for(&actor).node(op, &id).await {
        Ok(node) => Ok(Json(NodeOutcome {
            node_id: node.node_id,
            health: node.health,
            cordoned: node.cordoned,
            draining: node.draining,
            removed: node.removed,
        })),
        Err(ClientError::Refused(error)) => Err(ApiError::from_refusal(error, |field, message| {
            ApiError::Refused { field, message }
        })),
        Err(err) => Err(err.into()),
    }
}
