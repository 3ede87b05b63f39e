//! An attempt's life: the scheduler's placement (`queued → scheduled`, which
//! bumps the attempt, the fencing token), the worker's start report
//! (`scheduled → running`) and its finish report (`scheduled | running →`
//! an outcome, or `retrying`/`queued` while attempts remain), and the
//! scheduler's word on why a queued task still waits.
//!
//! Each transition's guard and target come from its row in
//! [`crate::transitions::table`].

use super::{parse_kind, resources_from_row, timeout_from_row};
use crate::leases::Fence;
use crate::transitions::{
    Transition, backoff_ms, returned_task, table, transition_columns, transition_from_row,
};
use crate::{Result, Store, to_i32, to_u32};
use serde_json::Value;
use taskyard_wire::{Resources, TaskKind, TaskState, Timestamp};
use tokio_postgres::Row;
use uuid::Uuid;

/// The scheduler's decision for one queued task.
#[derive(Debug, Clone)]
pub struct Placement {
    pub task_id: Uuid,
    /// The attempt the task has while queued; the placement makes it `attempt + 1`.
    pub attempt: u32,
    pub node_id: String,
    /// Why this node (kept in `task_events.reason`).
    pub reason: String,
}

/// A task that [`Store::mark_scheduled`] moved: everything its dispatch needs.
#[derive(Debug, Clone)]
pub struct ScheduledTask {
    pub id: Uuid,
    pub attempt: u32,
    pub pool: String,
    pub tenant: String,
    pub kind: TaskKind,
    pub spec: Value,
    pub resources: Resources,
    pub timeout_ms: Option<u64>,
    pub node_id: String,
    pub scheduled_at: Timestamp,
    pub reason: Option<String>,
}

/// A worker's report that an attempt started.
#[derive(Debug, Clone)]
pub struct StartReport {
    pub task_id: Uuid,
    pub attempt: u32,
    pub node_id: String,
    pub at: Timestamp,
}

/// A worker's report that an attempt ended.
#[derive(Debug, Clone)]
pub struct FinishReport {
    pub task_id: Uuid,
    pub attempt: u32,
    pub node_id: String,
    /// `succeeded`, `failed` or `timed_out` ([`table::FINISH_ATTEMPTS`]'s
    /// `chosen`); any other is refused.
    pub outcome: TaskState,
    pub result: Value,
    pub error: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    /// When the worker's start report came in the same batch: the statement
    /// then records `scheduled → running` too, in one row update.
    pub start_reported_at: Option<Timestamp>,
}

/// The template of [`table::MARK_SCHEDULED`], which renders its guard and states.
pub(crate) const MARK_SCHEDULED: &str = "
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[])
        AS i(id, attempt, node_id, reason)
), upd AS (
    UPDATE tasks t
    SET state = {to}, attempt = t.attempt + 1, node_id = i.node_id,
        scheduled_at = now(), wait_reason = NULL
    FROM input i
    WHERE t.id = i.id AND t.state {from} AND t.attempt = i.attempt
      -- Evaluated once (it names no row): an ex-leader's round fails whole.
      AND (SELECT $5::text IS NULL OR taskyard_fence($5::text, $6::bigint))
    RETURNING t.id, t.attempt, t.pool, t.tenant, t.kind, t.spec, t.cpu_millis, t.memory_mb,
              t.timeout_ms, t.node_id, t.scheduled_at, i.reason
), history AS (
    INSERT INTO task_events (task_id, attempt, from_state, to_state, at, node_id, reason)
    SELECT id, attempt, {from_state}, {to}, scheduled_at, node_id, reason FROM upd
)
SELECT * FROM upd";

/// The template of [`table::MARK_RUNNING`].
pub(crate) const MARK_RUNNING: &str = "
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::timestamptz[])
        AS i(id, attempt, node_id, at)
), upd AS (
    UPDATE tasks t
    SET state = {to}, started_at = i.at
    FROM input i
    WHERE t.id = i.id AND t.state {from} AND t.attempt = i.attempt
      AND t.node_id = i.node_id
    RETURNING t.id, t.pool, t.attempt, t.node_id, i.at, t.created_at,
              i.at + t.timeout_ms * interval '1 millisecond' AS due
), history AS (
    INSERT INTO task_events (task_id, attempt, from_state, to_state, at, node_id)
    SELECT id, attempt, {from_state}, {to}, at, node_id FROM upd
)
SELECT id, pool, attempt, node_id, at, created_at, due FROM upd";

/// The template of [`table::FINISH_ATTEMPTS`]. An attempt that ends badly
/// while attempts remain sends the task to `retrying` until its backoff has
/// passed (or straight back to `queued` when the backoff is zero); otherwise
/// the outcome is final.
pub(crate) const FINISH_ATTEMPTS: &str = concat!(
    "
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::jsonb[],
                         $6::text[], $7::timestamptz[], $8::timestamptz[], $9::timestamptz[])
        AS i(id, attempt, node_id, outcome, result, error, started_at, finished_at, start_reported_at)
), old AS (
    -- The report travels with the locked row, so the UPDATE below joins on
    -- the primary key alone. (Joining `input` again made the generic plan
    -- rescan the whole batch for every row: quadratic in the batch size.)
    SELECT t.id, t.state AS old_state, i.node_id AS report_node, i.outcome, i.result,
           i.error, i.started_at AS report_started, i.finished_at AS report_finished,
           -- A finish of an attempt still `scheduled` records its start too:
           -- at the start report's time when it came in the same batch, else
           -- at the start the finish report gives (the start report may be
           -- in another pool manager's batch, or lost; either way the
           -- attempt ran, and its history says so).
           CASE WHEN t.state = 'scheduled'
                THEN coalesce(i.start_reported_at, i.started_at) END AS start_reported_at,
           CASE WHEN i.outcome <> 'succeeded' AND t.attempt < t.max_attempts
                THEN ",
    backoff_ms!(),
    " END AS backoff_ms
    FROM tasks t JOIN input i ON i.id = t.id LEFT JOIN pools p ON p.name = t.pool
    WHERE t.state {from} AND t.attempt = i.attempt
      AND t.node_id = i.node_id
    FOR UPDATE OF t
), upd AS (
    UPDATE tasks t
    SET state = (CASE WHEN o.backoff_ms IS NULL THEN o.outcome
                      WHEN o.backoff_ms = 0 THEN 'queued'
                      ELSE 'retrying' END)::task_state,
        result = o.result,
        error = o.error,
        started_at = COALESCE(o.start_reported_at, t.started_at, o.report_started),
        finished_at = CASE WHEN o.backoff_ms IS NULL THEN o.report_finished END,
        queued_at = CASE WHEN o.backoff_ms = 0 THEN now() ELSE t.queued_at END,
        retry_at = CASE WHEN o.backoff_ms > 0
                        THEN now() + o.backoff_ms * interval '1 millisecond' END,
        node_id = CASE WHEN o.backoff_ms IS NULL THEN t.node_id END
    FROM old o
    WHERE t.id = o.id
    RETURNING ",
    returned_task!(),
    ", t.started_at, o.old_state AS from_state, o.report_node AS node_id,
              o.report_finished AS finished_at, o.start_reported_at,
              CASE WHEN o.backoff_ms IS NOT NULL
                   THEN format('attempt %s of %s %s: %s; retrying %s', t.attempt, t.max_attempts,
                               replace(o.outcome, '_', ' '), coalesce(o.error, 'no error given'),
                               CASE WHEN o.backoff_ms = 0 THEN 'now'
                                    ELSE format('in %s ms', o.backoff_ms) END)
                   ELSE o.error END AS reason
), history AS (
    INSERT INTO task_events (task_id, attempt, from_state, to_state, at, node_id, reason)
    SELECT id, attempt, 'scheduled', 'running', start_reported_at, node_id, NULL
    FROM upd WHERE start_reported_at IS NOT NULL
    UNION ALL
    SELECT id, attempt,
           CASE WHEN start_reported_at IS NOT NULL THEN 'running' ELSE from_state END,
           state, finished_at, node_id, reason
    FROM upd
), learned AS (
    -- Shortest-job-first learns run times per (pool, kind): an exponentially
    -- weighted mean (alpha 0.2) that takes a batch's mean as one step per
    -- run, so a batch of n runs weighs as much as n runs one by one.
    INSERT INTO runtime_estimates AS e (pool, kind, mean_ms, samples, updated_at)
    SELECT pool, kind,
           avg(greatest(extract(epoch FROM finished_at - started_at) * 1000, 0)),
           count(*), now()
    FROM upd
    WHERE state = 'succeeded' AND started_at IS NOT NULL
    GROUP BY pool, kind
    ON CONFLICT (pool, kind) DO UPDATE
    SET mean_ms = e.mean_ms
                  + (1 - power(0.8, least(excluded.samples, 50))) * (excluded.mean_ms - e.mean_ms),
        samples = e.samples + excluded.samples,
        updated_at = now()
)
SELECT ",
    transition_columns!(),
    ", start_reported_at FROM upd"
);

impl Store {
    /// `queued → scheduled` for a batch of placements, bumping the attempt.
    /// Returns the tasks that moved, with what their dispatch needs.
    ///
    /// With a `fence`, the round is recorded only while the scheduler that
    /// sends it holds the lease at that epoch; otherwise it fails whole
    /// with an error for which [`crate::StoreError::is_fenced`] holds.
    pub async fn mark_scheduled(
        &self,
        placements: &[Placement],
        fence: Option<Fence>,
    ) -> Result<Vec<ScheduledTask>> {
        if placements.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = placements.iter().map(|p| p.task_id).collect();
        let attempts: Vec<i32> = placements.iter().map(|p| to_i32(p.attempt)).collect();
        let nodes: Vec<&str> = placements.iter().map(|p| p.node_id.as_str()).collect();
        let reasons: Vec<&str> = placements.iter().map(|p| p.reason.as_str()).collect();
        let client = self.client().await?;
        let statement = client.prepare_cached(table::MARK_SCHEDULED.sql()).await?;
        let rows = client
            .query(
                &statement,
                &[
                    &ids,
                    &attempts,
                    &nodes,
                    &reasons,
                    &fence.map(|f| f.lease),
                    &fence.map(|f| f.epoch),
                ],
            )
            .await?;
        rows.iter().map(scheduled_from_row).collect()
    }

    /// `scheduled → running` for a batch of start reports of the current attempt.
    pub async fn mark_running(&self, reports: &[StartReport]) -> Result<Vec<Transition>> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = reports.iter().map(|r| r.task_id).collect();
        let attempts: Vec<i32> = reports.iter().map(|r| to_i32(r.attempt)).collect();
        let nodes: Vec<&str> = reports.iter().map(|r| r.node_id.as_str()).collect();
        let ats: Vec<Timestamp> = reports.iter().map(|r| r.at).collect();
        let client = self.client().await?;
        let statement = client.prepare_cached(table::MARK_RUNNING.sql()).await?;
        let rows = client
            .query(&statement, &[&ids, &attempts, &nodes, &ats])
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Transition {
                    task_id: row.try_get("id")?,
                    pool: row.try_get("pool")?,
                    attempt: to_u32(row.try_get("attempt")?),
                    from: TaskState::Scheduled,
                    to: TaskState::Running,
                    node_id: row.try_get("node_id")?,
                    reason: None,
                    at: row.try_get("at")?,
                    requeued: None,
                    due: row.try_get("due")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// `scheduled | running → succeeded | failed | timed_out`, or
    /// `retrying` (`queued` when the backoff is zero) when the attempt did
    /// not succeed and attempts remain. The finish of an attempt still
    /// `scheduled` also records `scheduled → running`, at
    /// `start_reported_at` when given, else at the report's `started_at`.
    ///
    /// A report whose outcome is not one of those three is refused
    /// ([`crate::StoreError::Disallowed`]) and nothing of the batch is
    /// written: the statement would otherwise set whatever it was given.
    pub async fn finish_attempts(&self, reports: &[FinishReport]) -> Result<Vec<Transition>> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        for report in reports {
            table::FINISH_ATTEMPTS.check_chosen(report.outcome)?;
        }
        let ids: Vec<Uuid> = reports.iter().map(|r| r.task_id).collect();
        let attempts: Vec<i32> = reports.iter().map(|r| to_i32(r.attempt)).collect();
        let nodes: Vec<&str> = reports.iter().map(|r| r.node_id.as_str()).collect();
        let outcomes: Vec<&str> = reports.iter().map(|r| r.outcome.as_str()).collect();
        let results: Vec<&Value> = reports.iter().map(|r| &r.result).collect();
        let errors: Vec<Option<&str>> = reports.iter().map(|r| r.error.as_deref()).collect();
        let starts: Vec<Timestamp> = reports.iter().map(|r| r.started_at).collect();
        let ends: Vec<Timestamp> = reports.iter().map(|r| r.finished_at).collect();
        let start_reports: Vec<Option<Timestamp>> =
            reports.iter().map(|r| r.start_reported_at).collect();
        let client = self.client().await?;
        let statement = client.prepare_cached(table::FINISH_ATTEMPTS.sql()).await?;
        let rows = client
            .query(
                &statement,
                &[
                    &ids,
                    &attempts,
                    &nodes,
                    &outcomes,
                    &results,
                    &errors,
                    &starts,
                    &ends,
                    &start_reports,
                ],
            )
            .await?;
        let mut transitions = Vec::with_capacity(rows.len() * 2);
        for row in &rows {
            let finished = transition_from_row(row)?;
            let started: Option<Timestamp> = row.try_get("start_reported_at")?;
            if let Some(at) = started {
                transitions.push(Transition {
                    from: TaskState::Scheduled,
                    to: TaskState::Running,
                    reason: None,
                    at,
                    requeued: None,
                    due: None,
                    ..finished.clone()
                });
                transitions.push(Transition {
                    from: TaskState::Running,
                    ..finished
                });
            } else {
                transitions.push(finished);
            }
        }
        Ok(transitions)
    }

    /// Records why queued tasks still wait; unchanged reasons are not written.
    pub async fn set_wait_reasons(&self, reasons: &[(Uuid, String)]) -> Result<()> {
        if reasons.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = reasons.iter().map(|(id, _)| *id).collect();
        let texts: Vec<&str> = reasons.iter().map(|(_, r)| r.as_str()).collect();
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE tasks t SET wait_reason = i.reason \
                 FROM unnest($1::uuid[], $2::text[]) AS i(id, reason) \
                 WHERE t.id = i.id AND t.state = 'queued' \
                   AND t.wait_reason IS DISTINCT FROM i.reason",
            )
            .await?;
        client.execute(&statement, &[&ids, &texts]).await?;
        Ok(())
    }
}

pub(super) fn scheduled_from_row(row: &Row) -> Result<ScheduledTask> {
    Ok(ScheduledTask {
        id: row.try_get("id")?,
        attempt: to_u32(row.try_get("attempt")?),
        pool: row.try_get("pool")?,
        tenant: row.try_get("tenant")?,
        kind: parse_kind(row.try_get("kind")?)?,
        spec: row.try_get("spec")?,
        resources: resources_from_row(row)?,
        timeout_ms: timeout_from_row(row)?,
        node_id: row.try_get("node_id")?,
        scheduled_at: row.try_get("scheduled_at")?,
        reason: row.try_get("reason")?,
    })
}
