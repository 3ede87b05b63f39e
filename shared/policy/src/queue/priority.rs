//! Strict priority classes over any inner policy.

use super::{MAX_LOOKAHEAD, QueuePolicy, Waiting};
use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use uuid::Uuid;

/// Strict priority classes on `request.priority`, higher first, with one
/// inner queue of policy `P` per priority level.
///
/// A pick tries levels from the highest down and serves the first task that
/// fits in the first level that has one, so no task of a lower class is
/// served while a higher class has a task that fits within the lookahead.
/// The lookahead is shared: across all levels, a pick looks at no more than
/// [`MAX_LOOKAHEAD`] tasks. Empty levels are dropped, so a pick costs
/// O(levels with work) plus the inner picks.
pub struct Priority<P> {
    /// Non-empty inner queues, highest priority first.
    levels: BTreeMap<Reverse<i32>, P>,
    /// Each task's level. Lookup only.
    level_of: HashMap<Uuid, i32>,
    /// Makes the inner queue of a new level.
    make: Box<dyn Fn() -> P + Send>,
}

impl<P: QueuePolicy> Priority<P> {
    /// Priority classes whose levels are queues made by `make`.
    pub fn new(make: impl Fn() -> P + Send + 'static) -> Self {
        Priority {
            levels: BTreeMap::new(),
            level_of: HashMap::new(),
            make: Box::new(make),
        }
    }
}

impl<P: QueuePolicy + Default + 'static> Default for Priority<P> {
    fn default() -> Self {
        Priority::new(P::default)
    }
}

impl<P: fmt::Debug> fmt::Debug for Priority<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Priority")
            .field("levels", &self.levels)
            .finish_non_exhaustive()
    }
}

impl<P: QueuePolicy> QueuePolicy for Priority<P> {
    fn name(&self) -> &'static str {
        "priority"
    }

    fn push(&mut self, task: Waiting) {
        self.remove(task.id);
        let level = task.request.priority;
        self.level_of.insert(task.id, level);
        self.levels
            .entry(Reverse(level))
            .or_insert_with(|| (self.make)())
            .push(task);
    }

    fn remove(&mut self, id: Uuid) -> Option<Waiting> {
        let level = self.level_of.remove(&id)?;
        let queue = self.levels.get_mut(&Reverse(level))?;
        let task = queue.remove(id);
        if queue.is_empty() {
            self.levels.remove(&Reverse(level));
        }
        task
    }

    fn contains(&self, id: Uuid) -> bool {
        self.level_of.contains_key(&id)
    }

    fn len(&self) -> usize {
        self.level_of.len()
    }

    fn pick(&mut self, fits: &mut dyn FnMut(&Waiting) -> bool) -> Option<Waiting> {
        // Counts the tasks looked at, across levels.
        let looked = Cell::new(0);
        let mut budgeted = |task: &Waiting| {
            if looked.get() >= MAX_LOOKAHEAD {
                return false;
            }
            looked.set(looked.get() + 1);
            fits(task)
        };
        let mut served = None;
        for (level, queue) in self.levels.iter_mut() {
            if let Some(task) = queue.pick(&mut budgeted) {
                served = Some((*level, task));
                break;
            }
            if looked.get() >= MAX_LOOKAHEAD {
                break;
            }
        }
        let (level, task) = served?;
        self.level_of.remove(&task.id);
        if self
            .levels
            .get(&level)
            .is_some_and(|queue| queue.is_empty())
        {
            self.levels.remove(&level);
        }
        Some(task)
    }

    fn first(&self, n: usize) -> Vec<&Waiting> {
        let mut out = Vec::with_capacity(n.min(self.len()));
        for queue in self.levels.values() {
            if out.len() >= n {
                break;
            }
            out.extend(queue.first(n - out.len()));
        }
        out
    }
}
