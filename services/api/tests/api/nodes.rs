use crate::helpers::{TestApp, code, heartbeat, message};
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn nodes_are_listed_and_fetched_by_id() {
    let app = TestApp::start().await;
    let (status, body) = app.get_json("/api/v1/nodes").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["nodes"], serde_json::json!([]));

    app.store
        .record_heartbeats(&[heartbeat("node-a", 0), heartbeat("node-b", 0)], None)
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

/// A resource manager with one node, `node-a`, alive: drain marks it
/// draining (and cordoned), remove is refused until it has drained.
async fn resource_manager(app: &TestApp) {
    let mut cordoned = false;
    let mut draining = false;
    crate::helpers::stand_in(app, "taskyard.api.nodes.*", move |op, body| {
        let id = body["node_id"].as_str().unwrap_or_default().to_owned();
        if id != "node-a" {
            return json!({"error": {
                "code": "not_found", "field": "node_id", "message": format!("no node `{id}`")
            }});
        }
        match op {
            "drain" => (cordoned, draining) = (true, true),
            "cordon" => cordoned = true,
            "uncordon" => cordoned = false,
            "remove" => {
                return json!({"error": {
                    "code": "conflict",
                    "field": "node_id",
                    "message": "node `node-a` is alive and not drained; drain it first"
                }});
            }
            _ => {}
        }
        json!({"node_id": id, "health": "alive", "cordoned": cordoned,
               "draining": draining, "removed": false})
    })
    .await;
}

#[tokio::test]
async fn node_operations_answer_with_the_nodes_state() {
    let app = TestApp::start().await;
    resource_manager(&app).await;

    let (status, body) = app
        .send_json("POST", "/api/v1/nodes/node-a/cordon", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"node_id": "node-a", "health": "alive", "cordoned": true,
               "draining": false, "removed": false})
    );
    let (_, body) = app
        .send_json("POST", "/api/v1/nodes/node-a/uncordon", None)
        .await;
    assert_eq!(body["cordoned"], false);
    let (status, body) = app
        .send_json("POST", "/api/v1/nodes/node-a/drain", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["cordoned"], &body["draining"]),
        (&json!(true), &json!(true))
    );
}

#[tokio::test]
async fn a_refused_removal_is_a_conflict_and_an_unknown_node_404() {
    let app = TestApp::start().await;
    resource_manager(&app).await;

    let (status, body) = app.send_json("DELETE", "/api/v1/nodes/node-a", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "refused");
    assert_eq!(body["error"]["field"], "node_id");
    assert!(message(&body).contains("not drained"), "{body}");

    for (method, uri) in [
        ("POST", "/api/v1/nodes/node-z/drain"),
        ("POST", "/api/v1/nodes/node-z/cordon"),
        ("DELETE", "/api/v1/nodes/node-z"),
    ] {
        let (status, body) = app.send_json(method, uri, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
        assert_eq!(message(&body), "no node `node-z`");
    }
}

#[tokio::test]
async fn without_a_resource_manager_node_operations_are_unavailable() {
    let app = TestApp::start().await;
    let (status, body) = app
        .send_json("POST", "/api/v1/nodes/node-a/drain", None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        message(&body).starts_with("no resource manager is listening on taskyard.api.nodes.drain"),
        "{body}"
    );
}

#[tokio::test]
async fn the_console_marks_cordoned_nodes_and_shows_disk_free() {
    let app = TestApp::start().await;
    let mut beat = heartbeat("node-a", 0);
    beat.usage.disk_total_mb = 40_960;
    beat.usage.disk_free_mb = 20_992;
    app.store
        .record_heartbeats(&[beat], None)
        .await
        .expect("record a heartbeat");
    app.store
        .set_cordoned("node-a", true, "maintenance", None)
        .await
        .expect("cordon the node");
    let (status, html) = app.get_html("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(r#"<span class="tag">cordoned</span>"#),
        "{html}"
    );
    assert!(html.contains("20.5 GiB"), "{html}");
}
