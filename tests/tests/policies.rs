//! Pools order their queues by the policy they name, in the real stack.

use serde_json::json;
use taskyard_testkit::wait_until;
use taskyard_tests::{Cluster, WAIT, WorkerSpec};
use taskyard_wire::pool::PoolReply;

#[tokio::test]
async fn an_sjf_pool_runs_short_tasks_ahead_of_long_ones_submitted_earlier() -> anyhow::Result<()> {
    // One task at a time, so the queue's order is the order of starts.
    let cluster = Cluster::start(&[WorkerSpec {
        cpu_millis: 1000,
        ..WorkerSpec::new("solo")
    }])
    .await?;
    let created = cluster
        .pools("create", &json!({"name": "quick", "policy": "sjf"}))
        .await?;
    assert!(matches!(created, PoolReply::One { .. }), "{created:?}");
    let whole = json!({"cpu_millis": 1000, "memory_mb": 16});
    // A blocker holds the node while the rest queue up behind it.
    let blocker = cluster
        .submit_ok(
            &json!({"kind": "sleep", "spec": {"ms": 2000}, "pool": "quick", "resources": whole}),
        )
        .await?;
    wait_until("the blocker to start", WAIT, || async {
        Ok((cluster.task_json(blocker[0]).await?["state"] == "running").then_some(()))
    })
    .await?;
    let long: Vec<serde_json::Value> = (0..3)
        .map(|_| json!({"kind": "sleep", "spec": {"ms": 100}, "pool": "quick", "resources": whole, "estimated_runtime_ms": 60000, "tenant": "long"}))
        .collect();
    let short: Vec<serde_json::Value> = (0..3)
        .map(|_| json!({"kind": "sleep", "spec": {"ms": 20}, "pool": "quick", "resources": whole, "estimated_runtime_ms": 50, "tenant": "short"}))
        .collect();
    let long = cluster.submit_ok(&json!(long)).await?;
    cluster.submit_ok(&json!(short)).await?;
    // While the blocker runs, each long task says where it stands: behind
    // the three short ones in the SJF order.
    let first_long = long[0];
    let expected = "pool quick: no node with 1000m cpu and 16 MiB free; \
                    the most free has 0m cpu and 4080 MiB (number 4 in the sjf order)";
    let explained = wait_until(expected, WAIT, || async {
        let task = cluster.task_json(first_long).await?;
        Ok((task["wait_reason"] == expected).then_some(()))
    })
    .await;
    if let Err(err) = explained {
        let task = cluster.task_json(first_long).await?;
        anyhow::bail!("{err}; the task says {}", task["wait_reason"]);
    }
    cluster
        .wait_count(
            "all to finish",
            "SELECT count(*) FROM tasks WHERE pool = 'quick' AND state = 'succeeded'",
            7,
            WAIT,
        )
        .await?;
    // Why it ran there: the policy's pick, then the node's score.
    let placed: String = cluster
        .db
        .query_one(
            "SELECT reason FROM task_events WHERE task_id = $1 AND to_state = 'scheduled'",
            &[&first_long],
        )
        .await?
        .get(0);
    assert!(
        placed.starts_with("picked by sjf in pool quick (priority 0); best fit, score 0m cpu left"),
        "{placed}"
    );
    let order = cluster
        .db
        .query(
            "SELECT tenant FROM tasks WHERE pool = 'quick' AND tenant IN ('long', 'short') ORDER BY started_at",
            &[],
        )
        .await?;
    let order: Vec<String> = order.iter().map(|r| r.get(0)).collect();
    assert_eq!(order, ["short", "short", "short", "long", "long", "long"]);
    Ok(())
}

#[tokio::test]
async fn a_pool_switched_to_round_robin_alternates_tenants() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec {
        cpu_millis: 1000,
        ..WorkerSpec::new("solo")
    }])
    .await?;
    let created = cluster.pools("create", &json!({"name": "shared"})).await?;
    assert!(matches!(created, PoolReply::One { .. }), "{created:?}");
    let whole = json!({"cpu_millis": 1000, "memory_mb": 16});
    let blocker = cluster
        .submit_ok(
            &json!({"kind": "sleep", "spec": {"ms": 800}, "pool": "shared", "resources": whole}),
        )
        .await?;
    wait_until("the blocker to start", WAIT, || async {
        Ok((cluster.task_json(blocker[0]).await?["state"] == "running").then_some(()))
    })
    .await?;
    // Tenant a submits first, all at once; then tenant b.
    for tenant in ["a", "b"] {
        let tasks: Vec<serde_json::Value> = (0..3)
            .map(|_| json!({"kind": "sleep", "spec": {"ms": 20}, "pool": "shared", "resources": whole, "tenant": tenant}))
            .collect();
        cluster.submit_ok(&json!(tasks)).await?;
    }
    // Switched while they wait: the queue is re-ordered without a restart.
    let switched = cluster
        .pools(
            "update",
            &json!({"name": "shared", "policy": "round_robin"}),
        )
        .await?;
    assert!(matches!(switched, PoolReply::One { .. }), "{switched:?}");
    cluster
        .wait_count(
            "all to finish",
            "SELECT count(*) FROM tasks WHERE pool = 'shared' AND state = 'succeeded'",
            7,
            WAIT,
        )
        .await?;
    let order = cluster
        .db
        .query(
            "SELECT tenant FROM tasks WHERE pool = 'shared' AND tenant IN ('a', 'b') ORDER BY started_at",
            &[],
        )
        .await?;
    let order: Vec<String> = order.iter().map(|r| r.get(0)).collect();
    assert_eq!(order, ["a", "b", "a", "b", "a", "b"]);
    Ok(())
}

#[tokio::test]
async fn a_wfq_pool_shares_work_by_tenant_weight() -> anyhow::Result<()> {
    // Four at a time, so the order of starts is the order of service.
    let cluster = Cluster::start(&[WorkerSpec {
        cpu_millis: 4000,
        ..WorkerSpec::new("solo")
    }])
    .await?;
    let created = cluster
        .pools(
            "create",
            &json!({"name": "fair", "policy": "wfq", "tenant_weights": {"heavy": 3, "light": 1}}),
        )
        .await?;
    assert!(matches!(created, PoolReply::One { .. }), "{created:?}");
    let quarter = json!({"cpu_millis": 1000, "memory_mb": 16});
    let blockers: Vec<serde_json::Value> = (0..4)
        .map(|_| json!({"kind": "sleep", "spec": {"ms": 800}, "pool": "fair", "resources": quarter, "tenant": "blocker"}))
        .collect();
    cluster.submit_ok(&json!(blockers)).await?;
    cluster
        .wait_count(
            "the blockers to run",
            "SELECT count(*) FROM tasks WHERE tenant = 'blocker' AND state = 'running'",
            4,
            WAIT,
        )
        .await?;
    // The light tenant queues first; both stay backlogged.
    for tenant in ["light", "heavy"] {
        let tasks: Vec<serde_json::Value> = (0..24)
            .map(|_| json!({"kind": "sleep", "spec": {"ms": 100}, "pool": "fair", "resources": quarter, "tenant": tenant}))
            .collect();
        cluster.submit_ok(&json!(tasks)).await?;
    }
    cluster
        .wait_count(
            "all to finish",
            "SELECT count(*) FROM tasks WHERE pool = 'fair' AND state = 'succeeded'",
            52,
            WAIT,
        )
        .await?;
    // The first sixteen served, four rounds of four: 3:1 while both wait.
    let first = cluster
        .db
        .query(
            "SELECT tenant FROM tasks WHERE pool = 'fair' AND tenant <> 'blocker' ORDER BY started_at, seq LIMIT 16",
            &[],
        )
        .await?;
    let heavy = first
        .iter()
        .filter(|r| r.get::<_, String>(0) == "heavy")
        .count();
    assert!(
        (11..=13).contains(&heavy),
        "heavy got {heavy} of the first 16 (3:1 is 12)"
    );
    Ok(())
}

#[tokio::test]
async fn an_sjf_pool_learns_run_times_per_kind_for_tasks_without_an_estimate() -> anyhow::Result<()>
{
    let cluster = Cluster::start(&[WorkerSpec {
        cpu_millis: 1000,
        ..WorkerSpec::new("solo")
    }])
    .await?;
    cluster
        .pools("create", &json!({"name": "learning", "policy": "sjf"}))
        .await?;
    let whole = json!({"cpu_millis": 1000, "memory_mb": 16});
    // History: `sleep` tasks take 600 ms here, `echo` tasks next to nothing.
    let history = json!([
        {"kind": "sleep", "spec": {"ms": 600}, "pool": "learning", "resources": whole},
        {"kind": "echo", "spec": {}, "pool": "learning", "resources": whole},
        {"kind": "sleep", "spec": {"ms": 600}, "pool": "learning", "resources": whole},
        {"kind": "echo", "spec": {}, "pool": "learning", "resources": whole},
    ]);
    for id in cluster.submit_ok(&history).await? {
        assert_eq!(cluster.wait_final(id).await?, "succeeded");
    }
    let learned = cluster
        .db
        .query(
            "SELECT kind, mean_ms, samples FROM runtime_estimates WHERE pool = 'learning' ORDER BY kind",
            &[],
        )
        .await?;
    let kinds: Vec<String> = learned.iter().map(|r| r.get(0)).collect();
    assert_eq!(kinds, ["echo", "sleep"]);
    let sleep_ms: f64 = learned[1].get(1);
    assert!(
        (550.0..2000.0).contains(&sleep_ms),
        "learned {sleep_ms} ms for sleep"
    );
    let echo_ms: f64 = learned[0].get(1);
    assert!(echo_ms < 200.0, "learned {echo_ms} ms for echo");
    // The scheduler re-reads what was learned when tasks succeed, at most
    // every 5 s.
    tokio::time::sleep(std::time::Duration::from_millis(5200)).await;
    let nudge = cluster
        .submit_ok(&json!({"kind": "noop", "pool": "learning", "resources": whole}))
        .await?;
    assert_eq!(cluster.wait_final(nudge[0]).await?, "succeeded");
    let blocker = cluster
        .submit_ok(
            &json!({"kind": "sleep", "spec": {"ms": 800}, "pool": "learning", "resources": whole}),
        )
        .await?;
    cluster.wait_state(blocker[0], "running").await?;
    // Sleeps first, echoes after, none with an estimate: the learned ones
    // put the echoes ahead.
    let sleeps: Vec<serde_json::Value> = (0..2)
        .map(|_| json!({"kind": "sleep", "spec": {"ms": 300}, "pool": "learning", "resources": whole, "tenant": "slow"}))
        .collect();
    let echoes: Vec<serde_json::Value> = (0..2)
        .map(|_| json!({"kind": "echo", "spec": {}, "pool": "learning", "resources": whole, "tenant": "fast"}))
        .collect();
    cluster.submit_ok(&json!(sleeps)).await?;
    cluster.submit_ok(&json!(echoes)).await?;
    cluster
        .wait_count(
            "all to finish",
            "SELECT count(*) FROM tasks WHERE pool = 'learning' AND tenant IN ('slow', 'fast') AND state = 'succeeded'",
            4,
            WAIT,
        )
        .await?;
    let order = cluster
        .db
        .query(
            "SELECT tenant FROM tasks WHERE pool = 'learning' AND tenant IN ('slow', 'fast') ORDER BY started_at",
            &[],
        )
        .await?;
    let order: Vec<String> = order.iter().map(|r| r.get(0)).collect();
    assert_eq!(order, ["fast", "fast", "slow", "slow"]);
    Ok(())
}

/// A task that needs the whole node, overtaken by smaller ones once, gets
/// the node held for it: it starts as soon as the node drains, before the
/// smaller tasks queued behind it.
#[tokio::test]
async fn a_whole_node_task_gets_the_node_held_instead_of_being_overtaken() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec {
        cpu_millis: 2000,
        ..WorkerSpec::new("solo")
    }])
    .await?;
    let created = cluster.pools("create", &json!({"name": "mixed"})).await?;
    assert!(matches!(created, PoolReply::One { .. }), "{created:?}");
    let task = |name: &str, cpu: u32, ms: u32| {
        json!({"kind": "sleep", "spec": {"ms": ms}, "pool": "mixed", "tenant": name,
               "resources": {"cpu_millis": cpu, "memory_mb": 16}})
    };
    // Two half-node tasks that end one after the other.
    let running = cluster
        .submit_ok(&json!([task("a1", 1000, 1000), task("a2", 1000, 2500)]))
        .await?;
    for id in &running {
        wait_until("the first tasks to start", WAIT, || async {
            Ok((cluster.task_json(*id).await?["state"] == "running").then_some(()))
        })
        .await?;
    }
    let big = cluster.submit_ok(&task("big", 2000, 50)).await?[0];
    cluster
        .submit_ok(&json!([
            task("s1", 1000, 1500),
            task("s2", 1000, 1500),
            task("s3", 1000, 1500)
        ]))
        .await?;
    // When a1 ends, s1 takes its core and the node is held for the big task.
    let explained = wait_until("the big task's node to be held", WAIT, || async {
        let reason = cluster.task_json(big).await?["wait_reason"].clone();
        Ok(reason
            .as_str()
            .is_some_and(|r| {
                r.contains("is held for it") && r.contains("until 2000m cpu more is free")
            })
            .then_some(()))
    })
    .await;
    if let Err(err) = explained {
        let task = cluster.task_json(big).await?;
        anyhow::bail!("{err}; the task says {}", task["wait_reason"]);
    }
    cluster
        .wait_count(
            "all to finish",
            "SELECT count(*) FROM tasks WHERE pool = 'mixed' AND state = 'succeeded'",
            6,
            WAIT,
        )
        .await?;
    let order = cluster
        .db
        .query(
            "SELECT tenant FROM tasks WHERE pool = 'mixed' ORDER BY started_at",
            &[],
        )
        .await?;
    let order: Vec<String> = order.iter().map(|r| r.get(0)).collect();
    let at = |name: &str| order.iter().position(|t| t == name);
    assert!(
        at("s1") < at("big") && at("big") < at("s2") && at("big") < at("s3"),
        "s1 overtook once, then the big task went first: {order:?}"
    );
    let placed: String = cluster
        .db
        .query_one(
            "SELECT reason FROM task_events WHERE task_id = $1 AND to_state = 'scheduled'",
            &[&big],
        )
        .await?
        .get(0);
    assert!(placed.contains("on the node held for it"), "{placed}");
    Ok(())
}
