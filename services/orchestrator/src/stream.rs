//! The SUBMIT stream consumer: submissions in batches, one statement each.

use crate::config::Config;
use crate::ids::StreamOrigin;
use crate::intake::{IdSource, Plan, plan};
use crate::pool_view::{self, SharedView};
use crate::recorder::Recorder;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt;
use std::time::Duration;
use taskyard_runtime::Shutdown;
use taskyard_runtime::batching::{Message, ack_all, batches, nak_all};

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
        match recorder.record(plans).await {
            Ok(outcomes) => {
                for (outcome, message) in outcomes.iter().zip(&recorded) {
                    if let Some(refusal) = &outcome.refusal {
                        let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                        tracing::info!(sequence, reason = %refusal, "submission rejected");
                    }
                }
                ack_all(&recorded).await
            }
            Err(err) => {
                tracing::error!(error = %err, submissions = recorded.len(), "recording failed; will retry");
                nak_all(&recorded, RETRY_DELAY).await;
            }
        }
    }
}

async fn terminate(message: &Message) {
    if let Err(err) = message.ack_with(AckKind::Term).await {
        tracing::warn!(error = %err, "terminating a submission failed");
    }
}
