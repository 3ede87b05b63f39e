//! `/api/v1/workflows`: the newest workflows, and one with its steps.

use crate::bodies::{Workflow, WorkflowListItem};
use crate::routes::paging::check_limit;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most workflows one list shows.
pub const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// How many, newest first (1 to 1000, default 100).
    #[serde(default = "default_limit")]
    pub limit: u32,
}

fn default_limit() -> u32 {
    100
}

/// `{"workflows": [...]}`, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowList {
    pub workflows: Vec<WorkflowListItem>,
}

/// `GET /api/v1/workflows?limit=N`: the newest workflows with their state,
/// first error and step count.
#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows",
    params(ListParams),
    responses(
        (status = 200, description = "the newest workflows", body = WorkflowList),
        (status = 400, description = "a bad limit", body = crate::error::ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<WorkflowList>, ApiError> {
    let Query(params) = params.map_err(|err| ApiError::bad_request("query", err.body_text()))?;
    check_limit(params.limit, MAX_LIMIT)?;
    let workflows = state.store.list_workflows(params.limit).await?;
    Ok(Json(WorkflowList {
        workflows: workflows.into_iter().map(WorkflowListItem::from).collect(),
    }))
}

/// `GET /api/v1/workflows/{id}`: the workflow (state, first error) and
/// every step in creation order, compensations included (they carry
/// `compensates`).
#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "the workflow's id")),
    responses(
        (status = 200, description = "the workflow and its steps", body = Workflow),
        (status = 404, description = "no such workflow", body = crate::error::ErrorBody),
    ))]
pub async fn get_one(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Workflow>, ApiError> {
    let Path(raw) = id?;
    let id: Uuid = raw.parse().map_err(|_| {
        ApiError::bad_request("id", format!("`{raw}` is not a workflow id (a UUID)"))
    })?;
    let workflow = state
        .store
        .get_workflow(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no workflow has the id {id}")))?;
    Ok(Json(Workflow::from(workflow)))
}
