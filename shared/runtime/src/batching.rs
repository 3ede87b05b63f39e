//! The hot path's two habits: take messages in batches, publish many at once.

use async_nats::jetstream::{self, consumer::PullConsumer, context::PublishErrorKind};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::time::Duration;

pub use async_nats::jetstream::Message;

/// Why batching failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("cannot pull from the consumer: {0}")]
    Pull(#[from] jetstream::consumer::StreamError),
    #[error("publish to {subject} failed: {source}")]
    Publish {
        subject: String,
        #[source]
        source: jetstream::context::PublishError,
    },
}

/// Messages of a pull consumer, grouped: each item is everything that was
/// ready, up to `max`. Under load batches fill up; when idle a single message
/// comes through at once, so batching never adds latency.
pub async fn batches(
    consumer: &PullConsumer,
    max: usize,
) -> Result<impl Stream<Item = Vec<Message>> + use<>, BatchError> {
    let messages = consumer
        .stream()
        .max_messages_per_batch(max)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await?;
    Ok(messages.ready_chunks(max).map(|chunk| {
        chunk
            .into_iter()
            .filter_map(|item| match item {
                Ok(message) => Some(message),
                Err(err) => {
                    crate::warn_throttled!(error = %err, "pull consumer hiccup");
                    None
                }
            })
            .collect::<Vec<_>>()
    }))
}

/// A message to publish on JetStream.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub subject: String,
    pub payload: Bytes,
    /// `Nats-Msg-Id`: the stream drops a second message with the same id
    /// within its duplicate window.
    pub msg_id: Option<String>,
    /// Further headers (a timer's `Nats-Schedule`, for one).
    pub headers: Vec<(&'static str, String)>,
}

impl Outgoing {
    pub fn new(subject: impl Into<String>, payload: impl Into<Bytes>) -> Outgoing {
        Outgoing {
            subject: subject.into(),
            payload: payload.into(),
            msg_id: None,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Outgoing {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_msg_id(mut self, id: impl Into<String>) -> Outgoing {
        self.msg_id = Some(id.into());
        self
    }
}

/// Publishes every message, then waits for all their acks together: the
/// messages are durable when this returns `Ok`.
pub async fn publish_all(
    js: &jetstream::Context,
    messages: Vec<Outgoing>,
) -> Result<(), BatchError> {
    let mut pending = Vec::with_capacity(messages.len());
    for message in messages {
        let mut publish = jetstream::message::PublishMessage::build().payload(message.payload);
        if let Some(id) = &message.msg_id {
            publish = publish.message_id(id);
        }
        for (name, value) in &message.headers {
            publish = publish.header(*name, value.as_str());
        }
        let ack = js
            .send_publish(message.subject.clone(), publish)
            .await
            .map_err(|source| BatchError::Publish {
                subject: message.subject.clone(),
                source,
            })?;
        pending.push((message.subject, ack));
    }
    let results = futures::future::join_all(
        pending
            .into_iter()
            .map(|(subject, ack)| async move { (subject, ack.await) }),
    )
    .await;
    for (subject, result) in results {
        if let Err(source) = result {
            return Err(BatchError::Publish { subject, source });
        }
    }
    Ok(())
}

/// Whether a publish error means the server refused the message for good
/// (retrying the same bytes would fail again).
pub fn is_permanent(err: &BatchError) -> bool {
    matches!(err, BatchError::Publish { source, .. } if source.kind() == PublishErrorKind::MaxPayloadExceeded)
}

/// Acknowledges every message; a failure is logged (the message will be
/// redelivered, and every consumer tolerates that).
pub async fn ack_all(messages: &[Message]) {
    for message in messages {
        crate::consume::settle(message, crate::consume::Verdict::Ack).await;
    }
}

/// The longest a message is ever handed back for. nats-server refuses a
/// NAK delay it cannot represent ("bad NAK delay value") and redelivers at
/// once, so an unbounded delay (a timer due in a thousand years) would turn
/// into a redelivery loop; a message due later than this is simply handed
/// back again when it comes.
pub const MAX_NAK_DELAY: Duration = Duration::from_secs(3600);

/// A NAK that hands a message back for `delay`, at most [`MAX_NAK_DELAY`].
pub fn nak_after(delay: Duration) -> async_nats::jetstream::AckKind {
    async_nats::jetstream::AckKind::Nak(Some(delay.min(MAX_NAK_DELAY)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::jetstream::AckKind;

    #[test]
    fn a_nak_delay_is_capped() {
        let far = Duration::from_secs(8_000 * 365 * 24 * 3600);
        assert!(matches!(nak_after(far), AckKind::Nak(Some(d)) if d == MAX_NAK_DELAY));
        let near = Duration::from_millis(250);
        assert!(matches!(nak_after(near), AckKind::Nak(Some(d)) if d == near));
    }
}
