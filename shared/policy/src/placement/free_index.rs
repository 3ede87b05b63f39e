//! An ordered index of nodes by what they have free, for placement.
//!
//! A treap (a binary search tree kept balanced by heap-ordered priorities)
//! keyed by `(free cpu, free memory)`. Each key holds the ids of every node
//! with exactly that much free, and each subtree knows the most free memory
//! in it, which lets a query skip any subtree whose nodes all lack the memory
//! asked for. So "the node with the least free cpu of at least `c` that also
//! has `m` memory free" is one descent, O(log n) expected, however many nodes
//! have the cpu but not the memory. Priorities are a hash of the key, so the
//! tree's shape, and with it every cost, is a function of its contents.

use std::collections::BTreeSet;
use std::sync::Arc;

/// Node ids with the same free amounts, lowest id first.
pub(super) type Group = BTreeSet<Arc<str>>;

/// `(free cpu, free memory)`.
pub(super) type Free = (u64, u64);

/// No entry: the index of an empty subtree.
const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Entry {
    key: Free,
    ids: Group,
    /// Heap order: a parent's priority is at least its children's.
    priority: u64,
    left: u32,
    right: u32,
    /// The most free memory in this subtree.
    max_memory: u64,
}

/// Nodes by `(free cpu, free memory)`, then id. See the module doc.
#[derive(Debug, Clone)]
pub(super) struct FreeIndex {
    /// Entries, addressed by index; `vacant` lists the unused ones.
    entries: Vec<Entry>,
    vacant: Vec<u32>,
    root: u32,
}

impl Default for FreeIndex {
    fn default() -> Self {
        FreeIndex {
            entries: Vec::new(),
            vacant: Vec::new(),
            root: NIL,
        }
    }
}

/// The priority of a key: SplitMix64's finaliser over both amounts, so that
/// keys arriving in order still make a balanced tree.
fn priority_of(key: Free) -> u64 {
    let mut z = key
        .0
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(key.1.rotate_left(32));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl FreeIndex {
    /// Adds node `id` under `key`.
    pub(super) fn insert(&mut self, key: Free, id: Arc<str>) {
        self.root = self.insert_at(self.root, key, id);
    }

    /// Takes node `id` out from under `key` (where it was inserted).
    pub(super) fn remove(&mut self, key: Free, id: &str) {
        self.root = self.remove_at(self.root, key, id);
    }

    /// The least key of at least `low` whose free memory is at least
    /// `memory`, with its nodes.
    pub(super) fn first_from(&self, low: Free, memory: u64) -> Option<(Free, &Group)> {
        let at = self.first_from_at(self.root, low, memory)?;
        let entry = self.entry(at);
        Some((entry.key, &entry.ids))
    }

    /// The greatest key below `high` (anywhere, when `None`) whose free
    /// memory is at least `memory`, with its nodes.
    pub(super) fn last_below(&self, high: Option<Free>, memory: u64) -> Option<(Free, &Group)> {
        let at = self.last_below_at(self.root, high, memory)?;
        let entry = self.entry(at);
        Some((entry.key, &entry.ids))
    }

    fn entry(&self, at: u32) -> &Entry {
        &self.entries[at as usize]
    }

    fn entry_mut(&mut self, at: u32) -> &mut Entry {
        &mut self.entries[at as usize]
    }

    fn max_memory(&self, at: u32) -> u64 {
        if at == NIL {
            0
        } else {
            self.entry(at).max_memory
        }
    }

    /// Recomputes an entry's `max_memory` from its key and children.
    fn refresh(&mut self, at: u32) {
        let (left, right) = (self.entry(at).left, self.entry(at).right);
        let max = self
            .entry(at)
            .key
            .1
            .max(self.max_memory(left))
            .max(self.max_memory(right));
        self.entry_mut(at).max_memory = max;
    }

    fn allocate(&mut self, key: Free, id: Arc<str>) -> u32 {
        let entry = Entry {
            key,
            ids: BTreeSet::from([id]),
            priority: priority_of(key),
            left: NIL,
            right: NIL,
            max_memory: key.1,
        };
        match self.vacant.pop() {
            Some(at) => {
                *self.entry_mut(at) = entry;
                at
            }
            None => {
                self.entries.push(entry);
                // An index past u32::MAX - 1 would need four billion
                // distinct free amounts at once.
                (self.entries.len() - 1) as u32
            }
        }
    }

    fn rotate_right(&mut self, at: u32) -> u32 {
        let left = self.entry(at).left;
        self.entry_mut(at).left = self.entry(left).right;
        self.entry_mut(left).right = at;
        self.refresh(at);
        self.refresh(left);
        left
    }

    fn rotate_left(&mut self, at: u32) -> u32 {
        let right = self.entry(at).right;
        self.entry_mut(at).right = self.entry(right).left;
        self.entry_mut(right).left = at;
        self.refresh(at);
        self.refresh(right);
        right
    }

    fn insert_at(&mut self, at: u32, key: Free, id: Arc<str>) -> u32 {
        if at == NIL {
            return self.allocate(key, id);
        }
        let here = self.entry(at).key;
        if key == here {
            self.entry_mut(at).ids.insert(id);
            return at;
        }
        if key < here {
            let left = self.insert_at(self.entry(at).left, key, id);
            self.entry_mut(at).left = left;
            if self.entry(left).priority > self.entry(at).priority {
                return self.rotate_right(at);
            }
        } else {
            let right = self.insert_at(self.entry(at).right, key, id);
            self.entry_mut(at).right = right;
            if self.entry(right).priority > self.entry(at).priority {
                return self.rotate_left(at);
            }
        }
        self.refresh(at);
        at
    }

    fn remove_at(&mut self, at: u32, key: Free, id: &str) -> u32 {
        if at == NIL {
            return NIL;
        }
        let here = self.entry(at).key;
        if key < here {
            let left = self.remove_at(self.entry(at).left, key, id);
            self.entry_mut(at).left = left;
        } else if key > here {
            let right = self.remove_at(self.entry(at).right, key, id);
            self.entry_mut(at).right = right;
        } else {
            let entry = self.entry_mut(at);
            entry.ids.remove(id);
            if !entry.ids.is_empty() {
                return at;
            }
            let (left, right) = (entry.left, entry.right);
            entry.left = NIL;
            entry.right = NIL;
            self.vacant.push(at);
            return self.merge(left, right);
        }
        self.refresh(at);
        at
    }

    /// Joins two subtrees, every key of `low` below every key of `high`.
    fn merge(&mut self, low: u32, high: u32) -> u32 {
        if low == NIL {
            return high;
        }
        if high == NIL {
            return low;
        }
        if self.entry(low).priority > self.entry(high).priority {
            let right = self.merge(self.entry(low).right, high);
            self.entry_mut(low).right = right;
            self.refresh(low);
            low
        } else {
            let left = self.merge(low, self.entry(high).left);
            self.entry_mut(high).left = left;
            self.refresh(high);
            high
        }
    }

    fn first_from_at(&self, at: u32, low: Free, memory: u64) -> Option<u32> {
        if at == NIL || self.entry(at).max_memory < memory {
            return None;
        }
        let entry = self.entry(at);
        if entry.key < low {
            return self.first_from_at(entry.right, low, memory);
        }
        self.first_from_at(entry.left, low, memory)
            .or_else(|| (entry.key.1 >= memory).then_some(at))
            .or_else(|| self.first_from_at(entry.right, low, memory))
    }

    fn last_below_at(&self, at: u32, high: Option<Free>, memory: u64) -> Option<u32> {
        if at == NIL || self.entry(at).max_memory < memory {
            return None;
        }
        let entry = self.entry(at);
        if high.is_some_and(|high| entry.key >= high) {
            return self.last_below_at(entry.left, high, memory);
        }
        self.last_below_at(entry.right, high, memory)
            .or_else(|| (entry.key.1 >= memory).then_some(at))
            .or_else(|| self.last_below_at(entry.left, high, memory))
    }

    /// Every key with its nodes, in order (tests only).
    #[cfg(test)]
    fn all(&self) -> Vec<(Free, Vec<String>)> {
        fn walk(index: &FreeIndex, at: u32, out: &mut Vec<(Free, Vec<String>)>) {
            if at == NIL {
                return;
            }
            let entry = index.entry(at);
            walk(index, entry.left, out);
            out.push((
                entry.key,
                entry.ids.iter().map(|id| id.to_string()).collect(),
            ));
            walk(index, entry.right, out);
        }
        let mut out = Vec::new();
        walk(self, self.root, &mut out);
        out
    }

    /// Checks the tree's invariants (tests only).
    #[cfg(test)]
    fn check(&self, at: u32) -> (u64, usize) {
        if at == NIL {
            return (0, 0);
        }
        let entry = self.entry(at);
        assert!(!entry.ids.is_empty());
        let (left_max, left_depth) = self.check(entry.left);
        let (right_max, right_depth) = self.check(entry.right);
        for child in [entry.left, entry.right] {
            if child != NIL {
                assert!(self.entry(child).priority <= entry.priority);
            }
        }
        if entry.left != NIL {
            assert!(self.entry(entry.left).key < entry.key);
        }
        if entry.right != NIL {
            assert!(self.entry(entry.right).key > entry.key);
        }
        let max = entry.key.1.max(left_max).max(right_max);
        assert_eq!(entry.max_memory, max);
        (max, 1 + left_depth.max(right_depth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Against a plain map: the same contents, the same answers, and the
        /// invariants (search order, heap order, subtree maxima) hold.
        #[test]
        fn agrees_with_a_map(
            ops in proptest::collection::vec((any::<bool>(), 0u64..40, 0u64..40, 0u8..6), 0..400),
            queries in proptest::collection::vec((0u64..45, 0u64..45, 0u64..45), 1..20),
        ) {
            let mut index = FreeIndex::default();
            let mut model: BTreeMap<Free, BTreeSet<String>> = BTreeMap::new();
            for (insert, cpu, memory, id) in ops {
                let id = format!("n{id}");
                if insert {
                    index.insert((cpu, memory), Arc::from(id.as_str()));
                    model.entry((cpu, memory)).or_default().insert(id);
                } else {
                    index.remove((cpu, memory), &id);
                    if let Some(group) = model.get_mut(&(cpu, memory)) {
                        group.remove(&id);
                        if group.is_empty() {
                            model.remove(&(cpu, memory));
                        }
                    }
                }
                index.check(index.root);
            }
            let listed: Vec<(Free, Vec<String>)> = model
                .iter()
                .map(|(k, ids)| (*k, ids.iter().cloned().collect()))
                .collect();
            prop_assert_eq!(index.all(), listed);
            for (cpu, memory, high) in queries {
                let first = model
                    .range((cpu, 0)..)
                    .find(|(k, _)| k.1 >= memory)
                    .map(|(k, _)| *k);
                prop_assert_eq!(index.first_from((cpu, 0), memory).map(|(k, _)| k), first);
                let last = model
                    .range(..(high, 0))
                    .rev()
                    .find(|(k, _)| k.1 >= memory)
                    .map(|(k, _)| *k);
                prop_assert_eq!(index.last_below(Some((high, 0)), memory).map(|(k, _)| k), last);
                let last_anywhere = model.iter().rev().find(|(k, _)| k.1 >= memory).map(|(k, _)| *k);
                prop_assert_eq!(index.last_below(None, memory).map(|(k, _)| k), last_anywhere);
            }
        }
    }

    #[test]
    fn keys_in_order_still_make_a_shallow_tree() {
        let mut index = FreeIndex::default();
        for i in 0..10_000u64 {
            index.insert((i, i), Arc::from(format!("n{i}").as_str()));
        }
        let (_, depth) = index.check(index.root);
        assert!(depth < 60, "depth {depth}");
    }
}
