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
}

/// A request on `taskyard.api.nodes.<op>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeRequest {
    pub node_id: String,
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
        error: crate::task::Rejection,
    },
}
