//! Messages to one node: `taskyard.control.<node>` (core NATS). They are
//! confirmed by state (heartbeats, task rows), so they need no stream.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a node is asked to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Control {
    /// Stop taking work, let running attempts finish (within the drain
    /// timeout), then leave: what SIGTERM does.
    Drain,
    /// Stop one attempt now (kill its process group): it timed out, was
    /// cancelled, or was given to another node while this one was away. A
    /// node that does not run that attempt ignores it.
    Kill {
        task_id: uuid::Uuid,
        attempt: u32,
        reason: String,
    },
}

/// A request on `taskyard.api.tasks.cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    pub task_id: uuid::Uuid,
    /// Kept in the task's history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who the request is made for, kept in the history as its `actor`
    /// (`token:<name>`). Believed only from the api service: a request from
    /// the clients' account is recorded as its sender's own credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// The reply to a cancel: the task's state afterwards, or what is wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CancelReply {
    Done {
        task_id: uuid::Uuid,
        /// `cancelled`, or the final state it had already reached.
        state: crate::TaskState,
        /// Whether this request cancelled it (false: it had already ended).
        cancelled: bool,
    },
    Refused {
        error: crate::rejection::Rejection,
    },
}

/// A request on `taskyard.api.nodes.<op>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeRequest {
    pub node_id: String,
    /// Who the request is made for, kept in `node_events.actor`; believed
    /// only from the api service, as on a cancel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// The reply: the node's state after the operation, or what is wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum NodeReply {
    Done {
        node_id: String,
        health: String,
        cordoned: bool,
        draining: bool,
        removed: bool,
    },
    Refused {
        error: crate::rejection::Rejection,
    },
}
