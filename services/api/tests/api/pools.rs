//! `/api/v1/pools` against a stand-in pool manager on NATS.

use crate::helpers::{TestApp, code, message, stand_in};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use taskyard_wire::pool::{PoolChange, PoolSpec};

fn refused(code: &str, field: &str, message: String) -> Value {
    json!({"error": {"code": code, "field": field, "message": message}})
}

fn not_found(name: &str) -> Value {
    refused("not_found", "name", format!("no pool named `{name}`"))
}

/// A pool manager in memory, keeping to the contract: create refuses a
/// name in use and delete refuses `default` (`conflict`), unknown names are
/// `not_found`.
/// Hands back every request body it received.
async fn pool_manager(app: &TestApp) -> Arc<Mutex<Vec<(String, Value)>>> {
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    let mut pools: BTreeMap<String, PoolSpec> =
        BTreeMap::from([("default".to_owned(), PoolSpec::default_pool())]);
    stand_in(app, "taskyard.api.pools.*", move |op, body| {
        log.lock()
            .expect("the log")
            .push((op.to_owned(), body.clone()));
        let name = body["name"].as_str().unwrap_or_default().to_owned();
        let spec = || serde_json::from_value::<PoolChange>(body.clone()).map(|c| c.pool);
        match op {
            "list" => json!({"pools": pools.values().collect::<Vec<_>>()}),
            "get" => match pools.get(&name) {
                Some(pool) => json!({"pool": pool}),
                None => not_found(&name),
            },
            "create" | "update" => {
                let pool = match spec() {
                    Ok(pool) => pool,
                    Err(err) => return refused("invalid", "", err.to_string()),
                };
                if let Err(rejection) = pool.validate() {
                    return json!({"error": rejection});
                }
                match (op, pools.contains_key(&name)) {
                    ("create", true) => refused(
                        "conflict",
                        "name",
                        format!("a pool named `{name}` already exists"),
                    ),
                    ("update", false) => not_found(&name),
                    _ => {
                        pools.insert(name, pool.clone());
                        json!({"pool": pool})
                    }
                }
            }
            "delete" if name == "default" => refused(
                "conflict",
                "name",
                "the `default` pool cannot be deleted".to_owned(),
            ),
            "delete" => match pools.remove(&name) {
                Some(pool) => json!({"pool": pool}),
                None => not_found(&name),
            },
            other => refused("invalid", "", format!("unknown operation {other}")),
        }
    })
    .await;
    received
}

#[tokio::test]
async fn pools_are_created_listed_fetched_updated_and_deleted() {
    let app = TestApp::start().await;
    let received = pool_manager(&app).await;

    let definition = json!({
        "name": "gpu", "placement": "spread", "node_selector": {"gpu": "a100"}, "max_running": 4
    });
    let (status, created) = app
        .send_json("POST", "/api/v1/pools", Some(definition.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "gpu");
    assert_eq!(created["policy"], "fcfs", "defaults are filled in");
    assert_eq!(created["overcommit"], 1.0);
    let mut forwarded = definition.clone();
    forwarded["requested_by"] = json!("api:open");
    assert_eq!(
        received.lock().expect("the log")[0],
        ("create".to_owned(), forwarded),
        "the definition is forwarded as the client wrote it, naming who asked"
    );

    let (status, list) = app.get_json("/api/v1/pools").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let names: Vec<&str> = list["pools"]
        .as_array()
        .expect("pools is an array")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["default", "gpu"]);

    let (status, pool) = app.get_json("/api/v1/pools/gpu").await;
    assert_eq!(status, StatusCode::OK, "{pool}");
    assert_eq!(pool["node_selector"], json!({"gpu": "a100"}));
    assert_eq!(pool["placement"], "spread");

    // No name in the body: the path's is used.
    let (status, updated) = app
        .send_json("PUT", "/api/v1/pools/gpu", Some(json!({"max_running": 8})))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "gpu");
    assert_eq!(updated["max_running"], 8);
    assert_eq!(
        updated["placement"], "best_fit",
        "an update is a whole definition"
    );
    let (status, updated) = app
        .send_json(
            "PUT",
            "/api/v1/pools/gpu",
            Some(json!({"name": "gpu", "max_running": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["max_running"], 2);

    let (status, deleted) = app.send_json("DELETE", "/api/v1/pools/gpu", None).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["name"], "gpu");
    let (status, body) = app.get_json("/api/v1/pools/gpu").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn refusals_are_400_naming_the_field_and_unknown_pools_404() {
    let app = TestApp::start().await;
    pool_manager(&app).await;

    let (status, body) = app
        .send_json("POST", "/api/v1/pools", Some(json!({"name": "default"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body,
        json!({"error": {
            "code": "invalid_pool", "field": "name",
            "message": "a pool named `default` already exists"
        }})
    );

    let (status, body) = app
        .send_json(
            "POST",
            "/api/v1/pools",
            Some(json!({"name": "x", "policy": "lottery"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "invalid_pool");
    assert_eq!(body["error"]["field"], "policy");

    let (status, body) = app.send_json("DELETE", "/api/v1/pools/default", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("cannot be deleted"), "{body}");

    for (method, body) in [("GET", None), ("DELETE", None), ("PUT", Some(json!({})))] {
        let (status, answer) = app.send_json(method, "/api/v1/pools/nope", body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}: {answer}");
        assert_eq!(code(&answer), "not_found");
        assert_eq!(message(&answer), "no pool named `nope`");
    }
}

#[tokio::test]
async fn an_update_cannot_rename_and_a_body_must_be_an_object() {
    let app = TestApp::start().await;
    let received = pool_manager(&app).await;
    let (status, body) = app
        .send_json("PUT", "/api/v1/pools/gpu", Some(json!({"name": "cpu"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "bad_request");
    assert_eq!(body["error"]["field"], "name");
    assert!(message(&body).contains("`gpu`"), "{body}");

    let (status, body) = app
        .send_json("POST", "/api/v1/pools", Some(json!(["gpu"])))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "body");
    let (status, body) = app.post_json("/api/v1/pools", b"{nope".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "body");
    assert!(
        received.lock().expect("the log").is_empty(),
        "nothing reached the pool manager"
    );
}

#[tokio::test]
async fn without_a_pool_manager_pools_are_unavailable() {
    let app = TestApp::start().await;
    for (method, uri, body) in [
        ("GET", "/api/v1/pools", None),
        ("GET", "/api/v1/pools/gpu", None),
        ("POST", "/api/v1/pools", Some(json!({"name": "gpu"}))),
        ("PUT", "/api/v1/pools/gpu", Some(json!({}))),
        ("DELETE", "/api/v1/pools/gpu", None),
    ] {
        let (status, answer) = app.send_json(method, uri, body).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {uri}: {answer}"
        );
        assert_eq!(code(&answer), "unavailable");
        assert!(
            message(&answer).starts_with("no pool manager is listening on taskyard.api.pools."),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn the_console_shows_pools_escaped_and_survives_without_a_pool_manager() {
    let app = TestApp::start().await;
    let (status, html) = app.get_html("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Cannot list pools: no pool manager is listening"),
        "{html}"
    );

    pool_manager(&app).await;
    let definition = json!({
        "name": "gpu", "node_selector": {"<b>zone</b>": "<i>eu</i>"}, "max_running": 3
    });
    let (status, body) = app
        .send_json("POST", "/api/v1/pools", Some(definition))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, html) = app.get_html("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"href="/tasks?pool=gpu""#), "{html}");
    assert!(
        html.contains("&lt;b&gt;zone&lt;/b&gt;=&lt;i&gt;eu&lt;/i&gt;"),
        "{html}"
    );
    assert!(!html.contains("<b>zone"), "{html}");
    assert!(
        html.contains("any node"),
        "the default pool's empty selector"
    );
}
