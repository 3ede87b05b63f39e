use crate::helpers::{TestApp, code};
use axum::http::StatusCode;
use std::collections::BTreeMap;
use taskyard_wire::heartbeat::{Capacity, Heartbeat, Usage};

fn heartbeat(node: &str) -> Heartbeat {
    let now = taskyard_wire::now();
    Heartbeat {
        node_id: node.to_owned(),
        hostname: "host-a".to_owned(),
        version: "0.1.0".to_owned(),
        started_at: now,
        capacity: Capacity {
            cpu_millis: 4000,
            memory_mb: 8192,
            slots: 8,
        },
        usage: Usage::default(),
        running: 0,
        labels: BTreeMap::from([("zone".to_owned(), "a".to_owned())]),
        draining: false,
        at: now,
    }
}

#[tokio::test]
async fn nodes_are_listed_and_fetched_by_id() {
    let app = TestApp::start().await;
    let (status, body) = app.get_json("/api/v1/nodes").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["nodes"], serde_json::json!([]));

    app.store
        .record_heartbeats(&[heartbeat("node-a"), heartbeat("node-b")])
        .await
        .expect("record heartbeats");
    let (_, body) = app.get_json("/api/v1/nodes").await;
    let nodes = body["nodes"].as_array().expect("nodes is an array");
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["id"], "node-a");
    assert_eq!(nodes[0]["health"], "alive");
    assert_eq!(nodes[0]["capacity"]["cpu_millis"], 4000);
    assert_eq!(nodes[0]["reserved"]["cpu_millis"], 0);

    let (status, node) = app.get_json("/api/v1/nodes/node-b").await;
    assert_eq!(status, StatusCode::OK, "{node}");
    assert_eq!(node["labels"]["zone"], "a");

    let (status, body) = app.get_json("/api/v1/nodes/node-z").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(code(&body), "not_found");

    let (_, summary) = app.get_json("/api/v1/summary").await;
    assert_eq!(summary["nodes"]["alive"], 2);
}
