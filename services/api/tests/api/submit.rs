use crate::helpers::{TestApp, code, message};
use axum::http::StatusCode;
use taskyard_api::routes::tasks::MAX_BODY_BYTES;

#[tokio::test]
async fn without_an_orchestrator_a_submission_is_unavailable() {
    let app = TestApp::start().await;
    let (status, body) = app
        .post_json("/api/v1/tasks", br#"{"kind":"noop"}"#.to_vec())
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "unavailable");
    assert!(
        message(&body).starts_with("the orchestrator did not answer"),
        "{body}"
    );
}

#[tokio::test]
async fn an_oversize_body_is_refused_with_json() {
    let app = TestApp::start().await;
    let body = vec![b' '; MAX_BODY_BYTES + 1];
    let (status, body) = app.post_json("/api/v1/tasks", body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(code(&body), "payload_too_large");
}

/// Stands in for the orchestrator: answers every request on
/// `taskyard.api.submit` with `reply`, and hands back what it received.
async fn fake_orchestrator(
    app: &TestApp,
    reply: serde_json::Value,
) -> tokio::task::JoinHandle<Vec<u8>> {
    use futures::StreamExt;
    let client = app.stand_ins.clone();
    let mut requests = client
        .subscribe(taskyard_wire::subjects::API_SUBMIT)
        .await
        .expect("subscribe to submissions");
    crate::helpers::round_trip(&client).await;
    tokio::spawn(async move {
        let request = requests.next().await.expect("one submission");
        let inbox = request.reply.expect("a request has a reply subject");
        client
            .publish(inbox, serde_json::to_vec(&reply).expect("JSON").into())
            .await
            .expect("reply");
        request.payload.to_vec()
    })
}

#[tokio::test]
async fn an_accepted_submission_is_created_with_its_ids() {
    let app = TestApp::start().await;
    let id = uuid::Uuid::now_v7();
    let orchestrator = fake_orchestrator(&app, serde_json::json!({"ids": [id]})).await;
    let sent = br#"[{"kind":"noop"}]"#;
    let (status, body) = app.post_json("/api/v1/tasks", sent.to_vec()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body, serde_json::json!({"ids": [id]}));
    let received = orchestrator.await.expect("the fake orchestrator ran");
    assert_eq!(received, sent, "the body is forwarded verbatim");
}

#[tokio::test]
async fn a_refused_submission_names_the_field() {
    let app = TestApp::start().await;
    let refusal =
        serde_json::json!({"error": {"field": "kind", "message": "missing field `kind`"}});
    let _orchestrator = fake_orchestrator(&app, refusal).await;
    let (status, body) = app.post_json("/api/v1/tasks", b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"error": {
            "code": "invalid_task", "field": "kind", "message": "missing field `kind`"
        }})
    );
}
