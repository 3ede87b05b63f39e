//! Weighted fair queuing across tenants, on virtual finish times.

use super::{MAX_LOOKAHEAD, QueuePolicy, Waiting};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// A tenant's weight when the constructor's map does not name it.
pub const DEFAULT_WEIGHT: u32 = 1;

/// Virtual time is fixed point with this many fractional bits, so that
/// `cost / weight` stays exact enough (error below 2⁻³² per task) while the
/// arithmetic stays in integers and deterministic.
const FRACTION_BITS: u32 = 32;

/// Weighted fair queuing (self-clocked): tenants share service in proportion
/// to their weights.
///
/// Each pushed task gets a virtual finish time
///
/// ```text
/// F = max(V, F_prev(tenant)) + cost / weight(tenant)
/// ```
///
/// where `cost` is the task's estimated runtime in milliseconds (1 when it
/// has none, and at least 1), `F_prev(tenant)` is the finish time of the
/// tenant's previously pushed task, and `V`, the virtual time, is the finish
/// time of the last task served. A pick serves, among the first
/// [`MAX_LOOKAHEAD`] tasks in order of `(F, seq, id)`, the first that fits,
/// and `V` advances to its `F` (never backwards). Tenants with a backlog of
/// equal-cost tasks are therefore served in the ratio of their weights.
///
/// A replaced task (same id, same tenant) keeps its finish time; a removed
/// task's finish time still counts as its tenant's `F_prev` until `V` passes
/// it. Weights of 0 count as 1.
#[derive(Debug, Clone, Default)]
pub struct Wfq {
    /// Weights by tenant; others get [`DEFAULT_WEIGHT`].
    weights: BTreeMap<String, u32>,
    /// The virtual time: the finish time of the last task served.
    virtual_time: u128,
    /// Each tenant's latest finish time handed out.
    last_finish: BTreeMap<String, u128>,
    /// Waiting tasks by `(F, seq, id)`.
    by_finish: BTreeMap<(u128, i64, Uuid), Waiting>,
    /// Each task's key. Lookup only.
    key_of: HashMap<Uuid, (u128, i64, Uuid)>,
}

impl Wfq {
    /// A queue with these per-tenant weights (tenants not named weigh
    /// [`DEFAULT_WEIGHT`]).
    pub fn new(weights: BTreeMap<String, u32>) -> Self {
        Wfq {
            weights,
            ..Wfq::default()
        }
    }

    /// A tenant's weight, as this queue uses it (at least 1).
    pub fn weight_of(&self, tenant: &str) -> u32 {
        self.weights
            .get(tenant)
            .copied()
            .unwrap_or(DEFAULT_WEIGHT)
            .max(1)
    }

    /// A task's cost: its estimated runtime in milliseconds, or 1.
    pub fn cost_of(task: &Waiting) -> u64 {
        task.request.estimated_runtime_ms.unwrap_or(1).max(1)
    }
}

impl QueuePolicy for Wfq {
    fn name(&self) -> &'static str {
        "wfq"
    }

    fn push(&mut self, task: Waiting) {
        let tenant = &task.request.tenant;
        let finish = match self.key_of.remove(&task.id) {
            Some(old) => {
                let kept = self
                    .by_finish
                    .remove(&old)
                    .filter(|old_task| old_task.request.tenant == *tenant);
                kept.map(|_| old.0)
            }
            None => None,
        };
        let finish = finish.unwrap_or_else(|| {
            let start = self
                .last_finish
                .get(tenant)
                .copied()
                .unwrap_or(0)
                .max(self.virtual_time);
            let step = (u128::from(Wfq::cost_of(&task)) << FRACTION_BITS)
                / u128::from(self.weight_of(tenant));
            let finish = start.saturating_add(step.max(1));
            self.last_finish.insert(tenant.clone(), finish);
            finish
        });
        let key = (finish, task.request.seq, task.id);
        self.key_of.insert(task.id, key);
        self.by_finish.insert(key, task);
    }

    fn remove(&mut self, id: Uuid) -> Option<Waiting> {
        let key = self.key_of.remove(&id)?;
        self.by_finish.remove(&key)
    }

    fn contains(&self, id: Uuid) -> bool {
        self.key_of.contains_key(&id)
    }

    fn len(&self) -> usize {
        self.by_finish.len()
    }

    fn pick(&mut self, fits: &mut dyn FnMut(&Waiting) -> bool) -> Option<Waiting> {
        let key = self
            .by_finish
            .iter()
            .take(MAX_LOOKAHEAD)
            .find(|(_, task)| fits(task))
            .map(|(key, _)| *key)?;
        let task = self.by_finish.remove(&key)?;
        self.key_of.remove(&task.id);
        self.virtual_time = self.virtual_time.max(key.0);
        // A tenant whose last finish time V has reached would start at V
        // anyway: forget it, so that the map holds only tenants ahead of V.
        if self.last_finish.get(&task.request.tenant) == Some(&key.0) {
            self.last_finish.remove(&task.request.tenant);
        }
        Some(task)
    }

    fn first(&self, n: usize) -> Vec<&Waiting> {
        self.by_finish.values().take(n).collect()
    }
}
