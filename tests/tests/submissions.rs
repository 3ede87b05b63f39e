//! Submitting tasks: what is accepted, what is refused and why, and that a
//! task is created once however often it is sent.

use serde_json::json;
use taskyard_tests::{Cluster, WAIT, WorkerSpec};
use taskyard_wire::reply::SubmitReply;

#[tokio::test]
async fn bad_submissions_are_refused_by_name_and_the_next_good_task_runs() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;

    // Request/reply: the error names the field.
    let cases = [
        (
            json!({"kind": "noop", "colour": "red"}),
            "colour",
            "unknown field `colour`",
        ),
        (
            json!({"kind": "teleport"}),
            "kind",
            "unknown variant `teleport`",
        ),
        (
            json!({"kind": "echo", "spec": {"blob": "x".repeat(70_000)}}),
            "spec",
            "the limit is 65536 bytes",
        ),
        (
            json!({"kind": "noop", "resources": {"cpu_millis": -1}}),
            "resources.cpu_millis",
            "invalid value",
        ),
    ];
    for (body, field, message) in &cases {
        match cluster.submit(body).await? {
            SubmitReply::Refused { error } => {
                assert_eq!(&error.field, field, "{error}");
                assert!(error.message.contains(message), "{error}");
            }
            SubmitReply::Accepted { ids, .. } => panic!("{body} was accepted as {ids:?}"),
        }
    }
    let reply = cluster
        .nats
        .request(taskyard_wire::subjects::API_SUBMIT, "{not json".into())
        .await?;
    let reply: SubmitReply = serde_json::from_slice(&reply.payload)?;
    assert!(
        matches!(reply, SubmitReply::Refused { ref error } if error.message.starts_with("not valid JSON")),
        "{reply:?}"
    );

    // The stream path: garbage is terminated and never blocks what follows.
    cluster
        .publish(&b"\x00\x01 definitely not json"[..], None)
        .await?;
    cluster
        .publish(
            serde_json::to_vec(&json!({"kind": "noop", "colour": "red", "tenant": "stream"}))?,
            None,
        )
        .await?;
    cluster
        .publish(
            serde_json::to_vec(&json!({"kind": "teleport", "tenant": "stream"}))?,
            None,
        )
        .await?;
    cluster
        .publish(
            serde_json::to_vec(
                &json!({"kind": "echo", "spec": {"hello": "after"}, "idempotency_key": "good-one"}),
            )?,
            None,
        )
        .await?;
    let good = cluster
        .wait_count(
            "the good task to succeed",
            "SELECT count(*) FROM tasks WHERE idempotency_key = 'good-one' AND state = 'succeeded'",
            1,
            WAIT,
        )
        .await?;
    assert_eq!(good, 1);
    let rejected = cluster
        .db
        .query(
            "SELECT kind, error FROM tasks WHERE tenant = 'stream' AND state = 'rejected' ORDER BY kind",
            &[],
        )
        .await?;
    let rejected: Vec<(String, String)> = rejected.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[0].0, "noop");
    assert!(
        rejected[0].1.starts_with("colour: unknown field `colour`"),
        "{rejected:?}"
    );
    assert_eq!(rejected[1].0, "teleport");
    assert!(
        rejected[1]
            .1
            .starts_with("kind: unknown variant `teleport`"),
        "{rejected:?}"
    );
    // Every rejection has its one history row.
    let events: i64 = cluster
        .db
        .query_one(
            "SELECT count(*) FROM task_events e JOIN tasks t ON t.id = e.task_id \
             WHERE t.tenant = 'stream' AND e.to_state = 'rejected' AND e.reason IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(events, 2);
    Ok(())
}

#[tokio::test]
async fn a_batch_with_one_bad_task_creates_none_of_its_tasks() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let batch = json!([
        {"kind": "noop", "tenant": "batch"},
        {"kind": "sleep", "spec": {"ms": "soon"}, "tenant": "batch"},
        {"kind": "noop", "tenant": "batch"}
    ]);
    match cluster.submit(&batch).await? {
        SubmitReply::Refused { error } => assert_eq!(error.field, "tasks[1].spec.ms"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    cluster.publish(serde_json::to_vec(&batch)?, None).await?;
    // Both submissions are recorded, as rejected rows only.
    cluster
        .wait_count(
            "both batches to be recorded",
            "SELECT count(*) FROM tasks WHERE tenant = 'batch'",
            6,
            WAIT,
        )
        .await?;
    // Give a wrongly created task the time to be scheduled before looking.
    let ids = cluster.submit_ok(&json!({"kind": "noop"})).await?;
    cluster.wait_final(ids[0]).await?;
    let states = cluster
        .db
        .query(
            "SELECT state::text, error FROM tasks WHERE tenant = 'batch'",
            &[],
        )
        .await?;
    assert_eq!(states.len(), 6);
    for row in &states {
        let state: String = row.get(0);
        let error: String = row.get(1);
        assert_eq!(state, "rejected");
        assert!(error.contains("tasks[1].spec.ms"), "{error}");
    }
    Ok(())
}

#[tokio::test]
async fn the_same_task_is_created_once() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    // The same idempotency key through request/reply: one id, twice.
    let task = json!({"kind": "echo", "spec": {"n": 1}, "idempotency_key": "report-2026-11-24"});
    let first = cluster.submit_ok(&task).await?;
    let second = cluster.submit_ok(&task).await?;
    assert_eq!(first, second);
    // And through the stream.
    cluster.publish(serde_json::to_vec(&task)?, None).await?;
    // The same message id twice: the stream keeps one.
    let once = json!({"kind": "noop", "tenant": "dedup"});
    cluster
        .publish(serde_json::to_vec(&once)?, Some("msg-1"))
        .await?;
    cluster
        .publish(serde_json::to_vec(&once)?, Some("msg-1"))
        .await?;
    // A client-chosen id twice.
    let id = uuid::Uuid::now_v7();
    let with_id = json!({"id": id, "kind": "noop", "tenant": "by-id"});
    cluster.publish(serde_json::to_vec(&with_id)?, None).await?;
    assert_eq!(cluster.submit_ok(&with_id).await?, vec![id]);

    cluster.wait_final(first[0]).await?;
    cluster.wait_final(id).await?;
    cluster
        .wait_count(
            "the deduplicated task",
            "SELECT count(*) FROM tasks WHERE tenant = 'dedup' AND finished_at IS NOT NULL",
            1,
            WAIT,
        )
        .await?;
    // A marker published last: once it is done, everything before it is recorded.
    let marker = cluster.submit_ok(&json!({"kind": "noop"})).await?;
    cluster.wait_final(marker[0]).await?;
    // And nothing is left in any stream that could still add a row.
    taskyard_tests::wait_until_settled(&cluster).await?;
    let counts = cluster
        .db
        .query_one(
            "SELECT count(*) FILTER (WHERE idempotency_key = 'report-2026-11-24'), \
                    count(*) FILTER (WHERE tenant = 'dedup'), \
                    count(*) FILTER (WHERE tenant = 'by-id') FROM tasks",
            &[],
        )
        .await?;
    assert_eq!(
        (
            counts.get::<_, i64>(0),
            counts.get::<_, i64>(1),
            counts.get::<_, i64>(2)
        ),
        (1, 1, 1)
    );
    Ok(())
}

#[tokio::test]
async fn a_large_batch_on_the_stream_creates_every_task() -> anyhow::Result<()> {
    // Tasks without ids get ids derived from their message; a batch of a
    // thousand must still get a thousand distinct ones.
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let batch: Vec<serde_json::Value> = (0..1000)
        .map(|i| json!({"kind": "noop", "tenant": "large", "resources": {"cpu_millis": 0, "memory_mb": 0}, "labels": {"i": i.to_string()}}))
        .collect();
    cluster.publish(serde_json::to_vec(&batch)?, None).await?;
    let done = cluster
        .wait_count(
            "every task of the batch to succeed",
            "SELECT count(*) FROM tasks WHERE tenant = 'large' AND state = 'succeeded'",
            1000,
            WAIT,
        )
        .await?;
    assert_eq!(done, 1000);
    let distinct: i64 = cluster
        .db
        .query_one(
            "SELECT count(DISTINCT labels->>'i') FROM tasks WHERE tenant = 'large'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(distinct, 1000);
    Ok(())
}

/// Requests that arrive together are recorded in one statement (one
/// commit), yet each gets its own answer: its tasks' ids, or the refusal
/// of its own submission, and a refused one costs the others nothing.
#[tokio::test]
async fn concurrent_requests_share_a_statement_and_each_gets_its_own_answer() -> anyhow::Result<()>
{
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let bodies: Vec<serde_json::Value> = (0..48)
        .map(|i| match i {
            7 => json!({"kind": "noop", "pool": "nowhere"}),
            19 => json!({"kind": "noop", "colour": "red"}),
            31 => json!([{"kind": "noop", "name": "a"}, {"kind": "noop", "name": "b"}]),
            _ => json!({"kind": "noop", "name": format!("t{i}")}),
        })
        .collect();
    let answers = futures::future::join_all(bodies.iter().map(|body| cluster.submit(body))).await;
    let mut accepted = Vec::new();
    for (i, answer) in answers.into_iter().enumerate() {
        match (i, answer?) {
            (7, SubmitReply::Refused { error }) => {
                assert!(error.message.contains("nowhere"), "{error}")
            }
            (19, SubmitReply::Refused { error }) => assert_eq!(error.field, "colour"),
            (31, SubmitReply::Accepted { ids, .. }) => {
                assert_eq!(ids.len(), 2);
                accepted.extend(ids.into_iter().zip(["a".to_owned(), "b".to_owned()]));
            }
            (i, SubmitReply::Accepted { ids, .. }) if i != 7 && i != 19 => {
                assert_eq!(ids.len(), 1);
                accepted.push((ids[0], format!("t{i}")));
            }
            (i, other) => anyhow::bail!("submission {i}: unexpected answer {other:?}"),
        }
    }
    assert_eq!(accepted.len(), 47);
    // Each id is the task its own request sent.
    for (id, name) in &accepted {
        let row = cluster
            .db
            .query_one("SELECT name FROM tasks WHERE id = $1", &[id])
            .await?;
        assert_eq!(&row.get::<_, String>(0), name);
    }
    // Tasks of different requests were created by one statement: they share
    // its transaction's time.
    let statements: i64 = cluster
        .db
        .query_one(
            "SELECT count(DISTINCT created_at) FROM tasks WHERE name LIKE 't%'",
            &[],
        )
        .await?
        .get(0);
    assert!(
        statements < 45,
        "45 one-task requests took {statements} statements: none were recorded together"
    );
    for (id, _) in &accepted {
        assert_eq!(cluster.wait_final(*id).await?, "succeeded");
    }
    Ok(())
}
