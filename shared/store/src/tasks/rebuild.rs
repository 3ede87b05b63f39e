//! What a starting scheduler reads back from Postgres to rebuild its state:
//! the queued tasks, the tasks holding a reservation, the placements whose
//! dispatch may not have been sent, and the run times SJF learned.

use super::attempts::{ScheduledTask, scheduled_from_row};
use super::{QueuedTask, parse_state, queued_from_row, resources_from_row};
use crate::{Result, Store, to_u32};
use taskyard_wire::{Resources, TaskState};
use uuid::Uuid;

/// A task placed on a node (its reservation).
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedTask {
    pub id: Uuid,
    pub pool: String,
    pub tenant: String,
    pub node_id: String,
    pub attempt: u32,
    pub state: TaskState,
    pub resources: Resources,
}

impl Store {
    /// What shortest-job-first has learned: the mean run time, in
    /// milliseconds, of each (pool, kind) with successful runs.
    pub async fn runtime_estimates(
        &self,
    ) -> Result<std::collections::HashMap<(String, String), u64>> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT pool, kind, mean_ms FROM runtime_estimates", &[])
            .await?;
        rows.iter()
            .map(|row| {
                let mean: f64 = row.try_get("mean_ms")?;
                Ok((
                    (row.try_get("pool")?, row.try_get("kind")?),
                    // At least 1 ms: a task said to take no time at all would
                    // always jump the queue.
                    mean.round().max(1.0) as u64,
                ))
            })
            .collect()
    }

    /// Every queued task, in creation order (the scheduler's rebuild).
    pub async fn queued_tasks(&self) -> Result<Vec<QueuedTask>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, seq, pool, tenant, kind, priority, cpu_millis, memory_mb, attempt, \
                        node_selector, estimated_runtime_ms \
                 FROM tasks WHERE finished_at IS NULL AND state = 'queued' ORDER BY seq",
                &[],
            )
            .await?;
        rows.iter().map(queued_from_row).collect()
    }

    /// Every task holding a reservation on a node (the scheduler's rebuild).
    pub async fn placed_tasks(&self) -> Result<Vec<PlacedTask>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, pool, tenant, node_id, attempt, state::text AS state, cpu_millis, \
                        memory_mb \
                 FROM tasks WHERE finished_at IS NULL AND state IN ('scheduled', 'running')",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PlacedTask {
                    id: row.try_get("id")?,
                    pool: row.try_get("pool")?,
                    tenant: row.try_get("tenant")?,
                    node_id: row.try_get("node_id")?,
                    attempt: to_u32(row.try_get("attempt")?),
                    state: parse_state(row.try_get("state")?)?,
                    resources: resources_from_row(row)?,
                })
            })
            .collect()
    }

    /// Tasks in `scheduled`: their dispatch may not have reached NATS before a
    /// crash, so a starting scheduler sends them again (deduplicated by
    /// `Nats-Msg-Id` and fenced by the attempt).
    pub async fn scheduled_tasks(&self) -> Result<Vec<ScheduledTask>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, attempt, pool, tenant, kind, spec, cpu_millis, memory_mb, timeout_ms, \
                        node_id, scheduled_at, NULL::text AS reason \
                 FROM tasks WHERE finished_at IS NULL AND state = 'scheduled'",
                &[],
            )
            .await?;
        rows.iter().map(scheduled_from_row).collect()
    }
}
