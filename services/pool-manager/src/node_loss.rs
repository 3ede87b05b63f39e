//! A node declared lost (missed heartbeats) or removed: its attempts end,
//! and their tasks are queued again while attempts remain (else `failed`,
//! with the reason). The node is told to kill them, in case it comes back:
//! a frozen worker that resumes must not finish work that moved elsewhere.

use crate::announce::{Announcer, kills_for};
use async_nats::jetstream::AckKind;
use std::time::Duration;
use taskyard_runtime::batching::Message;
use taskyard_store::Store;
use taskyard_wire::codec;
use taskyard_wire::event::NodeEvent;

const RETRY_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct NodeLoss {
    store: Store,
    announcer: Announcer,
}

impl NodeLoss {
    pub fn new(store: Store, announcer: Announcer) -> NodeLoss {
        NodeLoss { store, announcer }
    }

    pub async fn handle(&self, batch: Vec<Message>) {
        for message in batch {
            let event = match codec::decode::<NodeEvent>(&message.payload) {
                Ok(event) => event,
                Err(err) => {
                    tracing::warn!(subject = %message.subject, error = %err, "unreadable node event skipped");
                    let _ = message.ack().await;
                    continue;
                }
            };
            let why = event
                .reason
                .clone()
                .unwrap_or_else(|| format!("node {}", event.kind.as_str()));
            match self.end_attempts(&event.node_id, &why).await {
                Ok(()) => {
                    let _ = message.ack().await;
                }
                Err(err) => {
                    tracing::error!(node = %event.node_id, error = format!("{err:#}"), "ending a lost node's attempts failed; will retry");
                    let _ = message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await;
                }
            }
        }
    }

    /// Ends every attempt placed on `node_id`, announces it, and tells the
    /// node to stop them.
    pub async fn end_attempts(&self, node_id: &str, why: &str) -> anyhow::Result<()> {
        let transitions = self.store.requeue_lost_node(node_id, why).await?;
        if transitions.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            node = node_id,
            attempts = transitions.len(),
            reason = why,
            "node lost with work on it"
        );
        metrics::counter!("taskyard_pool_manager_requeued_after_node_loss_total")
            .increment(transitions.len() as u64);
        self.announcer.announce(&transitions).await?;
        self.announcer.kill(&kills_for(&transitions)).await;
        Ok(())
    }
}
