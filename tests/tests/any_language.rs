//! The any-language path: a Python program with nats-py publishes 1,000
//! tasks, three worker processes run them, and Postgres has every step.

use std::process::Stdio;
use std::time::Duration;
use taskyard_tests::{Cluster, WorkerSpec};
use tokio::process::Command;

/// nats-py, pinned, installed by the test itself when missing.
const NATS_PY: &str = "nats-py==2.16.0";
const TASKS: i64 = 1000;

async fn ensure_nats_py() -> anyhow::Result<()> {
    let present = Command::new("python3")
        .args(["-c", "import nats"])
        .status()
        .await?;
    if present.success() {
        return Ok(());
    }
    let install = tokio::time::timeout(
        Duration::from_secs(300),
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                NATS_PY,
            ])
            .status(),
    )
    .await??;
    anyhow::ensure!(install.success(), "pip install {NATS_PY} failed");
    Ok(())
}

#[tokio::test]
async fn a_thousand_tasks_from_python_run_on_three_workers() -> anyhow::Result<()> {
    ensure_nats_py().await?;
    let workers: Vec<WorkerSpec> = ["w1", "w2", "w3"]
        .into_iter()
        .map(|id| WorkerSpec {
            cpu_millis: 2000,
            memory_mb: 4096,
            slots: 20,
            ..WorkerSpec::new(id)
        })
        .collect();
    let cluster = Cluster::start(&workers).await?;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/publish_tasks.py");
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new("python3")
            .args([
                script,
                &cluster.stack.nats_url,
                &TASKS.to_string(),
                "python",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output(),
    )
    .await??;
    assert!(
        output.status.success(),
        "publisher failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "published 1000"
    );

    cluster
        .wait_count(
            "all python tasks to succeed",
            "SELECT count(*) FROM tasks WHERE tenant = 'python' AND state = 'succeeded'",
            TASKS,
            Duration::from_secs(180),
        )
        .await?;

    // Exactly 1,000 tasks, each with one final state and the full trail.
    let summary = cluster
        .db
        .query_one(
            "SELECT count(*), count(DISTINCT node_id), \
                    count(*) FILTER (WHERE finished_at IS NULL OR started_at IS NULL OR attempt <> 1) \
             FROM tasks WHERE tenant = 'python'",
            &[],
        )
        .await?;
    assert_eq!(summary.get::<_, i64>(0), TASKS);
    assert_eq!(
        summary.get::<_, i64>(1),
        3,
        "every worker ran some of the tasks"
    );
    assert_eq!(
        summary.get::<_, i64>(2),
        0,
        "every task ran once and finished"
    );
    let trails = cluster
        .db
        .query(
            "SELECT string_agg(coalesce(from_state::text, '-') || '>' || to_state::text, ' ' ORDER BY e.id) AS trail, count(*) \
             FROM task_events e JOIN tasks t ON t.id = e.task_id WHERE t.tenant = 'python' \
             GROUP BY e.task_id",
            &[],
        )
        .await?;
    assert_eq!(trails.len() as i64, TASKS);
    for row in &trails {
        let trail: String = row.get(0);
        assert_eq!(
            trail,
            "->queued queued>scheduled scheduled>running running>succeeded"
        );
    }
    let echoed: i64 = cluster
        .db
        .query_one(
            "SELECT count(*) FROM tasks WHERE tenant = 'python' AND kind = 'echo' \
             AND result->>'n' = labels->>'n'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(echoed, TASKS / 2, "each echo task returned its own spec");
    Ok(())
}
