//! Several replicas of the control plane at once: one active scheduler,
//! fenced by its lease, a standby that takes over when it dies, and a
//! resync that heals what a lost event left wrong.

use serde_json::json;
use std::time::{Duration, Instant};
use taskyard_client::DISCOVERY_WINDOW;
use taskyard_testkit::{ServiceHandle, Signal, wait_until};
use taskyard_tests::{Cluster, WAIT, WorkerSpec, publish_all};

/// The roles the instances of `service` on the bus report, sorted.
async fn roles(cluster: &Cluster, service: &str) -> anyhow::Result<Vec<String>> {
    let services = cluster.client().services(DISCOVERY_WINDOW).await?;
    let mut roles: Vec<String> = services
        .into_iter()
        .filter(|s| s.name == service)
        .map(|s| s.role.unwrap_or_default())
        .collect();
    roles.sort();
    Ok(roles)
}

/// The holder of lease `name` and its epoch, as Postgres has it.
async fn holder_of(cluster: &Cluster, name: &str) -> anyhow::Result<Option<(String, i64)>> {
    let row = cluster
        .db
        .query_opt(
            "SELECT holder, epoch FROM leases WHERE name = $1 AND expires_at > now()",
            &[&name],
        )
        .await?;
    Ok(row.map(|row| (row.get(0), row.get(1))))
}

/// `n` sleep tasks of `ms` and `cpu_millis` for `tenant`, as submissions.
fn sleep_tasks(n: usize, ms: u64, cpu_millis: u32, tenant: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    (0..n)
        .map(|i| {
            Ok(serde_json::to_vec(&json!({
                "kind": "sleep", "spec": {"ms": ms}, "tenant": tenant,
                "resources": {"cpu_millis": cpu_millis, "memory_mb": if cpu_millis == 0 { 0 } else { 64 }},
                "labels": {"i": i.to_string()}
            }))?)
        })
        .collect()
}

/// The process of the holder `scheduler@host:<pid>/<id>`.
fn holder_process<'a>(holder: &str, candidates: &'a [ServiceHandle]) -> Option<&'a ServiceHandle> {
    let pid: u32 = holder.split(':').nth(1)?.split('/').next()?.parse().ok()?;
    candidates.iter().find(|service| service.pid() == pid)
}

#[tokio::test]
async fn two_schedulers_never_overbook_a_node_and_the_standby_takes_over() -> anyhow::Result<()> {
    let mut node = WorkerSpec::new("w1");
    node.cpu_millis = 1000;
    node.slots = 16;
    let mut cluster = Cluster::start(&[node]).await?;
    let second = cluster
        .start_replica("scheduler", "scheduler-2", &[])
        .await?;
    let first = cluster
        .stack
        .service("scheduler")
        .ok_or_else(|| anyhow::anyhow!("the harness's scheduler is not running"))?;
    let schedulers = [first, second];

    // One active, one standby, and `taskyard services` says which.
    let roles = wait_until("one active scheduler and one standby", WAIT, || async {
        let roles = roles(&cluster, "taskyard-scheduler").await?;
        let shape =
            roles.len() == 2 && roles[0].starts_with("active (epoch ") && roles[1] == "standby";
        Ok(shape.then_some(roles))
    })
    .await?;
    let (code, listing) = cluster.taskyard(&["services"]).await?;
    assert_eq!(code, 0, "{listing}");
    assert!(
        listing.contains("standby") && listing.contains(&roles[0]),
        "{listing}"
    );

    // Two tasks of 500m fit the node at once; a hundred wait their turn.
    let tasks = sleep_tasks(100, 60, 500, "ha")?;
    publish_all(&cluster, tasks).await?;
    cluster
        .wait_count(
            "a third of the tasks to succeed",
            "SELECT count(*) FROM tasks WHERE tenant = 'ha' AND state = 'succeeded'",
            30,
            WAIT,
        )
        .await?;

    let (holder, epoch) = holder_of(&cluster, "scheduler")
        .await?
        .ok_or_else(|| anyhow::anyhow!("nobody holds the scheduler lease"))?;
    let active = holder_process(&holder, &schedulers)
        .ok_or_else(|| anyhow::anyhow!("no scheduler process is the holder {holder}"))?;
    active.signal(Signal::SIGKILL)?;
    let killed = Instant::now();
    let killed_at: time::OffsetDateTime = cluster.db.query_one("SELECT now()", &[]).await?.get(0);
    let successor = wait_until("the standby to take the lease", WAIT, || async {
        Ok(holder_of(&cluster, "scheduler")
            .await?
            .filter(|(h, e)| *h != holder && *e > epoch))
    })
    .await?;
    let takeover = killed.elapsed();
    // Placements resume: the first task placed after the kill.
    wait_until("a placement by the new scheduler", WAIT, || async {
        let row = cluster
            .db
            .query_one(
                "SELECT count(*) FROM task_events WHERE to_state = 'scheduled' AND at > $1",
                &[&killed_at],
            )
            .await?;
        Ok((row.get::<_, i64>(0) > 0).then_some(()))
    })
    .await?;
    let resumed = killed.elapsed();
    eprintln!(
        "failover: the lease moved {takeover:?} after the kill (epoch {} → {}), placements resumed after {resumed:?}",
        epoch, successor.1
    );
    // The lease lasts 2 s in the tests: taken within a term and a renewal.
    assert!(takeover < Duration::from_millis(3500), "took {takeover:?}");

    cluster
        .wait_count(
            "every task to succeed",
            "SELECT count(*) FROM tasks WHERE tenant = 'ha' AND state = 'succeeded'",
            100,
            WAIT,
        )
        .await?;
    // Each ran once: one placement, one start.
    let runs = cluster
        .db
        .query_one(
            "SELECT count(*) FILTER (WHERE t.attempt <> 1), \
                    (SELECT count(*) FROM task_events e JOIN tasks u ON u.id = e.task_id \
                      WHERE u.tenant = 'ha' AND e.to_state = 'running') \
             FROM tasks t WHERE t.tenant = 'ha'",
            &[],
        )
        .await?;
    assert_eq!(
        (runs.get::<_, i64>(0), runs.get::<_, i64>(1)),
        (0, 100),
        "every task ran once, as attempt 1"
    );
    // Never more than two at once on the node: at each placement, how
    // many placed tasks had not finished yet (itself included).
    let most = cluster
        .db
        .query_one(
            "SELECT max((SELECT count(*) FROM tasks u WHERE u.tenant = 'ha' \
                 AND u.scheduled_at <= t.scheduled_at AND u.finished_at > t.scheduled_at)) \
             FROM tasks t WHERE t.tenant = 'ha'",
            &[],
        )
        .await?;
    let most: i64 = most.get(0);
    assert!(
        (1..=2).contains(&most),
        "{most} tasks of 500m held the 1000m node at once"
    );
    Ok(())
}

#[tokio::test]
async fn the_resync_heals_what_a_lost_event_left_wrong() -> anyhow::Result<()> {
    let mut node = WorkerSpec::new("w1");
    node.cpu_millis = 1000;
    let mut cluster = Cluster::start(&[node]).await?;
    // The harness's scheduler resyncs every 30 s; this test's every second.
    cluster
        .stack
        .service("scheduler")
        .ok_or_else(|| anyhow::anyhow!("the harness's scheduler is not running"))?
        .stop(Duration::from_secs(10))
        .await;
    cluster
        .start_replica(
            "scheduler",
            "scheduler-resync",
            &[("TASKYARD_RESYNC_INTERVAL_MS", "1000")],
        )
        .await?;

    // A task that holds the whole node, then finishes in Postgres without
    // its event reaching the scheduler (as when a publish after the commit
    // fails): the node stays held in the scheduler's memory.
    let holder = cluster
        .submit_ok(&json!({"kind": "sleep", "spec": {"ms": 600000}, "resources": {"cpu_millis": 1000, "memory_mb": 64}}))
        .await?[0];
    cluster.wait_state(holder, "running").await?;
    cluster
        .db
        .execute(
            "UPDATE tasks SET state = 'cancelled', finished_at = now(), error = 'ended behind the scheduler''s back' \
             WHERE id = $1",
            &[&holder],
        )
        .await?;
    let next = cluster
        .submit_ok(&json!({"kind": "noop", "resources": {"cpu_millis": 1000, "memory_mb": 64}}))
        .await?[0];

    // And a task queued in Postgres whose `queued` event never came: made
    // here by moving a far-off delayed task to `queued` by hand.
    let delayed = cluster
        .submit_ok(&json!({"kind": "noop", "delay_ms": 3_600_000, "resources": {"cpu_millis": 0, "memory_mb": 0}}))
        .await?[0];
    cluster.wait_state(delayed, "pending").await?;
    cluster
        .db
        .execute(
            "UPDATE tasks SET state = 'queued' WHERE id = $1",
            &[&delayed],
        )
        .await?;

    assert_eq!(cluster.wait_final(next).await?, "succeeded");
    assert_eq!(cluster.wait_final(delayed).await?, "succeeded");
    let log = cluster
        .stack
        .service("scheduler-resync")
        .map(|s| s.log())
        .unwrap_or_default();
    assert!(
        log.contains("the scheduler's state differed from Postgres"),
        "the repair is logged:\n{log}"
    );
    Ok(())
}

#[tokio::test]
async fn two_of_every_service_share_the_load_and_lose_one_without_flapping() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[WorkerSpec::new("w1"), WorkerSpec::new("w2")]).await?;
    for service in [
        "orchestrator",
        "scheduler",
        "pool-manager",
        "resource-manager",
    ] {
        cluster
            .start_replica(service, &format!("{service}-2"), &[])
            .await?;
    }
    let managers: Vec<ServiceHandle> = ["resource-manager", "resource-manager-2"]
        .iter()
        .filter_map(|name| cluster.stack.service(name))
        .collect();
    wait_until(
        "one active resource manager and one standby",
        WAIT,
        || async {
            let roles = roles(&cluster, "taskyard-resource-manager").await?;
            let shape = roles.len() == 2 && roles[0].starts_with("active") && roles[1] == "standby";
            Ok(shape.then_some(()))
        },
    )
    .await?;

    let tasks = sleep_tasks(1000, 5, 0, "pairs")?;
    publish_all(&cluster, tasks).await?;
    cluster
        .wait_count(
            "a third of the tasks to succeed",
            "SELECT count(*) FROM tasks WHERE tenant = 'pairs' AND state = 'succeeded'",
            300,
            WAIT,
        )
        .await?;

    // The active resource manager dies; its standby has heard every
    // heartbeat and takes over without judging any node silent.
    let (holder, epoch) = holder_of(&cluster, "resource-manager")
        .await?
        .ok_or_else(|| anyhow::anyhow!("nobody holds the resource-manager lease"))?;
    let active = holder_process(&holder, &managers)
        .ok_or_else(|| anyhow::anyhow!("no resource manager process is the holder {holder}"))?;
    active.signal(Signal::SIGKILL)?;
    wait_until(
        "the standby resource manager to take the lease",
        WAIT,
        || async {
            Ok(holder_of(&cluster, "resource-manager")
                .await?
                .filter(|(h, e)| *h != holder && *e > epoch))
        },
    )
    .await?;
    // Operators' requests reach the new one.
    let reply = cluster.node("cordon", "w2").await?;
    assert!(
        matches!(
            reply,
            taskyard_wire::control::NodeReply::Done { cordoned: true, .. }
        ),
        "{reply:?}"
    );
    cluster.node("uncordon", "w2").await?;

    cluster
        .wait_count(
            "every task to succeed",
            "SELECT count(*) FROM tasks WHERE tenant = 'pairs' AND state = 'succeeded'",
            1000,
            WAIT,
        )
        .await?;
    let once = cluster
        .db
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE attempt <> 1) FROM tasks WHERE tenant = 'pairs'",
            &[],
        )
        .await?;
    assert_eq!(
        (once.get::<_, i64>(0), once.get::<_, i64>(1)),
        (1000, 0),
        "every task created once and run once"
    );
    let flaps = cluster
        .db
        .query(
            "SELECT node_id, kind, reason FROM node_events WHERE kind IN ('suspect', 'lost')",
            &[],
        )
        .await?;
    let flaps: Vec<String> = flaps
        .iter()
        .map(|row| {
            format!(
                "{} {}: {}",
                row.get::<_, String>(0),
                row.get::<_, String>(1),
                row.get::<_, String>(2)
            )
        })
        .collect();
    assert!(flaps.is_empty(), "no node's health flapped: {flaps:?}");
    Ok(())
}
