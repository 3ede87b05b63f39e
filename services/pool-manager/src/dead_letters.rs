//! Messages that could never be handled: when a consumer gives a message up
//! after its max deliveries, the server publishes an advisory, which the
//! ADVISORIES stream keeps. Here each one becomes a `dead_letters` row with
//! the message's subject, raw payload and the reason, and the message is
//! deleted from its work-queue stream (which would otherwise keep it
//! forever). The consumer it blocked has moved on already.

use async_nats::jetstream;
use serde::Deserialize;
use taskyard_runtime::batching::Message;
use taskyard_runtime::consume::{self, Handler, Verdict};
use taskyard_store::Store;
use taskyard_store::dead_letters::DeadLetter;
use taskyard_wire::origin::Origin;

/// `io.nats.jetstream.advisory.v1.max_deliver`, the fields we use.
#[derive(Debug, Deserialize)]
struct MaxDeliveries {
    stream: String,
    consumer: String,
    stream_seq: u64,
    deliveries: u32,
}

/// Keeps `message` as a dead letter now, with `reason`, and terminates it:
/// what a consumer does with a message that can never be recorded (its
/// batch's statement refused it on its own, see
/// `taskyard_runtime::poison`), rather than redeliver it until its max
/// deliveries. If Postgres cannot take the dead letter either, the message
/// is handed back to be tried again. Returns what to do with the message.
pub async fn keep_now(store: &Store, message: &Message, reason: &str) -> Verdict {
    let letter = DeadLetter {
        origin: consume::origin(message),
        reason: reason.to_owned(),
    };
    match store.record_dead_letter(&letter).await {
        Ok(_) => {
            metrics::counter!("taskyard_pool_manager_dead_letters_total", "stream" => letter.origin.stream.clone())
                .increment(1);
            tracing::warn!(stream = %letter.origin.stream, seq = letter.origin.stream_seq, subject = %letter.origin.subject, %reason, "a message Postgres refused was kept as a dead letter");
            Verdict::Term
        }
        Err(err) => {
            taskyard_runtime::error_throttled!(error = %err, "keeping a dead letter failed; will retry");
            Verdict::Retry
        }
    }
}

#[derive(Debug, Clone)]
pub struct DeadLetters {
    store: Store,
    js: jetstream::Context,
}

impl DeadLetters {
    pub fn new(store: Store, js: jetstream::Context) -> DeadLetters {
        DeadLetters { store, js }
    }

    pub async fn handle(&self, batch: &[Message]) -> Vec<Verdict> {
        let mut verdicts = Vec::with_capacity(batch.len());
        for message in batch {
            let advisory = match serde_json::from_slice::<MaxDeliveries>(&message.payload) {
                Ok(advisory) => advisory,
                Err(err) => {
                    taskyard_runtime::warn_throttled!(error = %err, "unreadable advisory skipped");
                    verdicts.push(Verdict::Term);
                    continue;
                }
            };
            // Other applications' streams are theirs to look after.
            if !advisory.stream.starts_with("TASKYARD_") {
                verdicts.push(Verdict::Ack);
                continue;
            }
            verdicts.push(match self.keep(&advisory).await {
                Ok(()) => Verdict::Ack,
                Err(err) => {
                    taskyard_runtime::error_throttled!(stream = %advisory.stream, seq = advisory.stream_seq, error = format!("{err:#}"), "keeping a dead letter failed; will retry");
                    Verdict::Retry
                }
            });
        }
        verdicts
    }

    async fn keep(&self, advisory: &MaxDeliveries) -> anyhow::Result<()> {
        let stream = self.js.get_stream(&advisory.stream).await?;
        let reason = format!(
            "consumer {} gave it up after {} deliveries",
            advisory.consumer, advisory.deliveries
        );
        let (subject, payload, reason) = match stream.get_raw_message(advisory.stream_seq).await {
            Ok(found) => (found.subject.to_string(), found.payload.to_vec(), reason),
            // Handled after all (a late ack), or deleted already by an
            // earlier try of this advisory: what is known is still kept.
            Err(err) => (
                String::new(),
                Vec::new(),
                format!("{reason}; the message is no longer in the stream ({err})"),
            ),
        };
        let new = self
            .store
            .record_dead_letter(&DeadLetter {
                origin: Origin {
                    stream: advisory.stream.clone(),
                    consumer: advisory.consumer.clone(),
                    stream_seq: advisory.stream_seq,
                    subject: subject.clone(),
                    payload,
                    deliveries: advisory.deliveries,
                },
                reason,
            })
            .await?;
        if new {
            metrics::counter!("taskyard_pool_manager_dead_letters_total", "stream" => advisory.stream.clone())
                .increment(1);
            tracing::warn!(stream = %advisory.stream, seq = advisory.stream_seq, %subject, "message kept as a dead letter");
        }
        if !subject.is_empty()
            && let Err(err) = stream.delete_message(advisory.stream_seq).await
        {
            tracing::warn!(stream = %advisory.stream, seq = advisory.stream_seq, error = %err, "cannot delete a dead letter from its stream");
        }
        Ok(())
    }
}

impl Handler for DeadLetters {
    async fn handle(&self, batch: &[Message]) -> Vec<Verdict> {
        DeadLetters::handle(self, batch).await
    }
}
