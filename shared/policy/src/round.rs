//! The planning round across pools: the [`Planner`] holds every pool's
//! definition, queue, quota usage and held node, and the fleet they share,
//! and decides placements pool by pool ([`Planner::plan_round`]).
//!
//! The scheduler service drives a planner from events and records what it
//! decides; the simulator drives one in virtual time; the decision bench
//! times it. All three run this round, so what the simulator and the bench
//! measure is what the scheduler does.
//!
//! # One round
//! Pools with tasks waiting take turns in name order, one placement per
//! turn ([`take_turn`]), until `max` placements are decided or no pool can
//! place more. A pool drops out of the round when its turn places nothing:
//! it is at its `max_running` (and then holds no node, since room would not
//! help its head), or nothing it may run fits. Taking turns, rather than
//! draining one pool before the next, keeps one busy pool from filling
//! shared nodes before the others are served. Within a turn a task passes
//! only if the pool's [`Quotas`] admit it, and what the turn places counts
//! against them at once, for the pool's later turns in the same round.

use crate::placement::{Fleet, Placed};
use crate::queue::{QueuePolicy, Waiting};
use crate::quota::{Quotas, Refusal, Usage};
use crate::turn::{HeadHold, PoolRules, Turn, Unplaceable, release_hold, take_turn};
use std::collections::BTreeMap;
use taskyard_wire::Resources;
use taskyard_wire::pool::{PlacementStrategy, PoolSpec};
use uuid::Uuid;

/// What the round needs of a pool's definition: where its tasks may go and
/// its quotas. (Its policy and weights shape its queue, which the caller
/// builds.)
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Labels a node must carry to be a member; empty means every node.
    pub node_selector: BTreeMap<String, String>,
    pub strategy: PlacementStrategy,
    /// Nodes count as this many times their CPU and memory.
    pub overcommit: f64,
    pub quotas: Quotas,
}

impl Default for Pool {
    /// Every node, best fit, no over-commit, no quotas.
    fn default() -> Self {
        Pool {
            node_selector: BTreeMap::new(),
            strategy: PlacementStrategy::BestFit,
            overcommit: 1.0,
            quotas: Quotas::default(),
        }
    }
}

impl Pool {
    /// What the round uses of a pool definition.
    pub fn of(spec: &PoolSpec) -> Pool {
        Pool {
            node_selector: spec.node_selector.clone(),
            strategy: spec.placement,
            overcommit: spec.overcommit,
            quotas: Quotas::of(spec),
        }
    }

    /// Its placement rules, for [`take_turn`].
    pub fn rules(&self) -> PoolRules<'_> {
        PoolRules {
            node_selector: &self.node_selector,
            strategy: self.strategy,
            overcommit: self.overcommit,
        }
    }
}

/// One placement the round decided: the task, its pool, the policy that
/// picked it, and the node with placement's reason (the node's score). The
/// scheduler words the whole story for people; the round does not spend a
/// string on it per decision.
#[derive(Debug, Clone)]
pub struct Decision {
    pub pool: String,
    /// The name of the pool's queue policy ([`QueuePolicy::name`]).
    pub policy: &'static str,
    pub task: Waiting,
    pub placed: Placed,
}

/// What one round decided.
#[derive(Debug, Default)]
pub struct Round {
    /// In the order decided; their resources are reserved on the fleet and
    /// counted against their pools' quotas.
    pub decisions: Vec<Decision>,
    /// Pools whose policy served a task its fits check refused (a bug in the
    /// policy or the fleet's index): the task is back in its queue and the
    /// pool placed nothing more this round.
    pub unplaceable: Vec<(String, Unplaceable)>,
}

/// Every pool's queue, quotas in use and held node, over the fleet they
/// share. Pure: no I/O, no clock; the same calls give the same decisions.
///
/// A queue may exist for a pool that is not defined (tasks submitted to a
/// pool deleted since): its tasks wait, and the round passes it over.
#[derive(Debug)]
pub struct Planner {
    fleet: Fleet,
    pools: BTreeMap<String, Pool>,
    queues: BTreeMap<String, Box<dyn QueuePolicy>>,
    usage: BTreeMap<String, Usage>,
    /// Per pool, the node held for a task that fits nowhere now (see
    /// [`crate::turn`]). A pool's slot stays once made, so that a turn does
    /// not allocate its key again.
    holds: BTreeMap<String, Option<HeadHold>>,
    /// Placements decided so far, and the count as each pool last saw it at
    /// the end of its turn: more since then were other pools' (which may
    /// have taken room its head waits for).
    placements: u64,
    placements_seen: BTreeMap<String, u64>,
    /// Nodes or pools changed since the queues were last told their pools'
    /// capacity.
    capacity_stale: bool,
}

impl Default for Planner {
    fn default() -> Self {
        Planner::with_fleet(Fleet::default())
    }
}

impl Planner {
    /// A planner over `fleet`, with no pools yet.
    pub fn with_fleet(fleet: Fleet) -> Planner {
        Planner {
            fleet,
            pools: BTreeMap::new(),
            queues: BTreeMap::new(),
            usage: BTreeMap::new(),
            holds: BTreeMap::new(),
            placements: 0,
            placements_seen: BTreeMap::new(),
            capacity_stale: true,
        }
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// The fleet, to add, change or remove nodes. Queues are told their
    /// pools' new capacity at the next round.
    pub fn nodes(&mut self) -> &mut Fleet {
        self.capacity_stale = true;
        &mut self.fleet
    }

    /// Defines or redefines a pool; its tasks are placed under the new rules
    /// and quotas from the next round on.
    pub fn set_pool(&mut self, name: &str, pool: Pool) {
        self.capacity_stale = true;
        self.pools.insert(name.to_owned(), pool);
    }

    /// Forgets a pool's definition: its queued tasks wait, placed nowhere,
    /// until it is defined again.
    pub fn remove_pool(&mut self, name: &str) -> Option<Pool> {
        self.pools.remove(name)
    }

    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.get(name)
    }

    /// The CPU and memory of a defined pool's member nodes, over-commit
    /// included: what a new queue of the pool is to be told.
    pub fn capacity(&self, name: &str) -> Option<(u64, u64)> {
        let pool = self.pools.get(name)?;
        Some(self.fleet.capacity_of(&pool.node_selector, pool.overcommit))
    }

    pub fn queue(&self, pool: &str) -> Option<&dyn QueuePolicy> {
        self.queues.get(pool).map(|queue| &**queue)
    }

    /// Every queue, in pool name order.
    pub fn queues(&self) -> impl Iterator<Item = (&str, &dyn QueuePolicy)> {
        self.queues
            .iter()
            .map(|(pool, queue)| (pool.as_str(), &**queue))
    }

    pub fn queue_mut(&mut self, pool: &str) -> Option<&mut (dyn QueuePolicy + 'static)> {
        self.queues.get_mut(pool).map(|queue| &mut **queue)
    }

    /// Tasks waiting in every queue.
    pub fn queued(&self) -> usize {
        self.queues.values().map(|queue| queue.len()).sum()
    }

    /// Sets a pool's queue, returning the one it replaces.
    pub fn insert_queue(
        &mut self,
        pool: &str,
        queue: Box<dyn QueuePolicy>,
    ) -> Option<Box<dyn QueuePolicy>> {
        self.queues.insert(pool.to_owned(), queue)
    }

    /// Takes a pool's queue out (to rebuild it under a new policy).
    pub fn take_queue(&mut self, pool: &str) -> Option<Box<dyn QueuePolicy>> {
        self.queues.remove(pool)
    }

    /// Queues `task` in `pool`, first making the pool's queue with
    /// `new_queue` if it has none.
    pub fn enqueue(
        &mut self,
        pool: &str,
        task: Waiting,
        new_queue: impl FnOnce(&Planner) -> Box<dyn QueuePolicy>,
    ) {
        if !self.queues.contains_key(pool) {
            let queue = new_queue(self);
            self.queues.insert(pool.to_owned(), queue);
        }
        if let Some(queue) = self.queues.get_mut(pool) {
            queue.push(task);
        }
    }

    /// Takes a task out of its pool's queue (cancelled, ended, or moved).
    pub fn remove_task(&mut self, pool: &str, id: Uuid) -> Option<Waiting> {
        self.queues.get_mut(pool)?.remove(id)
    }

    /// Holds a placement decided elsewhere (found in Postgres at start):
    /// reserves it on `node_id` and counts it against `pool`'s quotas.
    pub fn reserve(&mut self, pool: &str, tenant: &str, node_id: &str, resources: &Resources) {
        self.fleet.reserve(node_id, resources);
        self.usage
            .entry(pool.to_owned())
            .or_default()
            .add(tenant, resources);
    }

    /// Gives back what a placed task held, on its node, against its pool's
    /// quotas, and in its queue's count of what its tenant holds.
    pub fn release(&mut self, pool: &str, tenant: &str, node_id: &str, resources: &Resources) {
        self.fleet.release(node_id, resources);
        if let Some(usage) = self.usage.get_mut(pool) {
            usage.remove(tenant, resources);
        }
        if let Some(queue) = self.queues.get_mut(pool) {
            queue.released(tenant, resources);
        }
    }

    /// What a pool's placed tasks hold now.
    pub fn usage(&self, pool: &str) -> Option<&Usage> {
        self.usage.get(pool)
    }

    /// Every pool's usage, in pool name order.
    pub fn usages(&self) -> impl Iterator<Item = (&str, &Usage)> {
        self.usage
            .iter()
            .map(|(pool, usage)| (pool.as_str(), usage))
    }

    /// Why `pool`'s quotas hold `task` back now, if they do. A pool that is
    /// not defined refuses nothing here: it places nothing at all.
    pub fn refuses(&self, pool: &str, task: &Waiting) -> Option<Refusal> {
        let quotas = &self.pools.get(pool)?.quotas;
        let empty = Usage::default();
        self.usage.get(pool).unwrap_or(&empty).refuses(
            quotas,
            &task.request.tenant,
            &task.request.resources,
        )
    }

    /// The node held for a task of `pool`, if any.
    pub fn hold(&self, pool: &str) -> Option<&HeadHold> {
        self.holds.get(pool).and_then(Option::as_ref)
    }

    /// Every pool's held node, in pool name order.
    pub fn holds(&self) -> impl Iterator<Item = (&str, &HeadHold)> {
        self.holds
            .iter()
            .filter_map(|(pool, hold)| Some((pool.as_str(), hold.as_ref()?)))
    }

    /// Decides up to `max` placements, taking turns across pools, and holds
    /// their resources (see the module doc). A pool at its quota, or one
    /// that is not defined, places nothing.
    pub fn plan_round(&mut self, max: usize) -> Round {
        self.refresh_capacity();
        self.forget_stale_holds();
        let mut round = Round::default();
        // The queues are out of the planner for the round, so that each
        // turn borrows its pool's name and queue without copying the name.
        let mut queues = std::mem::take(&mut self.queues);
        let mut turns: Vec<(&str, &mut Box<dyn QueuePolicy>)> = queues
            .iter_mut()
            .filter(|(pool, queue)| !queue.is_empty() && self.pools.contains_key(*pool))
            .map(|(pool, queue)| (pool.as_str(), queue))
            .collect();
        while round.decisions.len() < max && !turns.is_empty() {
            turns.retain_mut(|(pool, queue)| {
                round.decisions.len() >= max || self.turn(pool, queue.as_mut(), &mut round)
            });
        }
        drop(turns);
        self.queues = queues;
        round
    }

    /// One pool's turn. Whether it placed a task, and so stays in the round.
    fn turn(&mut self, pool: &str, queue: &mut dyn QueuePolicy, round: &mut Round) -> bool {
        let Some(spec) = self.pools.get(pool) else {
            return false;
        };
        let empty = Usage::default();
        let usage = self.usage.get(pool).unwrap_or(&empty);
        if !self.holds.contains_key(pool) {
            self.holds.insert(pool.to_owned(), None);
        }
        let Some(hold) = self.holds.get_mut(pool) else {
            return false;
        };
        if usage.pool_full(&spec.quotas).is_some() {
            // Its head could not go even on a free node: hold nothing.
            release_hold(&mut self.fleet, hold);
            return false;
        }
        let placed_elsewhere = self
            .placements_seen
            .get(pool)
            .is_some_and(|seen| self.placements > *seen);
        // Most pools set no quota: then a task the policy offers is not
        // asked about any (a policy may offer dozens per decision).
        let unlimited = spec.quotas.is_unlimited();
        let turn = take_turn(
            queue,
            &mut self.fleet,
            hold,
            spec.rules(),
            &mut |task| {
                unlimited
                    || usage
                        .refuses(&spec.quotas, &task.request.tenant, &task.request.resources)
                        .is_none()
            },
            placed_elsewhere,
        );
        if matches!(turn, Ok(Some(_))) {
            self.placements += 1;
        }
        // Looked up before inserting: a turn is per decision, and a key
        // allocated per decision would cost more than the bookkeeping.
        match self.placements_seen.get_mut(pool) {
            Some(seen) => *seen = self.placements,
            None => {
                self.placements_seen
                    .insert(pool.to_owned(), self.placements);
            }
        }
        let Turn { task, placed } = match turn {
            Ok(Some(turn)) => turn,
            Ok(None) => return false,
            Err(err) => {
                round.unplaceable.push((pool.to_owned(), err));
                return false;
            }
        };
        match self.usage.get_mut(pool) {
            Some(usage) => usage.add(&task.request.tenant, &task.request.resources),
            None => {
                let mut usage = Usage::default();
                usage.add(&task.request.tenant, &task.request.resources);
                self.usage.insert(pool.to_owned(), usage);
            }
        }
        round.decisions.push(Decision {
            pool: pool.to_owned(),
            policy: queue.name(),
            task,
            placed,
        });
        true
    }

    /// Tells every queue how much its pool's nodes hold, when nodes or pools
    /// changed since it was last told (DRF divides by it).
    fn refresh_capacity(&mut self) {
        if !std::mem::take(&mut self.capacity_stale) {
            return;
        }
        for (pool, queue) in &mut self.queues {
            if let Some(spec) = self.pools.get(pool) {
                let (cpu, memory) = self.fleet.capacity_of(&spec.node_selector, spec.overcommit);
                queue.set_capacity(cpu, memory);
            }
        }
    }

    /// Lets go of the holds of pools that are gone and of tasks no longer
    /// queued (cancelled, or queued again elsewhere), whose pool may not
    /// take another turn soon to notice.
    fn forget_stale_holds(&mut self) {
        for (pool, hold) in &mut self.holds {
            let Some(current) = hold else {
                continue;
            };
            let queued = self
                .queues
                .get(pool)
                .is_some_and(|queue| queue.contains(current.task.id));
            if !queued || !self.pools.contains_key(pool) {
                release_hold(&mut self.fleet, hold);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Fcfs;
    use crate::queue::tests::waiting;
    use proptest::prelude::*;
    use taskyard_wire::heartbeat::Capacity;

    fn planner(nodes: &[(&str, u32)]) -> Planner {
        let mut planner = Planner::default();
        for (id, cpu) in nodes {
            let capacity = Capacity {
                cpu_millis: *cpu,
                memory_mb: 100_000,
                slots: 100,
            };
            planner.nodes().upsert(id, capacity, true);
        }
        planner
    }

    fn of(tenant: &str, mut task: Waiting) -> Waiting {
        task.request.tenant = tenant.to_owned();
        task
    }

    fn fcfs(_: &Planner) -> Box<dyn QueuePolicy> {
        Box::new(Fcfs::default())
    }

    fn pools_and_seqs(round: &Round) -> Vec<(&str, i64)> {
        round
            .decisions
            .iter()
            .map(|d| (d.pool.as_str(), d.task.request.seq))
            .collect()
    }

    #[test]
    fn pools_take_turns_in_name_order() {
        let mut planner = planner(&[("n1", 10_000)]);
        for pool in ["b", "a"] {
            planner.set_pool(pool, Pool::default());
        }
        for seq in 1..=3 {
            planner.enqueue("a", waiting(seq, 100), fcfs);
            planner.enqueue("b", waiting(10 + seq, 100), fcfs);
        }
        let round = planner.plan_round(5);
        assert_eq!(
            pools_and_seqs(&round),
            [("a", 1), ("b", 11), ("a", 2), ("b", 12), ("a", 3)]
        );
        assert_eq!(round.decisions[0].policy, "fcfs");
        assert_eq!(pools_and_seqs(&planner.plan_round(5)), [("b", 13)]);
        assert_eq!(planner.queued(), 0);
    }

    #[test]
    fn a_pool_at_its_cap_waits_while_another_goes_on() {
        let mut planner = planner(&[("n1", 10_000)]);
        let capped = Pool {
            quotas: Quotas {
                max_running: Some(2),
                ..Quotas::default()
            },
            ..Pool::default()
        };
        planner.set_pool("capped", capped);
        planner.set_pool("free", Pool::default());
        for seq in 1..=4 {
            planner.enqueue("capped", waiting(seq, 100), fcfs);
            planner.enqueue("free", waiting(10 + seq, 100), fcfs);
        }
        let round = planner.plan_round(100);
        let capped: Vec<i64> = round
            .decisions
            .iter()
            .filter(|d| d.pool == "capped")
            .map(|d| d.task.request.seq)
            .collect();
        assert_eq!(capped, [1, 2]);
        assert_eq!(round.decisions.len(), 6);
        assert_eq!(planner.usage("capped").map(Usage::running), Some(2));
        let next = planner
            .queue("capped")
            .and_then(|q| q.first(1).pop().cloned());
        let next = next.expect("two still wait");
        assert_eq!(
            planner
                .refuses("capped", &next)
                .map(|r| r.describe("capped")),
            Some("pool capped is at its limit of 2 running tasks".to_owned())
        );

        // One ends: one more goes.
        let done = &round.decisions[0];
        planner.release(
            "capped",
            "t",
            &done.placed.node_id,
            &done.task.request.resources,
        );
        assert_eq!(pools_and_seqs(&planner.plan_round(100)), [("capped", 3)]);
    }

    #[test]
    fn a_tenant_at_its_cap_lets_the_pool_s_other_tenants_through() {
        let mut planner = planner(&[("n1", 10_000)]);
        let pool = Pool {
            quotas: Quotas {
                tenant_max_running: Some(1),
                ..Quotas::default()
            },
            ..Pool::default()
        };
        planner.set_pool("p", pool);
        planner.enqueue("p", of("a", waiting(1, 100)), fcfs);
        planner.enqueue("p", of("a", waiting(2, 100)), fcfs);
        planner.enqueue("p", of("b", waiting(3, 100)), fcfs);
        assert_eq!(
            pools_and_seqs(&planner.plan_round(100)),
            [("p", 1), ("p", 3)]
        );
        assert_eq!(planner.usage("p").map(|u| u.tenant_running("a")), Some(1));
    }

    #[test]
    fn an_undefined_pool_places_nothing_and_max_bounds_the_round() {
        let mut planner = planner(&[("n1", 10_000)]);
        planner.set_pool("p", Pool::default());
        planner.enqueue("gone", waiting(1, 100), fcfs);
        for seq in 2..=6 {
            planner.enqueue("p", waiting(seq, 100), fcfs);
        }
        assert_eq!(planner.plan_round(3).decisions.len(), 3);
        assert_eq!(planner.plan_round(10).decisions.len(), 2);
        assert!(planner.plan_round(10).decisions.is_empty());
        assert_eq!(planner.queued(), 1, "the undefined pool's task waits");
        planner.remove_pool("p");
        planner.set_pool("gone", Pool::default());
        assert_eq!(pools_and_seqs(&planner.plan_round(10)), [("gone", 1)]);
    }

    proptest! {
        /// Whatever the pools, quotas, tasks and completions, no round takes
        /// a pool past its quotas or a node past its capacity, and every
        /// task decided was waiting and leaves its queue.
        #[test]
        fn no_round_breaks_a_quota_or_a_node(
            nodes in proptest::collection::vec(1000u32..8000, 1..4),
            quotas in proptest::collection::vec((
                proptest::option::of(1u32..6),
                proptest::option::of(2000u32..12_000),
                proptest::option::of(1u32..3),
            ), 1..4),
            tasks in proptest::collection::vec((0usize..4, 0usize..3, 100u32..2000), 0..60),
            rounds in proptest::collection::vec((1usize..8, 0usize..4), 1..12),
        ) {
            let ids: Vec<String> = (0..nodes.len()).map(|i| format!("n{i}")).collect();
            let mut planner = planner(&[]);
            for (id, cpu) in ids.iter().zip(&nodes) {
                let capacity = Capacity { cpu_millis: *cpu, memory_mb: 100_000, slots: 100 };
                planner.nodes().upsert(id, capacity, true);
            }
            let pools: Vec<String> = (0..quotas.len()).map(|i| format!("p{i}")).collect();
            for (name, (max_running, max_cpu_millis, tenant_max_running)) in pools.iter().zip(&quotas) {
                let quotas = Quotas {
                    max_running: *max_running,
                    max_cpu_millis: *max_cpu_millis,
                    max_memory_mb: None,
                    tenant_max_running: *tenant_max_running,
                };
                planner.set_pool(name, Pool { quotas, ..Pool::default() });
            }
            let tenants = ["a", "b", "c"];
            let mut waiting_ids = std::collections::BTreeSet::new();
            for (seq, (pool, tenant, cpu)) in tasks.iter().enumerate() {
                // Pool index 3 may be undefined: its tasks must just wait.
                let pool = format!("p{pool}");
                let task = of(tenants[*tenant], waiting(seq as i64, *cpu));
                waiting_ids.insert(task.id);
                planner.enqueue(&pool, task, fcfs);
            }
            let mut running: Vec<Decision> = Vec::new();
            for (max, finish) in rounds {
                for _ in 0..finish.min(running.len()) {
                    let done = running.remove(0);
                    planner.release(
                        &done.pool,
                        &done.task.request.tenant,
                        &done.placed.node_id,
                        &done.task.request.resources,
                    );
                }
                let round = planner.plan_round(max);
                prop_assert!(round.unplaceable.is_empty(), "{:?}", round.unplaceable);
                prop_assert!(round.decisions.len() <= max);
                for decision in &round.decisions {
                    prop_assert!(waiting_ids.remove(&decision.task.id), "served twice or never queued");
                    prop_assert!(pools.contains(&decision.pool));
                }
                running.extend(round.decisions);
                for (index, name) in pools.iter().enumerate() {
                    let (max_running, max_cpu, tenant_max) = quotas[index];
                    let mine: Vec<&Decision> = running.iter().filter(|d| &d.pool == name).collect();
                    if let Some(max) = max_running {
                        prop_assert!(mine.len() <= max as usize, "{name}: {} running", mine.len());
                    }
                    if let Some(max) = max_cpu {
                        let cpu: u64 = mine.iter().map(|d| u64::from(d.task.request.resources.cpu_millis)).sum();
                        prop_assert!(cpu <= u64::from(max), "{name}: {cpu}m in use");
                    }
                    if let Some(max) = tenant_max {
                        for tenant in tenants {
                            let of_tenant = mine.iter().filter(|d| d.task.request.tenant == tenant).count();
                            prop_assert!(of_tenant <= max as usize, "{name}/{tenant}: {of_tenant}");
                        }
                    }
                }
                for (id, cpu) in ids.iter().zip(&nodes) {
                    let on: u64 = running
                        .iter()
                        .filter(|d| &d.placed.node_id == id)
                        .map(|d| u64::from(d.task.request.resources.cpu_millis))
                        .sum();
                    prop_assert!(on <= u64::from(*cpu), "{id}: {on}m of {cpu}m");
                    prop_assert_eq!(planner.fleet().get(id).map(|n| n.reserved_cpu), Some(on));
                }
                prop_assert_eq!(planner.queued(), waiting_ids.len());
            }
        }
    }
}
