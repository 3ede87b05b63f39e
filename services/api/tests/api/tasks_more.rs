//! Retry, a task's events page by page, tenants, and cursor pagination.

use crate::helpers::{TestApp, code, rejected, stand_in, task};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use taskyard_store::tasks::Placement;
use taskyard_wire::subjects;
use uuid::Uuid;

/// An orchestrator that accepts everything, keeping what it was sent.
async fn accepting_orchestrator(app: &TestApp, new_id: Uuid) -> Arc<Mutex<Vec<Value>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    stand_in(app, subjects::API_SUBMIT, move |_, body| {
        log.lock().expect("the log").push(body);
        json!({"ids": [new_id]})
    })
    .await;
    seen
}

#[tokio::test]
async fn an_ended_task_is_retried_as_a_new_task() {
    let app = TestApp::start().await;
    let new_id = Uuid::now_v7();
    let seen = accepting_orchestrator(&app, new_id).await;
    let mut refused = rejected("gpu", "no node could hold it");
    refused.kind = "sleep".to_owned();
    refused.spec = json!({"ms": 5});
    refused.tenant = "acme".to_owned();
    refused.idempotency_key = Some("once".to_owned());
    refused.labels = json!({"team": "data"});
    let ids = app.insert(vec![refused]).await;

    let (status, body) = app
        .send_json("POST", &format!("/api/v1/tasks/{}/retry", ids[0]), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], new_id.to_string());
    assert_eq!(body["retry_of"], ids[0].to_string());

    let sent = seen.lock().expect("the log").clone();
    assert_eq!(sent.len(), 1);
    let copy = &sent[0];
    assert_eq!(copy["kind"], "sleep");
    assert_eq!(copy["spec"], json!({"ms": 5}));
    assert_eq!(copy["pool"], "gpu");
    assert_eq!(copy["tenant"], "acme");
    assert_eq!(copy["labels"]["team"], "data");
    assert_eq!(copy["labels"]["retry_of"], ids[0].to_string());
    assert!(copy.get("idempotency_key").is_none(), "{copy}");
    assert!(copy.get("id").is_none(), "{copy}");
}

#[tokio::test]
async fn a_task_that_has_not_ended_is_not_retried() {
    let app = TestApp::start().await;
    let ids = app.insert(vec![task("default")]).await;
    let (status, body) = app
        .send_json("POST", &format!("/api/v1/tasks/{}/retry", ids[0]), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "refused");
    assert_eq!(body["error"]["field"], "state");

    let (status, body) = app
        .send_json(
            "POST",
            &format!("/api/v1/tasks/{}/retry", Uuid::now_v7()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn events_come_page_by_page_oldest_first() {
    let app = TestApp::start().await;
    let ids = app.insert(vec![task("default")]).await;
    app.store
        .mark_scheduled(
            &[Placement {
                task_id: ids[0],
                attempt: 0,
                node_id: "node-1".to_owned(),
                reason: "best fit".to_owned(),
            }],
            None,
        )
        .await
        .expect("schedule");
    let uri = format!("/api/v1/tasks/{}/events", ids[0]);

    let (status, all) = app.get_json(&uri).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["events"].as_array().map(Vec::len), Some(2));
    assert_eq!(all["next_cursor"], Value::Null);

    let (_, first) = app.get_json(&format!("{uri}?limit=1")).await;
    assert_eq!(first["events"][0]["to_state"], "queued");
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a full page has a cursor");
    let (_, second) = app
        .get_json(&format!("{uri}?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(second["events"][0]["to_state"], "scheduled");
    assert_eq!(second["events"][0]["reason"], "best fit");

    let (status, body) = app.get_json(&format!("{uri}?cursor=garbage")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "cursor");
    let (status, _) = app
        .get_json(&format!("/api/v1/tasks/{}/events", Uuid::now_v7()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_task_list_pages_with_an_opaque_cursor_and_filters_by_tenant() {
    let app = TestApp::start().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let mut t = task("default");
        t.tenant = "acme".to_owned();
        ids.extend(app.insert(vec![t]).await);
    }
    app.insert(vec![task("default")]).await;

    let mut seen = Vec::new();
    let mut uri = "/api/v1/tasks?tenant=acme&limit=2".to_owned();
    loop {
        let (status, page) = app.get_json(&uri).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for t in page["tasks"].as_array().expect("tasks") {
            assert_eq!(t["tenant"], "acme");
            seen.push(t["id"].as_str().unwrap_or_default().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/api/v1/tasks?tenant=acme&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<String> = ids.iter().rev().map(Uuid::to_string).collect();
    assert_eq!(seen, expected);

    let (status, body) = app.get_json("/api/v1/tasks?cursor=xyz").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "cursor");
}

#[tokio::test]
async fn tenants_have_counts_by_state_and_weights_by_pool() {
    let app = TestApp::start().await;
    let mut a = task("default");
    a.tenant = "acme".to_owned();
    let mut b = rejected("default", "no");
    b.tenant = "acme".to_owned();
    app.insert(vec![a, b, task("default")]).await;
    let pool: taskyard_wire::pool::PoolSpec = serde_json::from_value(json!({
        "name": "batch", "policy": "wfq", "tenant_weights": {"acme": 5, "zeta": 2}
    }))
    .expect("a pool");
    assert!(
        app.store
            .create_pool(&pool, None)
            .await
            .expect("create the pool")
    );

    let (status, body) = app.get_json("/api/v1/tenants").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tenants = body["tenants"].as_array().expect("tenants");
    let names: Vec<&str> = tenants.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["acme", "default", "zeta"]);
    assert_eq!(tenants[0]["states"]["queued"], 1);
    assert_eq!(tenants[0]["states"]["rejected"], 1);
    assert_eq!(tenants[0]["states"]["running"], 0);
    assert_eq!(tenants[0]["total"], 2);
    assert_eq!(tenants[0]["weights"], json!({"batch": 5}));
    assert_eq!(tenants[1]["total"], 1);
    assert_eq!(tenants[2]["total"], 0);
    assert_eq!(tenants[2]["weights"], json!({"batch": 2}));
}

/// Rows of the plan test; `TASKYARD_PLAN_ROWS=1000000` checks a million
/// (and prints the plans with their timings).
fn plan_rows() -> i64 {
    std::env::var("TASKYARD_PLAN_ROWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000)
}

#[tokio::test]
async fn task_list_pages_are_index_scans_at_any_size() {
    use taskyard_store::tasks::TaskFilter;
    use taskyard_wire::TaskState;
    let app = TestApp::start().await;
    let (client, connection) =
        tokio_postgres::connect(&app._stack.database_url, tokio_postgres::NoTls)
            .await
            .expect("connect");
    tokio::spawn(connection);
    let rows = plan_rows();
    // Mostly finished work, a little failed, very little queued, three
    // pools and fifty tenants: what a long-lived cluster holds.
    client
        .execute(
            "INSERT INTO tasks (id, pool, kind, tenant, state, queued_at, finished_at) \
             SELECT gen_random_uuid(), (ARRAY['default', 'gpu', 'batch'])[1 + i % 3], 'noop', \
                    'tenant-' || (i % 50), s.state, now(), \
                    CASE WHEN s.state = 'queued' THEN NULL ELSE now() END \
             FROM generate_series(1, $1::bigint) i, \
                  LATERAL (SELECT (CASE WHEN i % 100 = 7 THEN 'queued' \
                                        WHEN i % 50 = 3 THEN 'failed' \
                                        ELSE 'succeeded' END)::task_state AS state) s",
            &[&rows],
        )
        .await
        .expect("insert the rows");
    client
        .batch_execute("ANALYZE tasks")
        .await
        .expect("analyze");

    let filter = |state: Option<TaskState>, pool: Option<&str>, tenant: Option<&str>| TaskFilter {
        state,
        pool: pool.map(str::to_owned),
        tenant: tenant.map(str::to_owned),
        before_seq: None,
        limit: 50,
    };
    let cases = [
        filter(None, None, None),
        filter(Some(TaskState::Queued), None, None),
        filter(Some(TaskState::Failed), None, None),
        filter(None, Some("gpu"), None),
        filter(Some(TaskState::Queued), Some("gpu"), None),
        filter(None, None, Some("tenant-7")),
        TaskFilter {
            before_seq: Some(rows / 2),
            ..filter(Some(TaskState::Failed), None, None)
        },
    ];
    let verbose = std::env::var("TASKYARD_PLAN_ROWS").is_ok();
    for case in &cases {
        let plan = app
            .store
            .explain_list_tasks(case, true)
            .await
            .expect("explain");
        if verbose {
            println!("{case:?}\n{plan}\n");
        }
        assert!(!plan.contains("Seq Scan"), "{case:?}:\n{plan}");
        assert!(plan.contains("Index"), "{case:?}:\n{plan}");
        // The whole page touches a few hundred buffers at most, whatever
        // the table's size (a scan of the table would touch thousands).
        let buffers: u64 = plan
            .lines()
            .find(|line| line.trim_start().starts_with("Buffers:"))
            .map(|line| {
                line.split([' ', ','])
                    .filter_map(|part| part.split_once('='))
                    .filter_map(|(_, n)| n.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        assert!(buffers < 500, "{case:?} touched {buffers} buffers:\n{plan}");
        let page = app.store.list_tasks(case).await.expect("list");
        assert_eq!(page.len(), 50, "{case:?}");
    }
}
