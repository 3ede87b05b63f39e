//! Aggregate questions over many tasks.

use crate::{Result, Store};

/// What a benchmark run's tasks did, read from their rows: when the first
/// and last started (the worker's clock) and how long each waited from the
/// client's clock at submission (`labels.submitted_at_us`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunFigures {
    pub finished: i64,
    pub succeeded: i64,
    /// Unix seconds.
    pub first_start: f64,
    pub last_start: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Medians of each hop, in ms: client → row created (orchestrator),
    /// created → placed (scheduler), placed → started (dispatch and worker).
    pub hops_p50_ms: [f64; 3],
}

impl Store {
    /// How many of `tenant`'s tasks are queued, and how many finished.
    pub async fn queued_and_finished(&self, tenant: &str) -> Result<(i64, i64)> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE state = 'queued'), \
                        count(*) FILTER (WHERE finished_at IS NOT NULL) \
                 FROM tasks WHERE tenant = $1",
                &[&tenant],
            )
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// [`RunFigures`] of `tenant`'s tasks.
    pub async fn run_figures(&self, tenant: &str) -> Result<RunFigures> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "WITH w AS (SELECT state, finished_at, extract(epoch FROM started_at) AS start, \
                        (extract(epoch FROM started_at) * 1e6 \
                         - (labels->>'submitted_at_us')::double precision) / 1e3 AS ms, \
                        (extract(epoch FROM created_at) * 1e6 \
                         - (labels->>'submitted_at_us')::double precision) / 1e3 AS created_ms, \
                        extract(epoch FROM scheduled_at - created_at) * 1e3 AS placed_ms, \
                        extract(epoch FROM started_at - scheduled_at) * 1e3 AS started_ms \
                     FROM tasks WHERE tenant = $1) \
                 SELECT count(*) FILTER (WHERE finished_at IS NOT NULL), \
                        count(*) FILTER (WHERE state = 'succeeded'), \
                        coalesce(min(start), 0)::double precision, \
                        coalesce(max(start), 0)::double precision, \
                        coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), 0), \
                        coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), 0), \
                        coalesce(max(ms), 0)::double precision, \
                        coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY created_ms), 0), \
                        coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY placed_ms), 0), \
                        coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY started_ms), 0) \
                 FROM w",
                &[&tenant],
            )
            .await?;
        Ok(RunFigures {
            finished: row.try_get(0)?,
            succeeded: row.try_get(1)?,
            first_start: row.try_get(2)?,
            last_start: row.try_get(3)?,
            p50_ms: row.try_get(4)?,
            p99_ms: row.try_get(5)?,
            max_ms: row.try_get(6)?,
            hops_p50_ms: [row.try_get(7)?, row.try_get(8)?, row.try_get(9)?],
        })
    }

    /// How many tasks each pool has in each state (the metrics' census):
    /// live ones through the live tasks' index, finished ones from
    /// `task_counts`.
    pub async fn pool_state_counts(&self) -> Result<Vec<(String, String, i64)>> {
        let client = self.client().await?;
        fold_task_counts(&client).await?;
        let rows = client
            .query(
                "SELECT pool, state::text AS state, count(*) AS n FROM tasks \
                 WHERE finished_at IS NULL GROUP BY pool, state \
                 UNION ALL \
                 SELECT pool, state::text, sum(n)::bigint FROM task_counts \
                 GROUP BY pool, state HAVING sum(n) <> 0",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("pool")?,
                    row.try_get("state")?,
                    row.try_get("n")?,
                ))
            })
            .collect()
    }
}

/// Moves the deltas that endings appended since the last fold into
/// `task_counts`, in one statement: deltas a concurrent fold took are gone
/// from this one's DELETE, so none is added twice, and deltas of
/// transactions not yet committed wait for the next fold
/// (migrations/V14__task_counts.sql).
pub(crate) async fn fold_task_counts(client: &tokio_postgres::Client) -> Result<()> {
    client
        .execute(
            "WITH d AS (DELETE FROM task_count_deltas RETURNING pool, tenant, state, n) \
             INSERT INTO task_counts (pool, tenant, state, n) \
             SELECT pool, tenant, state, sum(n) FROM d GROUP BY pool, tenant, state \
             ON CONFLICT (pool, tenant, state) DO UPDATE SET n = task_counts.n + excluded.n",
            &[],
        )
        .await?;
    Ok(())
}
