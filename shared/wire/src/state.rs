//! The task state machine.
//!
//! Written three times and kept in step: this enum, the `task_state` ENUM in
//! `migrations/`, and `docs/state-machine.md`. [`TaskState::INITIAL`] and
//! [`TaskState::can_move_to`] are the rules; the store's table of guarded
//! statements (`taskyard_store::transitions::TABLE`) is tested against them
//! both ways: every move a statement can make is allowed here, and every move
//! allowed here is made by some statement.

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

    /// The states a task is created in: `queued`, `pending` (it waits on
    /// dependencies or a start time) or `rejected` (it, or its batch, was
    /// invalid). Every other state is reached by a move.
    pub const INITIAL: [TaskState; 3] =
        [TaskState::Pending, TaskState::Queued, TaskState::Rejected];

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

    /// The transition table: exactly the moves the store's guarded statements
    /// make, no more (a move allowed here that no statement makes is a claim
    /// nobody keeps) and no less.
    ///
    /// A `rejected` task is only ever created so: `queued → rejected` is the
    /// placement deadline, and nothing rejects a `pending` task.
    pub fn can_move_to(self, to: TaskState) -> bool {
        use TaskState::*;
        match self {
            Pending => matches!(to, Queued | Cancelled),
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

    #[test]
    fn every_live_state_has_a_way_out() {
        for from in TaskState::ALL.into_iter().filter(|s| !s.is_terminal()) {
            assert!(
                TaskState::ALL.into_iter().any(|to| from.can_move_to(to)),
                "{from} is live but can never be left"
            );
        }
    }

    #[test]
    fn no_state_moves_to_itself() {
        for state in TaskState::ALL {
            assert!(!state.can_move_to(state), "{state} -> {state}");
        }
    }

    #[test]
    fn every_state_is_reached_from_a_state_a_task_is_created_in() {
        let mut reached: Vec<TaskState> = TaskState::INITIAL.to_vec();
        let mut next = 0;
        while let Some(&from) = reached.get(next) {
            for to in TaskState::ALL {
                if from.can_move_to(to) && !reached.contains(&to) {
                    reached.push(to);
                }
            }
            next += 1;
        }
        for state in TaskState::ALL {
            assert!(reached.contains(&state), "{state} is never reached");
        }
    }

    #[test]
    fn rejected_is_reached_only_by_a_placement_deadline() {
        for from in TaskState::ALL {
            assert_eq!(
                from.can_move_to(TaskState::Rejected),
                from == TaskState::Queued,
                "{from} -> rejected"
            );
        }
    }
}
