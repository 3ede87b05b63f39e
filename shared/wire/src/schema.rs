//! JSON Schemas of every message, generated from the Rust types.
//!
//! The committed copies in `shared/wire/schemas/` are what clients in other
//! languages validate against; `cargo test -p taskyard-wire` fails when they
//! drift from the types, and `TASKYARD_BLESS=1 cargo test -p taskyard-wire`
//! rewrites them. The schemas of what clients send say every limit that
//! validation holds them to and JSON Schema can express (`maximum`,
//! `maxItems`, `maxProperties`, `pattern`, no NUL in any string or key);
//! the examples in `schemas/examples/invalid/` are refused by both.

use crate::storable::NO_NUL_PATTERN;
use crate::task::MAX_BATCH_TASKS;
use schemars::transform::{RecursiveTransform, Transform};
use schemars::{Schema, schema_for};
use serde_json::{Value, json};

/// `(file stem, schema)` for every message type.
pub fn all() -> Vec<(&'static str, Schema)> {
    let mut batch = schema_for!(Vec<crate::task::TaskSubmission>);
    batch.insert("minItems".to_owned(), json!(1));
    batch.insert("maxItems".to_owned(), json!(MAX_BATCH_TASKS));
    vec![
        ("task", submitted(schema_for!(crate::task::TaskSubmission))),
        ("batch", submitted(batch)),
        (
            "workflow",
            submitted(schema_for!(crate::task::WorkflowSubmission)),
        ),
        ("exec-spec", submitted(schema_for!(crate::task::ExecSpec))),
        ("sleep-spec", submitted(schema_for!(crate::task::SleepSpec))),
        ("fail-spec", submitted(schema_for!(crate::task::FailSpec))),
        ("http-spec", submitted(schema_for!(crate::task::HttpSpec))),
        ("nats-spec", submitted(schema_for!(crate::task::NatsSpec))),
        ("submit-reply", schema_for!(crate::reply::SubmitReply)),
        (
            "task-event-batch",
            schema_for!(crate::event::TaskEventBatch),
        ),
        ("node-event", schema_for!(crate::event::NodeEvent)),
        ("dispatch", schema_for!(crate::dispatch::DispatchMessage)),
        ("status-report", schema_for!(crate::status::StatusMessage)),
        ("heartbeat", schema_for!(crate::heartbeat::Heartbeat)),
        ("log-batch", schema_for!(crate::logs::LogBatch)),
        ("control", schema_for!(crate::control::Control)),
        ("cancel-request", schema_for!(crate::control::CancelRequest)),
        ("cancel-reply", schema_for!(crate::control::CancelReply)),
        ("node-request", schema_for!(crate::control::NodeRequest)),
        ("node-reply", schema_for!(crate::control::NodeReply)),
        ("pool", submitted(schema_for!(crate::pool::PoolSpec))),
        ("pool-change", submitted(pool_change())),
        ("pool-name", schema_for!(crate::pool::PoolName)),
        ("pool-event", schema_for!(crate::pool::PoolEvent)),
        ("pool-reply", schema_for!(crate::pool::PoolReply)),
    ]
}

/// The body of pool `create` and `update` ([`crate::pool::PoolChange`]):
/// a pool's definition, with `requested_by` beside its fields. Its serde is
/// written by hand (to keep the definition a plain object), so its schema is
/// the definition's with that one property added.
fn pool_change() -> Schema {
    let mut schema = schema_for!(crate::pool::PoolSpec);
    schema.insert("title".to_owned(), json!("PoolChange"));
    schema.insert(
        "description".to_owned(),
        json!(
            "The body of `taskyard.api.pools.create` and `.update`: a pool's definition, and \
             who the change is made for (believed only from the api service)."
        ),
    );
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        properties.insert(
            crate::pool::REQUESTED_BY.to_owned(),
            json!({
                "description": "Who the change is made for, kept in `pool_events.actor`.",
                "type": ["string", "null"]
            }),
        );
    }
    schema
}

/// A schema as the committed file holds it: pretty JSON with a final newline.
pub fn render(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// The schema of a message that a client sends and Postgres stores: every
/// string it types refuses NUL (U+0000), and so does every key of an object
/// that takes keys of its choosing, as validation does
/// ([`crate::storable`]). A string with a `pattern`, `format`, `const` or
/// `enum` of its own already says what it may hold.
fn submitted(mut schema: Schema) -> Schema {
    RecursiveTransform(forbid_nul).transform(&mut schema);
    schema
}

fn forbid_nul(schema: &mut Schema) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let has_type = |name: &str| match object.get("type") {
        Some(Value::String(kind)) => kind == name,
        Some(Value::Array(kinds)) => kinds.iter().any(|kind| kind == name),
        _ => false,
    };
    let (string, map) = (has_type("string"), has_type("object"));
    if string
        && !["pattern", "format", "const", "enum"]
            .iter()
            .any(|key| object.contains_key(*key))
    {
        object.insert("pattern".to_owned(), json!(NO_NUL_PATTERN));
    }
    if map
        && object.get("additionalProperties") != Some(&Value::Bool(false))
        && !object.contains_key("propertyNames")
    {
        object.insert(
            "propertyNames".to_owned(),
            json!({ "pattern": NO_NUL_PATTERN }),
        );
    }
}
