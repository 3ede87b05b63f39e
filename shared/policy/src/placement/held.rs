//! Nodes held for a waiting task: which node to hold, and placing the task
//! there once enough of it is free. [`crate::turn`] decides when.
//!
//! A held node leaves every view, so ordinary placement passes it by; it
//! keeps its reservations, which drain as its tasks finish.

use super::{Fleet, Node, Placed, Rules, scaled};
use std::sync::Arc;
use taskyard_wire::Resources;

/// How many nodes, taken from the most free down, [`Fleet::node_to_hold`]
/// compares. Bounded, so that choosing costs O(log n) however large the
/// pool; the nodes with the most free are the likeliest to need least.
pub const HOLD_CANDIDATES: usize = 16;

/// What a held node still lacks for its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    pub cpu_millis: u64,
    pub memory_mb: u64,
    /// No slot is free.
    pub slot: bool,
}

impl Shortfall {
    pub fn is_none(&self) -> bool {
        self.cpu_millis == 0 && self.memory_mb == 0 && !self.slot
    }
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.cpu_millis > 0 {
            parts.push(format!("{}m cpu", self.cpu_millis));
        }
        if self.memory_mb > 0 {
            parts.push(format!("{} MiB", self.memory_mb));
        }
        if self.slot {
            parts.push("a task slot".to_owned());
        }
        if parts.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&parts.join(" and "))
        }
    }
}

impl Fleet {
    /// Holds a node for a waiting task, or lets it take work again.
    pub fn set_held(&mut self, node_id: &str, held: bool) {
        self.update(node_id, |slot| slot.held = held);
    }

    /// Whether `node_id` could ever take `request` under `rules`: it takes
    /// work, both selectors admit it and it is large enough when empty.
    pub fn could_take(&self, node_id: &str, request: &Resources, rules: &Rules<'_>) -> bool {
        self.nodes
            .get(node_id)
            .is_some_and(|node| large_enough(node, request, rules))
    }

    /// What `node_id` lacks now for `request` under `rules`, if it could
    /// ever take it.
    pub fn shortfall_on(
        &self,
        node_id: &str,
        request: &Resources,
        rules: &Rules<'_>,
    ) -> Option<Shortfall> {
        let node = self.nodes.get(node_id)?;
        large_enough(node, request, rules).then(|| shortfall(node, request, rules))
    }

    /// Places `request` on the held node `node_id` if it fits there now.
    pub fn place_held(
        &self,
        node_id: &str,
        request: &Resources,
        rules: &Rules<'_>,
    ) -> Option<Placed> {
        let node = self.nodes.get(node_id)?;
        if !large_enough(node, request, rules) || !shortfall(node, request, rules).is_none() {
            return None;
        }
        let slot = &node.slot;
        Some(Placed {
            node_id: node_id.to_owned(),
            reason: format!(
                "on the node held for it, now {}m cpu and {} MiB free of {}m and {} MiB",
                slot.free_cpu_with(rules.overcommit),
                slot.free_memory_with(rules.overcommit),
                slot.capacity.cpu_millis,
                slot.capacity.memory_mb
            ),
        })
    }

    /// The node to hold for `request`, which fits nowhere now: among the
    /// [`HOLD_CANDIDATES`] member nodes with the most free cpu that could
    /// ever take it, the one that must free the least of itself (the larger
    /// of its cpu and memory shortfalls as a share of the node; ties to the
    /// most free cpu, then the lowest id). Only when no member with a free
    /// slot could take it does it look at every node, O(n).
    pub fn node_to_hold(&self, request: &Resources, rules: &Rules<'_>) -> Option<String> {
        let from_view = self.with_view(rules, |view| {
            let mut best: Option<(f64, Arc<str>)> = None;
            let mut looked = 0;
            let mut high = None;
            while looked < HOLD_CANDIDATES {
                let Some((free, group)) = view.by_free.last_below(high, 0) else {
                    break;
                };
                for id in group.iter() {
                    let Some(node) = self.nodes.get(&**id) else {
                        continue;
                    };
                    looked += 1;
                    consider(&mut best, node, request, rules);
                }
                high = Some(free);
            }
            best
        });
        let best = from_view.or_else(|| {
            let mut best = None;
            for node in self.nodes.values() {
                consider(&mut best, node, request, rules);
            }
            best
        });
        best.map(|(_, id)| id.to_string())
    }
}

/// Keeps `node` as the best so far if it could take `request` and must free
/// less of itself than the best so far.
fn consider(
    best: &mut Option<(f64, Arc<str>)>,
    node: &Node,
    request: &Resources,
    rules: &Rules<'_>,
) {
    if !large_enough(node, request, rules) {
        return;
    }
    let short = shortfall(node, request, rules);
    let share = |short: u64, of: u32| short as f64 / scaled(of, rules.overcommit).max(1) as f64;
    let need = share(short.cpu_millis, node.slot.capacity.cpu_millis)
        .max(share(short.memory_mb, node.slot.capacity.memory_mb))
        + if short.slot { 1.0 } else { 0.0 };
    if best.as_ref().is_none_or(|(least, _)| need < *least) {
        *best = Some((need, node.id.clone()));
    }
}

fn large_enough(node: &Node, request: &Resources, rules: &Rules<'_>) -> bool {
    let slot = &node.slot;
    slot.schedulable
        && rules.admits(slot)
        && slot.capacity.slots > 0
        && u64::from(request.cpu_millis) <= scaled(slot.capacity.cpu_millis, rules.overcommit)
        && u64::from(request.memory_mb) <= scaled(slot.capacity.memory_mb, rules.overcommit)
}

fn shortfall(node: &Node, request: &Resources, rules: &Rules<'_>) -> Shortfall {
    let slot = &node.slot;
    Shortfall {
        cpu_millis: u64::from(request.cpu_millis)
            .saturating_sub(slot.free_cpu_with(rules.overcommit)),
        memory_mb: u64::from(request.memory_mb)
            .saturating_sub(slot.free_memory_with(rules.overcommit)),
        slot: slot.free_slots() == 0,
    }
}
