//! Task logs: the output lines workers stream on `taskyard.logs.<node>`
//! (the LOGS stream) become `task_logs` rows.
//!
//! A pulled batch of messages is one insert (`unnest`); a line stored before
//! (a redelivered or republished batch) is skipped by its key `(task,
//! attempt, seq)`, so delivery is at least once and storage exactly once. A
//! message that cannot be read is dropped; a batch Postgres refuses is handed
//! back with a delay, to be stored once Postgres is back.

use async_nats::jetstream::AckKind;
use std::time::Duration;
use taskyard_runtime::batching::{Message, ack_all, nak_all};
use taskyard_store::Store;
use taskyard_store::logs::NewLogLine;
use taskyard_wire::codec;
use taskyard_wire::logs::LogBatch;

/// Counter of lines stored (new rows).
pub const METRIC_STORED: &str = "taskyard_pool_manager_log_lines_stored_total";
/// Counter of lines not stored, by `reason`: `unreadable` (a message that is
/// not a log batch), `duplicate` (already stored, or of an unknown task).
pub const METRIC_DROPPED: &str = "taskyard_pool_manager_log_lines_dropped_total";

const RETRY_DELAY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct LogStore {
    store: Store,
}

impl LogStore {
    pub fn new(store: Store) -> LogStore {
        LogStore { store }
    }

    pub async fn handle(&self, batch: Vec<Message>) {
        let mut lines = Vec::new();
        let mut readable = Vec::with_capacity(batch.len());
        for message in batch {
            match codec::decode::<LogBatch>(&message.payload) {
                Ok(logs) => {
                    lines.extend(rows(logs));
                    readable.push(message);
                }
                Err(err) => {
                    metrics::counter!(METRIC_DROPPED, "reason" => "unreadable").increment(1);
                    tracing::warn!(subject = %message.subject, error = %err, "dropping a log message that cannot be read");
                    if let Err(err) = message.ack_with(AckKind::Term).await {
                        tracing::warn!(error = %err, "cannot terminate an unreadable log message");
                    }
                }
            }
        }
        if readable.is_empty() {
            return;
        }
        match self.store.insert_log_lines(&lines).await {
            Ok(stored) => {
                metrics::counter!(METRIC_STORED).increment(stored);
                let skipped = (lines.len() as u64).saturating_sub(stored);
                if skipped > 0 {
                    metrics::counter!(METRIC_DROPPED, "reason" => "duplicate").increment(skipped);
                }
                tracing::debug!(stored, skipped, "task log lines stored");
                ack_all(&readable).await;
            }
            Err(err) => {
                tracing::error!(
                    error = format!("{err:#}"),
                    lines = lines.len(),
                    "storing task log lines failed; will retry"
                );
                nak_all(&readable, RETRY_DELAY).await;
            }
        }
    }
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
