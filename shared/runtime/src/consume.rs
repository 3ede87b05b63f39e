//! One consume loop for every durable consumer: batches in, one verdict per
//! message out.
//!
//! A service's handler says what became of each message of a batch
//! ([`Verdict`]); [`run`] pulls the batches, hands them over, and acks, hands
//! back or terminates each message as told, logging (throttled) what the
//! server refused. So no consumer drops an ack error silently, and a message
//! handed back waits [`REDELIVERY_DELAY`] wherever it comes from. While
//! NATS or Postgres is away, a message to retry is held instead of handed
//! back, so that an outage does not use up its deliveries ([`process`]).

use crate::Shutdown;
use crate::batching::{Message, nak_after};
use crate::health::{Dependency, health};
use async_nats::jetstream::AckKind;
use futures::{Stream, StreamExt};
use std::future::Future;
use std::time::Duration;
use taskyard_wire::origin::Origin;

/// How long a message handed back waits before it comes again: long enough
/// for Postgres or NATS to come back from a blip, short enough that nothing
/// waits long once they have.
pub const REDELIVERY_DELAY: Duration = Duration::from_secs(1);

/// What becomes of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handled: the stream may forget it.
    Ack,
    /// Not handled now, for a reason that is not its own: again after
    /// [`REDELIVERY_DELAY`].
    Retry,
    /// Not due yet: again after this long (capped, see
    /// [`crate::batching::MAX_NAK_DELAY`]).
    RetryAfter(Duration),
    /// Never to be handled (unreadable, or kept as a dead letter): not
    /// delivered again.
    Term,
}

impl Verdict {
    fn ack_kind(self) -> AckKind {
        match self {
            Verdict::Ack => AckKind::Ack,
            Verdict::Retry => nak_after(REDELIVERY_DELAY),
            Verdict::RetryAfter(delay) => nak_after(delay),
            Verdict::Term => AckKind::Term,
        }
    }
}

/// A service's part of a consumer: what each message of a batch came to.
pub trait Handler {
    /// One verdict per message of `batch`, in its order. A verdict missing at
    /// the end counts as [`Verdict::Retry`].
    fn handle(&self, batch: &[Message]) -> impl Future<Output = Vec<Verdict>> + Send;
}

/// Tells the server what became of `message`. A failure needs nothing more
/// than a line: the message comes again once its ack wait runs out, and
/// every consumer takes a message twice without harm.
pub async fn settle(message: &Message, verdict: Verdict) {
    if let Err(err) = message.ack_with(verdict.ack_kind()).await {
        crate::warn_throttled!(
            error = %err,
            subject = %message.subject,
            verdict = ?verdict,
            "cannot settle a message; it comes again after its ack wait"
        );
    }
}

/// [`settle`] for every message of a batch, with its verdict.
pub async fn settle_all(batch: &[Message], verdicts: &[Verdict]) {
    for (index, message) in batch.iter().enumerate() {
        settle(
            message,
            verdicts.get(index).copied().unwrap_or(Verdict::Retry),
        )
        .await;
    }
}

/// Where `message` came from, as a dead letter keeps it (what the server
/// does not say, such as a message read without a consumer, is left empty).
pub fn origin(message: &Message) -> Origin {
    let info = message.info().ok();
    Origin {
        stream: info
            .as_ref()
            .map(|i| i.stream.to_owned())
            .unwrap_or_default(),
        consumer: info
            .as_ref()
            .map(|i| i.consumer.to_owned())
            .unwrap_or_default(),
        stream_seq: info.as_ref().map_or(0, |i| i.stream_sequence),
        subject: message.subject.to_string(),
        payload: message.payload.to_vec(),
        deliveries: info.map_or(0, |i| u32::try_from(i.delivered).unwrap_or(0)),
    }
}

/// Feeds each batch of `incoming` to `handler` and settles its messages,
/// until `shutdown` (`Ok`) or until the consumer stops delivering (an error
/// naming `what`, so that the service stops rather than run half alive;
/// [`crate::batching::batches`] never stops, it opens its pull again).
pub async fn run<S, H>(
    what: &'static str,
    mut incoming: S,
    shutdown: Shutdown,
    handler: H,
) -> anyhow::Result<()>
where
    S: Stream<Item = Vec<Message>> + Unpin,
    H: Handler,
{
    loop {
        let batch = tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            batch = incoming.next() => match batch {
                Some(batch) => batch,
                None => anyhow::bail!("the {what} consumer stopped delivering"),
            },
        };
        if batch.is_empty() {
            continue;
        }
        process(batch, &shutdown, &handler).await;
    }
}

/// How often a message held through an outage is told to the server as
/// still in progress: well inside every consumer's 30 s ack wait.
pub const HOLD_PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Hands `batch` to `handler` and settles each message as its verdict
/// says, except during an outage.
///
/// A message handed back counts as a delivery, and a consumer with
/// `max_deliver` gives up on a message after that many: an outage of
/// Postgres or NATS longer than `max_deliver` redeliveries would turn good
/// messages into dead letters. So while [`crate::health`] says a
/// dependency is away, the messages whose verdict is [`Verdict::Retry`]
/// are kept here instead, marked in progress so that the server does not
/// hand them to anyone else, and handed to `handler` again once it is
/// back. On shutdown they are handed back.
pub async fn process<H: Handler>(mut batch: Vec<Message>, shutdown: &Shutdown, handler: &H) {
    loop {
        let verdicts = handler.handle(&batch).await;
        let mut held = Vec::new();
        for (index, message) in batch.into_iter().enumerate() {
            let verdict = verdicts.get(index).copied().unwrap_or(Verdict::Retry);
            if verdict == Verdict::Retry && !health().is_healthy() {
                held.push(message);
            } else {
                settle(&message, verdict).await;
            }
        }
        if held.is_empty() {
            return;
        }
        tracing::debug!(
            messages = held.len(),
            "holding messages until the outage ends"
        );
        if !ride_out(&held, shutdown).await {
            settle_all(&held, &[]).await;
            return;
        }
        batch = held;
    }
}

/// Waits until every dependency is back (`true`) or `shutdown` (`false`),
/// keeping `held` in progress meanwhile.
async fn ride_out(held: &[Message], shutdown: &Shutdown) -> bool {
    let mut progress = tokio::time::interval_at(
        tokio::time::Instant::now() + HOLD_PROGRESS_EVERY,
        HOLD_PROGRESS_EVERY,
    );
    progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let back = health().wait_healthy();
    tokio::pin!(back);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return false,
            _ = &mut back => return true,
            _ = progress.tick() => {
                // Without NATS it could not reach the server anyway; the
                // server redelivers what it did not hear about, harmlessly.
                if health().is_down(Dependency::Nats) {
                    continue;
                }
                for message in held {
                    if let Err(err) = message.ack_with(AckKind::Progress).await {
                        tracing::debug!(error = %err, "cannot mark a held message in progress");
                    }
                }
            }
        }
    }
}

/// Verdicts for a batch of `len` built index by index: every message starts
/// as [`Verdict::Retry`], so one the handler forgot is handed back rather
/// than lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdicts(Vec<Verdict>);

impl Verdicts {
    pub fn new(len: usize) -> Verdicts {
        Verdicts(vec![Verdict::Retry; len])
    }

    pub fn set(&mut self, index: usize, verdict: Verdict) {
        if let Some(slot) = self.0.get_mut(index) {
            *slot = verdict;
        }
    }

    /// Sets `verdict` for every index of `indices`.
    pub fn set_all(&mut self, indices: impl IntoIterator<Item = usize>, verdict: Verdict) {
        for index in indices {
            self.set(index, verdict);
        }
    }

    pub fn into_vec(self) -> Vec<Verdict> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batching::MAX_NAK_DELAY;

    #[test]
    fn a_verdict_left_unset_hands_the_message_back() {
        let mut verdicts = Verdicts::new(4);
        verdicts.set(0, Verdict::Ack);
        verdicts.set_all([2, 3], Verdict::Term);
        verdicts.set(9, Verdict::Ack);
        assert_eq!(
            verdicts.into_vec(),
            vec![Verdict::Ack, Verdict::Retry, Verdict::Term, Verdict::Term]
        );
    }

    #[test]
    fn verdicts_become_the_acks_the_server_knows() {
        assert!(matches!(Verdict::Ack.ack_kind(), AckKind::Ack));
        assert!(matches!(Verdict::Term.ack_kind(), AckKind::Term));
        assert!(
            matches!(Verdict::Retry.ack_kind(), AckKind::Nak(Some(d)) if d == REDELIVERY_DELAY)
        );
        let far = Verdict::RetryAfter(Duration::from_secs(1 << 40));
        assert!(matches!(far.ack_kind(), AckKind::Nak(Some(d)) if d == MAX_NAK_DELAY));
    }
}
