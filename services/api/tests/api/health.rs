use crate::helpers::TestApp;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn healthy_when_postgres_and_nats_answer() {
    let app = TestApp::start().await;
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"status": "ok", "database": "ok", "nats": "ok"})
    );
}
