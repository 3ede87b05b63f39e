//! The checks that turn one task object into a [`NewTask`] (bounds, timing,
//! workflow fields, names), and the helpers that name the field an error is
//! about (`tasks[2].resources.cpu_millis`).

use super::kind::Job;
use super::submission::{
    Limits, MAX_ATTEMPTS, MAX_CPU_MILLIS, MAX_DELAY_MS, MAX_DEPENDENCIES, MAX_IDEMPOTENCY_KEY_LEN,
    MAX_LABELS, MAX_MEMORY_MB, MAX_SCHEDULE_HORIZON, MAX_SCHEDULE_HORIZON_DAYS, MAX_TIMEOUT_MS,
    NewTask, TaskSubmission,
};
use crate::rejection::Rejection;
use crate::storable;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

/// Validates one task object.
pub fn validate_task(value: &Value, limits: &Limits) -> Result<NewTask, Rejection> {
    if let Some(at) = storable::find_nul(value) {
        return Err(at.rejection(false));
    }
    check_task(value, limits)
}

/// Validates one task object already known to hold no NUL (the walk over a
/// whole submission is done once, in [`read_submission`](super::read_submission)).
pub(super) fn check_task(value: &Value, limits: &Limits) -> Result<NewTask, Rejection> {
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

pub(super) fn check_token(field: &str, value: &str) -> Result<(), Rejection> {
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
pub(super) fn parse_at<T: DeserializeOwned>(prefix: &str, value: Value) -> Result<T, Rejection> {
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
pub(super) fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

pub(super) fn json_type(value: &Value) -> &'static str {
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
    use crate::task::{DEFAULT_MAX_SPEC_BYTES, Parsed, parse_submission};
    use serde_json::json;

    fn reject(value: Value) -> Rejection {
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        match parse_submission(&bytes, &Limits::default()) {
            Parsed::Invalid { rejection, .. } | Parsed::Unreadable(rejection) => rejection,
            Parsed::Valid(tasks) => panic!("expected a rejection, got {tasks:?}"),
        }
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
    fn an_http_task_is_checked_at_submission() {
        let r = reject(json!({"kind": "http", "spec": {"url": "gopher://old"}}));
        assert_eq!(r.field, "spec.url");
        let r = reject(
            json!([{"kind": "noop"}, {"kind": "http", "spec": {"url": "http://a", "method": "BREW"}}]),
        );
        assert_eq!(r.field, "tasks[1].spec.method");
    }
}
