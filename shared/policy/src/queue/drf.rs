//! Dominant Resource Fairness across tenants: the tenant holding the least of
//! the resource it uses most goes next.

use super::numbering::{Named, Numbering};
use super::wfq::DEFAULT_WEIGHT;
use super::{MAX_LOOKAHEAD, QueuePolicy, Waiting};
use std::collections::{BTreeMap, BTreeSet, HashMap, btree_map};
use std::sync::Arc;
use taskyard_wire::Resources;
use uuid::Uuid;

/// Shares are fixed point with this many fractional bits. A tenant holds at
/// most `u64::MAX` of a resource, so `held << 64` fits in a `u128` exactly;
/// two shares closer than 2⁻⁶⁴ compare equal and fall to the tenant name.
const FRACTION_BITS: u32 = 64;

/// Dominant Resource Fairness (Ghodsi et al., 2011) across tenants, FCFS
/// (lowest `seq`, then id) within each.
///
/// # Order
/// A tenant's dominant share is
///
/// ```text
/// max(cpu_held / cpu_total, memory_held / memory_total) / weight
/// ```
///
/// where `*_held` is what the tenant holds now (its picked tasks, plus
/// [`QueuePolicy::allocated`], minus [`QueuePolicy::released`]), `*_total` is
/// the pool's capacity from [`QueuePolicy::set_capacity`], and `weight` comes
/// from the map the constructor takes, as for [`super::Wfq`] (tenants it does
/// not name weigh [`DEFAULT_WEIGHT`]; 0 counts as 1).
///
/// A pick offers the head (oldest task) of each tenant with waiting work,
/// lowest dominant share first, ties to the lower tenant name, at most
/// [`MAX_LOOKAHEAD`] tenants; the first head that fits is served and its
/// resources are charged to its tenant at once. A tenant whose head does not
/// fit is skipped for that pick: its later tasks do not overtake its head.
/// A picked task that the caller does not place after all, and pushes back,
/// stays charged until the caller reports it [`QueuePolicy::released`].
///
/// Before any `set_capacity`, and for a capacity of 0, totals count as 1: the
/// shares are then the raw amounts held (millicores against MiB), which keeps
/// the order well defined until the scheduler reports the pool's size.
/// Shares are integers in fixed point (see the module's constant), so the
/// order is exact and deterministic.
///
/// # Cost
/// Tenants with waiting work stand in an index ordered by dominant share,
/// updated whenever a charge or a release changes a share, so a push, a
/// remove, a charge and a release each cost O(log tenants + log tasks of the
/// tenant), and a pick that much plus the bounded lookahead. Tenants are
/// numbered on arrival, so a pick finds them without hashing names. Only
/// [`QueuePolicy::set_capacity`] recomputes every tenant's share: O(tenants ×
/// log tenants), paid when the pool's nodes change, not per decision.
#[derive(Debug, Clone)]
pub struct Drf {
    /// Weights by tenant; others get [`DEFAULT_WEIGHT`].
    weights: BTreeMap<String, u32>,
    /// The pool's CPU in millicores (at least 1).
    cpu_total: u64,
    /// The pool's memory in MiB (at least 1).
    memory_total: u64,
    /// Every tenant that holds resources or has waiting work, by number.
    tenants: Numbering<Tenant>,
    /// Tenants with waiting work, by `(dominant share, name)`, with their
    /// number.
    order: BTreeSet<(u128, Arc<str>, u32)>,
    /// Where each task sits: its tenant's number and FCFS key. Lookup only.
    key_of: HashMap<Uuid, (u32, (i64, Uuid))>,
}

/// One tenant's holdings and waiting tasks.
#[derive(Debug, Clone)]
struct Tenant {
    name: Arc<str>,
    /// Its weight, as [`Drf::weight_of`] gives it (cached: a lookup by name on
    /// every charge would cost more than the charge).
    weight: u32,
    cpu_held: u64,
    memory_held: u64,
    /// Its dominant share now; its key in `Drf::order` while it has work.
    share: u128,
    /// Its waiting tasks, in FCFS order.
    queue: BTreeMap<(i64, Uuid), Waiting>,
}

impl Tenant {
    fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.cpu_held == 0 && self.memory_held == 0
    }
}

impl Named for Tenant {
    fn name(&self) -> &Arc<str> {
        &self.name
    }
}

impl Default for Drf {
    fn default() -> Self {
        Drf::new(BTreeMap::new())
    }
}

impl Drf {
    /// A queue with these per-tenant weights (tenants not named weigh
    /// [`DEFAULT_WEIGHT`]).
    pub fn new(weights: BTreeMap<String, u32>) -> Self {
        Drf {
            weights,
            cpu_total: 1,
            memory_total: 1,
            tenants: Numbering::default(),
            order: BTreeSet::new(),
            key_of: HashMap::new(),
        }
    }

    /// A tenant's weight, as this queue uses it (at least 1).
    pub fn weight_of(&self, tenant: &str) -> u32 {
        weight_in(&self.weights, tenant)
    }

    /// What a tenant holds now: `(cpu_millis, memory_mb)`.
    pub fn held_by(&self, tenant: &str) -> (u64, u64) {
        self.tenants
            .number(tenant)
            .and_then(|number| self.tenant(number))
            .map_or((0, 0), |t| (t.cpu_held, t.memory_held))
    }

    /// The pool's totals as this queue divides by: `(cpu_millis, memory_mb)`,
    /// each at least 1.
    pub fn capacity(&self) -> (u64, u64) {
        (self.cpu_total, self.memory_total)
    }

    /// A tenant's dominant share divided by its weight, in fixed point with
    /// 64 fractional bits (`1 << 64` is the whole pool).
    pub fn dominant_share(&self, tenant: &str) -> u128 {
        let (cpu, memory) = self.held_by(tenant);
        self.share_of(cpu, memory, self.weight_of(tenant))
    }

    fn share_of(&self, cpu_held: u64, memory_held: u64, weight: u32) -> u128 {
        dominant_share(
            (cpu_held, memory_held),
            (self.cpu_total, self.memory_total),
            weight,
        )
    }

    fn tenant(&self, number: u32) -> Option<&Tenant> {
        self.tenants.get(number)
    }

    fn tenant_mut(&mut self, number: u32) -> Option<&mut Tenant> {
        self.tenants.get_mut(number)
    }

    /// The tenant's number, giving it one (holding nothing, without work) if
    /// it has none.
    fn number(&mut self, name: &str) -> u32 {
        if let Some(number) = self.tenants.number(name) {
            return number;
        }
        let tenant = Tenant {
            name: Arc::from(name),
            weight: weight_in(&self.weights, name),
            cpu_held: 0,
            memory_held: 0,
            share: 0,
            queue: BTreeMap::new(),
        };
        self.tenants.insert(tenant)
    }

    /// Forgets a tenant that holds nothing and waits for nothing, so that
    /// tenants come and go without the queue growing.
    fn forget_if_idle(&mut self, number: u32) {
        if self.tenant(number).is_some_and(Tenant::is_idle) {
            self.tenants.remove(number);
        }
    }

    /// Changes what a tenant holds, keeping its share and its place in the
    /// order up to date, and forgetting a tenant left with nothing.
    fn adjust(&mut self, number: u32, change: impl FnOnce(&mut u64, &mut u64)) {
        let totals = (self.cpu_total, self.memory_total);
        let Some(tenant) = self.tenant_mut(number) else {
            return;
        };
        change(&mut tenant.cpu_held, &mut tenant.memory_held);
        let share = dominant_share((tenant.cpu_held, tenant.memory_held), totals, tenant.weight);
        let old = std::mem::replace(&mut tenant.share, share);
        if !tenant.queue.is_empty() && old != share {
            let name = tenant.name.clone();
            self.order.remove(&(old, name.clone(), number));
            self.order.insert((share, name, number));
        }
        self.forget_if_idle(number);
    }

    /// Takes a queued task out, keeping the order index in step.
    fn take(&mut self, id: Uuid) -> Option<Waiting> {
        let (number, key) = self.key_of.remove(&id)?;
        let tenant = self.tenant_mut(number)?;
        let task = tenant.queue.remove(&key)?;
        if tenant.queue.is_empty() {
            let entry = (tenant.share, tenant.name.clone(), number);
            self.order.remove(&entry);
            self.forget_if_idle(number);
        }
        Some(task)
    }
}

/// A tenant's weight in `weights` (at least 1), as WFQ reads the same map.
fn weight_in(weights: &BTreeMap<String, u32>, tenant: &str) -> u32 {
    weights
        .get(tenant)
        .copied()
        .unwrap_or(DEFAULT_WEIGHT)
        .max(1)
}

/// `max(cpu_held / cpu_total, memory_held / memory_total) / weight` in fixed
/// point. Totals must be at least 1.
fn dominant_share(held: (u64, u64), totals: (u64, u64), weight: u32) -> u128 {
    let weight = u128::from(weight.max(1));
    // u64 × u32 fits in a u128, and neither divisor is 0.
    let cpu = (u128::from(held.0) << FRACTION_BITS) / (u128::from(totals.0.max(1)) * weight);
    let memory = (u128::from(held.1) << FRACTION_BITS) / (u128::from(totals.1.max(1)) * weight);
    cpu.max(memory)
}

fn charge(cpu: &mut u64, memory: &mut u64, resources: &Resources) {
    *cpu = cpu.saturating_add(u64::from(resources.cpu_millis));
    *memory = memory.saturating_add(u64::from(resources.memory_mb));
}

impl QueuePolicy for Drf {
    fn name(&self) -> &'static str {
        "drf"
    }

    fn push(&mut self, task: Waiting) {
        self.take(task.id);
        let number = self.number(&task.request.tenant);
        let key = (task.request.seq, task.id);
        let Some(tenant) = self.tenant_mut(number) else {
            return;
        };
        let joins = tenant.queue.is_empty();
        tenant.queue.insert(key, task);
        if joins {
            let entry = (tenant.share, tenant.name.clone(), number);
            self.order.insert(entry);
        }
        self.key_of.insert(key.1, (number, key));
    }

    fn remove(&mut self, id: Uuid) -> Option<Waiting> {
        self.take(id)
    }

    fn contains(&self, id: Uuid) -> bool {
        self.key_of.contains_key(&id)
    }

    fn len(&self) -> usize {
        self.key_of.len()
    }

    fn pick(&mut self, fits: &mut dyn FnMut(&Waiting) -> bool) -> Option<Waiting> {
        let (number, id) = self
            .order
            .iter()
            .take(MAX_LOOKAHEAD)
            .filter_map(|(_, _, number)| {
                let head = self.tenant(*number)?.queue.values().next()?;
                Some((*number, head))
            })
            .find(|(_, head)| fits(head))
            .map(|(number, head)| (number, head.id))?;
        let task = self.take(id)?;
        let resources = task.request.resources;
        // `take` forgets a tenant it leaves idle (no work, holding nothing),
        // which a tenant about to be charged is not: if its number has gone,
        // number it again. (Nothing else can have taken the number since.)
        let number = match self.tenant(number) {
            Some(_) => number,
            None => self.number(&task.request.tenant),
        };
        self.adjust(number, |cpu, memory| charge(cpu, memory, &resources));
        Some(task)
    }

    fn first(&self, n: usize) -> Vec<&Waiting> {
        // Simulates picks that all fit: the lowest key goes, is charged and
        // comes back with its new key. Tenants not served yet keep their key
        // in `self.order`; those served so far sit in `served` under their
        // simulated key, so only the tenants actually listed cost anything.
        type Simulated<'a> = (u64, u64, btree_map::Values<'a, (i64, Uuid), Waiting>);
        let mut out = Vec::with_capacity(n.min(self.len()));
        let mut waiting = self
            .order
            .iter()
            .map(|(share, name, number)| (*share, &**name, *number));
        let mut next_waiting = waiting.next();
        let mut served: BTreeSet<(u128, &str, u32)> = BTreeSet::new();
        let mut simulated: HashMap<u32, Simulated<'_>> = HashMap::new();
        while out.len() < n {
            let number = match (next_waiting, served.first().copied()) {
                (None, None) => break,
                (Some(w), s) if s.is_none_or(|s| w < s) => {
                    next_waiting = waiting.next();
                    w.2
                }
                _ => match served.pop_first() {
                    Some((_, _, number)) => number,
                    None => break,
                },
            };
            let Some(tenant) = self.tenant(number) else {
                continue;
            };
            let (cpu, memory, tasks) = simulated
                .entry(number)
                .or_insert_with(|| (tenant.cpu_held, tenant.memory_held, tenant.queue.values()));
            let Some(task) = tasks.next() else {
                continue;
            };
            out.push(task);
            charge(cpu, memory, &task.request.resources);
            if tasks.len() > 0 {
                let share = self.share_of(*cpu, *memory, tenant.weight);
                served.insert((share, &tenant.name, number));
            }
        }
        out
    }

    fn allocated(&mut self, tenant: &str, resources: &Resources) {
        let number = self.number(tenant);
        self.adjust(number, |cpu, memory| charge(cpu, memory, resources));
    }

    fn released(&mut self, tenant: &str, resources: &Resources) {
        // A tenant that holds nothing has nothing to give back (and must not
        // get an entry).
        let Some(number) = self.tenants.number(tenant) else {
            return;
        };
        self.adjust(number, |cpu, memory| {
            *cpu = cpu.saturating_sub(u64::from(resources.cpu_millis));
            *memory = memory.saturating_sub(u64::from(resources.memory_mb));
        });
    }

    fn weighs_holdings(&self) -> bool {
        true
    }

    fn set_capacity(&mut self, cpu_millis: u64, memory_mb: u64) {
        let totals = (cpu_millis.max(1), memory_mb.max(1));
        if totals == (self.cpu_total, self.memory_total) {
            return;
        }
        (self.cpu_total, self.memory_total) = totals;
        // Every share changes: recompute them and rebuild the index.
        self.order.clear();
        for (number, tenant) in self.tenants.iter_mut() {
            tenant.share =
                dominant_share((tenant.cpu_held, tenant.memory_held), totals, tenant.weight);
            if !tenant.queue.is_empty() {
                self.order
                    .insert((tenant.share, tenant.name.clone(), number));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::tests::waiting;

    #[test]
    fn tenants_that_come_and_go_leave_nothing_behind() {
        let mut queue = Drf::default();
        for i in 0..100u32 {
            let tenant = format!("passing-{i}");
            let resources = Resources {
                cpu_millis: i,
                memory_mb: 1,
            };
            queue.allocated(&tenant, &resources);
            queue.released(&tenant, &resources);
            queue.released(&format!("never-{i}"), &resources);
        }
        queue.push(waiting(1, 10));
        let picked = queue.pick(&mut |_| true);
        assert!(picked.is_some());
        assert_eq!(queue.tenants.len(), 1, "only the picked task's tenant");
        assert_eq!(queue.held_by("t"), (10, 1));
        queue.released(
            "t",
            &Resources {
                cpu_millis: 10,
                memory_mb: 1,
            },
        );
        assert_eq!(queue.tenants.len(), 0);
        assert_eq!(queue.tenants.iter().count(), 0, "every tenant forgotten");
        assert!(queue.order.is_empty());
    }
}
