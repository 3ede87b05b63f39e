//! Scheduler → worker: run this attempt of this task.

use crate::task::{Resources, TaskKind};
use crate::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Published on `taskyard.dispatch.<node>` with `Nats-Msg-Id: <task>:<attempt>`,
/// so a republished dispatch is dropped by the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dispatch {
    pub task_id: Uuid,
    /// The fencing token: reports about another attempt change nothing.
    pub attempt: u32,
    pub pool: String,
    pub tenant: String,
    pub kind: TaskKind,
    #[serde(default)]
    pub spec: Value,
    pub resources: Resources,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(with = "crate::rfc3339")]
    #[schemars(with = "String")]
    pub dispatched_at: Timestamp,
}

impl Dispatch {
    /// The `Nats-Msg-Id` of this dispatch.
    pub fn msg_id(&self) -> String {
        format!("{}:{}", self.task_id, self.attempt)
    }
}
