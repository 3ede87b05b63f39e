//! A property on the real stack: random submissions, most good and some
//! malformed in every way the generator knows (NUL characters, huge
//! numbers, far times, wrong types, unknown fields, bad batch elements),
//! published mixed together in bursts. Every good task is created and runs,
//! every bad one is rejected with a reason naming its field, no message
//! becomes a dead letter, and afterwards no service keeps spending CPU.
//!
//! The generator is seeded (`TASKYARD_FUZZ_SEED` picks another seed), so a
//! failure names a case that can be run again.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};
use std::time::Duration;
use taskyard_tests::{Cluster, WAIT, WorkerSpec, cpu_share, publish_all, wait_until_settled};

/// Rounds of submissions, each published in one burst.
const ROUNDS: usize = 4;
/// Submissions per round.
const PER_ROUND: usize = 40;

/// One submission and what must become of it.
#[derive(Debug, Clone)]
enum Expect {
    /// Every task runs and succeeds.
    Runs(Value),
    /// Every task is rejected, and the reason names this field.
    Rejected(Value, &'static str),
}

/// Text of any kind, NUL aside: emoji, right-to-left marks, zero-width
/// joiners, the last code points of a plane, combining marks.
fn text() -> impl Strategy<Value = String> {
    let edge = prop_oneof![
        Just("\u{1F600}\u{200D}\u{1F4BB}".to_owned()),
        Just("\u{202E}reversed\u{202C}".to_owned()),
        Just("\u{FEFF}\u{FFFF}\u{10FFFF}".to_owned()),
        Just("e\u{301}\u{308}".to_owned()),
        Just("\\u0000 is only text here".to_owned()),
        Just(String::new()),
    ];
    prop_oneof![any::<String>().prop_map(|s| s.replace('\0', "")), edge,]
}

/// A JSON value nested `depth` levels deep around `leaf`.
fn nested(depth: usize, leaf: Value) -> Value {
    (0..depth).fold(leaf, |inner, level| {
        if level % 2 == 0 {
            json!({ "d": inner })
        } else {
            json!([inner])
        }
    })
}

/// A task that must be accepted: no field over a limit, however odd its text.
fn good_task() -> impl Strategy<Value = Value> {
    let spec = prop_oneof![
        text().prop_map(|t| json!({ "text": t })),
        (1usize..100, text()).prop_map(|(depth, t)| nested(depth, json!(t))),
        Just(json!({"big": i64::MAX, "small": i64::MIN, "float": 1.0e300, "tiny": 5e-324})),
        prop::collection::btree_map(text(), text(), 0..5).prop_map(|m| json!(m)),
    ];
    (
        spec,
        prop::collection::btree_map("[a-z]{1,8}", text(), 0..4),
        1u32..=4000,
        1u64..=3_600_000,
        1u32..=5,
        -1000i32..=1000,
    )
        .prop_map(|(spec, labels, cpu, timeout, attempts, priority)| {
            json!({
                "kind": "echo",
                "spec": spec,
                "labels": labels,
                "resources": {"cpu_millis": cpu, "memory_mb": 16},
                "timeout_ms": timeout,
                "max_attempts": attempts,
                "priority": priority,
            })
        })
}

/// A good task spoiled in one way, with the field the refusal must name.
fn bad_task() -> impl Strategy<Value = (Value, &'static str)> {
    let spoil = prop_oneof![
        (text(), text())
            .prop_map(|(a, b)| ("spec.text", json!({"spec": {"text": format!("{a}\0{b}")}}))),
        text().prop_map(|k| ("labels", json!({"labels": {format!("{k}\0"): "v"}}))),
        text().prop_map(|n| ("name", json!({"name": format!("\0{n}")}))),
        (1u64 << 33..u64::MAX).prop_map(|n| (
            "resources.cpu_millis",
            json!({"resources": {"cpu_millis": n}})
        )),
        prop_oneof![Just(0u64), (1u64 << 40..u64::MAX)]
            .prop_map(|n| ("timeout_ms", json!({"timeout_ms": n}))),
        prop_oneof![Just(0u64), (1000u64..u64::MAX)]
            .prop_map(|n| ("max_attempts", json!({"max_attempts": n}))),
        (2100i32..=9999).prop_map(|year| (
            "run_at",
            json!({"run_at": format!("{year}-06-01T00:00:00Z")})
        )),
        (1u64 << 50..u64::MAX).prop_map(|n| ("delay_ms", json!({"delay_ms": n}))),
        Just(("labels", json!({"labels": [1, 2, 3]}))),
        Just(("priority", json!({"priority": "high"}))),
        (1i64 << 40..i64::MAX).prop_map(|n| ("priority", json!({"priority": n}))),
        Just(("resources", json!({"resources": "lots"}))),
        Just(("colour", json!({"colour": "red"}))),
        Just(("kind", json!({"kind": "teleport"}))),
    ];
    (good_task(), spoil).prop_map(|(mut task, (field, change))| {
        if let (Some(task), Some(change)) = (task.as_object_mut(), change.as_object()) {
            for (key, value) in change {
                task.insert(key.clone(), value.clone());
            }
        }
        (task, field)
    })
}

/// A round's submissions: single tasks and atomic batches, good and bad.
fn round() -> impl Strategy<Value = Vec<Expect>> {
    let one = prop_oneof![
        6 => good_task().prop_map(Expect::Runs),
        3 => bad_task().prop_map(|(task, field)| Expect::Rejected(task, field)),
        1 => (prop::collection::vec(good_task(), 1..4)).prop_map(|tasks| Expect::Runs(json!(tasks))),
        1 => (good_task(), bad_task()).prop_map(|(good, (bad, _))| Expect::Rejected(json!([good, bad]), "tasks[1]")),
    ];
    prop::collection::vec(one, PER_ROUND)
}

/// Gives every task of a submission its own tenant, the handle by which its
/// rows are found (a bad task's row keeps its tenant).
fn tagged(submission: &Value, tag: &str) -> Value {
    let mut submission = submission.clone();
    match &mut submission {
        Value::Array(tasks) => {
            for (index, task) in tasks.iter_mut().enumerate() {
                task["tenant"] = json!(format!("{tag}-{index}"));
            }
        }
        task => task["tenant"] = json!(format!("{tag}-0")),
    }
    submission
}

fn task_count(submission: &Value) -> usize {
    submission.as_array().map_or(1, Vec::len)
}

#[tokio::test]
async fn random_submissions_mixed_with_bad_ones_never_cost_a_good_one() -> anyhow::Result<()> {
    let seed: u64 = std::env::var("TASKYARD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_204);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let cluster = Cluster::start(&[WorkerSpec::new("w1"), WorkerSpec::new("w2")]).await?;

    let mut expected = Vec::new();
    for round_index in 0..ROUNDS {
        let submissions = round()
            .new_tree(&mut runner)
            .map_err(|err| anyhow::anyhow!("generating a round: {err}"))?
            .current();
        let mut payloads = Vec::with_capacity(submissions.len());
        for (index, expect) in submissions.into_iter().enumerate() {
            let tag = format!("r{round_index}s{index}");
            let (submission, outcome) = match expect {
                Expect::Runs(s) => (tagged(&s, &tag), None),
                Expect::Rejected(s, field) => (tagged(&s, &tag), Some(field)),
            };
            payloads.push(serde_json::to_vec(&submission)?);
            expected.push((tag, task_count(&submission), outcome, submission));
        }
        publish_all(&cluster, payloads).await?;
    }

    let total: usize = expected.iter().map(|(_, n, ..)| n).sum();
    cluster
        .wait_count(
            "every task to be settled",
            "SELECT count(*) FROM tasks WHERE state IN ('succeeded', 'rejected')",
            i64::try_from(total)?,
            WAIT,
        )
        .await?;
    for (tag, count, outcome, submission) in &expected {
        let rows = cluster
            .db
            .query(
                "SELECT state::text, coalesce(error, '') FROM tasks WHERE tenant LIKE $1 || '-%'",
                &[tag],
            )
            .await?;
        assert_eq!(rows.len(), *count, "{tag}: rows of {submission}");
        for row in &rows {
            let (state, error): (String, String) = (row.get(0), row.get(1));
            match outcome {
                None => assert_eq!(state, "succeeded", "{tag}: {error} for {submission}"),
                Some(field) => {
                    assert_eq!(state, "rejected", "{tag}: {submission}");
                    assert!(
                        error.contains(field),
                        "{tag}: `{error}` does not name {field}: {submission}"
                    );
                }
            }
        }
    }
    let dead: i64 = cluster
        .db
        .query_one("SELECT count(*) FROM dead_letters", &[])
        .await?
        .get(0);
    assert_eq!(dead, 0, "no message became a dead letter");

    // Nothing keeps spinning once the work is done.
    wait_until_settled(&cluster).await?;
    for service in cluster.stack.services() {
        if !service.is_running() {
            continue;
        }
        let share = cpu_share(service.pid(), Duration::from_secs(2)).await?;
        assert!(
            share < 0.15,
            "{} used {share:.2} of a core while idle",
            service.name()
        );
    }
    Ok(())
}
