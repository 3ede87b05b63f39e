//! `/api/v1/workflows/{id}`: one workflow with its steps.

use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use taskyard_store::workflows::WorkflowDetail;
use uuid::Uuid;

/// `GET /api/v1/workflows/{id}`: the workflow (state, first error) and
/// every step in creation order, compensations included (they carry
/// `compensates`).
#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "the workflow's id")),
    responses(
        (status = 200, description = "the workflow and its steps", body = WorkflowDetail),
        (status = 404, description = "no such workflow", body = crate::error::ErrorBody),
    ))]
pub async fn get_one(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<WorkflowDetail>, ApiError> {
    let Path(raw) = id?;
    let id: Uuid = raw.parse().map_err(|_| {
        ApiError::bad_request("id", format!("`{raw}` is not a workflow id (a UUID)"))
    })?;
    let workflow = state
        .store
        .get_workflow(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no workflow has the id {id}")))?;
    Ok(Json(workflow))
}
