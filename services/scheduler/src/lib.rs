//! The scheduler: keeps every pool's queue of waiting tasks in its policy's
//! order, places tasks on nodes whose free resources fit, records the
//! placements, and dispatches them.
//!
//! Its state lives in memory and is rebuilt from Postgres when it starts
//! (queued tasks, reservations of placed tasks, known nodes); from then on it
//! is driven by events only — `queued` tasks, finished tasks that free their
//! reservation, node changes — so it never polls. One placement round is one
//! guarded `UPDATE` (`queued → scheduled`, attempt + 1) for up to
//! [`config::DEFAULT_MAX_ROUND`] tasks, then their dispatches published
//! together. A task the database no longer has as `queued` (cancelled, or
//! placed by an earlier life of this scheduler) simply drops out.
//!
//! # Layout
//! - [`config`]: the service's settings.
//! - [`state`]: the scheduler's memory. Its queues, fleet, quota usage and
//!   held nodes are the policy crate's `Planner`, whose round
//!   (`Planner::plan_round`) is the one the simulator and the decision bench
//!   run; around it, pool definitions, reservations and learned run times.
//!   - `state::rebuild`: the state as Postgres has it, at start.
//!   - `state::events`: decoding task, node and pool events and applying
//!     them.
//!   - `state::wait_reasons`: why each task at the head of a queue waits.
//! - [`dispatcher`]: records placements and publishes dispatches.

pub mod config;
pub mod dispatcher;
pub mod state;

pub use config::Config;

use anyhow::Context;
use futures::StreamExt;
use std::time::Duration;
use taskyard_runtime::batching::{ack_all, batches};
use taskyard_runtime::{Shutdown, micro, streams};
use taskyard_store::Store;
use tokio::time::Instant;

/// How long to wait before trying again after Postgres or NATS failed.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Learned run-time estimates are re-read at most this often, and only when
/// tasks have succeeded since (each success may have moved them).
pub const ESTIMATES_EVERY: Duration = Duration::from_secs(5);
/// Waiting reasons are written at most this often: under load the head of a
/// queue changes every round, and the reasons are for people, not for speed.
pub const REASONS_EVERY: Duration = Duration::from_millis(500);

/// Runs the scheduler until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let store = Store::connect_and_migrate(&config.common.database_url, config.pool_size)
        .await
        .context("connecting to Postgres")?;
    let attached = micro::attach(
        &config.common,
        "scheduler",
        "Orders queued tasks and places them on nodes",
    )
    .await?;
    let js = attached.js.clone();
    let _service = attached.service;

    // Subscribe before reading Postgres: an event that lands in between is
    // then both in the snapshot and redelivered, which is harmless, instead of
    // in neither.
    let consumer =
        streams::pull_consumer(&js, streams::EVENTS, streams::scheduler_consumer()).await?;
    let mut events = batches(&consumer, config.batch_size.max(1)).await?;
    taskyard_runtime::lag::spawn_lag_watch(
        js.clone(),
        &[(streams::EVENTS, streams::SCHEDULER)],
        shutdown.clone(),
    );
    let mut state = state::SchedulerState::rebuild(&store)
        .await
        .context("rebuilding the scheduler's state from Postgres")?;
    let mut dispatcher = dispatcher::Dispatcher::new(store.clone(), js.clone());
    dispatcher
        .resend_scheduled()
        .await
        .context("re-sending dispatches of scheduled tasks")?;
    tracing::info!(
        queued = state.queued(),
        nodes = state.nodes(),
        "scheduler ready"
    );

    let mut retry_at: Option<Instant> = None;
    let mut reasons = Reasons::default();
    let mut estimates_read = Instant::now();
    loop {
        let wake = retry_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = shutdown.wait() => break,
            batch = events.next() => {
                let Some(batch) = batch else {
                    anyhow::bail!("the event consumer stopped delivering");
                };
                for message in &batch {
                    state.apply(&message.subject, &message.payload);
                }
                let succeeded = batch.iter().any(|m| m.subject.ends_with(".succeeded"));
                if succeeded && estimates_read.elapsed() >= ESTIMATES_EVERY {
                    estimates_read = Instant::now();
                    match store.runtime_estimates().await {
                        Ok(estimates) => state.set_estimates(estimates),
                        Err(err) => tracing::warn!(error = %err, "reading learned run times failed"),
                    }
                }
                retry_at = schedule(&mut state, &mut dispatcher, &config).await;
                ack_all(&batch).await;
                retry_at = earliest(retry_at, reasons.record(&mut state, &dispatcher).await);
            }
            _ = tokio::time::sleep_until(wake) => {
                retry_at = schedule(&mut state, &mut dispatcher, &config).await;
                retry_at = earliest(retry_at, reasons.record(&mut state, &dispatcher).await);
            }
        }
    }
    Ok(())
}

/// Places what fits, round after round. Returns when to try again if
/// something failed.
async fn schedule(
    state: &mut state::SchedulerState,
    dispatcher: &mut dispatcher::Dispatcher,
    config: &Config,
) -> Option<Instant> {
    if !dispatcher.flush_undispatched().await {
        return Some(Instant::now() + RETRY_DELAY);
    }
    loop {
        let decisions = state.plan_round(config.max_round.max(1));
        if decisions.is_empty() {
            break;
        }
        let full = decisions.len() >= config.max_round;
        match dispatcher.place(state, decisions).await {
            Ok(()) => {}
            Err(err) => {
                taskyard_runtime::error_throttled!(error = %err, "placement round failed; retrying shortly");
                return Some(Instant::now() + RETRY_DELAY);
            }
        }
        if !full {
            break;
        }
    }
    state.report_metrics();
    None
}

/// Writes waiting reasons at most every [`REASONS_EVERY`].
#[derive(Debug, Default)]
struct Reasons {
    last: Option<Instant>,
}

impl Reasons {
    /// Records what changed if it is time; otherwise returns when it will be.
    async fn record(
        &mut self,
        state: &mut state::SchedulerState,
        dispatcher: &dispatcher::Dispatcher,
    ) -> Option<Instant> {
        if let Some(last) = self.last
            && last.elapsed() < REASONS_EVERY
        {
            return Some(last + REASONS_EVERY);
        }
        self.last = Some(Instant::now());
        let changed = state.changed_wait_reasons();
        if let Err(err) = dispatcher.record_wait_reasons(&changed).await {
            taskyard_runtime::warn_throttled!(error = %err, "recording why tasks wait failed");
        }
        None
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
