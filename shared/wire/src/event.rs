//! Events: what happened to tasks and nodes, published on `taskyard.events.>`.
//!
//! Task events travel in batches: one message carries every transition to one
//! state that a service made in one database statement. At thousands of tasks a
//! second this keeps the message rate a small fraction of the task rate; a
//! consumer in another language simply loops over `events`.

use crate::task::{Resources, TaskKind};
use crate::{TaskState, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Published on `taskyard.events.task.<state>`: transitions into that state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskEventBatch {
    pub events: Vec<TaskEvent>,
}

/// One task's transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskEvent {
    pub task_id: Uuid,
    pub pool: String,
    /// The attempt the transition belongs to (0 before the first placement).
    pub attempt: u32,
    /// The state the task entered.
    pub state: TaskState,
    /// The state it left; `None` when it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<TaskState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(with = "crate::rfc3339")]
    #[schemars(with = "String")]
    pub at: Timestamp,
    /// On `queued` events: what the scheduler needs to place the task, so that it
    /// never reads Postgres on the hot path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<PlacementRequest>,
}

/// The scheduling facts of a queued task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementRequest {
    /// Creation order within the cluster; FCFS serves the lowest first.
    pub seq: i64,
    pub kind: TaskKind,
    pub tenant: String,
    pub priority: i32,
    pub resources: Resources,
    /// Labels the node must carry (the task's own selector; the pool's is
    /// applied by the scheduler).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// How long the task is expected to run, for shortest-job-first: the
    /// client's estimate, or one learned from history; `None` when neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_runtime_ms: Option<u64>,
}

/// What a node event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeEventKind {
    /// A node was seen for the first time, or came back after it was lost.
    Registered,
    /// Its capacity, labels or draining flag changed.
    Updated,
    /// Heartbeats are late; no new work goes there.
    Suspect,
    /// A suspect node's heartbeats are back on time.
    Alive,
    /// Heartbeats stopped for longer than the loss threshold.
    Lost,
    /// An operator removed it from the registry.
    Removed,
}

impl NodeEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeEventKind::Registered => "registered",
            NodeEventKind::Updated => "updated",
            NodeEventKind::Suspect => "suspect",
            NodeEventKind::Alive => "alive",
            NodeEventKind::Lost => "lost",
            NodeEventKind::Removed => "removed",
        }
    }
}

/// Published on `taskyard.events.node.<kind>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeEvent {
    pub node_id: String,
    pub kind: NodeEventKind,
    pub capacity: crate::heartbeat::Capacity,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A draining node takes no new work.
    #[serde(default)]
    pub draining: bool,
    /// An operator cordoned it: no new work until uncordoned.
    #[serde(default)]
    pub cordoned: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(with = "crate::rfc3339")]
    #[schemars(with = "String")]
    pub at: Timestamp,
}

impl NodeEvent {
    /// Whether the scheduler may place work on the node after this event.
    pub fn schedulable(&self) -> bool {
        matches!(
            self.kind,
            NodeEventKind::Registered | NodeEventKind::Updated | NodeEventKind::Alive
        ) && !self.draining
            && !self.cordoned
    }
}
