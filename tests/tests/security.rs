//! The bus enforces who may do what (`taskyard_runtime::access`), on a real
//! nats-server with the generated authorization config: no credential, no
//! connection; a revoked one is refused at its next connect; a worker
//! speaks only for its own node; a submitter only submits. Each forbidden
//! act is answered with the server's permission error, and the task it
//! tried to forge is unchanged.

use serde_json::json;
use std::time::Duration;
use taskyard_runtime::access::Kind;
use taskyard_runtime::streams;
use taskyard_testkit::TestStack;
use taskyard_tests::{Cluster, WorkerSpec};
use taskyard_wire::subjects;
use tokio::sync::mpsc;
use uuid::Uuid;

/// How long the server may take to answer a forbidden act with an error.
const ANSWER: Duration = Duration::from_secs(5);

/// A client connected as one identity, with the server's error messages
/// (`-ERR 'Permissions Violation ...'`) collected as they come.
struct As {
    client: async_nats::Client,
    errors: mpsc::UnboundedReceiver<String>,
}

impl As {
    async fn connect(stack: &TestStack, name: &str, kind: Kind) -> anyhow::Result<As> {
        let security = stack.security_of(name, kind)?;
        let (addrs, options) = security.connect_options(&stack.nats_url)?;
        let (tx, errors) = mpsc::unbounded_channel();
        let client = options
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    if let async_nats::Event::ServerError(err) = event {
                        let _ = tx.send(err.to_string());
                    }
                }
            })
            .connect(addrs)
            .await?;
        Ok(As { client, errors })
    }

    /// Waits for the server's permission error naming `subject`.
    async fn refused(&mut self, what: &str, subject: &str) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + ANSWER;
        loop {
            let error = tokio::time::timeout_at(deadline, self.errors.recv())
                .await
                .map_err(|_| anyhow::anyhow!("{what}: no permission error within {ANSWER:?}"))?
                .ok_or_else(|| anyhow::anyhow!("{what}: the connection closed"))?;
            if error.to_lowercase().contains("permissions violation") && error.contains(subject) {
                return Ok(error);
            }
        }
    }

    /// Publishes `payload` on `subject` and expects the server to refuse it.
    async fn publish_refused(&mut self, subject: &str, payload: &str) -> anyhow::Result<()> {
        self.client
            .publish(subject.to_owned(), payload.to_owned().into())
            .await?;
        self.client.flush().await?;
        self.refused(&format!("publish on {subject}"), subject)
            .await
            .map(drop)
    }

    /// Sends a request on `subject` and expects a permission error, not an
    /// answer.
    async fn request_refused(&mut self, subject: &str, payload: &str) -> anyhow::Result<()> {
        let client = self.client.clone();
        let request = client.request(subject.to_owned(), payload.to_owned().into());
        let what = format!("request on {subject}");
        // The request itself only times out or finds no responder: the
        // server drops what it may not carry and says so on the side.
        tokio::select! {
            refused = self.refused(&what, subject) => refused.map(drop),
            answer = request => match answer {
                Ok(message) => anyhow::bail!(
                    "request on {subject} was answered: {}",
                    String::from_utf8_lossy(&message.payload)
                ),
                // No responder or a timeout: the refusal may still be on
                // its way.
                Err(_) => self.refused(&what, subject).await.map(drop),
            },
        }
    }
}

#[tokio::test]
async fn no_credential_no_connection_and_a_revoked_one_is_cut_off_and_refused() -> anyhow::Result<()>
{
    let stack = TestStack::start().await?;
    let open = tokio::time::timeout(ANSWER, async_nats::connect(stack.nats_url.as_str())).await?;
    let err = open.expect_err("a connection without credentials got in");
    assert!(
        err.to_string()
            .to_lowercase()
            .contains("authorization violation"),
        "{err}"
    );

    let alice = As::connect(&stack, "alice", Kind::Operator).await?;
    alice.client.flush().await?;
    stack.revoke("alice")?;
    // The server drops a connection whose credential is gone at the reload.
    taskyard_testkit::wait_until("alice's open connection to be dropped", ANSWER, || async {
        Ok(
            (alice.client.connection_state() != async_nats::connection::State::Connected)
                .then_some(()),
        )
    })
    .await?;
    let security = taskyard_runtime::nats::NatsSecurity {
        nkey_file: Some(stack.seed_file("alice")),
        ..Default::default()
    };
    let again = stack.nats_client_as(&security).await;
    let err = again.expect_err("a revoked credential connected again");
    assert!(
        format!("{err:#}")
            .to_lowercase()
            .contains("authorization violation"),
        "{err:#}"
    );
    Ok(())
}

#[tokio::test]
async fn a_worker_speaks_only_for_its_own_node() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w2")]).await?;
    let ids = cluster
        .submit_ok(&json!({"kind": "sleep", "spec": {"ms": 60000}}))
        .await?;
    let task = ids[0];
    cluster.wait_state(task, "running").await?;
    let history_before = cluster.trail(task).await?;

    // w1 is a worker of the cluster, with its own credential, that turns
    // against w2's task.
    let w1 = Kind::parse("worker", Some("w1"), &[])?;
    let mut w1 = As::connect(&cluster.stack, "worker-w1", w1).await?;
    let forged = |node: &str| {
        json!({
            "type": "finished", "task_id": task, "attempt": 1, "node_id": node,
            "outcome": "succeeded", "result": {"forged": true},
            "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z"
        })
        .to_string()
    };
    w1.publish_refused(&subjects::status("w2"), &forged("w2"))
        .await?;
    w1.publish_refused(
        &subjects::task_event(taskyard_wire::TaskState::Succeeded),
        &json!({"task_id": task}).to_string(),
    )
    .await?;
    w1.publish_refused(&subjects::heartbeat("w2"), "{}").await?;
    let next = format!(
        "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
        streams::DISPATCH,
        streams::worker_consumer("w2")
    );
    w1.publish_refused(&next, r#"{"batch": 1}"#).await?;
    for api in [
        format!("$JS.API.STREAM.DELETE.{}", streams::DISPATCH),
        format!("$JS.API.STREAM.PURGE.{}", streams::STATUS),
        format!(
            "$JS.API.CONSUMER.DELETE.{}.{}",
            streams::DISPATCH,
            streams::worker_consumer("w2")
        ),
    ] {
        w1.request_refused(&api, "").await?;
    }
    w1.request_refused(&subjects::api_pools("delete"), r#"{"name": "default"}"#)
        .await?;
    w1.request_refused(subjects::API_CANCEL, &json!({"task_id": task}).to_string())
        .await?;
    let _ = w1.client.subscribe(subjects::dispatch("w2")).await?;
    w1.client.flush().await?;
    w1.refused("subscribe to w2's dispatches", &subjects::dispatch("w2"))
        .await?;
    // On its own subject, a report about w2's task is dropped by the pool
    // manager: the subject, not the body, says who sent it.
    w1.client
        .publish(subjects::status("w1"), forged("w2").into())
        .await?;
    w1.client.flush().await?;

    // The pool manager reads the status stream in order, so once it has
    // counted the forged report on w1's own subject (the last one sent), it
    // has acted on anything that got through before it.
    let addr = cluster
        .metrics
        .get("pool-manager")
        .ok_or_else(|| anyhow::anyhow!("the pool manager's metrics address"))?
        .clone();
    taskyard_testkit::wait_until(
        "the pool manager to count the report it dropped",
        taskyard_tests::WAIT,
        || async {
            let metrics = reqwest::get(format!("http://{addr}/metrics"))
                .await?
                .text()
                .await?;
            Ok(metrics
                .lines()
                .any(|line| {
                    line.starts_with("taskyard_wrong_node_messages_total{")
                        && line.ends_with(r#"kind="status"} 1"#)
                })
                .then_some(()))
        },
    )
    .await?;
    assert_eq!(cluster.state(task).await?.as_deref(), Some("running"));
    assert_eq!(cluster.trail(task).await?, history_before);
    cluster.cancel(task, "test over").await?;
    Ok(())
}

#[tokio::test]
async fn a_submitter_submits_and_may_do_nothing_else() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let mut submitter = As::connect(&cluster.stack, "shop", Kind::Submitter).await?;

    // The request path: the orchestrator answers with the ids.
    let reply = tokio::time::timeout(
        ANSWER,
        submitter.client.request(
            subjects::API_SUBMIT,
            json!({"kind": "noop"}).to_string().into(),
        ),
    )
    .await??;
    let answer: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    let id: Uuid = serde_json::from_value(answer["ids"][0].clone())
        .map_err(|err| anyhow::anyhow!("no id in {answer}: {err}"))?;
    assert_eq!(cluster.wait_final(id).await?, "succeeded");

    // The publish path: a plain publish lands in the submission stream.
    let key = format!("submitter-{}", Uuid::now_v7());
    submitter
        .client
        .publish(
            subjects::SUBMIT,
            json!({"kind": "noop", "idempotency_key": key})
                .to_string()
                .into(),
        )
        .await?;
    submitter.client.flush().await?;
    taskyard_testkit::wait_until("the published task", taskyard_tests::WAIT, || async {
        let row = cluster
            .db
            .query_opt(
                "SELECT state::text FROM tasks WHERE idempotency_key = $1",
                &[&key],
            )
            .await?;
        match row.map(|row| row.get::<_, String>(0)).as_deref() {
            Some("succeeded") => Ok(Some(())),
            _ => Ok(None),
        }
    })
    .await?;

    submitter
        .request_refused(subjects::API_CANCEL, &json!({"task_id": id}).to_string())
        .await?;
    submitter
        .request_refused(&subjects::api_pools("list"), "{}")
        .await?;
    submitter
        .request_refused(&subjects::api_nodes("drain"), r#"{"node_id": "w1"}"#)
        .await?;
    submitter
        .publish_refused(&subjects::status("w1"), "{}")
        .await?;
    submitter
        .request_refused("$JS.API.STREAM.DELETE.TASKYARD_SUBMIT", "")
        .await?;
    let _ = submitter.client.subscribe(subjects::dispatch("w1")).await?;
    submitter.client.flush().await?;
    submitter
        .refused("subscribe to dispatches", &subjects::dispatch("w1"))
        .await?;
    assert_eq!(cluster.state(id).await?.as_deref(), Some("succeeded"));
    let pools = cluster.pools("list", &json!({})).await;
    assert!(pools.is_ok(), "the operator side still works: {pools:?}");
    Ok(())
}
