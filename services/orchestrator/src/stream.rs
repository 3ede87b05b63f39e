//! The SUBMIT stream consumer: submissions in batches, one statement each.

use crate::config::Config;
use crate::ids::StreamOrigin;
use crate::intake::Planned;
use crate::intake::{IdSource, Plan, plan};
use crate::pool_view::{self, SharedView};
use crate::recorder::{RecordError, Recorder};
use async_nats::jetstream::consumer::PullConsumer;
use taskyard_runtime::batching::{Message, batches};
use taskyard_runtime::consume::{self, Handler, Verdict, Verdicts};
use taskyard_runtime::poison::Bisection;
use taskyard_runtime::{Shutdown, error_throttled, warn_throttled};
use taskyard_store::dead_letters::DeadLetter;
use taskyard_wire::task::Limits;

/// Reads submissions until `shutdown`.
pub async fn consume(
    consumer: PullConsumer,
    recorder: Recorder,
    pools: SharedView,
    config: &Config,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let incoming = batches(&consumer, config.batch_size).await?;
    let submissions = Submissions {
        recorder,
        pools,
        limits: config.limits(),
    };
    consume::run("submission", incoming, shutdown, submissions).await
}

/// The SUBMIT consumer's handler: plans each submission, records the
/// batch's plans in one statement.
struct Submissions {
    recorder: Recorder,
    pools: SharedView,
    limits: Limits,
}

impl Handler for Submissions {
    async fn handle(&self, batch: &[Message]) -> Vec<Verdict> {
        let mut verdicts = Verdicts::new(batch.len());
        let mut plans = Vec::with_capacity(batch.len());
        let mut planned_from = Vec::with_capacity(batch.len());
        for (index, message) in batch.iter().enumerate() {
            match self.plan(message).await {
                Some(planned) => {
                    plans.push(planned);
                    planned_from.push(index);
                }
                None => verdicts.set(index, Verdict::Term),
            }
        }
        if !plans.is_empty() {
            let messages: Vec<&Message> = planned_from.iter().map(|&i| &batch[i]).collect();
            let settled = record(&self.recorder, plans, &messages).await;
            for (verdict, index) in settled.into_iter().zip(planned_from) {
                verdicts.set(index, verdict);
            }
        }
        verdicts.into_vec()
    }
}

impl Submissions {
    /// What to record of `message`, or `None` when it is unreadable (it is
    /// then terminated: no id, nothing to reject).
    async fn plan(&self, message: &Message) -> Option<Planned> {
        let origin = match message.info() {
            Ok(info) => StreamOrigin {
                sequence: info.stream_sequence,
                published_nanos: info.published.unix_timestamp_nanos(),
            },
            Err(err) => {
                warn_throttled!(error = %err, "submission without stream metadata; terminated");
                return None;
            }
        };
        let mut planned = plan(
            &message.payload,
            &self.limits,
            IdSource::Stream(origin),
            &pool_view::read(&self.pools),
        );
        if matches!(&planned, Plan::Record(p) if pool_view::is_unknown_pool(p.refusal.as_ref())) {
            pool_view::catch_up(&self.pools, self.recorder.store()).await;
            planned = plan(
                &message.payload,
                &self.limits,
                IdSource::Stream(origin),
                &pool_view::read(&self.pools),
            );
        }
        match planned {
            Plan::Unreadable(rejection) => {
                warn_throttled!(
                    sequence = origin.sequence,
                    subject = %message.subject,
                    bytes = message.payload.len(),
                    reason = %rejection.message,
                    "unreadable submission terminated"
                );
                metrics::counter!("taskyard_orchestrator_unreadable_total").increment(1);
                None
            }
            Plan::Record(planned) => Some(planned),
        }
    }
}

/// Records a batch's plans in one statement; when Postgres refuses what
/// some of them hold, isolates those, records the rest, and sets each
/// culprit aside on its own ([`quarantine`]). One verdict per plan.
async fn record(
    recorder: &Recorder,
    mut plans: Vec<Planned>,
    messages: &[&Message],
) -> Vec<Verdict> {
    let mut verdicts = Verdicts::new(plans.len());
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
        verdicts.set_all(range.clone(), Verdict::Ack);
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
        let verdict = quarantine(recorder, &mut plans[*index], messages[*index], err).await;
        verdicts.set(*index, verdict);
    }
    if let Some(err) = &isolated.retry_error {
        error_throttled!(
            error = %err,
            submissions = isolated.retry_indices().count(),
            "recording failed; will retry"
        );
    }
    verdicts.into_vec()
}

/// One submission Postgres would not store: it is recorded `rejected` with
/// Postgres's reason and without the fields that could hold the cause; if
/// even that is refused, it is kept as a dead letter with the reason. The
/// rest of its batch is recorded either way.
async fn quarantine(
    recorder: &Recorder,
    plan: &mut Planned,
    message: &Message,
    err: &RecordError,
) -> Verdict {
    let reason = err.refusal();
    let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
    metrics::counter!("taskyard_orchestrator_poison_total").increment(1);
    plan.quarantine(&reason);
    match recorder.record(std::slice::from_mut(plan)).await {
        Ok(_) => {
            tracing::warn!(sequence, %reason, "a submission Postgres cannot store was recorded rejected");
            Verdict::Ack
        }
        Err(again) if again.is_poison() => {
            let letter = dead_letter(message, &reason);
            match recorder.store().record_dead_letter(&letter).await {
                Ok(_) => {
                    tracing::warn!(sequence, %reason, "a submission Postgres cannot store was kept as a dead letter");
                    Verdict::Term
                }
                Err(err) => {
                    error_throttled!(error = %err, sequence, "keeping a dead letter failed; will retry");
                    Verdict::Retry
                }
            }
        }
        Err(again) => {
            error_throttled!(error = %again, sequence, "recording a refused submission failed; will retry");
            Verdict::Retry
        }
    }
}

/// `message` as a dead letter of its consumer, kept for `reason`.
pub(crate) fn dead_letter(message: &Message, reason: &str) -> DeadLetter {
    DeadLetter {
        origin: consume::origin(message),
        reason: reason.to_owned(),
    }
}
