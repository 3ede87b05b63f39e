//! Replies to `taskyard.api.submit` requests.

use crate::task::Rejection;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `{"ids": [...]}` on success, `{"error": {"field": ..., "message": ...}}` otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SubmitReply {
    Accepted {
        /// The tasks' ids, in submission order. A task that was already known
        /// (same id or idempotency key) reports its existing id.
        ids: Vec<Uuid>,
    },
    Refused {
        error: Rejection,
    },
}
