use crate::helpers::{TestApp, code, message, rejected, task};
use axum::http::StatusCode;
use serde_json::Value;
use taskyard_store::tasks::Placement;
use uuid::Uuid;

#[tokio::test]
async fn a_task_comes_with_its_history() {
    let app = TestApp::start().await;
    let ids = app.insert(vec![task("default")]).await;
    let placed = app
        .store
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
        .expect("schedule the fixture");
    assert_eq!(placed.len(), 1);

    let (status, body) = app.get_json(&format!("/api/v1/tasks/{}", ids[0])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], ids[0].to_string());
    assert_eq!(body["state"], "scheduled");
    assert_eq!(body["node_id"], "node-1");
    assert_eq!(body["attempt"], 1);
    let events = body["events"].as_array().expect("events is an array");
    let transitions: Vec<(&Value, &Value)> = events
        .iter()
        .map(|e| (&e["from_state"], &e["to_state"]))
        .collect();
    assert_eq!(
        transitions,
        vec![
            (&Value::Null, &Value::from("queued")),
            (&Value::from("queued"), &Value::from("scheduled")),
        ]
    );
    assert_eq!(events[1]["reason"], "best fit");
}

#[tokio::test]
async fn an_unknown_task_is_not_found() {
    let app = TestApp::start().await;
    let (status, body) = app
        .get_json(&format!("/api/v1/tasks/{}", Uuid::now_v7()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(code(&body), "not_found");
}

#[tokio::test]
async fn a_bad_id_is_named() {
    let app = TestApp::start().await;
    let (status, body) = app.get_json("/api/v1/tasks/not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "bad_request");
    assert_eq!(body["error"]["field"], "id");
    assert!(message(&body).contains("not-a-uuid"), "{body}");
}

#[tokio::test]
async fn an_unknown_state_filter_lists_the_valid_states() {
    let app = TestApp::start().await;
    let (status, body) = app.get_json("/api/v1/tasks?state=sleeping").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "state");
    let text = message(&body);
    assert!(text.contains("sleeping"), "{text}");
    assert!(
        text.contains("queued") && text.contains("timed_out"),
        "{text}"
    );
}

#[tokio::test]
async fn lists_filter_by_state_and_pool_and_page_newest_first() {
    let app = TestApp::start().await;
    // Inserted one statement at a time so that `seq` follows this order.
    let mut batch_ids = Vec::new();
    for _ in 0..5 {
        batch_ids.extend(app.insert(vec![task("batch")]).await);
    }
    let gpu = app.insert(vec![task("gpu")]).await;
    let refused = app.insert(vec![rejected("batch", "bad spec")]).await;

    let ids_of = |body: &Value| -> Vec<String> {
        body["tasks"]
            .as_array()
            .expect("tasks is an array")
            .iter()
            .map(|t| t["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let newest_first =
        |ids: &[Uuid]| -> Vec<String> { ids.iter().rev().map(Uuid::to_string).collect() };

    let (status, all) = app.get_json("/api/v1/tasks").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(ids_of(&all).len(), 7);
    assert_eq!(
        all["next_before"],
        Value::Null,
        "one short page is the last"
    );

    let (_, rejected) = app.get_json("/api/v1/tasks?state=rejected").await;
    assert_eq!(ids_of(&rejected), newest_first(&refused));

    let (_, gpu_page) = app.get_json("/api/v1/tasks?pool=gpu&state=").await;
    assert_eq!(ids_of(&gpu_page), newest_first(&gpu));

    // Pages of two over the five queued tasks of `batch`.
    let query = "/api/v1/tasks?pool=batch&state=queued&limit=2";
    let (_, first) = app.get_json(query).await;
    assert_eq!(ids_of(&first), newest_first(&batch_ids[3..]));
    let cursor = first["next_before"]
        .as_i64()
        .expect("a full page has a cursor");
    let (_, second) = app.get_json(&format!("{query}&before={cursor}")).await;
    assert_eq!(ids_of(&second), newest_first(&batch_ids[1..3]));
    let cursor = second["next_before"]
        .as_i64()
        .expect("a full page has a cursor");
    let (_, third) = app.get_json(&format!("{query}&before={cursor}")).await;
    assert_eq!(ids_of(&third), newest_first(&batch_ids[..1]));
    assert_eq!(third["next_before"], Value::Null);
}

#[tokio::test]
async fn a_bad_limit_is_named() {
    let app = TestApp::start().await;
    for query in ["limit=0", "limit=1001", "limit=many"] {
        let (status, body) = app.get_json(&format!("/api/v1/tasks?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["field"], "limit", "{query}");
    }
}

#[tokio::test]
async fn the_summary_counts_every_state() {
    let app = TestApp::start().await;
    app.insert(vec![
        task("default"),
        task("default"),
        rejected("default", "no"),
    ])
    .await;
    let (status, body) = app.get_json("/api/v1/summary").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["states"]["queued"], 2);
    assert_eq!(body["states"]["rejected"], 1);
    assert_eq!(body["states"]["running"], 0);
    assert_eq!(body["nodes"]["alive"], 0);
}
