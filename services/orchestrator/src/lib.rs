//! The orchestrator: every submission goes through here, and leaves as
//! Postgres rows and `queued`, `pending` or `rejected` events; and every
//! task that ends comes back here, to release or cancel what depends on it.
//!
//! Submissions arrive two ways: published on `taskyard.submit` (captured by
//! the SUBMIT stream, read in batches by a durable consumer), or as requests
//! on `taskyard.api.submit` that get `{"ids": [...]}` or an error naming the
//! field. Both go through the same planning and recording code.
//!
//! Creation is idempotent. A redelivered stream message gets the same task ids
//! (derived from its stream sequence and time, see [`ids`]); a task with a known
//! id or idempotency key is not created twice, and the existing one's id is
//! reported. A batch (JSON array) or a workflow object is atomic: one invalid
//! task (or an unknown dependency, or a cycle) and every task of it is
//! recorded `rejected`, naming the culprit.
//!
//! Tasks with dependencies wait in `pending`. A second durable consumer reads
//! the events of tasks that ended ([`events`]): their dependents are queued
//! when all their dependencies succeeded, or cancelled when one did not, and
//! their workflows move on, to `succeeded`, or through compensation to
//! `failed` ([`progress`]; `docs/workflows.md`).
//!
//! # Layout
//! - [`config`]: the service's settings.
//! - [`ids`]: deterministic ids for stream submissions and compensations.
//! - [`intake`]: from bytes to rows to write (pure).
//! - [`dag`]: dependency names resolved, cycles refused (pure).
//! - [`pool_view`]: pools and node sizes, to refuse what could never run.
//! - [`recorder`]: writes rows in one statement and publishes the events.
//! - [`stream`]: the SUBMIT consumer loop.
//! - [`endpoint`]: the request/reply endpoint.
//! - [`progress`]: release, failure propagation, workflows, compensation.
//! - [`events`]: the consumer of finished-task events, and reconciliation.

pub mod config;
pub mod dag;
pub mod endpoint;
pub mod events;
pub mod ids;
pub mod intake;
pub mod pool_view;
pub mod progress;
pub mod recorder;
pub mod stream;

pub use config::Config;

use anyhow::Context;
use taskyard_runtime::health::{self, Dependency};
use taskyard_runtime::{Shutdown, micro, streams};
use taskyard_store::{DbTls, Store};

/// Runs the orchestrator until `shutdown`.
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
        "orchestrator",
        "Validates submissions and creates tasks",
    )
    .await?;
    let js = attached.js.clone();
    let service = attached.service;
    let pools = pool_view::follow(&attached.client, &store)
        .await
        .context("loading pools and nodes")?;
    let recorder = recorder::Recorder::new(store, js.clone());

    let endpoint = endpoint::serve(
        &service,
        recorder.clone(),
        pools.clone(),
        config.limits(),
        shutdown.clone(),
    )
    .await?;
    // The event consumer exists before the first reconciliation reads
    // Postgres, so that nothing falls between the two.
    let events_consumer = streams::pull_consumer(
        &js,
        streams::EVENTS,
        streams::orchestrator_events_consumer(),
    )
    .await?;
    let progress = progress::Progress::new(recorder.clone(), pools.clone(), config.limits());
    let dependents = {
        let shutdown = shutdown.clone();
        let (batch_size, every) = (config.batch_size, config.reconcile_interval());
        tokio::spawn(async move {
            let outcome = events::consume(
                events_consumer,
                progress,
                batch_size,
                every,
                shutdown.clone(),
            )
            .await;
            if outcome.is_err() {
                // Without it no dependent is ever released: stop the whole
                // service, so that it is restarted rather than half alive.
                shutdown.trigger();
            }
            outcome
        })
    };
    let consumer =
        streams::pull_consumer(&js, streams::SUBMIT, streams::orchestrator_consumer()).await?;
    taskyard_runtime::lag::spawn_lag_watch(
        js.clone(),
        &[
            (streams::SUBMIT, streams::ORCHESTRATOR),
            (streams::EVENTS, streams::ORCHESTRATOR_EVENTS),
        ],
        shutdown.clone(),
    );
    tracing::info!("orchestrator ready");
    let outcome = stream::consume(consumer, recorder, pools, &config, shutdown.clone()).await;
    shutdown.trigger();
    endpoint.await.ok();
    let dependents = match dependents.await {
        Ok(outcome) => outcome.context("following finished tasks"),
        Err(err) => Err(anyhow::anyhow!(
            "the finished-task consumer panicked: {err}"
        )),
    };
    outcome.and(dependents)
}
