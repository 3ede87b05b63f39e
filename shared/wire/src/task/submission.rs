//! What a client submits and how a message is read: [`TaskSubmission`],
//! [`WorkflowSubmission`], the [`NewTask`] a valid one becomes, the
//! [`Limits`] and bounds it is held to, and [`read_submission`], which
//! reads a task, a batch or a workflow object whole.

use super::kind::TaskKind;
use super::validation::{check_task, check_token, json_type};
use crate::Timestamp;
use crate::rejection::Rejection;
use crate::storable::{self, NulFreeJson};
use schemars::JsonSchema;
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

/// JSON Schema `pattern` of a pool, tenant, step or workflow name (the
/// rule of [`crate::subjects::is_token`]).
pub const NAME_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";
/// JSON Schema `pattern` of a `depends_on` entry: a step name, or a task id
/// in any form `Uuid::parse_str` reads (hyphenated and simple ones are names
/// too).
pub const DEPENDENCY_PATTERN: &str =
    r"^([A-Za-z0-9_-]{1,64}|\{[0-9A-Fa-f-]{36}\}|urn:uuid:[0-9A-Fa-f-]{36})$";

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
}
