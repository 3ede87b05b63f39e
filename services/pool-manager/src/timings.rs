//! The two durations people ask about first, as histograms: how long a task
//! waited from submission to start, and how long its attempt ran.

use std::collections::HashMap;
use taskyard_store::tasks::{FinishReport, Transition};
use taskyard_wire::{TaskState, Timestamp};
use uuid::Uuid;

/// Submission to start, by pool.
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
            if let Some(waited) = submitted_at(t.task_id).and_then(|at| seconds(at, t.at)) {
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

/// When the task was submitted: the time in its UUIDv7 id, which Taskyard
/// gives every task it names (from the submission's stream time stamp).
/// Ids chosen by clients in another form have no such time and are left out.
fn submitted_at(id: Uuid) -> Option<Timestamp> {
    if id.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    let nanos = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    Timestamp::from_unix_timestamp_nanos(nanos).ok()
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
    fn a_v7_id_carries_its_submission_time_and_others_none() {
        let at = Timestamp::from_unix_timestamp(1_800_000_000).expect("a time");
        let id = uuid::Builder::from_unix_timestamp_millis(1_800_000_000_000, &[7; 10]).into_uuid();
        assert_eq!(submitted_at(id), Some(at));
        assert_eq!(submitted_at(Uuid::from_u128(42)), None);
    }

    #[test]
    fn negative_spans_are_left_out() {
        let early = Timestamp::from_unix_timestamp(100).expect("a time");
        let late = Timestamp::from_unix_timestamp(102).expect("a time");
        assert_eq!(seconds(early, late), Some(2.0));
        assert_eq!(seconds(late, early), None);
    }
}
