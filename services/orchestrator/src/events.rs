//! The orchestrator's consumer of task events: finished tasks, in batches,
//! for [`Progress`]; and the periodic reconciliation.

use crate::progress::{Progress, ProgressError};
use crate::stream::dead_letter;
use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt;
use std::collections::HashSet;
use std::time::Duration;
use taskyard_runtime::batching::{Message, batches};
use taskyard_runtime::consume::{self, Verdict, Verdicts};
use taskyard_runtime::poison::Bisection;
use taskyard_runtime::{Shutdown, error_throttled, warn_throttled};
use taskyard_wire::event::TaskEventBatch;
use taskyard_wire::{TaskState, codec};
use uuid::Uuid;

/// Most event messages handled at once. Each carries up to a thousand
/// events (one statement's transitions), so this bounds the arrays one
/// statement gets to tens of thousands of ids.
pub const MAX_MESSAGES_PER_BATCH: usize = 64;

/// Reads finished-task events until `shutdown`, and reconciles every
/// `reconcile_every` (the first time at once: what happened while no
/// consumer existed).
pub async fn consume(
    consumer: PullConsumer,
    progress: Progress,
    batch_size: usize,
    reconcile_every: Duration,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let mut incoming = batches(&consumer, batch_size.min(MAX_MESSAGES_PER_BATCH)).await?;
    let mut sweep = tokio::time::interval(reconcile_every);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            _ = sweep.tick() => {
                if let Err(err) = progress.reconcile().await {
                    warn_throttled!(error = %err, "reconciling dependents and workflows failed; will try again");
                }
            }
            // Not `consume::run`: reconciliation shares this loop, so that
            // it never runs beside a batch.
            batch = incoming.next() => match batch {
                Some(batch) => consume::process(batch, &shutdown, &Finished(&progress)).await,
                None => anyhow::bail!("the task event consumer stopped delivering"),
            },
        }
    }
}

/// [`handle`] as the consume loop's handler.
struct Finished<'a>(&'a Progress);

impl consume::Handler for Finished<'_> {
    async fn handle(&self, batch: &[Message]) -> Vec<Verdict> {
        handle(self.0, batch).await
    }
}

/// Handles one batch of event messages; acks it, or hands it back for a
/// retry when Postgres or NATS failed (every step is idempotent). A message
/// whose events Postgres refuses on their own is kept as a dead letter, and
/// the rest of the batch handled.
async fn handle(progress: &Progress, batch: &[Message]) -> Vec<Verdict> {
    let mut verdicts = Verdicts::new(batch.len());
    let mut finished: Vec<Vec<(Uuid, TaskState)>> = Vec::with_capacity(batch.len());
    let mut seen = HashSet::new();
    let mut readable = Vec::with_capacity(batch.len());
    for (index, message) in batch.iter().enumerate() {
        match codec::decode::<TaskEventBatch>(&message.payload) {
            Ok(events) => {
                finished.push(
                    events
                        .events
                        .into_iter()
                        .filter(|e| e.state.is_terminal() && seen.insert(e.task_id))
                        .map(|e| (e.task_id, e.state))
                        .collect(),
                );
                readable.push(index);
            }
            Err(err) => {
                warn_throttled!(subject = %message.subject, error = %err, "unreadable task event terminated");
                verdicts.set(index, Verdict::Term);
            }
        }
    }
    let redelivered = readable.iter().any(|&i| {
        batch[i]
            .info()
            .map(|info| info.delivered > 1)
            .unwrap_or(true)
    });
    let mut bisection = Bisection::new(readable.len(), ProgressError::is_poison);
    while let Some(part) = bisection.next_part() {
        let result = progress
            .finished(&finished[part.clone()].concat(), redelivered)
            .await;
        bisection.record(part, result);
    }
    let isolated = bisection.finish();
    for (range, ()) in &isolated.recorded {
        verdicts.set_all(readable[range.clone()].iter().copied(), Verdict::Ack);
    }
    for (index, err) in &isolated.poison {
        let message = &batch[readable[*index]];
        let letter = dead_letter(message, &err.refusal());
        let verdict = match progress.store().record_dead_letter(&letter).await {
            Ok(_) => {
                tracing::warn!(subject = %message.subject, reason = %letter.reason, "task events Postgres refused were kept as a dead letter");
                Verdict::Term
            }
            Err(err) => {
                error_throttled!(error = %err, "keeping a dead letter failed; will retry");
                Verdict::Retry
            }
        };
        verdicts.set(readable[*index], verdict);
    }
    if let Some(err) = &isolated.retry_error {
        error_throttled!(
            error = %err,
            messages = isolated.retry_indices().count(),
            "handling finished tasks failed; will retry"
        );
    }
    verdicts.into_vec()
}
