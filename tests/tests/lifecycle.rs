//! Deadlines, retries, dead letters, lost and frozen workers, cancels and
//! delays, on the real stack: every one rides on durable consumers and
//! timers, so a restart of the pool manager loses none.

use serde_json::{Value, json};
use std::time::Duration;
use taskyard_testkit::Signal;
use taskyard_testkit::wait_until;
use taskyard_tests::{Cluster, WAIT, WorkerSpec};
use time::OffsetDateTime;
use uuid::Uuid;

/// When each transition into `state` happened, oldest first.
async fn entered(cluster: &Cluster, id: Uuid, state: &str) -> anyhow::Result<Vec<OffsetDateTime>> {
    let rows = cluster
        .db
        .query(
            "SELECT at FROM task_events WHERE task_id = $1 AND to_state = $2::text::task_state ORDER BY id",
            &[&id, &state],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn millis(d: time::Duration) -> i64 {
    i64::try_from(d.whole_milliseconds()).unwrap_or(i64::MAX)
}

#[tokio::test]
async fn a_worker_kills_an_attempt_at_its_deadline() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let ids = cluster
        .submit_ok(&json!({"kind": "exec", "spec": {"command": "sleep", "args": ["30"]}, "timeout_ms": 800}))
        .await?;
    assert_eq!(cluster.wait_final(ids[0]).await?, "timed_out");
    let task = cluster.task_json(ids[0]).await?;
    assert_eq!(
        task["error"], "timed out after 800 ms",
        "the worker's own report: {task}"
    );
    let ran = entered(&cluster, ids[0], "timed_out").await?[0]
        - entered(&cluster, ids[0], "running").await?[0];
    assert!(
        millis(ran) < 5000,
        "killed at its deadline, not at the end of the sleep: {ran}"
    );
    Ok(())
}

#[tokio::test]
async fn a_frozen_worker_s_attempt_is_timed_out_by_the_pool_manager() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[]).await?;
    let worker = cluster.start_worker(&WorkerSpec::new("w1")).await?;
    let ids = cluster
        .submit_ok(&json!({"kind": "sleep", "spec": {"ms": 20000}, "timeout_ms": 300}))
        .await?;
    cluster.wait_state(ids[0], "running").await?;
    // Frozen, the worker can neither kill the attempt nor report.
    worker.signal(Signal::SIGSTOP)?;
    let state = cluster.wait_final(ids[0]).await;
    worker.signal(Signal::SIGCONT)?;
    assert_eq!(state?, "timed_out");
    let task = cluster.task_json(ids[0]).await?;
    let error = task["error"].as_str().unwrap_or_default();
    assert!(error.contains("the pool manager's deadline"), "{error}");
    assert!(error.contains("no report from node w1"), "{error}");
    Ok(())
}

#[tokio::test]
async fn a_failing_task_is_retried_after_a_growing_backoff() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let ids = cluster
        .submit_ok(&json!({
            "kind": "fail", "spec": {"message": "boom"},
            "max_attempts": 3, "retry_backoff_ms": 1000, "retry_backoff_max_ms": 1500
        }))
        .await?;
    assert_eq!(cluster.wait_final(ids[0]).await?, "failed");
    let trail = cluster.trail(ids[0]).await?;
    let to: Vec<&str> = trail.iter().map(|(_, to)| to.as_str()).collect();
    assert_eq!(
        to,
        [
            "queued",
            "scheduled",
            "running",
            "retrying",
            "queued",
            "scheduled",
            "running",
            "retrying",
            "queued",
            "scheduled",
            "running",
            "failed"
        ]
    );
    let reasons = cluster
        .db
        .query(
            "SELECT reason FROM task_events WHERE task_id = $1 AND to_state = 'retrying' ORDER BY id",
            &[&ids[0]],
        )
        .await?;
    let retrying = entered(&cluster, ids[0], "retrying").await?;
    let queued = entered(&cluster, ids[0], "queued").await?;
    // Backoffs: 1000 ms then min(2000, 1500) ms, each jittered into [half, all].
    for (n, (low, high)) in [(500, 1000), (750, 1500)].into_iter().enumerate() {
        let reason: String = reasons[n].get(0);
        let said: i64 = reason
            .rsplit("retrying in ")
            .next()
            .and_then(|rest| rest.strip_suffix(" ms"))
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(-1);
        assert!((low..=high).contains(&said), "backoff {n}: {reason}");
        let waited = millis(queued[n + 1] - retrying[n]);
        // Timers fire on whole seconds: never early, at most a second late.
        assert!(
            waited >= said - 50,
            "backoff {n} waited {waited} ms of {said}"
        );
        assert!(
            waited <= said + 2500,
            "backoff {n} waited {waited} ms of {said}"
        );
    }
    let attempts = cluster
        .db
        .query(
            "SELECT attempt, node_id, ended_as, reason FROM task_attempts WHERE task_id = $1 ORDER BY attempt",
            &[&ids[0]],
        )
        .await?;
    assert_eq!(attempts.len(), 3, "every attempt is kept");
    let ended: Vec<String> = attempts.iter().map(|r| r.get(2)).collect();
    assert_eq!(ended, ["retrying", "retrying", "failed"]);
    let node: String = attempts[0].get(1);
    assert_eq!(node, "w1");
    Ok(())
}

#[tokio::test]
async fn a_report_that_keeps_failing_becomes_a_dead_letter_while_others_flow() -> anyhow::Result<()>
{
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    // A report whose statement fails every time for what looks like the
    // moment (a serialization failure, which is retried as a whole rather
    // than split): after the consumer's max deliveries it is a dead letter.
    let (held, bytes) =
        taskyard_tests::publish_refused_report(&cluster, "w1", "never recorded", "40001").await?;
    let ids = cluster
        .submit_ok(&json!([{"kind": "noop"}, {"kind": "echo", "spec": {"x": 1}}]))
        .await?;
    for id in &ids {
        assert_eq!(cluster.wait_final(*id).await?, "succeeded");
    }
    let row = wait_until("the dead letter", WAIT, || async {
        Ok(cluster
            .db
            .query_opt(
                "SELECT stream, consumer, subject, payload, deliveries, reason FROM dead_letters",
                &[],
            )
            .await?)
    })
    .await?;
    assert_eq!(row.get::<_, String>(0), "TASKYARD_STATUS");
    assert_eq!(row.get::<_, String>(1), "pool-manager");
    assert_eq!(row.get::<_, String>(2), "taskyard.status.w1");
    assert_eq!(row.get::<_, Vec<u8>>(3), bytes, "the raw payload is kept");
    assert_eq!(row.get::<_, i32>(4), 3);
    let reason: String = row.get(5);
    assert!(reason.contains("gave it up after 3 deliveries"), "{reason}");
    assert_eq!(cluster.state(held).await?.as_deref(), Some("running"));
    // And after it, reports still flow.
    let later = cluster.submit_ok(&json!({"kind": "noop"})).await?;
    assert_eq!(cluster.wait_final(later[0]).await?, "succeeded");
    Ok(())
}

#[tokio::test]
async fn a_task_on_a_killed_worker_finishes_elsewhere_exactly_once() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[]).await?;
    let first = cluster.start_worker(&WorkerSpec::new("w1")).await?;
    let ids = cluster
        .submit_ok(&json!({"kind": "sleep", "spec": {"ms": 1500}, "max_attempts": 2}))
        .await?;
    cluster.wait_state(ids[0], "running").await?;
    cluster.start_worker(&WorkerSpec::new("w2")).await?;
    first.signal(Signal::SIGKILL)?;
    assert_eq!(cluster.wait_final(ids[0]).await?, "succeeded");
    let attempts = cluster
        .db
        .query(
            "SELECT attempt, node_id, ended_as, reason FROM task_attempts WHERE task_id = $1 ORDER BY attempt",
            &[&ids[0]],
        )
        .await?;
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].get::<_, String>(1), "w1");
    assert_eq!(attempts[0].get::<_, String>(2), "queued");
    let reason: String = attempts[0].get(3);
    assert!(reason.contains("node w1 was lost"), "{reason}");
    assert_eq!(attempts[1].get::<_, String>(1), "w2");
    assert_eq!(attempts[1].get::<_, String>(2), "succeeded");
    assert_eq!(entered(&cluster, ids[0], "succeeded").await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_lost_worker_s_task_without_attempts_left_fails_with_the_reason() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[]).await?;
    let worker = cluster.start_worker(&WorkerSpec::new("w1")).await?;
    let ids = cluster
        .submit_ok(&json!({"kind": "sleep", "spec": {"ms": 30000}}))
        .await?;
    cluster.wait_state(ids[0], "running").await?;
    worker.signal(Signal::SIGKILL)?;
    assert_eq!(cluster.wait_final(ids[0]).await?, "failed");
    let task = cluster.task_json(ids[0]).await?;
    let error = task["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("node w1 was lost (no heartbeat for "),
        "{error}"
    );
    assert!(error.ends_with(" ms) during attempt 1 of 1"), "{error}");
    Ok(())
}

#[tokio::test]
async fn a_frozen_worker_that_resumes_drops_the_attempt_given_to_another_node() -> anyhow::Result<()>
{
    let mut cluster = Cluster::start(&[]).await?;
    let frozen = cluster.start_worker(&WorkerSpec::new("w1")).await?;
    let marks = cluster.stack.dir().join("marks");
    let script = format!("sleep 8 && echo $TASKYARD_ATTEMPT >> {}", marks.display());
    let ids = cluster
        .submit_ok(&json!({
            "kind": "exec", "spec": {"command": "sh", "args": ["-c", script]}, "max_attempts": 2
        }))
        .await?;
    cluster.wait_state(ids[0], "running").await?;
    cluster.start_worker(&WorkerSpec::new("w2")).await?;
    frozen.signal(Signal::SIGSTOP)?;
    let moved = wait_until("the task to move to w2", WAIT, || async {
        let task = cluster.task_json(ids[0]).await?;
        Ok((task["attempt"] == 2 && task["node_id"] == "w2").then_some(()))
    })
    .await;
    frozen.signal(Signal::SIGCONT)?;
    moved?;
    assert_eq!(cluster.wait_final(ids[0]).await?, "succeeded");
    // The resumed worker was told to drop attempt 1: only attempt 2 wrote.
    wait_until("the resumed worker to kill attempt 1", WAIT, || async {
        Ok(frozen
            .log()
            .contains("attempt killed by a control message")
            .then_some(()))
    })
    .await?;
    let written = std::fs::read_to_string(&marks)?;
    assert_eq!(
        written.trim(),
        "2",
        "attempt 1 must not have finished its work"
    );
    let task = cluster.task_json(ids[0]).await?;
    assert_eq!(task["node_id"], "w2");
    assert_eq!(entered(&cluster, ids[0], "succeeded").await?.len(), 1);
    let log = frozen.log();
    assert!(log.contains("attempt killed by a control message"), "{log}");
    Ok(())
}

#[tokio::test]
async fn timers_pending_across_a_pool_manager_restart_each_fire_once() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let delayed = cluster
        .submit_ok(&json!([
            {"kind": "noop", "delay_ms": 2500},
            {"kind": "noop", "delay_ms": 3000},
        ]))
        .await?;
    let retried = cluster
        .submit_ok(&json!({
            "kind": "fail", "max_attempts": 2, "retry_backoff_ms": 3000, "retry_backoff_max_ms": 3000
        }))
        .await?;
    cluster.wait_state(retried[0], "retrying").await?;
    let pool_manager = cluster
        .stack
        .service("pool-manager")
        .ok_or_else(|| anyhow::anyhow!("no pool manager"))?;
    pool_manager.stop(Duration::from_secs(10)).await;
    // Until every timer is a second overdue, nothing moves while it is down.
    let all: Vec<Uuid> = delayed.iter().chain(&retried).copied().collect();
    wait_until("every timer to be overdue", WAIT, || async {
        for id in &delayed {
            anyhow::ensure!(
                cluster.state(*id).await?.as_deref() == Some("pending"),
                "nothing moves while it is down"
            );
        }
        let overdue: bool = cluster
            .db
            .query_one(
                "SELECT now() > max(greatest(run_at, retry_at)) + interval '1 second' \
                 FROM tasks WHERE id = ANY($1)",
                &[&all],
            )
            .await?
            .get(0);
        Ok(overdue.then_some(()))
    })
    .await?;
    let restarted = OffsetDateTime::now_utc();
    cluster
        .stack
        .spawn(
            "taskyard-pool-manager",
            "pool-manager",
            &taskyard_tests::POOL_MANAGER,
        )
        .await?;
    for id in &delayed {
        assert_eq!(cluster.wait_final(*id).await?, "succeeded");
        let queued = entered(&cluster, *id, "queued").await?;
        assert_eq!(queued.len(), 1, "released once");
        // By its timer, kept by NATS while the pool manager was down (the
        // reconciler would wait out its grace of 5 s first).
        let after = millis(queued[0] - restarted);
        assert!(after < 4000, "released {after} ms after the restart");
    }
    assert_eq!(cluster.wait_final(retried[0]).await?, "failed");
    assert_eq!(entered(&cluster, retried[0], "retrying").await?.len(), 1);
    assert_eq!(
        entered(&cluster, retried[0], "running").await?.len(),
        2,
        "retried once"
    );
    Ok(())
}

#[tokio::test]
async fn cancel_stops_waiting_and_running_tasks() -> anyhow::Result<()> {
    let mut spec = WorkerSpec::new("w1");
    spec.slots = 1;
    let cluster = Cluster::start(&[spec]).await?;
    let running = cluster
        .submit_ok(&json!({"kind": "exec", "spec": {"command": "sleep", "args": ["60"]}}))
        .await?[0];
    cluster.wait_state(running, "running").await?;
    let queued = cluster.submit_ok(&json!({"kind": "noop"})).await?[0];
    let pending = cluster
        .submit_ok(&json!({"kind": "noop", "delay_ms": 60000}))
        .await?[0];
    cluster.wait_state(queued, "queued").await?;
    cluster.wait_state(pending, "pending").await?;

    for id in [queued, pending, running] {
        let reply: Value = cluster.cancel(id, "not needed").await?;
        assert_eq!(
            reply,
            json!({"task_id": id, "state": "cancelled", "cancelled": true})
        );
        let task = cluster.task_json(id).await?;
        assert_eq!(task["state"], "cancelled");
        assert_eq!(task["error"], "cancelled: not needed");
    }
    // The running attempt's process is killed: the node's only slot frees
    // up, and a new task runs on it.
    let next = cluster.submit_ok(&json!({"kind": "noop"})).await?[0];
    assert_eq!(cluster.wait_final(next).await?, "succeeded");
    // A second cancel changes nothing, and says so.
    let again: Value = cluster.cancel(running, "twice").await?;
    assert_eq!(
        again,
        json!({"task_id": running, "state": "cancelled", "cancelled": false})
    );
    let unknown = Uuid::now_v7();
    let refused: Value = cluster.cancel(unknown, "who").await?;
    assert_eq!(refused["error"]["field"], "task_id");
    assert_eq!(
        refused["error"]["message"],
        format!("no task has id {unknown}")
    );
    Ok(())
}

#[tokio::test]
async fn a_delayed_task_waits_for_its_time() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let ids = cluster
        .submit_ok(&json!({"kind": "noop", "delay_ms": 2000}))
        .await?;
    assert_eq!(cluster.state(ids[0]).await?.as_deref(), Some("pending"));
    assert_eq!(cluster.wait_final(ids[0]).await?, "succeeded");
    let created = entered(&cluster, ids[0], "pending").await?[0];
    let queued = entered(&cluster, ids[0], "queued").await?[0];
    let waited = millis(queued - created);
    assert!(
        (1950..=4500).contains(&waited),
        "queued {waited} ms after submission"
    );
    Ok(())
}

#[tokio::test]
async fn a_task_unplaced_at_its_schedule_timeout_is_rolled_back() -> anyhow::Result<()> {
    let mut spec = WorkerSpec::new("w1");
    spec.slots = 1;
    let cluster = Cluster::start(&[spec]).await?;
    let busy = cluster
        .submit_ok(&json!({"kind": "sleep", "spec": {"ms": 20000}}))
        .await?[0];
    cluster.wait_state(busy, "running").await?;
    let ids = cluster
        .submit_ok(&json!({"kind": "noop", "schedule_timeout_ms": 1500}))
        .await?;
    assert_eq!(cluster.wait_final(ids[0]).await?, "rejected");
    let task = cluster.task_json(ids[0]).await?;
    let error = task["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("not placed within its schedule timeout of 1500 ms"),
        "{error}"
    );
    assert_eq!(task["attempt"], 0, "it never ran");
    Ok(())
}

#[tokio::test]
async fn the_reconciler_applies_a_timer_that_was_never_set() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    // As if the pool manager had committed a retry and died before setting
    // its timer: a task in `retrying`, due long ago, with no timer anywhere.
    let id = Uuid::now_v7();
    cluster
        .db
        .execute(
            "INSERT INTO tasks (id, pool, kind, state, attempt, max_attempts, retry_at, queued_at) \
             VALUES ($1, 'default', 'noop', 'retrying', 1, 2, now() - interval '1 minute', now())",
            &[&id],
        )
        .await?;
    // A pool manager whose reconciler passes every half second.
    cluster
        .stack
        .spawn(
            "taskyard-pool-manager",
            "pool-manager-2",
            &[("TASKYARD_RECONCILE_INTERVAL_MS", "500")],
        )
        .await?;
    assert_eq!(cluster.wait_final(id).await?, "succeeded");
    let trail = cluster.trail(id).await?;
    let to: Vec<&str> = trail.iter().map(|(_, to)| to.as_str()).collect();
    assert_eq!(to, ["queued", "scheduled", "running", "succeeded"]);
    Ok(())
}

#[tokio::test]
async fn operators_cancel_and_read_dead_letters_through_the_rest_api_and_the_cli()
-> anyhow::Result<()> {
    // No worker: every task waits in its queue.
    let mut cluster = Cluster::start(&[]).await?;
    let api = cluster.start_api().await?;
    let http = reqwest::Client::new();
    let ids = cluster
        .submit_ok(&json!([{"kind": "noop"}, {"kind": "noop"}]))
        .await?;
    for id in &ids {
        cluster.wait_state(*id, "queued").await?;
    }

    let cancel = |id: String, body: Value| {
        let http = http.clone();
        let url = format!("{api}/api/v1/tasks/{id}/cancel");
        async move {
            let response = http.post(url).json(&body).send().await?;
            let status = response.status().as_u16();
            anyhow::Ok((status, response.json::<Value>().await?))
        }
    };
    let (status, body) = cancel(ids[0].to_string(), json!({"reason": "not needed"})).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"task_id": ids[0], "state": "cancelled", "cancelled": true})
    );
    assert_eq!(
        cluster.task_json(ids[0]).await?["error"],
        "cancelled: not needed"
    );
    let (status, body) = cancel(ids[0].to_string(), json!({})).await?;
    assert_eq!((status, body["cancelled"].clone()), (200, json!(false)));
    let unknown = Uuid::now_v7();
    let (status, body) = cancel(unknown.to_string(), json!({})).await?;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["error"]["message"],
        format!("no task has id {unknown}")
    );
    let (status, body) = cancel("not-a-uuid".to_owned(), json!({})).await?;
    assert_eq!(status, 400, "{body}");

    // The CLI asks the pool manager directly.
    let (code, stdout) = cluster
        .taskyard(&["cancel", &ids[1].to_string(), "--reason", "from the shell"])
        .await?;
    assert_eq!(
        (code, stdout.trim()),
        (0, format!("{} cancelled", ids[1]).as_str())
    );
    assert_eq!(
        cluster.task_json(ids[1]).await?["error"],
        "cancelled: from the shell"
    );
    let (code, stdout) = cluster.taskyard(&["cancel", &ids[1].to_string()]).await?;
    assert_eq!(
        (code, stdout.trim()),
        (
            0,
            format!("{} had already ended: cancelled", ids[1]).as_str()
        )
    );

    // Dead letters, newest first, with the payload as text.
    cluster
        .db
        .execute(
            "INSERT INTO dead_letters (stream, consumer, stream_seq, subject, payload, deliveries, reason) \
             VALUES ('TASKYARD_STATUS', 'pool-manager', 7, 'taskyard.status.w1', '{\"bad\"', 3, 'gave it up')",
            &[],
        )
        .await?;
    let letters: Value = http
        .get(format!("{api}/api/v1/dead-letters"))
        .send()
        .await?
        .json()
        .await?;
    let letter = &letters["dead_letters"][0];
    assert_eq!(letter["subject"], "taskyard.status.w1");
    assert_eq!(letter["payload"], "{\"bad\"");
    assert_eq!(letter["deliveries"], 3);
    let refused = http
        .get(format!("{api}/api/v1/dead-letters?limit=0"))
        .send()
        .await?;
    assert_eq!(refused.status().as_u16(), 400);
    Ok(())
}

/// A task's row is updated in place while it lives (no index names its
/// state), its final state indexed once it ends: every transition is still
/// in its history, the row and the history agree, and both the REST API's
/// live and final state filters find it.
#[tokio::test]
async fn every_transition_stays_in_history_while_the_row_is_updated_in_place() -> anyhow::Result<()>
{
    let mut cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let api = cluster.start_api().await?;
    let ok = cluster.submit_ok(&json!({"kind": "noop"})).await?[0];
    let failed = cluster
        .submit_ok(&json!({"kind": "fail", "max_attempts": 2, "retry_backoff_ms": 0}))
        .await?[0];
    let running = cluster
        .submit_ok(&json!({"kind": "sleep", "spec": {"ms": 60000}}))
        .await?[0];
    assert_eq!(cluster.wait_final(ok).await?, "succeeded");
    assert_eq!(cluster.wait_final(failed).await?, "failed");

    let pair = |from: Option<&str>, to: &str| (from.map(str::to_owned), to.to_owned());
    assert_eq!(
        cluster.trail(ok).await?,
        vec![
            pair(None, "queued"),
            pair(Some("queued"), "scheduled"),
            pair(Some("scheduled"), "running"),
            pair(Some("running"), "succeeded"),
        ]
    );
    assert_eq!(
        cluster.trail(failed).await?,
        vec![
            pair(None, "queued"),
            pair(Some("queued"), "scheduled"),
            pair(Some("scheduled"), "running"),
            pair(Some("running"), "queued"),
            pair(Some("queued"), "scheduled"),
            pair(Some("scheduled"), "running"),
            pair(Some("running"), "failed"),
        ]
    );
    for (id, state) in [(ok, "succeeded"), (failed, "failed")] {
        let row = cluster
            .db
            .query_one(
                "SELECT state::text, outcome::text, attempt, \
                        created_at <= scheduled_at AND scheduled_at <= started_at \
                            AND started_at <= finished_at, \
                        (SELECT max(at) FROM task_events WHERE task_id = $1) = finished_at \
                 FROM tasks WHERE id = $1",
                &[&id],
            )
            .await?;
        let (row_state, outcome): (String, Option<String>) = (row.get(0), row.get(1));
        assert_eq!(
            (row_state.as_str(), outcome.as_deref()),
            (state, Some(state))
        );
        assert!(row.get::<_, bool>(3), "{state}: times out of order");
        assert!(row.get::<_, bool>(4), "{state}: the last event is the end");
    }
    assert_eq!(
        cluster
            .db
            .query_one("SELECT attempt FROM tasks WHERE id = $1", &[&failed])
            .await?
            .get::<_, i32>(0),
        2
    );

    // The console's filters: a final state through `outcome`, a live one
    // through the live tasks' index.
    let http = reqwest::Client::new();
    let list = |state: &'static str| {
        let (http, api) = (http.clone(), api.clone());
        async move {
            let body: Value = http
                .get(format!("{api}/api/v1/tasks?state={state}"))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let ids: Vec<String> = body["tasks"]
                .as_array()
                .map(|tasks| {
                    tasks
                        .iter()
                        .filter_map(|t| t["id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            anyhow::Ok(ids)
        }
    };
    assert_eq!(list("succeeded").await?, vec![ok.to_string()]);
    assert_eq!(list("failed").await?, vec![failed.to_string()]);
    cluster.wait_state(running, "running").await?;
    assert_eq!(list("running").await?, vec![running.to_string()]);
    assert!(list("queued").await?.is_empty());

    // Placing and starting were updates in place: Postgres counts them as
    // HOT once the services' statistics reach it.
    taskyard_testkit::wait_until("HOT updates of tasks", WAIT, || async {
        let hot: i64 = cluster
            .db
            .query_one(
                "SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'tasks'",
                &[],
            )
            .await?
            .get(0);
        Ok((hot >= 4).then_some(()))
    })
    .await?;
    Ok(())
}
