//! The state as Postgres has it, when the scheduler starts (or takes over
//! from another): pools, known nodes, reservations of placed tasks, and
//! queued tasks. From then on, events keep it up to date.

use super::{Reservation, SchedulerState};
use taskyard_policy::Waiting;
use taskyard_store::nodes::Health;
use taskyard_store::{Store, StoreError};

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
