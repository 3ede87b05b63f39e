//! The pool manager: a task's state after dispatch, from the workers' reports.
//!
//! Reports (`started`, `finished`) are read from the STATUS stream in batches;
//! each batch becomes at most two guarded statements (`scheduled → running`,
//! then `scheduled | running → succeeded | failed | timed_out`, or back to
//! `queued` while attempts remain). A report for another attempt than the
//! task's current one — late, duplicated, or from a node that was declared
//! lost — matches no row and changes nothing. What did change is announced
//! on `taskyard.events.task.<state>` so the scheduler frees the reservation.
//!
//! It also owns pools: their requests (`taskyard.api.pools.<op>`) and the
//! announcements of their changes.
//!
//! # Layout
//! - [`config`]: the service's settings.
//! - [`reports`]: from report messages to store calls and events.
//! - [`pools`]: pool requests.

pub mod config;
pub mod pools;
pub mod reports;

pub use config::Config;

use anyhow::Context;
use futures::StreamExt;
use taskyard_runtime::batching::batches;
use taskyard_runtime::{Shutdown, micro, streams};
use taskyard_store::Store;

/// Runs the pool manager until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let store = Store::connect_and_migrate(&config.common.database_url, config.pool_size)
        .await
        .context("connecting to Postgres")?;
    let attached = micro::attach(
        &config.common,
        "pool-manager",
        "Tracks tasks after dispatch",
    )
    .await?;
    let js = attached.js.clone();
    let service = attached.service;
    let pool_requests = pools::serve(&service, store.clone(), js.clone(), shutdown.clone()).await?;
    let consumer =
        streams::pull_consumer(&js, streams::STATUS, streams::pool_manager_consumer()).await?;
    let mut incoming = batches(&consumer, config.batch_size.max(1)).await?;
    let handler = reports::ReportHandler::new(store, js);
    tracing::info!("pool manager ready");
    loop {
        let batch = tokio::select! {
            _ = shutdown.wait() => {
                pool_requests.await.ok();
                return Ok(());
            }
            batch = incoming.next() => match batch {
                Some(batch) => batch,
                None => anyhow::bail!("the status consumer stopped delivering"),
            },
        };
        handler.handle(batch).await;
    }
}
