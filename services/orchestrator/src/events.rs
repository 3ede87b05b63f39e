//! The orchestrator's consumer of task events: finished tasks, in batches,
//! for [`Progress`]; and the periodic reconciliation.

use crate::progress::Progress;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt;
use std::collections::HashSet;
use std::time::Duration;
use taskyard_runtime::Shutdown;
use taskyard_runtime::batching::{Message, ack_all, batches, nak_all};
use taskyard_wire::codec;
use taskyard_wire::event::TaskEventBatch;

/// How long a batch that could not be handled waits before redelivery.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);
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
    let mut incoming = batches(&consumer, batch_size.clamp(1, MAX_MESSAGES_PER_BATCH)).await?;
    let mut sweep = tokio::time::interval(reconcile_every.max(Duration::from_millis(100)));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            _ = sweep.tick() => {
                if let Err(err) = progress.reconcile().await {
                    tracing::warn!(error = %err, "reconciling dependents and workflows failed; will try again");
                }
            }
            batch = incoming.next() => match batch {
                Some(batch) => handle(&progress, batch).await,
                None => anyhow::bail!("the task event consumer stopped delivering"),
            },
        }
    }
}

/// Handles one batch of event messages; acks it, or hands it back for a
/// retry when Postgres or NATS failed (every step is idempotent).
async fn handle(progress: &Progress, batch: Vec<Message>) {
    let mut finished = Vec::new();
    let mut seen = HashSet::new();
    let mut readable = Vec::with_capacity(batch.len());
    for message in batch {
        match codec::decode::<TaskEventBatch>(&message.payload) {
            Ok(events) => {
                finished.extend(
                    events
                        .events
                        .into_iter()
                        .filter(|e| e.state.is_terminal() && seen.insert(e.task_id))
                        .map(|e| (e.task_id, e.state)),
                );
                readable.push(message);
            }
            Err(err) => {
                tracing::warn!(subject = %message.subject, error = %err, "unreadable task event terminated");
                if let Err(err) = message.ack_with(AckKind::Term).await {
                    tracing::warn!(error = %err, "terminating an event failed");
                }
            }
        }
    }
    let redelivered = readable
        .iter()
        .any(|m| m.info().map(|info| info.delivered > 1).unwrap_or(true));
    match progress.finished(&finished, redelivered).await {
        Ok(()) => ack_all(&readable).await,
        Err(err) => {
            tracing::error!(
                error = %err,
                events = finished.len(),
                "handling finished tasks failed; will retry"
            );
            nak_all(&readable, RETRY_DELAY).await;
        }
    }
}
