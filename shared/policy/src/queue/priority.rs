//! Strict priority classes over any inner policy.

use super::numbering::{Named, Numbering};
use super::{MAX_LOOKAHEAD, QueuePolicy, Waiting};
use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use taskyard_wire::Resources;
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
///
/// # Holdings
/// Policies that weigh what tenants hold (DRF) must see the same holdings at
/// every level, whichever level's pick, or which
/// [`QueuePolicy::allocated`] or [`QueuePolicy::released`], changed them. The
/// wrapper keeps the ledger: what each tenant holds, and when that last
/// changed. A level is brought up to date with the ledger right before it
/// is asked for a task, by one `allocated` or `released` per tenant whose
/// holdings changed since the level last was (its own picks it charges
/// itself). A level created later is told the whole ledger. So every pick
/// sees exact holdings, at the cost of the tenants that changed since that
/// level's last pick, not of every level on every change.
/// [`QueuePolicy::set_capacity`] goes to every level at once. For policies
/// that ignore the hooks all this is a few map updates per pick.
///
/// [`QueuePolicy::first`] lists each level's own order, highest level first,
/// as it stood at that level's last pick: for a policy that weighs holdings,
/// changes since then (and the charges of the picks the listing foresees in
/// higher levels) are not reflected. With a single level, it is exact after
/// every pick.
///
/// [`QueuePolicy::name`] is the inner policy's name: the classes are how
/// every pool's queue works, the inner policy is what the pool chose.
pub struct Priority<P> {
    /// Non-empty inner queues, highest priority first.
    levels: BTreeMap<Reverse<i32>, Level<P>>,
    /// Each task's level. Lookup only.
    level_of: HashMap<Uuid, i32>,
    /// Makes the inner queue of a new level.
    make: Box<dyn Fn() -> P + Send>,
    /// The inner policy's name.
    name: &'static str,
    /// Whether the inner policy weighs holdings; when not, the ledger stays
    /// empty and levels are told nothing.
    weighs: bool,
    ledger: Ledger,
    /// The last capacity set, if any.
    capacity: Option<(u64, u64)>,
}

/// One priority level: its queue, and what it has been told of holdings.
#[derive(Debug)]
struct Level<P> {
    queue: P,
    /// What the queue takes each tenant to hold, by the tenant's number in
    /// the ledger (missing: nothing).
    told: Vec<(u64, u64)>,
    /// The ledger epoch the queue is up to date with.
    synced: u64,
}

/// What each tenant holds, and which tenants changed when.
#[derive(Debug, Default)]
struct Ledger {
    /// Tenants by number. A tenant keeps its number while it holds
    /// something or some level has yet to learn of its last change.
    accounts: Numbering<Account>,
    /// Counts changes.
    epoch: u64,
    /// Tenant numbers under the epoch of their latest change, back to the
    /// oldest change some level has not seen.
    changed: BTreeMap<u64, u32>,
}

#[derive(Debug)]
struct Account {
    name: Arc<str>,
    /// `(cpu_millis, memory_mb)`.
    held: (u64, u64),
    /// Its key in `Ledger::changed`, if it is there.
    changed_at: Option<u64>,
}

impl Named for Account {
    fn name(&self) -> &Arc<str> {
        &self.name
    }
}

impl Ledger {
    fn account(&self, number: u32) -> Option<&Account> {
        self.accounts.get(number)
    }

    fn held_by(&self, tenant: &str) -> (u64, u64) {
        self.accounts
            .number(tenant)
            .and_then(|number| self.account(number))
            .map_or((0, 0), |account| account.held)
    }

    /// The tenants holding something, with their numbers.
    fn holdings(&self) -> impl Iterator<Item = (u32, &Account)> {
        self.accounts
            .iter()
            .filter(|(_, account)| account.held != (0, 0))
    }

    /// Changes what `tenant` holds and records the change; returns the
    /// tenant's number.
    fn change(&mut self, tenant: &str, change: impl FnOnce(&mut (u64, u64))) -> u32 {
        let number = match self.accounts.number(tenant) {
            Some(number) => number,
            None => self.accounts.insert(Account {
                name: Arc::from(tenant),
                held: (0, 0),
                changed_at: None,
            }),
        };
        let epoch = self.epoch + 1;
        let mut forget = false;
        if let Some(account) = self.accounts.get_mut(number) {
            let before = account.held;
            change(&mut account.held);
            if account.held != before {
                if let Some(old) = account.changed_at.replace(epoch) {
                    self.changed.remove(&old);
                }
                self.changed.insert(epoch, number);
                self.epoch = epoch;
            } else {
                // A tenant holding nothing that no level has to hear about
                // (one just made for a change that changed nothing).
                forget = account.held == (0, 0) && account.changed_at.is_none();
            }
        }
        if forget {
            self.accounts.remove(number);
        }
        number
    }

    /// Forgets changes up to epoch `seen`, which every level has seen, and
    /// the tenants left holding nothing.
    fn prune(&mut self, seen: u64) {
        while let Some(entry) = self.changed.first_entry() {
            if *entry.key() > seen {
                break;
            }
            let number = entry.remove();
            let Some(account) = self.accounts.get_mut(number) else {
                continue;
            };
            account.changed_at = None;
            if account.held == (0, 0) {
                self.accounts.remove(number);
            }
        }
    }
}

impl<P: QueuePolicy> Priority<P> {
    /// Priority classes whose levels are queues made by `make`.
    pub fn new(make: impl Fn() -> P + Send + 'static) -> Self {
        // One throwaway queue tells the inner policy's name and whether it
        // weighs holdings.
        let probe = make();
        Priority {
            levels: BTreeMap::new(),
            level_of: HashMap::new(),
            make: Box::new(make),
            name: probe.name(),
            weighs: probe.weighs_holdings(),
            ledger: Ledger::default(),
            capacity: None,
        }
    }

    /// What a tenant holds, as the wrapper's ledger has it:
    /// `(cpu_millis, memory_mb)`. The ledger is kept only when the inner
    /// policy [weighs holdings](QueuePolicy::weighs_holdings); otherwise this
    /// is always `(0, 0)`.
    pub fn held_by(&self, tenant: &str) -> (u64, u64) {
        self.ledger.held_by(tenant)
    }

    /// A new level, told the capacity and what every tenant holds.
    fn new_level(&self) -> Level<P> {
        let mut queue = (self.make)();
        if let Some((cpu, memory)) = self.capacity {
            queue.set_capacity(cpu, memory);
        }
        let mut told = Vec::new();
        for (number, account) in self.ledger.holdings() {
            tell(&mut queue, &account.name, (0, 0), account.held);
            tell_number(&mut told, number, account.held);
        }
        Level {
            queue,
            told,
            synced: self.ledger.epoch,
        }
    }

    /// Records a change to what `tenant` holds (if the inner policy cares).
    fn change(&mut self, tenant: &str, change: impl FnOnce(&mut (u64, u64))) -> Option<u32> {
        if !self.weighs {
            return None;
        }
        let number = self.ledger.change(tenant, change);
        Some(number)
    }

    /// Forgets the changes every level has seen.
    fn prune(&mut self) {
        if !self.weighs {
            return;
        }
        let seen = self
            .levels
            .values()
            .map(|level| level.synced)
            .min()
            .unwrap_or(self.ledger.epoch);
        self.ledger.prune(seen);
    }
}

/// Records in a level's `told` that tenant `number` holds `held`.
fn tell_number(told: &mut Vec<(u64, u64)>, number: u32, held: (u64, u64)) {
    let at = number as usize;
    if told.len() <= at {
        told.resize(at + 1, (0, 0));
    }
    told[at] = held;
}

/// Tells `queue` that `tenant`, which it took to hold `from`, holds `to`.
fn tell(queue: &mut impl QueuePolicy, tenant: &str, from: (u64, u64), to: (u64, u64)) {
    let up = (to.0.saturating_sub(from.0), to.1.saturating_sub(from.1));
    let down = (from.0.saturating_sub(to.0), from.1.saturating_sub(to.1));
    // Releases first: they never go below zero, as `from` is what the queue
    // holds for the tenant.
    for piece in in_pieces(down.0, down.1) {
        queue.released(tenant, &piece);
    }
    for piece in in_pieces(up.0, up.1) {
        queue.allocated(tenant, &piece);
    }
}

/// Brings a level up to date with the ledger.
fn sync<P: QueuePolicy>(level: &mut Level<P>, ledger: &Ledger) {
    if level.synced == ledger.epoch {
        return;
    }
    for (_, number) in ledger.changed.range(level.synced + 1..) {
        let Some(account) = ledger.account(*number) else {
            continue;
        };
        let from = level.told.get(*number as usize).copied().unwrap_or((0, 0));
        if from != account.held {
            tell(&mut level.queue, &account.name, from, account.held);
            tell_number(&mut level.told, *number, account.held);
        }
    }
    level.synced = ledger.epoch;
}

/// Holdings as [`Resources`], whose fields are `u32`: one piece unless a
/// total exceeds `u32::MAX`, in which case the pieces add up to it.
fn in_pieces(mut cpu: u64, mut memory: u64) -> impl Iterator<Item = Resources> {
    std::iter::from_fn(move || {
        if cpu == 0 && memory == 0 {
            return None;
        }
        let piece = Resources {
            cpu_millis: u32::try_from(cpu).unwrap_or(u32::MAX),
            memory_mb: u32::try_from(memory).unwrap_or(u32::MAX),
        };
        cpu -= u64::from(piece.cpu_millis);
        memory -= u64::from(piece.memory_mb);
        Some(piece)
    })
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
            .field("ledger", &self.ledger)
            .finish_non_exhaustive()
    }
}

impl<P: QueuePolicy> QueuePolicy for Priority<P> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn push(&mut self, task: Waiting) {
        self.remove(task.id);
        let level = task.request.priority;
        self.level_of.insert(task.id, level);
        if !self.levels.contains_key(&Reverse(level)) {
            let queue = self.new_level();
            self.levels.insert(Reverse(level), queue);
        }
        if let Some(queue) = self.levels.get_mut(&Reverse(level)) {
            queue.queue.push(task);
        }
    }

    fn remove(&mut self, id: Uuid) -> Option<Waiting> {
        let level = self.level_of.remove(&id)?;
        let queue = self.levels.get_mut(&Reverse(level))?;
        let task = queue.queue.remove(id);
        if queue.queue.is_empty() {
            self.levels.remove(&Reverse(level));
            self.prune();
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
            if self.weighs {
                sync(queue, &self.ledger);
            }
            if let Some(task) = queue.queue.pick(&mut budgeted) {
                served = Some((*level, task));
                break;
            }
            if looked.get() >= MAX_LOOKAHEAD {
                break;
            }
        }
        let Some((level, task)) = served else {
            self.prune();
            return None;
        };
        self.level_of.remove(&task.id);
        // The ledger learns of the pick; the serving level charged it
        // itself, so it stays up to date.
        let resources = task.request.resources;
        let number = self.change(&task.request.tenant, |(cpu, memory)| {
            *cpu = cpu.saturating_add(u64::from(resources.cpu_millis));
            *memory = memory.saturating_add(u64::from(resources.memory_mb));
        });
        if let Some(queue) = self.levels.get_mut(&level) {
            if queue.queue.is_empty() {
                self.levels.remove(&level);
            } else if let Some(number) = number {
                let held = self.ledger.account(number).map_or((0, 0), |a| a.held);
                tell_number(&mut queue.told, number, held);
                queue.synced = self.ledger.epoch;
            }
        }
        self.prune();
        Some(task)
    }

    fn first(&self, n: usize) -> Vec<&Waiting> {
        let mut out = Vec::with_capacity(n.min(self.len()));
        for queue in self.levels.values() {
            if out.len() >= n {
                break;
            }
            out.extend(queue.queue.first(n - out.len()));
        }
        out
    }

    fn allocated(&mut self, tenant: &str, resources: &Resources) {
        self.change(tenant, |(cpu, memory)| {
            *cpu = cpu.saturating_add(u64::from(resources.cpu_millis));
            *memory = memory.saturating_add(u64::from(resources.memory_mb));
        });
        self.prune();
    }

    fn released(&mut self, tenant: &str, resources: &Resources) {
        if self.ledger.accounts.number(tenant).is_none() {
            // Nothing held, nothing to give back.
            return;
        }
        self.change(tenant, |(cpu, memory)| {
            *cpu = cpu.saturating_sub(u64::from(resources.cpu_millis));
            *memory = memory.saturating_sub(u64::from(resources.memory_mb));
        });
        self.prune();
    }

    fn weighs_holdings(&self) -> bool {
        self.weighs
    }

    fn set_capacity(&mut self, cpu_millis: u64, memory_mb: u64) {
        self.capacity = Some((cpu_millis, memory_mb));
        for queue in self.levels.values_mut() {
            queue.queue.set_capacity(cpu_millis, memory_mb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Drf;
    use crate::queue::tests::waiting;

    fn resources(cpu: u32, memory: u32) -> Resources {
        Resources {
            cpu_millis: cpu,
            memory_mb: memory,
        }
    }

    #[test]
    fn tenants_that_come_and_go_leave_nothing_behind() {
        let mut queue = Priority::<Drf>::default();
        queue.push(waiting(1, 10));
        queue.push(waiting(2, 10));
        for i in 0..100 {
            let tenant = format!("passing-{i}");
            queue.allocated(&tenant, &resources(5, 5));
            queue.released(&tenant, &resources(5, 5));
            // A release of what was never held records nothing.
            queue.released(&format!("never-{i}"), &resources(1, 1));
            queue.allocated(&format!("nothing-{i}"), &resources(0, 0));
        }
        assert!(queue.pick(&mut |_| true).is_some());
        // Only the tenant of the picked task is left, holding it.
        assert_eq!(queue.ledger.accounts.len(), 1);
        assert_eq!(queue.held_by("t"), (10, 1));
        assert!(queue.ledger.changed.is_empty());
        queue.released("t", &resources(10, 1));
        queue.remove(Uuid::from_u128(3));
        assert!(queue.is_empty());
        assert_eq!(queue.ledger.accounts.len(), 0);
        assert!(queue.ledger.changed.is_empty());
    }

    #[test]
    fn policies_that_ignore_holdings_keep_no_ledger() {
        let mut queue = Priority::<crate::queue::Fcfs>::default();
        assert!(!queue.weighs_holdings());
        assert_eq!(queue.name(), "fcfs");
        queue.allocated("t", &resources(5, 5));
        queue.push(waiting(1, 10));
        assert!(queue.pick(&mut |_| true).is_some());
        assert_eq!(queue.held_by("t"), (0, 0));
        assert_eq!(queue.ledger.accounts.len(), 0);
    }

    #[test]
    fn holdings_beyond_u32_reach_a_new_level_whole() {
        let mut queue = Priority::<Drf>::default();
        for _ in 0..3 {
            queue.allocated("big", &resources(u32::MAX, u32::MAX));
        }
        queue.push(waiting(1, 1));
        let level = queue.levels.values().next().map(|level| &level.queue);
        let expected = 3 * u64::from(u32::MAX);
        assert_eq!(
            level.map(|drf| drf.held_by("big")),
            Some((expected, expected))
        );
    }
}
