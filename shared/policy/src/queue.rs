//! The order in which a pool's waiting tasks are served.

use std::collections::{BTreeMap, HashMap};
use taskyard_wire::event::PlacementRequest;
use uuid::Uuid;

/// How many waiting tasks a policy may pass over, in its own order, to find
/// one that fits when the first does not. Bounded, so that a pick costs the
/// same however long the queue; and non-zero, so that one task too large for
/// the free space does not hold back smaller ones behind it.
pub const MAX_LOOKAHEAD: usize = 64;

/// A task waiting to be placed.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub id: Uuid,
    /// Its attempt while queued (the placement makes it `attempt + 1`).
    pub attempt: u32,
    pub request: PlacementRequest,
}

/// The policies a pool can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyKind {
    /// First come, first served.
    #[default]
    Fcfs,
}

impl PolicyKind {
    /// The policy a pool names (`fcfs`), if this build knows it.
    pub fn parse(name: &str) -> Option<PolicyKind> {
        match name {
            "fcfs" => Some(PolicyKind::Fcfs),
            _ => None,
        }
    }

    /// A new, empty queue of this policy.
    pub fn build(self) -> Box<dyn QueuePolicy> {
        match self {
            PolicyKind::Fcfs => Box::new(Fcfs::default()),
        }
    }
}

/// A pool's queue under one scheduling policy.
pub trait QueuePolicy: Send + std::fmt::Debug {
    /// The policy's name, as pools and reports spell it.
    fn name(&self) -> &'static str;

    /// Adds a task. A task already queued (same id) is replaced, so a
    /// redelivered event never queues a task twice.
    fn push(&mut self, task: Waiting);

    /// Removes a task (placed elsewhere, cancelled), if it is queued.
    fn remove(&mut self, id: Uuid) -> Option<Waiting>;

    fn contains(&self, id: Uuid) -> bool;

    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the next task in policy order for which `fits` is true, looking
    /// at no more than [`MAX_LOOKAHEAD`] tasks.
    fn pick(&mut self, fits: &mut dyn FnMut(&Waiting) -> bool) -> Option<Waiting>;

    /// The first `n` tasks in the order the policy would serve them.
    fn first(&self, n: usize) -> Vec<&Waiting>;
}

/// First come, first served: the lowest creation sequence first.
#[derive(Debug, Default)]
pub struct Fcfs {
    by_seq: BTreeMap<i64, Waiting>,
    seq_of: HashMap<Uuid, i64>,
}

impl QueuePolicy for Fcfs {
    fn name(&self) -> &'static str {
        "fcfs"
    }

    fn push(&mut self, task: Waiting) {
        self.remove(task.id);
        self.seq_of.insert(task.id, task.request.seq);
        self.by_seq.insert(task.request.seq, task);
    }

    fn remove(&mut self, id: Uuid) -> Option<Waiting> {
        let seq = self.seq_of.remove(&id)?;
        self.by_seq.remove(&seq)
    }

    fn contains(&self, id: Uuid) -> bool {
        self.seq_of.contains_key(&id)
    }

    fn len(&self) -> usize {
        self.by_seq.len()
    }

    fn pick(&mut self, fits: &mut dyn FnMut(&Waiting) -> bool) -> Option<Waiting> {
        let seq = self
            .by_seq
            .values()
            .take(MAX_LOOKAHEAD)
            .find(|task| fits(task))
            .map(|task| task.request.seq)?;
        let task = self.by_seq.remove(&seq)?;
        self.seq_of.remove(&task.id);
        Some(task)
    }

    fn first(&self, n: usize) -> Vec<&Waiting> {
        self.by_seq.values().take(n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use taskyard_wire::{Resources, TaskKind};

    pub(crate) fn waiting(seq: i64, cpu: u32) -> Waiting {
        Waiting {
            id: Uuid::from_u128(seq as u128 + 1),
            attempt: 0,
            request: PlacementRequest {
                seq,
                kind: TaskKind::Noop,
                tenant: "t".to_owned(),
                priority: 0,
                resources: Resources {
                    cpu_millis: cpu,
                    memory_mb: 1,
                },
                node_selector: Default::default(),
                estimated_runtime_ms: None,
            },
        }
    }

    #[test]
    fn a_task_too_big_for_now_does_not_block_smaller_ones() {
        let mut queue = Fcfs::default();
        queue.push(waiting(1, 4000));
        queue.push(waiting(2, 100));
        let picked = queue.pick(&mut |t| t.request.resources.cpu_millis <= 1000);
        assert_eq!(picked.map(|t| t.request.seq), Some(2));
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn pushing_twice_queues_once() {
        let mut queue = Fcfs::default();
        queue.push(waiting(1, 1));
        queue.push(waiting(1, 1));
        assert_eq!(queue.len(), 1);
        assert!(queue.remove(Uuid::from_u128(2)).is_some());
        assert!(queue.is_empty());
    }

    proptest! {
        /// FCFS serves in creation order whatever the order of arrival, and
        /// loses or repeats nothing.
        #[test]
        fn fcfs_serves_in_creation_order(seqs in proptest::collection::hash_set(0i64..10_000, 0..200)) {
            let mut queue = Fcfs::default();
            for seq in &seqs {
                queue.push(waiting(*seq, 1));
            }
            let mut served = Vec::new();
            while let Some(task) = queue.pick(&mut |_| true) {
                served.push(task.request.seq);
            }
            let mut expected: Vec<i64> = seqs.into_iter().collect();
            expected.sort_unstable();
            prop_assert_eq!(served, expected);
        }
    }
}
