//! Taskyard on a three-server NATS cluster losing servers under load.
//!
//! 5,000 tasks flow while the server that leads the submission stream is
//! killed with SIGKILL, then a second server: with one of three down the
//! pipeline keeps taking and running work; with two down a submission fails
//! fast with an error instead of hanging; once both are back everything
//! drains, and every task the stream acknowledged ends exactly once, in a
//! final state, with its whole history.
//!
//! The client here behaves as the contract asks of one: it publishes with a
//! `Nats-Msg-Id` and publishes again what was not acknowledged, so a task
//! whose ack was lost in the failover is stored once all the same.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, message::PublishMessage};
use serde_json::json;
use taskyard_runtime::streams;
use taskyard_testkit::wait_until;
use taskyard_tests::{Cluster, WorkerSpec};
use taskyard_wire::subjects;

/// Tasks that must all be acknowledged and run.
const TASKS: usize = 5_000;
/// Published before the first kill, while every server is up.
const BEFORE_KILL: usize = 2_000;
/// Published with one server of three down.
const WITH_ONE_DOWN: usize = 1_500;
/// Submissions published at once before their acks are awaited together.
const CHUNK: usize = 250;
const TENANT: &str = "failover";
/// How long a client keeps publishing again what was not acknowledged.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(45);
/// A submission while the cluster has no majority must fail within this:
/// the client's ack wait (5 s) and a little more, never a hang.
const FAIL_FAST: Duration = Duration::from_secs(8);
/// `taskyard submit` without a majority must give up within this: its
/// request timeout (10 s) and a little more.
const CLI_FAIL_FAST: Duration = Duration::from_secs(15);
/// How long the backlog may take to drain once both servers are back.
const DRAIN: Duration = Duration::from_secs(90);

fn task(n: usize) -> Vec<u8> {
    let task = json!({
        "kind": "noop",
        "tenant": TENANT,
        "resources": {"cpu_millis": 0, "memory_mb": 0},
        "labels": {"n": n.to_string()},
    });
    serde_json::to_vec(&task).unwrap_or_default()
}

fn publish_message(n: usize) -> PublishMessage {
    PublishMessage::build()
        .payload(task(n).into())
        .message_id(format!("failover-{n}"))
}

/// Publishes tasks `numbers` and awaits their acks together: the ones the
/// stream acknowledged, and the first error of the others.
async fn publish_chunk(js: &jetstream::Context, numbers: &[usize]) -> (Vec<usize>, Option<String>) {
    let mut pending = Vec::with_capacity(numbers.len());
    let mut first_error = None;
    for &n in numbers {
        match js.send_publish(subjects::SUBMIT, publish_message(n)).await {
            Ok(ack) => pending.push((n, ack)),
            Err(err) => {
                first_error.get_or_insert_with(|| err.to_string());
            }
        }
    }
    let results = futures::future::join_all(
        pending
            .into_iter()
            .map(|(n, ack)| async move { (n, ack.await) }),
    )
    .await;
    let mut acked = Vec::with_capacity(results.len());
    for (n, result) in results {
        match result {
            Ok(_) => acked.push(n),
            Err(err) => {
                first_error.get_or_insert_with(|| err.to_string());
            }
        }
    }
    (acked, first_error)
}

/// Publishes every task of `numbers`, [`CHUNK`] at a time, publishing again
/// (same message id) whatever was not acknowledged, for at most
/// [`PUBLISH_PATIENCE`]. Returns when the first ack came.
async fn publish_every(
    js: &jetstream::Context,
    numbers: std::ops::Range<usize>,
    acked: &mut BTreeSet<usize>,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + PUBLISH_PATIENCE;
    let mut first_ack = None;
    let numbers: Vec<usize> = numbers.collect();
    for chunk in numbers.chunks(CHUNK) {
        let mut left = chunk.to_vec();
        let mut pause = Duration::from_millis(50);
        loop {
            let (ok, error) = publish_chunk(js, &left).await;
            if !ok.is_empty() {
                first_ack.get_or_insert_with(Instant::now);
            }
            acked.extend(&ok);
            left.retain(|n| !acked.contains(n));
            if left.is_empty() {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} submissions still not acknowledged after {PUBLISH_PATIENCE:?}: {}",
                left.len(),
                error.unwrap_or_default()
            );
            // A client's pause before it tries again, not a wait for an event.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
    first_ack.context("nothing to publish")
}

/// Waits until the submission stream has a leader other than `old` (any
/// leader when `old` is `None`), and names it.
async fn new_submit_leader(cluster: &Cluster, old: Option<&str>) -> anyhow::Result<String> {
    let nats = cluster.stack.cluster()?;
    wait_until(
        "a new leader of the submission stream",
        Duration::from_secs(30),
        || async {
            let leader = nats.stream_leader(streams::SUBMIT).await?;
            Ok(leader.filter(|leader| Some(leader.as_str()) != old))
        },
    )
    .await
}

/// Runs `taskyard submit -` with task `n` on standard input: its exit code
/// and what it printed on standard error.
async fn cli_submit(cluster: &Cluster, n: usize) -> anyhow::Result<(i32, String)> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(taskyard_testkit::bin_path("taskyard"))
        .args(["--nats-url", &cluster.stack.nats_url, "submit", "-"])
        .envs(cluster.stack.cli_env()?)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("running the taskyard CLI")?;
    let mut stdin = child.stdin.take().context("the CLI's standard input")?;
    stdin.write_all(&task(n)).await?;
    drop(stdin);
    let output = tokio::time::timeout(CLI_FAIL_FAST * 2, child.wait_with_output())
        .await
        .context("`taskyard submit` hung")??;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    ))
}

async fn finished(cluster: &Cluster) -> anyhow::Result<i64> {
    Ok(cluster
        .db
        .query_one(
            "SELECT count(*) FROM tasks WHERE tenant = $1 AND finished_at IS NOT NULL",
            &[&TENANT],
        )
        .await?
        .get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_rides_out_losing_servers_of_the_nats_cluster() -> anyhow::Result<()> {
    let started = Instant::now();
    let workers: Vec<WorkerSpec> = ["w1", "w2"]
        .into_iter()
        .map(|node| {
            let mut worker = WorkerSpec::new(node);
            worker.slots = 256;
            worker
        })
        .collect();
    let mut cluster = Cluster::start_on_nats_cluster(&workers).await?;
    let js = jetstream::new(cluster.nats.clone());
    let mut acked = BTreeSet::new();
    eprintln!("cluster up in {:.1}s", started.elapsed().as_secs_f64());

    // All three up.
    publish_every(&js, 0..BEFORE_KILL, &mut acked).await?;
    let leader = new_submit_leader(&cluster, None).await?;
    let first = cluster
        .stack
        .cluster()?
        .index_of(&leader)
        .context("the leader is a server of ours")?;
    let done_at_kill = finished(&cluster).await?;
    let killed_at_db: time::OffsetDateTime = cluster
        .db
        .query_one("SELECT clock_timestamp()", &[])
        .await?
        .get(0);
    let killed_at = Instant::now();
    cluster.stack.cluster_mut()?.kill(first)?;
    eprintln!(
        "killed {leader}, the submission stream's leader, with {done_at_kill} of {BEFORE_KILL} tasks finished"
    );

    // One of three down: submissions are taken again once the stream has a
    // new leader, and the new tasks run.
    let (first_ack, election) = tokio::join!(
        publish_every(&js, BEFORE_KILL..BEFORE_KILL + WITH_ONE_DOWN, &mut acked),
        async {
            let successor = new_submit_leader(&cluster, Some(&leader)).await;
            (successor, killed_at.elapsed())
        }
    );
    let publish_failover = first_ack?.duration_since(killed_at);
    let (successor, elected) = election;
    let successor = successor?;
    let first_new_done: time::OffsetDateTime = wait_until(
        "a task submitted after the kill to finish",
        Duration::from_secs(60),
        || async {
            let row = cluster
                .db
                .query_one(
                    "SELECT min(finished_at) FROM tasks
                     WHERE tenant = $1 AND (labels->>'n')::int >= $2",
                    &[&TENANT, &(BEFORE_KILL as i32)],
                )
                .await?;
            Ok(row.get::<_, Option<time::OffsetDateTime>>(0))
        },
    )
    .await?;
    let run_failover = first_new_done - killed_at_db;

    // Two of three down: no majority, so no stream has a leader. A
    // submission must fail, and fast.
    let second = cluster
        .stack
        .cluster()?
        .index_of(&successor)
        .context("the new leader is a server of ours")?;
    cluster.stack.cluster_mut()?.kill(second)?;
    eprintln!("killed {successor}, the new leader: one server of three left");
    for probe in 0..3 {
        let n = TASKS + probe;
        let asked = Instant::now();
        let outcome = tokio::time::timeout(FAIL_FAST * 2, async {
            js.send_publish(subjects::SUBMIT, publish_message(n))
                .await?
                .await
        })
        .await
        .context("a submission without a majority hung")?;
        let took = asked.elapsed();
        let err = match outcome {
            Ok(ack) => {
                anyhow::bail!("a submission was acknowledged by one server of three: {ack:?}")
            }
            Err(err) => err,
        };
        eprintln!("submission with two servers down failed in {took:?}: {err}");
        assert!(
            took < FAIL_FAST,
            "a submission without a majority took {took:?} to fail ({err})"
        );
    }

    // The same through the orchestrator's request subject, as `taskyard
    // submit` does it: an error that says who could not do what, in time.
    let asked = Instant::now();
    let (code, stderr) = cli_submit(&cluster, TASKS + 10).await?;
    let took = asked.elapsed();
    eprintln!("`taskyard submit` with two servers down exited {code} in {took:?}: {stderr}");
    assert_ne!(
        code, 0,
        "`taskyard submit` succeeded without a majority: {stderr}"
    );
    assert!(
        stderr.starts_with("error: ") && stderr.contains("orchestrator"),
        "{stderr}"
    );
    assert!(
        took < CLI_FAIL_FAST,
        "`taskyard submit` took {took:?} to fail"
    );

    // Both back: the backlog and new submissions drain.
    let back = Instant::now();
    cluster.stack.cluster_mut()?.restart(first).await?;
    cluster.stack.cluster_mut()?.restart(second).await?;
    new_submit_leader(&cluster, None).await?;
    eprintln!("both servers back in {:.1}s", back.elapsed().as_secs_f64());
    publish_every(&js, BEFORE_KILL + WITH_ONE_DOWN..TASKS, &mut acked).await?;
    assert_eq!(
        acked.len(),
        TASKS,
        "every submission was acknowledged in the end"
    );
    let drained = Instant::now();
    wait_until("every task to finish", DRAIN, || async {
        let row = cluster
            .db
            .query_one(
                "SELECT count(*) FILTER (WHERE finished_at IS NOT NULL AND (labels->>'n')::int < $2),
                        count(*) FILTER (WHERE finished_at IS NULL)
                 FROM tasks WHERE tenant = $1",
                &[&TENANT, &(TASKS as i32)],
            )
            .await?;
        let (done, unfinished): (i64, i64) = (row.get(0), row.get(1));
        Ok((done == TASKS as i64 && unfinished == 0).then_some(()))
    })
    .await?;
    let drain = drained.elapsed();

    // Each acknowledged task: one row, succeeded (a noop cannot fail).
    let rows = cluster
        .db
        .query(
            "SELECT (labels->>'n')::int, count(*), array_agg(state::text)
             FROM tasks WHERE tenant = $1 GROUP BY 1",
            &[&TENANT],
        )
        .await?;
    let by_number: BTreeMap<i32, (i64, Vec<String>)> = rows
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect();
    for &n in &acked {
        let n = i32::try_from(n)?;
        match by_number.get(&n) {
            Some((1, states)) => assert_eq!(states, &["succeeded"], "task {n}"),
            Some((count, states)) => panic!("task {n} exists {count} times: {states:?}"),
            None => panic!("acknowledged task {n} was never created"),
        }
    }
    // A submission refused while two servers were down may or may not
    // exist; if it does, it exists once and ran.
    for (n, (count, states)) in by_number.range(TASKS as i32..) {
        assert_eq!(*count, 1, "probe {n}: {states:?}");
        assert!(
            states.iter().all(|s| s == "succeeded"),
            "probe {n}: {states:?}"
        );
    }

    // Each task's history: from creation (no prior state) through running,
    // every step starting where the last one ended, ending in its state.
    let broken = cluster
        .db
        .query(
            "WITH ours AS (SELECT id, state FROM tasks WHERE tenant = $1),
             steps AS (
                 SELECT e.task_id, e.from_state, e.to_state,
                        lag(e.to_state) OVER w AS before,
                        row_number() OVER w AS step,
                        count(*) OVER (PARTITION BY e.task_id) AS steps
                 FROM task_events e JOIN ours ON ours.id = e.task_id
                 WINDOW w AS (PARTITION BY e.task_id ORDER BY e.id))
             SELECT o.id::text FROM ours o
             WHERE NOT EXISTS (SELECT 1 FROM steps s
                               WHERE s.task_id = o.id AND s.step = 1 AND s.from_state IS NULL)
                OR EXISTS (SELECT 1 FROM steps s
                           WHERE s.task_id = o.id AND s.step > 1
                             AND s.from_state IS DISTINCT FROM s.before)
                OR NOT EXISTS (SELECT 1 FROM steps s
                               WHERE s.task_id = o.id AND s.step = s.steps AND s.to_state = o.state)
                OR NOT EXISTS (SELECT 1 FROM steps s
                               WHERE s.task_id = o.id AND s.to_state = 'running')",
            &[&TENANT],
        )
        .await?;
    let broken: Vec<String> = broken.iter().map(|row| row.get(0)).collect();
    assert!(
        broken.is_empty(),
        "{} tasks with a broken history, e.g. {:?}",
        broken.len(),
        &broken[..broken.len().min(5)]
    );

    // No service gave up on the way.
    for service in cluster.stack.services() {
        assert!(
            service.try_status().is_none(),
            "{} exited: {:?}",
            service.name(),
            service.try_status()
        );
    }

    eprintln!(
        "failover: new leader of the submission stream {:.1}s after the kill, first \
         submission acknowledged after {:.1}s, first new task finished after {:.1}s; \
         drained in {:.1}s after both came back; whole test {:.1}s",
        elected.as_secs_f64(),
        publish_failover.as_secs_f64(),
        run_failover.as_seconds_f64(),
        drain.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
