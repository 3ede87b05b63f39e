//! Worker → pool-manager: an attempt started, or finished.

use crate::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Published on `taskyard.status.<node>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StatusReport {
    /// The worker started the attempt.
    Started {
        task_id: Uuid,
        attempt: u32,
        node_id: String,
        #[serde(with = "crate::rfc3339")]
        #[schemars(with = "String")]
        at: Timestamp,
    },
    /// The attempt ended.
    Finished {
        task_id: Uuid,
        attempt: u32,
        node_id: String,
        outcome: Outcome,
        /// What the driver produced (exit code and output for `exec`).
        #[serde(default)]
        result: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(with = "crate::rfc3339")]
        #[schemars(with = "String")]
        started_at: Timestamp,
        #[serde(with = "crate::rfc3339")]
        #[schemars(with = "String")]
        finished_at: Timestamp,
    },
}

impl StatusReport {
    pub fn task_id(&self) -> Uuid {
        match self {
            StatusReport::Started { task_id, .. } | StatusReport::Finished { task_id, .. } => {
                *task_id
            }
        }
    }

    pub fn attempt(&self) -> u32 {
        match self {
            StatusReport::Started { attempt, .. } | StatusReport::Finished { attempt, .. } => {
                *attempt
            }
        }
    }

    /// The node the report is about.
    pub fn node_id(&self) -> &str {
        match self {
            StatusReport::Started { node_id, .. } | StatusReport::Finished { node_id, .. } => {
                node_id
            }
        }
    }

    /// The `Nats-Msg-Id`: a report sent twice is stored once.
    pub fn msg_id(&self) -> String {
        match self {
            StatusReport::Started {
                task_id, attempt, ..
            } => format!("{task_id}:{attempt}:started"),
            StatusReport::Finished {
                task_id, attempt, ..
            } => {
                format!("{task_id}:{attempt}:finished")
            }
        }
    }
}

/// How an attempt ended, as the worker saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    TimedOut,
}

/// Several reports of one node in one message: a worker coalesces the reports
/// that become ready while its previous publish is in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBatch {
    pub reports: Vec<StatusReport>,
}

/// What may arrive on `taskyard.status.<node>`: a batch, or one report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StatusMessage {
    Batch(StatusBatch),
    One(StatusReport),
}

impl StatusMessage {
    /// The reports the message carries, in order.
    pub fn into_reports(self) -> Vec<StatusReport> {
        match self {
            StatusMessage::Batch(batch) => batch.reports,
            StatusMessage::One(report) => vec![report],
        }
    }
}
