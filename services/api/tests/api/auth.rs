//! Bearer tokens and roles, with auth required as it is by default.

use crate::helpers::{TestApp, code, stand_in, task};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use taskyard_api::config::{AuthMode, Config, ConfigError};
use taskyard_store::tokens::{Role, hash_token};
use taskyard_wire::subjects;

/// Sends `method uri` with `token` as a bearer (or none) and an optional
/// JSON body; returns the status, the `WWW-Authenticate` header and the body.
async fn call(
    app: &TestApp,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(match body {
            Some(body) => Body::from(serde_json::to_vec(&body).expect("JSON")),
            None => Body::empty(),
        })
        .expect("a valid request");
    use tower::ServiceExt;
    let response = taskyard_api::app(app.state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("the body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, challenge, body)
}

async fn token(app: &TestApp, name: &str, role: Role) -> String {
    app.store
        .create_token(name, role)
        .await
        .expect("create a token")
        .token
}

/// A pool manager that cancels every task it is asked about.
async fn cancelling_pool_manager(app: &TestApp) {
    stand_in(
        app,
        subjects::API_CANCEL,
        |_, body| json!({"task_id": body["task_id"], "state": "cancelled", "cancelled": true}),
    )
    .await;
}

#[tokio::test]
async fn no_token_is_a_401_with_a_bearer_challenge() {
    let app = TestApp::start_with(AuthMode::Required).await;
    let (status, challenge, body) = call(&app, "GET", "/api/v1/tasks", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "unauthorized");
    assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));

    let (status, _, body) = call(&app, "GET", "/api/v1/tasks", Some("ty_made_up"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // Open routes stay open.
    let (status, _, body) = call(&app, "GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let login = Request::get("/login").body(Body::empty()).expect("request");
    let (status, html, _) = app.request(login).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&html).contains("<form"));
}

#[tokio::test]
async fn a_revoked_token_is_a_401() {
    let app = TestApp::start_with(AuthMode::Required).await;
    let secret = token(&app, "ci", Role::Viewer).await;
    let (status, _, body) = call(&app, "GET", "/api/v1/tasks", Some(&secret), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    assert!(app.store.revoke_token("ci").await.expect("revoke"));
    let (status, challenge, body) = call(&app, "GET", "/api/v1/tasks", Some(&secret), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "unauthorized");
    assert!(challenge.is_some());
}

#[tokio::test]
async fn a_viewer_cannot_cancel_and_an_operator_can() {
    let app = TestApp::start_with(AuthMode::Required).await;
    cancelling_pool_manager(&app).await;
    let ids = app.insert(vec![task("default")]).await;
    let uri = format!("/api/v1/tasks/{}/cancel", ids[0]);

    let viewer = token(&app, "dashboard", Role::Viewer).await;
    let (status, _, body) = call(&app, "POST", &uri, Some(&viewer), Some(json!({}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "forbidden");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("operator")),
        "{body}"
    );

    let operator = token(&app, "oncall", Role::Operator).await;
    let (status, _, body) = call(&app, "POST", &uri, Some(&operator), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cancelled"], true);

    // The console's cookie works as well as the header.
    let request = Request::get("/api/v1/summary")
        .header(header::COOKIE, format!("taskyard_token={viewer}"))
        .body(Body::empty())
        .expect("request");
    let (status, _, _) = app.request(request).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn only_an_admin_creates_pools() {
    let app = TestApp::start_with(AuthMode::Required).await;
    stand_in(&app, "taskyard.api.pools.*", |_, body| {
        let mut change =
            serde_json::from_value::<taskyard_wire::pool::PoolChange>(body).expect("a pool change");
        // The api names its caller, for the pool's history.
        if change.requested_by.as_deref() != Some("token:root") {
            return json!({"error": {"code": "invalid", "field": "requested_by",
                "message": format!("asked for {:?}", change.requested_by)}});
        }
        change.pool.policy = "fcfs".to_owned();
        json!({"pool": change.pool})
    })
    .await;
    let operator = token(&app, "oncall", Role::Operator).await;
    let admin = token(&app, "root", Role::Admin).await;
    let pool = json!({"name": "gpu"});

    let (status, _, body) = call(
        &app,
        "POST",
        "/api/v1/pools",
        Some(&operator),
        Some(pool.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("admin")),
        "{body}"
    );

    let (status, _, body) = call(&app, "POST", "/api/v1/pools", Some(&admin), Some(pool)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "gpu");

    let (status, _, body) = call(&app, "DELETE", "/api/v1/nodes/n1", Some(&operator), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn the_database_holds_only_the_hash() {
    let app = TestApp::start_with(AuthMode::Required).await;
    let created = app
        .store
        .create_token("deploy", Role::Operator)
        .await
        .expect("create");
    assert!(created.token.starts_with("ty_") && created.token.len() > 40);
    assert!(matches!(
        app.store.create_token("deploy", Role::Viewer).await,
        Err(taskyard_store::tokens::CreateTokenError::NameTaken(_))
    ));

    let (client, connection) =
        tokio_postgres::connect(&app._stack.database_url, tokio_postgres::NoTls)
            .await
            .expect("connect");
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT row_to_json(t)::text AS whole, token_hash FROM api_tokens t",
            &[],
        )
        .await
        .expect("read api_tokens");
    assert_eq!(rows.len(), 1);
    let whole: String = rows[0].get("whole");
    let stored: String = rows[0].get("token_hash");
    assert!(!whole.contains(&created.token), "{whole}");
    assert!(!whole.contains(&created.token["ty_".len()..]), "{whole}");
    assert_eq!(stored, hash_token(&created.token));

    let listed = app.store.list_tokens().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].role, Role::Operator);
}

#[tokio::test]
async fn login_sets_an_http_only_cookie() {
    let app = TestApp::start_with(AuthMode::Required).await;
    let secret = token(&app, "me", Role::Viewer).await;
    let request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={secret}")))
        .expect("request");
    let response = {
        use tower::ServiceExt;
        taskyard_api::app(app.state.clone())
            .oneshot(request)
            .await
            .expect("infallible")
    };
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(response.headers()[header::LOCATION], "/");
    let cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ASCII");
    assert!(cookie.starts_with(&format!("taskyard_token={secret}")));
    assert!(cookie.contains("HttpOnly"));

    let bad = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("token=ty_nope"))
        .expect("request");
    let (status, _, _) = app.request(bad).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A browser without a cookie is sent to the form.
    let page = Request::get("/")
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .expect("request");
    let response = {
        use tower::ServiceExt;
        taskyard_api::app(app.state.clone())
            .oneshot(page)
            .await
            .expect("infallible")
    };
    assert!(response.status().is_redirection());
    assert_eq!(response.headers()[header::LOCATION], "/login");
}

#[tokio::test]
async fn auth_off_is_refused_off_loopback() {
    let open_on_network = Config {
        auth: AuthMode::Off,
        http_addr: "0.0.0.0:0".parse().expect("an address"),
        ..Config::default()
    };
    let err = open_on_network.check().expect_err("refused");
    assert!(matches!(err, ConfigError::OpenOnNetwork { .. }));
    assert!(err.to_string().contains("loopback"), "{err}");
    // `run` refuses it before connecting to anything.
    let err = taskyard_api::run(open_on_network, taskyard_runtime::Shutdown::new())
        .await
        .expect_err("refused");
    assert!(format!("{err:#}").contains("TASKYARD_AUTH=off"), "{err:#}");

    let open_on_loopback = Config {
        auth: AuthMode::Off,
        http_addr: "127.0.0.1:0".parse().expect("an address"),
        ..Config::default()
    };
    assert_eq!(open_on_loopback.check(), Ok(()));
    let ipv6 = Config {
        auth: AuthMode::Off,
        http_addr: "[::1]:0".parse().expect("an address"),
        ..Config::default()
    };
    assert_eq!(ipv6.check(), Ok(()));
}
