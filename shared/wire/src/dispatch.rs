//! Scheduler → worker: run this attempt of this task.

use crate::Timestamp;
use crate::task::{Resources, TaskKind};
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

/// Several attempts for one node in one message: the scheduler sends one per
/// node per placement round, so the message rate is a fraction of the task
/// rate. The worker acks it when its last attempt has been reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchBatch {
    pub dispatches: Vec<Dispatch>,
}

/// What may arrive on `taskyard.dispatch.<node>`: a batch, or one dispatch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DispatchMessage {
    Batch(DispatchBatch),
    One(Dispatch),
}

impl DispatchMessage {
    /// The attempts the message carries, in order.
    pub fn into_dispatches(self) -> Vec<Dispatch> {
        match self {
            DispatchMessage::Batch(batch) => batch.dispatches,
            DispatchMessage::One(dispatch) => vec![dispatch],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};

    fn dispatch(attempt: u32) -> Dispatch {
        Dispatch {
            task_id: Uuid::from_u128(7),
            attempt,
            pool: "default".to_owned(),
            tenant: "t".to_owned(),
            kind: TaskKind::Noop,
            spec: Value::Null,
            resources: Resources::default(),
            timeout_ms: None,
            dispatched_at: crate::now(),
        }
    }

    #[test]
    fn one_dispatch_or_a_batch_reads_as_dispatches() {
        let one: DispatchMessage = decode(&encode(&dispatch(1))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one.into_dispatches().len(), 1);
        let batch = DispatchBatch {
            dispatches: vec![dispatch(1), dispatch(2)],
        };
        let read: DispatchMessage = decode(&encode(&batch)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.into_dispatches(), batch.dispatches);
        assert!(decode::<DispatchMessage>(br#"{"dispatches": 3}"#).is_err());
    }
}
