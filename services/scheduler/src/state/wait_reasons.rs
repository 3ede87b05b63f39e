//! Why each task at the head of a queue still waits, in words for whoever
//! looks at it: a quota, a node held for it, its turn in the policy's
//! order, or what no node has free.

use super::SchedulerState;
use taskyard_policy::{Planner, Waiting};
use uuid::Uuid;

/// Waiting tasks per pool whose reason is kept up to date (the head of each
/// queue; further back, the reason is simply "waiting its turn").
pub const EXPLAINED_PER_POOL: usize = 20;

impl SchedulerState {
    /// Why the tasks at the head of each queue still wait, for those whose
    /// reason changed since it was last recorded. A task that fits and only
    /// waits its turn gets its place in the policy's order; only the first
    /// [`EXPLAINED_PER_POOL`] of each pool are explained, and the caller
    /// writes at most every [`crate::REASONS_EVERY`], so a busy queue costs
    /// a bounded number of writes.
    pub fn changed_wait_reasons(&mut self) -> Vec<(Uuid, String)> {
        let mut changed = Vec::new();
        for (pool, queue) in self.planner.queues() {
            for (place, task) in queue.first(EXPLAINED_PER_POOL).into_iter().enumerate() {
                let reason = why_waiting(&self.planner, pool, queue.name(), place + 1, task);
                if self.reasons.get(&task.id) != Some(&reason) {
                    self.reasons.insert(task.id, reason.clone());
                    changed.push((task.id, reason));
                }
            }
        }
        changed
    }
}

/// Why `task`, number `place` in `policy`'s order of `pool`, is not placed.
fn why_waiting(
    planner: &Planner,
    pool: &str,
    policy: &str,
    place: usize,
    task: &Waiting,
) -> String {
    let Some(spec) = planner.pool(pool) else {
        return format!("pool {pool} does not exist; create it or resubmit to another pool");
    };
    if let Some(refusal) = planner.refuses(pool, task) {
        return refusal.describe(pool);
    }
    let in_pool = spec.rules();
    let rules = in_pool.for_task(task);
    let fleet = planner.fleet();
    let held = planner
        .hold(pool)
        .filter(|hold| hold.task.id == task.id)
        .and_then(|hold| {
            let short = fleet.shortfall_on(&hold.node_id, &task.request.resources, &rules)?;
            Some((&hold.node_id, short))
        })
        .filter(|(_, short)| !short.is_none());
    if let Some((node, short)) = held {
        format!(
            "node {node} is held for it, as it fits nowhere now: no new work goes there until {short} more is free (number {place} in the {policy} order of pool {pool})"
        )
    } else if fleet.any_fits_with(&task.request.resources, &rules) {
        format!("waiting its turn: number {place} in the {policy} order of pool {pool}")
    } else {
        let lacks = fleet.why_not(&task.request.resources, &rules, pool);
        format!("{lacks} (number {place} in the {policy} order)")
    }
}
