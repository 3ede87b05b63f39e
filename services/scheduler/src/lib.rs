//! The scheduler: keeps every pool's queue of waiting tasks in its policy's
//! order, places tasks on nodes whose free resources fit, records the
//! placements, and dispatches them.
//!
//! Several may run: one is active, holding the `scheduler` lease in
//! Postgres (`taskyard_store::leases`), and the others stand by, pulling
//! nothing, until its lease runs out unrenewed (`TASKYARD_LEASE_TTL_MS`) or
//! is handed on at shutdown. Every placement statement carries the lease's
//! epoch, so an ex-leader that wakes from a pause cannot place a task after
//! its successor took over.
//!
//! The active scheduler's state lives in memory and is rebuilt from Postgres
//! when it takes the lease (queued tasks, reservations of placed tasks, known
//! nodes); from then on it is driven by events — `queued` tasks, finished
//! tasks that free their reservation, node changes — and checked against
//! Postgres every `TASKYARD_RESYNC_INTERVAL_MS`, which heals what an event
//! lost after its commit left wrong. One placement round is one
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
//!   - `state::rebuild`: the state as Postgres has it, at start, and the
//!     periodic resync.
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
use taskyard_runtime::health::{self, Dependency};
use taskyard_runtime::{Shutdown, micro, streams};
use taskyard_store::leases::{self, Fence, Leadership, LeaseTerms, Role};
use taskyard_store::{DbTls, Store};
use tokio::time::Instant;

/// How long to wait before trying again after Postgres or NATS failed.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Learned run-time estimates are re-read at most this often, and only when
/// tasks have succeeded since (each success may have moved them).
pub const ESTIMATES_EVERY: Duration = Duration::from_secs(5);
/// Waiting reasons are written at most this often: under load the head of a
/// queue changes every round, and the reasons are for people, not for speed.
pub const REASONS_EVERY: Duration = Duration::from_millis(500);

/// The lease whose holder is the active scheduler.
pub const LEASE: &str = "scheduler";

/// Why a term as the active scheduler ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TermEnd {
    Shutdown,
    /// Another scheduler holds the lease now.
    Deposed,
}

/// Runs the scheduler until `shutdown`: a standby until it holds the
/// scheduler lease, the active scheduler while it does.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let store = Store::connect_and_migrate_with(
        &config.common.database_url,
        config.pool_size,
        &DbTls::from_ca_file(config.common.database_ca_file.clone()),
    )
    .await
    .context("connecting to Postgres")?;
    health::spawn_probe(Dependency::Postgres, shutdown.clone(), {
        let store = store.clone();
        move || {
            let store = store.clone();
            async move { store.ping().await }
        }
    });
    let attached = micro::attach(
        &config.common,
        "scheduler",
        "Orders queued tasks and places them on nodes",
    )
    .await?;
    let js = attached.js.clone();
    let _service = attached.service;
    let role = attached.role;
    role.set(Role::Standby.describe());
    taskyard_runtime::lag::spawn_lag_watch(
        js.clone(),
        &[(streams::EVENTS, streams::SCHEDULER)],
        shutdown.clone(),
    );
    let terms = LeaseTerms::with_ttl(Duration::from_millis(config.lease_ttl_ms));
    let holder = leases::holder_id("scheduler");
    tracing::info!(holder = %holder, lease_ttl_ms = config.lease_ttl_ms, "scheduler started; taking the lease when it is free");
    let mut leadership = Leadership::start(store.clone(), LEASE, holder, terms);
    let outcome = loop {
        let fence = tokio::select! {
            _ = shutdown.wait() => break Ok(()),
            fence = leadership.active() => fence,
        };
        role.set(Role::Active(fence).describe());
        metrics::gauge!("taskyard_scheduler_active").set(1.0);
        let term = lead(&config, &store, &js, fence, &mut leadership, &shutdown).await;
        metrics::gauge!("taskyard_scheduler_active").set(0.0);
        role.set(Role::Standby.describe());
        match term {
            Ok(TermEnd::Shutdown) => break Ok(()),
            Ok(TermEnd::Deposed) => {
                tracing::warn!(
                    epoch = fence.epoch,
                    "this scheduler no longer holds the lease (see the lease log line before); standing by"
                );
                metrics::counter!("taskyard_scheduler_deposed_total").increment(1);
                leadership.step_down(fence);
            }
            Err(err) => break Err(err),
        }
    };
    // Handing the lease on lets a standby take over now, not a term later.
    leadership.release().await;
    outcome
}

/// One term as the active scheduler: the state as Postgres has it, then
/// events, placements and resyncs until shutdown or another takes over.
async fn lead(
    config: &Config,
    store: &Store,
    js: &async_nats::jetstream::Context,
    fence: Fence,
    leadership: &mut Leadership,
    shutdown: &Shutdown,
) -> anyhow::Result<TermEnd> {
    // Subscribe before reading Postgres: an event that lands in between is
    // then both in the snapshot and redelivered, which is harmless, instead of
    // in neither. A standby pulls nothing: the active scheduler has every
    // event to itself.
    let consumer =
        streams::pull_consumer(js, streams::EVENTS, streams::scheduler_consumer()).await?;
    let mut events = batches(&consumer, config.batch_size.max(1)).await?;
    let mut state = state::SchedulerState::rebuild(store)
        .await
        .context("rebuilding the scheduler's state from Postgres")?;
    let mut dispatcher = dispatcher::Dispatcher::new(store.clone(), js.clone(), fence);
    dispatcher
        .resend_scheduled()
        .await
        .context("re-sending dispatches of scheduled tasks")?;
    tracing::info!(
        epoch = fence.epoch,
        queued = state.queued(),
        nodes = state.nodes(),
        "scheduler active"
    );

    let resync_every = Duration::from_millis(config.resync_interval_ms.max(1));
    let mut resync = tokio::time::interval_at(Instant::now() + resync_every, resync_every);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reasons = Reasons::default();
    let mut estimates_read = Instant::now();
    // Placements first: an event batch that arrives meanwhile waits in the
    // consumer, and a round may free what the snapshot holds.
    let mut placed = schedule(&mut state, &mut dispatcher, config).await;
    loop {
        let retry_at = match placed {
            Ok(retry) => earliest(retry, reasons.record(&mut state, &dispatcher).await),
            Err(Deposed) => return Ok(TermEnd::Deposed),
        };
        let wake = retry_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        placed = tokio::select! {
            _ = shutdown.wait() => return Ok(TermEnd::Shutdown),
            () = leadership.lost(fence) => return Ok(TermEnd::Deposed),
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
                let placed = schedule(&mut state, &mut dispatcher, config).await;
                ack_all(&batch).await;
                placed
            }
            _ = resync.tick() => {
                match state.resync(store).await {
                    Ok(healed) if healed.is_empty() => {}
                    Ok(healed) => {
                        tracing::warn!(
                            released = healed.released,
                            held = healed.held,
                            enqueued = healed.enqueued,
                            dropped = healed.dropped,
                            "the scheduler's state differed from Postgres (an event was lost); put right"
                        );
                        metrics::counter!("taskyard_scheduler_resync_repairs_total")
                            .increment((healed.released + healed.held + healed.enqueued + healed.dropped) as u64);
                    }
                    Err(err) => taskyard_runtime::warn_throttled!(error = %err, "checking the scheduler's state against Postgres failed"),
                }
                schedule(&mut state, &mut dispatcher, config).await
            }
            _ = tokio::time::sleep_until(wake) => {
                schedule(&mut state, &mut dispatcher, config).await
            }
        };
    }
}

/// A placement round was refused: another scheduler holds the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deposed;

/// Places what fits, round after round. Returns when to try again if
/// something failed.
async fn schedule(
    state: &mut state::SchedulerState,
    dispatcher: &mut dispatcher::Dispatcher,
    config: &Config,
) -> Result<Option<Instant>, Deposed> {
    if !dispatcher.flush_undispatched().await {
        return Ok(Some(Instant::now() + RETRY_DELAY));
    }
    loop {
        let decisions = state.plan_round(config.max_round.max(1));
        if decisions.is_empty() {
            break;
        }
        let full = decisions.len() >= config.max_round;
        match dispatcher.place(state, decisions).await {
            Ok(()) => {}
            Err(dispatcher::DispatchError::Store(err)) if err.is_fenced() => return Err(Deposed),
            Err(err) => {
                taskyard_runtime::error_throttled!(error = %err, "placement round failed; retrying shortly");
                return Ok(Some(Instant::now() + RETRY_DELAY));
            }
        }
        if !full {
            break;
        }
    }
    state.report_metrics();
    Ok(None)
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
