//! One bad message never costs a good one, and no input makes a service
//! spin: submissions Postgres refuses, NUL characters, far-future times and
//! task output that Postgres cannot hold, each mixed with good work on the
//! real stack.

use anyhow::Context;
use serde_json::{Value, json};
use std::time::Duration;
use taskyard_runtime::streams;
use taskyard_tests::{Cluster, WAIT, WorkerSpec, cpu_share, publish_all, publish_refused_report};
use taskyard_wire::reply::SubmitReply;
use uuid::Uuid;

/// Stops the orchestrator so that what is published next waits in the
/// SUBMIT stream, and is read as one batch when [`resume_orchestrator`]
/// starts it again.
async fn hold_orchestrator(cluster: &Cluster) -> anyhow::Result<()> {
    let orchestrator = cluster
        .stack
        .service("orchestrator")
        .context("the orchestrator runs")?;
    orchestrator
        .stop(Duration::from_secs(10))
        .await
        .context("the orchestrator did not stop")?;
    Ok(())
}

async fn resume_orchestrator(cluster: &mut Cluster) -> anyhow::Result<()> {
    let metrics = cluster.metrics["orchestrator"].clone();
    cluster
        .stack
        .spawn(
            "taskyard-orchestrator",
            "orchestrator",
            &[("TASKYARD_METRICS_ADDR", &metrics)],
        )
        .await?;
    cluster
        .wait_for_endpoint("orchestrator", taskyard_wire::subjects::API_SUBMIT)
        .await
}

async fn dead_letters(cluster: &Cluster) -> anyhow::Result<Vec<(String, String)>> {
    let rows = cluster
        .db
        .query("SELECT consumer, reason FROM dead_letters ORDER BY id", &[])
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

#[tokio::test]
async fn a_submission_postgres_refuses_costs_no_other_task_of_its_batch() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    // Two refusals validation cannot foresee, made real by constraints: one
    // on a field a refused task's row keeps (so it can only be a dead
    // letter), one on a field it drops (so it is recorded rejected).
    cluster
        .db
        .batch_execute(
            "ALTER TABLE tasks ADD CONSTRAINT no_poison_label CHECK (NOT labels ? 'poison');
             ALTER TABLE tasks ADD CONSTRAINT no_unstorable_tenant CHECK (tenant <> 'unstorable');",
        )
        .await?;
    hold_orchestrator(&cluster).await?;
    let mut payloads = Vec::new();
    for i in 0..50 {
        let task = match i {
            17 => {
                json!({"kind": "noop", "tenant": "batch", "labels": {"poison": "yes"}, "idempotency_key": "labelled"})
            }
            33 => json!({"kind": "noop", "tenant": "unstorable"}),
            _ => json!({"kind": "noop", "tenant": "batch", "labels": {"n": i.to_string()}}),
        };
        payloads.push(serde_json::to_vec(&task)?);
    }
    publish_all(&cluster, payloads).await?;
    resume_orchestrator(&mut cluster).await?;

    cluster
        .wait_count(
            "the 48 good tasks to succeed",
            "SELECT count(*) FROM tasks WHERE tenant = 'batch' AND state = 'succeeded'",
            48,
            WAIT,
        )
        .await?;
    let rejected = cluster
        .db
        .query(
            "SELECT error FROM tasks WHERE tenant = 'batch' AND state = 'rejected'",
            &[],
        )
        .await?;
    assert_eq!(rejected.len(), 1, "only the labelled task is rejected");
    let error: String = rejected[0].get(0);
    assert!(
        error.contains("Postgres cannot store this submission")
            && error.contains("no_poison_label"),
        "{error}"
    );
    let letters = taskyard_testkit::wait_until("the dead letter", WAIT, || async {
        let letters = dead_letters(&cluster).await?;
        Ok((!letters.is_empty()).then_some(letters))
    })
    .await?;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].0, "orchestrator");
    assert!(letters[0].1.contains("no_unstorable_tenant"), "{letters:?}");
    let total: i64 = cluster
        .db
        .query_one("SELECT count(*) FROM tasks", &[])
        .await?
        .get(0);
    assert_eq!(total, 49, "48 good tasks and one rejected; no duplicates");
    // They came in a batch (as one, unless the server split its delivery),
    // which was split rather than handed back.
    let log = cluster
        .stack
        .service("orchestrator")
        .context("the orchestrator runs")?
        .log();
    assert!(
        log.contains("Postgres refused a batch for what some submissions hold"),
        "the orchestrator's log: {log}"
    );

    // Over request/reply the same refusal is an answer, not a "retry".
    match cluster
        .submit(&json!({"kind": "noop", "labels": {"poison": "again"}}))
        .await?
    {
        SubmitReply::Refused { error } => {
            assert!(error.message.contains("no_poison_label"), "{error}")
        }
        other => panic!("accepted: {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn nul_characters_are_refused_by_field_and_good_tasks_beside_them_run() -> anyhow::Result<()>
{
    let mut cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let api = cluster.start_api().await?;
    hold_orchestrator(&cluster).await?;
    let mut payloads = Vec::new();
    for i in 0..50 {
        let task = match i % 10 {
            3 => json!({"kind": "echo", "tenant": "nul", "spec": {"note": "a\u{0}b"}}),
            7 => json!({"kind": "noop", "tenant": "nul", "labels": {"k\u{0}": "v"}}),
            _ => json!({"kind": "echo", "tenant": "good", "spec": {"i": i}}),
        };
        payloads.push(serde_json::to_vec(&task)?);
    }
    publish_all(&cluster, payloads).await?;
    resume_orchestrator(&mut cluster).await?;

    cluster
        .wait_count(
            "the 40 good tasks to succeed",
            "SELECT count(*) FROM tasks WHERE tenant = 'good' AND state = 'succeeded'",
            40,
            WAIT,
        )
        .await?;
    cluster
        .wait_count(
            "the 10 NUL tasks to be rejected",
            "SELECT count(*) FROM tasks WHERE tenant = 'nul' AND state = 'rejected'",
            10,
            WAIT,
        )
        .await?;
    let reasons: Vec<String> = cluster
        .db
        .query(
            "SELECT DISTINCT error FROM tasks WHERE tenant = 'nul' ORDER BY error",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("labels")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("spec.note")),
        "{reasons:?}"
    );
    assert!(reasons.iter().all(|r| r.contains("NUL")), "{reasons:?}");
    assert!(dead_letters(&cluster).await?.is_empty());

    // Request/reply names the field at once.
    match cluster
        .submit(&json!({"kind": "echo", "spec": {"note": "\u{0}"}}))
        .await?
    {
        SubmitReply::Refused { error } => {
            assert_eq!(error.field, "spec.note", "{error}");
            assert!(error.message.contains("NUL"), "{error}");
        }
        other => panic!("accepted: {other:?}"),
    }
    // So does REST, as a 400.
    let response = reqwest::Client::new()
        .post(format!("{api}/api/v1/tasks"))
        .header("content-type", "application/json")
        .body(r#"{"kind": "echo", "name": "x\u0000y"}"#)
        .send()
        .await?;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["field"], "name", "{body}");
    Ok(())
}

#[tokio::test]
async fn a_time_past_the_horizon_is_refused_and_a_far_timer_does_not_spin() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    match cluster
        .submit(&json!({"kind": "noop", "run_at": "9999-12-31T23:59:59Z"}))
        .await?
    {
        SubmitReply::Refused { error } => assert_eq!(error.field, "run_at", "{error}"),
        other => panic!("accepted: {other:?}"),
    }

    // A timer that comes long before its time (as a schedule the server
    // could not hold would) is handed back for at most an hour, not
    // redelivered in a loop.
    let task_id = Uuid::now_v7();
    let timer = json!({"kind": "start", "task_id": task_id, "attempt": 0, "due_at": "9999-12-31T23:59:59Z"});
    let js = async_nats::jetstream::new(cluster.nats.clone());
    js.publish(
        taskyard_wire::subjects::timer_fire("start", &task_id),
        serde_json::to_vec(&timer)?.into(),
    )
    .await?
    .await
    .context("the TIMERS stream did not take the timer")?;
    let pool_manager = cluster
        .stack
        .service("pool-manager")
        .context("the pool manager runs")?;
    let share = cpu_share(pool_manager.pid(), Duration::from_secs(3)).await?;
    let consumer = js
        .get_stream(streams::TIMERS)
        .await?
        .consumer_info(streams::POOL_MANAGER_TIMERS)
        .await?
        .clone();
    assert!(
        consumer.delivered.consumer_sequence <= 2,
        "the timer was delivered {} times in 3 s",
        consumer.delivered.consumer_sequence
    );
    assert_eq!(consumer.num_ack_pending, 1, "it waits, handed back");
    assert!(share < 0.2, "the pool manager used {share:.2} of a core");
    Ok(())
}

#[tokio::test]
async fn an_exec_task_that_prints_nul_succeeds_with_its_output_kept() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let ids = cluster
        .submit_ok(&json!({
            "kind": "exec",
            "spec": {"command": "sh", "args": ["-c", "printf 'before\\000after\\n'"]}
        }))
        .await?;
    let id = ids[0];
    assert_eq!(cluster.wait_final(id).await?, "succeeded");
    let task = cluster.task_json(id).await?;
    let stdout = task["result"]["stdout"].as_str().unwrap_or_default();
    assert!(
        stdout.starts_with("before") && stdout.contains("after"),
        "{task}"
    );
    assert!(!stdout.contains('\0'));
    let line: String = taskyard_testkit::wait_until("the log line", WAIT, || async {
        let row = cluster
            .db
            .query_opt("SELECT line FROM task_logs WHERE task_id = $1", &[&id])
            .await?;
        Ok(row.map(|r| r.get(0)))
    })
    .await?;
    assert_eq!(line, "before\u{FFFD}after");
    assert!(dead_letters(&cluster).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_report_postgres_refuses_is_a_dead_letter_at_once_and_its_batch_is_recorded()
-> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    // A refusal of what was sent (a trigger's exception): no retry can help.
    let (held, _) = publish_refused_report(&cluster, "w1", "poisoned", "P0001").await?;
    let ids = cluster
        .submit_ok(&json!([{"kind": "noop"}, {"kind": "echo", "spec": {"x": 1}}]))
        .await?;
    for id in &ids {
        assert_eq!(cluster.wait_final(*id).await?, "succeeded");
    }
    let letters = taskyard_testkit::wait_until("the dead letter", WAIT, || async {
        let rows = cluster
            .db
            .query("SELECT consumer, deliveries, reason FROM dead_letters", &[])
            .await?;
        Ok((!rows.is_empty()).then_some(rows))
    })
    .await?;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].get::<_, String>(0), "pool-manager");
    assert_eq!(letters[0].get::<_, i32>(1), 1, "kept on its first delivery");
    let reason: String = letters[0].get(2);
    assert!(
        reason.contains("refused by the test (SQLSTATE P0001)"),
        "{reason}"
    );
    assert_eq!(cluster.state(held).await?.as_deref(), Some("running"));
    Ok(())
}
