//! The REST API as the CLI sees it: a small HTTP client and the shapes of its
//! answers.
//!
//! The views below read only the fields the CLI shows and ignore the rest, so
//! an API that grows new fields does not break an older CLI.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use taskyard_wire::heartbeat::Capacity;
use taskyard_wire::{Resources, TaskState, Timestamp};
use uuid::Uuid;

/// How long one API call may take: what any request of Taskyard's may
/// (the CLI's reads are Postgres queries behind the API).
pub const REQUEST_TIMEOUT: std::time::Duration = taskyard_client::REQUEST_TIMEOUT;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Nothing answered at the URL.
    #[error("cannot reach the API at {url} (is `taskyard up` running?)")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The API answered with its error JSON; `message` is for people.
    #[error("{message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// Something answered, but not with what Taskyard's API would say.
    #[error("unexpected answer from {url}: {detail}")]
    Unexpected { url: String, detail: String },
}

impl ApiError {
    /// Whether the API said there is no such thing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Refused { status: 404, .. })
    }
}

/// A client of one API base URL.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
    /// Sent as `Authorization: Bearer <token>` with every call.
    token: Option<String>,
}

impl ApiClient {
    /// A client of the API at `base` (such as `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> ApiClient {
        ApiClient {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap_or_default(),
            token: None,
        }
    }

    /// The same client, sending `token` (if any) as a bearer with every call.
    pub fn with_token(mut self, token: Option<String>) -> ApiClient {
        self.token = token.filter(|t| !t.trim().is_empty());
        self
    }

    /// The token this client sends, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// `request` with this client's bearer token, if it has one: for calls
    /// made with another `reqwest` client (streams, say).
    pub fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// GETs `path` with `query` and returns the JSON answer.
    pub async fn get_value(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .authorize(self.http.get(&url).query(query))
            .send()
            .await
            .map_err(|source| {
                if source.is_connect() || source.is_timeout() {
                    ApiError::Unreachable {
                        url: self.base.clone(),
                        source,
                    }
                } else {
                    ApiError::Unexpected {
                        url: url.clone(),
                        detail: source.to_string(),
                    }
                }
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|err| ApiError::Unexpected {
            url: url.clone(),
            detail: format!("cannot read the body: {err}"),
        })?;
        let value: Option<Value> = serde_json::from_slice(&body).ok();
        if status.is_success() {
            return value.ok_or_else(|| ApiError::Unexpected {
                url,
                detail: format!("{status} without a JSON body"),
            });
        }
        match value.as_ref().and_then(|v| v.get("error")) {
            Some(error) => Err(ApiError::Refused {
                status: status.as_u16(),
                code: error["code"].as_str().unwrap_or_default().to_owned(),
                message: {
                    let message = error["message"]
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| status.to_string());
                    if status == reqwest::StatusCode::UNAUTHORIZED {
                        format!("{message} (pass --token or set TASKYARD_TOKEN)")
                    } else {
                        message
                    }
                },
            }),
            None => Err(ApiError::Unexpected {
                url,
                detail: format!("{status}: {}", String::from_utf8_lossy(&body).trim()),
            }),
        }
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(T, Value), ApiError> {
        let value = self.get_value(path, query).await?;
        let typed = serde_json::from_value(value.clone()).map_err(|err| ApiError::Unexpected {
            url: format!("{}{path}", self.base),
            detail: format!("the JSON is not what this CLI expects: {err}"),
        })?;
        Ok((typed, value))
    }

    /// `GET /api/v1/tasks/{id}`, typed and raw.
    pub async fn task(&self, id: &str) -> Result<(TaskView, Value), ApiError> {
        self.get(&format!("/api/v1/tasks/{id}"), &[]).await
    }

    /// The base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /api/v1/tasks/{id}/logs`: one page of a task's log lines.
    pub async fn task_logs(
        &self,
        id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<LogPageView, ApiError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        let (page, _) = self
            .get(&format!("/api/v1/tasks/{id}/logs"), &query)
            .await?;
        Ok(page)
    }

    /// `GET /api/v1/tasks`, typed and raw.
    pub async fn tasks(&self, query: &[(&str, String)]) -> Result<(TaskPage, Value), ApiError> {
        self.get("/api/v1/tasks", query).await
    }

    /// `GET /api/v1/nodes`, typed and raw.
    pub async fn nodes(&self) -> Result<(NodeList, Value), ApiError> {
        self.get("/api/v1/nodes", &[]).await
    }
}

/// One page of `GET /api/v1/tasks/{id}/logs`.
#[derive(Debug, Clone, Deserialize)]
pub struct LogPageView {
    pub lines: Vec<LogLineView>,
    pub next_after: Option<String>,
    pub finished: bool,
}

/// One log line, in a page or in an `event: line` of the live stream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LogLineView {
    pub attempt: u32,
    pub seq: u64,
    pub stream: String,
    pub line: String,
}

/// A task as `GET /api/v1/tasks[/{id}]` shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskView {
    pub id: Uuid,
    pub pool: String,
    pub kind: String,
    pub tenant: String,
    pub state: TaskState,
    pub attempt: u32,
    pub max_attempts: u32,
    #[serde(default)]
    pub node_id: Option<String>,
    #[serde(default)]
    pub priority: i32,
    pub resources: Resources,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub labels: Value,
    /// Labels a node must carry to run it.
    #[serde(default)]
    pub node_selector: Value,
    /// Why a queued task still waits, as the scheduler last saw it.
    #[serde(default)]
    pub wait_reason: Option<String>,
    #[serde(default)]
    pub spec: Value,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub queued_at: Option<Timestamp>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub scheduled_at: Option<Timestamp>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<Timestamp>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub finished_at: Option<Timestamp>,
    /// Only on `GET /api/v1/tasks/{id}`.
    #[serde(default)]
    pub events: Vec<EventView>,
}

/// One transition of a task's history.
#[derive(Debug, Clone, Deserialize)]
pub struct EventView {
    pub attempt: u32,
    #[serde(default)]
    pub from_state: Option<TaskState>,
    pub to_state: TaskState,
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
    #[serde(default)]
    pub node_id: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// One page of `GET /api/v1/tasks`.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskPage {
    pub tasks: Vec<TaskView>,
    /// The `before` of the next page; `None` on the last one.
    #[serde(default)]
    pub next_before: Option<i64>,
}

/// `GET /api/v1/nodes`.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeList {
    pub nodes: Vec<NodeView>,
}

/// A node as the API shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeView {
    pub id: String,
    pub health: String,
    pub capacity: Capacity,
    pub reserved: ReservedView,
    pub running: u32,
    #[serde(default)]
    pub draining: bool,
    /// An operator's "no new work here".
    #[serde(default)]
    pub cordoned: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub last_heartbeat_at: Timestamp,
}

/// What placed tasks hold on a node.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ReservedView {
    pub cpu_millis: i64,
    pub memory_mb: i64,
}
