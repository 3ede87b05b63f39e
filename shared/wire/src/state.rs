//! The task state machine.
//!
//! Written three times and kept in step: this enum, the `task_state` ENUM in
//! `migrations/`, and `docs/state-machine.md`. The store's guarded updates name
//! the states a transition may leave from; [`TaskState::can_move_to`] is the
//! table they follow.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a task is in its life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting on dependencies (moved in by the orchestrator, out when released).
    Pending,
    /// Ready to be placed (orchestrator on creation, pool-manager on retry).
    Queued,
    /// Placed on a node and dispatched; the attempt number was bumped (scheduler).
    Scheduled,
    /// The worker reported that it started the attempt (pool-manager).
    Running,
    /// Finished well (pool-manager). Terminal.
    Succeeded,
    /// Finished badly with no attempt left (pool-manager). Terminal.
    Failed,
    /// Ran past its deadline with no attempt left (pool-manager). Terminal.
    TimedOut,
    /// Cancelled by a user or by a failed dependency. Terminal.
    Cancelled,
    /// Waiting out a retry backoff before it is queued again (pool-manager).
    Retrying,
    /// Failed validation, or its batch did (orchestrator). Terminal.
    Rejected,
}

impl TaskState {
    /// Every state, in the order of a task's life.
    pub const ALL: [TaskState; 10] = [
        TaskState::Pending,
        TaskState::Queued,
        TaskState::Scheduled,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::TimedOut,
        TaskState::Cancelled,
        TaskState::Retrying,
        TaskState::Rejected,
    ];

    /// The name used on the wire, in subjects and in Postgres.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Queued => "queued",
            TaskState::Scheduled => "scheduled",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::TimedOut => "timed_out",
            TaskState::Cancelled => "cancelled",
            TaskState::Retrying => "retrying",
            TaskState::Rejected => "rejected",
        }
    }

    /// A terminal state is never left.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded
                | TaskState::Failed
                | TaskState::TimedOut
                | TaskState::Cancelled
                | TaskState::Rejected
        )
    }

    /// The transition table. The store's guarded SQL must allow no more than this.
    pub fn can_move_to(self, to: TaskState) -> bool {
        use TaskState::*;
        match self {
            Pending => matches!(to, Queued | Cancelled | Rejected),
            Queued => matches!(to, Scheduled | Cancelled | Rejected),
            Scheduled => matches!(
                to,
                Running | Succeeded | Failed | TimedOut | Cancelled | Queued | Retrying
            ),
            Running => matches!(
                to,
                Succeeded | Failed | TimedOut | Cancelled | Queued | Retrying
            ),
            Retrying => matches!(to, Queued | Cancelled),
            Succeeded | Failed | TimedOut | Cancelled | Rejected => false,
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown state name.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown task state `{0}` (expected one of pending, queued, scheduled, running, succeeded, failed, timed_out, cancelled, retrying, rejected)"
)]
pub struct UnknownState(pub String);

impl FromStr for TaskState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>().ok(), Some(state));
            let json = serde_json::to_string(&state).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        assert!("bogus".parse::<TaskState>().is_err());
    }

    #[test]
    fn terminal_states_are_never_left() {
        for from in TaskState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in TaskState::ALL {
                assert!(!from.can_move_to(to), "{from} -> {to}");
            }
        }
    }
}
