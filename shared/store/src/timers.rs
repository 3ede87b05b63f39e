//! What happens when a task's time is up: an attempt's deadline, the end of a
//! retry's backoff, a delayed task's start, a placement deadline; and the
//! reconciler's list of the ones that are overdue.
//!
//! Each is a guarded batch statement like every other transition: a timer
//! that fires twice, late, or for an attempt that is over matches no row.
//! Their guards and single states come from their rows in
//! [`crate::transitions::table`]; the constants here are the templates.

use crate::tasks::placement_deadline;
use crate::transitions::{
    Transition, backoff_ms, returned_task, table, transition_columns, transition_from_row,
};
use crate::{Result, Store, to_i32, to_u32};
use taskyard_wire::timer::{Timer, TimerKind};
use taskyard_wire::{TaskState, Timestamp};
use tokio_postgres::Row;
use uuid::Uuid;

/// `scheduled | running → retrying | queued | timed_out` for attempts whose
/// deadline passed without a report: the worker hung, froze or vanished.
pub(crate) const TIME_OUT: &str = concat!(
    "
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::int[]) AS i(id, attempt)
), old AS (
    SELECT t.id, t.state AS old_state, t.node_id AS old_node,
           CASE WHEN t.attempt < t.max_attempts THEN ",
    backoff_ms!(),
    " END AS backoff_ms
    FROM tasks t JOIN input i ON i.id = t.id LEFT JOIN pools p ON p.name = t.pool
    WHERE t.state {from} AND t.attempt = i.attempt
    FOR UPDATE OF t
), upd AS (
    UPDATE tasks t
    SET state = (CASE WHEN o.backoff_ms IS NULL THEN 'timed_out'
                      WHEN o.backoff_ms = 0 THEN 'queued'
                      ELSE 'retrying' END)::task_state,
        error = format('timed out after %s ms (the pool manager''s deadline; no report from node %s)',
                       t.timeout_ms, o.old_node),
        finished_at = CASE WHEN o.backoff_ms IS NULL THEN now() END,
        queued_at = CASE WHEN o.backoff_ms = 0 THEN now() ELSE t.queued_at END,
        retry_at = CASE WHEN o.backoff_ms > 0
                        THEN now() + o.backoff_ms * interval '1 millisecond' END,
        node_id = CASE WHEN o.backoff_ms IS NULL THEN t.node_id END
    FROM old o
    WHERE t.id = o.id
    RETURNING ",
    returned_task!(),
    ", o.old_state AS from_state,
              o.old_node AS node_id, now() AS finished_at,
              CASE WHEN o.backoff_ms IS NOT NULL
                   THEN format('attempt %s of %s %s; retrying %s', t.attempt, t.max_attempts,
                               t.error,
                               CASE WHEN o.backoff_ms = 0 THEN 'now'
                                    ELSE format('in %s ms', o.backoff_ms) END)
                   ELSE t.error END AS reason
), history AS (
    INSERT INTO task_events (task_id, attempt, from_state, to_state, at, node_id, reason)
    SELECT id, attempt, from_state, state, finished_at, node_id, reason FROM upd
)
SELECT ",
    transition_columns!(),
    " FROM upd"
);

/// `retrying → queued` once the backoff is over.
pub(crate) const END_BACKOFF: &str = concat!(
    "
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::int[]) AS i(id, attempt)
), upd AS (
    UPDATE tasks t
    SET state = {to}, retry_at = NULL, queued_at = now()
    FROM input i
    WHERE t.id = i.id AND t.state {from} AND t.attempt = i.attempt
    RETURNING ",
    returned_task!(),
    ", {from_state}::text AS from_state,
              NULL::text AS node_id, now() AS finished_at,
              'backoff over'::text AS reason
), history AS (
    INSERT INTO task_events (task_id, attempt, from_state, to_state, at, reason)
    SELECT id, attempt, {from_state}, {to}, finished_at, reason FROM upd
)
SELECT ",
    transition_columns!(),
    " FROM upd"
);

/// `pending → queued` for delayed tasks whose time has come and whose
/// dependencies (if any) all succeeded.
pub(crate) const START_DELAYED: &str = concat!(
    "
WITH upd AS (
    UPDATE tasks t
    SET state = {to}, queued_at = now()
    WHERE t.id = ANY($1) AND t.state {from} AND t.run_at <= now() + interval '1 second'
      AND NOT EXISTS (SELECT 1 FROM tasks d
                      WHERE d.id = ANY(t.depends_on) AND d.state <> 'succeeded')
    RETURNING ",
    returned_task!(),
    ", {from_state}::text AS from_state,
              NULL::text AS node_id, now() AS finished_at,
              format('its start time %s has come', t.run_at) AS reason
), history AS (
    INSERT INTO task_events (task_id, attempt, from_state, to_state, at, reason)
    SELECT id, attempt, {from_state}, {to}, finished_at, reason FROM upd
)
SELECT ",
    transition_columns!(),
    " FROM upd"
);

/// `queued → rejected` for tasks still unplaced at their placement deadline.
pub(crate) const MISS_PLACEMENT: &str = concat!(
    "
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::int[]) AS i(id, attempt)
), upd AS (
    UPDATE tasks t
    SET state = {to}, finished_at = now(),
        error = format('not placed within its schedule timeout of %s ms%s', t.schedule_timeout_ms,
                       CASE WHEN t.wait_reason IS NOT NULL
                            THEN format(' (it waited: %s)', t.wait_reason) ELSE '' END)
    FROM input i
    WHERE t.id = i.id AND t.state {from} AND t.attempt = i.attempt
      AND t.schedule_timeout_ms IS NOT NULL
      AND t.queued_at + t.schedule_timeout_ms * interval '1 millisecond'
          <= now() + interval '1 second'
    RETURNING ",
    returned_task!(),
    ", {from_state}::text AS from_state,
              NULL::text AS node_id, t.finished_at, t.error AS reason
), history AS (
    INSERT INTO task_events (task_id, attempt, from_state, to_state, at, reason)
    SELECT id, attempt, {from_state}, {to}, finished_at, reason FROM upd
)
SELECT ",
    transition_columns!(),
    " FROM upd"
);

/// Every timer that should have fired `grace` ago: the reconciler's list,
/// for timers lost between a commit and their publish.
const OVERDUE: &str = "
SELECT 'timeout' AS kind, id, attempt,
       started_at + timeout_ms * interval '1 millisecond' AS due_at
FROM tasks
WHERE finished_at IS NULL AND state = 'running' AND timeout_ms IS NOT NULL
  AND started_at + timeout_ms * interval '1 millisecond' < now() - $1::bigint * interval '1 millisecond'
UNION ALL
SELECT 'retry', id, attempt, retry_at
FROM tasks
WHERE finished_at IS NULL AND state = 'retrying' AND retry_at < now() - $1::bigint * interval '1 millisecond'
UNION ALL
SELECT 'start', id, attempt, run_at
FROM tasks
WHERE finished_at IS NULL AND state = 'pending' AND run_at IS NOT NULL
  AND run_at < now() - $1::bigint * interval '1 millisecond'
UNION ALL
SELECT 'placement', id, attempt, queued_at + schedule_timeout_ms * interval '1 millisecond'
FROM tasks
WHERE finished_at IS NULL AND state = 'queued' AND schedule_timeout_ms IS NOT NULL
  AND queued_at + schedule_timeout_ms * interval '1 millisecond'
      < now() - $1::bigint * interval '1 millisecond'
LIMIT $2";

impl Store {
    /// Applies fired timers of one kind; returns the transitions they made.
    pub async fn fire_timers(&self, kind: TimerKind, timers: &[Timer]) -> Result<Vec<Transition>> {
        if timers.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = timers.iter().map(|t| t.task_id).collect();
        let attempts: Vec<i32> = timers.iter().map(|t| to_i32(t.attempt)).collect();
        let client = self.client().await?;
        let rows = match kind {
            TimerKind::Timeout => {
                let statement = client.prepare_cached(table::TIME_OUT.sql()).await?;
                client.query(&statement, &[&ids, &attempts]).await?
            }
            TimerKind::Retry => {
                let statement = client.prepare_cached(table::END_BACKOFF.sql()).await?;
                client.query(&statement, &[&ids, &attempts]).await?
            }
            TimerKind::Start => {
                let statement = client.prepare_cached(table::START_DELAYED.sql()).await?;
                client.query(&statement, &[&ids]).await?
            }
            TimerKind::Placement => {
                let statement = client.prepare_cached(table::MISS_PLACEMENT.sql()).await?;
                client.query(&statement, &[&ids, &attempts]).await?
            }
        };
        rows.iter().map(timer_transition).collect()
    }

    /// Timers due more than `grace_ms` ago whose task is still in the state
    /// they end (at most `limit`).
    pub async fn overdue_timers(&self, grace_ms: u64, limit: u32) -> Result<Vec<Timer>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(OVERDUE).await?;
        let grace = crate::to_i64(grace_ms);
        let rows = client
            .query(&statement, &[&grace, &i64::from(limit)])
            .await?;
        rows.iter()
            .filter_map(|row| overdue_from_row(row).transpose())
            .collect()
    }
}

fn timer_transition(row: &Row) -> Result<Transition> {
    let mut transition = transition_from_row(row)?;
    if transition.to == TaskState::Queued && transition.due.is_none() {
        transition.due = placement_deadline(row)?;
    }
    Ok(transition)
}

fn overdue_from_row(row: &Row) -> Result<Option<Timer>> {
    let kind: &str = row.try_get("kind")?;
    let Some(kind) = TimerKind::parse(kind) else {
        return Ok(None);
    };
    let due_at: Option<Timestamp> = row.try_get("due_at")?;
    let task_id: Uuid = row.try_get("id")?;
    let attempt = to_u32(row.try_get("attempt")?);
    Ok(due_at.map(|due_at| Timer {
        kind,
        task_id,
        attempt,
        due_at,
    }))
}
