//! The demo workload of `taskyard up --demo`: a steady, mixed stream of
//! tasks from two tenants, so a newcomer sees the console move.

use rand::Rng;
use serde_json::{Value, json};
use std::time::Duration;
use taskyard_wire::reply::SubmitReply;

/// Time between two demo batches.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// One batch of demo tasks.
pub fn batch(round: u64) -> Value {
    let mut rng = rand::rng();
    let count = rng.random_range(3..8);
    let tasks: Vec<Value> = (0..count)
        .map(|i| {
            let tenant = if rng.random_bool(0.6) { "analytics" } else { "billing" };
            let cpu = [100, 250, 500, 1000][rng.random_range(0..4)];
            let memory = [64, 128, 256, 512][rng.random_range(0..4)];
            let resources = json!({"cpu_millis": cpu, "memory_mb": memory});
            match rng.random_range(0..10) {
                0..=3 => json!({
                    "kind": "sleep", "spec": {"ms": rng.random_range(200..3000)},
                    "tenant": tenant, "resources": resources, "labels": {"demo": "sleep"}
                }),
                4..=6 => json!({
                    "kind": "exec", "tenant": tenant, "resources": resources, "timeout_ms": 30000,
                    "spec": {"command": "sh", "args": ["-c",
                        format!("echo \"processing item {round}-{i}\"; sleep 0.$((RANDOM % 9 + 1)); echo done")]},
                    "labels": {"demo": "exec"}
                }),
                7 | 8 => json!({
                    "kind": "echo", "spec": {"round": round, "item": i}, "tenant": tenant,
                    "labels": {"demo": "echo"}
                }),
                _ => json!({
                    "kind": "fail", "spec": {"message": "demo failure (retried once)"},
                    "tenant": tenant, "max_attempts": 2, "labels": {"demo": "fail"}
                }),
            }
        })
        .collect();
    Value::Array(tasks)
}

/// Submits a batch every [`INTERVAL`] until cancelled.
pub async fn run(nats: async_nats::Client) {
    let mut round = 0u64;
    let mut warned = false;
    loop {
        round += 1;
        let body = batch(round);
        let payload = serde_json::to_vec(&body).unwrap_or_default();
        let outcome = tokio::time::timeout(
            Duration::from_secs(10),
            nats.request(taskyard_wire::subjects::API_SUBMIT, payload.into()),
        )
        .await;
        match outcome {
            Ok(Ok(reply)) => match serde_json::from_slice::<SubmitReply>(&reply.payload) {
                Ok(SubmitReply::Refused { error }) => eprintln!("demo batch refused: {error}"),
                Ok(SubmitReply::Accepted { .. }) => warned = false,
                Err(err) => eprintln!("demo: unexpected reply: {err}"),
            },
            _ if !warned => {
                eprintln!("demo: the orchestrator is not answering yet; still trying");
                warned = true;
            }
            _ => {}
        }
        tokio::time::sleep(INTERVAL).await;
    }
}
