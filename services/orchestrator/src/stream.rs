//! The SUBMIT stream consumer: submissions in batches, one statement each.

use crate::config::Config;
use crate::ids::StreamOrigin;
use crate::intake::Planned;
use crate::intake::{IdSource, Plan, plan};
use crate::pool_view::{self, SharedView};
use crate::recorder::{RecordError, Recorder};
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt;
use std::time::Duration;
use taskyard_runtime::batching::{Message, ack_all, batches, nak_all};
use taskyard_runtime::poison::Bisection;
use taskyard_runtime::{Shutdown, error_throttled};
use taskyard_store::dead_letters::DeadLetter;

/// How long a batch that could not be recorded waits before redelivery.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Reads submissions until `shutdown`.
pub async fn consume(
    consumer: PullConsumer,
    recorder: Recorder,
    pools: SharedView,
    config: &Config,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let mut incoming = batches(&consumer, config.batch_size.max(1)).await?;
    let limits = config.limits();
    loop {
        let batch = tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            batch = incoming.next() => match batch {
                Some(batch) => batch,
                None => anyhow::bail!("the submission consumer stopped delivering"),
            },
        };
        let mut plans = Vec::with_capacity(batch.len());
        let mut recorded: Vec<Message> = Vec::with_capacity(batch.len());
        for message in batch {
            let origin = match message.info() {
                Ok(info) => StreamOrigin {
                    sequence: info.stream_sequence,
                    published_nanos: info.published.unix_timestamp_nanos(),
                },
                Err(err) => {
                    tracing::warn!(error = %err, "submission without stream metadata; terminated");
                    terminate(&message).await;
                    continue;
                }
            };
            let mut planned = plan(
                &message.payload,
                &limits,
                IdSource::Stream(origin),
                &pool_view::read(&pools),
            );
            if matches!(&planned, Plan::Record(p) if pool_view::is_unknown_pool(p.refusal.as_ref()))
            {
                pool_view::catch_up(&pools, recorder.store()).await;
                planned = plan(
                    &message.payload,
                    &limits,
                    IdSource::Stream(origin),
                    &pool_view::read(&pools),
                );
            }
            match planned {
                Plan::Unreadable(rejection) => {
                    tracing::warn!(
                        sequence = origin.sequence,
                        subject = %message.subject,
                        bytes = message.payload.len(),
                        reason = %rejection.message,
                        "unreadable submission terminated"
                    );
                    metrics::counter!("taskyard_orchestrator_unreadable_total").increment(1);
                    terminate(&message).await;
                }
                Plan::Record(planned) => {
                    plans.push(planned);
                    recorded.push(message);
                }
            }
        }
        if plans.is_empty() {
            continue;
        }
        record(&recorder, plans, recorded).await;
    }
}

/// Records a batch's plans in one statement; when Postgres refuses what
/// some of them hold, isolates those, records the rest, and sets each
/// culprit aside on its own ([`quarantine`]).
async fn record(recorder: &Recorder, mut plans: Vec<Planned>, messages: Vec<Message>) {
    let mut bisection = Bisection::new(plans.len(), RecordError::is_poison);
    while let Some(part) = bisection.next_part() {
        let result = recorder.record(&mut plans[part.clone()]).await;
        bisection.record(part, result);
    }
    let isolated = bisection.finish();
    for (range, outcomes) in &isolated.recorded {
        for (outcome, message) in outcomes.iter().zip(&messages[range.clone()]) {
            if let Some(refusal) = &outcome.refusal {
                let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                tracing::info!(sequence, reason = %refusal, "submission rejected");
            }
        }
        ack_all(&messages[range.clone()]).await;
    }
    if !isolated.poison.is_empty() {
        tracing::warn!(
            poison = isolated.poison.len(),
            recorded = isolated.recorded_items(),
            submissions = messages.len(),
            "Postgres refused a batch for what some submissions hold; they are set aside, the others recorded"
        );
    }
    for (index, err) in &isolated.poison {
        quarantine(recorder, &mut plans[*index], &messages[*index], err).await;
    }
    if let Some(err) = &isolated.retry_error {
        let retry: Vec<Message> = isolated
            .retry_indices()
            .map(|i| messages[i].clone())
            .collect();
        error_throttled!(error = %err, submissions = retry.len(), "recording failed; will retry");
        nak_all(&retry, RETRY_DELAY).await;
    }
}

/// One submission Postgres would not store: it is recorded `rejected` with
/// Postgres's reason and without the fields that could hold the cause; if
/// even that is refused, it is kept as a dead letter with the reason. The
/// rest of its batch is recorded either way.
async fn quarantine(recorder: &Recorder, plan: &mut Planned, message: &Message, err: &RecordError) {
    let reason = err.refusal();
    let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
    metrics::counter!("taskyard_orchestrator_poison_total").increment(1);
    plan.quarantine(&reason);
    match recorder.record(std::slice::from_mut(plan)).await {
        Ok(_) => {
            tracing::warn!(sequence, %reason, "a submission Postgres cannot store was recorded rejected");
            ack_all(std::slice::from_ref(message)).await;
        }
        Err(again) if again.is_poison() => {
            let letter = dead_letter(message, &reason);
            match recorder.store().record_dead_letter(&letter).await {
                Ok(_) => {
                    tracing::warn!(sequence, %reason, "a submission Postgres cannot store was kept as a dead letter");
                    terminate(message).await;
                }
                Err(err) => {
                    error_throttled!(error = %err, sequence, "keeping a dead letter failed; will retry");
                    nak_all(std::slice::from_ref(message), RETRY_DELAY).await;
                }
            }
        }
        Err(again) => {
            error_throttled!(error = %again, sequence, "recording a refused submission failed; will retry");
            nak_all(std::slice::from_ref(message), RETRY_DELAY).await;
        }
    }
}

/// `message` as a dead letter of its consumer, kept for `reason`.
pub(crate) fn dead_letter(message: &Message, reason: &str) -> DeadLetter {
    let info = message.info().ok();
    DeadLetter {
        stream: info
            .as_ref()
            .map(|i| i.stream.to_owned())
            .unwrap_or_default(),
        consumer: info
            .as_ref()
            .map(|i| i.consumer.to_owned())
            .unwrap_or_default(),
        stream_seq: info.as_ref().map(|i| i.stream_sequence).unwrap_or(0),
        subject: message.subject.to_string(),
        payload: message.payload.to_vec(),
        deliveries: info
            .map(|i| u32::try_from(i.delivered).unwrap_or(0))
            .unwrap_or(0),
        reason: reason.to_owned(),
    }
}

async fn terminate(message: &Message) {
    if let Err(err) = message.ack_with(AckKind::Term).await {
        tracing::warn!(error = %err, "terminating a submission failed");
    }
}
