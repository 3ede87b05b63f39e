//! Shortest (estimated) job first, with aging so that long jobs do not starve.

use super::{MAX_LOOKAHEAD, QueuePolicy, Waiting};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// The estimate, in milliseconds, of a task that carries none, unless the
/// constructor says otherwise: one minute.
pub const DEFAULT_ESTIMATE_MS: u64 = 60_000;

/// How much a task's effective estimate drops, in milliseconds, for every
/// task served while it waits, unless the constructor says otherwise: 10 ms
/// per pick. So a task estimated at a minute is overtaken by later, shorter
/// tasks for at most 6,000 picks. The simulator chose it (docs/simulator.md):
/// at 1 s per pick a busy pool gained more than any estimate within seconds
/// and SJF served in arrival order; at 10 ms mean turnaround fell by 29%
/// with no worse p99 wait.
pub const DEFAULT_AGING_STEP_MS: u64 = 10;

/// Shortest estimated runtime first, with aging.
///
/// # Order
/// The policy keeps a logical clock, `served`, that counts the tasks it has
/// handed out (every pick that returns a task). A task with estimate `E`
/// (`request.estimated_runtime_ms`, or the default estimate when absent),
/// pushed when the clock read `p`, has at clock `t` the effective key
///
/// ```text
/// key(t) = E − step × (t − p)
/// ```
///
/// and a pick serves, among the first [`MAX_LOOKAHEAD`] tasks in order of
/// `(key(t), seq, id)`, the first that fits. Every waiting task ages at the
/// same rate, so that order does not change as `t` advances: it is the order
/// of the static key `E + step × p`, which is what the queue stores. A pick
/// costs O(log n) plus the bounded lookahead.
///
/// A replaced task (pushed again with the same id) keeps its `p`: a
/// redelivery does not lose its age.
///
/// # Aging bound
/// Let task X have estimate `E` and be pushed at clock `p`. A task Y pushed
/// later, at clock `p_y ≥ p`, with estimate `E_y`, can be served before X
/// only if `E_y + step × p_y ≤ E + step × p`, that is only if
///
/// ```text
/// p_y − p ≤ floor((E − E_y) / step) ≤ floor((E − e_min) / step) =: D
/// ```
///
/// where `e_min` is the least estimate of any such Y (at least 0). So, while
/// every task fits, the tasks served before X are at most those already
/// queued when X arrived plus those pushed within the next `D` picks; no task
/// pushed after that overtakes X. If at most `a` tasks are pushed per pick
/// and `q` were queued when X arrived, X is served within
/// `q + a × (D + 1)` picks. With one arrival per pick and an empty queue,
/// X is served after at most `ceil((E − e_min) / step)` picks ahead of it.
#[derive(Debug, Clone)]
pub struct Sjf {
    /// The estimate of a task without one, in milliseconds.
    default_estimate_ms: u64,
    /// The aging step, in milliseconds per task served (at least 1).
    aging_step_ms: u64,
    /// The logical clock: tasks served so far.
    served: u64,
    /// Waiting tasks by `(E + step × p, seq, id)`.
    by_key: BTreeMap<(u128, i64, Uuid), Waiting>,
    /// Each task's key and the clock when it was first pushed. Lookup only.
    key_of: HashMap<Uuid, ((u128, i64, Uuid), u64)>,
}

impl Default for Sjf {
    fn default() -> Self {
        Sjf::new(DEFAULT_ESTIMATE_MS, DEFAULT_AGING_STEP_MS)
    }
}

impl Sjf {
    /// A queue that gives tasks without an estimate `default_estimate_ms`,
    /// and ages waiting tasks by `aging_step_ms` per task served (0 counts as
    /// 1: without aging, long tasks could starve).
    pub fn new(default_estimate_ms: u64, aging_step_ms: u64) -> Self {
        Sjf {
            default_estimate_ms,
            aging_step_ms: aging_step_ms.max(1),
            served: 0,
            by_key: BTreeMap::new(),
            key_of: HashMap::new(),
        }
    }

    /// The estimate this queue uses for a task.
    pub fn estimate_of(&self, task: &Waiting) -> u64 {
        task.request
            .estimated_runtime_ms
            .unwrap_or(self.default_estimate_ms)
    }

    /// The aging step, in milliseconds per task served.
    pub fn aging_step_ms(&self) -> u64 {
        self.aging_step_ms
    }

    /// The logical clock: how many tasks this queue has served.
    pub fn clock(&self) -> u64 {
        self.served
    }

    /// When a queued task was pushed, on the logical clock.
    pub fn pushed_at(&self, id: Uuid) -> Option<u64> {
        self.key_of.get(&id).map(|(_, pushed)| *pushed)
    }
}

impl QueuePolicy for Sjf {
    fn name(&self) -> &'static str {
        "sjf"
    }

    fn push(&mut self, task: Waiting) {
        let pushed = match self.key_of.remove(&task.id) {
            Some((key, pushed)) => {
                self.by_key.remove(&key);
                pushed
            }
            None => self.served,
        };
        // u64 × u64 + u64 fits in u128.
        let static_key = u128::from(self.estimate_of(&task))
            + u128::from(self.aging_step_ms) * u128::from(pushed);
        let key = (static_key, task.request.seq, task.id);
        self.key_of.insert(task.id, (key, pushed));
        self.by_key.insert(key, task);
    }

    fn remove(&mut self, id: Uuid) -> Option<Waiting> {
        let (key, _) = self.key_of.remove(&id)?;
        self.by_key.remove(&key)
    }

    fn contains(&self, id: Uuid) -> bool {
        self.key_of.contains_key(&id)
    }

    fn len(&self) -> usize {
        self.by_key.len()
    }

    fn pick(&mut self, fits: &mut dyn FnMut(&Waiting) -> bool) -> Option<Waiting> {
        let key = self
            .by_key
            .iter()
            .take(MAX_LOOKAHEAD)
            .find(|(_, task)| fits(task))
            .map(|(key, _)| *key)?;
        let task = self.by_key.remove(&key)?;
        self.key_of.remove(&task.id);
        self.served += 1;
        Some(task)
    }

    fn first(&self, n: usize) -> Vec<&Waiting> {
        self.by_key.values().take(n).collect()
    }
}
