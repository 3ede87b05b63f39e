//! The demo workload of `taskyard up --demo`: a steady, mixed stream of
//! tasks from two tenants, so a newcomer sees the console move.

use rand::Rng;
use serde_json::{Value, json};
use std::time::Duration;
use taskyard_client::ClientError;
use taskyard_wire::codec;

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

/// Every this many rounds the demo also submits a small workflow, so the
/// workflows page has a DAG to show (and, now and then, a saga rolled back).
pub const WORKFLOW_EVERY: u64 = 10;

/// A four-step workflow: two bookings in parallel, then a check, then an
/// invoice. Every third one's check fails, so its bookings are compensated.
pub fn workflow(round: u64) -> Value {
    let check = if round.is_multiple_of(3) {
        json!({"name": "check", "kind": "fail", "spec": {"message": "demo: the card was declined"},
               "depends_on": ["flight", "hotel"]})
    } else {
        json!({"name": "check", "kind": "sleep", "spec": {"ms": 500}, "depends_on": ["flight", "hotel"]})
    };
    json!({
        "workflow": format!("demo-trip-{round}"),
        "tasks": [
            {"name": "flight", "kind": "sleep", "spec": {"ms": 800}, "tenant": "billing",
             "compensation": {"kind": "echo", "spec": {"cancel": "flight"}}},
            {"name": "hotel", "kind": "exec", "tenant": "billing",
             "spec": {"command": "sh", "args": ["-c", "echo booking hotel; sleep 0.5; echo booked"]},
             "compensation": {"kind": "echo", "spec": {"cancel": "hotel"}}},
            check,
            {"name": "invoice", "kind": "echo", "spec": {"trip": round}, "depends_on": ["check"]}
        ]
    })
}

/// Submits a batch every [`INTERVAL`] until cancelled.
pub async fn run(nats: async_nats::Client) {
    let client = taskyard_client::Client::new(nats);
    let mut round = 0u64;
    let mut warned = false;
    loop {
        round += 1;
        let body = if round % WORKFLOW_EVERY == 1 {
            workflow(round)
        } else {
            batch(round)
        };
        match client.submit(codec::encode(&body)).await {
            Ok(_) => warned = false,
            Err(ClientError::Refused(error)) => eprintln!("demo batch refused: {error}"),
            Err(err) if err.is_unavailable() => {
                if !warned {
                    eprintln!("demo: the orchestrator is not answering yet; still trying");
                    warned = true;
                }
            }
            Err(err) => eprintln!("demo: {err}"),
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskyard_wire::task::{Limits, Parsed, read_submission};

    fn check(body: &Value) -> Option<String> {
        let bytes = serde_json::to_vec(body).expect("json");
        let read = read_submission(&bytes, &Limits::default());
        match read.parsed {
            Parsed::Valid(tasks) => {
                assert!(!tasks.is_empty());
                read.workflow
            }
            Parsed::Invalid { rejection, .. } => panic!("refused: {rejection} in {body}"),
            Parsed::Unreadable(rejection) => panic!("unreadable: {rejection}"),
        }
    }

    #[test]
    fn every_demo_submission_is_one_the_orchestrator_accepts() {
        for round in 1..200 {
            assert_eq!(check(&batch(round)), None);
        }
        for round in [1, 3] {
            assert_eq!(check(&workflow(round)), Some(format!("demo-trip-{round}")));
        }
    }
}
