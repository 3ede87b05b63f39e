//! Running tasks: results, failures, retries, and a full history for each.

use serde_json::json;
use taskyard_tests::{Cluster, WorkerSpec};

#[tokio::test]
async fn exec_output_and_exit_codes_land_in_the_result() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let ok = cluster
        .submit_ok(&json!({
            "kind": "exec",
            "spec": {"command": "sh", "args": ["-c", "read line; echo \"got $line from $GREETING\"; echo $TASKYARD_ATTEMPT $TASKYARD_TASK_ID >&2"],
                     "env": {"GREETING": "taskyard"}, "stdin": "input\n"}
        }))
        .await?;
    let bad = cluster
        .submit_ok(&json!({"kind": "exec", "spec": {"command": "sh", "args": ["-c", "echo partial; exit 3"]}}))
        .await?;
    let missing = cluster
        .submit_ok(&json!({"kind": "exec", "spec": {"command": "/nonexistent/tool"}}))
        .await?;

    assert_eq!(cluster.wait_final(ok[0]).await?, "succeeded");
    let task = cluster.task_json(ok[0]).await?;
    assert_eq!(task["result"]["exit_code"], 0);
    assert_eq!(task["result"]["stdout"], "got input from taskyard\n");
    assert_eq!(task["result"]["stderr"], format!("1 {}\n", ok[0]));
    assert_eq!(task["node_id"], "w1");
    assert_eq!(task["attempt"], 1);

    assert_eq!(cluster.wait_final(bad[0]).await?, "failed");
    let task = cluster.task_json(bad[0]).await?;
    assert_eq!(task["result"]["exit_code"], 3);
    assert_eq!(task["result"]["stdout"], "partial\n");
    assert_eq!(task["error"], "exit code 3");

    assert_eq!(cluster.wait_final(missing[0]).await?, "failed");
    let task = cluster.task_json(missing[0]).await?;
    let error = task["error"].as_str().unwrap_or_default();
    assert!(error.contains("/nonexistent/tool"), "{error}");

    let trail = cluster.trail(ok[0]).await?;
    let to: Vec<&str> = trail.iter().map(|(_, to)| to.as_str()).collect();
    assert_eq!(to, ["queued", "scheduled", "running", "succeeded"]);
    Ok(())
}

#[tokio::test]
async fn a_failing_task_without_backoff_is_queued_again_at_once() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let ids = cluster
        .submit_ok(&json!({"kind": "fail", "spec": {"message": "boom"}, "max_attempts": 3, "retry_backoff_ms": 0}))
        .await?;
    assert_eq!(cluster.wait_final(ids[0]).await?, "failed");
    let task = cluster.task_json(ids[0]).await?;
    assert_eq!(task["attempt"], 3);
    assert_eq!(task["error"], "boom");
    let trail = cluster.trail(ids[0]).await?;
    let to: Vec<&str> = trail.iter().map(|(_, to)| to.as_str()).collect();
    assert_eq!(
        to,
        [
            "queued",
            "scheduled",
            "running",
            "queued",
            "scheduled",
            "running",
            "queued",
            "scheduled",
            "running",
            "failed"
        ]
    );
    let reasons = cluster
        .db
        .query(
            "SELECT reason FROM task_events WHERE task_id = $1 AND from_state = 'running' ORDER BY id",
            &[&ids[0]],
        )
        .await?;
    let first: String = reasons[0].get(0);
    assert_eq!(first, "attempt 1 of 3 failed: boom; retrying now");
    Ok(())
}
