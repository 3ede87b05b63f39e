//! A long history made up at once, for benchmarks that ask whether the
//! pipeline and the console stay fast when `tasks` and `task_events` hold
//! millions of finished tasks (`taskyard bench --history N`).

use crate::{Result, Store};

/// Tasks inserted per statement: large enough to be quick, small enough
/// that one statement's WAL and memory stay modest.
const CHUNK: i64 = 50_000;

/// What the names of seeded tasks' pools and tenants start with, so a
/// benchmark's own figures never count them.
pub const HISTORY_PREFIX: &str = "history";

impl Store {
    /// How many seeded tasks there are (from `task_counts`: no scan).
    pub async fn seeded_history(&self) -> Result<i64> {
        let client = self.client().await?;
        crate::stats::fold_task_counts(&client).await?;
        let row = client
            .query_one(
                "SELECT coalesce(sum(n), 0)::bigint FROM task_counts WHERE pool LIKE $1 || '-%'",
                &[&HISTORY_PREFIX],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Appends `count` finished tasks to the history, each with the four
    /// events a task that ran once has (queued, scheduled, running, and its
    /// end), spread over the last 30 days, over 4 pools, 50 tenants and 8
    /// kinds, one in 20 failed and one in 100 cancelled. `progress` is
    /// called after each chunk with the number inserted so far.
    pub async fn seed_history(&self, count: i64, mut progress: impl FnMut(i64)) -> Result<()> {
        let client = self.client().await?;
        let mut done = 0;
        while done < count {
            let n = CHUNK.min(count - done);
            client
                .execute(
                    "WITH made AS ( \
                       INSERT INTO tasks (id, pool, kind, tenant, state, attempt, node_id, \
                           labels, error, created_at, queued_at, scheduled_at, started_at, \
                           finished_at) \
                       SELECT gen_random_uuid(), $3 || '-' || (i % 4), \
                              'kind-' || (i % 8), $3 || '-' || (i % 50), \
                              (CASE WHEN i % 100 = 0 THEN 'cancelled' \
                                    WHEN i % 20 = 0 THEN 'failed' \
                                    ELSE 'succeeded' END)::task_state, \
                              1, $3 || '-node-' || (i % 16), \
                              jsonb_build_object('batch', (i / 1000)::text), \
                              CASE WHEN i % 20 = 0 OR i % 100 = 0 THEN 'seeded' END, \
                              at, at, at + interval '2 ms', at + interval '3 ms', \
                              at + interval '50 ms' \
                       FROM (SELECT i, now() - interval '30 days' * random() AS at \
                             FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) AS i) s \
                       RETURNING id, state, node_id, queued_at, scheduled_at, started_at, \
                                 finished_at) \
                     INSERT INTO task_events (task_id, attempt, from_state, to_state, at, \
                         node_id, reason) \
                     SELECT id, e.attempt, e.from_state::task_state, e.to_state::task_state, \
                            e.at, e.node_id, e.reason \
                     FROM made, LATERAL (VALUES \
                       (0, NULL, 'queued', queued_at, NULL, 'created'), \
                       (1, 'queued', 'scheduled', scheduled_at, node_id, 'placed'), \
                       (1, 'scheduled', 'running', started_at, node_id, NULL), \
                       (1, 'running', state::text, finished_at, node_id, NULL)) \
                       AS e(attempt, from_state, to_state, at, node_id, reason)",
                    &[&done, &n, &HISTORY_PREFIX],
                )
                .await?;
            done += n;
            progress(done);
        }
        // The seeded endings' counts, folded at once, and their deltas'
        // dead rows vacuumed away, as autovacuum would in time.
        crate::stats::fold_task_counts(&client).await?;
        client.batch_execute("VACUUM task_count_deltas").await?;
        client.execute("ANALYZE tasks", &[]).await?;
        client.execute("ANALYZE task_events", &[]).await?;
        Ok(())
    }
}
