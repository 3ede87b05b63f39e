//! Who did this: a change records who asked for it, in the same statement
//! as its history row. A REST caller is its token's name; a NATS client of
//! the `CLIENTS` account is the credential the server names in
//! `Nats-Request-Info`, whatever its body claims.

use anyhow::Context;
use serde_json::json;
use taskyard_client::Client;
use taskyard_runtime::access::Kind;
use taskyard_store::Store;
use taskyard_store::credentials::NewCredential;
use taskyard_store::tokens::Role;
use taskyard_tests::{Cluster, WorkerSpec};
use taskyard_wire::subjects;
use uuid::Uuid;

/// A task that stays live (pending for a minute) until cancelled.
async fn waiting_task(cluster: &Cluster) -> anyhow::Result<Uuid> {
    Ok(cluster
        .submit_ok(&json!({"kind": "noop", "delay_ms": 60000}))
        .await?[0])
}

/// The actor of the task's history row that moved it to `state`.
async fn actor_of(cluster: &Cluster, task: Uuid, state: &str) -> anyhow::Result<Option<String>> {
    let row = cluster
        .db
        .query_one(
            "SELECT actor FROM task_events WHERE task_id = $1 AND to_state::text = $2",
            &[&task, &state],
        )
        .await
        .with_context(|| format!("the {state} row of task {task}"))?;
    Ok(row.get(0))
}

/// The actors of a pool's history, oldest first, with each change.
async fn pool_actors(cluster: &Cluster, pool: &str) -> anyhow::Result<Vec<(String, String)>> {
    let rows = cluster
        .db
        .query(
            "SELECT change, coalesce(actor, '') FROM pool_events WHERE pool = $1 ORDER BY id",
            &[&pool],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

#[tokio::test]
async fn a_cancel_through_rest_records_the_tokens_name() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let base = cluster.start_api_with_auth("required").await?;
    let store = Store::connect(&cluster.stack.database_url, 2).await?;
    let token = store.create_token("ops-alice", Role::Admin).await?.token;
    cluster
        .wait_for_endpoint("pool-manager", subjects::API_CANCEL)
        .await?;
    let http = reqwest::Client::new();
    let post = |path: String| http.post(format!("{base}{path}")).bearer_auth(&token);

    let task = waiting_task(&cluster).await?;
    let answer = post(format!("/api/v1/tasks/{task}/cancel"))
        .json(&json!({"reason": "not needed"}))
        .send()
        .await?;
    assert_eq!(answer.status(), 200, "{}", answer.text().await?);
    assert_eq!(
        actor_of(&cluster, task, "cancelled").await?.as_deref(),
        Some("token:ops-alice")
    );
    assert_eq!(
        actor_of(&cluster, task, "pending").await?.as_deref(),
        None,
        "the test's own submission (inside the cluster, naming nobody) is the system's"
    );

    // A retry is a new task: its first row names who asked for it.
    let answer = post(format!("/api/v1/tasks/{task}/retry")).send().await?;
    assert_eq!(answer.status(), 201);
    let retried: serde_json::Value = answer.json().await?;
    let copy: Uuid = retried["id"].as_str().context("the retry's id")?.parse()?;
    let first = cluster
        .db
        .query_one(
            "SELECT actor FROM task_events WHERE task_id = $1 ORDER BY id LIMIT 1",
            &[&copy],
        )
        .await?;
    assert_eq!(
        first.get::<_, Option<String>>(0).as_deref(),
        Some("token:ops-alice")
    );

    // A node operation and pool changes keep it in their history too.
    let answer = post("/api/v1/nodes/w1/cordon".to_owned()).send().await?;
    assert_eq!(answer.status(), 200, "{}", answer.text().await?);
    let cordoned = cluster
        .db
        .query_one(
            "SELECT actor FROM node_events WHERE node_id = 'w1' AND kind = 'cordoned'",
            &[],
        )
        .await?;
    assert_eq!(
        cordoned.get::<_, Option<String>>(0).as_deref(),
        Some("token:ops-alice")
    );
    let answer = post("/api/v1/pools".to_owned())
        .json(&json!({"name": "audited"}))
        .send()
        .await?;
    assert_eq!(answer.status(), 201, "{}", answer.text().await?);
    let answer = http
        .delete(format!("{base}/api/v1/pools/audited"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(answer.status(), 200, "{}", answer.text().await?);
    let alice = "token:ops-alice".to_owned();
    assert_eq!(
        pool_actors(&cluster, "audited").await?,
        [
            ("created".to_owned(), alice.clone()),
            ("deleted".to_owned(), alice)
        ]
    );

    // And the REST history shows it.
    let detail: serde_json::Value = http
        .get(format!("{base}/api/v1/tasks/{task}"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let events = detail["events"].as_array().context("events")?;
    assert!(
        events
            .iter()
            .any(|e| e["to_state"] == "cancelled" && e["actor"] == "token:ops-alice"),
        "{detail:#}"
    );
    let page = http
        .get(format!("{base}/tasks/{task}"))
        .bearer_auth(&token)
        .send()
        .await?
        .text()
        .await?;
    assert!(
        page.contains("by token:ops-alice"),
        "the console's timeline"
    );
    Ok(())
}

#[tokio::test]
async fn a_cancel_over_nats_records_the_credential_whatever_the_body_claims() -> anyhow::Result<()>
{
    let cluster = Cluster::start(&[]).await?;
    let store = Store::connect(&cluster.stack.database_url, 2).await?;
    cluster
        .wait_for_endpoint("pool-manager", subjects::API_CANCEL)
        .await?;

    // An operator in CLIENTS, named in `nats_credentials` as `taskyard creds`
    // would.
    let seed = std::fs::read_to_string(cluster.stack.credential("alice", Kind::Operator)?)?;
    let public_key = nkeys::KeyPair::from_seed(seed.trim())?.public_key();
    store
        .create_credential(&NewCredential {
            name: "alice",
            kind: "operator",
            scope: None,
            task_subjects: &[],
            public_key: &public_key,
        })
        .await?;
    let alice = Client::new(
        cluster
            .stack
            .nats_client_as(&cluster.stack.security_of("alice", Kind::Operator)?)
            .await?,
    );

    let task = waiting_task(&cluster).await?;
    let done = alice.cancel(task, Some("by hand".to_owned())).await?;
    assert!(done.cancelled);
    assert_eq!(
        actor_of(&cluster, task, "cancelled").await?.as_deref(),
        Some("nats:alice")
    );

    // Her body says she is the root token: the server's header says who
    // she is, and that is what is kept.
    let forged = waiting_task(&cluster).await?;
    let done = alice
        .clone()
        .on_behalf_of("token:root")
        .cancel(forged, None)
        .await?;
    assert!(done.cancelled);
    assert_eq!(
        actor_of(&cluster, forged, "cancelled").await?.as_deref(),
        Some("nats:alice")
    );
    alice
        .clone()
        .on_behalf_of("token:root")
        .create_pool(&json!({"name": "forged"}))
        .await?;
    assert_eq!(
        pool_actors(&cluster, "forged").await?,
        [("created".to_owned(), "nats:alice".to_owned())]
    );

    // The SQL that docs/security.md gives answers it.
    let answers = security_doc_queries(&cluster, forged).await?;
    assert_eq!(answers[0], 1, "who cancelled the forged task");
    assert_eq!(
        answers[1], 3,
        "alice's two cancels and her pool, as one identity's day"
    );
    assert!(answers[2] >= 1, "her credential by name");

    // A credential no row names is still told apart, by its key.
    let seed = std::fs::read_to_string(cluster.stack.credential("bob", Kind::Operator)?)?;
    let bob_key = nkeys::KeyPair::from_seed(seed.trim())?.public_key();
    let bob = Client::new(
        cluster
            .stack
            .nats_client_as(&cluster.stack.security_of("bob", Kind::Operator)?)
            .await?,
    );
    let task = waiting_task(&cluster).await?;
    bob.cancel(task, None).await?;
    assert_eq!(
        actor_of(&cluster, task, "cancelled").await?,
        Some(format!("nats:{bob_key}"))
    );
    Ok(())
}

/// Runs each statement of the SQL in docs/security.md's "Who did this"
/// (with `X` the task `task`); returns how many rows each gave.
async fn security_doc_queries(cluster: &Cluster, task: Uuid) -> anyhow::Result<Vec<usize>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/security.md");
    let text = std::fs::read_to_string(path)?;
    let section = text
        .split("\n## Who did this")
        .nth(1)
        .context("docs/security.md has no `## Who did this`")?;
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut counts = Vec::new();
    for block in section.split("```sql").skip(1) {
        let block = block.split("```").next().unwrap_or_default();
        for statement in block.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let sql = statement.replace("'X'", &format!("'{task}'"));
            let rows = cluster
                .db
                .query(&sql, &[])
                .await
                .with_context(|| format!("in docs/security.md:\n{sql}"))?;
            counts.push(rows.len());
        }
    }
    Ok(counts)
}
