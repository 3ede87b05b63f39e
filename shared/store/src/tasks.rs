//! Tasks: creation, the named transitions, and reads.
//!
//! Each transition is one statement: a guarded `UPDATE` over a batch given as
//! arrays, whose `RETURNING` rows feed an `INSERT INTO task_events` in the same
//! statement. Rows that fail the guard (wrong state or attempt) are simply not
//! returned; callers learn from the result which tasks moved.

use crate::{Result, Store, StoreError, to_i32, to_i64, to_u32};
use serde::Serialize;
use serde_json::Value;
use taskyard_wire::event::PlacementRequest;
use taskyard_wire::{Resources, TaskKind, TaskState, Timestamp};
use tokio_postgres::Row;
use uuid::Uuid;

/// A task to create, valid (`queued`) or refused (`rejected` with its reason).
#[derive(Debug, Clone)]
pub struct TaskInsert {
    pub id: Uuid,
    pub idempotency_key: Option<String>,
    pub pool: String,
    /// A known kind for queued tasks; whatever the client sent for rejected ones.
    pub kind: String,
    pub spec: Value,
    pub resources: Resources,
    pub priority: i32,
    pub tenant: String,
    pub timeout_ms: Option<u64>,
    pub max_attempts: u32,
    pub labels: Value,
    /// Labels a node must carry (`{}` for any).
    pub node_selector: Value,
    /// The client's run-time estimate, for SJF.
    pub estimated_runtime_ms: Option<u64>,
    /// `queued`, `pending` (waits for its dependencies or its `run_at`) or
    /// `rejected`.
    pub state: TaskState,
    /// The rejection reason; required when `state` is `rejected`.
    pub error: Option<String>,
    /// Backoff between attempts; `None` takes the pool's.
    pub retry_backoff_ms: Option<u64>,
    pub retry_backoff_max_ms: Option<u64>,
    /// Not before this time.
    pub run_at: Option<Timestamp>,
    /// Rolled back to `rejected` when still queued this long.
    pub schedule_timeout_ms: Option<u64>,
    /// Its name in its batch or workflow.
    pub name: Option<String>,
    pub workflow_id: Option<Uuid>,
    /// Tasks that must succeed first.
    pub depends_on: Vec<Uuid>,
    /// The task that undoes this one (a submission object).
    pub compensation: Option<Value>,
    /// On a compensation task: the step it undoes.
    pub compensates: Option<Uuid>,
}

impl TaskInsert {
    /// A rejected row for `id` with `reason`, and nothing else.
    pub fn rejected(
        id: Uuid,
        pool: String,
        kind: String,
        spec: Value,
        tenant: String,
        reason: String,
    ) -> TaskInsert {
        TaskInsert {
            id,
            idempotency_key: None,
            pool,
            kind,
            spec,
            resources: Resources {
                cpu_millis: 0,
                memory_mb: 0,
            },
            priority: 0,
            tenant,
            timeout_ms: None,
            max_attempts: 1,
            labels: Value::Object(Default::default()),
            node_selector: Value::Object(Default::default()),
            estimated_runtime_ms: None,
            state: TaskState::Rejected,
            error: Some(reason),
            retry_backoff_ms: None,
            retry_backoff_max_ms: None,
            run_at: None,
            schedule_timeout_ms: None,
            name: None,
            workflow_id: None,
            depends_on: Vec::new(),
            compensation: None,
            compensates: None,
        }
    }
}

/// A task as the scheduler sees it while it waits.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedTask {
    pub id: Uuid,
    pub pool: String,
    /// The current attempt (the scheduler's placement bumps it).
    pub attempt: u32,
    pub request: PlacementRequest,
}

/// A row created by [`Store::insert_tasks`], or found there already.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedTask {
    pub id: Uuid,
    pub idempotency_key: Option<String>,
    pub state: TaskState,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub queued: QueuedTask,
    /// Not before this time (a `pending` task with a delay).
    pub run_at: Option<Timestamp>,
    /// When a `queued` task must be placed by.
    pub placement_deadline: Option<Timestamp>,
}

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
    /// `succeeded`, `failed` or `timed_out`.
    pub outcome: TaskState,
    pub result: Value,
    pub error: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    /// When the worker's start report came in the same batch: the statement
    /// then records `scheduled → running` too, in one row update.
    pub start_reported_at: Option<Timestamp>,
}

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

/// A task placed on a node (its reservation).
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedTask {
    pub id: Uuid,
    pub pool: String,
    pub tenant: String,
    pub node_id: String,
    pub attempt: u32,
    pub state: TaskState,
    pub resources: Resources,
}

/// A task as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskRow {
    pub id: Uuid,
    pub seq: i64,
    pub idempotency_key: Option<String>,
    pub pool: String,
    pub kind: String,
    pub spec: Value,
    pub resources: Resources,
    pub priority: i32,
    pub tenant: String,
    pub timeout_ms: Option<u64>,
    pub max_attempts: u32,
    pub labels: Value,
    pub state: TaskState,
    pub attempt: u32,
    pub node_id: Option<String>,
    pub result: Option<Value>,
    pub error: Option<String>,
    /// Labels a node must carry to run it.
    pub node_selector: Value,
    /// The client's run-time estimate (SJF).
    pub estimated_runtime_ms: Option<u64>,
    /// Why it still waits, while queued (the scheduler's latest word).
    pub wait_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub queued_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

/// One row of a task's history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventRow {
    pub id: i64,
    pub task_id: Uuid,
    pub attempt: u32,
    pub from_state: Option<TaskState>,
    pub to_state: TaskState,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub node_id: Option<String>,
    pub reason: Option<String>,
}

/// Filters of [`Store::list_tasks`].
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub state: Option<TaskState>,
    pub pool: Option<String>,
    /// Only tasks of this tenant.
    pub tenant: Option<String>,
    /// Only tasks created before this `seq` (cursor pagination, newest first).
    pub before_seq: Option<i64>,
    pub limit: u32,
}

pub(crate) const TASK_COLUMNS: &str = "id, seq, idempotency_key, pool, kind, spec, cpu_millis, memory_mb, \
     priority, tenant, timeout_ms, max_attempts, labels, state::text AS state, attempt, node_id, \
     result, error, node_selector, estimated_runtime_ms, wait_reason, created_at, queued_at, scheduled_at, started_at, \
     finished_at";

const INSERT_TASKS: &str = "
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[],
                         $6::int[], $7::int[], $8::int[], $9::text[], $10::bigint[],
                         $11::int[], $12::jsonb[], $13::text[], $14::text[], $15::jsonb[],
                         $16::bigint[], $17::bigint[], $18::bigint[], $19::timestamptz[],
                         $20::bigint[], $21::text[], $22::uuid[], $23::jsonb[], $24::jsonb[],
                         $25::uuid[])
        AS i(id, idempotency_key, pool, kind, spec, cpu_millis, memory_mb, priority,
             tenant, timeout_ms, max_attempts, labels, state, error, node_selector,
             estimated_runtime_ms, retry_backoff_ms, retry_backoff_max_ms, run_at,
             schedule_timeout_ms, name, workflow_id, depends_on, compensation, compensates)
), ins AS (
    INSERT INTO tasks (id, idempotency_key, pool, kind, spec, cpu_millis, memory_mb,
                       priority, tenant, timeout_ms, max_attempts, labels, state, error,
                       node_selector, estimated_runtime_ms, retry_backoff_ms,
                       retry_backoff_max_ms, run_at, schedule_timeout_ms, name, workflow_id,
                       depends_on, compensation, compensates, queued_at, finished_at)
    SELECT id, idempotency_key, pool, kind, spec, cpu_millis, memory_mb, priority, tenant,
           timeout_ms, max_attempts, labels, state::task_state, error, node_selector,
           estimated_runtime_ms, retry_backoff_ms, retry_backoff_max_ms, run_at,
           schedule_timeout_ms, name, workflow_id,
           ARRAY(SELECT jsonb_array_elements_text(depends_on)::uuid),
           compensation, compensates,
           CASE WHEN state = 'queued' THEN now() END,
           CASE WHEN state = 'rejected' THEN now() END
    FROM input
    ON CONFLICT DO NOTHING
    RETURNING id, seq, idempotency_key, pool, kind, cpu_millis, memory_mb, priority, tenant,
              state, error, attempt, created_at, node_selector, estimated_runtime_ms,
              run_at, schedule_timeout_ms
), history AS (
    INSERT INTO task_events (task_id, attempt, from_state, to_state, at, reason)
    SELECT id, 0, NULL, state, created_at, error FROM ins
)
SELECT id, seq, idempotency_key, pool, kind, cpu_millis, memory_mb, priority, tenant,
       state::text AS state, error, attempt, created_at, node_selector, estimated_runtime_ms,
       run_at, schedule_timeout_ms
FROM ins";

const FIND_CREATED: &str = "
SELECT id, seq, idempotency_key, pool, kind, cpu_millis, memory_mb, priority, tenant,
       state::text AS state, error, attempt, created_at, node_selector, estimated_runtime_ms,
       run_at, schedule_timeout_ms
FROM tasks
WHERE id = ANY($1) OR idempotency_key = ANY($2)";

const MARK_SCHEDULED: &str = "
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[])
        AS i(id, attempt, node_id, reason)
), upd AS (
    UPDATE tasks t
    SET state = 'scheduled', attempt = t.attempt + 1, node_id = i.node_id,
        scheduled_at = now(), wait_reason = NULL
    FROM input i
    WHERE t.id = i.id AND t.state = 'queued' AND t.attempt = i.attempt
    RETURNING t.id, t.attempt, t.pool, t.tenant, t.kind, t.spec, t.cpu_millis, t.memory_mb,
              t.timeout_ms, t.node_id, t.scheduled_at, i.reason
), history AS (
    INSERT INTO task_events (task_id, attempt, from_state, to_state, at, node_id, reason)
    SELECT id, attempt, 'queued', 'scheduled', scheduled_at, node_id, reason FROM upd
)
SELECT * FROM upd";

const MARK_RUNNING: &str = "
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::timestamptz[])
        AS i(id, attempt, node_id, at)
), upd AS (
    UPDATE tasks t
    SET state = 'running', started_at = i.at
    FROM input i
    WHERE t.id = i.id AND t.state = 'scheduled' AND t.attempt = i.attempt
      AND t.node_id = i.node_id
    RETURNING t.id, t.pool, t.attempt, t.node_id, i.at, t.created_at,
              i.at + t.timeout_ms * interval '1 millisecond' AS due
), history AS (
    INSERT INTO task_events (task_id, attempt, from_state, to_state, at, node_id)
    SELECT id, attempt, 'scheduled', 'running', at, node_id FROM upd
)
SELECT id, pool, attempt, node_id, at, created_at, due FROM upd";

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
/// [`finish_from_row`] reads them.
macro_rules! transition_columns {
    () => {
        "id, seq, pool, tenant, kind, priority, cpu_millis, memory_mb, node_selector,
       estimated_runtime_ms, attempt, retry_at, schedule_timeout_ms,
       state::text AS state, from_state::text AS from_state, node_id, finished_at, reason,
       created_at"
    };
}
pub(crate) use transition_columns;

/// An attempt that ends badly while attempts remain sends the task to
/// `retrying` until its backoff has passed (or straight back to `queued` when
/// the backoff is zero); otherwise the outcome is final.
const FINISH_ATTEMPTS: &str = concat!(
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
    WHERE t.state IN ('scheduled', 'running') AND t.attempt = i.attempt
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
    /// Creates tasks in one statement, with their first history rows. Tasks whose
    /// id or idempotency key already exists are skipped; use
    /// [`Store::find_created`] to learn what exists for them.
    pub async fn insert_tasks(&self, tasks: &[TaskInsert]) -> Result<Vec<CreatedTask>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
        let keys: Vec<Option<&str>> = tasks.iter().map(|t| t.idempotency_key.as_deref()).collect();
        let pools: Vec<&str> = tasks.iter().map(|t| t.pool.as_str()).collect();
        let kinds: Vec<&str> = tasks.iter().map(|t| t.kind.as_str()).collect();
        let specs: Vec<&Value> = tasks.iter().map(|t| &t.spec).collect();
        let cpus: Vec<i32> = tasks
            .iter()
            .map(|t| to_i32(t.resources.cpu_millis))
            .collect();
        let mems: Vec<i32> = tasks
            .iter()
            .map(|t| to_i32(t.resources.memory_mb))
            .collect();
        let priorities: Vec<i32> = tasks.iter().map(|t| t.priority).collect();
        let tenants: Vec<&str> = tasks.iter().map(|t| t.tenant.as_str()).collect();
        let timeouts: Vec<Option<i64>> = tasks
            .iter()
            .map(|t| t.timeout_ms.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)))
            .collect();
        let attempts: Vec<i32> = tasks.iter().map(|t| to_i32(t.max_attempts)).collect();
        let labels: Vec<&Value> = tasks.iter().map(|t| &t.labels).collect();
        let states: Vec<&str> = tasks.iter().map(|t| t.state.as_str()).collect();
        let errors: Vec<Option<&str>> = tasks.iter().map(|t| t.error.as_deref()).collect();
        let selectors: Vec<&Value> = tasks.iter().map(|t| &t.node_selector).collect();
        let estimates: Vec<Option<i64>> = tasks
            .iter()
            .map(|t| {
                t.estimated_runtime_ms
                    .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX))
            })
            .collect();
        let backoffs: Vec<Option<i64>> = tasks
            .iter()
            .map(|t| t.retry_backoff_ms.map(to_i64))
            .collect();
        let backoff_maxes: Vec<Option<i64>> = tasks
            .iter()
            .map(|t| t.retry_backoff_max_ms.map(to_i64))
            .collect();
        let run_ats: Vec<Option<Timestamp>> = tasks.iter().map(|t| t.run_at).collect();
        let schedule_timeouts: Vec<Option<i64>> = tasks
            .iter()
            .map(|t| t.schedule_timeout_ms.map(to_i64))
            .collect();
        let names: Vec<Option<&str>> = tasks.iter().map(|t| t.name.as_deref()).collect();
        let workflows: Vec<Option<Uuid>> = tasks.iter().map(|t| t.workflow_id).collect();
        // A ragged uuid[][] cannot be unnested row by row; a JSON array can.
        let depends: Vec<Value> = tasks
            .iter()
            .map(|t| {
                Value::Array(
                    t.depends_on
                        .iter()
                        .map(|id| Value::String(id.to_string()))
                        .collect(),
                )
            })
            .collect();
        let compensations: Vec<Option<&Value>> =
            tasks.iter().map(|t| t.compensation.as_ref()).collect();
        let compensates: Vec<Option<Uuid>> = tasks.iter().map(|t| t.compensates).collect();
        let client = self.client().await?;
        let statement = client.prepare_cached(INSERT_TASKS).await?;
        let rows = client
            .query(
                &statement,
                &[
                    &ids,
                    &keys,
                    &pools,
                    &kinds,
                    &specs,
                    &cpus,
                    &mems,
                    &priorities,
                    &tenants,
                    &timeouts,
                    &attempts,
                    &labels,
                    &states,
                    &errors,
                    &selectors,
                    &estimates,
                    &backoffs,
                    &backoff_maxes,
                    &run_ats,
                    &schedule_timeouts,
                    &names,
                    &workflows,
                    &depends,
                    &compensations,
                    &compensates,
                ],
            )
            .await?;
        rows.iter().map(created_from_row).collect()
    }

    /// The tasks that exist with any of these ids or idempotency keys.
    pub async fn find_created(&self, ids: &[Uuid], keys: &[String]) -> Result<Vec<CreatedTask>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(FIND_CREATED).await?;
        let rows = client.query(&statement, &[&ids, &keys]).await?;
        rows.iter().map(created_from_row).collect()
    }

    /// `queued → scheduled` for a batch of placements, bumping the attempt.
    /// Returns the tasks that moved, with what their dispatch needs.
    pub async fn mark_scheduled(&self, placements: &[Placement]) -> Result<Vec<ScheduledTask>> {
        if placements.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = placements.iter().map(|p| p.task_id).collect();
        let attempts: Vec<i32> = placements.iter().map(|p| to_i32(p.attempt)).collect();
        let nodes: Vec<&str> = placements.iter().map(|p| p.node_id.as_str()).collect();
        let reasons: Vec<&str> = placements.iter().map(|p| p.reason.as_str()).collect();
        let client = self.client().await?;
        let statement = client.prepare_cached(MARK_SCHEDULED).await?;
        let rows = client
            .query(&statement, &[&ids, &attempts, &nodes, &reasons])
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
        let statement = client.prepare_cached(MARK_RUNNING).await?;
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

    /// `scheduled | running → succeeded | failed | timed_out`, or back to
    /// `queued` when the attempt failed and attempts remain. The finish of an
    /// attempt still `scheduled` also records `scheduled → running`, at
    /// `start_reported_at` when given, else at the report's `started_at`.
    pub async fn finish_attempts(&self, reports: &[FinishReport]) -> Result<Vec<Transition>> {
        if reports.is_empty() {
            return Ok(Vec::new());
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
        let statement = client.prepare_cached(FINISH_ATTEMPTS).await?;
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
            let finished = finish_from_row(row)?;
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

    /// What shortest-job-first has learned: the mean run time, in
    /// milliseconds, of each (pool, kind) with successful runs.
    pub async fn runtime_estimates(
        &self,
    ) -> Result<std::collections::HashMap<(String, String), u64>> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT pool, kind, mean_ms FROM runtime_estimates", &[])
            .await?;
        rows.iter()
            .map(|row| {
                let mean: f64 = row.try_get("mean_ms")?;
                Ok((
                    (row.try_get("pool")?, row.try_get("kind")?),
                    // At least 1 ms: a task said to take no time at all would
                    // always jump the queue.
                    mean.round().max(1.0) as u64,
                ))
            })
            .collect()
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

    /// Every queued task, in creation order (the scheduler's rebuild).
    pub async fn queued_tasks(&self) -> Result<Vec<QueuedTask>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, seq, pool, tenant, kind, priority, cpu_millis, memory_mb, attempt, \
                        node_selector, estimated_runtime_ms \
                 FROM tasks WHERE state = 'queued' ORDER BY seq",
                &[],
            )
            .await?;
        rows.iter().map(queued_from_row).collect()
    }

    /// Every task holding a reservation on a node (the scheduler's rebuild).
    pub async fn placed_tasks(&self) -> Result<Vec<PlacedTask>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, pool, tenant, node_id, attempt, state::text AS state, cpu_millis, \
                        memory_mb \
                 FROM tasks WHERE state IN ('scheduled', 'running')",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PlacedTask {
                    id: row.try_get("id")?,
                    pool: row.try_get("pool")?,
                    tenant: row.try_get("tenant")?,
                    node_id: row.try_get("node_id")?,
                    attempt: to_u32(row.try_get("attempt")?),
                    state: parse_state(row.try_get("state")?)?,
                    resources: resources_from_row(row)?,
                })
            })
            .collect()
    }

    /// Tasks in `scheduled`: their dispatch may not have reached NATS before a
    /// crash, so a starting scheduler sends them again (deduplicated by
    /// `Nats-Msg-Id` and fenced by the attempt).
    pub async fn scheduled_tasks(&self) -> Result<Vec<ScheduledTask>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, attempt, pool, tenant, kind, spec, cpu_millis, memory_mb, timeout_ms, \
                        node_id, scheduled_at, NULL::text AS reason \
                 FROM tasks WHERE state = 'scheduled'",
                &[],
            )
            .await?;
        rows.iter().map(scheduled_from_row).collect()
    }

    /// One task, or `None`.
    pub async fn get_task(&self, id: Uuid) -> Result<Option<TaskRow>> {
        let client = self.client().await?;
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
        let row = client.query_opt(&sql, &[&id]).await?;
        row.as_ref().map(task_from_row).transpose()
    }

    /// Tasks newest first, filtered.
    ///
    /// Only the filters given become conditions, so that the planner sees
    /// plain equalities and walks one of the `(…, seq DESC)` indexes of
    /// migration V8: a page costs `limit` index entries at any table size.
    pub async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskRow>> {
        let client = self.client().await?;
        let (sql, params) = list_tasks_query(filter);
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p.as_ref() as _).collect();
        let rows = client.query(&sql, &params).await?;
        rows.iter().map(task_from_row).collect()
    }

    /// The plan Postgres picks for [`Store::list_tasks`] with `filter`
    /// (`EXPLAIN`, or `EXPLAIN ANALYZE` when `analyze`), one line per node:
    /// for tests and for looking at a slow list.
    pub async fn explain_list_tasks(&self, filter: &TaskFilter, analyze: bool) -> Result<String> {
        let client = self.client().await?;
        let (sql, params) = list_tasks_query(filter);
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p.as_ref() as _).collect();
        let explain = if analyze {
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)"
        } else {
            "EXPLAIN (COSTS OFF)"
        };
        let rows = client.query(&format!("{explain} {sql}"), &params).await?;
        let lines: Vec<String> = rows
            .iter()
            .map(|row| row.try_get::<_, String>(0))
            .collect::<std::result::Result<_, _>>()?;
        Ok(lines.join("\n"))
    }

    /// One page of a task's history, oldest first: events after the event
    /// id `after` (exclusive), at most `limit`.
    pub async fn task_events_page(
        &self,
        id: Uuid,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<EventRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, task_id, attempt, from_state::text AS from_state, \
                        to_state::text AS to_state, at, node_id, reason \
                 FROM task_events WHERE task_id = $1 AND ($2::bigint IS NULL OR id > $2) \
                 ORDER BY id LIMIT $3",
                &[&id, &after, &i64::from(limit)],
            )
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// A task's history, oldest first.
    pub async fn task_events(&self, id: Uuid) -> Result<Vec<EventRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, task_id, attempt, from_state::text AS from_state, \
                        to_state::text AS to_state, at, node_id, reason \
                 FROM task_events WHERE task_id = $1 ORDER BY id",
                &[&id],
            )
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// How many tasks each tenant has in each state, by tenant then state.
    pub async fn tenant_state_counts(&self) -> Result<Vec<(String, TaskState, i64)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT tenant, state::text AS state, count(*) AS n FROM tasks \
                 GROUP BY tenant, state ORDER BY tenant, state",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("tenant")?,
                    parse_state(row.try_get("state")?)?,
                    row.try_get("n")?,
                ))
            })
            .collect()
    }

    /// How many tasks are in each state (all pools, or one).
    pub async fn state_counts(&self, pool: Option<&str>) -> Result<Vec<(TaskState, i64)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT state::text AS state, count(*) AS n FROM tasks \
                 WHERE ($1::text IS NULL OR pool = $1) GROUP BY state ORDER BY state",
                &[&pool],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((parse_state(row.try_get("state")?)?, row.try_get("n")?)))
            .collect()
    }
}

/// The SQL and parameters of [`Store::list_tasks`].
fn list_tasks_query(
    filter: &TaskFilter,
) -> (
    String,
    Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>,
) {
    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = Vec::new();
    if let Some(state) = filter.state {
        params.push(Box::new(state.as_str().to_owned()));
        conditions.push(format!("state = ${}::text::task_state", params.len()));
    }
    if let Some(pool) = &filter.pool {
        params.push(Box::new(pool.clone()));
        conditions.push(format!("pool = ${}", params.len()));
    }
    if let Some(tenant) = &filter.tenant {
        params.push(Box::new(tenant.clone()));
        conditions.push(format!("tenant = ${}", params.len()));
    }
    if let Some(before) = filter.before_seq {
        params.push(Box::new(before));
        conditions.push(format!("seq < ${}", params.len()));
    }
    let filter_sql = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", conditions.join(" AND "))
    };
    params.push(Box::new(i64::from(filter.limit)));
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks {filter_sql}ORDER BY seq DESC LIMIT ${}",
        params.len()
    );
    (sql, params)
}

fn event_from_row(row: &Row) -> Result<EventRow> {
    let from: Option<String> = row.try_get("from_state")?;
    Ok(EventRow {
        id: row.try_get("id")?,
        task_id: row.try_get("task_id")?,
        attempt: to_u32(row.try_get("attempt")?),
        from_state: from.as_deref().map(parse_state).transpose()?,
        to_state: parse_state(row.try_get("to_state")?)?,
        at: row.try_get("at")?,
        node_id: row.try_get("node_id")?,
        reason: row.try_get("reason")?,
    })
}

pub(crate) fn parse_state(name: &str) -> Result<TaskState> {
    name.parse()
        .map_err(|err: taskyard_wire::state::UnknownState| StoreError::Corrupt(err.to_string()))
}

fn parse_kind(name: &str) -> Result<TaskKind> {
    name.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown task kind `{name}` in a live task")))
}

fn resources_from_row(row: &Row) -> Result<Resources> {
    Ok(Resources {
        cpu_millis: to_u32(row.try_get("cpu_millis")?),
        memory_mb: to_u32(row.try_get("memory_mb")?),
    })
}

fn timeout_from_row(row: &Row) -> Result<Option<u64>> {
    let timeout: Option<i64> = row.try_get("timeout_ms")?;
    Ok(timeout.map(|ms| u64::try_from(ms).unwrap_or(0)))
}

fn queued_from_row(row: &Row) -> Result<QueuedTask> {
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

fn created_from_row(row: &Row) -> Result<CreatedTask> {
    Ok(CreatedTask {
        id: row.try_get("id")?,
        idempotency_key: row.try_get("idempotency_key")?,
        state: parse_state(row.try_get("state")?)?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        queued: queued_from_row(row)?,
        run_at: row.try_get("run_at")?,
        placement_deadline: placement_deadline(row)?,
    })
}

fn scheduled_from_row(row: &Row) -> Result<ScheduledTask> {
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

/// A transition out of `scheduled` or `running`, from a row that carries
/// the task's placement request, `retry_at` and `schedule_timeout_ms`.
pub(crate) fn finish_from_row(row: &Row) -> Result<Transition> {
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

/// A task queued now with a `schedule_timeout_ms` must be placed by then.
pub(crate) fn placement_deadline(row: &Row) -> Result<Option<Timestamp>> {
    let timeout: Option<i64> = row.try_get("schedule_timeout_ms")?;
    Ok(timeout.map(|ms| taskyard_wire::now() + time::Duration::milliseconds(ms)))
}

pub(crate) fn task_from_row(row: &Row) -> Result<TaskRow> {
    let max_attempts: i32 = row.try_get("max_attempts")?;
    Ok(TaskRow {
        id: row.try_get("id")?,
        seq: row.try_get("seq")?,
        idempotency_key: row.try_get("idempotency_key")?,
        pool: row.try_get("pool")?,
        kind: row.try_get("kind")?,
        spec: row.try_get("spec")?,
        resources: resources_from_row(row)?,
        priority: row.try_get("priority")?,
        tenant: row.try_get("tenant")?,
        timeout_ms: timeout_from_row(row)?,
        max_attempts: to_u32(max_attempts),
        labels: row.try_get("labels")?,
        state: parse_state(row.try_get("state")?)?,
        attempt: to_u32(row.try_get("attempt")?),
        node_id: row.try_get("node_id")?,
        result: row.try_get("result")?,
        error: row.try_get("error")?,
        node_selector: row.try_get("node_selector")?,
        estimated_runtime_ms: row
            .try_get::<_, Option<i64>>("estimated_runtime_ms")?
            .map(|ms| u64::try_from(ms).unwrap_or(0)),
        wait_reason: row.try_get("wait_reason")?,
        created_at: row.try_get("created_at")?,
        queued_at: row.try_get("queued_at")?,
        scheduled_at: row.try_get("scheduled_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}
