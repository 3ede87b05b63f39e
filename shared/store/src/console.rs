//! Reads for the web console: the filtered task list with keyset paging,
//! throughput and latency over time, queue depths, node resource history
//! and the workflow list.
//!
//! Every query is shaped to use an index at any table size: the task list
//! pages on the primary key (`id`, a UUIDv7, newest first) and never uses
//! `OFFSET`; each filter has an index led by its column and ending in `id`
//! (`migrations/V8`, `V9`), so a page costs the same at the first row and at
//! the millionth.

use crate::tasks::{TASK_COLUMNS, task_from_row};
use crate::{Result, Store};
use serde::Serialize;
use taskyard_wire::{TaskState, Timestamp};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// Filters of [`Store::console_tasks`]; every one optional.
#[derive(Debug, Clone, Default)]
pub struct ConsoleFilter {
    pub state: Option<TaskState>,
    pub pool: Option<String>,
    pub tenant: Option<String>,
    pub kind: Option<String>,
    /// Created at or after.
    pub created_after: Option<Timestamp>,
    /// Created before.
    pub created_before: Option<Timestamp>,
    /// An id prefix (hex digits, dashes allowed) or a name prefix.
    pub search: Option<String>,
    /// Only tasks created before this `seq` (the previous page's last).
    pub cursor: Option<i64>,
    pub limit: u32,
}

/// The inclusive range of UUIDs that start with a hex prefix, or `None`
/// when `text` is not one (it is then searched as a name).
pub fn uuid_prefix_range(text: &str) -> Option<(Uuid, Uuid)> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.is_empty() || hex.len() > 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let low = format!("{hex:0<32}");
    let high = format!("{hex:f<32}");
    Some((Uuid::parse_str(&low).ok()?, Uuid::parse_str(&high).ok()?))
}

/// Escapes `%`, `_` and `\` for a `LIKE` pattern.
fn like_prefix(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// One minute of finished work.
#[derive(Debug, Clone, Serialize)]
pub struct MinuteStats {
    #[serde(with = "time::serde::rfc3339")]
    pub minute: Timestamp,
    pub succeeded: i64,
    /// Failed, timed out, cancelled or rejected.
    pub failed: i64,
    /// Submission to finish of the tasks that succeeded, in milliseconds.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

/// A pool's live load.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PoolLoad {
    pub pool: String,
    /// Queued (and pending or retrying) tasks.
    pub waiting: i64,
    /// Scheduled or running.
    pub running: i64,
}

/// One point of a node's resource history (a bucket's mean).
#[derive(Debug, Clone, Serialize)]
pub struct NodePoint {
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
    pub cpu_percent: f64,
    pub memory_used_mb: f64,
    pub running: i64,
}

/// A workflow in the list, with its step count.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowSummary {
    pub id: Uuid,
    pub name: String,
    pub tenant: String,
    pub state: String,
    pub error: Option<String>,
    pub steps: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

impl Store {
    /// A page of tasks, newest first, under the console's filters. The
    /// statement is built from the filters present, so that the planner
    /// sees plain conditions and picks the index for them.
    pub async fn console_tasks(
        &self,
        filter: &ConsoleFilter,
    ) -> Result<Vec<crate::tasks::TaskRow>> {
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        // Each `?` of `sql` becomes the next parameter, taken from `values`.
        let mut add = |sql: &str, values: Vec<Box<dyn ToSql + Sync + Send>>| {
            let mut out = String::new();
            for (i, part) in sql.split('?').enumerate() {
                if i > 0 {
                    out.push_str(&format!("${}", params.len() + i));
                }
                out.push_str(part);
            }
            params.extend(values);
            conditions.push(out);
        };
        if let Some(state) = filter.state {
            add(
                crate::tasks::reads::state_condition(state),
                vec![Box::new(state.as_str().to_owned())],
            );
        }
        if let Some(pool) = &filter.pool {
            add("pool = ?", vec![Box::new(pool.clone())]);
        }
        if let Some(tenant) = &filter.tenant {
            add("tenant = ?", vec![Box::new(tenant.clone())]);
        }
        if let Some(kind) = &filter.kind {
            add("kind = ?", vec![Box::new(kind.clone())]);
        }
        if let Some(after) = filter.created_after {
            add("created_at >= ?", vec![Box::new(after)]);
        }
        if let Some(before) = filter.created_before {
            add("created_at < ?", vec![Box::new(before)]);
        }
        if let Some(search) = filter
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match uuid_prefix_range(search) {
                // Hex could also start a name: look for both.
                Some((low, high)) => add(
                    "((id BETWEEN ? AND ?) OR name LIKE ?)",
                    vec![Box::new(low), Box::new(high), Box::new(like_prefix(search))],
                ),
                None => add("name LIKE ?", vec![Box::new(like_prefix(search))]),
            }
        }
        if let Some(cursor) = filter.cursor {
            add("seq < ?", vec![Box::new(cursor)]);
        }
        params.push(Box::new(i64::from(filter.limit.max(1))));
        let limit = params.len();
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks {where_clause} ORDER BY seq DESC LIMIT ${limit}"
        );
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let client = self.client().await?;
        let rows = client.query(&sql, &refs).await?;
        rows.iter().map(task_from_row).collect()
    }

    /// Per minute over the last `minutes`: tasks finished (succeeded and
    /// not) and the p50 and p95 of submission-to-finish of those that
    /// succeeded. Minutes without work are absent.
    pub async fn minute_stats(&self, minutes: u32) -> Result<Vec<MinuteStats>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT date_trunc('minute', finished_at) AS minute, \
                        count(*) FILTER (WHERE state = 'succeeded') AS succeeded, \
                        count(*) FILTER (WHERE state <> 'succeeded') AS failed, \
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at) * 1000) \
                            FILTER (WHERE state = 'succeeded') AS p50, \
                        percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at) * 1000) \
                            FILTER (WHERE state = 'succeeded') AS p95 \
                 FROM tasks \
                 WHERE finished_at >= date_trunc('minute', now()) - make_interval(mins => $1) \
                 GROUP BY 1 ORDER BY 1",
                &[&crate::to_i32(minutes)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(MinuteStats {
                    minute: row.try_get("minute")?,
                    succeeded: row.try_get("succeeded")?,
                    failed: row.try_get("failed")?,
                    p50_ms: row.try_get("p50")?,
                    p95_ms: row.try_get("p95")?,
                })
            })
            .collect()
    }

    /// Waiting and placed tasks per pool (from the partial index of live tasks).
    pub async fn pool_loads(&self) -> Result<Vec<PoolLoad>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT pool, \
                        count(*) FILTER (WHERE state IN ('pending', 'queued', 'retrying')) AS waiting, \
                        count(*) FILTER (WHERE state IN ('scheduled', 'running')) AS running \
                 FROM tasks \
                 WHERE finished_at IS NULL \
                 GROUP BY pool ORDER BY pool",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PoolLoad {
                    pool: row.try_get("pool")?,
                    waiting: row.try_get("waiting")?,
                    running: row.try_get("running")?,
                })
            })
            .collect()
    }

    /// A node's samples over the last `minutes`, averaged into at most
    /// `points` buckets, oldest first.
    pub async fn node_history(
        &self,
        node_id: &str,
        minutes: u32,
        points: u32,
    ) -> Result<Vec<NodePoint>> {
        let bucket_secs = (f64::from(minutes) * 60.0 / f64::from(points.max(1))).max(1.0);
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT to_timestamp(floor(extract(epoch FROM at)::float8 / $3::float8) * $3::float8) AS bucket, \
                        avg(cpu_percent)::float8 AS cpu, avg(memory_used_mb)::float8 AS mem, \
                        max(running)::bigint AS running \
                 FROM node_samples \
                 WHERE node_id = $1 AND at >= now() - make_interval(mins => $2) \
                 GROUP BY 1 ORDER BY 1",
                &[&node_id, &crate::to_i32(minutes), &bucket_secs],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(NodePoint {
                    at: row.try_get("bucket")?,
                    cpu_percent: row.try_get("cpu")?,
                    memory_used_mb: row.try_get("mem")?,
                    running: row.try_get("running")?,
                })
            })
            .collect()
    }

    /// The newest workflows first, with their step counts.
    pub async fn list_workflows(&self, limit: u32) -> Result<Vec<WorkflowSummary>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT w.id, w.name, w.tenant, w.state::text AS state, w.error, w.created_at, \
                        w.finished_at, \
                        (SELECT count(*) FROM tasks t WHERE t.workflow_id = w.id) AS steps \
                 FROM workflows w ORDER BY w.created_at DESC, w.id DESC LIMIT $1",
                &[&i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(WorkflowSummary {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    tenant: row.try_get("tenant")?,
                    state: row.try_get("state")?,
                    error: row.try_get("error")?,
                    steps: row.try_get("steps")?,
                    created_at: row.try_get("created_at")?,
                    finished_at: row.try_get("finished_at")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_prefixes_are_uuid_ranges() {
        let (low, high) = uuid_prefix_range("0193ab").expect("hex");
        assert_eq!(low.to_string(), "0193ab00-0000-0000-0000-000000000000");
        assert_eq!(high.to_string(), "0193abff-ffff-ffff-ffff-ffffffffffff");
        assert!(uuid_prefix_range("0193ab00-00").is_some());
        assert!(uuid_prefix_range("build").is_none());
        assert!(uuid_prefix_range("").is_none());
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_prefix("a_b%"), "a\\_b\\%%");
    }
}
