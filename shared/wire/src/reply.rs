//! Replies to `taskyard.api.submit` requests.

use crate::rejection::Rejection;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `{"ids": [...]}` (and `"workflow_id"` for a workflow) on success, `{"error": {"code": ..., "field": ..., "message": ...}}` otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SubmitReply {
    Accepted {
        /// The tasks' ids, in submission order. A task that was already known
        /// (same id or idempotency key) reports its existing id.
        ids: Vec<Uuid>,
        /// The workflow's id, when the submission was a workflow object.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workflow_id: Option<Uuid>,
    },
    Refused {
        error: Rejection,
    },
}
