//! From workers' reports to guarded transitions and events.

use crate::announce::{Announcer, Kill};
use crate::{blames_input, dead_letters, refusal, salvage};
use std::collections::{HashMap, HashSet};
use taskyard_runtime::access;
use taskyard_runtime::batching::Message;
use taskyard_runtime::consume::{Handler, Verdict, Verdicts};
use taskyard_runtime::poison::Bisection;
use taskyard_runtime::{error_throttled, warn_throttled};
use taskyard_store::Store;
use taskyard_store::interventions::AttemptHolder;
use taskyard_store::tasks::{FinishReport, StartReport};
use taskyard_wire::status::{Outcome, StatusMessage, StatusReport};
use taskyard_wire::{TaskState, codec, subjects};
use uuid::Uuid;

/// The node a message on `subject` names in its body that is not the
/// sender's, if any. Permissions let a worker publish only on its own
/// `taskyard.status.<node>`, so the subject's token is who sent it; a report
/// about any other node (a task placed elsewhere) is one node speaking for
/// another, and the whole message is dropped, since a worker that forges one
/// report says nothing trustworthy in the rest. A subject that names no valid
/// node has no sender to hold the body to, so nothing in it counts either.
pub fn wrong_node<'a>(subject: &str, reports: &'a [StatusReport]) -> Option<&'a str> {
    reports
        .iter()
        .map(StatusReport::node_id)
        .find(|node| !subjects::speaks_for(subject, node))
}

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

#[derive(Debug, Clone)]
pub struct ReportHandler {
    store: Store,
    announcer: Announcer,
}

impl ReportHandler {
    pub fn new(store: Store, announcer: Announcer) -> ReportHandler {
        ReportHandler { store, announcer }
    }

    /// Records one batch in one go. When Postgres refuses it for what some
    /// message holds, the culprits are isolated (`poison::isolate`) and the
    /// rest recorded; a culprit is tried once more with its free text
    /// scrubbed ([`salvage`]), so that the attempt's outcome survives,
    /// and kept as a dead letter if even that is refused. A batch that fails
    /// for another reason (Postgres away) is handed back whole. Every step
    /// is idempotent.
    pub async fn handle(&self, batch: &[Message]) -> Vec<Verdict> {
        let mut verdicts = Verdicts::new(batch.len());
        let mut reports = Vec::with_capacity(batch.len());
        let mut readable = Vec::with_capacity(batch.len());
        for (index, message) in batch.iter().enumerate() {
            match codec::decode::<StatusMessage>(&message.payload) {
                Ok(status) => {
                    let status = status.into_reports();
                    if let Some(node) = wrong_node(&message.subject, &status) {
                        metrics::counter!(access::METRIC_WRONG_NODE, "kind" => "status")
                            .increment(1);
                        warn_throttled!(subject = %message.subject, node_id = %node, "a report about another node than its subject's was terminated");
                        verdicts.set(index, Verdict::Term);
                        continue;
                    }
                    reports.push(status);
                    readable.push(index);
                }
                Err(err) => {
                    warn_throttled!(subject = %message.subject, error = %err, "unreadable report terminated");
                    verdicts.set(index, Verdict::Term);
                }
            }
        }
        let mut bisection = Bisection::new(readable.len(), blames_input);
        while let Some(part) = bisection.next_part() {
            let result = self.record(reports[part.clone()].concat()).await;
            bisection.record(part, result);
        }
        let mut isolated = bisection.finish();
        for (range, ()) in &isolated.recorded {
            verdicts.set_all(readable[range.clone()].iter().copied(), Verdict::Ack);
        }
        for (index, err) in std::mem::take(&mut isolated.poison) {
            let message = &batch[readable[index]];
            let mut scrubbed = std::mem::take(&mut reports[index]);
            let changed = scrubbed
                .iter_mut()
                .fold(false, |any, r| salvage::scrub_report(r) | any);
            let again = if changed {
                self.record(scrubbed).await
            } else {
                Err(err)
            };
            let verdict = match again {
                Ok(()) => {
                    tracing::warn!(subject = %message.subject, "a report Postgres refused was recorded with its NUL characters replaced");
                    Verdict::Ack
                }
                Err(err) if blames_input(&err) => {
                    dead_letters::keep_now(&self.store, message, &refusal(&err)).await
                }
                Err(err) => {
                    error_throttled!(
                        error = format!("{err:#}"),
                        "recording a report failed; will retry"
                    );
                    Verdict::Retry
                }
            };
            verdicts.set(readable[index], verdict);
        }
        if let Some(err) = &isolated.retry_error {
            error_throttled!(
                error = format!("{err:#}"),
                messages = isolated.retry_indices().count(),
                "recording reports failed; will retry"
            );
        }
        verdicts.into_vec()
    }

    /// Applies starts, then finishes (a fast task's two reports often share a
    /// batch), announces the transitions, and tells nodes that reported on
    /// an attempt that is no longer theirs to drop it.
    async fn record(&self, reports: Vec<StatusReport>) -> anyhow::Result<()> {
        if reports.is_empty() {
            return Ok(());
        }
        let received: Vec<(Uuid, u32, String, bool)> = reports
            .iter()
            .map(|r| match r {
                StatusReport::Started {
                    task_id,
                    attempt,
                    node_id,
                    ..
                } => (*task_id, *attempt, node_id.clone(), true),
                StatusReport::Finished {
                    task_id,
                    attempt,
                    node_id,
                    ..
                } => (*task_id, *attempt, node_id.clone(), false),
            })
            .collect();
        let sorted = sort(reports);
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
        crate::timings::record(&transitions, &sorted.finishes);
        self.announcer.announce(&transitions).await?;
        let moved: HashSet<(Uuid, u32)> =
            transitions.iter().map(|t| (t.task_id, t.attempt)).collect();
        let unmoved: Vec<&(Uuid, u32, String, bool)> = received
            .iter()
            .filter(|(task, attempt, _, _)| !moved.contains(&(*task, *attempt)))
            .collect();
        if !unmoved.is_empty() {
            metrics::counter!("taskyard_pool_manager_stale_reports_total")
                .increment(unmoved.len() as u64);
            self.drop_stale(&unmoved).await?;
        }
        Ok(())
    }

    /// Reports that changed nothing are duplicates, or come from a node that
    /// runs an attempt which is not the task's current one there (the node
    /// was declared lost, then came back). Such a node is told to stop it.
    async fn drop_stale(&self, unmoved: &[&(Uuid, u32, String, bool)]) -> anyhow::Result<()> {
        let ids: Vec<Uuid> = unmoved.iter().map(|(task, ..)| *task).collect();
        let holders: HashMap<Uuid, AttemptHolder> = self
            .store
            .attempt_holders(&ids)
            .await?
            .into_iter()
            .map(|h| (h.task_id, h))
            .collect();
        let kills: Vec<Kill> = unmoved
            .iter()
            .filter(|(_, _, _, started)| *started)
            .filter(|(task, attempt, node, _)| {
                holders.get(task).is_none_or(|h| {
                    !(h.live && h.attempt == *attempt && h.node_id.as_deref() == Some(node))
                })
            })
            .map(|(task, attempt, node, _)| Kill {
                node_id: node.clone(),
                task_id: *task,
                attempt: *attempt,
                reason: format!("attempt {attempt} is no longer this node's to run"),
            })
            .collect();
        if !kills.is_empty() {
            tracing::info!(kills = kills.len(), "telling nodes to drop stale attempts");
            self.announcer.kill(&kills).await;
        }
        Ok(())
    }
}

impl Handler for ReportHandler {
    async fn handle(&self, batch: &[Message]) -> Vec<Verdict> {
        ReportHandler::handle(self, batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(node: &str) -> StatusReport {
        StatusReport::Started {
            task_id: Uuid::from_u128(7),
            attempt: 1,
            node_id: node.to_owned(),
            at: taskyard_wire::now(),
        }
    }

    #[test]
    fn a_node_reports_only_on_its_own_tasks() {
        let own = [started("n1"), started("n1")];
        assert_eq!(wrong_node("taskyard.status.n1", &own), None);
        // One report about n2 among n1's spoils the message.
        let mixed = [started("n1"), started("n2")];
        assert_eq!(wrong_node("taskyard.status.n1", &mixed), Some("n2"));
        assert_eq!(wrong_node("taskyard.status.n2", &own), Some("n1"));
        // A subject that names no node vouches for none.
        assert_eq!(wrong_node("taskyard.status.n1.x", &own), Some("n1"));
        assert_eq!(wrong_node("taskyard.status.n1", &[]), None);
    }

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
