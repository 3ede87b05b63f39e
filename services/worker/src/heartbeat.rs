//! Heartbeats: "I am alive, this is what I have", on core NATS.
//!
//! One goes out at start, then every interval, and one more at once when the
//! worker starts draining so that the scheduler stops placing work here
//! without waiting for the next tick. A lost heartbeat is not retried: the
//! next one replaces it. Each is followed by a heartbeat echo
//! ([`crate::fencing::Echo`]), whose return tells the worker that the
//! heartbeat got through, so that it knows when it is cut off.

use crate::capacity::UsageProbe;
use crate::config::Settings;
use crate::fencing::Echo;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use taskyard_wire::heartbeat::{Heartbeat, Usage};
use taskyard_wire::{Timestamp, codec, subjects};
use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// What the executor tells the heartbeat about this node.
#[derive(Debug, Default)]
pub struct NodeState {
    running: AtomicU32,
    draining: AtomicBool,
    /// Wakes the heartbeat loop for an extra heartbeat.
    changed: Notify,
}

impl NodeState {
    pub fn running(&self) -> u32 {
        self.running.load(Ordering::Relaxed)
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// One more attempt runs; returns the new count.
    pub fn attempt_started(&self) -> u32 {
        self.running
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1)
    }

    /// One attempt fewer; returns the new count.
    pub fn attempt_ended(&self) -> u32 {
        let before = self
            .running
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            })
            .unwrap_or(0);
        before.saturating_sub(1)
    }

    /// The node takes no more work; a heartbeat says so at once.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.changed.notify_one();
    }
}

/// Builds one heartbeat.
pub fn heartbeat(
    settings: &Settings,
    state: &NodeState,
    usage: Usage,
    started_at: Timestamp,
) -> Heartbeat {
    Heartbeat {
        node_id: settings.node_id.clone(),
        hostname: settings.hostname.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at,
        capacity: settings.capacity,
        usage,
        running: state.running(),
        labels: settings.labels.clone(),
        draining: state.draining(),
        at: taskyard_wire::now(),
    }
}

/// Publishes heartbeats, each followed by `echo` when fencing is on, until
/// `stop` is cancelled.
pub async fn run(
    client: async_nats::Client,
    settings: Arc<Settings>,
    state: Arc<NodeState>,
    started_at: Timestamp,
    echo: Option<Echo>,
    stop: CancellationToken,
) {
    let subject = subjects::heartbeat(&settings.node_id);
    let mut probe = UsageProbe::new(&settings.work_dir);
    // The first tick is immediate: the node shows up as soon as it can work.
    let mut ticks = tokio::time::interval(settings.heartbeat_interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
            _ = state.changed.notified() => {}
        }
        let beat = heartbeat(&settings, &state, probe.sample(), started_at);
        if let Err(err) = client
            .publish(subject.clone(), codec::encode(&beat).into())
            .await
        {
            taskyard_runtime::warn_throttled!(error = %err, "cannot publish a heartbeat");
        }
        if let Some(echo) = &echo {
            echo.send().await;
        }
    }
}
