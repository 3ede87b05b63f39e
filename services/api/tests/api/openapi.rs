//! The OpenAPI document against real responses: each body validates against
//! the schema the document gives for its path, method and status.

use crate::helpers::{TestApp, heartbeat, stand_in, task};
use axum::http::StatusCode;
use serde_json::{Value, json};
use taskyard_store::dead_letters::DeadLetter;
use taskyard_store::tasks::Placement;
use taskyard_wire::origin::Origin;

/// Validates `body` against the response schema of `method path` for
/// `status` in `doc`, resolving `#/components/schemas/...` in the document.
fn assert_conforms(doc: &Value, method: &str, path: &str, status: StatusCode, body: &Value) {
    let schema = &doc["paths"][path][method]["responses"][status.as_str()]["content"]["application/json"]
        ["schema"];
    assert!(
        schema.is_object(),
        "the document has no JSON schema for {method} {path} {status}"
    );
    let mut root = serde_json::Map::new();
    root.insert(
        "$schema".to_owned(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    root.insert("components".to_owned(), doc["components"].clone());
    if let Value::Object(schema) = schema {
        root.extend(schema.clone());
    }
    let validator = jsonschema::validator_for(&Value::Object(root))
        .unwrap_or_else(|err| panic!("the schema of {method} {path} compiles: {err}"));
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|err| format!("{} at {}", err, err.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not match its schema:\n{}\n{body:#}",
        errors.join("\n")
    );
}

#[tokio::test]
async fn real_responses_match_the_document() {
    let app = TestApp::start().await;
    let (status, doc) = app.get_json("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    for path in [
        "/api/v1/tasks",
        "/api/v1/tasks/{id}",
        "/api/v1/tasks/{id}/retry",
        "/api/v1/tasks/{id}/events",
        "/api/v1/tenants",
        "/api/v1/pools/{name}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    // Fixtures: a placed task with history, a rejected one, a node, a dead letter.
    let ids = app
        .insert(vec![task("default"), crate::helpers::rejected("gpu", "no")])
        .await;
    app.store
        .mark_scheduled(
            &[Placement {
                task_id: ids[0],
                attempt: 0,
                node_id: "node-a".to_owned(),
                reason: "best fit".to_owned(),
            }],
            None,
        )
        .await
        .expect("schedule");
    app.store
        .record_heartbeats(&[heartbeat("node-a", 1)], None)
        .await
        .expect("a node");
    app.store
        .record_dead_letter(&DeadLetter {
            origin: Origin {
                stream: "STATUS".to_owned(),
                consumer: "pool-manager".to_owned(),
                stream_seq: 7,
                subject: "taskyard.status.x".to_owned(),
                payload: b"{not json".to_vec(),
                deliveries: 5,
            },
            reason: "undecodable".to_owned(),
        })
        .await
        .expect("a dead letter");
    stand_in(&app, "taskyard.api.pools.*", |_, _| {
        json!({"pools": [{"name": "default", "policy": "wfq", "tenant_weights": {"default": 3}}]})
    })
    .await;

    let cases = [
        ("/api/v1/tasks".to_owned(), "/api/v1/tasks", StatusCode::OK),
        (
            "/api/v1/tasks?limit=1".to_owned(),
            "/api/v1/tasks",
            StatusCode::OK,
        ),
        (
            format!("/api/v1/tasks/{}", ids[0]),
            "/api/v1/tasks/{id}",
            StatusCode::OK,
        ),
        (
            format!("/api/v1/tasks/{}", ids[1]),
            "/api/v1/tasks/{id}",
            StatusCode::OK,
        ),
        (
            format!("/api/v1/tasks/{}/events", ids[0]),
            "/api/v1/tasks/{id}/events",
            StatusCode::OK,
        ),
        (
            format!("/api/v1/tasks/{}", uuid::Uuid::now_v7()),
            "/api/v1/tasks/{id}",
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/tasks/nope".to_owned(),
            "/api/v1/tasks/{id}",
            StatusCode::BAD_REQUEST,
        ),
        ("/api/v1/nodes".to_owned(), "/api/v1/nodes", StatusCode::OK),
        (
            "/api/v1/nodes/node-a".to_owned(),
            "/api/v1/nodes/{id}",
            StatusCode::OK,
        ),
        ("/api/v1/pools".to_owned(), "/api/v1/pools", StatusCode::OK),
        (
            "/api/v1/summary".to_owned(),
            "/api/v1/summary",
            StatusCode::OK,
        ),
        (
            "/api/v1/dead-letters".to_owned(),
            "/api/v1/dead-letters",
            StatusCode::OK,
        ),
        (
            "/api/v1/tenants".to_owned(),
            "/api/v1/tenants",
            StatusCode::OK,
        ),
        (
            "/api/v1/workflows".to_owned(),
            "/api/v1/workflows",
            StatusCode::OK,
        ),
        ("/healthz".to_owned(), "/healthz", StatusCode::OK),
    ];
    for (uri, path, expected) in cases {
        let (status, body) = app.get_json(&uri).await;
        assert_eq!(status, expected, "{uri}: {body}");
        assert_conforms(&doc, "get", path, status, &body);
    }

    // A retry of a task that has not ended: a 409 of the documented shape.
    let (status, body) = app
        .send_json("POST", &format!("/api/v1/tasks/{}/retry", ids[0]), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_conforms(&doc, "post", "/api/v1/tasks/{id}/retry", status, &body);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let app = TestApp::start().await;
    let (status, body) = app.get_json("/api/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["message"].is_string());

    let (status, body) = app.send_json("DELETE", "/api/v1/tasks", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(body["error"]["code"], "method_not_allowed");
    let (status, body) = app.send_json("PATCH", "/api/v1/summary", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(body["error"]["code"], "method_not_allowed");
}
