//! Pools divide the fleet: membership by labels, quotas, and refusals at
//! submission for what could never run.

use serde_json::json;
use std::time::Duration;
use taskyard_testkit::wait_until;
use taskyard_tests::{Cluster, WAIT, WorkerSpec};
use taskyard_wire::pool::PoolReply;
use taskyard_wire::reply::SubmitReply;

#[tokio::test]
async fn pools_are_created_changed_and_deleted_by_request() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[]).await?;
    cluster.wait_for_service("pool-manager").await?;
    let created = cluster
        .pools(
            "create",
            &json!({"name": "batch", "max_running": 3, "node_selector": {"tier": "batch"}}),
        )
        .await?;
    assert!(
        matches!(&created, PoolReply::One { pool } if pool.max_running == Some(3)),
        "{created:?}"
    );
    let again = cluster.pools("create", &json!({"name": "batch"})).await?;
    assert!(
        matches!(&again, PoolReply::Refused { error } if error.field == "name" && error.message.contains("already exists")),
        "{again:?}"
    );
    let bad = cluster
        .pools("create", &json!({"name": "x", "policy": "lottery"}))
        .await?;
    assert!(
        matches!(&bad, PoolReply::Refused { error } if error.field == "policy"),
        "{bad:?}"
    );
    let updated = cluster
        .pools(
            "update",
            &json!({"name": "batch", "max_running": 5, "placement": "spread"}),
        )
        .await?;
    assert!(
        matches!(&updated, PoolReply::One { pool } if pool.max_running == Some(5)),
        "{updated:?}"
    );
    let listed = cluster.pools("list", &json!({})).await?;
    let PoolReply::Many { pools } = listed else {
        anyhow::bail!("expected a list, got {listed:?}")
    };
    let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["batch", "default"]);
    let default = cluster.pools("delete", &json!({"name": "default"})).await?;
    assert!(
        matches!(&default, PoolReply::Refused { error } if error.message.contains("cannot be deleted")),
        "{default:?}"
    );
    let deleted = cluster.pools("delete", &json!({"name": "batch"})).await?;
    assert!(matches!(deleted, PoolReply::One { .. }));
    let gone = cluster.pools("get", &json!({"name": "batch"})).await?;
    assert!(
        matches!(&gone, PoolReply::Refused { error } if error.message == "no pool named `batch`"),
        "{gone:?}"
    );
    // A task for a pool that does not exist is refused, naming the pool.
    match cluster
        .submit(&json!({"kind": "noop", "pool": "batch"}))
        .await?
    {
        SubmitReply::Refused { error } => {
            assert_eq!(error.field, "pool");
            assert_eq!(error.message, "no pool named `batch`");
        }
        other => anyhow::bail!("expected a refusal, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_task_bigger_than_every_node_is_rejected_with_the_reason() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[
        WorkerSpec {
            cpu_millis: 1000,
            memory_mb: 1024,
            ..WorkerSpec::new("small")
        },
        WorkerSpec {
            cpu_millis: 2000,
            memory_mb: 2048,
            ..WorkerSpec::new("medium")
        },
    ])
    .await?;
    let huge = json!({"kind": "noop", "resources": {"cpu_millis": 4000, "memory_mb": 512}, "tenant": "huge"});
    match cluster.submit(&huge).await? {
        SubmitReply::Refused { error } => {
            assert_eq!(error.field, "resources");
            assert_eq!(
                error.message,
                "no node of pool default could ever run it: it asks for 4000m cpu and 512 MiB; the largest has 2000m cpu and 2048 MiB"
            );
        }
        other => anyhow::bail!("expected a refusal, got {other:?}"),
    }
    // Through the stream the same task becomes a rejected row with the reason.
    cluster.publish(serde_json::to_vec(&huge)?, None).await?;
    cluster
        .wait_count("the rejected row", "SELECT count(*) FROM tasks WHERE tenant = 'huge' AND state = 'rejected' AND error LIKE 'resources: no node of pool default could ever run it%'", 1, WAIT)
        .await?;
    // One that fits only the larger node runs there.
    let ids = cluster
        .submit_ok(&json!({"kind": "noop", "resources": {"cpu_millis": 1500, "memory_mb": 512}}))
        .await?;
    assert_eq!(cluster.wait_final(ids[0]).await?, "succeeded");
    assert_eq!(cluster.task_json(ids[0]).await?["node_id"], "medium");
    Ok(())
}

#[tokio::test]
async fn a_pool_cap_of_n_never_shows_more_than_n_running() -> anyhow::Result<()> {
    const CAP: i64 = 3;
    let cluster = Cluster::start(&[WorkerSpec::new("w1"), WorkerSpec::new("w2")]).await?;
    let created = cluster
        .pools("create", &json!({"name": "capped", "max_running": CAP}))
        .await?;
    assert!(matches!(created, PoolReply::One { .. }), "{created:?}");
    let tasks: Vec<serde_json::Value> = (0..CAP * 10)
        .map(|_| json!({"kind": "sleep", "spec": {"ms": 150}, "pool": "capped", "resources": {"cpu_millis": 10, "memory_mb": 10}}))
        .collect();
    let ids = cluster.submit_ok(&json!(tasks)).await?;
    let most = std::sync::atomic::AtomicI64::new(0);
    let saw_reason = std::sync::atomic::AtomicBool::new(false);
    let (db, most_ref, saw_ref) = (&cluster.db, &most, &saw_reason);
    let done = wait_until("the capped pool to finish", WAIT, || async move {
        let row = db
            .query_one(
                "SELECT count(*) FILTER (WHERE state IN ('scheduled', 'running')), \
                        count(*) FILTER (WHERE state = 'succeeded'), \
                        count(*) FILTER (WHERE wait_reason = 'pool capped is at its limit of 3 running tasks') \
                 FROM tasks WHERE pool = 'capped'",
                &[],
            )
            .await?;
        let (placed, succeeded, capped): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        most_ref.fetch_max(placed, std::sync::atomic::Ordering::SeqCst);
        if capped > 0 {
            saw_ref.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok((succeeded == CAP * 10).then_some(succeeded))
    })
    .await?;
    let most = most.into_inner();
    let saw_reason = saw_reason.into_inner();
    assert_eq!(done as usize, ids.len());
    assert!(
        most <= CAP,
        "saw {most} placed at once in a pool capped at {CAP}"
    );
    assert!(
        most >= 2,
        "the pool should have run several at once, saw {most}"
    );
    assert!(
        saw_reason,
        "a waiting task should have said the pool is at its limit"
    );
    Ok(())
}

#[tokio::test]
async fn labels_decide_membership_and_a_relabelled_node_moves() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[WorkerSpec::new("edge").label("zone", "a")]).await?;
    let created = cluster
        .pools(
            "create",
            &json!({"name": "zone-b", "node_selector": {"zone": "b"}}),
        )
        .await?;
    assert!(matches!(created, PoolReply::One { .. }), "{created:?}");
    // No member yet: the task waits, and says why.
    let ids = cluster
        .submit_ok(&json!({"kind": "noop", "pool": "zone-b"}))
        .await?;
    let reason = wait_until("a waiting reason", WAIT, || async {
        let row = cluster
            .db
            .query_one("SELECT wait_reason FROM tasks WHERE id = $1", &[&ids[0]])
            .await?;
        Ok(row.get::<_, Option<String>>(0))
    })
    .await?;
    assert_eq!(
        reason,
        "pool zone-b: no node carries the labels it asks for (number 1 in the fcfs order)"
    );
    // The node is relabelled (its worker restarted with zone=b) and joins.
    let worker = cluster
        .stack
        .service("worker-edge")
        .ok_or_else(|| anyhow::anyhow!("no worker"))?;
    worker.stop(Duration::from_secs(10)).await;
    cluster
        .start_worker(&WorkerSpec::new("edge").label("zone", "b"))
        .await?;
    assert_eq!(cluster.wait_final(ids[0]).await?, "succeeded");
    assert_eq!(cluster.task_json(ids[0]).await?["node_id"], "edge");
    Ok(())
}

#[tokio::test]
async fn workers_receive_work_in_proportion_to_what_fits() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[
        WorkerSpec {
            cpu_millis: 1000,
            ..WorkerSpec::new("one")
        },
        WorkerSpec {
            cpu_millis: 2000,
            ..WorkerSpec::new("two")
        },
        WorkerSpec {
            cpu_millis: 4000,
            ..WorkerSpec::new("four")
        },
    ])
    .await?;
    let tasks: Vec<serde_json::Value> = (0..70)
        .map(|_| json!({"kind": "sleep", "spec": {"ms": 300}, "tenant": "share", "resources": {"cpu_millis": 500, "memory_mb": 16}}))
        .collect();
    cluster.submit_ok(&json!(tasks)).await?;
    cluster
        .wait_count(
            "all shares to finish",
            "SELECT count(*) FROM tasks WHERE tenant = 'share' AND state = 'succeeded'",
            70,
            WAIT,
        )
        .await?;
    let rows = cluster
        .db
        .query(
            "SELECT node_id, count(*) FROM tasks WHERE tenant = 'share' GROUP BY node_id",
            &[],
        )
        .await?;
    let count = |node: &str| -> i64 {
        rows.iter()
            .find(|r| r.get::<_, String>(0) == node)
            .map(|r| r.get(1))
            .unwrap_or(0)
    };
    let (one, two, four) = (count("one"), count("two"), count("four"));
    // 2, 4 and 8 fit at once: a saturated fleet runs them 1:2:4.
    assert!(
        one > 0 && two > one && four > two,
        "one={one} two={two} four={four}"
    );
    assert!(four >= 3 * one, "one={one} two={two} four={four}");
    Ok(())
}

#[tokio::test]
async fn a_drained_node_gets_no_new_tasks_and_its_running_ones_finish() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("old"), WorkerSpec::new("new")]).await?;
    cluster.wait_for_service("resource-manager").await?;
    // Pin a long task to "old" by cordoning "new" first.
    cluster.node("cordon", "new").await?;
    let long = cluster
        .submit_ok(&json!({"kind": "sleep", "spec": {"ms": 1500}}))
        .await?;
    wait_until("the long task to run on old", WAIT, || async {
        let task = cluster.task_json(long[0]).await?;
        Ok((task["state"] == "running").then_some(()))
    })
    .await?;
    cluster.node("uncordon", "new").await?;
    let reply = cluster.node("drain", "old").await?;
    assert!(
        matches!(
            reply,
            taskyard_wire::control::NodeReply::Done { cordoned: true, .. }
        ),
        "{reply:?}"
    );
    // New work goes to the other node while the old one finishes.
    let after: Vec<serde_json::Value> = (0..10)
        .map(|_| json!({"kind": "noop", "tenant": "after"}))
        .collect();
    cluster.submit_ok(&json!(after)).await?;
    assert_eq!(cluster.wait_final(long[0]).await?, "succeeded");
    assert_eq!(cluster.task_json(long[0]).await?["node_id"], "old");
    cluster
        .wait_count(
            "the later tasks",
            "SELECT count(*) FROM tasks WHERE tenant = 'after' AND state = 'succeeded'",
            10,
            WAIT,
        )
        .await?;
    let elsewhere: i64 = cluster
        .db
        .query_one(
            "SELECT count(*) FROM tasks WHERE tenant = 'after' AND node_id = 'new'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(elsewhere, 10, "a drained node takes no new task");
    // The drained worker leaves; a lost node can then be removed.
    let worker = cluster
        .stack
        .service("worker-old")
        .ok_or_else(|| anyhow::anyhow!("no worker"))?;
    assert!(
        worker.wait_exit(Duration::from_secs(20)).await.is_some(),
        "the drained worker should exit"
    );
    cluster
        .wait_count(
            "the drained node to be lost",
            "SELECT count(*) FROM nodes WHERE id = 'old' AND health = 'lost'",
            1,
            WAIT,
        )
        .await?;
    let removed = cluster.node("remove", "old").await?;
    assert!(
        matches!(
            removed,
            taskyard_wire::control::NodeReply::Done { removed: true, .. }
        ),
        "{removed:?}"
    );
    let left: i64 = cluster
        .db
        .query_one("SELECT count(*) FROM nodes WHERE id = 'old'", &[])
        .await?
        .get(0);
    assert_eq!(left, 0);
    Ok(())
}
