//! The `taskyard` binary against a real NATS and Postgres, with the API
//! served in-process and a stand-in orchestrator where one is needed.

mod support;

use futures::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use support::{AuthMode, Env, stderr, stdout};
use taskyard_store::tasks::TaskInsert;
use taskyard_wire::event::{TaskEvent, TaskEventBatch};
use taskyard_wire::{TaskState, codec, subjects};
use uuid::Uuid;

impl Env {
    async fn insert(&self, state: TaskState, error: Option<&str>) -> Uuid {
        let id = Uuid::now_v7();
        let task = TaskInsert {
            state,
            error: error.map(str::to_owned),
            kind: "noop".to_owned(),
            spec: Value::Null,
            ..TaskInsert::rejected(
                id,
                "default".to_owned(),
                String::new(),
                Value::Null,
                "default".to_owned(),
                String::new(),
            )
        };
        self.store
            .insert_tasks(&[task])
            .await
            .expect("insert a fixture");
        id
    }

    /// Answers the next submission with `reply`, after publishing `events`
    /// (before the reply, as a fast orchestrator may).
    async fn orchestrator(&self, reply: Value, events: Vec<(Uuid, TaskState)>) {
        let client = self.nats.clone();
        let mut requests = client
            .subscribe(subjects::API_SUBMIT)
            .await
            .expect("subscribe to submissions");
        client.flush().await.expect("flush");
        tokio::spawn(async move {
            let Some(request) = requests.next().await else {
                return;
            };
            for (task_id, state) in events {
                let batch = TaskEventBatch {
                    events: vec![TaskEvent {
                        task_id,
                        pool: "default".to_owned(),
                        attempt: 1,
                        state,
                        from: Some(TaskState::Running),
                        node_id: Some("node-1".to_owned()),
                        reason: (state != TaskState::Succeeded).then(|| "it broke".to_owned()),
                        at: taskyard_wire::now(),
                        request: None,
                    }],
                };
                let subject = subjects::task_event(state);
                let _ = client.publish(subject, codec::encode(&batch).into()).await;
            }
            if let Some(inbox) = request.reply {
                let _ = client.publish(inbox, codec::encode(&reply).into()).await;
            }
            let _ = client.flush().await;
        });
    }
}

#[tokio::test]
async fn reads_tasks_and_nodes_from_the_api() {
    let env = Env::start(AuthMode::Off).await;
    let id = env.insert(TaskState::Rejected, Some("bad <spec>")).await;

    let tasks = env.taskyard(&["tasks", "--state", "rejected"]).await;
    assert!(tasks.status.success(), "{}", stderr(&tasks));
    let text = stdout(&tasks);
    assert!(text.starts_with("ID "), "{text}");
    assert!(
        text.contains(&id.to_string()) && text.contains("rejected"),
        "{text}"
    );

    let task = env.taskyard(&["task", &id.to_string()]).await;
    assert!(task.status.success(), "{}", stderr(&task));
    let text = stdout(&task);
    assert!(text.contains("bad <spec>"), "{text}");
    assert!(text.contains("history"), "{text}");

    let nodes = env.taskyard(&["nodes"]).await;
    assert!(nodes.status.success(), "{}", stderr(&nodes));
    assert!(stderr(&nodes).contains("no nodes"));
}

#[tokio::test]
async fn api_errors_are_shown_as_their_message() {
    let env = Env::start(AuthMode::Off).await;
    let bad = env.taskyard(&["task", "bogus"]).await;
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        stderr(&bad).trim(),
        "error: `bogus` is not a task id (a UUID)"
    );

    let missing = env.taskyard(&["task", &Uuid::now_v7().to_string()]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no task has the id"),
        "{}",
        stderr(&missing)
    );

    let unreachable = env
        .taskyard(&["tasks", "--api-url", "http://127.0.0.1:1"])
        .await;
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(
        stderr(&unreachable)
            .contains("cannot reach the API at http://127.0.0.1:1 (is `taskyard up` running?)"),
        "{}",
        stderr(&unreachable)
    );
}

#[tokio::test]
async fn a_submission_without_an_orchestrator_fails() {
    let env = Env::start(AuthMode::Off).await;
    let output = env.taskyard(&["submit", "--kind", "noop"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no orchestrator is listening on taskyard.api.submit"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn a_refusal_names_the_field() {
    let env = Env::start(AuthMode::Off).await;
    let refusal = json!({"error": {"field": "spec.ms", "message": "missing field `ms`"}});
    env.orchestrator(refusal, vec![]).await;
    let output = env.taskyard(&["submit", "--kind", "sleep"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output).trim(), "error: spec.ms: missing field `ms`");
}

#[tokio::test]
async fn wait_counts_events_and_exits_2_when_some_failed() {
    let env = Env::start(AuthMode::Off).await;
    let (good, bad) = (Uuid::now_v7(), Uuid::now_v7());
    env.orchestrator(
        json!({"ids": [good, bad]}),
        vec![
            (good, TaskState::Running),
            (good, TaskState::Succeeded),
            (bad, TaskState::Failed),
            (bad, TaskState::Failed),
        ],
    )
    .await;
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        env.taskyard(&["submit", "--kind", "noop", "--count", "2", "--wait"]),
    )
    .await
    .expect("the wait ends");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{good}\n{bad}\n"));
    let err = stderr(&output);
    assert!(err.contains(&format!("{bad}  failed  it broke")), "{err}");
    assert!(err.contains("1 succeeded, 1 failed of 2"), "{err}");
}

#[tokio::test]
async fn wait_reconciles_through_the_api_when_events_are_missed() {
    let env = Env::start(AuthMode::Off).await;
    // Terminal in the database, but no event is ever published.
    let id = env.insert(TaskState::Rejected, Some("refused")).await;
    env.orchestrator(json!({"ids": [id]}), vec![]).await;
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        env.taskyard(&["submit", "--kind", "noop", "--wait", "--wait-timeout", "20"]),
    )
    .await
    .expect("the wait ends");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains(&format!("{id}  rejected  refused")), "{err}");
}

#[tokio::test]
async fn wait_gives_up_after_its_timeout() {
    let env = Env::start(AuthMode::Off).await;
    let id = env.insert(TaskState::Queued, None).await;
    env.orchestrator(json!({"ids": [id]}), vec![]).await;
    let output = env
        .taskyard(&["submit", "--kind", "noop", "--wait", "--wait-timeout", "1"])
        .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("1 unfinished of 1"),
        "{}",
        stderr(&output)
    );
}

impl Env {
    /// Answers every request on `subject` (a wildcard) with `answer(op, body)`.
    async fn stand_in<F>(&self, subject: &str, mut answer: F)
    where
        F: FnMut(&str, Value) -> Value + Send + 'static,
    {
        let client = self.nats.clone();
        let mut requests = client
            .subscribe(subject.to_owned())
            .await
            .expect("subscribe to requests");
        client.flush().await.expect("flush");
        tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let op = request
                    .subject
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let body = serde_json::from_slice(&request.payload).unwrap_or(Value::Null);
                let reply = answer(&op, body);
                if let Some(inbox) = request.reply {
                    let _ = client.publish(inbox, codec::encode(&reply).into()).await;
                }
            }
        });
    }
}

#[tokio::test]
async fn pools_are_changed_through_the_pool_manager() {
    let env = Env::start(AuthMode::Off).await;
    let mut stored: Option<Value> = None;
    env.stand_in("taskyard.api.pools.*", move |op, body| match op {
        "create" | "update" => {
            stored = Some(body.clone());
            json!({"pool": body})
        }
        "get" if body["name"] == "gpu" => match &stored {
            Some(pool) => json!({"pool": pool}),
            None => json!({"error": {"field": "name", "message": "no pool named `gpu`"}}),
        },
        "list" => json!({"pools": stored.iter().collect::<Vec<_>>()}),
        _ => json!({"error": {"field": "name", "message": format!("no pool named {}", body["name"])}}),
    })
    .await;

    let created = env
        .taskyard(&[
            "pool",
            "create",
            "gpu",
            "--selector",
            "gpu=a100",
            "--max-running",
            "4",
        ])
        .await;
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(
        stderr(&created).contains("created pool gpu"),
        "{}",
        stderr(&created)
    );
    assert!(
        stdout(&created).contains("gpu=a100"),
        "{}",
        stdout(&created)
    );

    // Update fetches the pool and keeps what no flag names.
    let updated = env
        .taskyard(&["pool", "update", "gpu", "--placement", "spread"])
        .await;
    assert!(updated.status.success(), "{}", stderr(&updated));
    let text = stdout(&updated);
    assert!(
        text.contains("spread") && text.contains("gpu=a100"),
        "{text}"
    );

    let list = env.taskyard(&["pools"]).await;
    assert!(list.status.success(), "{}", stderr(&list));
    assert!(stdout(&list).starts_with("NAME "), "{}", stdout(&list));

    let missing = env.taskyard(&["pool", "show", "cpu"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stderr(&missing).trim(),
        "error: name: no pool named \"cpu\""
    );
}

#[tokio::test]
async fn node_commands_and_services_talk_nats_directly() {
    let env = Env::start(AuthMode::Off).await;
    let nobody = env.taskyard(&["node", "drain", "node-1"]).await;
    assert_eq!(nobody.status.code(), Some(1));
    assert!(
        stderr(&nobody).contains("no resource manager is listening on taskyard.api.nodes.drain"),
        "{}",
        stderr(&nobody)
    );

    env.stand_in("taskyard.api.nodes.*", |op, body| match op {
        "remove" => {
            json!({"error": {"field": "node_id", "message": "node-1 is alive and not drained"}})
        }
        _ => json!({"node_id": body["node_id"], "health": "alive", "cordoned": true,
                    "draining": op == "drain", "removed": false}),
    })
    .await;
    let drained = env.taskyard(&["node", "drain", "node-1"]).await;
    assert!(drained.status.success(), "{}", stderr(&drained));
    assert_eq!(
        stdout(&drained),
        "ID      HEALTH  CORDONED  DRAINING  REMOVED\nnode-1  alive   yes       yes       no\n"
    );
    let refused = env.taskyard(&["node", "remove", "node-1"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused).trim(),
        "error: node_id: node-1 is alive and not drained"
    );

    let _service = taskyard_runtime::micro::register(&env.nats, "scheduler", "test")
        .await
        .expect("register");
    let services = env.taskyard(&["services"]).await;
    assert!(services.status.success(), "{}", stderr(&services));
    let text = stdout(&services);
    assert!(
        text.starts_with("NAME ") && text.contains("taskyard-scheduler"),
        "{text}"
    );
}
