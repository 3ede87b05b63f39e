//! `TestApp`: a fresh stack, a migrated store, and request helpers.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use std::collections::BTreeMap;
use taskyard_api::{AppState, AuthMode, app};
use taskyard_runtime::access::Kind;
use taskyard_store::Store;
use taskyard_store::tasks::TaskInsert;
use taskyard_testkit::TestStack;
use taskyard_wire::TaskState;
use taskyard_wire::heartbeat::{Capacity, Heartbeat, Usage};
use tower::ServiceExt;
use uuid::Uuid;

/// Largest response body a test reads.
const MAX_TEST_BODY: usize = 16 * 1024 * 1024;

pub struct TestApp {
    pub store: Store,
    pub state: AppState,
    /// A connection of the test's own, as the admin, for what stands in for
    /// other services: the api's own identity may not answer their requests.
    pub stand_ins: async_nats::Client,
    // Dropped last: the servers outlive the clients above.
    pub _stack: TestStack,
}

impl TestApp {
    /// A stack with its own database (migrated) and a NATS connection; no
    /// orchestrator runs, so submissions find no responder. Auth is off (as
    /// on loopback): `tests/api/auth.rs` turns it on with [`start_with`].
    ///
    /// [`start_with`]: TestApp::start_with
    pub async fn start() -> TestApp {
        TestApp::start_with(AuthMode::Off).await
    }

    /// As [`TestApp::start`], with auth `auth`.
    pub async fn start_with(auth: AuthMode) -> TestApp {
        let stack = TestStack::start().await.expect("start the test stack");
        let store = Store::connect_and_migrate(&stack.database_url, 4)
            .await
            .expect("connect and migrate");
        // The in-process API connects as the api service does.
        let security = stack
            .security_of(
                "api",
                Kind::Service {
                    service: "api".to_owned(),
                },
            )
            .expect("the api's credential");
        let nats = stack
            .nats_client_as(&security)
            .await
            .expect("connect to NATS");
        let stand_ins = stack
            .nats_client()
            .await
            .expect("connect to NATS as the admin");
        TestApp {
            stand_ins,
            state: AppState::new(store.clone(), nats, auth),
            store,
            _stack: stack,
        }
    }

    pub async fn request(&self, request: Request<Body>) -> (StatusCode, Vec<u8>, String) {
        let response = app(self.state.clone())
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), MAX_TEST_BODY)
            .await
            .expect("read the body");
        (status, body.to_vec(), content_type)
    }

    /// GETs `uri` and parses the answer as JSON.
    pub async fn get_json(&self, uri: &str) -> (StatusCode, Value) {
        let request = Request::get(uri)
            .body(Body::empty())
            .expect("a valid request");
        let (status, body, content_type) = self.request(request).await;
        assert!(
            content_type.starts_with("application/json"),
            "{uri} answered {content_type}: {}",
            String::from_utf8_lossy(&body)
        );
        (status, serde_json::from_slice(&body).expect("a JSON body"))
    }

    /// GETs `uri` and returns the HTML text.
    pub async fn get_html(&self, uri: &str) -> (StatusCode, String) {
        let request = Request::get(uri)
            .body(Body::empty())
            .expect("a valid request");
        let (status, body, content_type) = self.request(request).await;
        assert!(
            content_type.starts_with("text/html"),
            "{uri} answered {content_type}"
        );
        (status, String::from_utf8(body).expect("UTF-8 HTML"))
    }

    /// POSTs `body` to `uri` and parses the answer as JSON.
    pub async fn post_json(&self, uri: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let request = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("a valid request");
        let (status, body, content_type) = self.request(request).await;
        assert!(
            content_type.starts_with("application/json"),
            "{uri} answered {content_type}: {}",
            String::from_utf8_lossy(&body)
        );
        (status, serde_json::from_slice(&body).expect("a JSON body"))
    }

    /// Inserts tasks built by [`task`] and returns their ids in order.
    pub async fn insert(&self, tasks: Vec<TaskInsert>) -> Vec<Uuid> {
        let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
        let created = self
            .store
            .insert_tasks(&tasks)
            .await
            .expect("insert fixtures");
        assert_eq!(created.len(), tasks.len(), "every fixture is new");
        ids
    }
}

/// A fixture task: a queued noop in `pool`, everything else default.
pub fn task(pool: &str) -> TaskInsert {
    TaskInsert {
        kind: "noop".to_owned(),
        spec: Value::Null,
        state: TaskState::Queued,
        error: None,
        ..TaskInsert::rejected(
            Uuid::now_v7(),
            pool.to_owned(),
            String::new(),
            Value::Null,
            "default".to_owned(),
            String::new(),
        )
    }
}

/// A fixture task refused at submission.
pub fn rejected(pool: &str, reason: &str) -> TaskInsert {
    TaskInsert {
        state: TaskState::Rejected,
        error: Some(reason.to_owned()),
        ..task(pool)
    }
}

/// The `code` of an error body.
/// A heartbeat of a 4-core, 8 GiB node in zone `a` running `running` tasks.
pub fn heartbeat(node: &str, running: u32) -> Heartbeat {
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
        running,
        labels: BTreeMap::from([("zone".to_owned(), "a".to_owned())]),
        draining: false,
        at: now,
    }
}

pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// The `message` of an error body.
pub fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

/// Stands in for a service on NATS: answers every request on `subject` (a
/// wildcard such as `taskyard.api.pools.*`) with `answer(op, body)`, where
/// `op` is the subject's last token. It stops when the test's runtime ends.
/// Returns once the server has handled everything `client` sent before:
/// a subscription on one connection is not yet there for a request from
/// another just because it was flushed to the socket.
pub async fn round_trip(client: &async_nats::Client) {
    // The server answers a connection's messages in order, so the answer
    // to this request comes after it took the subscription.
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.request("$JS.API.INFO", "".into()),
    )
    .await
    .expect("the server answers within 10 s")
    .expect("a JetStream API answer");
}

pub async fn stand_in<F>(app: &TestApp, subject: &str, mut answer: F)
where
    F: FnMut(&str, Value) -> Value + Send + 'static,
{
    use futures::StreamExt;
    let client = app.stand_ins.clone();
    let mut requests = client
        .subscribe(subject.to_owned())
        .await
        .expect("subscribe to requests");
    round_trip(&client).await;
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let op = request
                .subject
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_owned();
            let body = serde_json::from_slice(&request.payload).unwrap_or(Value::Null);
            let reply = answer(&op, body);
            if let Some(inbox) = request.reply {
                let bytes = serde_json::to_vec(&reply).expect("JSON");
                let _ = client.publish(inbox, bytes.into()).await;
            }
        }
    });
}

impl TestApp {
    /// Sends `method uri` with a JSON body (or none) and parses the answer.
    pub async fn send_json(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(match body {
                Some(body) => Body::from(serde_json::to_vec(&body).expect("JSON")),
                None => Body::empty(),
            })
            .expect("a valid request");
        let (status, body, content_type) = self.request(request).await;
        assert!(
            content_type.starts_with("application/json"),
            "{method} {uri} answered {status} {content_type}: {}",
            String::from_utf8_lossy(&body)
        );
        (status, serde_json::from_slice(&body).expect("a JSON body"))
    }
}
