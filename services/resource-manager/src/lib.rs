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
use taskyard_runtime::poison::Bisection;
use taskyard_runtime::{Shutdown, micro, warn_throttled};
use taskyard_store::nodes::HealthChange;
use taskyard_store::{Store, StoreError};
use taskyard_wire::event::{NodeEvent, NodeEventKind};
use taskyard_wire::heartbeat::Heartbeat;
use taskyard_wire::{codec, subjects};
use tokio::time::Instant;

/// Runs the resource manager until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let store = Store::connect_and_migrate(&config.common.database_url, 2)
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
    let mut operations =
        micro::operations(&service, subjects::API_NODES_PREFIX, &requests::OPERATIONS).await?;
    let mut heartbeats = client
        .queue_subscribe(subjects::HEARTBEAT_ALL, "resource-manager".to_owned())
        .await
        .map_err(|err| anyhow::anyhow!("cannot subscribe to heartbeats: {err}"))?;

    let mut registry = registry::Registry::new(config.thresholds());
    let now = Instant::now();
    for node in store.list_nodes().await.context("loading nodes")? {
        registry.restore(&node, now);
    }
    tracing::info!(nodes = registry.len(), "resource manager ready");

    let mut latest: HashMap<String, Heartbeat> = HashMap::new();
    // The newest heartbeat of each node since the last sample.
    let mut to_sample: HashMap<String, Heartbeat> = HashMap::new();
    let mut sample = tokio::time::interval(Duration::from_millis(config.sample_interval_ms));
    let mut prune = tokio::time::interval(Duration::from_secs(300));
    let retention = Duration::from_secs(config.sample_retention_hours.saturating_mul(3600));
    let mut announcements: Vec<NodeEvent> = Vec::new();
    let mut flush = tokio::time::interval(Duration::from_millis(config.flush_interval_ms));
    let mut sweep = tokio::time::interval(Duration::from_millis(config.sweep_interval_ms));
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            message = heartbeats.next() => {
                let Some(message) = message else {
                    anyhow::bail!("the heartbeat subscription ended");
                };
                match codec::decode::<Heartbeat>(&message.payload) {
                    Ok(beat) if subjects::is_token(&beat.node_id) => {
                        if let Some(event) = registry.observe(&beat, Instant::now()) {
                            announcements.push(event);
                        }
                        to_sample.insert(beat.node_id.clone(), beat.clone());
                        latest.insert(beat.node_id.clone(), beat);
                    }
                    Ok(beat) => warn_throttled!(node_id = %beat.node_id, "heartbeat with an invalid node id ignored"),
                    Err(err) => warn_throttled!(subject = %message.subject, error = %err, "unreadable heartbeat ignored"),
                }
            }
            Some((op, request)) = operations.next() => {
                requests::handle(op, request, &mut registry, &store, &client, &js).await;
            }
            _ = sample.tick() => {
                let beats: Vec<Heartbeat> = to_sample.drain().map(|(_, beat)| beat).collect();
                node_metrics::record_heartbeats(&beats);
                node_metrics::record_health(&registry);
                if let Err(err) = store.record_samples(&beats).await {
                    warn_throttled!(error = %err, "recording node samples failed");
                }
            }
            _ = prune.tick() => {
                match store.prune_samples(retention).await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::debug!(pruned, "old node samples deleted"),
                    Err(err) => tracing::warn!(error = %err, "pruning node samples failed"),
                }
            }
            _ = flush.tick() => {
                if let Err(err) = flush_heartbeats(&store, &js, &mut latest, &mut announcements).await {
                    warn_throttled!(error = format!("{err:#}"), "recording heartbeats failed; will retry");
                }
            }
            _ = sweep.tick() => {
                let changes = registry.sweep(Instant::now());
                if changes.is_empty() {
                    continue;
                }
                let health: Vec<HealthChange> = changes.iter().map(|(change, _)| change.clone()).collect();
                for (change, _) in &changes {
                    tracing::warn!(node_id = %change.node_id, health = change.health.as_str(), reason = %change.reason, "node health changed");
                }
                if let Err(err) = store.set_health(&health, None).await {
                    tracing::warn!(error = %err, "recording node health failed");
                }
                announcements.extend(changes.into_iter().map(|(_, event)| event));
            }
        }
    }
    Ok(())
}

async fn flush_heartbeats(
    store: &Store,
    js: &async_nats::jetstream::Context,
    latest: &mut HashMap<String, Heartbeat>,
    announcements: &mut Vec<NodeEvent>,
) -> anyhow::Result<()> {
    if !latest.is_empty() {
        let beats: Vec<Heartbeat> = latest.values().cloned().collect();
        // One node's heartbeat that Postgres refuses (a label it cannot
        // store, say) must not keep every other node's from being recorded.
        let mut bisection = Bisection::new(beats.len(), StoreError::is_poison);
        while let Some(part) = bisection.next_part() {
            let result = store.record_heartbeats(&beats[part.clone()], None).await;
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
