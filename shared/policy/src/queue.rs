//! The order in which a pool's waiting tasks are served.
//!
//! [`QueuePolicy`] is the interface; each policy lives in its own module:
//! [`Fcfs`] here, [`RoundRobin`], [`Sjf`], [`Wfq`], [`Drf`], and the
//! [`Priority`] wrapper that puts strict priority classes over any of them
//! ([`PolicyKind::build_classed`] builds a policy under it).

pub mod drf;
mod numbering;
pub mod priority;
pub mod round_robin;
pub mod sjf;
pub mod wfq;

pub use drf::Drf;
pub use priority::Priority;
pub use round_robin::RoundRobin;
pub use sjf::Sjf;
pub use wfq::Wfq;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use taskyard_wire::Resources;
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
    /// Round robin across tenants, FCFS within each.
    RoundRobin,
    /// Shortest estimated runtime first, with aging.
    Sjf,
    /// Weighted fair queuing across tenants.
    Wfq,
    /// Dominant resource fairness across tenants.
    Drf,
}

impl PolicyKind {
    /// Every policy's name, as pools spell it.
    pub const NAMES: [&'static str; 5] = ["fcfs", "round_robin", "sjf", "wfq", "drf"];

    /// Every policy, in the order of [`PolicyKind::NAMES`].
    pub const ALL: [PolicyKind; 5] = [
        PolicyKind::Fcfs,
        PolicyKind::RoundRobin,
        PolicyKind::Sjf,
        PolicyKind::Wfq,
        PolicyKind::Drf,
    ];

    /// The policy a pool names (one of [`PolicyKind::NAMES`]), if this build
    /// knows it.
    pub fn parse(name: &str) -> Option<PolicyKind> {
        match name {
            "fcfs" => Some(PolicyKind::Fcfs),
            "round_robin" => Some(PolicyKind::RoundRobin),
            "sjf" => Some(PolicyKind::Sjf),
            "wfq" => Some(PolicyKind::Wfq),
            "drf" => Some(PolicyKind::Drf),
            _ => None,
        }
    }

    /// The policy's name, as pools spell it.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Fcfs => "fcfs",
            PolicyKind::RoundRobin => "round_robin",
            PolicyKind::Sjf => "sjf",
            PolicyKind::Wfq => "wfq",
            PolicyKind::Drf => "drf",
        }
    }

    /// A new, empty queue of this policy, with default settings (every
    /// tenant weighs [`wfq::DEFAULT_WEIGHT`] under WFQ).
    pub fn build(self) -> Box<dyn QueuePolicy> {
        self.build_with(&BTreeMap::new())
    }

    /// A new, empty queue of this policy; WFQ and DRF weigh tenants by
    /// `weights` (the others ignore them).
    pub fn build_with(self, weights: &BTreeMap<String, u32>) -> Box<dyn QueuePolicy> {
        match self {
            PolicyKind::Fcfs => Box::new(Fcfs::default()),
            PolicyKind::RoundRobin => Box::new(RoundRobin::default()),
            PolicyKind::Sjf => Box::new(Sjf::default()),
            PolicyKind::Wfq => Box::new(Wfq::new(weights.clone())),
            PolicyKind::Drf => Box::new(Drf::new(weights.clone())),
        }
    }

    /// [`PolicyKind::build_with`] under strict priority classes: a
    /// [`Priority`] queue (on `request.priority`, higher first) whose every
    /// level is a queue of this policy. It reports this policy's name, and
    /// forwards [`QueuePolicy::allocated`], [`QueuePolicy::released`] and
    /// [`QueuePolicy::set_capacity`] to every level (see [`Priority`]).
    pub fn build_classed(self, weights: &BTreeMap<String, u32>) -> Box<dyn QueuePolicy> {
        let weights = weights.clone();
        Box::new(Priority::new(move || self.build_with(&weights)))
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A policy name this build does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPolicy(pub String);

impl fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown scheduling policy {:?} (known: {})",
            self.0,
            PolicyKind::NAMES.join(", ")
        )
    }
}

impl std::error::Error for UnknownPolicy {}

impl FromStr for PolicyKind {
    type Err = UnknownPolicy;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        PolicyKind::parse(name).ok_or_else(|| UnknownPolicy(name.to_owned()))
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

    /// `tenant` holds `resources` on the pool's nodes for a task this queue
    /// did not pick (one already running when the scheduler rebuilt its
    /// state). A pick charges its own task; policies that weigh what tenants
    /// hold now (DRF) count it, the others ignore it.
    fn allocated(&mut self, _tenant: &str, _resources: &Resources) {}

    /// A task of `tenant` gave back `resources` (it finished, or lost its
    /// node): the reverse of a pick or of [`QueuePolicy::allocated`].
    fn released(&mut self, _tenant: &str, _resources: &Resources) {}

    /// The pool's nodes together hold this much (DRF's denominators).
    fn set_capacity(&mut self, _cpu_millis: u64, _memory_mb: u64) {}

    /// Whether the order depends on what tenants hold, that is whether
    /// [`QueuePolicy::allocated`] and [`QueuePolicy::released`] matter (and
    /// a pick charges the task's tenant). Wrappers such as [`Priority`] skip
    /// their bookkeeping of holdings for policies that answer false.
    fn weighs_holdings(&self) -> bool {
        false
    }
}

/// A boxed policy is a policy, so that [`Priority`] can hold levels whose
/// policy is chosen at run time (`Priority<Box<dyn QueuePolicy>>`).
impl<Q: QueuePolicy + ?Sized> QueuePolicy for Box<Q> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn push(&mut self, task: Waiting) {
        (**self).push(task);
    }

    fn remove(&mut self, id: Uuid) -> Option<Waiting> {
        (**self).remove(id)
    }

    fn contains(&self, id: Uuid) -> bool {
        (**self).contains(id)
    }

    fn len(&self) -> usize {
        (**self).len()
    }

    fn is_empty(&self) -> bool {
        (**self).is_empty()
    }

    fn pick(&mut self, fits: &mut dyn FnMut(&Waiting) -> bool) -> Option<Waiting> {
        (**self).pick(fits)
    }

    fn first(&self, n: usize) -> Vec<&Waiting> {
        (**self).first(n)
    }

    fn allocated(&mut self, tenant: &str, resources: &Resources) {
        (**self).allocated(tenant, resources);
    }

    fn released(&mut self, tenant: &str, resources: &Resources) {
        (**self).released(tenant, resources);
    }

    fn set_capacity(&mut self, cpu_millis: u64, memory_mb: u64) {
        (**self).set_capacity(cpu_millis, memory_mb);
    }

    fn weighs_holdings(&self) -> bool {
        (**self).weighs_holdings()
    }
}

/// First come, first served: the lowest creation sequence first (then the
/// lowest id, should two tasks share a sequence).
#[derive(Debug, Default, Clone)]
pub struct Fcfs {
    by_seq: BTreeMap<(i64, Uuid), Waiting>,
    seq_of: HashMap<Uuid, (i64, Uuid)>,
}

impl QueuePolicy for Fcfs {
    fn name(&self) -> &'static str {
        "fcfs"
    }

    fn push(&mut self, task: Waiting) {
        self.remove(task.id);
        let key = (task.request.seq, task.id);
        self.seq_of.insert(task.id, key);
        self.by_seq.insert(key, task);
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
            .map(|task| (task.request.seq, task.id))?;
        let task = self.by_seq.remove(&seq)?;
        self.seq_of.remove(&task.id);
        Some(task)
    }

    fn first(&self, n: usize) -> Vec<&Waiting> {
        self.by_seq.values().take(n).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
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
