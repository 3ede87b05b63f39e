//! The backstop for what a crash can lose between a Postgres commit and the
//! NATS publish that should follow it: a timer never set, a node-loss event
//! never seen. Every `interval` it asks Postgres which timers are overdue by
//! more than `grace`, and which lost nodes still hold attempts, and applies
//! them through the same guarded statements, so it can run beside the fast
//! path (and in several pool managers at once) without doing anything twice.

use crate::node_loss::NodeLoss;
use crate::timers::TimerHandler;
use std::time::Duration;
use taskyard_runtime::Shutdown;
use taskyard_store::Store;

/// Most overdue timers handled per pass.
const PASS_LIMIT: u32 = 5000;

#[derive(Debug, Clone)]
pub struct Reconciler {
    pub store: Store,
    pub timers: TimerHandler,
    pub node_loss: NodeLoss,
    pub interval: Duration,
    pub grace: Duration,
}

impl Reconciler {
    pub async fn run(self, shutdown: Shutdown) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = ticks.tick() => {}
            }
            if let Err(err) = self.pass().await {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "reconciling failed; trying again next pass"
                );
            }
        }
    }

    /// One pass; returns how many timers and nodes it found overdue.
    pub async fn pass(&self) -> anyhow::Result<usize> {
        let grace = u64::try_from(self.grace.as_millis()).unwrap_or(u64::MAX);
        let overdue = self.store.overdue_timers(grace, PASS_LIMIT).await?;
        if !overdue.is_empty() {
            tracing::warn!(timers = overdue.len(), "applying overdue timers");
            metrics::counter!("taskyard_pool_manager_reconciled_timers_total")
                .increment(overdue.len() as u64);
            self.timers.fire(&overdue).await?;
        }
        let nodes = self.store.lost_nodes_with_work().await?;
        for node in &nodes {
            self.node_loss
                .end_attempts(node, "found lost with attempts on it")
                .await?;
        }
        Ok(overdue.len() + nodes.len())
    }
}
