//! Delivery is at least once, state exactly once: restarts and duplicates
//! change nothing they should not.

use serde_json::json;
use std::time::Duration;
use taskyard_testkit::Signal;
use taskyard_tests::{Cluster, WAIT, WorkerSpec};
use taskyard_wire::codec;
use taskyard_wire::dispatch::Dispatch;

#[tokio::test]
async fn a_restarted_scheduler_rebuilds_its_queue_from_postgres() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[]).await?;
    // No worker yet: the tasks wait in the scheduler's memory.
    let ids = cluster
        .submit_ok(&json!([{"kind": "noop"}, {"kind": "noop"}, {"kind": "noop"}]))
        .await?;
    cluster
        .wait_count(
            "tasks to be queued",
            "SELECT count(*) FROM tasks WHERE state = 'queued'",
            3,
            WAIT,
        )
        .await?;
    let scheduler = cluster
        .stack
        .service("scheduler")
        .ok_or_else(|| anyhow::anyhow!("no scheduler"))?;
    scheduler.signal(Signal::SIGKILL)?;
    scheduler.wait_exit(Duration::from_secs(10)).await;
    cluster
        .stack
        .spawn("taskyard-scheduler", "scheduler-2", &[])
        .await?;
    cluster.start_worker(&WorkerSpec::new("w1")).await?;
    for id in ids {
        assert_eq!(cluster.wait_final(id).await?, "succeeded");
    }
    Ok(())
}

#[tokio::test]
async fn a_redelivered_dispatch_runs_nothing_twice() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let ids = cluster
        .submit_ok(&json!({"kind": "exec", "spec": {"command": "sh", "args": ["-c", "echo ran"]}}))
        .await?;
    assert_eq!(cluster.wait_final(ids[0]).await?, "succeeded");
    let before = cluster.trail(ids[0]).await?;

    // The same attempt's dispatch arrives again (as after a lost ack).
    let task = cluster.task_json(ids[0]).await?;
    let dispatch = Dispatch {
        task_id: ids[0],
        attempt: 1,
        pool: "default".to_owned(),
        tenant: "default".to_owned(),
        kind: taskyard_wire::TaskKind::Exec,
        spec: task["spec"].clone(),
        resources: taskyard_wire::Resources::default(),
        timeout_ms: None,
        dispatched_at: taskyard_wire::now(),
    };
    let js = async_nats::jetstream::new(cluster.nats.clone());
    js.publish(
        taskyard_wire::subjects::dispatch("w1"),
        codec::encode(&dispatch).into(),
    )
    .await?
    .await?;
    // A later task proves the worker and pool manager have moved past it.
    let marker = cluster.submit_ok(&json!({"kind": "noop"})).await?;
    assert_eq!(cluster.wait_final(marker[0]).await?, "succeeded");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cluster.trail(ids[0]).await?, before, "history unchanged");
    assert_eq!(cluster.task_json(ids[0]).await?["attempt"], 1);
    Ok(())
}

#[tokio::test]
async fn a_report_for_an_old_attempt_changes_nothing() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let ids = cluster
        .submit_ok(&json!({"kind": "echo", "spec": {"v": 1}}))
        .await?;
    assert_eq!(cluster.wait_final(ids[0]).await?, "succeeded");
    // A stale worker claims attempt 0 failed, and attempt 1 failed on another node.
    let js = async_nats::jetstream::new(cluster.nats.clone());
    for (attempt, node) in [(0, "w1"), (1, "ghost")] {
        let report = taskyard_wire::status::StatusReport::Finished {
            task_id: ids[0],
            attempt,
            node_id: node.to_owned(),
            outcome: taskyard_wire::status::Outcome::Failed,
            result: serde_json::Value::Null,
            error: Some("stale".to_owned()),
            started_at: taskyard_wire::now(),
            finished_at: taskyard_wire::now(),
        };
        js.publish(
            taskyard_wire::subjects::status(node),
            codec::encode(&report).into(),
        )
        .await?
        .await?;
    }
    let marker = cluster.submit_ok(&json!({"kind": "noop"})).await?;
    assert_eq!(cluster.wait_final(marker[0]).await?, "succeeded");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let task = cluster.task_json(ids[0]).await?;
    assert_eq!(task["state"], "succeeded");
    assert_eq!(task["result"], json!({"v": 1}));
    Ok(())
}
