//! The any-language path: a Python program with nats-py publishes 1,000
//! tasks, three worker processes run them, and Postgres has every step. The
//! program connects as a submitter, with its own nkey; on a bus that speaks
//! TLS it trusts the stack's CA, and without it cannot connect at all.

use std::process::Stdio;
use std::time::Duration;
use taskyard_runtime::access::Kind;
use taskyard_tests::{Cluster, WorkerSpec};
use tokio::process::Command;

/// nats-py and the nkeys module it signs with, pinned, installed by the
/// test itself when missing.
const NATS_PY: [&str; 2] = ["nats-py==2.16.0", "nkeys==0.2.1"];
const TASKS: i64 = 1000;

async fn ensure_nats_py() -> anyhow::Result<()> {
    let present = Command::new("python3")
        .args(["-c", "import nats, nkeys"])
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
            ])
            .args(NATS_PY)
            .status(),
    )
    .await??;
    anyhow::ensure!(install.success(), "pip install {NATS_PY:?} failed");
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

    let output = publish_from_python(&cluster, TASKS, "python", true).await?;
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

/// Runs `publish_tasks.py` as a submitter of `cluster`, trusting its CA
/// when it has one and `trust` is set.
async fn publish_from_python(
    cluster: &Cluster,
    tasks: i64,
    tenant: &str,
    trust: bool,
) -> anyhow::Result<std::process::Output> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/publish_tasks.py");
    let security = cluster.stack.security_of("python", Kind::Submitter)?;
    let seed = security
        .nkey_file
        .ok_or_else(|| anyhow::anyhow!("a submitter has a seed file"))?;
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg(&cluster.stack.nats_url)
        .arg(tasks.to_string())
        .arg(tenant)
        .arg("--nkey")
        .arg(seed);
    if let (true, Some(tls)) = (trust, cluster.stack.tls()) {
        command.arg("--ca").arg(&tls.ca);
    }
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    Ok(output)
}

#[tokio::test]
async fn on_a_tls_bus_python_submits_with_the_ca_and_cannot_connect_without() -> anyhow::Result<()>
{
    ensure_nats_py().await?;
    let cluster = Cluster::start_tls(&[WorkerSpec::new("w1")]).await?;
    assert!(
        cluster.stack.nats_url.starts_with("tls://"),
        "{}",
        cluster.stack.nats_url
    );

    let refused = publish_from_python(&cluster, 1, "untrusting", false).await?;
    assert!(!refused.status.success(), "a client without the CA got in");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("CERTIFICATE_VERIFY_FAILED") || stderr.contains("certificate verify"),
        "{stderr}"
    );

    let output = publish_from_python(&cluster, 100, "tls", true).await?;
    assert!(
        output.status.success(),
        "publisher failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    cluster
        .wait_count(
            "the python tasks over TLS to succeed",
            "SELECT count(*) FROM tasks WHERE tenant = 'tls' AND state = 'succeeded'",
            100,
            Duration::from_secs(120),
        )
        .await?;
    let untrusting: i64 = cluster
        .db
        .query_one(
            "SELECT count(*) FROM tasks WHERE tenant = 'untrusting'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(untrusting, 0);
    Ok(())
}
