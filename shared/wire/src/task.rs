//! What a client submits, and the checks that turn it into a [`NewTask`].
//!
//! A submission is one JSON object (a task), a JSON array of them (an atomic
//! batch: all are created or none), or a workflow object
//! `{"workflow": "<name>", "tasks": [...]}` (an atomic batch that is also
//! tracked as one workflow, with compensation). Unknown fields are errors, and every error
//! names the field it is about (`tasks[2].resources.cpu_millis`), so a client in
//! any language can fix its message without reading our code.

use crate::Timestamp;
pub use crate::rejection::{Rejection, RejectionCode};
use crate::storable::{self, NulFreeJson};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Pool used when a task names none.
pub const DEFAULT_POOL: &str = "default";
/// Tenant used when a task names none.
pub const DEFAULT_TENANT: &str = "default";
/// CPU a task asks for when it does not say (millicores).
pub const DEFAULT_CPU_MILLIS: u32 = 100;
/// Memory a task asks for when it does not say (MiB).
pub const DEFAULT_MEMORY_MB: u32 = 64;
/// Longest timeout a task may ask for: one week.
pub const MAX_TIMEOUT_MS: u64 = 7 * 24 * 3600 * 1000;
/// Most attempts a task may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// Largest CPU request accepted at all (a sanity bound, not a placement check).
pub const MAX_CPU_MILLIS: u32 = 1_024_000;
/// Largest memory request accepted at all (16 TiB).
pub const MAX_MEMORY_MB: u32 = 16 * 1024 * 1024;
/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;
/// Most labels on one task.
pub const MAX_LABELS: usize = 64;
/// Most dependencies one task may name.
pub const MAX_DEPENDENCIES: usize = 256;
/// Default bound on the serialized size of one task's `spec`.
pub const DEFAULT_MAX_SPEC_BYTES: usize = 64 * 1024;
/// Default bound on one submission message (a batch counts once).
pub const DEFAULT_MAX_SUBMISSION_BYTES: usize = 4 * 1024 * 1024;
/// Most tasks in one batch.
pub const MAX_BATCH_TASKS: usize = 10_000;
/// Methods the `http` driver sends. Others (CONNECT, TRACE, OPTIONS) have no
/// use as a task and some are proxy plumbing.
pub const HTTP_METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
/// Method of an `http` task that names none.
pub const DEFAULT_HTTP_METHOD: &str = "GET";
/// How long a `nats` task waits for its reply when it does not say.
pub const DEFAULT_NATS_TIMEOUT_MS: u64 = 30_000;
/// Longest subject a `nats` task may name (NATS itself allows more, but a
/// subject this long is a mistake rather than a service).
pub const MAX_NATS_SUBJECT_LEN: usize = 256;
/// How far ahead a task may be scheduled, in days (`run_at`, `delay_ms`):
/// 3650, about ten years. A start time becomes a scheduled message on the
/// TIMERS stream and a `timestamptz`. Go, and so nats-server, counts times
/// in int64 nanoseconds (to the year 2262): the schedule of a `9999-12-31`
/// start fired at once, and its timer spun (issue 10). Ten years is far
/// inside what NATS and Postgres (to the year 294276) hold, and beyond any
/// real schedule.
pub const MAX_SCHEDULE_HORIZON_DAYS: u32 = 3650;
/// [`MAX_SCHEDULE_HORIZON_DAYS`] as a duration.
pub const MAX_SCHEDULE_HORIZON: time::Duration =
    time::Duration::days(MAX_SCHEDULE_HORIZON_DAYS as i64);
/// Longest `delay_ms`: [`MAX_SCHEDULE_HORIZON_DAYS`] in milliseconds.
pub const MAX_DELAY_MS: u64 = MAX_SCHEDULE_HORIZON_DAYS as u64 * 24 * 3600 * 1000;
/// Longest `sleep` (`spec.ms`): a sleep longer than any timeout is a task
/// that can only time out.
pub const MAX_SLEEP_MS: u64 = MAX_TIMEOUT_MS;
/// Most arguments of an `exec` task. The kernel caps one program's
/// arguments and environment together (`ARG_MAX`, 2 MiB by default); the
/// spec's size bounds their bytes.
pub const MAX_EXEC_ARGS: usize = 1024;
/// Most environment variables an `exec` task sets.
pub const MAX_EXEC_ENV: usize = 256;
/// Most headers of an `http` or `nats` task.
pub const MAX_HEADERS: usize = 64;
/// JSON Schema `pattern` of a pool, tenant, step or workflow name (the
/// rule of [`crate::subjects::is_token`]).
pub const NAME_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";
/// JSON Schema `pattern` of a `depends_on` entry: a step name, or a task id
/// in any form `Uuid::parse_str` reads (hyphenated and simple ones are names
/// too).
pub const DEPENDENCY_PATTERN: &str =
    r"^([A-Za-z0-9_-]{1,64}|\{[0-9A-Fa-f-]{36}\}|urn:uuid:[0-9A-Fa-f-]{36})$";
/// JSON Schema `pattern` of an environment variable name: not empty, no
/// `=` (which would end the name early), no NUL.
pub const ENV_NAME_PATTERN: &str = r"^[^=\u0000]+$";
/// JSON Schema `pattern` of an HTTP or NATS header name (RFC 9110 `token`).
pub const HEADER_NAME_PATTERN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
/// JSON Schema `pattern` of an HTTP header value: no control character but
/// tab.
pub const HTTP_HEADER_VALUE_PATTERN: &str = r"^[^\u0000-\u0008\u000a-\u001f\u007f]*$";
/// JSON Schema `pattern` of a NATS header value: no line break, no NUL.
pub const NATS_HEADER_VALUE_PATTERN: &str = r"^[^\u0000\r\n]*$";
/// JSON Schema `pattern` of an `http` URL: the scheme (any case), then no
/// space or control character.
pub const HTTP_URL_PATTERN: &str = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\u0000-\u0020\u007f]+$";
/// JSON Schema `pattern` of a `nats` subject: dot-separated tokens, none
/// empty, without spaces, control characters or wildcards; not a `$` system
/// subject, not under `taskyard.`.
pub const NATS_SUBJECT_PATTERN: &str = r"^(?!taskyard(\.|$))(?!\$)[^\s\u0000-\u001f\u007f-\u009f*>.]+(\.[^\s\u0000-\u001f\u007f-\u009f*>.]+)*$";

/// The drivers a worker knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Run a command: `spec` is an [`ExecSpec`].
    Exec,
    /// Do nothing and succeed (benchmarks).
    Noop,
    /// Succeed with `spec` as the result.
    Echo,
    /// Sleep `spec.ms` milliseconds, then succeed: a [`SleepSpec`].
    Sleep,
    /// Fail with `spec.message`: a [`FailSpec`].
    Fail,
    /// Call an HTTP endpoint: an [`HttpSpec`].
    Http,
    /// Send a NATS request to a service and wait for its reply: a [`NatsSpec`].
    Nats,
}

impl std::str::FromStr for TaskKind {
    type Err = Rejection;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(Value::String(s.to_owned()))
            .map_err(|err| Rejection::new("kind", strip_position(&err.to_string())))
    }
}

impl TaskKind {
    /// The name on the wire and in Postgres.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Exec => "exec",
            TaskKind::Noop => "noop",
            TaskKind::Echo => "echo",
            TaskKind::Sleep => "sleep",
            TaskKind::Fail => "fail",
            TaskKind::Http => "http",
            TaskKind::Nats => "nats",
        }
    }
}

/// Resources a task reserves on its node while it runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU in millicores (1000 = one core).
    #[serde(default = "default_cpu")]
    #[schemars(range(max = MAX_CPU_MILLIS))]
    pub cpu_millis: u32,
    /// Memory in MiB.
    #[serde(default = "default_memory")]
    #[schemars(range(max = MAX_MEMORY_MB))]
    pub memory_mb: u32,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu_millis: DEFAULT_CPU_MILLIS,
            memory_mb: DEFAULT_MEMORY_MB,
        }
    }
}

fn default_cpu() -> u32 {
    DEFAULT_CPU_MILLIS
}
fn default_memory() -> u32 {
    DEFAULT_MEMORY_MB
}
fn default_pool() -> String {
    DEFAULT_POOL.to_owned()
}
fn default_tenant() -> String {
    DEFAULT_TENANT.to_owned()
}
fn default_attempts() -> u32 {
    1
}

/// One task as a client submits it. See `shared/wire/schemas/task.json`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSubmission {
    /// The task's id. Optional: Taskyard assigns a UUIDv7 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// Makes a resubmission a no-op: a second task with the same key is not
    /// created, and the first one's id is returned. 1 to 256 bytes (the
    /// schema's `maxLength` counts characters: a key of multi-byte
    /// characters meets the byte bound first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_IDEMPOTENCY_KEY_LEN))]
    pub idempotency_key: Option<String>,
    /// The pool that runs it.
    #[serde(default = "default_pool")]
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub pool: String,
    /// The driver that runs it.
    pub kind: TaskKind,
    /// The driver's input; its shape depends on `kind`.
    #[serde(default)]
    #[schemars(with = "NulFreeJson")]
    pub spec: Value,
    /// What it reserves on a node.
    #[serde(default)]
    pub resources: Resources,
    /// Higher runs earlier where the pool's policy honours priorities. Any
    /// 32-bit signed integer (a Postgres `integer`): priority classes only
    /// compare levels, they never compute with them.
    #[serde(default)]
    #[schemars(range(min = i32::MIN, max = i32::MAX))]
    pub priority: i32,
    /// Who it belongs to, for fair sharing.
    #[serde(default = "default_tenant")]
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub tenant: String,
    /// Deadline of one attempt, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_TIMEOUT_MS))]
    pub timeout_ms: Option<u64>,
    /// How many attempts before the task fails for good (1 = no retry).
    #[serde(default = "default_attempts")]
    #[schemars(range(min = 1, max = MAX_ATTEMPTS))]
    pub max_attempts: u32,
    /// Free-form labels, kept with the task.
    #[serde(default)]
    #[schemars(extend("maxProperties" = MAX_LABELS))]
    pub labels: BTreeMap<String, String>,
    /// Labels a node must carry to run this task, on top of its pool's
    /// selector.
    #[serde(default)]
    #[schemars(extend("maxProperties" = MAX_LABELS))]
    pub node_selector: BTreeMap<String, String>,
    /// How long the task is expected to run, in milliseconds: shortest job
    /// first serves the shortest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_TIMEOUT_MS))]
    pub estimated_runtime_ms: Option<u64>,
    /// The wait before the first retry, in milliseconds; each further retry
    /// waits twice as long, up to `retry_backoff_max_ms`, jittered down by up
    /// to half. The pool's setting when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_TIMEOUT_MS))]
    pub retry_backoff_ms: Option<u64>,
    /// The longest wait between attempts, in milliseconds. The pool's
    /// setting when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_TIMEOUT_MS))]
    pub retry_backoff_max_ms: Option<u64>,
    /// Start no earlier than this many milliseconds after submission: at
    /// most 3650 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_DELAY_MS))]
    pub delay_ms: Option<u64>,
    /// Start no earlier than this time (RFC 3339): at most 3650 days from
    /// now; a time in the past means now. Exclusive with `delay_ms`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::rfc3339::option"
    )]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub run_at: Option<Timestamp>,
    /// A task still not placed on a node this many milliseconds after it
    /// was queued is rolled back to `rejected`, and its dependents cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_TIMEOUT_MS))]
    pub schedule_timeout_ms: Option<u64>,
    /// The task's name within its batch or workflow, for `depends_on`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub name: Option<String>,
    /// Tasks that must succeed before this one is queued: ids of existing
    /// tasks, or names of tasks in the same batch or workflow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_DEPENDENCIES), inner(regex(pattern = DEPENDENCY_PATTERN)))]
    pub depends_on: Vec<String>,
    /// A task (same shape, without `depends_on` or `compensation`) that
    /// undoes this one: run when a later step of its workflow fails for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<BTreeMap<String, NulFreeJson>>")]
    pub compensation: Option<Value>,
}

/// A workflow as a client submits it. See `shared/wire/schemas/workflow.json`.
///
/// Its tasks are an atomic batch whose steps name each other in `depends_on`;
/// Taskyard also records the workflow itself, which ends `succeeded` when
/// every step did, or runs the `compensation` of its completed steps (in
/// reverse order of completion) when a step fails for good.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSubmission {
    /// The workflow's name: 1 to 64 letters, digits, `-` or `_`.
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub workflow: String,
    /// Its steps, in any order: 1 to 10000.
    #[schemars(length(min = 1, max = MAX_BATCH_TASKS))]
    pub tasks: Vec<TaskSubmission>,
}

/// Input of the `exec` driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    /// The program, looked up on the worker's PATH when not absolute.
    pub command: String,
    /// Its arguments: at most 1024.
    #[serde(default)]
    #[schemars(length(max = MAX_EXEC_ARGS))]
    pub args: Vec<String>,
    /// Extra environment variables: at most 256; a name is not empty and
    /// has no `=`.
    #[serde(default)]
    #[schemars(extend("maxProperties" = MAX_EXEC_ENV, "propertyNames" = {"pattern": ENV_NAME_PATTERN}))]
    pub env: BTreeMap<String, String>,
    /// Working directory; the worker's task directory when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Written to the program's standard input, which is then closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
}

/// Input of the `sleep` driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SleepSpec {
    /// How long to sleep, in milliseconds: at most a week.
    #[schemars(range(max = MAX_SLEEP_MS))]
    pub ms: u64,
}

/// Input of the `fail` driver.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailSpec {
    /// The error the task fails with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Input of the `http` driver: one request, judged by its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// One of GET, POST, PUT, PATCH, DELETE, HEAD (upper case, as HTTP spells them).
    #[serde(default = "default_http_method")]
    #[schemars(extend("enum" = HTTP_METHODS))]
    pub method: String,
    /// An absolute `http://` or `https://` URL, with no space or control
    /// character.
    #[schemars(regex(pattern = HTTP_URL_PATTERN))]
    pub url: String,
    /// Request headers: at most 64; a value holds no control character but
    /// tab.
    #[serde(default)]
    #[schemars(extend(
        "maxProperties" = MAX_HEADERS,
        "propertyNames" = {"pattern": HEADER_NAME_PATTERN},
        "additionalProperties" = {"type": "string", "pattern": HTTP_HEADER_VALUE_PATTERN}
    ))]
    pub headers: BTreeMap<String, String>,
    /// Request body, sent as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Statuses that count as success; any 2xx when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), inner(range(min = 100, max = 599)))]
    pub expected_status: Option<Vec<u16>>,
    /// Deadline of the request in milliseconds, on top of the task's own
    /// `timeout_ms` (the shorter wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_TIMEOUT_MS))]
    pub timeout_ms: Option<u64>,
}

fn default_http_method() -> String {
    DEFAULT_HTTP_METHOD.to_owned()
}

impl HttpSpec {
    /// Whether `status` counts as success for this request.
    pub fn expects(&self, status: u16) -> bool {
        match &self.expected_status {
            Some(expected) => expected.contains(&status),
            None => (200..300).contains(&status),
        }
    }

    /// The statuses that count as success, for error messages: `2xx` or
    /// `200, 404`.
    pub fn expected_text(&self) -> String {
        match &self.expected_status {
            Some(expected) => expected
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            None => "2xx".to_owned(),
        }
    }
}

/// Input of the `nats` driver: one request to a NATS service (any language),
/// whose reply is the task's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsSpec {
    /// Where the service listens: a subject without wildcards, outside
    /// Taskyard's own `taskyard.` subjects and the server's `$` subjects;
    /// 1 to 256 bytes.
    #[schemars(length(min = 1, max = MAX_NATS_SUBJECT_LEN), regex(pattern = NATS_SUBJECT_PATTERN))]
    pub subject: String,
    /// The request body: a JSON string is sent as its raw text, anything else
    /// as JSON. Absent or `null` sends an empty body.
    #[serde(default)]
    #[schemars(with = "NulFreeJson")]
    pub payload: Value,
    /// How long to wait for the reply, in milliseconds (default 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_TIMEOUT_MS))]
    pub timeout_ms: Option<u64>,
    /// NATS headers sent with the request: at most 64; a value holds no
    /// line break.
    #[serde(default)]
    #[schemars(extend(
        "maxProperties" = MAX_HEADERS,
        "propertyNames" = {"pattern": HEADER_NAME_PATTERN},
        "additionalProperties" = {"type": "string", "pattern": NATS_HEADER_VALUE_PATTERN}
    ))]
    pub headers: BTreeMap<String, String>,
}

impl NatsSpec {
    /// The body the request carries.
    pub fn payload_bytes(&self) -> Vec<u8> {
        match &self.payload {
            Value::Null => Vec::new(),
            Value::String(text) => text.as_bytes().to_vec(),
            other => serde_json::to_vec(other).unwrap_or_default(),
        }
    }

    /// How long to wait for the reply.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms.unwrap_or(DEFAULT_NATS_TIMEOUT_MS)
    }
}

/// A task's driver and its parsed input.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    Exec(ExecSpec),
    Noop,
    Echo(Value),
    Sleep(SleepSpec),
    Fail(FailSpec),
    Http(HttpSpec),
    Nats(NatsSpec),
}

impl Job {
    /// Parses `spec` for `kind`. Errors name the field under `spec`.
    pub fn parse(kind: TaskKind, spec: &Value) -> Result<Job, Rejection> {
        Ok(match kind {
            TaskKind::Exec => {
                let exec: ExecSpec = parse_at("spec", spec.clone())?;
                check_exec(&exec)?;
                Job::Exec(exec)
            }
            TaskKind::Noop => match spec {
                Value::Null => Job::Noop,
                Value::Object(map) if map.is_empty() => Job::Noop,
                _ => {
                    return Err(Rejection::new(
                        "spec",
                        "the noop driver takes no spec (null or {})",
                    ));
                }
            },
            TaskKind::Echo => Job::Echo(spec.clone()),
            TaskKind::Sleep => {
                if spec.is_null() {
                    return Err(Rejection::new("spec.ms", "missing field `ms`"));
                }
                let sleep: SleepSpec = parse_at("spec", spec.clone())?;
                if sleep.ms > MAX_SLEEP_MS {
                    return Err(Rejection::new(
                        "spec.ms",
                        format!("must be at most {MAX_SLEEP_MS} (a week)"),
                    ));
                }
                Job::Sleep(sleep)
            }
            TaskKind::Fail => {
                if spec.is_null() {
                    Job::Fail(FailSpec::default())
                } else {
                    Job::Fail(parse_at("spec", spec.clone())?)
                }
            }
            TaskKind::Http => {
                if spec.is_null() {
                    return Err(Rejection::new("spec.url", "missing field `url`"));
                }
                let http: HttpSpec = parse_at("spec", spec.clone())?;
                check_http(&http)?;
                Job::Http(http)
            }
            TaskKind::Nats => {
                if spec.is_null() {
                    return Err(Rejection::new("spec.subject", "missing field `subject`"));
                }
                let nats: NatsSpec = parse_at("spec", spec.clone())?;
                check_nats(&nats)?;
                Job::Nats(nats)
            }
        })
    }
}

fn check_exec(spec: &ExecSpec) -> Result<(), Rejection> {
    if spec.command.trim().is_empty() {
        return Err(Rejection::new("spec.command", "must not be empty"));
    }
    if spec.args.len() > MAX_EXEC_ARGS {
        return Err(Rejection::new(
            "spec.args",
            format!("at most {MAX_EXEC_ARGS} arguments"),
        ));
    }
    if spec.env.len() > MAX_EXEC_ENV {
        return Err(Rejection::new(
            "spec.env",
            format!("at most {MAX_EXEC_ENV} variables"),
        ));
    }
    // The environment is a list of `NAME=value` strings: a name with `=`
    // would set another variable than the one named, and an empty one none.
    if let Some(name) = spec
        .env
        .keys()
        .find(|name| name.is_empty() || name.contains('='))
    {
        let field = if name.is_empty() {
            "spec.env".to_owned()
        } else {
            format!("spec.env.{name}")
        };
        return Err(Rejection::new(
            field,
            "a variable name is not empty and has no `=`",
        ));
    }
    Ok(())
}

/// At most [`MAX_HEADERS`] headers.
fn check_header_count(headers: &BTreeMap<String, String>) -> Result<(), Rejection> {
    if headers.len() > MAX_HEADERS {
        return Err(Rejection::new(
            "spec.headers",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    Ok(())
}

fn check_http(spec: &HttpSpec) -> Result<(), Rejection> {
    if !HTTP_METHODS.contains(&spec.method.as_str()) {
        return Err(Rejection::new(
            "spec.method",
            format!(
                "`{}` is not one of {}",
                spec.method,
                HTTP_METHODS.join(", ")
            ),
        ));
    }
    check_http_url(&spec.url).map_err(|why| Rejection::new("spec.url", why))?;
    check_header_count(&spec.headers)?;
    for (name, value) in &spec.headers {
        let field = format!("spec.headers.{name}");
        if name.is_empty() || !name.bytes().all(is_http_token_byte) {
            return Err(Rejection::new(
                field,
                "a header name is letters, digits and !#$%&'*+-.^_`|~",
            ));
        }
        // Tabs are allowed inside a value; other control bytes (CR, LF above
        // all) would split or end the header.
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(Rejection::new(
                field,
                "a header value must not contain control characters",
            ));
        }
    }
    if let Some(expected) = &spec.expected_status {
        if expected.is_empty() {
            return Err(Rejection::new(
                "spec.expected_status",
                "name at least one status, or leave it out for any 2xx",
            ));
        }
        if let Some(index) = expected.iter().position(|s| !(100..=599).contains(s)) {
            return Err(Rejection::new(
                format!("spec.expected_status[{index}]"),
                "an HTTP status is between 100 and 599",
            ));
        }
    }
    check_timeout("spec.timeout_ms", spec.timeout_ms)
}

/// RFC 9110 `tchar`.
fn is_http_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks the shape of an absolute http(s) URL: scheme, a host, a numeric
/// port if any, nothing a request line cannot carry. The worker's HTTP client
/// parses it fully; this catches what a client can fix before it submits.
fn check_http_url(url: &str) -> Result<(), String> {
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("must not contain spaces or control characters".to_owned());
    }
    let rest = match url.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            rest
        }
        _ => return Err(format!("`{url}` is not an http:// or https:// URL")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Credentials may come before the host.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((v6, after)) if !v6.is_empty() => match after {
                "" => (v6, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (v6, Some(port)),
                    None => return Err(format!("`{url}` has a malformed IPv6 host")),
                },
            },
            _ => return Err(format!("`{url}` has a malformed IPv6 host")),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(format!("`{url}` names no host"));
    }
    if let Some(port) = port
        && !port.is_empty()
        && port.parse::<u16>().is_err()
    {
        return Err(format!("`{url}` has an invalid port `{port}`"));
    }
    Ok(())
}

fn check_nats(spec: &NatsSpec) -> Result<(), Rejection> {
    let subject = spec.subject.as_str();
    let bad = |why: &str| Err(Rejection::new("spec.subject", format!("`{subject}` {why}")));
    if subject.is_empty() || subject.len() > MAX_NATS_SUBJECT_LEN {
        return bad(&format!("must be 1 to {MAX_NATS_SUBJECT_LEN} bytes long"));
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces or control characters");
    }
    if subject.split('.').any(str::is_empty) {
        return bad("has an empty token (a leading, trailing or double `.`)");
    }
    if subject.contains(['*', '>']) {
        return bad("must not contain the wildcards `*` or `>`: a request goes to one subject");
    }
    if subject.starts_with('$') {
        return bad("is a NATS system subject (`$...`)");
    }
    if subject.split('.').next() == Some("taskyard") {
        return bad("is one of Taskyard's own subjects (`taskyard.`)");
    }
    check_header_count(&spec.headers)?;
    for (name, value) in &spec.headers {
        let field = format!("spec.headers.{name}");
        // A NATS header line is `Name: value`, as in HTTP/1.
        if name.is_empty() || !name.bytes().all(is_http_token_byte) {
            return Err(Rejection::new(
                field,
                "a header name is letters, digits and !#$%&'*+-.^_`|~",
            ));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(Rejection::new(
                field,
                "a header value must not contain line breaks",
            ));
        }
    }
    check_timeout("spec.timeout_ms", spec.timeout_ms)
}

fn check_timeout(field: &str, timeout_ms: Option<u64>) -> Result<(), Rejection> {
    match timeout_ms {
        Some(timeout) if !(1..=MAX_TIMEOUT_MS).contains(&timeout) => Err(Rejection::new(
            field,
            format!("must be between 1 and {MAX_TIMEOUT_MS}"),
        )),
        _ => Ok(()),
    }
}

/// Limits a submission is checked against; the orchestrator's config sets them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest serialized `spec` of one task, in bytes.
    pub max_spec_bytes: usize,
    /// Largest submission message, in bytes.
    pub max_submission_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_spec_bytes: DEFAULT_MAX_SPEC_BYTES,
            max_submission_bytes: DEFAULT_MAX_SUBMISSION_BYTES,
        }
    }
}

/// A validated task, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// Given by the client, or `None` for the orchestrator to assign.
    pub id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub pool: String,
    pub kind: TaskKind,
    pub spec: Value,
    pub resources: Resources,
    pub priority: i32,
    pub tenant: String,
    pub timeout_ms: Option<u64>,
    pub max_attempts: u32,
    pub labels: BTreeMap<String, String>,
    pub node_selector: BTreeMap<String, String>,
    pub estimated_runtime_ms: Option<u64>,
    pub retry_backoff_ms: Option<u64>,
    pub retry_backoff_max_ms: Option<u64>,
    /// When it may start at the earliest (`run_at`, or submission + `delay_ms`
    /// resolved by the orchestrator); `None` for now.
    pub run_at: Option<Timestamp>,
    pub delay_ms: Option<u64>,
    pub schedule_timeout_ms: Option<u64>,
    pub name: Option<String>,
    pub depends_on: Vec<String>,
    /// The validated compensation task, as submitted.
    pub compensation: Option<Value>,
}

/// The outcome of reading one submission message.
#[derive(Debug)]
pub enum Parsed {
    /// Every task is valid.
    Valid(Vec<NewTask>),
    /// The message is JSON but something in it is wrong. `elements` are the raw
    /// tasks (one for a single task), so each can be recorded as rejected.
    Invalid {
        elements: Vec<Value>,
        rejection: Rejection,
    },
    /// Not JSON at all (or not an object/array): there is nothing to record.
    Unreadable(Rejection),
}

/// A submission read whole: its tasks, and the workflow they form when it
/// was a workflow object.
#[derive(Debug)]
pub struct Submission {
    /// The workflow's name as sent (cut to 64 characters when it is not a
    /// valid name, so that the refusal can still be recorded under it);
    /// `None` for a task or a batch.
    pub workflow: Option<String>,
    /// Its tasks (a workflow's `tasks`).
    pub parsed: Parsed,
}

/// Reads a submission: one task object or an array of them (an atomic batch).
/// A workflow object reads as its tasks; [`read_submission`] also gives its
/// name.
pub fn parse_submission(bytes: &[u8], limits: &Limits) -> Parsed {
    read_submission(bytes, limits).parsed
}

/// Reads a submission of any shape: a task, a batch, or a workflow object
/// (an object with a `workflow` or `tasks` field, which a task never has).
pub fn read_submission(bytes: &[u8], limits: &Limits) -> Submission {
    let unreadable = |rejection| Submission {
        workflow: None,
        parsed: Parsed::Unreadable(rejection),
    };
    if bytes.len() > limits.max_submission_bytes {
        return unreadable(Rejection::new(
            "",
            format!(
                "submission is {} bytes; the limit is {}",
                bytes.len(),
                limits.max_submission_bytes
            ),
        ));
    }
    // serde_json refuses here what no task could be: a lone surrogate
    // (`"\ud800"`), nesting deeper than 128 levels, a number beyond f64.
    let mut value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(err) => return unreadable(Rejection::new("", not_json(&err))),
    };
    // Before anything else, so that no later check echoes a NUL into its
    // message, and in one walk over the whole message.
    if let Some(rejection) = storable::find_nul(&value).map(|at| at.rejection(value.is_array())) {
        storable::scrub_nul(&mut value);
        return refused_whole(value, rejection);
    }
    match value {
        Value::Object(mut object) if is_workflow(&object) => {
            let name = echoed_workflow_name(&object);
            let tasks = object.remove("tasks");
            let parsed = read_workflow(&object, tasks, limits).unwrap_or_else(|refused| refused);
            Submission {
                workflow: Some(name),
                parsed,
            }
        }
        value => Submission {
            workflow: None,
            parsed: parse_value(value, limits),
        },
    }
}

/// Why bytes are not JSON, with a hint where serde_json's own words are
/// terse: it names a bad `\u` escape ("unexpected end of hex escape"), not
/// the lone surrogate that is behind it.
fn not_json(err: &serde_json::Error) -> String {
    let text = err.to_string();
    if text.contains("hex escape") {
        format!(
            "not valid JSON: {text} (a `\\uD800`-`\\uDFFF` escape is only valid as half of a surrogate pair: text must be Unicode)"
        )
    } else {
        format!("not valid JSON: {text}")
    }
}

/// Longest workflow name copied from a refused workflow object.
const MAX_ECHOED_WORKFLOW: usize = 64;

/// An object with a `workflow` or `tasks` field, which a task never has.
fn is_workflow(object: &serde_json::Map<String, Value>) -> bool {
    object.contains_key("workflow") || object.contains_key("tasks")
}

/// The workflow name to record a workflow object under, even a refused one.
fn echoed_workflow_name(object: &serde_json::Map<String, Value>) -> String {
    match object.get("workflow") {
        Some(Value::String(name)) => name.chars().take(MAX_ECHOED_WORKFLOW).collect(),
        Some(other) => other
            .to_string()
            .chars()
            .take(MAX_ECHOED_WORKFLOW)
            .collect(),
        None => String::new(),
    }
}

/// A submission refused as a whole before its tasks were looked at (it
/// holds a NUL): every task it has is recorded with `rejection`, as far as
/// it has any.
fn refused_whole(value: Value, rejection: Rejection) -> Submission {
    let invalid = |elements| Parsed::Invalid {
        elements,
        rejection: rejection.clone(),
    };
    match value {
        Value::Object(mut object) if is_workflow(&object) => {
            let name = echoed_workflow_name(&object);
            let parsed = match object.remove("tasks") {
                Some(Value::Array(elements)) if !elements.is_empty() => invalid(elements),
                _ => Parsed::Unreadable(rejection.clone()),
            };
            Submission {
                workflow: Some(name),
                parsed,
            }
        }
        Value::Array(elements) if !elements.is_empty() => Submission {
            workflow: None,
            parsed: invalid(elements),
        },
        value @ Value::Object(_) => Submission {
            workflow: None,
            parsed: invalid(vec![value]),
        },
        _ => Submission {
            workflow: None,
            parsed: Parsed::Unreadable(rejection.clone()),
        },
    }
}

/// The tasks of a workflow object (without its `tasks`, passed apart).
/// Errors in the object itself reject every task; a workflow without tasks
/// has nothing to record.
fn read_workflow(
    object: &serde_json::Map<String, Value>,
    tasks: Option<Value>,
    limits: &Limits,
) -> Result<Parsed, Parsed> {
    let elements = match tasks {
        Some(Value::Array(elements)) if !elements.is_empty() => elements,
        Some(Value::Array(_)) => {
            return Err(Parsed::Unreadable(Rejection::new(
                "tasks",
                "a workflow needs at least one task",
            )));
        }
        Some(other) => {
            return Err(Parsed::Unreadable(Rejection::new(
                "tasks",
                format!("must be an array of tasks, not {}", json_type(&other)),
            )));
        }
        None => {
            return Err(Parsed::Unreadable(Rejection::new(
                "tasks",
                "missing field `tasks`",
            )));
        }
    };
    let invalid = |rejection| Parsed::Invalid {
        elements: elements.clone(),
        rejection,
    };
    if let Some(unknown) = object
        .keys()
        .find(|key| !matches!(key.as_str(), "workflow" | "tasks"))
    {
        return Err(invalid(Rejection::new(
            unknown.as_str(),
            format!("unknown field `{unknown}`, expected `workflow` or `tasks`"),
        )));
    }
    match object.get("workflow") {
        None => {
            return Err(invalid(Rejection::new(
                "workflow",
                "missing field `workflow`",
            )));
        }
        Some(Value::String(name)) => check_token("workflow", name).map_err(invalid)?,
        Some(other) => {
            return Err(invalid(Rejection::new(
                "workflow",
                format!("must be a string, not {}", json_type(other)),
            )));
        }
    }
    Ok(parse_elements(elements, limits))
}

/// Reads a task object or a batch array.
fn parse_value(value: Value, limits: &Limits) -> Parsed {
    match value {
        Value::Array(elements) => {
            if elements.is_empty() {
                return Parsed::Unreadable(Rejection::new("", "an empty batch has no task"));
            }
            parse_elements(elements, limits)
        }
        Value::Object(_) => match check_task(&value, limits) {
            Ok(task) => Parsed::Valid(vec![task]),
            Err(rejection) => Parsed::Invalid {
                elements: vec![value],
                rejection,
            },
        },
        other => Parsed::Unreadable(Rejection::new(
            "",
            format!(
                "a submission is a task object, an array of tasks or a workflow object, not {}",
                json_type(&other)
            ),
        )),
    }
}

/// Validates the tasks of a batch or a workflow (at least one).
fn parse_elements(elements: Vec<Value>, limits: &Limits) -> Parsed {
    if elements.len() > MAX_BATCH_TASKS {
        return Parsed::Invalid {
            rejection: Rejection::new(
                "",
                format!(
                    "a batch holds at most {MAX_BATCH_TASKS} tasks; this one has {}",
                    elements.len()
                ),
            ),
            elements,
        };
    }
    let mut tasks = Vec::with_capacity(elements.len());
    for (index, element) in elements.iter().enumerate() {
        match check_task(element, limits) {
            Ok(task) => tasks.push(task),
            Err(rejection) => {
                return Parsed::Invalid {
                    elements,
                    rejection: rejection.in_batch(index),
                };
            }
        }
    }
    if let Some(rejection) = duplicate_in_batch(&tasks) {
        return Parsed::Invalid {
            elements,
            rejection,
        };
    }
    Parsed::Valid(tasks)
}

/// Two tasks of one batch must not share an id or an idempotency key: one of
/// them would silently vanish.
fn duplicate_in_batch(tasks: &[NewTask]) -> Option<Rejection> {
    let mut ids = std::collections::HashMap::new();
    let mut keys = std::collections::HashMap::new();
    for (index, task) in tasks.iter().enumerate() {
        if let Some(id) = task.id
            && let Some(first) = ids.insert(id, index)
        {
            return Some(Rejection::new(
                format!("tasks[{index}].id"),
                format!("repeats the id of tasks[{first}]"),
            ));
        }
        if let Some(key) = &task.idempotency_key
            && let Some(first) = keys.insert(key.clone(), index)
        {
            return Some(Rejection::new(
                format!("tasks[{index}].idempotency_key"),
                format!("repeats the idempotency key of tasks[{first}]"),
            ));
        }
    }
    None
}

/// Validates one task object.
pub fn validate_task(value: &Value, limits: &Limits) -> Result<NewTask, Rejection> {
    if let Some(at) = storable::find_nul(value) {
        return Err(at.rejection(false));
    }
    check_task(value, limits)
}

/// Validates one task object already known to hold no NUL (the walk over a
/// whole submission is done once, in [`read_submission`]).
fn check_task(value: &Value, limits: &Limits) -> Result<NewTask, Rejection> {
    if !value.is_object() {
        return Err(Rejection::new(
            "",
            format!("a task is a JSON object, not {}", json_type(value)),
        ));
    }
    let sub: TaskSubmission = parse_at("", value.clone())?;
    if let Some(key) = &sub.idempotency_key
        && (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN)
    {
        return Err(Rejection::new(
            "idempotency_key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} bytes long"),
        ));
    }
    check_token("pool", &sub.pool)?;
    check_token("tenant", &sub.tenant)?;
    if sub.resources.cpu_millis > MAX_CPU_MILLIS {
        return Err(Rejection::new(
            "resources.cpu_millis",
            format!("must be at most {MAX_CPU_MILLIS}"),
        ));
    }
    if sub.resources.memory_mb > MAX_MEMORY_MB {
        return Err(Rejection::new(
            "resources.memory_mb",
            format!("must be at most {MAX_MEMORY_MB}"),
        ));
    }
    if let Some(timeout) = sub.timeout_ms
        && !(1..=MAX_TIMEOUT_MS).contains(&timeout)
    {
        return Err(Rejection::new(
            "timeout_ms",
            format!("must be between 1 and {MAX_TIMEOUT_MS}"),
        ));
    }
    if !(1..=MAX_ATTEMPTS).contains(&sub.max_attempts) {
        return Err(Rejection::new(
            "max_attempts",
            format!("must be between 1 and {MAX_ATTEMPTS}"),
        ));
    }
    if sub.labels.len() > MAX_LABELS {
        return Err(Rejection::new(
            "labels",
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    if let Some(estimate) = sub.estimated_runtime_ms
        && !(1..=MAX_TIMEOUT_MS).contains(&estimate)
    {
        return Err(Rejection::new(
            "estimated_runtime_ms",
            format!("must be between 1 and {MAX_TIMEOUT_MS}"),
        ));
    }
    if sub.node_selector.len() > MAX_LABELS {
        return Err(Rejection::new(
            "node_selector",
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    let spec_bytes = serde_json::to_vec(&sub.spec).map(|v| v.len()).unwrap_or(0);
    if spec_bytes > limits.max_spec_bytes {
        return Err(Rejection::new(
            "spec",
            format!(
                "spec is {spec_bytes} bytes; the limit is {} bytes",
                limits.max_spec_bytes
            ),
        ));
    }
    Job::parse(sub.kind, &sub.spec)?;
    check_timing(&sub)?;
    check_workflow_fields(&sub, limits)?;
    Ok(NewTask {
        id: sub.id,
        idempotency_key: sub.idempotency_key,
        pool: sub.pool,
        kind: sub.kind,
        spec: sub.spec,
        resources: sub.resources,
        priority: sub.priority,
        tenant: sub.tenant,
        timeout_ms: sub.timeout_ms,
        max_attempts: sub.max_attempts,
        labels: sub.labels,
        node_selector: sub.node_selector,
        estimated_runtime_ms: sub.estimated_runtime_ms,
        retry_backoff_ms: sub.retry_backoff_ms,
        retry_backoff_max_ms: sub.retry_backoff_max_ms,
        run_at: sub.run_at,
        delay_ms: sub.delay_ms,
        schedule_timeout_ms: sub.schedule_timeout_ms,
        name: sub.name,
        depends_on: sub.depends_on,
        compensation: sub.compensation,
    })
}

/// Backoff, delay, start time and placement deadline: bounded, and
/// `delay_ms` and `run_at` not both.
fn check_timing(sub: &TaskSubmission) -> Result<(), Rejection> {
    for (field, value) in [
        ("retry_backoff_ms", sub.retry_backoff_ms),
        ("retry_backoff_max_ms", sub.retry_backoff_max_ms),
    ] {
        if let Some(ms) = value
            && ms > MAX_TIMEOUT_MS
        {
            return Err(Rejection::new(
                field,
                format!("must be at most {MAX_TIMEOUT_MS}"),
            ));
        }
    }
    if let Some(ms) = sub.schedule_timeout_ms
        && !(1..=MAX_TIMEOUT_MS).contains(&ms)
    {
        return Err(Rejection::new(
            "schedule_timeout_ms",
            format!("must be between 1 and {MAX_TIMEOUT_MS}"),
        ));
    }
    if sub.delay_ms.is_some() && sub.run_at.is_some() {
        return Err(Rejection::new(
            "run_at",
            "give `run_at` or `delay_ms`, not both",
        ));
    }
    if let Some(ms) = sub.delay_ms
        && ms > MAX_DELAY_MS
    {
        return Err(Rejection::new(
            "delay_ms",
            format!(
                "must be at most {MAX_DELAY_MS} ({MAX_SCHEDULE_HORIZON_DAYS} days, about ten years)"
            ),
        ));
    }
    // Only the far side is bounded: a time in the past means "now" (the
    // task is queued at once and its `run_at` is not stored), so however
    // old it is, nothing holds it.
    if let Some(at) = sub.run_at
        && at > crate::now() + MAX_SCHEDULE_HORIZON
    {
        return Err(Rejection::new(
            "run_at",
            format!(
                "must be at most {MAX_SCHEDULE_HORIZON_DAYS} days (about ten years) from now: a durable timer cannot hold a later start"
            ),
        ));
    }
    Ok(())
}

/// A step name is a token; dependencies are bounded and non-empty; a
/// compensation is itself a valid task, without dependencies or a
/// compensation of its own.
fn check_workflow_fields(sub: &TaskSubmission, limits: &Limits) -> Result<(), Rejection> {
    if let Some(name) = &sub.name {
        check_token("name", name)?;
    }
    if sub.depends_on.len() > MAX_DEPENDENCIES {
        return Err(Rejection::new(
            "depends_on",
            format!("at most {MAX_DEPENDENCIES} dependencies"),
        ));
    }
    for (index, dependency) in sub.depends_on.iter().enumerate() {
        if Uuid::parse_str(dependency).is_err() && !crate::subjects::is_token(dependency) {
            return Err(Rejection::new(
                format!("depends_on[{index}]"),
                "names a task by its id or by its name in the batch",
            ));
        }
    }
    if let Some(compensation) = &sub.compensation {
        let undo = check_task(compensation, limits).map_err(|r| r.within("compensation"))?;
        if !undo.depends_on.is_empty() || undo.compensation.is_some() {
            return Err(Rejection::new(
                "compensation",
                "a compensation has no `depends_on` or `compensation` of its own",
            ));
        }
    }
    Ok(())
}

fn check_token(field: &str, value: &str) -> Result<(), Rejection> {
    if crate::subjects::is_token(value) {
        Ok(())
    } else {
        Err(Rejection::new(
            field,
            format!("`{value}` is not a valid name: use 1 to 64 letters, digits, `-` or `_`"),
        ))
    }
}

/// Deserializes `value` as `T`, and on error names the failing field, prefixed
/// by `prefix`.
fn parse_at<T: DeserializeOwned>(prefix: &str, value: Value) -> Result<T, Rejection> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        // serde_path_to_error reports "." for the root and the parent of an
        // unknown or missing field; name the field itself when serde says it.
        let field = field_in_message(&inner)
            .filter(|_| inner.starts_with("unknown field") || inner.starts_with("missing field"))
            .map(|name| join_path(&path, name))
            .unwrap_or_else(|| if path == "." { String::new() } else { path });
        let field = match (prefix.is_empty(), field.is_empty()) {
            (true, _) => field,
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix}.{field}"),
        };
        Rejection::new(field, strip_position(&inner))
    })
}

fn join_path(path: &str, name: &str) -> String {
    if path == "." || path.is_empty() {
        name.to_owned()
    } else if path == name || path.ends_with(&format!(".{name}")) {
        // serde_path_to_error already names an unknown field itself.
        path.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The backquoted name in serde's "unknown field `x`" / "missing field `x`".
fn field_in_message(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// serde_json adds "at line 1 column 7" even for in-memory values; it means
/// nothing to a client that sent bytes we re-parsed.
fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reject(value: Value) -> Rejection {
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        match parse_submission(&bytes, &Limits::default()) {
            Parsed::Invalid { rejection, .. } | Parsed::Unreadable(rejection) => rejection,
            Parsed::Valid(tasks) => panic!("expected a rejection, got {tasks:?}"),
        }
    }

    #[test]
    fn a_minimal_task_gets_defaults() {
        let bytes = br#"{"kind":"noop"}"#;
        let Parsed::Valid(tasks) = parse_submission(bytes, &Limits::default()) else {
            panic!("noop should be valid");
        };
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].pool, "default");
        assert_eq!(tasks[0].tenant, "default");
        assert_eq!(tasks[0].max_attempts, 1);
        assert_eq!(tasks[0].resources, Resources::default());
    }

    #[test]
    fn unknown_fields_are_named() {
        let r = reject(json!({"kind": "noop", "colour": "red"}));
        assert_eq!(r.field, "colour");
        assert!(
            r.message.contains("unknown field `colour`"),
            "{}",
            r.message
        );
        let r = reject(json!({"kind": "noop", "resources": {"gpus": 1}}));
        assert_eq!(r.field, "resources.gpus");
    }

    #[test]
    fn unknown_kind_is_named() {
        let r = reject(json!({"kind": "teleport"}));
        assert_eq!(r.field, "kind");
        assert!(
            r.message.contains("unknown variant `teleport`"),
            "{}",
            r.message
        );
    }

    #[test]
    fn missing_kind_is_named() {
        let r = reject(json!({"pool": "default"}));
        assert_eq!(r.field, "kind");
        assert!(r.message.contains("missing field `kind`"), "{}", r.message);
    }

    #[test]
    fn wrong_types_are_named() {
        let r = reject(json!({"kind": "noop", "resources": {"cpu_millis": "lots"}}));
        assert_eq!(r.field, "resources.cpu_millis");
        let r = reject(json!({"kind": "exec", "spec": {"command": "ls", "args": [1]}}));
        assert_eq!(r.field, "spec.args[0]");
        let r = reject(json!({"kind": "exec", "spec": {}}));
        assert_eq!(r.field, "spec.command");
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(reject(json!({"kind": "noop", "pool": "a.b"})).field, "pool");
        assert_eq!(
            reject(json!({"kind": "noop", "max_attempts": 0})).field,
            "max_attempts"
        );
        assert_eq!(
            reject(json!({"kind": "noop", "timeout_ms": 0})).field,
            "timeout_ms"
        );
        assert_eq!(
            reject(json!({"kind": "noop", "spec": {"x": 1}})).field,
            "spec"
        );
        assert_eq!(reject(json!({"kind": "sleep"})).field, "spec.ms");
    }

    #[test]
    fn an_oversize_spec_is_named() {
        let big = "x".repeat(DEFAULT_MAX_SPEC_BYTES + 1);
        let r = reject(json!({"kind": "echo", "spec": {"blob": big}}));
        assert_eq!(r.field, "spec");
        assert!(
            r.message.contains("the limit is 65536 bytes"),
            "{}",
            r.message
        );
    }

    #[test]
    fn not_json_is_unreadable() {
        match parse_submission(b"{nope", &Limits::default()) {
            Parsed::Unreadable(r) => assert!(r.message.starts_with("not valid JSON")),
            other => panic!("{other:?}"),
        }
        match parse_submission(b"42", &Limits::default()) {
            Parsed::Unreadable(r) => assert!(r.message.contains("not a number")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_batch_names_the_bad_element() {
        let r = reject(json!([{"kind": "noop"}, {"kind": "noop", "priority": "high"}]));
        assert_eq!(r.field, "tasks[1].priority");
        let r = reject(
            json!([{"kind": "noop", "idempotency_key": "a"}, {"kind": "noop", "idempotency_key": "a"}]),
        );
        assert_eq!(r.field, "tasks[1].idempotency_key");
    }
    fn http(spec: Value) -> Result<Job, Rejection> {
        Job::parse(TaskKind::Http, &spec)
    }

    fn nats(spec: Value) -> Result<Job, Rejection> {
        Job::parse(TaskKind::Nats, &spec)
    }

    #[test]
    fn an_http_spec_gets_defaults() {
        let Ok(Job::Http(spec)) = http(json!({"url": "https://example.com/health"})) else {
            panic!("a bare URL is a valid http spec");
        };
        assert_eq!(spec.method, "GET");
        assert!(spec.headers.is_empty());
        assert!(spec.expects(204));
        assert!(!spec.expects(301));
        assert_eq!(spec.expected_text(), "2xx");
        let Ok(Job::Http(spec)) = http(json!({
            "method": "POST",
            "url": "http://user:pw@[::1]:8080/x?y#z",
            "headers": {"Content-Type": "application/json"},
            "body": "{}",
            "expected_status": [200, 404],
            "timeout_ms": 500
        })) else {
            panic!("a full http spec is valid");
        };
        assert!(spec.expects(404));
        assert!(!spec.expects(201));
        assert_eq!(spec.expected_text(), "200, 404");
    }

    #[test]
    fn http_spec_errors_name_the_field() {
        for url in [
            "ftp://example.com/",
            "example.com",
            "http://",
            "http:///path",
            "http://host:port/",
            "http://exa mple.com/",
            "http://[::1/",
        ] {
            let r = http(json!({"url": url})).expect_err(url);
            assert_eq!(r.field, "spec.url", "{url}: {r}");
        }
        assert_eq!(http(json!({})).expect_err("no url").field, "spec.url");
        assert_eq!(http(Value::Null).expect_err("no spec").field, "spec.url");
        let r = http(json!({"url": "http://a/", "method": "CONNECT"})).expect_err("method");
        assert_eq!(r.field, "spec.method");
        assert!(r.message.contains("GET, POST"), "{}", r.message);
        let r = http(json!({"url": "http://a/", "method": "get"})).expect_err("lower case");
        assert_eq!(r.field, "spec.method");
        let r = http(json!({"url": "http://a/", "headers": {"X-A": "b\r\nInjected: 1"}}))
            .expect_err("header value");
        assert_eq!(r.field, "spec.headers.X-A");
        let r = http(json!({"url": "http://a/", "headers": {"bad name": "x"}}))
            .expect_err("header name");
        assert_eq!(r.field, "spec.headers.bad name");
        let r =
            http(json!({"url": "http://a/", "expected_status": [200, 99]})).expect_err("status");
        assert_eq!(r.field, "spec.expected_status[1]");
        let r = http(json!({"url": "http://a/", "expected_status": []})).expect_err("empty");
        assert_eq!(r.field, "spec.expected_status");
        let r = http(json!({"url": "http://a/", "timeout_ms": 0})).expect_err("timeout");
        assert_eq!(r.field, "spec.timeout_ms");
        let r = http(json!({"url": "http://a/", "verb": "GET"})).expect_err("unknown");
        assert_eq!(r.field, "spec.verb");
    }

    #[test]
    fn an_http_task_is_checked_at_submission() {
        let r = reject(json!({"kind": "http", "spec": {"url": "gopher://old"}}));
        assert_eq!(r.field, "spec.url");
        let r = reject(
            json!([{"kind": "noop"}, {"kind": "http", "spec": {"url": "http://a", "method": "BREW"}}]),
        );
        assert_eq!(r.field, "tasks[1].spec.method");
    }

    #[test]
    fn a_nats_spec_sends_its_payload() {
        let Ok(Job::Nats(spec)) = nats(json!({"subject": "billing.invoice", "payload": {"n": 1}}))
        else {
            panic!("valid nats spec");
        };
        assert_eq!(spec.payload_bytes(), br#"{"n":1}"#);
        assert_eq!(spec.timeout_ms(), DEFAULT_NATS_TIMEOUT_MS);
        let Ok(Job::Nats(spec)) = nats(json!({"subject": "echo", "payload": "raw text"})) else {
            panic!("valid nats spec");
        };
        assert_eq!(spec.payload_bytes(), b"raw text");
        let Ok(Job::Nats(spec)) = nats(json!({"subject": "echo"})) else {
            panic!("valid nats spec");
        };
        assert!(spec.payload_bytes().is_empty());
    }

    #[test]
    fn nats_spec_errors_name_the_field() {
        for subject in [
            "",
            "a..b",
            ".a",
            "a.",
            "orders.*",
            "orders.>",
            "has space",
            "$SRV.PING",
            "taskyard.submit",
            "taskyard",
        ] {
            let r = nats(json!({"subject": subject})).expect_err(subject);
            assert_eq!(r.field, "spec.subject", "{subject}: {r}");
        }
        assert_eq!(
            nats(Value::Null).expect_err("no spec").field,
            "spec.subject"
        );
        // Only the whole first token is reserved.
        assert!(nats(json!({"subject": "taskyard-billing.run"})).is_ok());
        let r = nats(json!({"subject": "a", "timeout_ms": 0})).expect_err("timeout");
        assert_eq!(r.field, "spec.timeout_ms");
        let r = nats(json!({"subject": "a", "headers": {"X": "a\nb"}})).expect_err("header");
        assert_eq!(r.field, "spec.headers.X");
        let r = nats(json!({"subject": "a", "reply_to": "b"})).expect_err("unknown");
        assert_eq!(r.field, "spec.reply_to");
    }

    #[test]
    fn a_workflow_object_reads_as_its_tasks_and_name() {
        let bytes = serde_json::to_vec(&json!({
            "workflow": "trip",
            "tasks": [{"kind": "noop", "name": "a"}, {"kind": "noop", "depends_on": ["a"]}]
        }))
        .unwrap_or_default();
        let read = read_submission(&bytes, &Limits::default());
        assert_eq!(read.workflow.as_deref(), Some("trip"));
        let Parsed::Valid(tasks) = read.parsed else {
            panic!("a valid workflow: {:?}", read.parsed);
        };
        assert_eq!(tasks[1].depends_on, ["a"]);
        // A plain task or batch has no workflow.
        assert!(
            read_submission(br#"[{"kind":"noop"}]"#, &Limits::default())
                .workflow
                .is_none()
        );
    }

    #[test]
    fn workflow_object_errors_are_named() {
        let read = |value: Value| {
            let bytes = serde_json::to_vec(&value).unwrap_or_default();
            read_submission(&bytes, &Limits::default())
        };
        let field = |value: Value| match read(value).parsed {
            Parsed::Invalid { rejection, .. } | Parsed::Unreadable(rejection) => rejection.field,
            Parsed::Valid(tasks) => panic!("expected a rejection, got {tasks:?}"),
        };
        assert_eq!(
            field(json!({"workflow": "a b", "tasks": [{"kind": "noop"}]})),
            "workflow"
        );
        assert_eq!(field(json!({"tasks": [{"kind": "noop"}]})), "workflow");
        assert_eq!(
            field(json!({"workflow": "w", "tasks": [{"kind": "noop"}], "colour": 1})),
            "colour"
        );
        assert_eq!(field(json!({"workflow": "w", "tasks": []})), "tasks");
        assert_eq!(field(json!({"workflow": "w"})), "tasks");
        assert_eq!(
            field(json!({"workflow": "w", "tasks": [{"kind": "noop"}, {"kind": "nope"}]})),
            "tasks[1].kind"
        );
        // A refused workflow keeps its name and its tasks, to record them.
        let refused = read(json!({"workflow": "w", "tasks": [{"kind": "noop"}, {"kind": "x"}]}));
        assert_eq!(refused.workflow.as_deref(), Some("w"));
        assert!(matches!(refused.parsed, Parsed::Invalid { elements, .. } if elements.len() == 2));
    }

    #[test]
    fn new_kinds_have_wire_names() {
        for kind in [TaskKind::Http, TaskKind::Nats] {
            let parsed: TaskKind = kind.as_str().parse().expect("round trip");
            assert_eq!(parsed, kind);
        }
    }
}
