//! Aggregate questions over many tasks.

use crate::{Result, Store};

/// How long tasks waited from the client's submission to their start, and
/// the span in which they ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StartLatency {
    pub tasks: i64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Store {
    /// Submit-to-start percentiles of `tenant`'s tasks, measured from the
    /// client's own clock: each task carries `labels.submitted_at_ms` (Unix
    /// milliseconds), as the benchmark's tasks do.
    pub async fn start_latency(&self, tenant: &str) -> Result<StartLatency> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "WITH w AS (SELECT extract(epoch FROM started_at) * 1000 \
                        - (labels->>'submitted_at_ms')::double precision AS ms \
                     FROM tasks WHERE tenant = $1 AND started_at IS NOT NULL \
                       AND labels ? 'submitted_at_ms') \
                 SELECT count(*), \
                        coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), 0), \
                        coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), 0), \
                        coalesce(max(ms), 0)::double precision FROM w",
                &[&tenant],
            )
            .await?;
        Ok(StartLatency {
            tasks: row.try_get(0)?,
            p50_ms: row.try_get(1)?,
            p99_ms: row.try_get(2)?,
            max_ms: row.try_get(3)?,
        })
    }

    /// How many of `tenant`'s tasks are finished, and how many succeeded.
    pub async fn finished_count(&self, tenant: &str) -> Result<(i64, i64)> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE finished_at IS NOT NULL), \
                        count(*) FILTER (WHERE state = 'succeeded') \
                 FROM tasks WHERE tenant = $1",
                &[&tenant],
            )
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// How many tasks each pool has in each state (the metrics' census).
    /// Reads the `(pool, state)` index only.
    pub async fn pool_state_counts(&self) -> Result<Vec<(String, String, i64)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT pool, state::text AS state, count(*) AS n FROM tasks GROUP BY pool, state",
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
