//! Nodes, their free resources, and where a task goes.
//!
//! [`Fleet`] keeps every node the scheduler knows with what is reserved on
//! it, and answers where a task goes ([`Fleet::place`]) and whether it fits
//! anywhere now ([`Fleet::any_fits_with`]) without looking at every node:
//! the schedulable nodes with a free slot stand in an index ordered by free
//! cpu, then free memory (a treap, in the `free_index` module), kept up to
//! date by every change to a node. See [`Fleet::place`] for the order
//! placement follows and what it costs.

mod free_index;
pub mod held;

use free_index::{Free, FreeIndex, Group};
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use taskyard_wire::Resources;
use taskyard_wire::heartbeat::Capacity;
use taskyard_wire::pool::{PlacementStrategy, selector_matches};

/// How many nodes placement passes over because the task's own node selector
/// rejects them before it looks at every node instead (see
/// [`Fleet::place`]).
pub const PLACEMENT_WALK: usize = 256;

/// How many indexes (one per pool selector and over-commit factor in use)
/// the fleet keeps. Past that, the oldest is dropped and rebuilt when next
/// needed: answers stay the same, only slower for a fleet serving more
/// distinct pools than this.
const MAX_VIEWS: usize = 16;

/// What a placement must respect besides free resources: the node labels the
/// pool and the task ask for, the pool's strategy and over-commit factor.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub pool_selector: &'a BTreeMap<String, String>,
    pub task_selector: &'a BTreeMap<String, String>,
    pub strategy: PlacementStrategy,
    /// Nodes count as this many times their CPU and memory (1.0 = none).
    pub overcommit: f64,
}

impl Rules<'_> {
    fn admits(&self, slot: &NodeSlot) -> bool {
        selector_matches(self.pool_selector, &slot.labels)
            && selector_matches(self.task_selector, &slot.labels)
    }
}

/// Whether a task could ever run in its pool, judged at submission.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Some member node is large enough.
    Fits,
    /// The pool has no member node yet: the task waits for one.
    NoMembers,
    /// Every member node is smaller than the request; the largest offers this.
    TooBig { cpu_millis: u64, memory_mb: u64 },
}

/// A node as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSlot {
    pub capacity: Capacity,
    /// CPU (millicores) held by tasks placed here.
    pub reserved_cpu: u64,
    /// Memory (MiB) held by tasks placed here.
    pub reserved_memory: u64,
    /// Tasks placed here.
    pub reserved_slots: u32,
    /// False while the node is suspect, lost, draining or cordoned: it keeps
    /// its reservations but gets no new work.
    pub schedulable: bool,
    /// Its labels, which decide pool membership.
    pub labels: BTreeMap<String, String>,
    /// Kept for a waiting task that fits nowhere now (see
    /// [`crate::turn`]): it takes no other new work until that task is
    /// placed, so that smaller tasks cannot keep it full for ever.
    pub held: bool,
}

impl NodeSlot {
    pub fn free_slots(&self) -> u32 {
        self.capacity.slots.saturating_sub(self.reserved_slots)
    }

    /// CPU free under an over-commit factor.
    pub fn free_cpu_with(&self, overcommit: f64) -> u64 {
        scaled(self.capacity.cpu_millis, overcommit).saturating_sub(self.reserved_cpu)
    }

    /// Memory free under an over-commit factor.
    pub fn free_memory_with(&self, overcommit: f64) -> u64 {
        scaled(self.capacity.memory_mb, overcommit).saturating_sub(self.reserved_memory)
    }

    /// Whether `request` fits in what is free now under an over-commit factor.
    pub fn fits_with(&self, request: &Resources, overcommit: f64) -> bool {
        self.schedulable
            && self.free_slots() > 0
            && u64::from(request.cpu_millis) <= self.free_cpu_with(overcommit)
            && u64::from(request.memory_mb) <= self.free_memory_with(overcommit)
    }
}

fn scaled(value: u32, factor: f64) -> u64 {
    (f64::from(value) * factor.max(1.0)) as u64
}

/// Where a task went, and why there.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub node_id: String,
    /// Human-readable, kept in the task's history.
    pub reason: String,
}

/// Every node the scheduler knows, by id, with indexes of the nodes that take
/// work.
///
/// # Indexes
/// An index (a "view") serves one pool selector under one over-commit
/// factor: it holds the schedulable nodes with a free slot that the selector
/// admits, ordered by `(free cpu, free memory)` and then node id, the free
/// amounts counted under the factor. A view is made, in O(n log n), the
/// first time a [`Rules`] asks for it, and is then kept up to date by every
/// upsert, removal, schedulability change, reservation and release, each
/// costing O(views × log n). Views are caches: what the fleet answers
/// depends only on its nodes, never on which views exist. (They sit behind
/// a lock so that the `&self` queries can make one; the lock is uncontended
/// unless several threads query one fleet at once.)
#[derive(Default)]
pub struct Fleet {
    nodes: BTreeMap<Arc<str>, Node>,
    views: RwLock<Vec<View>>,
}

/// A node and its id, shared with the views that list it.
#[derive(Debug, Clone)]
struct Node {
    id: Arc<str>,
    slot: NodeSlot,
}

impl Clone for Fleet {
    fn clone(&self) -> Self {
        Fleet {
            nodes: self.nodes.clone(),
            views: RwLock::new(read(&self.views).clone()),
        }
    }
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.nodes.iter().map(|(id, node)| (id, &node.slot)))
            .finish()
    }
}

/// The views, for reading. A panic elsewhere cannot leave a view half built
/// (one is pushed only once complete), so a poisoned lock is still good.
fn read(views: &RwLock<Vec<View>>) -> RwLockReadGuard<'_, Vec<View>> {
    views.read().unwrap_or_else(PoisonError::into_inner)
}

/// The over-commit factor as [`NodeSlot::free_cpu_with`] applies it, so
/// that factors giving the same free amounts share a view.
fn effective(overcommit: f64) -> f64 {
    overcommit.max(1.0)
}

/// One pool selector's schedulable members with a free slot, ordered by what
/// they have free under one over-commit factor.
#[derive(Debug, Clone)]
struct View {
    /// The effective over-commit factor (at least 1).
    factor: f64,
    pool_selector: BTreeMap<String, String>,
    by_free: FreeIndex,
}

impl View {
    fn new(factor: f64, pool_selector: BTreeMap<String, String>) -> Self {
        View {
            factor,
            pool_selector,
            by_free: FreeIndex::default(),
        }
    }

    fn serves(&self, factor: f64, pool_selector: &BTreeMap<String, String>) -> bool {
        self.factor.to_bits() == factor.to_bits() && self.pool_selector == *pool_selector
    }

    /// The node's `(free cpu, free memory)` if it belongs in this view.
    fn free_of(&self, slot: &NodeSlot) -> Option<Free> {
        (slot.schedulable
            && !slot.held
            && slot.free_slots() > 0
            && selector_matches(&self.pool_selector, &slot.labels))
        .then(|| {
            (
                slot.free_cpu_with(self.factor),
                slot.free_memory_with(self.factor),
            )
        })
    }

    fn insert(&mut self, node: &Node) {
        if let Some(free) = self.free_of(&node.slot) {
            self.by_free.insert(free, node.id.clone());
        }
    }

    /// Takes the node out; it must be as it was when inserted.
    fn remove(&mut self, node: &Node) {
        if let Some(free) = self.free_of(&node.slot) {
            self.by_free.remove(free, &node.id);
        }
    }

    /// The node `request` goes to under `strategy` (see [`Fleet::place`]).
    fn find(
        &self,
        nodes: &BTreeMap<Arc<str>, Node>,
        request: &Resources,
        strategy: PlacementStrategy,
        task_selector: &BTreeMap<String, String>,
    ) -> Option<Arc<str>> {
        let (cpu, memory) = (u64::from(request.cpu_millis), u64::from(request.memory_mb));
        let mut looked = 0;
        match strategy {
            PlacementStrategy::BestFit => {
                let mut low = (cpu, 0);
                while let Some((free, group)) = self.by_free.first_from(low, memory) {
                    if let Some(id) = first_admitted(group, nodes, task_selector, &mut looked) {
                        return Some(id.clone());
                    }
                    if looked >= PLACEMENT_WALK {
                        return self.scan(nodes, request, strategy, task_selector);
                    }
                    low = match free {
                        (cpu, memory) if memory < u64::MAX => (cpu, memory + 1),
                        (cpu, _) => (cpu.checked_add(1)?, 0),
                    };
                }
                None
            }
            PlacementStrategy::Spread => {
                let mut high = None;
                while let Some((free, group)) = self.by_free.last_below(high, memory) {
                    if free.0 < cpu {
                        return None;
                    }
                    if let Some(id) = first_admitted(group, nodes, task_selector, &mut looked) {
                        return Some(id.clone());
                    }
                    if looked >= PLACEMENT_WALK {
                        return self.scan(nodes, request, strategy, task_selector);
                    }
                    high = Some(free);
                }
                None
            }
        }
    }

    /// [`View::find`] by looking at every node: for a task whose own
    /// selector rejects many of the view's nodes.
    fn scan(
        &self,
        nodes: &BTreeMap<Arc<str>, Node>,
        request: &Resources,
        strategy: PlacementStrategy,
        task_selector: &BTreeMap<String, String>,
    ) -> Option<Arc<str>> {
        let wanted = (u64::from(request.cpu_millis), u64::from(request.memory_mb));
        // Nodes come in id order, and `min_by_key` keeps the first of equals:
        // ties go to the lowest id.
        let fitting = nodes.values().filter_map(|node| {
            let free = self.free_of(&node.slot)?;
            (free.0 >= wanted.0
                && free.1 >= wanted.1
                && selector_matches(task_selector, &node.slot.labels))
            .then_some((free, &node.id))
        });
        let chosen = match strategy {
            PlacementStrategy::BestFit => fitting.min_by_key(|(free, _)| *free),
            PlacementStrategy::Spread => fitting.min_by_key(|(free, _)| Reverse(*free)),
        };
        chosen.map(|(_, id)| id.clone())
    }
}

/// The first id in `group` the task's own selector admits (the view has
/// checked the pool's), counting the nodes looked at.
fn first_admitted<'a>(
    group: &'a Group,
    nodes: &BTreeMap<Arc<str>, Node>,
    task_selector: &BTreeMap<String, String>,
    looked: &mut usize,
) -> Option<&'a Arc<str>> {
    if task_selector.is_empty() {
        return group.first();
    }
    group.iter().find(|id| {
        *looked += 1;
        nodes
            .get(&***id)
            .is_some_and(|node| selector_matches(task_selector, &node.slot.labels))
    })
}

/// The views, for updating: no lock needed through `&mut`.
fn views_mut(views: &mut RwLock<Vec<View>>) -> &mut Vec<View> {
    views.get_mut().unwrap_or_else(PoisonError::into_inner)
}

impl Fleet {
    /// Adds a node or updates its capacity and schedulability, keeping its
    /// reservations.
    pub fn upsert(&mut self, node_id: &str, capacity: Capacity, schedulable: bool) {
        self.upsert_labelled(node_id, capacity, BTreeMap::new(), schedulable);
    }

    /// [`Fleet::upsert`] with the node's labels.
    pub fn upsert_labelled(
        &mut self,
        node_id: &str,
        capacity: Capacity,
        labels: BTreeMap<String, String>,
        schedulable: bool,
    ) {
        // Moved into the node whichever way it goes.
        let mut labels = Some(labels);
        let known = self.update(node_id, |slot| {
            slot.capacity = capacity;
            slot.schedulable = schedulable;
            slot.labels = labels.take().unwrap_or_default();
        });
        if !known {
            self.add(
                node_id,
                NodeSlot {
                    capacity,
                    reserved_cpu: 0,
                    reserved_memory: 0,
                    reserved_slots: 0,
                    schedulable,
                    labels: labels.unwrap_or_default(),
                    held: false,
                },
            );
        }
    }

    /// Forgets a node (removed by an operator).
    pub fn remove(&mut self, node_id: &str) {
        if let Some(node) = self.nodes.remove(node_id) {
            for view in views_mut(&mut self.views) {
                view.remove(&node);
            }
        }
    }

    /// Stops or resumes new placements on a node.
    pub fn set_schedulable(&mut self, node_id: &str, schedulable: bool) {
        self.update(node_id, |slot| slot.schedulable = schedulable);
    }

    pub fn get(&self, node_id: &str) -> Option<&NodeSlot> {
        self.nodes.get(node_id).map(|node| &node.slot)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Holds `request` on `node_id`. A reservation on a node we have not heard
    /// of yet (rebuilt from Postgres before its first heartbeat) creates it,
    /// unschedulable and without capacity, until the node reports.
    pub fn reserve(&mut self, node_id: &str, request: &Resources) {
        let hold = |slot: &mut NodeSlot| {
            slot.reserved_cpu += u64::from(request.cpu_millis);
            slot.reserved_memory += u64::from(request.memory_mb);
            slot.reserved_slots += 1;
        };
        if !self.update(node_id, hold) {
            let mut slot = NodeSlot {
                capacity: Capacity::default(),
                reserved_cpu: 0,
                reserved_memory: 0,
                reserved_slots: 0,
                schedulable: false,
                labels: BTreeMap::new(),
                held: false,
            };
            hold(&mut slot);
            self.add(node_id, slot);
        }
    }

    /// Gives back what [`Fleet::reserve`] held.
    pub fn release(&mut self, node_id: &str, request: &Resources) {
        self.update(node_id, |slot| {
            slot.reserved_cpu = slot
                .reserved_cpu
                .saturating_sub(u64::from(request.cpu_millis));
            slot.reserved_memory = slot
                .reserved_memory
                .saturating_sub(u64::from(request.memory_mb));
            slot.reserved_slots = slot.reserved_slots.saturating_sub(1);
        });
    }

    /// Changes a known node, moving it in every view; false if the node is
    /// unknown.
    fn update(&mut self, node_id: &str, change: impl FnOnce(&mut NodeSlot)) -> bool {
        let Some(node) = self.nodes.get_mut(node_id) else {
            return false;
        };
        let views = views_mut(&mut self.views);
        for view in views.iter_mut() {
            view.remove(node);
        }
        change(&mut node.slot);
        for view in views.iter_mut() {
            view.insert(node);
        }
        true
    }

    /// Adds a node not known yet.
    fn add(&mut self, node_id: &str, slot: NodeSlot) {
        let id: Arc<str> = Arc::from(node_id);
        let node = Node {
            id: id.clone(),
            slot,
        };
        for view in views_mut(&mut self.views) {
            view.insert(&node);
        }
        self.nodes.insert(id, node);
    }

    /// Runs `query` on the view for `rules`, making it first if need be.
    fn with_view<R>(&self, rules: &Rules<'_>, query: impl FnOnce(&View) -> R) -> R {
        let factor = effective(rules.overcommit);
        {
            let views = read(&self.views);
            if let Some(view) = views.iter().find(|v| v.serves(factor, rules.pool_selector)) {
                return query(view);
            }
        }
        let mut views = self.views.write().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have made it between the two locks.
        if let Some(view) = views.iter().find(|v| v.serves(factor, rules.pool_selector)) {
            return query(view);
        }
        let mut view = View::new(factor, rules.pool_selector.clone());
        for node in self.nodes.values() {
            view.insert(node);
        }
        let answer = query(&view);
        if views.len() >= MAX_VIEWS {
            views.remove(0);
        }
        views.push(view);
        answer
    }

    /// Best fit with no selectors and no over-commit (the tests' shorthand).
    #[cfg(test)]
    pub fn best_fit(&self, request: &Resources) -> Option<Placed> {
        let none = BTreeMap::new();
        self.place(
            request,
            &Rules {
                pool_selector: &none,
                task_selector: &none,
                strategy: PlacementStrategy::BestFit,
                overcommit: 1.0,
            },
        )
    }

    /// Where `request` goes under `rules`, among the member nodes (both
    /// selectors admit them) that take work, have a free slot and have the
    /// cpu and memory free under the over-commit factor:
    ///
    /// - best fit takes the node with the least free cpu, then the least free
    ///   memory: the tightest cpu that also fits (small holes get filled,
    ///   large ones stay open for large tasks);
    /// - spread takes the node with the most free cpu, then the most free
    ///   memory;
    /// - ties go to the lowest node id, which keeps placement deterministic.
    ///
    /// "Free" is what is free before placing. The order weighs cpu first and
    /// memory only between nodes with the same free cpu: best fit is "the
    /// tightest cpu that also fits", so a node that would be left with less
    /// memory but more cpu loses. (Best fit used to take the node left with
    /// the least free space averaged over cpu and memory, each as a share of
    /// the node; that order depends on the request, and no index kept by
    /// free amounts can follow it.)
    ///
    /// # Cost
    /// One descent of the pool's index: O(log n), however many nodes have
    /// the cpu but not the memory. A task with its own node selector also
    /// passes over the nodes the selector rejects, O(log n) each; after
    /// [`PLACEMENT_WALK`] of them it looks at every node instead, O(n), and
    /// gets the same answer. (Pool selectors cost nothing: each has its own
    /// index.)
    pub fn place(&self, request: &Resources, rules: &Rules<'_>) -> Option<Placed> {
        let node_id = self.with_view(rules, |view| {
            view.find(&self.nodes, request, rules.strategy, rules.task_selector)
        })?;
        let slot = &self.nodes.get(&node_id)?.slot;
        let free_cpu = slot.free_cpu_with(rules.overcommit);
        // The score each strategy ranks members by, so the reason shows why
        // this node won.
        let score = match rules.strategy {
            PlacementStrategy::BestFit => format!(
                "best fit, score {}m cpu left after it (least wins)",
                free_cpu.saturating_sub(u64::from(request.cpu_millis))
            ),
            PlacementStrategy::Spread => format!("spread, score {free_cpu}m cpu free (most wins)"),
        };
        Some(Placed {
            node_id: node_id.to_string(),
            reason: format!(
                "{score}: {}m cpu and {} MiB free of {}m and {} MiB",
                free_cpu,
                slot.free_memory_with(rules.overcommit),
                slot.capacity.cpu_millis,
                slot.capacity.memory_mb
            ),
        })
    }

    /// Whether any member node has room for `request` now: true exactly when
    /// [`Fleet::place`] finds a node, at the same cost.
    pub fn any_fits_with(&self, request: &Resources, rules: &Rules<'_>) -> bool {
        self.with_view(rules, |view| {
            view.find(
                &self.nodes,
                request,
                PlacementStrategy::BestFit,
                rules.task_selector,
            )
            .is_some()
        })
    }

    /// What the schedulable member nodes of a pool hold together, under its
    /// over-commit factor: `(cpu_millis, memory_mb)`. Looks at every node:
    /// policies that weigh shares (DRF) need it when the fleet changes, not
    /// per decision.
    pub fn capacity_of(
        &self,
        pool_selector: &BTreeMap<String, String>,
        overcommit: f64,
    ) -> (u64, u64) {
        self.nodes
            .values()
            .map(|node| &node.slot)
            .filter(|slot| slot.schedulable && selector_matches(pool_selector, &slot.labels))
            .fold((0, 0), |(cpu, memory), slot| {
                (
                    cpu + scaled(slot.capacity.cpu_millis, overcommit),
                    memory + scaled(slot.capacity.memory_mb, overcommit),
                )
            })
    }

    /// Whether `request` could ever run on a member node, whatever is
    /// reserved now and whatever the nodes' health. Looks at every node: it
    /// runs at submission, not per decision.
    pub fn could_ever_fit(&self, request: &Resources, rules: &Rules<'_>) -> Verdict {
        let mut members = self
            .nodes
            .values()
            .map(|node| &node.slot)
            .filter(|slot| rules.admits(slot))
            .peekable();
        if members.peek().is_none() {
            return Verdict::NoMembers;
        }
        let mut largest = (0u64, 0u64);
        for slot in members {
            let cpu = scaled(slot.capacity.cpu_millis, rules.overcommit);
            let memory = scaled(slot.capacity.memory_mb, rules.overcommit);
            if u64::from(request.cpu_millis) <= cpu
                && u64::from(request.memory_mb) <= memory
                && slot.capacity.slots > 0
            {
                return Verdict::Fits;
            }
            largest = largest.max((cpu, memory));
        }
        Verdict::TooBig {
            cpu_millis: largest.0,
            memory_mb: largest.1,
        }
    }

    /// Why `request` does not fit now, for a waiting task's reason. Looks at
    /// every member node: it runs when a reason is written, not per decision.
    pub fn why_not(&self, request: &Resources, rules: &Rules<'_>, pool: &str) -> String {
        let members: Vec<&NodeSlot> = self
            .nodes
            .values()
            .map(|node| &node.slot)
            .filter(|s| rules.admits(s))
            .collect();
        if members.is_empty() {
            return format!("pool {pool}: no node carries the labels it asks for");
        }
        let usable: Vec<&&NodeSlot> = members.iter().filter(|s| s.schedulable).collect();
        if usable.is_empty() {
            return format!(
                "pool {pool}: none of its {} nodes takes work now (suspect, lost, draining or cordoned)",
                members.len()
            );
        }
        if usable.iter().all(|s| s.free_slots() == 0) {
            return format!("pool {pool}: every node runs as many tasks as it has slots");
        }
        let most_cpu = usable
            .iter()
            .map(|s| s.free_cpu_with(rules.overcommit))
            .max()
            .unwrap_or(0);
        let most_memory = usable
            .iter()
            .map(|s| s.free_memory_with(rules.overcommit))
            .max()
            .unwrap_or(0);
        format!(
            "pool {pool}: no node with {}m cpu and {} MiB free; the most free has {most_cpu}m cpu and {most_memory} MiB",
            request.cpu_millis, request.memory_mb
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn capacity(cpu: u32, memory: u32) -> Capacity {
        Capacity {
            cpu_millis: cpu,
            memory_mb: memory,
            slots: 1000,
        }
    }

    fn request(cpu: u32, memory: u32) -> Resources {
        Resources {
            cpu_millis: cpu,
            memory_mb: memory,
        }
    }

    #[test]
    fn best_fit_prefers_the_tightest_node() {
        let mut fleet = Fleet::default();
        fleet.upsert("big", capacity(8000, 8192), true);
        fleet.upsert("small", capacity(1000, 1024), true);
        let placed = fleet.best_fit(&request(500, 256));
        assert_eq!(placed.map(|p| p.node_id), Some("small".to_owned()));
    }

    fn labelled(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_strategy_and_overcommit_shape_placement() {
        let mut fleet = Fleet::default();
        fleet.upsert_labelled(
            "gpu-1",
            capacity(4000, 4096),
            labelled(&[("gpu", "yes")]),
            true,
        );
        fleet.upsert_labelled("cpu-1", capacity(2000, 2048), labelled(&[]), true);
        fleet.upsert_labelled("cpu-2", capacity(8000, 8192), labelled(&[]), true);
        let gpu = labelled(&[("gpu", "yes")]);
        let none = BTreeMap::new();
        let in_gpu = Rules {
            pool_selector: &gpu,
            task_selector: &none,
            strategy: PlacementStrategy::BestFit,
            overcommit: 1.0,
        };
        assert_eq!(
            fleet.place(&request(100, 10), &in_gpu).map(|p| p.node_id),
            Some("gpu-1".to_owned())
        );
        let spread = Rules {
            pool_selector: &none,
            task_selector: &none,
            strategy: PlacementStrategy::Spread,
            overcommit: 1.0,
        };
        assert_eq!(
            fleet.place(&request(100, 10), &spread).map(|p| p.node_id),
            Some("cpu-2".to_owned())
        );
        let packed = Rules {
            strategy: PlacementStrategy::BestFit,
            ..spread
        };
        assert_eq!(
            fleet.place(&request(100, 10), &packed).map(|p| p.node_id),
            Some("cpu-1".to_owned())
        );
        // 6000m fits nowhere in the gpu pool, unless over-committed twice.
        assert_eq!(
            fleet.could_ever_fit(&request(6000, 10), &in_gpu),
            Verdict::TooBig {
                cpu_millis: 4000,
                memory_mb: 4096
            }
        );
        let doubled = Rules {
            overcommit: 2.0,
            ..in_gpu
        };
        assert_eq!(
            fleet.could_ever_fit(&request(6000, 10), &doubled),
            Verdict::Fits
        );
        let nowhere = labelled(&[("tpu", "yes")]);
        let in_tpu = Rules {
            pool_selector: &nowhere,
            ..in_gpu
        };
        assert_eq!(
            fleet.could_ever_fit(&request(1, 1), &in_tpu),
            Verdict::NoMembers
        );
        assert!(
            fleet
                .why_not(&request(5000, 10), &in_gpu, "gpu")
                .contains("the most free has 4000m")
        );
    }

    #[test]
    fn unschedulable_and_full_nodes_get_nothing() {
        let mut fleet = Fleet::default();
        fleet.upsert("draining", capacity(8000, 8192), false);
        fleet.upsert("full", capacity(1000, 1024), true);
        fleet.reserve("full", &request(1000, 0));
        assert_eq!(fleet.best_fit(&request(1, 1)), None);
        fleet.release("full", &request(1000, 0));
        assert!(fleet.best_fit(&request(1, 1)).is_some());
    }

    /// What placement must answer, found by looking at every node: best fit
    /// the least (free cpu, free memory), spread the most, ties to the lowest
    /// id. Exact for fleets smaller than the walk.
    fn expected(fleet: &Fleet, request: &Resources, rules: &Rules<'_>) -> Option<String> {
        let oc = rules.overcommit;
        let fitting = fleet
            .nodes
            .iter()
            .map(|(id, node)| (id, &node.slot))
            .filter(|(_, slot)| rules.admits(slot) && slot.fits_with(request, oc));
        let key = |slot: &NodeSlot| (slot.free_cpu_with(oc), slot.free_memory_with(oc));
        let chosen = match rules.strategy {
            PlacementStrategy::BestFit => {
                fitting.min_by_key(|(id, slot)| (key(slot), id.to_string()))
            }
            PlacementStrategy::Spread => {
                fitting.min_by_key(|(id, slot)| (std::cmp::Reverse(key(slot)), id.to_string()))
            }
        };
        chosen.map(|(id, _)| id.to_string())
    }

    fn rules<'a>(
        pool: &'a BTreeMap<String, String>,
        task: &'a BTreeMap<String, String>,
        strategy: PlacementStrategy,
        overcommit: f64,
    ) -> Rules<'a> {
        Rules {
            pool_selector: pool,
            task_selector: task,
            strategy,
            overcommit,
        }
    }

    #[test]
    fn spread_takes_the_roomiest_node_and_ties_go_to_the_lowest_id() {
        let mut fleet = Fleet::default();
        for id in ["c", "a", "b", "d"] {
            fleet.upsert(id, capacity(4000, 4096), true);
        }
        fleet.upsert("small", capacity(1000, 1024), true);
        let none = BTreeMap::new();
        let spread = rules(&none, &none, PlacementStrategy::Spread, 1.0);
        let place = |fleet: &Fleet| fleet.place(&request(100, 100), &spread).map(|p| p.node_id);
        assert_eq!(place(&fleet).as_deref(), Some("a"));
        fleet.reserve("a", &request(100, 100));
        assert_eq!(place(&fleet).as_deref(), Some("b"));
        // Same free cpu, more free memory wins.
        fleet.reserve("b", &request(0, 100));
        fleet.reserve("c", &request(100, 0));
        assert_eq!(place(&fleet).as_deref(), Some("d"));
        fleet.reserve("d", &request(100, 100));
        assert_eq!(place(&fleet).as_deref(), Some("b"));
        assert_eq!(
            fleet
                .best_fit(&request(100, 100))
                .map(|p| p.node_id)
                .as_deref(),
            Some("small")
        );
    }

    #[test]
    fn memory_never_makes_placement_walk() {
        let mut fleet = Fleet::default();
        // Many nodes with cpu to spare but no memory, all tighter in cpu
        // than the only nodes with memory.
        for i in 0..(PLACEMENT_WALK as u32 + 50) {
            fleet.upsert(&format!("lean-{i:04}"), capacity(1000 + i, 16), true);
        }
        fleet.upsert("roomy", capacity(64_000, 65_536), true);
        fleet.upsert("fat", capacity(32_000, 32_768), true);
        let none = BTreeMap::new();
        let best = rules(&none, &none, PlacementStrategy::BestFit, 1.0);
        let spread = rules(&none, &none, PlacementStrategy::Spread, 1.0);
        let place = |rules: &Rules<'_>, cpu, memory| {
            fleet.place(&request(cpu, memory), rules).map(|p| p.node_id)
        };
        assert_eq!(place(&best, 500, 20_000).as_deref(), Some("fat"));
        assert_eq!(place(&spread, 500, 20_000).as_deref(), Some("roomy"));
        assert_eq!(place(&best, 500, 16).as_deref(), Some("lean-0000"));
        assert_eq!(place(&best, 1200, 16).as_deref(), Some("lean-0200"));
        assert_eq!(place(&spread, 500, 16).as_deref(), Some("roomy"));
        for rules in [&best, &spread] {
            assert!(fleet.any_fits_with(&request(500, 20_000), rules));
            assert!(!fleet.any_fits_with(&request(500, 65_537), rules));
            assert_eq!(place(rules, 500, 65_537), None);
            assert_eq!(place(rules, 64_001, 1), None);
        }
    }

    #[test]
    fn a_task_selector_few_nodes_match_is_still_served() {
        let mut fleet = Fleet::default();
        let ssd = labelled(&[("disk", "ssd")]);
        for i in 0..(PLACEMENT_WALK as u32 + 50) {
            fleet.upsert(&format!("plain-{i:04}"), capacity(1000 + i, 1024), true);
        }
        fleet.upsert_labelled("ssd-b", capacity(2000, 1024), ssd.clone(), true);
        fleet.upsert_labelled("ssd-a", capacity(3000, 1024), ssd.clone(), true);
        let none = BTreeMap::new();
        let best = rules(&none, &ssd, PlacementStrategy::BestFit, 1.0);
        let spread = rules(&none, &ssd, PlacementStrategy::Spread, 1.0);
        assert_eq!(
            fleet
                .place(&request(10, 10), &best)
                .map(|p| p.node_id)
                .as_deref(),
            Some("ssd-b")
        );
        assert_eq!(
            fleet
                .place(&request(10, 10), &spread)
                .map(|p| p.node_id)
                .as_deref(),
            Some("ssd-a")
        );
        assert!(!fleet.any_fits_with(&request(3001, 10), &best));
    }

    #[test]
    fn the_task_selector_is_honoured_within_the_index() {
        let mut fleet = Fleet::default();
        let ssd = labelled(&[("disk", "ssd")]);
        for i in 0..10 {
            let labels = if i == 7 { ssd.clone() } else { BTreeMap::new() };
            fleet.upsert_labelled(&format!("n{i}"), capacity(2000, 2048), labels, true);
        }
        let none = BTreeMap::new();
        for strategy in [PlacementStrategy::BestFit, PlacementStrategy::Spread] {
            let rules = rules(&none, &ssd, strategy, 1.0);
            assert_eq!(
                fleet
                    .place(&request(1, 1), &rules)
                    .map(|p| p.node_id)
                    .as_deref(),
                Some("n7")
            );
        }
        fleet.set_schedulable("n7", false);
        assert!(!fleet.any_fits_with(
            &request(1, 1),
            &rules(&none, &ssd, PlacementStrategy::BestFit, 1.0)
        ));
    }

    #[test]
    fn more_pools_than_views_still_get_right_answers() {
        let mut fleet = Fleet::default();
        for i in 0..20u32 {
            fleet.upsert(
                &format!("n{i:02}"),
                capacity(1000 + 100 * i, 1000 + 50 * i),
                true,
            );
        }
        let none = BTreeMap::new();
        for round in 0..3u32 {
            for k in 0..(MAX_VIEWS as u32 + 4) {
                let rules = rules(
                    &none,
                    &none,
                    PlacementStrategy::BestFit,
                    1.0 + f64::from(k) / 8.0,
                );
                let request = request(900 + 37 * k, 500 + 11 * round);
                let placed = fleet.place(&request, &rules).map(|p| p.node_id);
                assert_eq!(placed, expected(&fleet, &request, &rules));
                if let Some(node) = placed {
                    fleet.reserve(&node, &request);
                }
            }
        }
    }

    proptest! {
        /// Whatever the fleet, the rules and the stream of requests, placement
        /// never reserves more than a node offers (its capacity times the
        /// pool's over-commit factor), never uses a node outside the
        /// selectors, and refuses only when no member node has room.
        #[test]
        fn placement_never_exceeds_capacity(
            nodes in proptest::collection::vec((0u32..4000, 0u32..4096, 0u32..8, proptest::bool::ANY), 1..8),
            requests in proptest::collection::vec((0u32..2000, 0u32..2048), 0..200),
            spread in proptest::bool::ANY,
            overcommit in 1.0f64..3.0,
            selective in proptest::bool::ANY,
        ) {
            let mut fleet = Fleet::default();
            for (index, (cpu, memory, slots, gpu)) in nodes.iter().enumerate() {
                let labels = if *gpu { labelled(&[("gpu", "yes")]) } else { BTreeMap::new() };
                fleet.upsert_labelled(&format!("n{index}"), Capacity { cpu_millis: *cpu, memory_mb: *memory, slots: *slots }, labels, true);
            }
            let gpu = labelled(&[("gpu", "yes")]);
            let none = BTreeMap::new();
            let rules = Rules {
                pool_selector: if selective { &gpu } else { &none },
                task_selector: &none,
                strategy: if spread { PlacementStrategy::Spread } else { PlacementStrategy::BestFit },
                overcommit,
            };
            for (cpu, memory) in requests {
                let request = request(cpu, memory);
                let placed = fleet.place(&request, &rules);
                prop_assert_eq!(placed.as_ref().map(|p| p.node_id.clone()), expected(&fleet, &request, &rules));
                prop_assert_eq!(fleet.any_fits_with(&request, &rules), placed.is_some());
                if let Some(placed) = placed {
                    let index: usize = placed.node_id[1..].parse().unwrap_or(usize::MAX);
                    prop_assert!(!selective || nodes[index].3, "placed outside the selector");
                    fleet.reserve(&placed.node_id, &request);
                }
            }
            for index in 0..nodes.len() {
                let slot = fleet.get(&format!("n{index}")).cloned();
                prop_assert!(slot.is_some());
                if let Some(slot) = slot {
                    prop_assert!(slot.reserved_cpu <= scaled(slot.capacity.cpu_millis, overcommit));
                    prop_assert!(slot.reserved_memory <= scaled(slot.capacity.memory_mb, overcommit));
                    prop_assert!(slot.reserved_slots <= slot.capacity.slots);
                }
            }
        }

        /// Through any sequence of node changes, reservations and releases,
        /// under several pools at once (each its own index), placement and
        /// `any_fits_with` agree with a look at every node.
        #[test]
        fn the_indexes_follow_every_change(
            ops in proptest::collection::vec(fleet_op(), 0..300),
        ) {
            let gpu = labelled(&[("gpu", "yes")]);
            let none = BTreeMap::new();
            let pools = [
                rules(&none, &none, PlacementStrategy::BestFit, 1.0),
                rules(&none, &none, PlacementStrategy::Spread, 1.0),
                rules(&gpu, &none, PlacementStrategy::BestFit, 1.5),
                rules(&none, &gpu, PlacementStrategy::Spread, 2.0),
            ];
            let mut fleet = Fleet::default();
            let mut held: Vec<(String, Resources)> = Vec::new();
            for op in ops {
                match op {
                    FleetOp::Upsert { node, cpu, memory, slots, gpu, schedulable } => {
                        let labels = if gpu { labelled(&[("gpu", "yes")]) } else { BTreeMap::new() };
                        fleet.upsert_labelled(&format!("n{node}"), Capacity { cpu_millis: cpu, memory_mb: memory, slots }, labels, schedulable);
                    }
                    FleetOp::Remove(node) => fleet.remove(&format!("n{node}")),
                    FleetOp::Schedulable(node, on) => fleet.set_schedulable(&format!("n{node}"), on),
                    FleetOp::Release(k) => {
                        if !held.is_empty() {
                            let (node, request) = held.swap_remove(k % held.len());
                            fleet.release(&node, &request);
                        }
                    }
                    FleetOp::Place { cpu, memory, pool } => {
                        let rules = &pools[pool];
                        let request = request(cpu, memory);
                        let placed = fleet.place(&request, rules).map(|p| p.node_id);
                        prop_assert_eq!(&placed, &expected(&fleet, &request, rules));
                        prop_assert_eq!(fleet.any_fits_with(&request, rules), placed.is_some());
                        if let Some(node) = placed {
                            let slot = fleet.get(&node).cloned();
                            prop_assert!(slot.is_some_and(|s| s.fits_with(&request, rules.overcommit)));
                            fleet.reserve(&node, &request);
                            held.push((node, request));
                        }
                    }
                }
            }
        }
    }

    #[derive(Debug, Clone)]
    enum FleetOp {
        Upsert {
            node: u8,
            cpu: u32,
            memory: u32,
            slots: u32,
            gpu: bool,
            schedulable: bool,
        },
        Remove(u8),
        Schedulable(u8, bool),
        Release(usize),
        Place {
            cpu: u32,
            memory: u32,
            pool: usize,
        },
    }

    fn fleet_op() -> impl Strategy<Value = FleetOp> {
        prop_oneof![
            2 => (0u8..12, 0u32..4000, 0u32..4096, 0u32..6, any::<bool>(), proptest::bool::weighted(0.8))
                .prop_map(|(node, cpu, memory, slots, gpu, schedulable)| FleetOp::Upsert { node, cpu, memory, slots, gpu, schedulable }),
            1 => (0u8..12).prop_map(FleetOp::Remove),
            1 => (0u8..12, any::<bool>()).prop_map(|(node, on)| FleetOp::Schedulable(node, on)),
            3 => any::<usize>().prop_map(FleetOp::Release),
            6 => (0u32..2000, 0u32..2048, 0usize..4).prop_map(|(cpu, memory, pool)| FleetOp::Place { cpu, memory, pool }),
        ]
    }
}
