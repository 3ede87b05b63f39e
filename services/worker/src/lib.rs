//! Taskyard's worker: runs the attempts the scheduler dispatches to one node.
//!
//! A worker pulls from its node's durable consumer on the DISPATCH stream
//! (`taskyard.dispatch.<node>`), runs each attempt with its driver, reports
//! `Started` and `Finished` on `taskyard.status.<node>` (JetStream, deduplicated
//! by message id), and acks the dispatch only once the final report is stored.
//! It publishes a heartbeat with the host's capacity and usage on
//! `taskyard.nodes.heartbeat.<node>`. It needs no database: speaking these NATS
//! messages is all it takes to be a worker, in any language.
//!
//! On shutdown (SIGTERM, or a `drain` control message on
//! `taskyard.control.<node>`) it stops pulling, says `draining` in a
//! heartbeat, lets running attempts finish within the drain timeout, and
//! reports those it had to kill as failed so that the pool manager retries
//! them elsewhere.
//!
//! A worker cut off from NATS for longer than the lost threshold (no
//! heartbeat got through, disconnected, or its process frozen) stops its
//! running attempts itself and reports them failed: the resource manager has
//! declared it lost by then, and they may run elsewhere ([`fencing`]).
//!
//! # Layout
//! - [`config`]: [`Config`], its defaults, and the checked [`config::Settings`].
//! - [`capacity`]: what the host has and uses (sysinfo).
//! - [`cgroup`]: per-attempt cgroup v2 memory limits for `exec`.
//! - [`control`]: control messages to this node (drain, kill).
//! - [`kill_switch`]: one switch per running attempt, for `kill`.
//! - [`heartbeat`]: the heartbeat loop and the node state it reports.
//! - [`fencing`]: self-fencing: when the worker was cut off too long, and
//!   stopping its attempts then.
//! - [`executor`]: the dispatch loop: concurrency, progress acks, duplicate
//!   dispatches, reports, drain.
//! - [`reporter`]: status reports coalesced into JetStream messages.
//! - [`ledger`]: running attempts and a bounded memory of finished ones.
//! - [`logs`]: `exec` output as task log lines on `taskyard.logs.<node>`.
//! - [`drivers`]: how each kind of task runs ([`drivers::exec`],
//!   [`drivers::http`], [`drivers::nats`], [`drivers::builtin`]).

pub mod capacity;
pub mod cgroup;
pub mod config;
pub mod control;
pub mod drivers;
pub mod executor;
pub mod fencing;
pub mod heartbeat;
pub mod kill_switch;
pub mod ledger;
pub mod logs;
pub mod reporter;

pub use config::Config;

use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use taskyard_runtime::Shutdown;
use taskyard_runtime::nats::{self, DEFAULT_CONNECT_TIMEOUT};
use taskyard_runtime::{micro, streams};
use tokio_util::sync::CancellationToken;

/// How long the worker waits, when leaving, for NATS to take its last messages.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a worker until `shutdown`, then drains and returns.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let settings = Arc::new(config.resolve(&capacity::HostFacts::probe())?);
    let node = settings.node_id.as_str();
    let started_at = taskyard_wire::now();

    let client_name = format!("taskyard-worker {node}");
    let security = taskyard_runtime::nats::NatsSecurity {
        // Replies and acks come to inboxes only this node may read.
        inbox_prefix: Some(taskyard_runtime::access::worker_inbox_prefix(node)),
        ..config.common.nats_security()
    };
    let connect = nats::connect(
        &config.common.nats_url,
        &security,
        &client_name,
        DEFAULT_CONNECT_TIMEOUT,
    );
    // A worker told to stop while NATS is still away just stops.
    let client = tokio::select! {
        client = connect => client.context("connecting to NATS")?,
        _ = shutdown.wait() => return Ok(()),
    };
    // The worker declares no stream: the services do, and a worker's
    // credential may not (it reads and acks its own consumer, nothing else).
    // Creating that consumer waits for the dispatch stream to exist.
    let js = async_nats::jetstream::new(client.clone());
    // Kept until run returns: dropping it leaves the micro service.
    let _service = micro::register(
        &client,
        "worker",
        "Runs the attempts dispatched to one node",
    )
    .await?;
    let consumer = streams::pull_consumer(
        &js,
        streams::DISPATCH,
        streams::worker_consumer_config(node, settings.capacity.slots as usize, settings.ack_wait),
    )
    .await
    .with_context(|| format!("creating the dispatch consumer of node {node}"))?;
    let dispatch_consumer = streams::worker_consumer(node);
    taskyard_runtime::lag::spawn_lag_watch(
        js.clone(),
        &[(streams::DISPATCH, &dispatch_consumer)],
        shutdown.clone(),
    );
    tracing::info!(
        node,
        cpu_millis = settings.capacity.cpu_millis,
        memory_mb = settings.capacity.memory_mb,
        slots = settings.capacity.slots,
        work_dir = %settings.work_dir.display(),
        "worker ready"
    );

    // Subscribed before any work is taken, so a drain sent as soon as the
    // node shows up is not missed. `stop` is what the dispatch loop watches:
    // SIGTERM or a drain message, whichever comes first.
    let stop = Shutdown::new();
    let kills = Arc::new(kill_switch::KillSwitches::default());
    let control = control::watch(&client, node, shutdown.clone(), stop.clone(), kills.clone())
        .await
        .with_context(|| format!("subscribing to the control subject of node {node}"))?;

    let env = drivers::DriverEnv {
        work_dir: settings.work_dir.clone(),
        max_output_bytes: settings.max_output_bytes,
        cgroups: memory_cgroups(&settings),
        nats: Some(client.clone()),
        http: drivers::http::client().context("building the HTTP client of http tasks")?,
        logs: Some(logs::LogPublisher::new(js.clone(), node, settings.logs)),
    };

    let state = Arc::new(heartbeat::NodeState::default());
    let stop_heartbeats = CancellationToken::new();
    let fence = Arc::new(fencing::Fence::new(
        settings.fence_after,
        kills.clone(),
        Some(client.clone()),
    ));
    // Subscribed before the first heartbeat, so that its echo counts.
    let echo = match settings.fence_after {
        Some(_) => Some(
            fencing::Echo::start(&client, fence.clone(), stop_heartbeats.clone())
                .await
                .context("subscribing to the heartbeat echo")?,
        ),
        None => None,
    };
    let monitor = tokio::spawn(fencing::monitor(fence.clone(), stop_heartbeats.clone()));
    let heartbeats = tokio::spawn(heartbeat::run(
        client.clone(),
        settings.clone(),
        state.clone(),
        started_at,
        echo,
        stop_heartbeats.clone(),
    ));

    let worker = Arc::new(executor::Worker::new(
        settings.clone(),
        js,
        state,
        env,
        kills,
        fence,
    ));
    worker.serve(&consumer, &stop).await;
    control.abort();

    stop_heartbeats.cancel();
    if let Err(err) = heartbeats.await {
        tracing::warn!(error = %err, "the heartbeat task failed");
    }
    if let Err(err) = monitor.await {
        tracing::warn!(error = %err, "the fencing watch failed");
    }
    // Acks and the last heartbeat are buffered by the client; send them before
    // leaving, but do not hang on a NATS that went away: unsent acks only mean
    // redeliveries, which every consumer tolerates.
    match tokio::time::timeout(FLUSH_TIMEOUT, client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(error = %err, "cannot flush the last messages to NATS"),
        Err(_) => tracing::warn!("NATS did not take the last messages in time"),
    }
    Ok(())
}

/// The node's memory cgroups, or `None` with one warning that says why.
fn memory_cgroups(settings: &config::Settings) -> Option<Arc<cgroup::Cgroups>> {
    if !settings.memory_limits {
        tracing::info!(
            "memory limits are turned off (memory_limits = false); exec tasks run without one"
        );
        return None;
    }
    match cgroup::Cgroups::setup(Path::new(cgroup::CGROUP_ROOT), &settings.node_id) {
        Ok(cgroups) => {
            tracing::info!(cgroup = %cgroups.base().display(), "exec tasks run in cgroups limited to their memory reservation");
            Some(Arc::new(cgroups))
        }
        Err(why) => {
            tracing::warn!(
                "cgroup v2 memory limits are not available: {why}; exec tasks run without a memory limit"
            );
            None
        }
    }
}
