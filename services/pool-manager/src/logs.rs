//! Task logs: the output lines workers stream on `taskyard.logs.<node>`
//! (the LOGS stream) become `task_logs` rows.
//!
//! A pulled batch of messages is one insert (`unnest`); a line stored before
//! (a redelivered or republished batch) is skipped by its key `(task,
//! attempt, seq)`, so delivery is at least once and storage exactly once. A
//! message that cannot be read is dropped; a batch that fails while Postgres
//! is away is handed back with a delay, to be stored once Postgres is back.

use crate::{dead_letters, salvage};
use taskyard_runtime::batching::Message;
use taskyard_runtime::consume::{Handler, Verdict, Verdicts};
use taskyard_runtime::poison::Bisection;
use taskyard_runtime::{error_throttled, warn_throttled};
use taskyard_store::logs::NewLogLine;
use taskyard_store::{Store, StoreError};
use taskyard_wire::logs::LogBatch;
use taskyard_wire::{codec, subjects};

/// Counter of lines stored (new rows).
pub const METRIC_STORED: &str = "taskyard_pool_manager_log_lines_stored_total";
/// Counter of lines not stored, by `reason`: `unreadable` (a message that is
/// not a log batch), `duplicate` (already stored, or of an unknown task),
/// `wrong_node` (a batch about another node than its subject's; counts
/// lines).
pub const METRIC_DROPPED: &str = "taskyard_pool_manager_log_lines_dropped_total";

#[derive(Debug, Clone)]
pub struct LogStore {
    store: Store,
}

impl LogStore {
    pub fn new(store: Store) -> LogStore {
        LogStore { store }
    }

    /// Stores a batch in one insert; a batch Postgres refuses for what some
    /// message holds has its culprits isolated and the rest stored, and a
    /// culprit is stored with its NUL characters replaced ([`salvage`]) or
    /// else kept as a dead letter.
    pub async fn handle(&self, batch: &[Message]) -> Vec<Verdict> {
        let mut verdicts = Verdicts::new(batch.len());
        // Every readable message's lines in one vector, message after
        // message: `starts[k]..starts[k + 1]` are the k-th one's, so any run
        // of messages is one slice to insert, with no copy.
        let mut lines: Vec<NewLogLine> = Vec::new();
        let mut starts = vec![0];
        let mut readable = Vec::with_capacity(batch.len());
        for (index, message) in batch.iter().enumerate() {
            match codec::decode::<LogBatch>(&message.payload) {
                Ok(logs) if !subjects::speaks_for(&message.subject, &logs.node_id) => {
                    metrics::counter!(METRIC_DROPPED, "reason" => "wrong_node")
                        .increment(logs.lines.len() as u64);
                    metrics::counter!(taskyard_runtime::access::METRIC_WRONG_NODE, "kind" => "logs")
                        .increment(1);
                    warn_throttled!(subject = %message.subject, node_id = %logs.node_id, "a log batch about another node than its subject's was terminated");
                    verdicts.set(index, Verdict::Term);
                }
                Ok(logs) => {
                    lines.extend(rows(logs));
                    starts.push(lines.len());
                    readable.push(index);
                }
                Err(err) => {
                    metrics::counter!(METRIC_DROPPED, "reason" => "unreadable").increment(1);
                    warn_throttled!(subject = %message.subject, error = %err, "dropping a log message that cannot be read");
                    verdicts.set(index, Verdict::Term);
                }
            }
        }
        let mut bisection = Bisection::new(readable.len(), StoreError::is_poison);
        while let Some(part) = bisection.next_part() {
            let part_lines = &lines[starts[part.start]..starts[part.end]];
            let result = self.store.insert_log_lines(part_lines).await;
            bisection.record(part, result.map(|stored| (stored, part_lines.len())));
        }
        let mut isolated = bisection.finish();
        for (range, (stored, count)) in &isolated.recorded {
            count_stored(*stored, *count);
            verdicts.set_all(readable[range.clone()].iter().copied(), Verdict::Ack);
        }
        for (index, err) in std::mem::take(&mut isolated.poison) {
            let message = &batch[readable[index]];
            let mut scrubbed = lines[starts[index]..starts[index + 1]].to_vec();
            let again = if salvage::scrub_lines(&mut scrubbed) {
                self.store.insert_log_lines(&scrubbed).await
            } else {
                Err(err)
            };
            let verdict = match again {
                Ok(stored) => {
                    count_stored(stored, scrubbed.len());
                    tracing::warn!(subject = %message.subject, "log lines Postgres refused were stored with their NUL characters replaced");
                    Verdict::Ack
                }
                Err(err) if err.is_poison() => {
                    dead_letters::keep_now(&self.store, message, &err.refusal()).await
                }
                Err(err) => {
                    error_throttled!(error = %err, "storing task log lines failed; will retry");
                    Verdict::Retry
                }
            };
            verdicts.set(readable[index], verdict);
        }
        if let Some(err) = &isolated.retry_error {
            error_throttled!(
                error = %err,
                messages = isolated.retry_indices().count(),
                "storing task log lines failed; will retry"
            );
        }
        verdicts.into_vec()
    }
}

impl Handler for LogStore {
    async fn handle(&self, batch: &[Message]) -> Vec<Verdict> {
        LogStore::handle(self, batch).await
    }
}

fn count_stored(stored: u64, lines: usize) {
    metrics::counter!(METRIC_STORED).increment(stored);
    let skipped = (lines as u64).saturating_sub(stored);
    if skipped > 0 {
        metrics::counter!(METRIC_DROPPED, "reason" => "duplicate").increment(skipped);
    }
    tracing::debug!(stored, skipped, "task log lines stored");
}

fn rows(batch: LogBatch) -> impl Iterator<Item = NewLogLine> {
    let (task_id, attempt) = (batch.task_id, batch.attempt);
    batch.lines.into_iter().map(move |line| NewLogLine {
        task_id,
        attempt,
        seq: line.seq,
        stream: line.stream.as_str(),
        line: line.line,
        at: line.at,
    })
}
