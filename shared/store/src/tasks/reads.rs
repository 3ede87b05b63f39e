//! The reads of the API, the console and the CLI: one task, filtered pages
//! of tasks (and their query plan), a task's history, counts by state.

use super::{parse_state, resources_from_row, timeout_from_row};
use crate::{Result, Store, to_u32};
use serde::Serialize;
use serde_json::Value;
use taskyard_wire::{Resources, TaskState, Timestamp};
use tokio_postgres::Row;
use uuid::Uuid;

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
    /// Who asked for it (`token:<name>`, `nats:<name>`, ...; see
    /// [`crate::actors`]); `None` when the system moved the task itself.
    pub actor: Option<String>,
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

impl Store {
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
                        to_state::text AS to_state, at, node_id, reason, actor \
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
                        to_state::text AS to_state, at, node_id, reason, actor \
                 FROM task_events WHERE task_id = $1 ORDER BY id",
                &[&id],
            )
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// How many tasks each tenant has in each state, by tenant then state
    /// (the finished ones from `task_counts`).
    pub async fn tenant_state_counts(&self) -> Result<Vec<(String, TaskState, i64)>> {
        let client = self.client().await?;
        crate::stats::fold_task_counts(&client).await?;
        let rows = client
            .query(
                "SELECT tenant, state::text AS state, count(*) AS n FROM tasks \
                 WHERE finished_at IS NULL GROUP BY tenant, state \
                 UNION ALL \
                 SELECT tenant, state::text, sum(n)::bigint FROM task_counts \
                 GROUP BY tenant, state HAVING sum(n) <> 0 \
                 ORDER BY tenant, state",
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

    /// How many tasks are in each state (all pools, or one): the live ones
    /// through the live tasks' index, the finished ones from `task_counts`.
    pub async fn state_counts(&self, pool: Option<&str>) -> Result<Vec<(TaskState, i64)>> {
        let client = self.client().await?;
        crate::stats::fold_task_counts(&client).await?;
        let rows = client
            .query(
                "SELECT state::text AS state, count(*) AS n FROM tasks \
                 WHERE finished_at IS NULL AND ($1::text IS NULL OR pool = $1) GROUP BY state \
                 UNION ALL \
                 SELECT state::text, sum(n)::bigint FROM task_counts \
                 WHERE $1::text IS NULL OR pool = $1 GROUP BY state HAVING sum(n) <> 0 \
                 ORDER BY state",
                &[&pool],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((parse_state(row.try_get("state")?)?, row.try_get("n")?)))
            .collect()
    }
}

/// The condition that finds tasks in `state`, its value a `?`: live states
/// through the live tasks' index, final ones through `outcome`, so that a
/// filter reads a few index entries however long the history is
/// (migrations/V13__hot_lifecycle.sql).
pub(crate) fn state_condition(state: TaskState) -> &'static str {
    if state.is_terminal() {
        "outcome = ?::text::task_state"
    } else {
        "finished_at IS NULL AND state = ?::text::task_state"
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
        conditions.push(state_condition(state).replace('?', &format!("${}", params.len())));
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
        actor: row.try_get("actor")?,
    })
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
