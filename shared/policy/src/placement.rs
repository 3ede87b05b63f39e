//! Nodes, their free resources, and where a task goes.

use std::collections::BTreeMap;
use taskyard_wire::Resources;
use taskyard_wire::heartbeat::Capacity;
use taskyard_wire::pool::{PlacementStrategy, selector_matches};

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

    /// The share of the node left free after placing `request`, averaged
    /// over cpu and memory: best fit takes the lowest, spread the highest.
    fn leftover(&self, request: &Resources, overcommit: f64) -> f64 {
        let share = |free: u64, asked: u32, total: u64| {
            if total == 0 {
                0.0
            } else {
                (free.saturating_sub(u64::from(asked))) as f64 / total as f64
            }
        };
        (share(
            self.free_cpu_with(overcommit),
            request.cpu_millis,
            scaled(self.capacity.cpu_millis, overcommit),
        ) + share(
            self.free_memory_with(overcommit),
            request.memory_mb,
            scaled(self.capacity.memory_mb, overcommit),
        )) / 2.0
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

/// Every node the scheduler knows, by id.
#[derive(Debug, Default, Clone)]
pub struct Fleet {
    nodes: BTreeMap<String, NodeSlot>,
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
        let slot = self.nodes.entry(node_id.to_owned()).or_insert(NodeSlot {
            capacity,
            reserved_cpu: 0,
            reserved_memory: 0,
            reserved_slots: 0,
            schedulable,
            labels: BTreeMap::new(),
        });
        slot.capacity = capacity;
        slot.schedulable = schedulable;
        slot.labels = labels;
    }

    /// Forgets a node (removed by an operator).
    pub fn remove(&mut self, node_id: &str) {
        self.nodes.remove(node_id);
    }

    /// Stops or resumes new placements on a node.
    pub fn set_schedulable(&mut self, node_id: &str, schedulable: bool) {
        if let Some(slot) = self.nodes.get_mut(node_id) {
            slot.schedulable = schedulable;
        }
    }

    pub fn get(&self, node_id: &str) -> Option<&NodeSlot> {
        self.nodes.get(node_id)
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
        let slot = self.nodes.entry(node_id.to_owned()).or_insert(NodeSlot {
            capacity: Capacity::default(),
            reserved_cpu: 0,
            reserved_memory: 0,
            reserved_slots: 0,
            schedulable: false,
            labels: BTreeMap::new(),
        });
        slot.reserved_cpu += u64::from(request.cpu_millis);
        slot.reserved_memory += u64::from(request.memory_mb);
        slot.reserved_slots += 1;
    }

    /// Gives back what [`Fleet::reserve`] held.
    pub fn release(&mut self, node_id: &str, request: &Resources) {
        if let Some(slot) = self.nodes.get_mut(node_id) {
            slot.reserved_cpu = slot
                .reserved_cpu
                .saturating_sub(u64::from(request.cpu_millis));
            slot.reserved_memory = slot
                .reserved_memory
                .saturating_sub(u64::from(request.memory_mb));
            slot.reserved_slots = slot.reserved_slots.saturating_sub(1);
        }
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

    /// Where `request` goes under `rules`: among member nodes with room, best
    /// fit takes the one left with the least free space (large holes stay
    /// open for large tasks), spread the one left with the most. Ties go to
    /// the lowest node id, which keeps placement deterministic.
    pub fn place(&self, request: &Resources, rules: &Rules<'_>) -> Option<Placed> {
        let fitting = self
            .nodes
            .iter()
            .filter(|(_, slot)| rules.admits(slot) && slot.fits_with(request, rules.overcommit));
        let score = |slot: &NodeSlot| slot.leftover(request, rules.overcommit);
        let (node_id, slot) = match rules.strategy {
            PlacementStrategy::BestFit => {
                fitting.min_by(|(_, a), (_, b)| score(a).total_cmp(&score(b)))?
            }
            PlacementStrategy::Spread => fitting
                .rev()
                .max_by(|(_, a), (_, b)| score(a).total_cmp(&score(b)))?,
        };
        Some(Placed {
            node_id: node_id.clone(),
            reason: format!(
                "{}: {}m cpu and {} MiB free of {}m and {} MiB",
                rules.strategy.as_str().replace('_', " "),
                slot.free_cpu_with(rules.overcommit),
                slot.free_memory_with(rules.overcommit),
                slot.capacity.cpu_millis,
                slot.capacity.memory_mb
            ),
        })
    }

    /// Whether any member node has room for `request` now.
    pub fn any_fits_with(&self, request: &Resources, rules: &Rules<'_>) -> bool {
        self.nodes
            .values()
            .any(|slot| rules.admits(slot) && slot.fits_with(request, rules.overcommit))
    }

    /// Whether `request` could ever run on a member node, whatever is
    /// reserved now and whatever the nodes' health.
    pub fn could_ever_fit(&self, request: &Resources, rules: &Rules<'_>) -> Verdict {
        let mut members = self
            .nodes
            .values()
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

    /// Why `request` does not fit now, for a waiting task's reason.
    pub fn why_not(&self, request: &Resources, rules: &Rules<'_>, pool: &str) -> String {
        let members: Vec<&NodeSlot> = self.nodes.values().filter(|s| rules.admits(s)).collect();
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
                if let Some(placed) = fleet.place(&request, &rules) {
                    let index: usize = placed.node_id[1..].parse().unwrap_or(usize::MAX);
                    prop_assert!(!selective || nodes[index].3, "placed outside the selector");
                    fleet.reserve(&placed.node_id, &request);
                } else {
                    prop_assert!(!fleet.any_fits_with(&request, &rules));
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
    }
}
