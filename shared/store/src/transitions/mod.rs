//! Every statement that changes `tasks.state`, the table that lists them,
//! and the kit they are built from.
//!
//! A transition is one guarded statement over a batch given as arrays:
//! `UPDATE tasks ... WHERE id = ... AND state <guard> AND attempt = ...`,
//! whose `RETURNING` rows feed an `INSERT INTO task_events` in the same
//! statement. Rows that fail the guard (wrong state, attempt or node) are
//! simply not returned, so callers learn from the result which tasks moved,
//! and a redelivered or stale message changes nothing.
//!
//! [`table`] lists every such statement (and the insert that creates tasks):
//! its name, the method that runs it, the states it moves from and the
//! states it moves to. The guard in each statement's SQL is rendered from
//! its row, so the table cannot claim a guard the SQL lacks; the tests hold
//! every row against [`TaskState::can_move_to`] and every move that allows
//! against some row, check the targets spelled in each statement's SQL, run
//! every statement from every state against Postgres
//! (`shared/store/tests/transitions.rs`), and keep the diagram in
//! `docs/state-machine.md` rendered from the table.
//!
//! The SQL of each statement lives beside the method that runs it:
//! [`crate::tasks::insert`] (creation), [`crate::tasks::attempts`]
//! (placement, start, finish), [`crate::timers`] (deadlines, backoff,
//! delayed starts, placement deadlines), [`crate::interventions`] (cancels,
//! lost nodes) and [`crate::workflows`] (dependencies, compensation).

pub mod table;

pub use table::{Statement, TABLE};

use crate::tasks::{QueuedTask, parse_state, placement_deadline, queued_from_row};
use crate::{Result, to_u32};
use taskyard_wire::{TaskState, Timestamp};
use tokio_postgres::Row;
use uuid::Uuid;

/// One transition a batch statement made.
#[derive(Debug, Clone)]
pub struct Transition {
    pub task_id: Uuid,
    pub pool: String,
    pub attempt: u32,
    pub from: TaskState,
    pub to: TaskState,
    pub node_id: Option<String>,
    pub reason: Option<String>,
    pub at: Timestamp,
    /// Set when the task went back to `queued` (a retry): what the scheduler needs.
    pub requeued: Option<QueuedTask>,
    /// When the state it entered ends by itself, if it does: a running
    /// attempt's deadline, a retry's end of backoff, a queued task's
    /// placement deadline. A timer is set for it.
    pub due: Option<Timestamp>,
    /// When the task was submitted (`tasks.created_at`).
    pub created_at: Timestamp,
}

impl Transition {
    /// The event that announces it.
    pub fn event(&self) -> taskyard_wire::event::TaskEvent {
        taskyard_wire::event::TaskEvent {
            task_id: self.task_id,
            pool: self.pool.clone(),
            attempt: self.attempt,
            state: self.to,
            from: Some(self.from),
            node_id: self.node_id.clone(),
            reason: self.reason.clone(),
            at: self.at,
            request: self.requeued.as_ref().map(|q| q.request.clone()),
        }
    }
}

/// The wait before the next attempt of `t` (a task row joined to its pool
/// `p`), in milliseconds: the backoff doubles with each attempt up to its
/// cap, then loses a random part of up to half ("equal jitter"), so that
/// tasks that failed together do not all come back together.
macro_rules! backoff_ms {
    () => {
        "round(least(coalesce(t.retry_backoff_max_ms, p.retry_backoff_max_ms, 300000)::float8,
                     coalesce(t.retry_backoff_ms, p.retry_backoff_ms, 1000)
                         * power(2, t.attempt - 1))
               * (0.5 + random() / 2))::bigint"
    };
}
pub(crate) use backoff_ms;

/// What a transition statement's `UPDATE ... RETURNING` gives of the task,
/// before its own `from_state, node_id, finished_at, reason`.
macro_rules! returned_task {
    () => {
        "t.id, t.seq, t.pool, t.tenant, t.kind, t.priority, t.cpu_millis, t.memory_mb,
              t.node_selector, t.estimated_runtime_ms, t.attempt, t.retry_at,
              t.schedule_timeout_ms, t.state, t.created_at"
    };
}
pub(crate) use returned_task;

/// The columns a transition statement selects from its `upd`, as
/// [`transition_from_row`] reads them.
macro_rules! transition_columns {
    () => {
        "id, seq, pool, tenant, kind, priority, cpu_millis, memory_mb, node_selector,
       estimated_runtime_ms, attempt, retry_at, schedule_timeout_ms,
       state::text AS state, from_state::text AS from_state, node_id, finished_at, reason,
       created_at"
    };
}
pub(crate) use transition_columns;

/// A transition from a row of [`transition_columns`]: the task's placement
/// request (read when it went back to `queued`), `retry_at` and
/// `schedule_timeout_ms` (for the timer of the state it entered).
pub(crate) fn transition_from_row(row: &Row) -> Result<Transition> {
    let to = parse_state(row.try_get("state")?)?;
    let requeued = if to == TaskState::Queued {
        Some(queued_from_row(row)?)
    } else {
        None
    };
    let due = match to {
        TaskState::Retrying => row.try_get("retry_at")?,
        TaskState::Queued => placement_deadline(row)?,
        _ => None,
    };
    Ok(Transition {
        task_id: row.try_get("id")?,
        pool: row.try_get("pool")?,
        attempt: to_u32(row.try_get("attempt")?),
        from: parse_state(row.try_get("from_state")?)?,
        to,
        node_id: row.try_get("node_id")?,
        reason: row.try_get("reason")?,
        at: row.try_get("finished_at")?,
        requeued,
        due,
        created_at: row.try_get("created_at")?,
    })
}
