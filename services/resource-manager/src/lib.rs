//! The resource manager: the node registry, kept from heartbeats.
//!
//! Workers publish a heartbeat every second on core NATS. The resource manager
//! keeps each node's latest report in `nodes` (written in batches), judges
//! health from the time since the last heartbeat (`alive` → `suspect` →
//! `lost`, thresholds in [`Config`]), and announces every change on
//! `taskyard.events.node.<kind>`, which the scheduler and pool manager follow.
//! Liveness is judged on this process's clock, so worker clock skew does not
//! matter.
//!
//! Several may run. Every replica hears every heartbeat, so a standby's
//! registry is warm; one is active, holding the `resource-manager` lease
//! (`taskyard_store::leases`): only it writes heartbeats and health to
//! Postgres (fenced by the lease's epoch), announces node events and serves
//! operators' requests. When it dies, a standby takes the lease within
//! `TASKYARD_LEASE_TTL_MS`, takes each node's health and flags from Postgres
//! and its silence from what it heard itself, and carries on: no node is
//! judged lost for the failover.
//!
//! Operators cordon, drain, uncordon and remove nodes by request
//! (`taskyard.api.nodes.<op>`); a usage sample of each node is kept in
//! `node_samples` every sample interval, for the retention period.
//!
//! # Layout
//! - [`config`]: the service's settings.
//! - [`registry`]: the health state machine of nodes (pure).
//! - [`requests`]: operators' node requests.

pub mod config;
pub mod node_metrics;
pub mod registry;
pub mod requests;

pub use config::Config;

use anyhow::Context;
use futures::StreamExt;
use std::collections::HashMap;
use std::time::Duration;
use taskyard_runtime::batching::{Outgoing, publish_all};
use taskyard_runtime::health::{self, Dependency};
use taskyard_runtime::poison::Bisection;
use taskyard_runtime::{Shutdown, micro, warn_throttled};
use taskyard_store::leases::{self, Fence, Leadership, LeaseTerms, Role};
use taskyard_store::nodes::HealthChange;
use taskyard_store::{DbTls, Store, StoreError};
use taskyard_wire::event::{NodeEvent, NodeEventKind};
use taskyard_wire::heartbeat::Heartbeat;
use taskyard_wire::{codec, subjects};
use tokio::time::Instant;

/// Runs the resource manager until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let store = Store::connect_and_migrate_with(
        &config.common.database_url,
        2,
        &DbTls::from_ca_file(config.common.database_ca_file.clone()),
    )
    .await
    .context("connecting to Postgres")?;
    let attached = micro::attach(
        &config.common,
        "resource-manager",
        "Node registry and health",
    )
    .await?;
    let (client, js) = (attached.client.clone(), attached.js.clone());
    let service = attached.service;
    let role_shown = attached.role;
    role_shown.set(Role::Standby.describe());
    // Every replica hears every heartbeat (no queue group): a standby's
    // registry is warm, so that when it takes over it judges each node on
    // its own last beat, not on silence counted from the takeover.
    let mut heartbeats = subscribe_heartbeats(&client)
        .await
        .context("subscribing to heartbeats")?;
    health::spawn_probe(Dependency::Postgres, shutdown.clone(), {
        let store = store.clone();
        move || {
            let store = store.clone();
            async move { store.ping().await }
        }
    });

    let mut registry = registry::Registry::new(config.thresholds());
    let now = Instant::now();
    for node in store.list_nodes().await.context("loading nodes")? {
        registry.restore(&node, now);
    }
    let holder = leases::holder_id("resource-manager");
    tracing::info!(nodes = registry.len(), holder = %holder, "resource manager ready; active once it holds the lease");
    let leadership = Leadership::start(
        store.clone(),
        LEASE,
        holder,
        LeaseTerms::with_ttl(Duration::from_millis(config.lease_ttl_ms)),
    );
    let mut role_changes = leadership.watch();
    // Only the active replica writes, judges health and serves operators'
    // requests (its endpoints exist only while it is active).
    let mut fence: Option<Fence> = None;
    let mut operations: Option<micro::Operations> = None;

    let mut latest: HashMap<String, Heartbeat> = HashMap::new();
    // The newest heartbeat of each node since the last sample.
    let mut to_sample: HashMap<String, Heartbeat> = HashMap::new();
    let mut sample = tokio::time::interval(Duration::from_millis(config.sample_interval_ms));
    let mut prune = tokio::time::interval(Duration::from_secs(300));
    let retention = Duration::from_secs(config.sample_retention_hours.saturating_mul(3600));
    let mut announcements: Vec<NodeEvent> = Vec::new();
    let mut flush = tokio::time::interval(Duration::from_millis(config.flush_interval_ms));
    let mut sweep = tokio::time::interval(Duration::from_millis(config.sweep_interval_ms));
    let mut cut_off = false;
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            changed = role_changes.changed() => {
                if changed.is_err() {
                    anyhow::bail!("the lease task ended");
                }
                let role = *role_changes.borrow_and_update();
                match role {
                    Role::Active(taken) if fence != Some(taken) => {
                        match store.list_nodes().await {
                            Ok(rows) => registry.take_over(&rows, Instant::now()),
                            Err(err) => {
                                tracing::warn!(error = %err, "cannot read the nodes to take over; standing by");
                                leadership.step_down(taken);
                                continue;
                            }
                        }
                        operations = Some(
                            micro::operations(&service, subjects::API_NODES_PREFIX, &requests::OPERATIONS)
                                .await?,
                        );
                        fence = Some(taken);
                        tracing::info!(epoch = taken.epoch, nodes = registry.len(), "resource manager active");
                    }
                    Role::Active(_) => {}
                    Role::Standby => {
                        if fence.take().is_some() {
                            tracing::warn!("this resource manager no longer holds the lease (see the lease log line before); standing by");
                        }
                        operations = None;
                        latest.clear();
                        to_sample.clear();
                        announcements.clear();
                    }
                }
                role_shown.set(role.describe());
                metrics::gauge!("taskyard_resource_manager_active").set(if fence.is_some() { 1.0 } else { 0.0 });
            }
            message = heartbeats.next() => {
                let Some(message) = message else {
                    // The client resubscribes across reconnections by
                    // itself; a subscription ends only when the client
                    // closed it, and a new one is all it takes.
                    tracing::warn!("the heartbeat subscription ended; subscribing again");
                    heartbeats = resubscribe(&client, &shutdown).await?;
                    continue;
                };
                match codec::decode::<Heartbeat>(&message.payload) {
                    Ok(beat) if subjects::is_token(&beat.node_id) && !subjects::speaks_for(&message.subject, &beat.node_id) => {
                        metrics::counter!(taskyard_runtime::access::METRIC_WRONG_NODE, "kind" => "heartbeat").increment(1);
                        warn_throttled!(subject = %message.subject, node_id = %beat.node_id, "a heartbeat about another node than its subject's ignored");
                    }
                    Ok(beat) if subjects::is_token(&beat.node_id) => {
                        let event = registry.observe(&beat, Instant::now());
                        if fence.is_none() {
                            continue;
                        }
                        announcements.extend(event);
                        to_sample.insert(beat.node_id.clone(), beat.clone());
                        latest.insert(beat.node_id.clone(), beat);
                    }
                    Ok(beat) => warn_throttled!(node_id = %beat.node_id, "heartbeat with an invalid node id ignored"),
                    Err(err) => warn_throttled!(subject = %message.subject, error = %err, "unreadable heartbeat ignored"),
                }
            }
            Some((op, request)) = next_operation(&mut operations) => {
                requests::handle(op, request, &mut registry, &store, &client, &js).await;
            }
            _ = sample.tick(), if fence.is_some() => {
                let beats: Vec<Heartbeat> = to_sample.drain().map(|(_, beat)| beat).collect();
                node_metrics::record_heartbeats(&beats);
                node_metrics::record_health(&registry);
                if let Err(err) = store.record_samples(&beats).await {
                    warn_throttled!(error = %err, "recording node samples failed");
                }
            }
            _ = prune.tick(), if fence.is_some() => {
                match store.prune_samples(retention).await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::debug!(pruned, "old node samples deleted"),
                    Err(err) => tracing::warn!(error = %err, "pruning node samples failed"),
                }
            }
            _ = flush.tick(), if fence.is_some() => {
                if let Err(err) = flush_heartbeats(&store, &js, fence, &mut latest, &mut announcements).await {
                    if let Some(held) = fence.filter(|_| err.downcast_ref::<StoreError>().is_some_and(StoreError::is_fenced)) {
                        leadership.step_down(held);
                        continue;
                    }
                    warn_throttled!(error = format!("{err:#}"), "recording heartbeats failed; will retry");
                }
            }
            _ = sweep.tick(), if fence.is_some() => {
                // Cut off from NATS, this process hears no heartbeat at all:
                // nodes are judged on what it could hear, from when it
                // could hear again.
                if health::health().is_down(Dependency::Nats) {
                    cut_off = true;
                    continue;
                }
                if std::mem::take(&mut cut_off) {
                    tracing::info!(nodes = registry.len(), "back on NATS: every node's silence counts from now");
                    registry.pardon(Instant::now());
                    continue;
                }
                let changes = registry.sweep(Instant::now());
                if changes.is_empty() {
                    continue;
                }
                let health: Vec<HealthChange> = changes.iter().map(|(change, _)| change.clone()).collect();
                for (change, _) in &changes {
                    tracing::warn!(node_id = %change.node_id, health = change.health.as_str(), reason = %change.reason, "node health changed");
                }
                if let Err(err) = store.set_health(&health, fence).await {
                    if let Some(held) = fence.filter(|_| err.is_fenced()) {
                        leadership.step_down(held);
                        continue;
                    }
                    tracing::warn!(error = %err, "recording node health failed");
                }
                announcements.extend(changes.into_iter().map(|(_, event)| event));
            }
        }
    }
    leadership.release().await;
    Ok(())
}

/// The lease whose holder is the active resource manager.
pub const LEASE: &str = "resource-manager";

/// The next operator request, while this replica serves them.
async fn next_operation(
    operations: &mut Option<micro::Operations>,
) -> Option<(&'static str, async_nats::service::Request)> {
    match operations {
        Some(operations) => operations.next().await,
        None => std::future::pending().await,
    }
}

async fn flush_heartbeats(
    store: &Store,
    js: &async_nats::jetstream::Context,
    fence: Option<Fence>,
    latest: &mut HashMap<String, Heartbeat>,
    announcements: &mut Vec<NodeEvent>,
) -> anyhow::Result<()> {
    if !latest.is_empty() {
        let beats: Vec<Heartbeat> = latest.values().cloned().collect();
        // One node's heartbeat that Postgres refuses (a label it cannot
        // store, say) must not keep every other node's from being recorded.
        let mut bisection = Bisection::new(beats.len(), StoreError::is_poison);
        while let Some(part) = bisection.next_part() {
            let result = store.record_heartbeats(&beats[part.clone()], fence).await;
            bisection.record(part, result);
        }
        let isolated = bisection.finish();
        for (index, err) in &isolated.poison {
            warn_throttled!(node_id = %beats[*index].node_id, reason = %err.refusal(), "a heartbeat Postgres cannot store was dropped");
            latest.remove(&beats[*index].node_id);
        }
        for (range, ()) in &isolated.recorded {
            for beat in &beats[range.clone()] {
                latest.remove(&beat.node_id);
            }
        }
        if let Some(err) = isolated.retry_error {
            return Err(err.into());
        }
    }
    if announcements.is_empty() {
        return Ok(());
    }
    for event in announcements
        .iter()
        .filter(|e| e.kind == NodeEventKind::Registered)
    {
        store
            .record_node_event(
                &event.node_id,
                event.kind.as_str(),
                event.reason.as_deref().unwrap_or(""),
            )
            .await?;
    }
    let messages = announcements
        .iter()
        .map(|event| {
            Outgoing::new(
                subjects::node_event(event.kind.as_str()),
                codec::encode(event),
            )
        })
        .collect();
    publish_all(js, messages).await?;
    announcements.clear();
    Ok(())
}

async fn subscribe_heartbeats(
    client: &async_nats::Client,
) -> Result<async_nats::Subscriber, async_nats::SubscribeError> {
    client.subscribe(subjects::HEARTBEAT_ALL).await
}

/// Subscribes to heartbeats again, with backoff, until it works or
/// `shutdown`.
async fn resubscribe(
    client: &async_nats::Client,
    shutdown: &Shutdown,
) -> anyhow::Result<async_nats::Subscriber> {
    let mut delay = Duration::from_millis(100);
    loop {
        match subscribe_heartbeats(client).await {
            Ok(subscription) => return Ok(subscription),
            Err(err) => warn_throttled!(error = %err, "cannot subscribe to heartbeats; retrying"),
        }
        tokio::select! {
            _ = shutdown.wait() => anyhow::bail!("shut down while subscribing to heartbeats"),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
