//! Why a request or a submission was refused: a stable [`RejectionCode`] for
//! programs, the field it is about, and a message for people.
//!
//! Programs decide by the code, never by the message: the message is worded
//! by whichever service refused and may change with it, the code may not.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What kind of refusal a [`Rejection`] is. Serialized in snake case
/// (`not_found`); a reply without a code (from a service older than codes)
/// reads as `invalid`, and so does a code newer than this build knows, since
/// "refused, do not send it again as it is" is the safe reading of both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectionCode {
    /// The task, pool or node named does not exist.
    NotFound,
    /// What is named exists, but its state forbids the operation: a name
    /// already taken, a node still alive, a pool that still has tasks.
    Conflict,
    /// A task names a pool the orchestrator does not know. It may have been
    /// created a moment ago: the orchestrator reloads its pools and plans
    /// the submission once more before it refuses with this code.
    UnknownPool,
    /// The sender may not ask this.
    Unauthorized,
    /// The owner could not carry the request out now (its database is
    /// unreachable, say): the same request may succeed later.
    Unavailable,
    /// The message, or the field named, is wrong: the same message would be
    /// refused again.
    // Last: serde wants the variant that also takes unknown codes there.
    #[default]
    #[serde(other)]
    Invalid,
}

impl RejectionCode {
    /// The code as it is written on the wire (`not_found`).
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionCode::Invalid => "invalid",
            RejectionCode::NotFound => "not_found",
            RejectionCode::Conflict => "conflict",
            RejectionCode::UnknownPool => "unknown_pool",
            RejectionCode::Unauthorized => "unauthorized",
            RejectionCode::Unavailable => "unavailable",
        }
    }
}

impl std::fmt::Display for RejectionCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a submission or a request was refused: its code, the field (a JSON
/// path) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Rejection {
    /// What kind of refusal this is, for programs to decide on.
    #[serde(default)]
    pub code: RejectionCode,
    /// JSON path of the offending field, such as `tasks[1].resources.cpu_millis`;
    /// empty when the message as a whole is wrong.
    pub field: String,
    /// What is wrong with it, for people.
    pub message: String,
}

impl Rejection {
    /// A refusal with `code`.
    pub fn with_code(
        code: RejectionCode,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Rejection {
            code,
            field: field.into(),
            message: message.into(),
        }
    }

    /// The message or `field` is wrong ([`RejectionCode::Invalid`]): what
    /// every validation refuses with.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection::with_code(RejectionCode::Invalid, field, message)
    }

    /// What `field` names does not exist ([`RejectionCode::NotFound`]).
    pub fn not_found(field: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection::with_code(RejectionCode::NotFound, field, message)
    }

    /// What `field` names exists, but its state forbids the operation
    /// ([`RejectionCode::Conflict`]).
    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection::with_code(RejectionCode::Conflict, field, message)
    }

    /// The task's pool is unknown ([`RejectionCode::UnknownPool`]).
    pub fn unknown_pool(field: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection::with_code(RejectionCode::UnknownPool, field, message)
    }

    /// The owner cannot carry it out now; asking again later may work
    /// ([`RejectionCode::Unavailable`]).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Rejection::with_code(RejectionCode::Unavailable, "", message)
    }

    /// The same rejection, inside element `index` of a batch.
    pub fn in_batch(self, index: usize) -> Self {
        let field = if self.field.is_empty() {
            format!("tasks[{index}]")
        } else {
            format!("tasks[{index}].{}", self.field)
        };
        Rejection { field, ..self }
    }

    /// The same rejection (and code), about a field inside `parent`: a
    /// compensation's `pool` becomes `compensation.pool`.
    pub fn within(self, parent: &str) -> Self {
        let field = if self.field.is_empty() {
            parent.to_owned()
        } else {
            format!("{parent}.{}", self.field)
        };
        Rejection { field, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_code_is_snake_case_and_always_written() {
        let refusal = Rejection::not_found("name", "no pool named `x`");
        assert_eq!(
            serde_json::to_value(&refusal).expect("serializes"),
            json!({"code": "not_found", "field": "name", "message": "no pool named `x`"})
        );
        for code in [
            RejectionCode::Invalid,
            RejectionCode::NotFound,
            RejectionCode::Conflict,
            RejectionCode::UnknownPool,
            RejectionCode::Unauthorized,
            RejectionCode::Unavailable,
        ] {
            assert_eq!(
                serde_json::to_value(code).expect("serializes"),
                json!(code.as_str())
            );
        }
    }

    #[test]
    fn a_refusal_without_a_code_or_with_an_unknown_one_is_invalid() {
        let old: Rejection =
            serde_json::from_value(json!({"field": "kind", "message": "missing field `kind`"}))
                .expect("a refusal from before codes");
        assert_eq!(old, Rejection::new("kind", "missing field `kind`"));
        let newer: Rejection = serde_json::from_value(
            json!({"code": "rate_limited", "field": "", "message": "slow down"}),
        )
        .expect("a refusal with a code from a later version");
        assert_eq!(newer.code, RejectionCode::Invalid);
    }

    #[test]
    fn nesting_keeps_the_code() {
        let refusal = Rejection::unknown_pool("pool", "no pool named `gpu`");
        let nested = refusal.clone().within("compensation").in_batch(2);
        assert_eq!(nested.field, "tasks[2].compensation.pool");
        assert_eq!(nested.code, RejectionCode::UnknownPool);
        assert_eq!(
            Rejection::new("", "not an object")
                .within("compensation")
                .field,
            "compensation"
        );
    }
}
