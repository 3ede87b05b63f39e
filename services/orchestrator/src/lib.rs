//! The orchestrator: every submission goes through here, and leaves as
//! Postgres rows and `queued` or `rejected` events.
//!
//! Submissions arrive two ways: published on `taskyard.submit` (captured by
//! the SUBMIT stream, read in batches by a durable consumer), or as requests
//! on `taskyard.api.submit` that get `{"ids": [...]}` or an error naming the
//! field. Both go through the same planning and recording code.
//!
//! Creation is idempotent. A redelivered stream message gets the same task ids
//! (derived from its stream sequence and time, see [`ids`]); a task with a known
//! id or idempotency key is not created twice, and the existing one's id is
//! reported. A batch (JSON array) is atomic: one invalid task and every task of
//! the batch is recorded `rejected`, naming the culprit.
//!
//! # Layout
//! - [`config`]: the service's settings.
//! - [`ids`]: deterministic ids for stream submissions.
//! - [`intake`]: from bytes to rows to write (pure).
//! - [`pool_view`]: pools and node sizes, to refuse what could never run.
//! - [`recorder`]: writes rows in one statement and publishes the events.
//! - [`stream`]: the SUBMIT consumer loop.
//! - [`endpoint`]: the request/reply endpoint.

pub mod config;
pub mod endpoint;
pub mod ids;
pub mod intake;
pub mod pool_view;
pub mod recorder;
pub mod stream;

pub use config::Config;

use anyhow::Context;
use taskyard_runtime::{Shutdown, micro, streams};
use taskyard_store::Store;

/// Runs the orchestrator until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let store = Store::connect_and_migrate(&config.common.database_url, config.pool_size)
        .await
        .context("connecting to Postgres")?;
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
    let consumer =
        streams::pull_consumer(&js, streams::SUBMIT, streams::orchestrator_consumer()).await?;
    tracing::info!("orchestrator ready");
    let outcome = stream::consume(consumer, recorder, pools, &config, shutdown.clone()).await;
    shutdown.trigger();
    endpoint.await.ok();
    outcome
}
