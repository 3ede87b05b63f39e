//! `/api/v1/tasks`: submit, get one with its history, list, cancel, retry,
//! and a task's events page by page.

use crate::auth::Actor;
use crate::bodies::{Task, TaskDetail, TaskEvent};
use crate::error::ErrorBody;
use crate::routes::paging::{decode_cursor, encode_cursor, next_position, page_size, present};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use taskyard_client::ClientError;
use taskyard_store::Store;
use taskyard_store::tasks::{EventRow, TaskFilter, TaskRow};
use taskyard_store::workflows::TaskLinks;
use taskyard_wire::reply::SubmitReply;
use taskyard_wire::{TaskState, codec, subjects};
use uuid::Uuid;

/// Largest submission body accepted: the orchestrator's own default limit, so
/// a body we forward is never refused for its size alone.
pub const MAX_BODY_BYTES: usize = taskyard_wire::task::DEFAULT_MAX_SUBMISSION_BYTES;
/// Tasks per page when the client does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// Most tasks per page.
pub const MAX_LIMIT: u32 = 1000;

/// `201 {"ids": [...]}`, with `"workflow_id"` for a workflow.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Submitted {
    pub ids: Vec<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<Uuid>,
}

/// `POST /api/v1/tasks`: forwards the body (a task or an array of tasks)
/// verbatim to the orchestrator and relays its answer.
#[utoipa::path(
    post,
    path = "/api/v1/tasks",
    tag = "tasks",
    request_body(content = Object, description = "a task, an array of tasks (an atomic batch) or a workflow; see the README's task fields"),
    responses(
        (status = 201, description = "created", body = Submitted),
        (status = 400, description = "refused, naming the field", body = ErrorBody),
        (status = 503, description = "the orchestrator did not answer", body = ErrorBody),
    )
)]
pub async fn submit(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    match forward_submission(&state.client_for(&actor), body?).await? {
        SubmitReply::Accepted { ids, workflow_id } => {
            Ok((StatusCode::CREATED, Json(Submitted { ids, workflow_id })))
        }
        SubmitReply::Refused { error } => Err(ApiError::InvalidTask {
            field: error.field,
            message: error.message,
        }),
    }
}

/// Sends a submission on `taskyard.api.submit` and reads the reply: the
/// orchestrator's refusal is a reply like its acceptance; only silence and
/// a failing bus are errors.
pub async fn forward_submission(
    client: &taskyard_client::Client,
    body: Bytes,
) -> Result<SubmitReply, ApiError> {
    match client.submit(body).await {
        Ok(taskyard_client::Submitted { ids, workflow_id }) => {
            Ok(SubmitReply::Accepted { ids, workflow_id })
        }
        Err(ClientError::Refused(error)) => Ok(SubmitReply::Refused { error }),
        // It answered, and said why it could not record the submission.
        Err(err @ ClientError::Failed { .. }) => Err(ApiError::Unavailable(err.to_string())),
        // Worded for the one who submits: the orchestrator is the service
        // they may not know is missing.
        Err(err) if err.is_unavailable() => Err(ApiError::Unavailable(format!(
            "the orchestrator did not answer on {} ({}); is it running?",
            subjects::API_SUBMIT,
            match err {
                ClientError::TimedOut { .. } => "timed out",
                _ => "no responders",
            }
        ))),
        Err(err) => Err(err.into()),
    }
}

/// A task as the store holds it, with its place in a DAG and its history:
/// what [`load_task`] reads. The route answers it as a [`TaskDetail`]; the
/// console pages read these store rows directly (they are HTML, not a JSON
/// contract).
#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub task: TaskRow,
    pub links: TaskLinks,
    /// Every transition, oldest first.
    pub events: Vec<EventRow>,
}

impl From<TaskRecord> for TaskDetail {
    fn from(record: TaskRecord) -> TaskDetail {
        TaskDetail::new(record.task, record.links, record.events)
    }
}

/// `GET /api/v1/tasks/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/tasks/{id}",
    tag = "tasks",
    params(("id" = String, Path, description = "the task's id (a UUID)")),
    responses(
        (status = 200, description = "the task and its history", body = TaskDetail),
        (status = 400, description = "not a UUID", body = ErrorBody),
        (status = 404, description = "no such task", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<TaskDetail>, ApiError> {
    let Path(id) = id?;
    Ok(Json(load_task(&state.store, &id).await?.into()))
}

/// Parses a task id from a path, naming `id` when it is not a UUID.
pub fn parse_task_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad_request("id", format!("`{raw}` is not a task id (a UUID)")))
}

/// The answer for an id no task has.
fn no_task(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no task has the id {id}"))
}

/// The task with this id, or `not_found`.
pub async fn existing_task(store: &Store, id: Uuid) -> Result<TaskRow, ApiError> {
    store.get_task(id).await?.ok_or_else(|| no_task(id))
}

/// A task and its history, or `not_found`.
pub async fn load_task(store: &Store, raw_id: &str) -> Result<TaskRecord, ApiError> {
    let id = parse_task_id(raw_id)?;
    let (task, links, events) = tokio::try_join!(
        store.get_task(id),
        store.task_links(id),
        store.task_events(id)
    )?;
    let task = task.ok_or_else(|| no_task(id))?;
    Ok(TaskRecord {
        task,
        links: links.unwrap_or_default(),
        events,
    })
}

/// Query of `GET /api/v1/tasks`; everything is optional and an empty value
/// counts as absent (so a plain HTML form can send every field).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only tasks in this state.
    pub state: Option<String>,
    /// Only tasks of this pool.
    pub pool: Option<String>,
    /// Only tasks of this tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Page size, 1 to 1000; 50 when absent.
    pub limit: Option<String>,
    /// The previous page's `next_cursor` (opaque).
    #[serde(default)]
    pub cursor: Option<String>,
    /// Only tasks older than this `seq` (the previous page's `next_before`;
    /// kept for older clients, `cursor` is preferred).
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
        let limit = page_size(present(&self.limit), DEFAULT_LIMIT, MAX_LIMIT)?;
        let from_cursor = present(&self.cursor)
            .map(|raw| decode_cursor(TASKS_CURSOR, raw, "cursor"))
            .transpose()?;
        let before_seq = present(&self.before)
            .map(|raw| {
                raw.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(
                        "before",
                        format!("`{raw}` is not a cursor: use the `next_before` of the last page"),
                    )
                })
            })
            .transpose()?
            .or(from_cursor);
        Ok(TaskFilter {
            state,
            pool: present(&self.pool).map(str::to_owned),
            tenant: present(&self.tenant).map(str::to_owned),
            before_seq,
            limit,
        })
    }
}

/// One page of tasks, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    /// Pass as `cursor` to get the next page; `null` when this page is the last.
    pub next_cursor: Option<String>,
    /// The same place as a `seq`, for `before` (older clients).
    pub next_before: Option<i64>,
}

/// `GET /api/v1/tasks?state=&pool=&tenant=&limit=&cursor=`.
#[utoipa::path(
    get,
    path = "/api/v1/tasks",
    tag = "tasks",
    params(ListParams),
    responses(
        (status = 200, description = "one page of tasks, newest first", body = TaskPage),
        (status = 400, description = "a bad parameter, named", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<TaskPage>, ApiError> {
    let Query(params) = params?;
    let filter = params.filter()?;
    let tasks = state.store.list_tasks(&filter).await?;
    let next_before = next_position(&tasks, filter.limit, |task| task.seq);
    Ok(Json(TaskPage {
        tasks: tasks.into_iter().map(Task::from).collect(),
        next_cursor: next_before.map(|seq| encode_cursor(TASKS_CURSOR, seq)),
        next_before,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(state: &str, limit: &str, before: &str) -> ListParams {
        let some = |s: &str| Some(s.to_owned());
        ListParams {
            state: some(state),
            pool: some(""),
            tenant: None,
            limit: some(limit),
            cursor: None,
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
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    #[serde(default)]
    pub reason: Option<String>,
}

/// A task after a cancel.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/cancel",
    tag = "tasks",
    params(("id" = String, Path, description = "the task's id")),
    request_body(content = Option<CancelBody>, description = "optional: `{\"reason\": \"...\"}`"),
    responses(
        (status = 200, description = "cancelled, or already ended", body = CancelOutcome),
        (status = 404, description = "no such task", body = ErrorBody),
        (status = 409, description = "refused in its state", body = ErrorBody),
        (status = 503, description = "the pool manager did not answer", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    actor: Actor,
    id: Result<Path<String>, PathRejection>,
    body: Option<Json<CancelBody>>,
) -> Result<Json<CancelOutcome>, ApiError> {
    let Path(raw) = id?;
    let id = parse_task_id(&raw)?;
    let reason = body.and_then(|Json(body)| body.reason);
    match state.client_for(&actor).cancel(id, reason).await {
        Ok(outcome) => Ok(Json(CancelOutcome {
            task_id: outcome.task_id,
            state: outcome.state,
            cancelled: outcome.cancelled,
        })),
        Err(ClientError::Refused(error)) => Err(ApiError::from_refusal(error, |field, message| {
            ApiError::Refused { field, message }
        })),
        Err(err) => Err(err.into()),
    }
}

/// The kind of a cursor of `GET /api/v1/tasks` (a `seq`).
pub const TASKS_CURSOR: &str = "tasks";
/// The kind of a cursor of `GET /api/v1/tasks/{id}/events` (an event id).
pub const EVENTS_CURSOR: &str = "events";

/// `201 {"id": "..."}`: the new task a retry created.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Retried {
    /// The new task.
    pub id: Uuid,
    /// The task it re-runs (also in the new task's `labels.retry_of`).
    pub retry_of: Uuid,
}

/// States a task may be retried from: it ended without succeeding.
pub const RETRYABLE: [TaskState; 4] = [
    TaskState::Failed,
    TaskState::TimedOut,
    TaskState::Cancelled,
    TaskState::Rejected,
];

/// The submission that re-runs `task`: the same kind, spec, pool, tenant,
/// resources and limits, a new id, and `labels.retry_of` naming the old one.
/// Its idempotency key is not carried over (it would find the old task).
pub fn retry_submission(task: &TaskRow) -> serde_json::Value {
    let mut labels = match &task.labels {
        serde_json::Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    labels.insert("retry_of".to_owned(), task.id.to_string().into());
    let mut submission = serde_json::json!({
        "kind": task.kind,
        "spec": task.spec,
        "pool": task.pool,
        "tenant": task.tenant,
        "priority": task.priority,
        "max_attempts": task.max_attempts,
        "labels": labels,
        "node_selector": task.node_selector,
    });
    // A rejected row may hold no resources (it was never admitted): let the
    // pool's defaults apply rather than asking for nothing.
    if task.resources.cpu_millis > 0 && task.resources.memory_mb > 0 {
        submission["resources"] = serde_json::json!(task.resources);
    }
    if let Some(timeout) = task.timeout_ms {
        submission["timeout_ms"] = timeout.into();
    }
    if let Some(estimate) = task.estimated_runtime_ms {
        submission["estimated_runtime_ms"] = estimate.into();
    }
    submission
}

/// `POST /api/v1/tasks/{id}/retry`: submits a copy of a task that ended
/// failed, timed out, cancelled or rejected, through the orchestrator like
/// any submission. 409 while the task has not ended (or if it succeeded).
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/retry",
    tag = "tasks",
    params(("id" = String, Path, description = "the task to re-run")),
    responses(
        (status = 201, description = "the new task", body = Retried),
        (status = 400, description = "the orchestrator refused the copy", body = ErrorBody),
        (status = 404, description = "no such task", body = ErrorBody),
        (status = 409, description = "the task has not ended, or succeeded", body = ErrorBody),
        (status = 503, description = "the orchestrator did not answer", body = ErrorBody),
    )
)]
pub async fn retry(
    State(state): State<AppState>,
    actor: Actor,
    id: Result<Path<String>, PathRejection>,
) -> Result<(StatusCode, Json<Retried>), ApiError> {
    let Path(raw) = id?;
    let id = parse_task_id(&raw)?;
    let task = existing_task(&state.store, id).await?;
    if !RETRYABLE.contains(&task.state) {
        let why = if task.state == TaskState::Succeeded {
            "it succeeded"
        } else {
            "it has not ended"
        };
        return Err(ApiError::Refused {
            field: "state".to_owned(),
            message: format!(
                "task {id} is {}: {why}; only a task that ended failed, timed_out, cancelled \
                 or rejected can be retried",
                task.state.as_str()
            ),
        });
    }
    let body = Bytes::from(codec::encode(&retry_submission(&task)));
    // The copy's first history row names who asked for the retry.
    match forward_submission(&state.client_for(&actor), body).await? {
        SubmitReply::Accepted { ids, .. } => {
            let new = ids.first().copied().ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!(
                    "the orchestrator accepted a retry without an id"
                ))
            })?;
            Ok((
                StatusCode::CREATED,
                Json(Retried {
                    id: new,
                    retry_of: id,
                }),
            ))
        }
        SubmitReply::Refused { error } => Err(ApiError::InvalidTask {
            field: error.field,
            message: error.message,
        }),
    }
}

/// Query of `GET /api/v1/tasks/{id}/events`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Page size, 1 to 1000; 50 when absent.
    pub limit: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// One page of a task's history, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub task_id: Uuid,
    pub events: Vec<TaskEvent>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/tasks/{id}/events?limit=&cursor=`: the task's transitions,
/// oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/tasks/{id}/events",
    tag = "tasks",
    params(("id" = String, Path, description = "the task's id"), EventParams),
    responses(
        (status = 200, description = "one page of the task's history", body = EventPage),
        (status = 400, description = "a bad parameter, named", body = ErrorBody),
        (status = 404, description = "no such task", body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<EventParams>, QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    let Path(raw) = id?;
    let Query(params) = params?;
    let id = parse_task_id(&raw)?;
    let limit = page_size(present(&params.limit), DEFAULT_LIMIT, MAX_LIMIT)?;
    let after = present(&params.cursor)
        .map(|raw| decode_cursor(EVENTS_CURSOR, raw, "cursor"))
        .transpose()?;
    existing_task(&state.store, id).await?;
    let events = state.store.task_events_page(id, after, limit).await?;
    let next_cursor =
        next_position(&events, limit, |e| e.id).map(|id| encode_cursor(EVENTS_CURSOR, id));
    Ok(Json(EventPage {
        task_id: id,
        events: events.into_iter().map(TaskEvent::from).collect(),
        next_cursor,
    }))
}
