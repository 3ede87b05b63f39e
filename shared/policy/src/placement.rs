//! Nodes, their free resources, and where a task goes.

use std::collections::BTreeMap;
use taskyard_wire::Resources;
use taskyard_wire::heartbeat::Capacity;

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
    /// False while the node is suspect, lost or draining: it keeps its
    /// reservations but gets no new work.
    pub schedulable: bool,
}

impl NodeSlot {
    pub fn free_cpu(&self) -> u64 {
        u64::from(self.capacity.cpu_millis).saturating_sub(self.reserved_cpu)
    }

    pub fn free_memory(&self) -> u64 {
        u64::from(self.capacity.memory_mb).saturating_sub(self.reserved_memory)
    }

    pub fn free_slots(&self) -> u32 {
        self.capacity.slots.saturating_sub(self.reserved_slots)
    }

    /// Whether `request` fits in what is free now.
    pub fn fits(&self, request: &Resources) -> bool {
        self.schedulable
            && self.free_slots() > 0
            && u64::from(request.cpu_millis) <= self.free_cpu()
            && u64::from(request.memory_mb) <= self.free_memory()
    }

    /// Best fit's score: the share of the node left free after placing
    /// `request` (lower is a tighter fit), averaged over cpu and memory.
    fn leftover(&self, request: &Resources) -> f64 {
        let share = |free: u64, asked: u32, total: u32| {
            if total == 0 {
                0.0
            } else {
                (free.saturating_sub(u64::from(asked))) as f64 / f64::from(total)
            }
        };
        (share(
            self.free_cpu(),
            request.cpu_millis,
            self.capacity.cpu_millis,
        ) + share(
            self.free_memory(),
            request.memory_mb,
            self.capacity.memory_mb,
        )) / 2.0
    }
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
        let slot = self.nodes.entry(node_id.to_owned()).or_insert(NodeSlot {
            capacity,
            reserved_cpu: 0,
            reserved_memory: 0,
            reserved_slots: 0,
            schedulable,
        });
        slot.capacity = capacity;
        slot.schedulable = schedulable;
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

    /// Whether any schedulable node has room for `request` now.
    pub fn any_fits(&self, request: &Resources) -> bool {
        self.nodes.values().any(|slot| slot.fits(request))
    }

    /// Best fit: the schedulable node with room whose free space is left
    /// smallest, so large holes stay open for large tasks. Ties go to the
    /// lowest node id, which keeps placement deterministic.
    pub fn best_fit(&self, request: &Resources) -> Option<Placed> {
        let (node_id, slot) = self
            .nodes
            .iter()
            .filter(|(_, slot)| slot.fits(request))
            .min_by(|(_, a), (_, b)| a.leftover(request).total_cmp(&b.leftover(request)))?;
        Some(Placed {
            node_id: node_id.clone(),
            reason: format!(
                "best fit: {}m cpu and {} MiB free of {}m and {} MiB",
                slot.free_cpu(),
                slot.free_memory(),
                slot.capacity.cpu_millis,
                slot.capacity.memory_mb
            ),
        })
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
        /// Whatever the fleet and the stream of requests, placement never
        /// reserves more than a node has.
        #[test]
        fn placement_never_exceeds_capacity(
            nodes in proptest::collection::vec((0u32..4000, 0u32..4096, 0u32..8), 1..8),
            requests in proptest::collection::vec((0u32..2000, 0u32..2048), 0..200),
        ) {
            let mut fleet = Fleet::default();
            for (index, (cpu, memory, slots)) in nodes.iter().enumerate() {
                fleet.upsert(&format!("n{index}"), Capacity { cpu_millis: *cpu, memory_mb: *memory, slots: *slots }, true);
            }
            for (cpu, memory) in requests {
                let request = request(cpu, memory);
                if let Some(placed) = fleet.best_fit(&request) {
                    fleet.reserve(&placed.node_id, &request);
                } else {
                    prop_assert!(!fleet.any_fits(&request));
                }
            }
            for index in 0..nodes.len() {
                let slot = fleet.get(&format!("n{index}")).cloned();
                prop_assert!(slot.is_some());
                if let Some(slot) = slot {
                    prop_assert!(slot.reserved_cpu <= u64::from(slot.capacity.cpu_millis));
                    prop_assert!(slot.reserved_memory <= u64::from(slot.capacity.memory_mb));
                    prop_assert!(slot.reserved_slots <= slot.capacity.slots);
                }
            }
        }
    }
}
