//! Connections that come back: every service rides out a NATS crash and a
//! Postgres restart under load, without being restarted itself. What a user
//! sees: every task a client got an ack for ends once, in a final state;
//! every service process is the one that started; each service's
//! `/healthz` said unhealthy while its dependency was away, and healthy
//! once it was back. And a delayed task whose time came while NATS was
//! down runs once, when it is back.

use anyhow::Context;
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};
use taskyard_runtime::access::Kind;
use taskyard_testkit::{TestStack, wait_until};
use taskyard_tests::{Cluster, WAIT, WorkerSpec};

/// Tasks each load test publishes, one JSON object per message.
const TASKS: usize = 2_000;
/// The pace of the publisher, in tasks a second: the load spans the outage.
const PER_SECOND: f64 = 400.0;
/// Tasks finished before the outage begins: it hits a pipeline in flow.
const FLOWING: i64 = 200;
/// Publishes waiting for their ack at once.
const WINDOW: usize = 128;
/// How long each outage lasts at least, in seconds.
const OUTAGE_S: u64 = 4;
/// How long a publish waits for its ack before the client sends it again
/// (with the same `Nats-Msg-Id`, as a client should).
const ACK_TIMEOUT: Duration = Duration::from_secs(3);

/// A client publishing `TASKS` noop tasks at `PER_SECOND` on
/// `taskyard.submit`, each with its idempotency key as its message id, and
/// publishing again what was not acked until everything is.
struct Load {
    prefix: &'static str,
    publisher: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn key(prefix: &str, index: usize) -> String {
    format!("{prefix}-{index}")
}

impl Load {
    async fn start(stack: &TestStack, prefix: &'static str) -> anyhow::Result<Load> {
        // Its own connection, as a submitting program, back within 100 ms
        // of the server.
        let security = stack.security_of("load", Kind::Submitter)?;
        let (addrs, options) = security.connect_options(&stack.nats_url)?;
        let client = options
            .reconnect_delay_callback(|_| Duration::from_millis(100))
            .connect(addrs)
            .await?;
        let js = async_nats::jetstream::new(client);
        let publisher = tokio::spawn(async move {
            let started = Instant::now();
            let deadline = started + WAIT * 2;
            let mut pending = futures::stream::FuturesUnordered::new();
            let mut again: VecDeque<usize> = VecDeque::new();
            let (mut fresh, mut acked) = (0, 0);
            let mut pace = tokio::time::interval(Duration::from_millis(10));
            while acked < TASKS {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{acked} of {TASKS} tasks acked in {:?}",
                    WAIT * 2
                );
                let due = (started.elapsed().as_secs_f64() * PER_SECOND) as usize;
                while pending.len() < WINDOW {
                    let index = match again.pop_front() {
                        Some(index) => index,
                        None if fresh < due.min(TASKS) => {
                            fresh += 1;
                            fresh - 1
                        }
                        None => break,
                    };
                    let key = key(prefix, index);
                    let body = json!({
                        "kind": "noop",
                        "resources": {"cpu_millis": 0, "memory_mb": 0},
                        "idempotency_key": key,
                    });
                    let message = async_nats::jetstream::message::PublishMessage::build()
                        .payload(serde_json::to_vec(&body)?.into())
                        .message_id(&key);
                    match js
                        .send_publish(taskyard_wire::subjects::SUBMIT, message)
                        .await
                    {
                        Ok(ack) => pending.push(async move {
                            let stored =
                                matches!(tokio::time::timeout(ACK_TIMEOUT, ack).await, Ok(Ok(_)));
                            (index, stored)
                        }),
                        Err(_) => {
                            again.push_back(index);
                            break;
                        }
                    }
                }
                tokio::select! {
                    Some((index, stored)) = pending.next(), if !pending.is_empty() => {
                        if stored {
                            acked += 1;
                        } else {
                            again.push_back(index);
                        }
                    }
                    _ = pace.tick() => {}
                }
            }
            Ok(())
        });
        Ok(Load { prefix, publisher })
    }

    /// Waits until every task was acked; their keys.
    async fn acked(self) -> anyhow::Result<Vec<String>> {
        self.publisher
            .await
            .context("the publisher panicked")?
            .context("publishing the load")?;
        Ok((0..TASKS).map(|i| key(self.prefix, i)).collect())
    }
}

/// Every service process of the cluster, by name, with its pid.
fn processes(cluster: &Cluster) -> BTreeMap<String, u32> {
    cluster
        .stack
        .services()
        .iter()
        .map(|s| (s.name().to_owned(), s.pid()))
        .collect()
}

/// Every service is still the process that started: none exited, none was
/// started again.
fn assert_never_restarted(cluster: &Cluster, before: &BTreeMap<String, u32>) {
    assert_eq!(&processes(cluster), before, "no service was started again");
    for service in cluster.stack.services() {
        assert!(
            service.is_running(),
            "{} (pid {}) exited: {:?}\n{}",
            service.name(),
            service.pid(),
            service.try_status(),
            service.log()
        );
    }
}

/// `GET /healthz` on a service's metrics port: its status and body.
async fn healthz(http: &reqwest::Client, addr: &str) -> anyhow::Result<(u16, Value)> {
    let answer = http
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_millis(500))
        .send()
        .await?;
    let status = answer.status().as_u16();
    Ok((status, answer.json().await?))
}

/// Waits until every service of `names` answers `/healthz` with `status`
/// at once; their bodies.
async fn wait_health(
    cluster: &Cluster,
    names: &[&str],
    status: u16,
) -> anyhow::Result<BTreeMap<String, Value>> {
    let http = reqwest::Client::new();
    wait_until(
        &format!("/healthz of {names:?} to answer {status}"),
        WAIT,
        || async {
            let mut bodies = BTreeMap::new();
            for name in names {
                let addr = cluster
                    .metrics
                    .get(*name)
                    .with_context(|| format!("no metrics address for {name}"))?;
                let (answered, body) = healthz(&http, addr).await?;
                if answered != status {
                    return Ok(None);
                }
                bodies.insert((*name).to_owned(), body);
            }
            Ok(Some(bodies))
        },
    )
    .await
}

/// Waits until `/healthz` of `name` says `dependency` has been away for
/// at least `seconds`: an outage long enough to matter.
async fn wait_away(
    cluster: &Cluster,
    name: &str,
    dependency: &str,
    seconds: u64,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let addr = cluster
        .metrics
        .get(name)
        .with_context(|| format!("no metrics address for {name}"))?;
    wait_until(
        &format!("{name} to be without {dependency} for {seconds} s"),
        WAIT,
        || async {
            let (_, body) = healthz(&http, addr).await?;
            let away = body["dependencies"].as_array().and_then(|all| {
                all.iter()
                    .find(|d| d["name"] == dependency)
                    .and_then(|d| d["down_for_s"].as_u64())
            });
            Ok(away.is_some_and(|s| s >= seconds).then_some(()))
        },
    )
    .await
}

/// How many rows `sql` (a `SELECT count(*)`) counts.
async fn count(cluster: &Cluster, sql: &str) -> anyhow::Result<i64> {
    Ok(cluster.db.query_one(sql, &[]).await?.get(0))
}

/// The status `/healthz` gives `dependency` in `body`.
fn dependency(body: &Value, dependency: &str) -> Option<String> {
    body["dependencies"]
        .as_array()?
        .iter()
        .find(|d| d["name"] == dependency)
        .and_then(|d| d["status"].as_str())
        .map(str::to_owned)
}

/// Waits until every task of `keys` has ended, then checks each one exists
/// once, succeeded, and has exactly one final transition in its history.
async fn assert_each_ended_once(cluster: &Cluster, keys: &[String]) -> anyhow::Result<()> {
    let total = i64::try_from(keys.len())?;
    let ended = wait_until("every acked task to end", WAIT, || async {
        let ended: i64 = cluster
            .db
            .query_one(
                "SELECT count(*) FROM tasks WHERE idempotency_key = ANY($1) AND finished_at IS NOT NULL",
                &[&keys],
            )
            .await?
            .get(0);
        Ok((ended >= total).then_some(()))
    })
    .await;
    if let Err(err) = ended {
        // Where the others are is what tells why.
        let rows = cluster
            .db
            .query(
                "SELECT state::text, count(*) FROM tasks WHERE idempotency_key = ANY($1) \
                 AND finished_at IS NULL GROUP BY 1",
                &[&keys],
            )
            .await?;
        let waiting: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        return Err(err.context(format!("tasks not ended, by state: {waiting:?}")));
    }
    let rows = cluster
        .db
        .query(
            "SELECT t.idempotency_key, t.state::text, \
                    (SELECT count(*) FROM task_events e WHERE e.task_id = t.id \
                       AND e.to_state IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'rejected')) \
             FROM tasks t WHERE t.idempotency_key = ANY($1)",
            &[&keys],
        )
        .await?;
    assert_eq!(rows.len(), keys.len(), "one task per acked submission");
    let mut unwell: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .filter(|(_, state, finals): &(String, String, i64)| state != "succeeded" || *finals != 1)
        .collect();
    unwell.truncate(10);
    assert!(
        unwell.is_empty(),
        "tasks that did not succeed exactly once (key, state, final transitions): {unwell:?}"
    );
    Ok(())
}

/// The control plane, and the services that use Postgres.
const CONTROL_PLANE: [&str; 4] = [
    "orchestrator",
    "scheduler",
    "pool-manager",
    "resource-manager",
];
/// Every service of the tests' cluster.
const EVERY_SERVICE: [&str; 5] = [
    "orchestrator",
    "scheduler",
    "pool-manager",
    "resource-manager",
    "worker-w1",
];

async fn flowing(cluster: &Cluster, prefix: &str) -> anyhow::Result<()> {
    cluster
        .wait_count(
            "the load to flow",
            &format!(
                "SELECT count(*) FROM tasks WHERE idempotency_key LIKE '{prefix}-%' \
                 AND finished_at IS NOT NULL"
            ),
            FLOWING,
            WAIT,
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_nats_crash_under_load_loses_no_task_and_restarts_no_service() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    wait_health(&cluster, &EVERY_SERVICE, 200).await?;
    let before = processes(&cluster);
    let load = Load::start(&cluster.stack, "nats").await?;
    flowing(&cluster, "nats").await?;

    cluster.stack.kill_nats().await;
    let during = wait_health(&cluster, &EVERY_SERVICE, 503).await?;
    for (name, body) in &during {
        assert_eq!(
            dependency(body, "nats").as_deref(),
            Some("unavailable"),
            "{name}: {body}"
        );
    }
    // Longer than the resource manager's lost threshold (3 s): it heard
    // no heartbeat meanwhile, and must not take that for lost nodes.
    wait_away(&cluster, "resource-manager", "nats", OUTAGE_S).await?;
    cluster.stack.restart_nats().await?;
    let after = wait_health(&cluster, &EVERY_SERVICE, 200).await?;
    for (name, body) in &after {
        assert_eq!(body["status"], "ok", "{name}: {body}");
    }

    let keys = load.acked().await?;
    assert_each_ended_once(&cluster, &keys).await?;
    assert_eq!(
        count(
            &cluster,
            "SELECT count(*) FROM node_events WHERE kind = 'lost'"
        )
        .await?,
        0,
        "the node was never declared lost"
    );
    assert_never_restarted(&cluster, &before);
    assert_outage_logged_once(&cluster, "NATS connection lost", "NATS connection restored")?;
    Ok(())
}

#[tokio::test]
async fn an_immediate_postgres_restart_under_load_loses_no_task_and_restarts_no_service()
-> anyhow::Result<()> {
    // The harness's Postgres answers commits before they are written, and
    // an immediate shutdown loses them: a lost placement is placed again
    // under the same attempt number, and the stream takes its dispatch for
    // a duplicate. A production Postgres does not lose what it answered.
    let mut cluster = Cluster::start_durable(&[WorkerSpec::new("w1")]).await?;
    wait_health(&cluster, &EVERY_SERVICE, 200).await?;
    let before = processes(&cluster);
    let load = Load::start(&cluster.stack, "pg").await?;
    flowing(&cluster, "pg").await?;

    // `pg_ctl restart -m immediate`, held open until every service said
    // it is unhealthy, so that what they say meanwhile can be seen.
    cluster.stack.stop_postgres_immediate().await;
    let during = wait_health(&cluster, &CONTROL_PLANE, 503).await?;
    for (name, body) in &during {
        assert_eq!(
            dependency(body, "postgres").as_deref(),
            Some("unavailable"),
            "{name}: {body}"
        );
        assert_eq!(
            dependency(body, "nats").as_deref(),
            Some("ok"),
            "{name}: {body}"
        );
    }
    // A worker has no database: the outage is not its own.
    let worker = wait_health(&cluster, &["worker-w1"], 200).await?;
    assert_eq!(dependency(&worker["worker-w1"], "postgres"), None);
    // Longer than the test pool manager's three deliveries of a report,
    // a second apart: handed back, the reports would be given up.
    wait_away(&cluster, "pool-manager", "postgres", OUTAGE_S).await?;
    cluster.stack.start_postgres().await?;
    wait_health(&cluster, &EVERY_SERVICE, 200).await?;

    // The test's own connection did not survive the restart.
    cluster.db = cluster.stack.db().await?;
    let keys = load.acked().await?;
    assert_each_ended_once(&cluster, &keys).await?;
    assert_eq!(
        count(&cluster, "SELECT count(*) FROM dead_letters").await?,
        0,
        "no message was given up"
    );
    assert_never_restarted(&cluster, &before);
    assert_outage_logged_once(&cluster, "Postgres unreachable", "Postgres reachable again")?;
    Ok(())
}

#[tokio::test]
async fn a_delayed_task_due_while_nats_is_down_runs_once_when_it_is_back() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let before = processes(&cluster);
    let ids = cluster
        .submit_ok(&json!({"kind": "noop", "delay_ms": 2_000}))
        .await?;
    let id = *ids.first().context("the task's id")?;
    assert_eq!(cluster.state(id).await?.as_deref(), Some("pending"));

    cluster.stack.kill_nats().await;
    wait_until(
        "its start time to pass while NATS is down",
        WAIT,
        || async {
            let row = cluster
            .db
            .query_one(
                "SELECT run_at < now() - interval '1 second', state::text FROM tasks WHERE id = $1",
                &[&id],
            )
            .await?;
            let (due, state): (bool, String) = (row.get(0), row.get(1));
            anyhow::ensure!(state == "pending", "it moved to {state} without NATS");
            Ok(due.then_some(()))
        },
    )
    .await?;
    cluster.stack.restart_nats().await?;

    assert_eq!(cluster.wait_final(id).await?, "succeeded");
    let task = cluster.task_json(id).await?;
    assert_eq!(task["attempt"], 1, "one attempt: {task}");
    let trail = cluster.trail(id).await?;
    let ran = trail.iter().filter(|(_, to)| to == "running").count();
    assert_eq!(ran, 1, "started once: {trail:?}");
    let ended = trail.iter().filter(|(_, to)| to == "succeeded").count();
    assert_eq!(ended, 1, "succeeded once: {trail:?}");
    assert_never_restarted(&cluster, &before);
    Ok(())
}

/// Every control-plane service logged the outage once when it began
/// (`lost`) and once when it ended (`back`).
fn assert_outage_logged_once(cluster: &Cluster, lost: &str, back: &str) -> anyhow::Result<()> {
    for name in CONTROL_PLANE {
        let log = cluster.stack.service(name).context(name)?.log();
        assert_eq!(
            log.matches(lost).count(),
            1,
            "{name} logs the outage once:\n{log}"
        );
        assert_eq!(log.matches(back).count(), 1, "{name}:\n{log}");
    }
    Ok(())
}
