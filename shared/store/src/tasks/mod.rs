//! Tasks: their creation, the statements of an attempt's life, the
//! scheduler's rebuild, and the reads of the API and the CLI.
//!
//! # Layout
//! - [`insert`]: creating tasks (`queued`, `pending` or `rejected`) with their
//!   first history row, and finding the ones that exist already.
//! - [`attempts`]: an attempt's placement (`queued → scheduled`), start
//!   (`scheduled → running`) and finish, and why a queued task still waits.
//! - [`rebuild`]: what a starting scheduler reads back: queued and placed
//!   tasks, undispatched placements, and the run times SJF learned.
//! - [`reads`]: one task, filtered pages of tasks, a task's history, counts.
//! - this file: the row readers they share.
//!
//! Every statement that changes `tasks.state` is listed, with the states it
//! moves from and to, in [`crate::transitions::table`]; the guards in their
//! SQL are rendered from that table.

pub mod attempts;
pub mod insert;
pub mod reads;
pub mod rebuild;

pub use crate::transitions::Transition;
pub use attempts::{FinishReport, Placement, ScheduledTask, StartReport};
pub use insert::{CreatedTask, TaskInsert};
pub use reads::{EventRow, TaskFilter, TaskRow};
pub use rebuild::PlacedTask;

pub(crate) use reads::{TASK_COLUMNS, task_from_row};

use crate::{Result, StoreError, to_u32};
use serde_json::Value;
use taskyard_wire::event::PlacementRequest;
use taskyard_wire::{Resources, TaskKind, TaskState, Timestamp};
use tokio_postgres::Row;
use uuid::Uuid;

/// A task as the scheduler sees it while it waits.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedTask {
    pub id: Uuid,
    pub pool: String,
    /// The current attempt (the scheduler's placement bumps it).
    pub attempt: u32,
    pub request: PlacementRequest,
}

pub(crate) fn parse_state(name: &str) -> Result<TaskState> {
    name.parse()
        .map_err(|err: taskyard_wire::state::UnknownState| StoreError::Corrupt(err.to_string()))
}

pub(super) fn parse_kind(name: &str) -> Result<TaskKind> {
    name.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown task kind `{name}` in a live task")))
}

pub(super) fn resources_from_row(row: &Row) -> Result<Resources> {
    Ok(Resources {
        cpu_millis: to_u32(row.try_get("cpu_millis")?),
        memory_mb: to_u32(row.try_get("memory_mb")?),
    })
}

pub(super) fn timeout_from_row(row: &Row) -> Result<Option<u64>> {
    let timeout: Option<i64> = row.try_get("timeout_ms")?;
    Ok(timeout.map(|ms| u64::try_from(ms).unwrap_or(0)))
}

pub(crate) fn queued_from_row(row: &Row) -> Result<QueuedTask> {
    Ok(QueuedTask {
        id: row.try_get("id")?,
        pool: row.try_get("pool")?,
        attempt: to_u32(row.try_get("attempt")?),
        request: PlacementRequest {
            seq: row.try_get("seq")?,
            // Rejected rows may hold any kind; only live tasks are parsed here,
            // and a rejected row is given `noop` as it is never scheduled.
            kind: parse_kind(row.try_get("kind")?).unwrap_or(TaskKind::Noop),
            tenant: row.try_get("tenant")?,
            priority: row.try_get("priority")?,
            resources: resources_from_row(row)?,
            node_selector: labels_from(row.try_get("node_selector")?),
            estimated_runtime_ms: row
                .try_get::<_, Option<i64>>("estimated_runtime_ms")?
                .map(|ms| u64::try_from(ms).unwrap_or(0)),
        },
    })
}

/// A JSON object of strings as a label map (anything else reads as empty).
pub(crate) fn labels_from(value: Value) -> std::collections::BTreeMap<String, String> {
    serde_json::from_value(value).unwrap_or_default()
}

/// A task queued now with a `schedule_timeout_ms` must be placed by then.
pub(crate) fn placement_deadline(row: &Row) -> Result<Option<Timestamp>> {
    let timeout: Option<i64> = row.try_get("schedule_timeout_ms")?;
    Ok(timeout.map(|ms| taskyard_wire::now() + time::Duration::milliseconds(ms)))
}
