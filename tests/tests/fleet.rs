//! Nodes and services: registration from heartbeats, loss, capacity, discovery.

use serde_json::json;
use std::time::Duration;
use taskyard_testkit::Signal;
use taskyard_tests::{Cluster, WAIT, WorkerSpec};

#[tokio::test]
async fn workers_register_their_capacity_and_a_silent_node_is_lost() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[]).await?;
    let spec = WorkerSpec {
        cpu_millis: 1500,
        memory_mb: 512,
        ..WorkerSpec::new("small")
    };
    let worker = cluster.start_worker(&spec).await?;
    let row = cluster
        .db
        .query_one(
            "SELECT cpu_millis, memory_mb, hostname FROM nodes WHERE id = 'small'",
            &[],
        )
        .await?;
    assert_eq!((row.get::<_, i32>(0), row.get::<_, i32>(1)), (1500, 512));
    assert!(!row.get::<_, String>(2).is_empty());
    // Heartbeats carry the host's disk, and the registry keeps samples of usage.
    let disk: i64 = cluster
        .db
        .query_one("SELECT disk_total_mb FROM nodes WHERE id = 'small'", &[])
        .await?
        .get(0);
    assert!(disk > 0, "disk_total_mb = {disk}");
    cluster
        .wait_count(
            "usage samples",
            "SELECT count(*) FROM node_samples WHERE node_id = 'small'",
            2,
            WAIT,
        )
        .await?;

    worker.signal(Signal::SIGKILL)?;
    cluster
        .wait_count(
            "the killed node to be lost",
            "SELECT count(*) FROM nodes WHERE id = 'small' AND health = 'lost'",
            1,
            WAIT,
        )
        .await?;
    let kinds = cluster
        .db
        .query(
            "SELECT kind FROM node_events WHERE node_id = 'small' ORDER BY id",
            &[],
        )
        .await?;
    let kinds: Vec<String> = kinds.iter().map(|r| r.get(0)).collect();
    // A loaded machine may make the live node briefly suspect before the
    // kill; the story still starts with registration and ends in loss.
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("registered"),
        "{kinds:?}"
    );
    assert_eq!(kinds.last().map(String::as_str), Some("lost"), "{kinds:?}");
    assert_eq!(
        kinds.get(kinds.len().saturating_sub(2)).map(String::as_str),
        Some("suspect"),
        "{kinds:?}"
    );
    Ok(())
}

#[tokio::test]
async fn tasks_only_go_where_they_fit() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[
        WorkerSpec {
            cpu_millis: 1000,
            memory_mb: 1024,
            ..WorkerSpec::new("little")
        },
        WorkerSpec {
            cpu_millis: 4000,
            memory_mb: 8192,
            ..WorkerSpec::new("large")
        },
    ])
    .await?;
    let ids = cluster
        .submit_ok(&json!([
            {"kind": "sleep", "spec": {"ms": 50}, "resources": {"cpu_millis": 3000, "memory_mb": 512}},
            {"kind": "sleep", "spec": {"ms": 50}, "resources": {"cpu_millis": 500, "memory_mb": 4096}}
        ]))
        .await?;
    for id in &ids {
        assert_eq!(cluster.wait_final(*id).await?, "succeeded");
        assert_eq!(cluster.task_json(*id).await?["node_id"], "large");
    }
    Ok(())
}

#[tokio::test]
async fn every_service_answers_srv_ping() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let mut names = Vec::new();
    let inbox = cluster.nats.new_inbox();
    let mut replies = cluster.nats.subscribe(inbox.clone()).await?;
    cluster
        .nats
        .publish_with_reply("$SRV.PING", inbox, "".into())
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(reply)) =
        tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut replies)).await
    {
        let info: serde_json::Value = serde_json::from_slice(&reply.payload)?;
        names.push(info["name"].as_str().unwrap_or_default().to_owned());
    }
    names.sort();
    assert_eq!(
        names,
        [
            "taskyard-orchestrator",
            "taskyard-pool-manager",
            "taskyard-resource-manager",
            "taskyard-scheduler",
            "taskyard-worker"
        ]
    );
    Ok(())
}
