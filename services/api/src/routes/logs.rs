//! `/api/v1/tasks/{id}/logs`: the output lines of a task's `exec` attempts,
//! as the pool manager stored them from the workers' LOGS stream; and
//! `/api/v1/tasks/{id}/logs/stream`, the same followed live with
//! server-sent events.
//!
//! Lines are ordered by attempt, then by their number within the attempt.
//! A cursor (`next_after`, or an event's `id`) is opaque to clients; today it
//! reads `<attempt>-<seq>`, the last line seen.

use crate::bodies::LogLine;
use crate::routes::tasks::{existing_task, parse_task_id};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;
use taskyard_store::Store;
use taskyard_store::logs::LogCursor;
use taskyard_wire::TaskState;
use uuid::Uuid;

/// Most lines one page holds.
pub const MAX_LIMIT: u32 = 5000;
/// Lines per page unless asked otherwise.
pub const DEFAULT_LIMIT: u32 = 1000;
/// How often the live stream looks for new lines.
pub const POLL_INTERVAL: Duration = Duration::from_millis(300);
/// How long after a task ended the live stream still waits for lines
/// (workers publish their last lines before their final report, but the
/// pool manager stores lines and reports on separate consumers).
pub const SETTLE: Duration = Duration::from_millis(1500);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    pub after: Option<String>,
    pub limit: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    pub after: Option<String>,
}

/// One page of lines.
#[derive(Debug, Serialize)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    /// The cursor after the last line of this page (pass it as `after` for
    /// the next one); the `after` asked for when the page is empty.
    pub next_after: Option<String>,
    /// The task is in a final state (its lines may still be arriving for
    /// a second or so after it ended).
    pub finished: bool,
}

/// The text of a cursor.
pub fn format_cursor(cursor: LogCursor) -> String {
    format!("{}-{}", cursor.attempt, cursor.seq)
}

/// Reads a cursor, naming `field` when it is not one.
pub fn parse_cursor(field: &str, raw: &str) -> Result<LogCursor, ApiError> {
    let bad = || {
        ApiError::bad_request(
            field,
            format!("`{raw}` is not a log cursor (use `next_after` of a page or an event's id)"),
        )
    };
    let (attempt, seq) = raw.trim().split_once('-').ok_or_else(bad)?;
    Ok(LogCursor {
        attempt: attempt.parse().map_err(|_| bad())?,
        seq: seq.parse().map_err(|_| bad())?,
    })
}

fn parse_limit(raw: Option<&str>) -> Result<u32, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.trim().parse::<u32>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(ApiError::bad_request(
            "limit",
            format!("must be a whole number between 1 and {MAX_LIMIT}, not `{raw}`"),
        )),
    }
}

fn parse_after(raw: Option<&str>) -> Result<Option<LogCursor>, ApiError> {
    raw.filter(|raw| !raw.is_empty())
        .map(|raw| parse_cursor("after", raw))
        .transpose()
}

/// The task's state and when it ended, or `not_found`.
async fn task_state(
    store: &Store,
    id: Uuid,
) -> Result<(TaskState, Option<taskyard_wire::Timestamp>), ApiError> {
    let task = existing_task(store, id).await?;
    Ok((task.state, task.finished_at))
}

/// `GET /api/v1/tasks/{id}/logs?after=&limit=`.
pub async fn page(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<LogPage>, ApiError> {
    let Path(raw) = id?;
    let id = parse_task_id(&raw)?;
    let Query(params) = params?;
    let after = parse_after(params.after.as_deref())?;
    let limit = parse_limit(params.limit.as_deref())?;
    // The state first: when it says finished, the lines read next include
    // everything stored by then.
    let (task_state, _) = task_state(&state.store, id).await?;
    let lines = state.store.read_log_lines(id, after, limit).await?;
    let next_after = lines
        .last()
        .map(LogCursor::after)
        .or(after)
        .map(format_cursor);
    Ok(Json(LogPage {
        lines: lines.into_iter().map(LogLine::from).collect(),
        next_after,
        finished: task_state.is_terminal(),
    }))
}

/// `GET /api/v1/tasks/{id}/logs/stream?after=`: `event: line` per line (its
/// JSON as data, its cursor as id), then `event: end` (data `{"state",
/// "next_after"}`) once the task is final and every stored line was sent. A
/// `Last-Event-ID` header (a reconnecting browser) wins over `after`.
pub async fn stream(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<StreamParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Path(raw) = id?;
    let id = parse_task_id(&raw)?;
    let Query(params) = params?;
    let last_event_id = headers
        .get("last-event-id")
        .map(|value| {
            value
                .to_str()
                .map_err(|_| ApiError::bad_request("Last-Event-ID", "is not text"))
        })
        .transpose()?
        .filter(|raw| !raw.trim().is_empty());
    let cursor = match last_event_id {
        Some(raw) => Some(parse_cursor("Last-Event-ID", raw)?),
        None => parse_after(params.after.as_deref())?,
    };
    // A 404 now rather than an empty stream.
    task_state(&state.store, id).await?;
    let follow = Follow {
        store: state.store.clone(),
        id,
        cursor,
        final_since: None,
        done: false,
    };
    let events = futures::stream::unfold(follow, |mut follow| async move {
        if follow.done {
            return None;
        }
        let events = follow.next_events().await;
        Some((futures::stream::iter(events.into_iter().map(Ok)), follow))
    });
    let events = futures::StreamExt::flatten(events);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// One live stream's place.
struct Follow {
    store: Store,
    id: Uuid,
    cursor: Option<LogCursor>,
    /// When this stream first saw the task final.
    final_since: Option<tokio::time::Instant>,
    done: bool,
}

impl Follow {
    /// The next events: new lines, or the end; waits until there are some.
    async fn next_events(&mut self) -> Vec<Event> {
        loop {
            match self.poll().await {
                Ok(events) if !events.is_empty() => return events,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(task_id = %self.id, error = format!("{err:#}"), "reading task logs failed; retrying");
                }
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn poll(&mut self) -> anyhow::Result<Vec<Event>> {
        let task = self.store.get_task(self.id).await?;
        let lines = self
            .store
            .read_log_lines(self.id, self.cursor, MAX_LIMIT)
            .await?;
        if !lines.is_empty() {
            let mut events = Vec::with_capacity(lines.len());
            let last = lines.last().map(LogCursor::after);
            for line in lines {
                let cursor = format_cursor(LogCursor::after(&line));
                events.push(
                    Event::default()
                        .event("line")
                        .id(cursor)
                        .data(serde_json::to_string(&LogLine::from(line))?),
                );
            }
            self.cursor = last;
            return Ok(events);
        }
        // Deleted meanwhile: nothing more will come.
        let (state, finished_at) = match task {
            Some(task) => (Some(task.state), task.finished_at),
            None => (None, None),
        };
        if state.is_some_and(|s| !s.is_terminal()) {
            self.final_since = None;
            return Ok(Vec::new());
        }
        let since = *self
            .final_since
            .get_or_insert_with(tokio::time::Instant::now);
        let ended_long_ago = finished_at.is_some_and(|at| {
            taskyard_wire::now() - at >= time::Duration::try_from(SETTLE).unwrap_or_default()
        });
        if state.is_some() && !ended_long_ago && since.elapsed() < SETTLE {
            return Ok(Vec::new());
        }
        self.done = true;
        let end = serde_json::json!({
            "state": state.map(TaskState::as_str),
            "next_after": self.cursor.map(format_cursor),
        });
        Ok(vec![Event::default().event("end").data(end.to_string())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_and_bad_ones_name_their_field() {
        let cursor = LogCursor {
            attempt: 2,
            seq: 17,
        };
        assert_eq!(format_cursor(cursor), "2-17");
        assert_eq!(parse_cursor("after", "2-17").ok(), Some(cursor));
        for bad in ["", "2", "x-1", "1-", "-1-2"] {
            let err = parse_cursor("after", bad).expect_err(bad);
            assert_eq!(err.field(), Some("after"), "{bad}");
        }
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(parse_limit(None).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(parse_limit(Some("5000")).ok(), Some(5000));
        for bad in ["0", "5001", "ten", "-1"] {
            assert_eq!(
                parse_limit(Some(bad)).expect_err(bad).field(),
                Some("limit")
            );
        }
    }
}
