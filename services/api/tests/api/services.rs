//! `/api/v1/services`: the micro services that answer `$SRV.INFO` and
//! `$SRV.STATS`.

use crate::helpers::TestApp;
use axum::http::StatusCode;
use futures::StreamExt;

#[tokio::test]
async fn the_api_lists_itself_with_its_endpoint_counts() {
    let app = TestApp::start().await;
    let (status, body) = app.get_json("/api/v1/services").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["services"],
        serde_json::json!([]),
        "nothing registered yet"
    );

    // What `run` does, plus one endpoint so that there is something to count.
    let service = taskyard_runtime::micro::register(&app.stand_ins, "api", "the API")
        .await
        .expect("register");
    let mut endpoint = service
        .service
        .endpoint_builder()
        .name("echo")
        .add("taskyard.test.echo")
        .await
        .expect("an endpoint");
    tokio::spawn(async move {
        let mut first = true;
        while let Some(request) = endpoint.next().await {
            let answer = if first {
                Ok(request.message.payload.clone())
            } else {
                Err(async_nats::service::error::Error {
                    status: "nope".to_owned(),
                    code: 500,
                })
            };
            first = false;
            let _ = request.respond(answer).await;
        }
    });
    for _ in 0..2 {
        app.stand_ins
            .request("taskyard.test.echo", "hi".into())
            .await
            .expect("an answer");
    }

    let (status, body) = app.get_json("/api/v1/services").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let services = body["services"].as_array().expect("services is an array");
    assert_eq!(services.len(), 1, "{body}");
    let api = &services[0];
    assert_eq!(api["name"], "taskyard-api");
    assert_eq!(api["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(api["description"], "the API");
    assert!(!api["id"].as_str().unwrap_or_default().is_empty(), "{api}");
    assert!(api["started"].is_string(), "{api}");
    assert!(api["uptime_ms"].as_u64().is_some(), "{api}");
    assert_eq!(api["requests"], 2, "{api}");
    assert_eq!(api["errors"], 1, "{api}");
    assert_eq!(api["role"], "active", "{api}");
    let endpoints = api["endpoints"].as_array().expect("endpoints is an array");
    let echo = endpoints
        .iter()
        .find(|e| e["name"] == "echo")
        .expect("the echo endpoint is listed");
    assert_eq!(echo["subject"], "taskyard.test.echo");
    // Every instance also answers its own role.
    assert!(
        endpoints.iter().any(|e| e["subject"]
            .as_str()
            .unwrap_or_default()
            .starts_with("taskyard.role.api.")),
        "{api}"
    );
}
