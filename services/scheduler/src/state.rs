//! The scheduler's memory: each pool's queue, the fleet, and reservations.

use std::collections::HashMap;
use taskyard_policy::{Fleet, Placed, PolicyKind, QueuePolicy, Waiting};
use taskyard_store::nodes::Health;
use taskyard_store::{Store, StoreError};
use taskyard_wire::event::{NodeEvent, NodeEventKind, TaskEventBatch};
use taskyard_wire::{Resources, TaskState, codec};
use uuid::Uuid;

/// What a placed task holds, until it finishes.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub node_id: String,
    /// The attempt the placement started.
    pub attempt: u32,
    pub resources: Resources,
}

/// A placement decided in memory, not yet recorded.
#[derive(Debug, Clone)]
pub struct Decision {
    pub pool: String,
    pub task: Waiting,
    pub placed: Placed,
}

#[derive(Debug)]
pub struct SchedulerState {
    policy: PolicyKind,
    queues: HashMap<String, Box<dyn QueuePolicy>>,
    fleet: Fleet,
    reservations: HashMap<Uuid, Reservation>,
}

impl SchedulerState {
    pub fn new(policy: PolicyKind) -> SchedulerState {
        SchedulerState {
            policy,
            queues: HashMap::new(),
            fleet: Fleet::default(),
            reservations: HashMap::new(),
        }
    }

    /// The state as Postgres has it: known nodes, reservations of placed
    /// tasks, and queued tasks.
    pub async fn rebuild(store: &Store, policy: PolicyKind) -> Result<SchedulerState, StoreError> {
        let mut state = SchedulerState::new(policy);
        for node in store.list_nodes().await? {
            let schedulable = node.health == Health::Alive && !node.draining;
            state.fleet.upsert(&node.id, node.capacity, schedulable);
        }
        for placed in store.placed_tasks().await? {
            state.fleet.reserve(&placed.node_id, &placed.resources);
            state.reservations.insert(
                placed.id,
                Reservation {
                    node_id: placed.node_id,
                    attempt: placed.attempt,
                    resources: placed.resources,
                },
            );
        }
        for task in store.queued_tasks().await? {
            state.enqueue(
                Waiting {
                    id: task.id,
                    attempt: task.attempt,
                    request: task.request,
                },
                &task.pool,
            );
        }
        Ok(state)
    }

    pub fn queued(&self) -> usize {
        self.queues.values().map(|q| q.len()).sum()
    }

    pub fn nodes(&self) -> usize {
        self.fleet.len()
    }

    pub fn reservation(&self, id: Uuid) -> Option<&Reservation> {
        self.reservations.get(&id)
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    fn enqueue(&mut self, task: Waiting, pool: &str) {
        let policy = self.policy;
        self.queues
            .entry(pool.to_owned())
            .or_insert_with(|| policy.build())
            .push(task);
    }

    /// Applies one event message; anything unreadable is logged and skipped
    /// (events are news, and Postgres stays the truth).
    pub fn apply(&mut self, subject: &str, payload: &[u8]) {
        if subject.starts_with("taskyard.events.node.") {
            match codec::decode::<NodeEvent>(payload) {
                Ok(event) => self.apply_node(&event),
                Err(err) => tracing::warn!(subject, error = %err, "skipping node event"),
            }
        } else {
            match codec::decode::<TaskEventBatch>(payload) {
                Ok(batch) => self.apply_tasks(&batch),
                Err(err) => tracing::warn!(subject, error = %err, "skipping task events"),
            }
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
                state if state.is_terminal() => {
                    if let Some(queue) = self.queues.get_mut(&event.pool) {
                        queue.remove(event.task_id);
                    }
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
                self.fleet
                    .upsert(&event.node_id, event.capacity, event.schedulable());
            }
            NodeEventKind::Suspect | NodeEventKind::Lost => {
                self.fleet.set_schedulable(&event.node_id, false);
            }
        }
    }

    fn release(&mut self, id: Uuid) {
        if let Some(reservation) = self.reservations.remove(&id) {
            self.fleet
                .release(&reservation.node_id, &reservation.resources);
        }
    }

    /// Decides up to `max` placements, taking turns across pools, and holds
    /// their resources.
    pub fn plan_round(&mut self, max: usize) -> Vec<Decision> {
        let mut decisions = Vec::new();
        let mut pools: Vec<String> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(pool, _)| pool.clone())
            .collect();
        pools.sort();
        while decisions.len() < max && !pools.is_empty() {
            pools.retain(|pool| {
                if decisions.len() >= max {
                    return true;
                }
                let Some(queue) = self.queues.get_mut(pool) else {
                    return false;
                };
                let fleet = &self.fleet;
                let Some(task) = queue.pick(&mut |t| fleet.any_fits(&t.request.resources)) else {
                    return false;
                };
                let Some(placed) = fleet.best_fit(&task.request.resources) else {
                    queue.push(task);
                    return false;
                };
                self.fleet.reserve(&placed.node_id, &task.request.resources);
                self.reservations.insert(
                    task.id,
                    Reservation {
                        node_id: placed.node_id.clone(),
                        attempt: task.attempt + 1,
                        resources: task.request.resources,
                    },
                );
                decisions.push(Decision {
                    pool: pool.clone(),
                    task,
                    placed,
                });
                true
            });
        }
        decisions
    }

    /// Forgets a decision that the database did not take (the task was no
    /// longer queued).
    pub fn drop_decision(&mut self, decision: &Decision) {
        if self
            .reservations
            .get(&decision.task.id)
            .is_some_and(|r| r.attempt == decision.task.attempt + 1)
        {
            self.release(decision.task.id);
        }
    }

    /// Undoes a decision that could not be recorded: it waits again.
    pub fn undo_decision(&mut self, decision: Decision) {
        self.drop_decision(&decision);
        self.enqueue(decision.task, &decision.pool);
    }

    pub fn report_metrics(&self) {
        for (pool, queue) in &self.queues {
            metrics::gauge!("taskyard_scheduler_queue_depth", "pool" => pool.clone())
                .set(queue.len() as f64);
        }
        metrics::gauge!("taskyard_scheduler_reservations").set(self.reservations.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskyard_wire::TaskKind;
    use taskyard_wire::event::{PlacementRequest, TaskEvent};
    use taskyard_wire::heartbeat::Capacity;

    fn queued(id: u128, seq: i64, attempt: u32, cpu: u32) -> TaskEvent {
        TaskEvent {
            task_id: Uuid::from_u128(id),
            pool: "default".to_owned(),
            attempt,
            state: TaskState::Queued,
            from: None,
            node_id: None,
            reason: None,
            at: taskyard_wire::now(),
            request: Some(PlacementRequest {
                seq,
                kind: TaskKind::Noop,
                tenant: "t".to_owned(),
                priority: 0,
                resources: Resources {
                    cpu_millis: cpu,
                    memory_mb: 10,
                },
            }),
        }
    }

    fn finished(id: u128, attempt: u32) -> TaskEvent {
        TaskEvent {
            state: TaskState::Succeeded,
            request: None,
            ..queued(id, 0, attempt, 0)
        }
    }

    fn node(state: &mut SchedulerState, id: &str, cpu: u32) {
        state.apply_node(&NodeEvent {
            node_id: id.to_owned(),
            kind: NodeEventKind::Registered,
            capacity: Capacity {
                cpu_millis: cpu,
                memory_mb: 1000,
                slots: 10,
            },
            labels: Default::default(),
            draining: false,
            reason: None,
            at: taskyard_wire::now(),
        });
    }

    #[test]
    fn places_only_what_fits_and_frees_on_finish() {
        let mut state = SchedulerState::new(PolicyKind::Fcfs);
        node(&mut state, "n1", 1000);
        state.apply_tasks(&TaskEventBatch {
            events: vec![queued(1, 1, 0, 600), queued(2, 2, 0, 600)],
        });
        let round = state.plan_round(10);
        assert_eq!(round.len(), 1, "only one 600m task fits in 1000m");
        assert_eq!(round[0].task.id, Uuid::from_u128(1));
        assert!(state.plan_round(10).is_empty());
        state.apply_tasks(&TaskEventBatch {
            events: vec![finished(1, 1)],
        });
        let round = state.plan_round(10);
        assert_eq!(round.len(), 1);
        assert_eq!(round[0].task.id, Uuid::from_u128(2));
    }

    #[test]
    fn a_redelivered_queued_event_queues_once() {
        let mut state = SchedulerState::new(PolicyKind::Fcfs);
        let event = queued(1, 1, 0, 100);
        state.apply_tasks(&TaskEventBatch {
            events: vec![event.clone(), event.clone()],
        });
        assert_eq!(state.queued(), 1);
        node(&mut state, "n1", 1000);
        assert_eq!(state.plan_round(10).len(), 1);
        // The same event again after placement is stale: nothing new waits.
        state.apply_tasks(&TaskEventBatch {
            events: vec![event],
        });
        assert_eq!(state.queued(), 0);
    }

    #[test]
    fn a_retry_frees_the_failed_attempt() {
        let mut state = SchedulerState::new(PolicyKind::Fcfs);
        node(&mut state, "n1", 100);
        state.apply_tasks(&TaskEventBatch {
            events: vec![queued(1, 1, 0, 100)],
        });
        assert_eq!(state.plan_round(10).len(), 1);
        // Attempt 1 failed and the task is queued again as attempt 1.
        state.apply_tasks(&TaskEventBatch {
            events: vec![queued(1, 1, 1, 100)],
        });
        let round = state.plan_round(10);
        assert_eq!(round.len(), 1);
        assert_eq!(round[0].task.attempt, 1);
    }
}
