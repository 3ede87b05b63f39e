//! Decoding event messages and applying them: tasks queued, ended or
//! retried; nodes registered, changed, suspect, lost or removed; pools
//! created, changed or deleted.

use super::{SchedulerState, new_queue};
use taskyard_policy::Waiting;
use taskyard_wire::event::{NodeEvent, NodeEventKind, TaskEventBatch};
use taskyard_wire::pool::PoolEvent;
use taskyard_wire::{TaskState, codec};
use uuid::Uuid;

impl SchedulerState {
    /// Applies one event message; anything unreadable is logged and skipped
    /// (events are news, and Postgres stays the truth).
    pub fn apply(&mut self, subject: &str, payload: &[u8]) {
        if subject.starts_with("taskyard.events.node.") {
            match codec::decode::<NodeEvent>(payload) {
                Ok(event) => self.apply_node(&event),
                Err(err) => tracing::warn!(subject, error = %err, "skipping node event"),
            }
        } else if subject.starts_with("taskyard.events.pool.") {
            match codec::decode::<PoolEvent>(payload) {
                Ok(event) => self.apply_pool(event),
                Err(err) => tracing::warn!(subject, error = %err, "skipping pool event"),
            }
        } else {
            match codec::decode::<TaskEventBatch>(payload) {
                Ok(batch) => self.apply_tasks(&batch),
                Err(err) => tracing::warn!(subject, error = %err, "skipping task events"),
            }
        }
    }

    /// A pool was created, changed or deleted: its queued tasks are placed
    /// under the new rules from the next round on.
    pub fn apply_pool(&mut self, event: PoolEvent) {
        let name = event.pool.name.clone();
        if event.deleted {
            self.pools.remove(&name);
            self.planner.remove_pool(&name);
            return;
        }
        tracing::info!(pool = %name, policy = %event.pool.policy, "pool definition changed");
        let before = self
            .pools
            .get(&name)
            .map(|p| (p.policy.clone(), p.tenant_weights.clone()));
        let after = Some((event.pool.policy.clone(), event.pool.tenant_weights.clone()));
        self.define_pool(event.pool);
        if before != after
            && let Some(old) = self.planner.take_queue(&name)
        {
            // The waiting tasks are served in the new policy's order (or
            // under the new weights) from the next round on.
            let waiting: Vec<Waiting> = old.first(old.len()).into_iter().cloned().collect();
            let mut queue = new_queue(&self.pools, &self.reservations, &self.planner, &name);
            for task in waiting {
                queue.push(task);
            }
            self.planner.insert_queue(&name, queue);
        }
    }

    pub fn apply_tasks(&mut self, batch: &TaskEventBatch) {
        for event in &batch.events {
            match event.state {
                TaskState::Queued => {
                    // A retry ends the previous attempt's reservation; an
                    // event older than the current placement is stale.
                    if let Some(reservation) = self.reservations.get(&event.task_id) {
                        if reservation.attempt > event.attempt {
                            continue;
                        }
                        self.release(event.task_id);
                    }
                    let Some(request) = event.request.clone() else {
                        tracing::warn!(task_id = %event.task_id, "queued event without a placement request");
                        continue;
                    };
                    self.enqueue(
                        Waiting {
                            id: event.task_id,
                            attempt: event.attempt,
                            request,
                        },
                        &event.pool,
                    );
                }
                // A retry's backoff, like an end, gives the node back.
                state if state.is_terminal() || state == TaskState::Retrying => {
                    self.planner.remove_task(&event.pool, event.task_id);
                    self.reasons.remove(&event.task_id);
                    if self
                        .reservations
                        .get(&event.task_id)
                        .is_some_and(|r| r.attempt <= event.attempt)
                    {
                        self.release(event.task_id);
                    }
                }
                _ => {}
            }
        }
    }

    pub fn apply_node(&mut self, event: &NodeEvent) {
        match event.kind {
            NodeEventKind::Registered | NodeEventKind::Updated | NodeEventKind::Alive => {
                self.planner.nodes().upsert_labelled(
                    &event.node_id,
                    event.capacity,
                    event.labels.clone(),
                    event.schedulable(),
                );
            }
            NodeEventKind::Suspect => self.planner.nodes().set_schedulable(&event.node_id, false),
            NodeEventKind::Lost | NodeEventKind::Removed => {
                // What the node held is given back: its pool's quotas and
                // its own capacity must not stay taken by work that is gone
                // with it. Queueing those tasks again is the pool manager's
                // part; their later events free nothing twice, as the
                // reservation is already gone.
                let held: Vec<Uuid> = self
                    .reservations
                    .iter()
                    .filter(|(_, r)| r.node_id == event.node_id)
                    .map(|(id, _)| *id)
                    .collect();
                for id in held {
                    self.release(id);
                }
                if event.kind == NodeEventKind::Removed {
                    self.planner.nodes().remove(&event.node_id);
                } else {
                    self.planner.nodes().set_schedulable(&event.node_id, false);
                }
            }
        }
    }
}
