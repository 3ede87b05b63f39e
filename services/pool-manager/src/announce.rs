//! After a transition is committed: what the rest of the cluster must hear.
//!
//! Every path of the pool manager (reports, timers, lost nodes, cancels)
//! ends the same way: task events for the scheduler, the orchestrator and
//! the console; a durable timer for each state that ends by itself; and a
//! `kill` for attempts that ended here while a node may still run them.
//! Events and timers are durable before this returns. Kills are core NATS:
//! a node that misses one is told again when its next report for that
//! attempt turns out stale.

use async_nats::jetstream;
use std::collections::HashMap;
use std::time::Duration;
use taskyard_runtime::batching::{BatchError, Outgoing, publish_all};
use taskyard_runtime::timers;
use taskyard_store::tasks::Transition;
use taskyard_wire::control::Control;
use taskyard_wire::event::{TaskEvent, TaskEventBatch};
use taskyard_wire::timer::{Timer, TimerKind};
use taskyard_wire::{TaskState, codec, subjects};
use uuid::Uuid;

/// Most events in one event message.
const EVENTS_PER_MESSAGE: usize = 1000;

#[derive(Debug, Clone)]
pub struct Announcer {
    client: async_nats::Client,
    js: jetstream::Context,
    /// How long after a running attempt's deadline the pool manager acts on
    /// its own: the worker's kill and report come first when it can.
    timeout_grace: Duration,
}

/// An attempt a node should stop.
#[derive(Debug, Clone, PartialEq)]
pub struct Kill {
    pub node_id: String,
    pub task_id: Uuid,
    pub attempt: u32,
    pub reason: String,
}

impl Announcer {
    pub fn new(
        client: async_nats::Client,
        js: jetstream::Context,
        timeout_grace: Duration,
    ) -> Announcer {
        Announcer {
            client,
            js,
            timeout_grace,
        }
    }

    /// Publishes the events of `transitions` and sets their timers.
    pub async fn announce(&self, transitions: &[Transition]) -> Result<(), BatchError> {
        if transitions.is_empty() {
            return Ok(());
        }
        let mut messages = events(transitions);
        messages.extend(
            timers_for(transitions, self.timeout_grace)
                .iter()
                .map(timers::schedule),
        );
        publish_all(&self.js, messages).await
    }

    /// Sets timers that were due already (the reconciler's path).
    pub async fn set_timers(&self, timers: &[Timer]) -> Result<(), BatchError> {
        timers::set_all(&self.js, timers).await
    }

    /// Tells nodes to stop attempts. Best effort: logged, never fatal.
    pub async fn kill(&self, kills: &[Kill]) {
        for kill in kills {
            let control = Control::Kill {
                task_id: kill.task_id,
                attempt: kill.attempt,
                reason: kill.reason.clone(),
            };
            let subject = subjects::control(&kill.node_id);
            if let Err(err) = self
                .client
                .publish(subject, codec::encode(&control).into())
                .await
            {
                tracing::warn!(task_id = %kill.task_id, node = %kill.node_id, error = %err, "cannot send a kill");
            } else {
                metrics::counter!("taskyard_pool_manager_kills_sent_total").increment(1);
            }
        }
    }
}

/// The timer each transition's new state needs, if any: a running
/// attempt's deadline (plus `timeout_grace`), a backoff's end, a placement
/// deadline.
pub fn timers_for(transitions: &[Transition], timeout_grace: Duration) -> Vec<Timer> {
    transitions
        .iter()
        .filter_map(|t| {
            let due = t.due?;
            let (kind, due_at) = match t.to {
                TaskState::Running => (TimerKind::Timeout, due + timeout_grace),
                TaskState::Retrying => (TimerKind::Retry, due),
                TaskState::Queued => (TimerKind::Placement, due),
                _ => return None,
            };
            Some(Timer {
                kind,
                task_id: t.task_id,
                attempt: t.attempt,
                due_at,
            })
        })
        .collect()
}

/// The kills for transitions that took a placed attempt away from its node.
pub fn kills_for(transitions: &[Transition]) -> Vec<Kill> {
    transitions
        .iter()
        .filter(|t| matches!(t.from, TaskState::Scheduled | TaskState::Running))
        .filter(|t| t.to != TaskState::Running)
        .filter_map(|t| {
            Some(Kill {
                node_id: t.node_id.clone()?,
                task_id: t.task_id,
                attempt: t.attempt,
                reason: t
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("the task is {} now", t.to)),
            })
        })
        .collect()
}

/// Turns transitions into event messages, one per target state.
pub fn events(transitions: &[Transition]) -> Vec<Outgoing> {
    let mut by_state: HashMap<TaskState, Vec<TaskEvent>> = HashMap::new();
    for t in transitions {
        by_state.entry(t.to).or_default().push(t.event());
    }
    let mut messages = Vec::new();
    for (state, events) in by_state {
        for chunk in events.chunks(EVENTS_PER_MESSAGE) {
            messages.push(Outgoing::new(
                subjects::task_event(state),
                codec::encode(&TaskEventBatch {
                    events: chunk.to_vec(),
                }),
            ));
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transition(from: TaskState, to: TaskState, due: bool) -> Transition {
        Transition {
            task_id: Uuid::from_u128(7),
            pool: "default".to_owned(),
            attempt: 2,
            from,
            to,
            node_id: Some("n1".to_owned()),
            reason: Some("because".to_owned()),
            at: taskyard_wire::now(),
            requeued: None,
            due: due.then(taskyard_wire::now),
            created_at: taskyard_wire::now(),
        }
    }

    #[test]
    fn states_that_end_by_themselves_get_a_timer() {
        let running = transition(TaskState::Scheduled, TaskState::Running, true);
        let deadline = running.due.map(|due| due + Duration::from_secs(2));
        let got = timers_for(
            &[
                running,
                transition(TaskState::Running, TaskState::Retrying, true),
                transition(TaskState::Running, TaskState::Succeeded, false),
                transition(TaskState::Scheduled, TaskState::Running, false),
            ],
            Duration::from_secs(2),
        );
        let kinds: Vec<(TimerKind, u32)> = got.iter().map(|t| (t.kind, t.attempt)).collect();
        assert_eq!(kinds, vec![(TimerKind::Timeout, 2), (TimerKind::Retry, 2)]);
        assert_eq!(
            Some(got[0].due_at),
            deadline,
            "the pool manager waits out the grace"
        );
    }

    #[test]
    fn only_attempts_taken_from_a_node_are_killed() {
        let kills = kills_for(&[
            transition(TaskState::Running, TaskState::Cancelled, false),
            transition(TaskState::Queued, TaskState::Cancelled, false),
            transition(TaskState::Scheduled, TaskState::Running, true),
            transition(TaskState::Running, TaskState::Retrying, true),
        ]);
        assert_eq!(kills.len(), 2);
        assert_eq!(kills[0].node_id, "n1");
        assert_eq!(kills[0].reason, "because");
    }
}
