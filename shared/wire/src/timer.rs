//! Durable timers: a task's deadline held by NATS, not by a sleeping
//! process.
//!
//! A timer is a scheduled message on the TIMERS stream: published on
//! [`crate::subjects::timer_schedule`] with `Nats-Schedule: @at <time>`, it
//! is delivered on [`crate::subjects::timer_fire`] at that second, and the
//! pool manager acts on it. Publishing on the same schedule subject replaces
//! the timer. Every action is a guarded transition, so a timer that fires
//! twice, or for an attempt that is over, changes nothing.

use crate::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a timer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// A running attempt's deadline: the task times out.
    Timeout,
    /// The end of a retry's backoff: the task is queued again.
    Retry,
    /// A delayed task's start time: it is queued (if its dependencies are done).
    Start,
    /// A queued task's placement deadline: it is rolled back to `rejected`.
    Placement,
}

impl TimerKind {
    pub const ALL: [TimerKind; 4] = [
        TimerKind::Timeout,
        TimerKind::Retry,
        TimerKind::Start,
        TimerKind::Placement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::Timeout => "timeout",
            TimerKind::Retry => "retry",
            TimerKind::Start => "start",
            TimerKind::Placement => "placement",
        }
    }

    pub fn parse(name: &str) -> Option<TimerKind> {
        TimerKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One timer, the payload of its scheduled message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timer {
    pub kind: TimerKind,
    pub task_id: Uuid,
    /// The attempt the timer belongs to (the fencing token).
    pub attempt: u32,
    /// When it is due. Scheduled messages fire on whole seconds; one that
    /// comes early waits out the rest.
    #[serde(with = "crate::rfc3339")]
    #[schemars(with = "String")]
    pub due_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in TimerKind::ALL {
            assert_eq!(TimerKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(TimerKind::parse("nap"), None);
    }
}
