//! A node declared lost (missed heartbeats) or removed: its attempts end,
//! and their tasks are queued again while attempts remain (else `failed`,
//! with the reason). The node is told to kill them, in case it comes back:
//! a frozen worker that resumes must not finish work that moved elsewhere.

use crate::announce::{Announcer, kills_for};
use taskyard_runtime::batching::Message;
use taskyard_runtime::consume::{Handler, Verdict};
use taskyard_store::Store;
use taskyard_wire::codec;
use taskyard_wire::event::NodeEvent;

#[derive(Debug, Clone)]
pub struct NodeLoss {
    store: Store,
    announcer: Announcer,
}

impl NodeLoss {
    pub fn new(store: Store, announcer: Announcer) -> NodeLoss {
        NodeLoss { store, announcer }
    }

    pub async fn handle(&self, batch: &[Message]) -> Vec<Verdict> {
        let mut verdicts = Vec::with_capacity(batch.len());
        for message in batch {
            let event = match codec::decode::<NodeEvent>(&message.payload) {
                Ok(event) => event,
                Err(err) => {
                    taskyard_runtime::warn_throttled!(subject = %message.subject, error = %err, "unreadable node event skipped");
                    verdicts.push(Verdict::Term);
                    continue;
                }
            };
            let why = event
                .reason
                .clone()
                .unwrap_or_else(|| format!("node {}", event.kind.as_str()));
            verdicts.push(match self.end_attempts(&event.node_id, &why).await {
                Ok(()) => Verdict::Ack,
                Err(err) => {
                    taskyard_runtime::error_throttled!(node = %event.node_id, error = format!("{err:#}"), "ending a lost node's attempts failed; will retry");
                    Verdict::Retry
                }
            });
        }
        verdicts
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

impl Handler for NodeLoss {
    async fn handle(&self, batch: &[Message]) -> Vec<Verdict> {
        NodeLoss::handle(self, batch).await
    }
}
