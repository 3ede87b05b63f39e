//! Fired timers: an attempt's deadline, a backoff's end, a delayed start, a
//! placement deadline.
//!
//! Scheduled messages fire on whole seconds; a timer that arrives before it
//! is due is handed back with a delayed NAK for the rest. Each kind becomes
//! one guarded statement per batch, so a timer that fires twice, or for an
//! attempt that is over, changes nothing.

use crate::announce::{Announcer, kills_for};
use crate::{blames_input, dead_letters, refusal};
use taskyard_runtime::batching::Message;
use taskyard_runtime::consume::{Handler, Verdict, Verdicts};
use taskyard_runtime::poison::Bisection;
use taskyard_runtime::{error_throttled, warn_throttled};
use taskyard_store::Store;
use taskyard_wire::codec;
use taskyard_wire::timer::{Timer, TimerKind};

/// A timer this close to its due time is applied now.
const EARLY_TOLERANCE: time::Duration = time::Duration::milliseconds(20);

#[derive(Debug, Clone)]
pub struct TimerHandler {
    store: Store,
    announcer: Announcer,
}

impl TimerHandler {
    pub fn new(store: Store, announcer: Announcer) -> TimerHandler {
        TimerHandler { store, announcer }
    }

    pub async fn handle(&self, batch: &[Message]) -> Vec<Verdict> {
        let now = taskyard_wire::now();
        let mut verdicts = Verdicts::new(batch.len());
        let mut due = Vec::with_capacity(batch.len());
        let mut ready = Vec::with_capacity(batch.len());
        for (index, message) in batch.iter().enumerate() {
            match codec::decode::<Timer>(&message.payload) {
                Ok(timer) if timer.due_at - now > EARLY_TOLERANCE => {
                    // Capped: a schedule that fired long before its time
                    // comes back hourly rather than spinning.
                    let rest = (timer.due_at - now).unsigned_abs();
                    verdicts.set(index, Verdict::RetryAfter(rest));
                }
                Ok(timer) => {
                    due.push(timer);
                    ready.push(index);
                }
                Err(err) => {
                    warn_throttled!(subject = %message.subject, error = %err, "unreadable timer terminated");
                    verdicts.set(index, Verdict::Term);
                }
            }
        }
        let mut bisection = Bisection::new(ready.len(), blames_input);
        while let Some(part) = bisection.next_part() {
            let result = self.fire(&due[part.clone()]).await;
            bisection.record(part, result);
        }
        let isolated = bisection.finish();
        for (range, ()) in &isolated.recorded {
            verdicts.set_all(ready[range.clone()].iter().copied(), Verdict::Ack);
        }
        for (index, err) in &isolated.poison {
            let verdict =
                dead_letters::keep_now(&self.store, &batch[ready[*index]], &refusal(err)).await;
            verdicts.set(ready[*index], verdict);
        }
        if let Some(err) = &isolated.retry_error {
            error_throttled!(
                error = format!("{err:#}"),
                timers = isolated.retry_indices().count(),
                "applying timers failed; will retry"
            );
        }
        verdicts.into_vec()
    }

    /// Applies due timers, kind by kind, and announces what moved.
    pub async fn fire(&self, timers: &[Timer]) -> anyhow::Result<()> {
        for kind in TimerKind::ALL {
            let of_kind: Vec<Timer> = timers.iter().filter(|t| t.kind == kind).cloned().collect();
            if of_kind.is_empty() {
                continue;
            }
            let transitions = self.store.fire_timers(kind, &of_kind).await?;
            metrics::counter!("taskyard_pool_manager_timers_fired_total", "kind" => kind.as_str())
                .increment(of_kind.len() as u64);
            for t in &transitions {
                let span = tracing::info_span!("task", task_id = %t.task_id, attempt = t.attempt);
                span.in_scope(|| {
                    tracing::info!(timer = kind.as_str(), state = %t.to, reason = t.reason.as_deref(), "timer fired")
                });
            }
            self.announcer.announce(&transitions).await?;
            if kind == TimerKind::Timeout {
                self.announcer.kill(&kills_for(&transitions)).await;
            }
        }
        Ok(())
    }
}

impl Handler for TimerHandler {
    async fn handle(&self, batch: &[Message]) -> Vec<Verdict> {
        TimerHandler::handle(self, batch).await
    }
}
