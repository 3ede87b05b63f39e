//! The two durations people ask about first, as histograms: how long a task
//! waited from submission to its first start, and how long each attempt ran.

use std::collections::HashMap;
use taskyard_store::tasks::{FinishReport, Transition};
use taskyard_wire::{TaskState, Timestamp};
use uuid::Uuid;

/// Submission to the first attempt's start, by pool. (A retry's start
/// would count the earlier attempts and backoffs as waiting.)
pub const WAIT_SECONDS: &str = "taskyard_task_wait_seconds";
/// Start to end of an attempt, by pool and outcome.
pub const RUN_SECONDS: &str = "taskyard_task_run_seconds";

/// Records the transitions one batch of reports made.
pub fn record(transitions: &[Transition], finishes: &[FinishReport]) {
    let started: HashMap<(Uuid, u32), Timestamp> = finishes
        .iter()
        .map(|f| ((f.task_id, f.attempt), f.started_at))
        .collect();
    for t in transitions {
        if t.to == TaskState::Running {
            if t.attempt == 1
                && let Some(waited) = seconds(t.created_at, t.at)
            {
                metrics::histogram!(WAIT_SECONDS, "pool" => t.pool.clone()).record(waited);
            }
        } else if let Some(ran) = started
            .get(&(t.task_id, t.attempt))
            .and_then(|start| seconds(*start, t.at))
        {
            metrics::histogram!(RUN_SECONDS, "pool" => t.pool.clone(), "outcome" => outcome(t))
                .record(ran);
        }
    }
}

/// What the attempt came to: a retry's backoff or requeue counts as the
/// attempt's failure.
fn outcome(t: &Transition) -> &'static str {
    match t.to {
        TaskState::Retrying | TaskState::Queued => "failed",
        state => state.as_str(),
    }
}

/// `to − from` in seconds, when it is not negative (clocks of different
/// hosts may disagree a little).
fn seconds(from: Timestamp, to: Timestamp) -> Option<f64> {
    let span = (to - from).as_seconds_f64();
    (span >= 0.0).then_some(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_spans_are_left_out() {
        let early = Timestamp::from_unix_timestamp(100).expect("a time");
        let late = Timestamp::from_unix_timestamp(102).expect("a time");
        assert_eq!(seconds(early, late), Some(2.0));
        assert_eq!(seconds(late, early), None);
    }
}
