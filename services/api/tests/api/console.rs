use crate::helpers::{TestApp, task};
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn the_console_lists_recent_tasks() {
    let app = TestApp::start().await;
    let ids = app.insert(vec![task("render")]).await;
    let (status, html) = app.get_html("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!("href=\"/tasks/{}\"", ids[0])),
        "{html}"
    );
    // Live without reloading: the script swaps the live regions.
    assert!(!html.contains("http-equiv=\"refresh\""));
    assert!(html.contains("/assets/console.js"), "{html}");
    assert!(html.contains("data-live"), "{html}");
    assert!(html.contains("No worker has sent a heartbeat yet."));
    assert!(html.contains("Throughput"), "{html}");

    let (status, html) = app.get_html("/tasks?kind=render").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No tasks match."), "{html}");
    let (status, html) = app
        .get_html(&format!("/tasks?q={}", &ids[0].to_string()[..13]))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!("href=\"/tasks/{}\"", ids[0])),
        "{html}"
    );
    assert!(html.contains("form class=\"submit\""), "{html}");
    let (status, html) = app.get_html("/tasks?state=bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
}

#[tokio::test]
async fn every_console_page_renders() {
    let app = TestApp::start().await;
    app.insert(vec![task("render")]).await;
    for page in ["/nodes", "/workflows", "/dead-letters", "/pools"] {
        let (status, html) = app.get_html(page).await;
        assert_eq!(status, StatusCode::OK, "{page}: {html}");
        assert!(html.contains("<nav>"), "{page}: {html}");
    }
    let (status, _) = app
        .get_html(&format!("/workflows/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get_html("/nodes/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_task_page_escapes_what_clients_wrote() {
    let app = TestApp::start().await;
    let mut fixture = task("default");
    fixture.idempotency_key = Some("<b>key</b>".to_owned());
    fixture.kind = "echo".to_owned();
    fixture.spec = json!({"html": "<script>alert(1)</script>"});
    let ids = app.insert(vec![fixture]).await;

    let (status, html) = app.get_html(&format!("/tasks/{}", ids[0])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&ids[0].to_string()));
    assert!(html.contains("&lt;b&gt;key&lt;/b&gt;"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<b>key"), "{html}");
    assert!(!html.contains("<script>"), "{html}");
    // The history shows the creation.
    assert!(html.contains("queued"));
}

#[tokio::test]
async fn an_unknown_task_page_is_an_html_404() {
    let app = TestApp::start().await;
    let (status, html) = app
        .get_html(&format!("/tasks/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("no task has the id"), "{html}");
    let (status, html) = app.get_html("/tasks/%3Cb%3E").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("`&lt;b&gt;` is not a task id"), "{html}");
}

#[tokio::test]
async fn a_queued_task_page_says_why_it_waits_and_where_it_may_run() {
    let app = TestApp::start().await;
    let mut fixture = task("default");
    fixture.node_selector = json!({"gpu": "<a100>"});
    let ids = app.insert(vec![fixture]).await;
    app.store
        .set_wait_reasons(&[(ids[0], "no node has <4000m> free".to_owned())])
        .await
        .expect("record a wait reason");

    let (status, html) = app.get_html(&format!("/tasks/{}", ids[0])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("waiting because"), "{html}");
    assert!(html.contains("no node has &lt;4000m&gt; free"), "{html}");
    assert!(html.contains("node selector"), "{html}");
    assert!(html.contains("&lt;a100&gt;"), "{html}");
    let (_, body) = app.get_json(&format!("/api/v1/tasks/{}", ids[0])).await;
    assert_eq!(body["wait_reason"], "no node has <4000m> free");
    assert_eq!(body["node_selector"], json!({"gpu": "<a100>"}));
}
