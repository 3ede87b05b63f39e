//! JSON Schemas of every message, generated from the Rust types.
//!
//! The committed copies in `shared/wire/schemas/` are what clients in other
//! languages validate against; `cargo test -p taskyard-wire` fails when they
//! drift from the types, and `TASKYARD_BLESS=1 cargo test -p taskyard-wire`
//! rewrites them.

use schemars::{Schema, schema_for};

/// `(file stem, schema)` for every message type.
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("task", schema_for!(crate::task::TaskSubmission)),
        ("batch", schema_for!(Vec<crate::task::TaskSubmission>)),
        ("workflow", schema_for!(crate::task::WorkflowSubmission)),
        ("exec-spec", schema_for!(crate::task::ExecSpec)),
        ("sleep-spec", schema_for!(crate::task::SleepSpec)),
        ("fail-spec", schema_for!(crate::task::FailSpec)),
        ("http-spec", schema_for!(crate::task::HttpSpec)),
        ("nats-spec", schema_for!(crate::task::NatsSpec)),
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
        ("node-request", schema_for!(crate::control::NodeRequest)),
        ("node-reply", schema_for!(crate::control::NodeReply)),
        ("pool", schema_for!(crate::pool::PoolSpec)),
        ("pool-event", schema_for!(crate::pool::PoolEvent)),
        ("pool-reply", schema_for!(crate::pool::PoolReply)),
    ]
}

/// A schema as the committed file holds it: pretty JSON with a final newline.
pub fn render(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
