//! The pool manager: a task's state after dispatch, its deadlines, and pools.
//!
//! Worker reports (`started`, `finished`) are read from the STATUS stream in
//! batches; each batch becomes at most two guarded statements. An attempt
//! that fails with attempts left waits out its backoff in `retrying`. A
//! report for another attempt than the task's current one — late,
//! duplicated, or from a node declared lost — matches no row and changes
//! nothing, and a node still running such an attempt is told to kill it.
//!
//! Deadlines ride on durable timers (scheduled messages on the TIMERS
//! stream), so a restart loses none: an attempt past its timeout, a backoff's
//! end, a delayed start, a placement deadline. Lost nodes (node events) have
//! their attempts queued again. Cancels come as requests. Messages given up
//! after their max deliveries become dead letters. A reconciler catches what
//! a crash between a commit and a publish could lose.
//!
//! It also owns pools: their requests (`taskyard.api.pools.<op>`) and the
//! announcements of their changes.
//!
//! # Layout
//! - [`config`]: the service's settings.
//! - [`announce`]: events, timers and kills after a transition.
//! - [`reports`]: from report messages to store calls and events.
//! - [`timers`]: fired timers.
//! - [`node_loss`]: lost nodes' attempts.
//! - [`cancel`]: cancel requests.
//! - [`dead_letters`]: max-deliveries advisories to `dead_letters` rows.
//! - [`logs`]: task log lines (LOGS stream) to `task_logs` rows.
//! - [`salvage`]: what can be kept of a report or log line Postgres refuses.
//! - [`reconciler`]: the periodic backstop.
//! - [`pools`]: pool requests.

pub mod announce;
pub mod cancel;
pub mod census;
pub mod config;
pub mod dead_letters;
pub mod logs;
pub mod node_loss;
pub mod pools;
pub mod reconciler;
pub mod reports;
pub mod salvage;
pub mod timers;
pub mod timings;

pub use config::Config;

use anyhow::Context;
use std::time::Duration;
use taskyard_runtime::batching::batches;
use taskyard_runtime::health::{self, Dependency};
use taskyard_runtime::{Shutdown, consume, micro, streams};
use taskyard_store::{DbTls, Store};

/// Whether Postgres refused a batch for what it holds (see
/// `taskyard_runtime::poison`), through the context the handlers add.
pub(crate) fn blames_input(err: &anyhow::Error) -> bool {
    taskyard_store::blames_input(err.as_ref())
}

/// Postgres's own reason for a refusal, for a dead letter.
pub(crate) fn refusal(err: &anyhow::Error) -> String {
    err.chain()
        .find_map(|e| e.downcast_ref::<taskyard_store::StoreError>())
        .map(taskyard_store::StoreError::refusal)
        .unwrap_or_else(|| format!("{err:#}"))
}

/// Runs the pool manager until `shutdown`.
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
        "pool-manager",
        "Tracks tasks after dispatch",
    )
    .await?;
    let js = attached.js.clone();
    let service = attached.service;
    let announcer = announce::Announcer::new(
        attached.client.clone(),
        js.clone(),
        Duration::from_millis(config.timeout_grace_ms),
    );
    let pool_requests = pools::serve(&service, store.clone(), js.clone(), shutdown.clone()).await?;
    let cancels =
        cancel::serve(&service, store.clone(), announcer.clone(), shutdown.clone()).await?;

    let batch = config.batch_size;
    let reports = reports::ReportHandler::new(store.clone(), announcer.clone());
    let timers = timers::TimerHandler::new(store.clone(), announcer.clone());
    let node_loss = node_loss::NodeLoss::new(store.clone(), announcer.clone());
    let dead_letters = dead_letters::DeadLetters::new(store.clone(), js.clone());
    let log_store = logs::LogStore::new(store.clone());

    let status = streams::pull_consumer(
        &js,
        streams::STATUS,
        streams::pool_manager_consumer(i64::from(config.max_deliveries)),
    )
    .await?;
    let fired = streams::pull_consumer(
        &js,
        streams::TIMERS,
        streams::pool_manager_timers_consumer(),
    )
    .await?;
    let nodes =
        streams::pull_consumer(&js, streams::EVENTS, streams::pool_manager_nodes_consumer())
            .await?;
    let advisories = streams::pull_consumer(
        &js,
        streams::ADVISORIES,
        streams::pool_manager_dead_letters_consumer(),
    )
    .await?;

    let log_lines =
        streams::pull_consumer(&js, streams::LOGS, streams::pool_manager_logs_consumer()).await?;

    let reconciler = reconciler::Reconciler {
        store: store.clone(),
        timers: timers.clone(),
        node_loss: node_loss.clone(),
        interval: Duration::from_millis(config.reconcile_interval_ms),
        grace: Duration::from_millis(config.reconcile_grace_ms),
    };
    taskyard_runtime::lag::spawn_lag_watch(
        js.clone(),
        &[
            (streams::STATUS, streams::POOL_MANAGER),
            (streams::TIMERS, streams::POOL_MANAGER_TIMERS),
            (streams::EVENTS, streams::POOL_MANAGER_NODES),
            (streams::ADVISORIES, streams::POOL_MANAGER_DEAD_LETTERS),
            (streams::LOGS, streams::POOL_MANAGER_LOGS),
        ],
        shutdown.clone(),
    );
    census::spawn(
        store.clone(),
        Duration::from_millis(config.census_interval_ms),
        shutdown.clone(),
    );
    tracing::info!("pool manager ready");
    let mut loops = tokio::task::JoinSet::new();
    let s = &shutdown;
    loops.spawn(consume::run(
        "reports",
        batches(&status, batch).await?,
        s.clone(),
        reports,
    ));
    loops.spawn(consume::run(
        "timers",
        batches(&fired, batch).await?,
        s.clone(),
        timers.clone(),
    ));
    loops.spawn(consume::run(
        "node events",
        batches(&nodes, 100).await?,
        s.clone(),
        node_loss.clone(),
    ));
    loops.spawn(consume::run(
        "advisories",
        batches(&advisories, 100).await?,
        s.clone(),
        dead_letters,
    ));
    loops.spawn(consume::run(
        "task logs",
        batches(&log_lines, batch).await?,
        s.clone(),
        log_store,
    ));
    loops.spawn({
        let shutdown = shutdown.clone();
        async move {
            reconciler.run(shutdown).await;
            Ok(())
        }
    });
    // The first loop to stop (shutdown, or a consumer that stopped
    // delivering, which `batches` never does) stops the service.
    let first = loops.join_next().await;
    shutdown.trigger();
    loops.shutdown().await;
    pool_requests.await.ok();
    cancels.await.ok();
    match first {
        Some(Ok(result)) => result,
        Some(Err(err)) => Err(anyhow::anyhow!("a pool manager loop failed: {err}")),
        None => Ok(()),
    }
}
