//! From workers' reports to guarded transitions and events.

use async_nats::jetstream::{self, AckKind};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use taskyard_runtime::batching::{Message, Outgoing, ack_all, publish_all};
use taskyard_store::Store;
use taskyard_store::tasks::{FinishReport, StartReport, Transition};
use taskyard_wire::event::{TaskEvent, TaskEventBatch};
use taskyard_wire::status::{Outcome, StatusMessage, StatusReport};
use taskyard_wire::{TaskState, codec, subjects};

/// How long a batch that could not be recorded waits before redelivery.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The reports of one batch, split by kind, duplicates dropped.
#[derive(Debug, Default)]
pub struct Sorted {
    pub starts: Vec<StartReport>,
    pub finishes: Vec<FinishReport>,
}

/// Sorts decoded reports. A report seen twice in one batch (a redelivery) is
/// kept once.
pub fn sort(reports: impl IntoIterator<Item = StatusReport>) -> Sorted {
    let mut seen = HashSet::new();
    let mut sorted = Sorted::default();
    for report in reports {
        if !seen.insert(report.msg_id()) {
            continue;
        }
        match report {
            StatusReport::Started {
                task_id,
                attempt,
                node_id,
                at,
            } => sorted.starts.push(StartReport {
                task_id,
                attempt,
                node_id,
                at,
            }),
            StatusReport::Finished {
                task_id,
                attempt,
                node_id,
                outcome,
                result,
                error,
                started_at,
                finished_at,
            } => sorted.finishes.push(FinishReport {
                task_id,
                attempt,
                node_id,
                outcome: match outcome {
                    Outcome::Succeeded => TaskState::Succeeded,
                    Outcome::Failed => TaskState::Failed,
                    Outcome::TimedOut => TaskState::TimedOut,
                },
                result,
                error,
                started_at,
                finished_at,
                start_reported_at: None,
            }),
        }
    }
    // A start whose finish is in the same batch is recorded with it: one row
    // update instead of two.
    let finishing: std::collections::HashMap<(uuid::Uuid, u32), usize> = sorted
        .finishes
        .iter()
        .enumerate()
        .map(|(index, f)| ((f.task_id, f.attempt), index))
        .collect();
    let mut starts = Vec::with_capacity(sorted.starts.len());
    for start in std::mem::take(&mut sorted.starts) {
        match finishing.get(&(start.task_id, start.attempt)) {
            Some(&index) if sorted.finishes[index].node_id == start.node_id => {
                sorted.finishes[index].start_reported_at = Some(start.at);
            }
            _ => starts.push(start),
        }
    }
    sorted.starts = starts;
    sorted
}

/// Turns transitions into event messages, one per target state.
pub fn events(transitions: &[Transition]) -> Vec<Outgoing> {
    let mut by_state: HashMap<TaskState, Vec<TaskEvent>> = HashMap::new();
    for t in transitions {
        by_state.entry(t.to).or_default().push(TaskEvent {
            task_id: t.task_id,
            pool: t.pool.clone(),
            attempt: t.attempt,
            state: t.to,
            from: Some(t.from),
            node_id: t.node_id.clone(),
            reason: t.reason.clone(),
            at: t.at,
            request: t.requeued.as_ref().map(|q| q.request.clone()),
        });
    }
    let mut messages = Vec::new();
    for (state, events) in by_state {
        for chunk in events.chunks(1000) {
            messages.push(Outgoing::new(
                subjects::task_event(state),
                codec::encode(&TaskEventBatch {
                    events: chunk.to_vec(),
                }),
            ));
        }
    }
    messages
}

#[derive(Debug)]
pub struct ReportHandler {
    store: Store,
    js: jetstream::Context,
}

impl ReportHandler {
    pub fn new(store: Store, js: jetstream::Context) -> ReportHandler {
        ReportHandler { store, js }
    }

    /// Records one batch; on failure the batch is redelivered after
    /// [`RETRY_DELAY`] (every step is idempotent).
    pub async fn handle(&self, batch: Vec<Message>) {
        let mut reports = Vec::with_capacity(batch.len());
        let mut readable = Vec::with_capacity(batch.len());
        for message in batch {
            match codec::decode::<StatusMessage>(&message.payload) {
                Ok(status) => {
                    reports.extend(status.into_reports());
                    readable.push(message);
                }
                Err(err) => {
                    tracing::warn!(subject = %message.subject, error = %err, "unreadable report terminated");
                    let _ = message.ack_with(AckKind::Term).await;
                }
            }
        }
        if reports.is_empty() {
            return;
        }
        let received = reports.len();
        let sorted = sort(reports);
        match self.record(&sorted).await {
            Ok(moved) => {
                let stale = received.saturating_sub(moved);
                if stale > 0 {
                    metrics::counter!("taskyard_pool_manager_stale_reports_total")
                        .increment(stale as u64);
                    tracing::debug!(
                        stale,
                        "reports that changed nothing (stale attempt or duplicate)"
                    );
                }
                ack_all(&readable).await;
            }
            Err(err) => {
                tracing::error!(
                    error = format!("{err:#}"),
                    reports = readable.len(),
                    "recording reports failed; will retry"
                );
                for message in &readable {
                    let _ = message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await;
                }
            }
        }
    }

    /// Applies starts, then finishes (a fast task's two reports often share a
    /// batch), and announces the transitions. Returns how many moved.
    async fn record(&self, sorted: &Sorted) -> anyhow::Result<usize> {
        let mut transitions = self.store.mark_running(&sorted.starts).await?;
        let finished = self.store.finish_attempts(&sorted.finishes).await?;
        for t in &finished {
            metrics::counter!("taskyard_pool_manager_finished_total", "state" => t.to.as_str())
                .increment(1);
            let span = tracing::info_span!("task", task_id = %t.task_id, attempt = t.attempt);
            span.in_scope(
                || tracing::debug!(state = %t.to, reason = t.reason.as_deref(), "attempt ended"),
            );
        }
        transitions.extend(finished);
        let moved = transitions.len();
        publish_all(&self.js, events(&transitions)).await?;
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn duplicate_reports_are_kept_once() {
        let started = StatusReport::Started {
            task_id: Uuid::from_u128(1),
            attempt: 1,
            node_id: "n".to_owned(),
            at: taskyard_wire::now(),
        };
        let finished = StatusReport::Finished {
            task_id: Uuid::from_u128(1),
            attempt: 1,
            node_id: "n".to_owned(),
            outcome: Outcome::TimedOut,
            result: serde_json::Value::Null,
            error: Some("timed out".to_owned()),
            started_at: taskyard_wire::now(),
            finished_at: taskyard_wire::now(),
        };
        let sorted = sort([started.clone(), started, finished.clone(), finished]);
        assert_eq!(sorted.finishes.len(), 1);
        assert_eq!(sorted.finishes[0].outcome, TaskState::TimedOut);
        // The start rides with its finish.
        assert!(sorted.starts.is_empty());
        assert!(sorted.finishes[0].start_reported_at.is_some());
    }
}
