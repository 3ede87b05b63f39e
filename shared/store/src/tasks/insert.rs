//! Creating tasks: one statement per batch, with each task's first history
//! row, skipping the ids and idempotency keys that exist already.

use super::{QueuedTask, parse_state, placement_deadline, queued_from_row};
use crate::transitions::table;
use crate::{Result, Store, to_i32, to_i64};
use serde_json::Value;
use taskyard_wire::{Resources, TaskState, Timestamp};
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
    /// Who asked for it (see [`crate::actors`]), kept in its first history
    /// row; `None` for the system's own (a compensation, a stream
    /// submission, which no one vouches for).
    pub actor: Option<String>,
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
            actor: None,
        }
    }
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

/// The template of [`table::INSERT_TASKS`]. It has no guard: the state of
/// each row is its caller's, checked against the table before it runs.
pub(crate) const INSERT_TASKS: &str = "
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[],
                         $6::int[], $7::int[], $8::int[], $9::text[], $10::bigint[],
                         $11::int[], $12::jsonb[], $13::text[], $14::text[], $15::jsonb[],
                         $16::bigint[], $17::bigint[], $18::bigint[], $19::timestamptz[],
                         $20::bigint[], $21::text[], $22::uuid[], $23::jsonb[], $24::jsonb[],
                         $25::uuid[], $26::text[])
        AS i(id, idempotency_key, pool, kind, spec, cpu_millis, memory_mb, priority,
             tenant, timeout_ms, max_attempts, labels, state, error, node_selector,
             estimated_runtime_ms, retry_backoff_ms, retry_backoff_max_ms, run_at,
             schedule_timeout_ms, name, workflow_id, depends_on, compensation, compensates,
             actor)
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
    -- The actor is not a column of tasks: it is joined from the input,
    -- one row per id (a plain join would repeat the row of an id given
    -- twice; a subquery per row made the statement quadratic in the batch).
    INSERT INTO task_events (task_id, attempt, from_state, to_state, at, reason, actor)
    SELECT ins.id, 0, NULL, ins.state, ins.created_at, ins.error, a.actor
    FROM ins LEFT JOIN (SELECT DISTINCT ON (id) id, actor FROM input) a ON a.id = ins.id
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

impl Store {
    /// Creates tasks in one statement, with their first history rows. Tasks whose
    /// id or idempotency key already exists are skipped; use
    /// [`Store::find_created`] to learn what exists for them.
    ///
    /// A task is created `queued`, `pending` or `rejected`
    /// ([`TaskState::INITIAL`]); a batch holding any other state is refused
    /// ([`crate::StoreError::Disallowed`]) and nothing of it is written, as
    /// the statement would otherwise store whatever it was given.
    pub async fn insert_tasks(&self, tasks: &[TaskInsert]) -> Result<Vec<CreatedTask>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        for task in tasks {
            table::INSERT_TASKS.check_chosen(task.state)?;
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
        let actors: Vec<Option<&str>> = tasks.iter().map(|t| t.actor.as_deref()).collect();
        let client = self.client().await?;
        let statement = client.prepare_cached(table::INSERT_TASKS.sql()).await?;
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
                    &actors,
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
