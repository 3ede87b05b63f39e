//! The state as Postgres has it, when the scheduler starts (or takes over
//! from another): pools, known nodes, reservations of placed tasks, and
//! queued tasks. From then on, events keep it up to date, and a periodic
//! resync puts right what a lost event left wrong.

use super::{Reservation, SchedulerState};
use std::collections::{HashMap, HashSet};
use taskyard_policy::Waiting;
use taskyard_store::nodes::Health;
use taskyard_store::{Store, StoreError};
use uuid::Uuid;

impl SchedulerState {
    /// The state as Postgres has it: pools, known nodes, reservations of
    /// placed tasks, and queued tasks.
    pub async fn rebuild(store: &Store) -> Result<SchedulerState, StoreError> {
        let mut state = SchedulerState::new();
        state.estimates = store.runtime_estimates().await?;
        // The stored pools replace the built-in default: Postgres has it
        // too, unless it was deleted.
        let pools = store.list_pools().await?;
        for name in std::mem::take(&mut state.pools).into_keys() {
            state.planner.remove_pool(&name);
        }
        for pool in pools {
            state.define_pool(pool);
        }
        for node in store.list_nodes().await? {
            let schedulable = node.health == Health::Alive && !node.draining && !node.cordoned;
            state.planner.nodes().upsert_labelled(
                &node.id,
                node.capacity,
                node.labels.clone(),
                schedulable,
            );
        }
        for placed in store.placed_tasks().await? {
            state.hold(
                placed.id,
                Reservation {
                    node_id: placed.node_id,
                    pool: placed.pool,
                    tenant: placed.tenant,
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
}

/// What a resync found wrong and put right.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Healed {
    /// Reservations of tasks Postgres no longer has placed, given back.
    pub released: usize,
    /// Placements Postgres has that this state did not hold.
    pub held: usize,
    /// Queued tasks this state had not heard of.
    pub enqueued: usize,
    /// Tasks this state queued that Postgres no longer has queued.
    pub dropped: usize,
}

impl Healed {
    pub fn is_empty(&self) -> bool {
        *self == Healed::default()
    }
}

impl SchedulerState {
    /// Puts reservations and queues right where they differ from Postgres,
    /// keeping everything else (the policies' order, their fairness state):
    /// an event lost after its commit (a publish that failed, a message
    /// deleted) otherwise leaves a node held by a finished task, or a task
    /// queued and never placed, until the next restart.
    ///
    /// Safe against events still in flight: whatever the snapshot already
    /// shows, their later application repeats (a queued task is queued
    /// once, a freed reservation is freed once). The nodes and pools are
    /// left to their events, which every restart of their publishers
    /// repeats.
    pub async fn resync(&mut self, store: &Store) -> Result<Healed, StoreError> {
        let placed = store.placed_tasks().await?;
        let queued = store.queued_tasks().await?;
        let mut healed = Healed::default();

        let placed_now: HashMap<Uuid, u32> = placed.iter().map(|p| (p.id, p.attempt)).collect();
        let gone: Vec<Uuid> = self
            .reservations
            .iter()
            .filter(|(id, r)| placed_now.get(id) != Some(&r.attempt))
            .map(|(id, _)| *id)
            .collect();
        healed.released = gone.len();
        for id in gone {
            self.release(id);
        }
        for task in placed {
            if self.reservations.contains_key(&task.id) {
                continue;
            }
            healed.held += 1;
            self.planner.remove_task(&task.pool, task.id);
            self.hold(
                task.id,
                Reservation {
                    node_id: task.node_id,
                    pool: task.pool,
                    tenant: task.tenant,
                    attempt: task.attempt,
                    resources: task.resources,
                },
            );
        }

        let queued_now: HashSet<Uuid> = queued.iter().map(|t| t.id).collect();
        let stale: Vec<(String, Uuid)> = self
            .planner
            .queues()
            .flat_map(|(pool, queue)| {
                queue
                    .first(queue.len())
                    .into_iter()
                    .filter(|task| !queued_now.contains(&task.id))
                    .map(|task| (pool.to_owned(), task.id))
                    .collect::<Vec<_>>()
            })
            .collect();
        healed.dropped = stale.len();
        for (pool, id) in stale {
            self.planner.remove_task(&pool, id);
            self.reasons.remove(&id);
        }
        for task in queued {
            let known = self
                .planner
                .queue(&task.pool)
                .is_some_and(|queue| queue.contains(task.id));
            if known {
                continue;
            }
            healed.enqueued += 1;
            self.enqueue(
                Waiting {
                    id: task.id,
                    attempt: task.attempt,
                    request: task.request,
                },
                &task.pool,
            );
        }
        Ok(healed)
    }
}
