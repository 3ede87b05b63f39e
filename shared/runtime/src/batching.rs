//! The hot path's two habits: take messages in batches, publish many at once.

use crate::health::{Dependency, health};
use async_nats::jetstream::consumer::{PullConsumer, pull};
use async_nats::jetstream::{self, context::PublishErrorKind};
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
///
/// The stream never ends: it rides out a NATS restart or failover. The
/// client reconnects by itself, and async-nats sends a new pull request
/// once it is back, but a pull can still be lost on the way (sent while
/// JetStream was not ready yet, answered "no responders", or ended by the
/// server), which left the old stream silent until its 30 s expiry or over
/// for good. So the underlying message stream is opened again, with
/// backoff, when it ends, when a pull fails, and when an idle heartbeat is
/// missed while NATS is connected. Only the first open can fail.
pub async fn batches(
    consumer: &PullConsumer,
    max: usize,
) -> Result<impl Stream<Item = Vec<Message>> + Unpin + Send + use<>, BatchError> {
    let max = max.max(1);
    let first = open(consumer, max).await?;
    let feed = Feed {
        consumer: consumer.clone(),
        max,
        messages: Some(first),
        delay: REOPEN_FIRST,
    };
    Ok(futures::stream::unfold(feed, |mut feed| async move {
        let batch = feed.next_batch().await;
        Some((batch, feed))
    })
    .boxed())
}

/// Idle heartbeat asked of the server; two of them missed is an error item.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Wait before the first re-open of a message stream; doubles up to
/// [`REOPEN_MAX`] while re-opening keeps failing.
const REOPEN_FIRST: Duration = Duration::from_millis(100);
const REOPEN_MAX: Duration = Duration::from_secs(5);

type Chunks = futures::stream::ReadyChunks<pull::Stream>;

async fn open(consumer: &PullConsumer, max: usize) -> Result<Chunks, BatchError> {
    let messages = consumer
        .stream()
        .max_messages_per_batch(max)
        .heartbeat(HEARTBEAT)
        .expires(Duration::from_secs(30))
        .messages()
        .await?;
    Ok(messages.ready_chunks(max))
}

/// A pull consumer's message stream, and what it takes to open it again.
struct Feed {
    consumer: PullConsumer,
    max: usize,
    /// `None` once it is to be opened again.
    messages: Option<Chunks>,
    delay: Duration,
}

impl Feed {
    fn name(&self) -> &str {
        &self.consumer.cached_info().name
    }

    /// The next non-empty batch, however long that takes.
    async fn next_batch(&mut self) -> Vec<Message> {
        loop {
            let Some(messages) = self.messages.as_mut() else {
                tokio::time::sleep(self.delay).await;
                self.delay = (self.delay * 2).min(REOPEN_MAX);
                match open(&self.consumer, self.max).await {
                    Ok(messages) => self.messages = Some(messages),
                    Err(err) => quiet_while_away(self.name(), &err.to_string()),
                }
                continue;
            };
            let Some(chunk) = messages.next().await else {
                crate::warn_throttled!(
                    consumer = self.name(),
                    "the pull consumer's message stream ended; opening it again"
                );
                self.messages = None;
                continue;
            };
            let mut batch = Vec::with_capacity(chunk.len());
            let mut reopen = false;
            for item in chunk {
                match item {
                    Ok(message) => batch.push(message),
                    Err(err) => {
                        reopen |= lost_the_pull(&err);
                        quiet_while_away(self.name(), &err.to_string());
                    }
                }
            }
            if reopen {
                self.messages = None;
            }
            if !batch.is_empty() {
                self.delay = REOPEN_FIRST;
                return batch;
            }
        }
    }
}

/// Whether `err` means no pull request of ours is waiting on the server
/// any more, so that nothing will come until one is sent again.
fn lost_the_pull(err: &pull::MessagesError) -> bool {
    match err.kind() {
        // Missed while disconnected is the outage itself; the client
        // pulls again once it is back.
        pull::MessagesErrorKind::MissingHeartbeat => !health().is_down(Dependency::Nats),
        pull::MessagesErrorKind::NoResponders | pull::MessagesErrorKind::Pull => true,
        // These end the stream; it is opened again when it says so.
        pull::MessagesErrorKind::ConsumerDeleted
        | pull::MessagesErrorKind::PushBasedConsumer
        | pull::MessagesErrorKind::RequestLimitExceeded => false,
        pull::MessagesErrorKind::Other => false,
    }
}

/// A pull that failed: worth a line unless NATS is known to be away, which
/// was said once already.
fn quiet_while_away(consumer: &str, err: &str) {
    if health().is_down(Dependency::Nats) {
        tracing::debug!(consumer, error = err, "pull consumer waits for NATS");
    } else {
        crate::warn_throttled!(consumer, error = err, "pull consumer hiccup; pulling again");
    }
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
