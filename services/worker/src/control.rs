//! Control messages to this node, on `taskyard.control.<node>` (core NATS).
//!
//! `drain` does what SIGTERM does: the worker stops taking work, lets what
//! runs finish within the drain timeout, and `run` returns. `kill` stops one
//! attempt now (its deadline passed, it was cancelled, or it belongs to
//! another node now); a kill for an attempt this node does not run is
//! ignored. Core NATS is
//! enough: a lost drain shows in the heartbeats (the node never says
//! `draining`), and the operator sends it again. A message that cannot be read
//! is logged and ignored, so that a newer sender's action is not fatal here.

use crate::kill_switch::KillSwitches;
use futures::StreamExt;
use std::sync::Arc;
use taskyard_runtime::Shutdown;
use taskyard_wire::control::Control;
use taskyard_wire::{codec, subjects};
use tokio::task::JoinHandle;

/// Subscribes to the node's control subject and triggers `stop` on a drain,
/// or when `shutdown` (SIGTERM) comes first, and pulls `kills` on a kill.
pub async fn watch(
    client: &async_nats::Client,
    node: &str,
    shutdown: Shutdown,
    stop: Shutdown,
    kills: Arc<KillSwitches>,
) -> Result<JoinHandle<()>, async_nats::SubscribeError> {
    let subject = subjects::control(node);
    let mut messages = client.subscribe(subject.clone()).await?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                message = messages.next() => match message {
                    Some(message) => match codec::decode::<Control>(&message.payload) {
                        Ok(Control::Drain) => {
                            tracing::info!(%subject, "drain requested by a control message");
                            break;
                        }
                        Ok(Control::Kill { task_id, attempt, reason }) => {
                            let span = tracing::info_span!("task", %task_id, attempt);
                            let _entered = span.enter();
                            if kills.pull(&(task_id, attempt), &reason) {
                                metrics::counter!("taskyard_worker_kills_total").increment(1);
                                tracing::info!(%reason, "attempt killed by a control message");
                            } else {
                                tracing::debug!(%reason, "kill for an attempt not running here");
                            }
                        }
                        Err(err) => {
                            taskyard_runtime::warn_throttled!(%subject, error = %err, "ignoring a control message that cannot be read");
                        }
                    },
                    None => {
                        // Only the client's end closes a subscription; SIGTERM
                        // still stops the worker.
                        tracing::warn!(%subject, "the control subscription ended; only a signal can stop this worker now");
                        shutdown.wait().await;
                        break;
                    }
                },
            }
        }
        stop.trigger();
    }))
}
