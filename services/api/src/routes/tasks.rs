//! `/api/v1/tasks`: submit, get one with its history, list.

use crate::{ApiError, AppState};
use async_nats::{RequestErrorKind, client::Request};
use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use taskyard_store::Store;
use taskyard_store::tasks::{EventRow, TaskFilter, TaskRow};
use taskyard_store::workflows::TaskLinks;
use taskyard_wire::control::CancelReply;
use taskyard_wire::reply::SubmitReply;
use taskyard_wire::{TaskState, codec, subjects};
use uuid::Uuid;

/// Largest submission body accepted: the orchestrator's own default limit, so
/// a body we forward is never refused for its size alone.
pub const MAX_BODY_BYTES: usize = taskyard_wire::task::DEFAULT_MAX_SUBMISSION_BYTES;
/// How long a submission waits for the orchestrator's reply. A batch of
/// thousands is one multi-row insert, so this is generous.
pub const SUBMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Tasks per page when the client does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// Most tasks per page.
pub const MAX_LIMIT: u32 = 1000;

/// `201 {"ids": [...]}`, with `"workflow_id"` for a workflow.
#[derive(Debug, Serialize)]
pub struct Submitted {
    pub ids: Vec<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<Uuid>,
}

/// `POST /api/v1/tasks`: forwards the body (a task or an array of tasks)
/// verbatim to the orchestrator and relays its answer.
pub async fn submit(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    match forward_submission(&state.nats, body?).await? {
        SubmitReply::Accepted { ids, workflow_id } => {
            Ok((StatusCode::CREATED, Json(Submitted { ids, workflow_id })))
        }
        SubmitReply::Refused { error } => Err(ApiError::InvalidTask {
            field: error.field,
            message: error.message,
        }),
    }
}

/// Sends a submission on `taskyard.api.submit` and reads the reply.
pub async fn forward_submission(
    client: &async_nats::Client,
    body: Bytes,
) -> Result<SubmitReply, ApiError> {
    let request = Request::new().payload(body).timeout(Some(SUBMIT_TIMEOUT));
    let reply = client
        .send_request(subjects::API_SUBMIT, request)
        .await
        .map_err(|err| match err.kind() {
            RequestErrorKind::NoResponders | RequestErrorKind::TimedOut => {
                ApiError::Unavailable(format!(
                    "the orchestrator did not answer on {} ({}); is it running?",
                    subjects::API_SUBMIT,
                    err.kind()
                ))
            }
            RequestErrorKind::MaxPayloadExceeded => ApiError::PayloadTooLarge {
                limit: client.server_info().max_payload,
            },
            _ => ApiError::Internal(
                anyhow::Error::new(err).context("sending the submission over NATS"),
            ),
        })?;
    codec::decode(&reply.payload).map_err(|err| {
        ApiError::Internal(anyhow::Error::new(err).context("reading the orchestrator's reply"))
    })
}

/// A task with its history: the task row's fields, its place in a DAG
/// (`name`, `workflow_id`, `depends_on`, `compensates`), plus `events`.
#[derive(Debug, Serialize)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: TaskRow,
    #[serde(flatten)]
    pub links: TaskLinks,
    /// Every transition, oldest first.
    pub events: Vec<EventRow>,
}

/// `GET /api/v1/tasks/{id}`.
pub async fn get_one(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<TaskDetail>, ApiError> {
    let Path(id) = id?;
    Ok(Json(load_task(&state.store, &id).await?))
}

/// Parses a task id from a path, naming `id` when it is not a UUID.
pub fn parse_task_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad_request("id", format!("`{raw}` is not a task id (a UUID)")))
}

/// A task and its history, or `not_found`.
pub async fn load_task(store: &Store, raw_id: &str) -> Result<TaskDetail, ApiError> {
    let id = parse_task_id(raw_id)?;
    let (task, links, events) = tokio::try_join!(
        store.get_task(id),
        store.task_links(id),
        store.task_events(id)
    )?;
    let task = task.ok_or_else(|| ApiError::NotFound(format!("no task has the id {id}")))?;
    Ok(TaskDetail {
        task,
        links: links.unwrap_or_default(),
        events,
    })
}

/// Query of `GET /api/v1/tasks`; everything is optional and an empty value
/// counts as absent (so a plain HTML form can send every field).
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    /// Only tasks in this state.
    pub state: Option<String>,
    /// Only tasks of this pool.
    pub pool: Option<String>,
    /// Page size, 1 to [`MAX_LIMIT`]; [`DEFAULT_LIMIT`] when absent.
    pub limit: Option<String>,
    /// Only tasks older than this `seq` (the previous page's `next_before`).
    pub before: Option<String>,
}

impl ListParams {
    /// The store filter these parameters ask for; errors name the parameter.
    pub fn filter(&self) -> Result<TaskFilter, ApiError> {
        let state = present(&self.state)
            .map(|name| {
                name.parse::<TaskState>()
                    .map_err(|err| ApiError::bad_request("state", err.to_string()))
            })
            .transpose()?;
        let limit = match present(&self.limit) {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "limit",
                        format!("`{raw}` is not a page size: use 1 to {MAX_LIMIT}"),
                    )
                })?,
        };
        let before_seq = present(&self.before)
            .map(|raw| {
                raw.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(
                        "before",
                        format!("`{raw}` is not a cursor: use the `next_before` of the last page"),
                    )
                })
            })
            .transpose()?;
        Ok(TaskFilter {
            state,
            pool: present(&self.pool).map(str::to_owned),
            before_seq,
            limit,
        })
    }
}

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// One page of tasks, newest first.
#[derive(Debug, Serialize)]
pub struct TaskPage {
    pub tasks: Vec<TaskRow>,
    /// Pass as `before` to get the next page; `null` when this page is the last.
    pub next_before: Option<i64>,
}

/// `GET /api/v1/tasks?state=&pool=&limit=&before=`.
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<TaskPage>, ApiError> {
    let Query(params) = params?;
    let filter = params.filter()?;
    let tasks = state.store.list_tasks(&filter).await?;
    // A short page is the last one; a full page may have more behind it.
    let next_before = if tasks.len() >= filter.limit as usize {
        tasks.last().map(|task| task.seq)
    } else {
        None
    };
    Ok(Json(TaskPage { tasks, next_before }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(state: &str, limit: &str, before: &str) -> ListParams {
        let some = |s: &str| Some(s.to_owned());
        ListParams {
            state: some(state),
            pool: some(""),
            limit: some(limit),
            before: some(before),
        }
    }

    #[test]
    fn empty_parameters_are_absent() {
        let filter = params("", "", "").filter().expect("all empty is valid");
        assert_eq!(filter.state, None);
        assert_eq!(filter.pool, None);
        assert_eq!(filter.before_seq, None);
        assert_eq!(filter.limit, DEFAULT_LIMIT);
    }

    #[test]
    fn bad_parameters_are_named() {
        let field = |p: ListParams| p.filter().err().and_then(|e| e.field().map(str::to_owned));
        assert_eq!(field(params("bogus", "", "")).as_deref(), Some("state"));
        assert_eq!(field(params("", "0", "")).as_deref(), Some("limit"));
        assert_eq!(field(params("", "1001", "")).as_deref(), Some("limit"));
        assert_eq!(field(params("", "", "x")).as_deref(), Some("before"));
        assert!(params("timed_out", "1000", "7").filter().is_ok());
    }
}

/// The body of a cancel: optional, `{"reason": "..."}`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    #[serde(default)]
    pub reason: Option<String>,
}

/// A task after a cancel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CancelOutcome {
    pub task_id: Uuid,
    /// `cancelled`, or the final state it had already reached.
    pub state: taskyard_wire::TaskState,
    /// Whether this request cancelled it.
    pub cancelled: bool,
}

/// `POST /api/v1/tasks/{id}/cancel`: a waiting task is cancelled at once, a
/// running one is killed on its node. A task that had already ended is
/// reported with `cancelled: false`.
pub async fn cancel(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Option<Json<CancelBody>>,
) -> Result<Json<CancelOutcome>, ApiError> {
    let Path(raw) = id?;
    let id = parse_task_id(&raw)?;
    let reason = body.and_then(|Json(body)| body.reason);
    match crate::requests::cancel(&state.nats, id, reason, crate::requests::REQUEST_TIMEOUT).await?
    {
        CancelReply::Done {
            task_id,
            state,
            cancelled,
        } => Ok(Json(CancelOutcome {
            task_id,
            state,
            cancelled,
        })),
        CancelReply::Refused { error } if crate::requests::is_task_not_found(&error) => {
            Err(ApiError::NotFound(error.message))
        }
        CancelReply::Refused { error } => Err(ApiError::Refused {
            field: error.field,
            message: error.message,
        }),
    }
}
