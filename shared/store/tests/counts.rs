//! The counts of finished tasks (`task_counts`, kept by the trigger of
//! migrations/V14__task_counts.sql) against a plain count of the rows,
//! through endings, a retry that takes an ending back, rejections at
//! insert, deletions and concurrent folds.

mod support;

use std::collections::BTreeMap;
use taskyard_store::Store;
use taskyard_wire::TaskState;

/// `(tenant, state) -> n` from the rows themselves.
fn truth(pg: &support::Postgres) -> BTreeMap<(String, String), i64> {
    pg.psql("SELECT tenant, state, count(*) FROM tasks GROUP BY 1, 2 ORDER BY 1, 2")
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let parts: Vec<&str> = line.split('|').collect();
            (
                (parts[0].to_owned(), parts[1].to_owned()),
                parts[2].parse().expect("a count"),
            )
        })
        .collect()
}

async fn counted(store: &Store) -> BTreeMap<(String, String), i64> {
    store
        .tenant_state_counts()
        .await
        .expect("tenant counts")
        .into_iter()
        .map(|(tenant, state, n)| ((tenant, state.as_str().to_owned()), n))
        .collect()
}

#[tokio::test]
async fn finished_counts_follow_every_ending_and_its_undoing() {
    let pg = support::Postgres::start();
    let store = Store::connect_and_migrate(&pg.url(), 4)
        .await
        .expect("connect and migrate");
    // 300 tasks over three tenants, ten rejected at creation.
    pg.psql(
        "INSERT INTO tasks (id, pool, kind, tenant, state, error, queued_at, finished_at) \
         SELECT gen_random_uuid(), 'p' || (i % 2), 'noop', 't' || (i % 3), \
                CASE WHEN i % 30 = 0 THEN 'rejected' ELSE 'queued' END::task_state, \
                CASE WHEN i % 30 = 0 THEN 'bad' END, now(), \
                CASE WHEN i % 30 = 0 THEN now() END \
         FROM generate_series(1, 300) i",
    );
    assert_eq!(counted(&store).await, truth(&pg));

    // Endings of three kinds, in several statements.
    pg.psql(
        "UPDATE tasks SET state = 'succeeded', finished_at = now() \
         WHERE state = 'queued' AND random() < 0.5; \
         UPDATE tasks SET state = 'failed', error = 'x', finished_at = now() \
         WHERE state = 'queued' AND random() < 0.3; \
         UPDATE tasks SET state = 'cancelled', finished_at = now() \
         WHERE state = 'queued' AND random() < 0.2",
    );
    assert_eq!(counted(&store).await, truth(&pg));

    // A retry takes a failure back; deleting counts too.
    pg.psql(
        "UPDATE tasks SET state = 'queued', error = NULL, finished_at = NULL \
         WHERE state = 'failed' AND random() < 0.5; \
         DELETE FROM tasks WHERE state = 'cancelled' AND random() < 0.5",
    );
    let truth_now = truth(&pg);
    // Folds that race each other add each delta once.
    let (a, b, c) = tokio::join!(counted(&store), counted(&store), counted(&store));
    assert_eq!(a, truth_now);
    assert_eq!(b, truth_now);
    assert_eq!(c, truth_now);

    // The summary and the census agree with the rows as well.
    let by_state: BTreeMap<String, i64> = store
        .state_counts(None)
        .await
        .expect("state counts")
        .into_iter()
        .map(|(state, n)| (state.as_str().to_owned(), n))
        .collect();
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for ((_, state), n) in &truth_now {
        *expected.entry(state.clone()).or_default() += n;
    }
    assert_eq!(by_state, expected);
    let pool_total: i64 = store
        .pool_state_counts()
        .await
        .expect("census")
        .iter()
        .filter(|(_, state, _)| state == TaskState::Succeeded.as_str())
        .map(|(_, _, n)| n)
        .sum();
    assert_eq!(pool_total, expected.get("succeeded").copied().unwrap_or(0));
    // Everything was folded: nothing is left pending.
    assert_eq!(
        pg.psql("SELECT count(*) FROM task_count_deltas").trim(),
        "0"
    );
}
