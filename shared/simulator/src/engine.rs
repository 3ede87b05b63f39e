//! The event loop: arrivals and completions in virtual time, driving the
//! scheduler's own planning round ([`taskyard_policy::Planner`]) over a
//! [`Fleet`] the way the scheduler service does.
//!
//! # One step
//! Time jumps to the next event. Every completion at that instant releases
//! its task's reservation (`Planner::release`: the fleet, the pool's quota
//! usage, then `QueuePolicy::released`); every arrival is pushed on its
//! pool's queue. Then one planning round (`Planner::plan_round`) runs, with
//! no cap on decisions: pools take turns, each turn the scheduler's
//! `take_turn` (`queue.pick(fits)` among tasks its pool's quotas admit,
//! where `fits` asks `Fleet::any_fits_with`, then `Fleet::place` and
//! `Fleet::reserve`, with a node held for a head task that fits nowhere
//! now), until no pool places more. A task completes `runtime_ms` after it
//! starts. Events at the same instant are handled together before the
//! round, so tasks submitted together compete together. Each pool's queue
//! is told the whole cluster's capacity once, before the first event (every
//! pool spans every node).
//!
//! # Invariants
//! Checked as it runs; the first broken one ends the run with a
//! [`SimulationError`]:
//! - the policy serves only tasks that are waiting (none unknown, none twice,
//!   none already running or done), only tasks its `fits` check accepted,
//!   and its length matches the number of waiting tasks;
//! - placement finds a node whenever `any_fits_with` said one had room
//!   (else the policy served what its fits check refused);
//! - no node ever holds more CPU, memory or tasks than it offers, counted by
//!   the simulator on its own and compared with the fleet's count;
//! - no pool ever runs more tasks, CPU or memory than its quotas allow, nor
//!   a tenant more tasks than its pool's per-tenant cap, by the simulator's
//!   own count;
//! - at the end every task has run exactly once and every queue is empty.

use crate::report::{Outcome, PolicyReport, Recorder};
use crate::workload::{Cluster, Workload, WorkloadError};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use taskyard_policy::{Decision, Fleet, Planner, PolicyKind, Pool, QueuePolicy, Quotas, Waiting};
use taskyard_wire::Resources;
use taskyard_wire::event::PlacementRequest;
use taskyard_wire::heartbeat::Capacity;
use uuid::Uuid;

/// Why a simulation stopped without a report.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    /// The workload cannot run on this cluster.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// An invariant broke: a bug in a policy, in placement or here.
    #[error("{policy}: invariant broken at {at_ms} ms: {what}")]
    Invariant {
        policy: String,
        at_ms: u64,
        what: String,
    },
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    NotArrived,
    Waiting,
    Running { node: usize, started_ms: u64 },
    Done,
}

/// What one node holds, as the simulator counts it (apart from the fleet).
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    cpu: u64,
    memory: u64,
    tasks: u32,
}

/// What one pool's running tasks hold, as the simulator counts it (apart
/// from the planner's usage), against the pool's quotas.
#[derive(Debug, Clone, Default)]
struct PoolHeld {
    quotas: Quotas,
    running: u32,
    cpu: u64,
    memory: u64,
    per_tenant: BTreeMap<String, u32>,
}

/// Runs `workload` under one of the named policies, built as the scheduler
/// builds a pool's queue: under strict priority classes on the tasks'
/// `priority`, weighing tenants by the workload's weights (WFQ, DRF). Every
/// pool of the workload runs this policy.
pub fn simulate(
    workload: &Workload,
    cluster: &Cluster,
    policy: PolicyKind,
) -> Result<PolicyReport, SimulationError> {
    simulate_pools(workload, cluster, policy.name(), &mut |_| {
        build(policy, workload)
    })
}

/// The queue a pool of this policy gets.
fn build(policy: PolicyKind, workload: &Workload) -> Box<dyn QueuePolicy> {
    policy.build_classed(&workload.tenants)
}

/// Runs `workload` under every policy in `policies`, in that order.
pub fn simulate_all(
    workload: &Workload,
    cluster: &Cluster,
    policies: &[PolicyKind],
) -> Result<Vec<PolicyReport>, SimulationError> {
    policies
        .iter()
        .map(|policy| simulate(workload, cluster, *policy))
        .collect()
}

/// Runs a one-pool `workload` through any queue, reported under `name`. A
/// workload with several pools needs a queue for each: [`simulate_pools`].
pub fn simulate_queue(
    workload: &Workload,
    cluster: &Cluster,
    name: &str,
    queue: Box<dyn QueuePolicy>,
) -> Result<PolicyReport, SimulationError> {
    let pools = workload.pools();
    let (Some(pool), 1) = (pools.keys().next(), pools.len()) else {
        return Err(SimulationError::Workload(WorkloadError::Invalid {
            field: "pools".to_owned(),
            message: format!(
                "names {} pools, and one queue serves one pool; give each pool its queue",
                pools.len()
            ),
        }));
    };
    run_queues(workload, cluster, name, vec![(pool.clone(), queue)])
}

/// Runs `workload` with the queue `new_queue` makes for each of its pools
/// (called once per pool, in name order), reported under `name`.
pub fn simulate_pools(
    workload: &Workload,
    cluster: &Cluster,
    name: &str,
    new_queue: &mut dyn FnMut(&str) -> Box<dyn QueuePolicy>,
) -> Result<PolicyReport, SimulationError> {
    let queues = workload
        .pools()
        .into_keys()
        .map(|pool| {
            let queue = new_queue(&pool);
            (pool, queue)
        })
        .collect();
    run_queues(workload, cluster, name, queues)
}

fn run_queues(
    workload: &Workload,
    cluster: &Cluster,
    name: &str,
    queues: Vec<(String, Box<dyn QueuePolicy>)>,
) -> Result<PolicyReport, SimulationError> {
    workload.check()?;
    workload.check_against(cluster)?;
    let mut engine = Engine::new(workload, cluster, name, queues);
    engine.run()?;
    Ok(engine.recorder.finish(name, workload, cluster))
}

/// A task's id in the queue: its index in the workload, plus one.
fn id_of(index: usize) -> Uuid {
    Uuid::from_u128(index as u128 + 1)
}

struct Engine<'a> {
    workload: &'a Workload,
    policy: String,
    /// The scheduler's round state: pools, queues, quota usage, holds and
    /// the fleet.
    planner: Planner,
    /// Node ids, by index.
    nodes: Vec<String>,
    /// What each node holds, by the simulator's own count.
    held: Vec<Held>,
    /// What a node offers: (cpu, memory, tasks).
    offers: (u64, u64, u32),
    /// What each pool holds, by the simulator's own count.
    pools: BTreeMap<String, PoolHeld>,
    /// Each task's stage, by workload index.
    stages: Vec<Stage>,
    /// Workload indexes in arrival order (ties in file order).
    arrivals: Vec<usize>,
    /// How many of `arrivals` have arrived.
    arrived: usize,
    /// Completions: (time, workload index), earliest first.
    completions: BinaryHeap<Reverse<(u64, usize)>>,
    /// Tasks waiting in the queues.
    waiting: usize,
    now: u64,
    recorder: Recorder,
}

impl<'a> Engine<'a> {
    fn new(
        workload: &'a Workload,
        cluster: &'a Cluster,
        policy: &str,
        queues: Vec<(String, Box<dyn QueuePolicy>)>,
    ) -> Self {
        let mut fleet = Fleet::default();
        let width = cluster.nodes.to_string().len();
        let nodes: Vec<String> = (1..=cluster.nodes)
            .map(|i| format!("node-{i:0width$}"))
            .collect();
        let capacity = Capacity {
            cpu_millis: cluster.cpu_millis,
            memory_mb: cluster.memory_mb,
            slots: cluster.slots,
        };
        for node in &nodes {
            fleet.upsert_labelled(node, capacity, BTreeMap::new(), true);
        }
        let mut planner = Planner::with_fleet(fleet);
        let quotas = workload.pools();
        let mut pools = BTreeMap::new();
        for (name, mut queue) in queues {
            let quotas = quotas.get(&name).map(|q| q.quotas()).unwrap_or_default();
            planner.set_pool(
                &name,
                Pool {
                    node_selector: BTreeMap::new(),
                    strategy: cluster.strategy,
                    overcommit: cluster.overcommit,
                    quotas,
                },
            );
            // Told before any task arrives, as a scheduler's new queue is.
            if let Some((cpu, memory)) = planner.capacity(&name) {
                queue.set_capacity(cpu, memory);
            }
            planner.insert_queue(&name, queue);
            pools.insert(
                name,
                PoolHeld {
                    quotas,
                    ..PoolHeld::default()
                },
            );
        }
        let mut arrivals: Vec<usize> = (0..workload.tasks.len()).collect();
        arrivals.sort_by_key(|index| (workload.tasks[*index].arrival_ms, *index));
        let (cpu, memory) = cluster.reservable();
        Engine {
            workload,
            policy: policy.to_owned(),
            planner,
            held: vec![Held::default(); nodes.len()],
            nodes,
            offers: (cpu, memory, cluster.slots),
            pools,
            stages: vec![Stage::NotArrived; workload.tasks.len()],
            arrivals,
            arrived: 0,
            completions: BinaryHeap::new(),
            waiting: 0,
            now: 0,
            recorder: Recorder::new(workload, cluster),
        }
    }

    fn broken(&self, what: String) -> SimulationError {
        SimulationError::Invariant {
            policy: self.policy.clone(),
            at_ms: self.now,
            what,
        }
    }

    fn next_arrival_ms(&self) -> Option<u64> {
        self.arrivals
            .get(self.arrived)
            .map(|index| self.workload.tasks[*index].arrival_ms)
    }

    fn run(&mut self) -> Result<(), SimulationError> {
        loop {
            let next_completion = self.completions.peek().map(|Reverse((at, _))| *at);
            let next = match (self.next_arrival_ms(), next_completion) {
                (Some(a), Some(c)) => a.min(c),
                (Some(a), None) => a,
                (None, Some(c)) => c,
                (None, None) => break,
            };
            self.recorder.advance(self.now, next);
            self.now = next;
            while let Some(Reverse((at, index))) = self.completions.peek().copied() {
                if at != self.now {
                    break;
                }
                self.completions.pop();
                self.complete(index)?;
            }
            while self.next_arrival_ms() == Some(self.now) {
                let index = self.arrivals[self.arrived];
                self.arrived += 1;
                self.arrive(index)?;
            }
            self.plan()?;
        }
        let queued = self.planner.queued();
        if queued > 0 || self.waiting > 0 {
            return Err(self.broken(format!(
                "{} tasks still wait with nothing running and nothing to come",
                self.waiting.max(queued)
            )));
        }
        if let Some(index) = self.stages.iter().position(|s| *s != Stage::Done) {
            return Err(self.broken(format!("task {index} never ran")));
        }
        Ok(())
    }

    fn arrive(&mut self, index: usize) -> Result<(), SimulationError> {
        if self.stages[index] != Stage::NotArrived {
            return Err(self.broken(format!("task {index} arrived twice")));
        }
        let task = &self.workload.tasks[index];
        let seq = i64::try_from(self.arrived).unwrap_or(i64::MAX);
        let waiting = Waiting {
            id: id_of(index),
            attempt: 0,
            request: PlacementRequest {
                seq,
                kind: task.kind,
                tenant: task.tenant.clone(),
                priority: task.priority,
                resources: resources(task.cpu_millis, task.memory_mb),
                node_selector: BTreeMap::new(),
                estimated_runtime_ms: task.estimated_runtime_ms,
            },
        };
        let Some(queue) = self.planner.queue_mut(&task.pool) else {
            return Err(self.broken(format!(
                "task {index} is for pool {}, which has no queue",
                task.pool
            )));
        };
        queue.push(waiting);
        self.stages[index] = Stage::Waiting;
        self.waiting += 1;
        self.recorder.arrived(&task.tenant);
        self.check_length()
    }

    fn check_length(&self) -> Result<(), SimulationError> {
        let queued = self.planner.queued();
        if queued != self.waiting {
            return Err(self.broken(format!(
                "the queue holds {queued} tasks but {} are waiting",
                self.waiting
            )));
        }
        Ok(())
    }

    /// One planning round, the scheduler's own, with no cap on decisions:
    /// places tasks until no pool has one that its quotas admit and that
    /// fits, holding a node for a head that fits nowhere.
    fn plan(&mut self) -> Result<(), SimulationError> {
        let round = self.planner.plan_round(usize::MAX);
        let mut touched = Vec::with_capacity(round.decisions.len());
        for decision in round.decisions {
            touched.push(self.start(decision)?);
        }
        // The fleet and the queues reflect the whole round: compare once
        // every decision is counted here too.
        self.check_length()?;
        touched.sort_unstable();
        touched.dedup();
        for node in touched {
            self.agree(node)?;
        }
        if let Some((_, err)) = round.unplaceable.first() {
            let index = err.task.as_u128().saturating_sub(1);
            return Err(self.broken(format!(
                "the policy served task {index}, which its fits check refused"
            )));
        }
        Ok(())
    }

    /// Starts a task the round placed, checking it was waiting and that its
    /// node and its pool had room for it by the simulator's own count.
    /// Returns the node's index.
    fn start(&mut self, decision: Decision) -> Result<usize, SimulationError> {
        let Decision { task, placed, .. } = decision;
        let index = usize::try_from(task.id.as_u128())
            .ok()
            .and_then(|id| id.checked_sub(1))
            .filter(|index| *index < self.stages.len())
            .ok_or_else(|| {
                self.broken(format!(
                    "the policy served a task never pushed ({})",
                    task.id
                ))
            })?;
        if self.stages[index] != Stage::Waiting {
            return Err(self.broken(format!(
                "the policy served task {index}, which is not waiting ({:?})",
                self.stages[index]
            )));
        }
        let request = task.request.resources;
        let node = self
            .nodes
            .binary_search(&placed.node_id)
            .map_err(|_| self.broken(format!("placed on unknown node {}", placed.node_id)))?;
        // The round reserved it on the fleet; `hold` checks the node had
        // room by the simulator's own count, `count_in_pool` the quotas.
        self.hold(index, node, &request)?;
        self.count_in_pool(index)?;
        let spec = &self.workload.tasks[index];
        self.stages[index] = Stage::Running {
            node,
            started_ms: self.now,
        };
        self.waiting -= 1;
        self.recorder.started(spec);
        // `Workload::check` made sure this does not overflow.
        let ends = self.now.saturating_add(spec.runtime_ms);
        self.completions.push(Reverse((ends, index)));
        Ok(node)
    }

    /// Counts `request` on `node` and checks it against what the node
    /// offers. (The round's caller compares with the fleet's own count.)
    fn hold(
        &mut self,
        index: usize,
        node: usize,
        request: &Resources,
    ) -> Result<(), SimulationError> {
        let held = &mut self.held[node];
        held.cpu += u64::from(request.cpu_millis);
        held.memory += u64::from(request.memory_mb);
        held.tasks += 1;
        let held = *held;
        let (cpu, memory, slots) = self.offers;
        if held.cpu > cpu || held.memory > memory || held.tasks > slots {
            return Err(self.broken(format!(
                "task {index} overfills {}: {}m cpu, {} MiB, {} tasks held of {cpu}m, {memory} MiB, {slots} tasks",
                self.nodes[node], held.cpu, held.memory, held.tasks
            )));
        }
        Ok(())
    }

    /// Counts a started task against its pool and checks the pool's quotas.
    fn count_in_pool(&mut self, index: usize) -> Result<(), SimulationError> {
        let task = &self.workload.tasks[index];
        let Some(pool) = self.pools.get_mut(&task.pool) else {
            return Err(self.broken(format!(
                "task {index} started in pool {}, which the workload does not have",
                task.pool
            )));
        };
        pool.running += 1;
        pool.cpu += u64::from(task.cpu_millis);
        pool.memory += u64::from(task.memory_mb);
        let of_tenant = pool.per_tenant.entry(task.tenant.clone()).or_default();
        *of_tenant += 1;
        let of_tenant = *of_tenant;
        let quotas = pool.quotas;
        let over = |max: Option<u32>, held: u64| max.is_some_and(|max| held > u64::from(max));
        let broken = if over(quotas.max_running, u64::from(pool.running)) {
            Some(format!("{} tasks running", pool.running))
        } else if over(quotas.max_cpu_millis, pool.cpu) {
            Some(format!("{}m cpu in use", pool.cpu))
        } else if over(quotas.max_memory_mb, pool.memory) {
            Some(format!("{} MiB in use", pool.memory))
        } else if over(quotas.tenant_max_running, u64::from(of_tenant)) {
            Some(format!(
                "{of_tenant} tasks of tenant {} running",
                task.tenant
            ))
        } else {
            None
        };
        match broken {
            Some(what) => Err(self.broken(format!(
                "task {index} takes pool {} past its quotas ({quotas:?}): {what}",
                task.pool
            ))),
            None => Ok(()),
        }
    }

    /// The fleet's count of a node's reservations matches the simulator's.
    fn agree(&self, node: usize) -> Result<(), SimulationError> {
        let held = self.held[node];
        let id = &self.nodes[node];
        match self.planner.fleet().get(id) {
            Some(slot)
                if slot.reserved_cpu == held.cpu
                    && slot.reserved_memory == held.memory
                    && slot.reserved_slots == held.tasks =>
            {
                Ok(())
            }
            Some(slot) => Err(self.broken(format!(
                "{id}: the fleet holds {}m, {} MiB, {} tasks; the simulator counts {}m, {} MiB, {} tasks",
                slot.reserved_cpu,
                slot.reserved_memory,
                slot.reserved_slots,
                held.cpu,
                held.memory,
                held.tasks
            ))),
            None => Err(self.broken(format!("{id} left the fleet"))),
        }
    }

    fn complete(&mut self, index: usize) -> Result<(), SimulationError> {
        let Stage::Running { node, started_ms } = self.stages[index] else {
            return Err(self.broken(format!(
                "task {index} completed while {:?}",
                self.stages[index]
            )));
        };
        let task = &self.workload.tasks[index];
        let request = resources(task.cpu_millis, task.memory_mb);
        self.planner
            .release(&task.pool, &task.tenant, &self.nodes[node], &request);
        let held = &mut self.held[node];
        held.cpu = held.cpu.saturating_sub(u64::from(request.cpu_millis));
        held.memory = held.memory.saturating_sub(u64::from(request.memory_mb));
        held.tasks = held.tasks.saturating_sub(1);
        if let Some(pool) = self.pools.get_mut(&task.pool) {
            pool.running = pool.running.saturating_sub(1);
            pool.cpu = pool.cpu.saturating_sub(u64::from(task.cpu_millis));
            pool.memory = pool.memory.saturating_sub(u64::from(task.memory_mb));
            if let Some(count) = pool.per_tenant.get_mut(&task.tenant) {
                *count = count.saturating_sub(1);
            }
        }
        self.agree(node)?;
        self.stages[index] = Stage::Done;
        self.recorder.completed(
            index,
            task,
            Outcome {
                started_ms,
                ended_ms: self.now,
            },
        );
        Ok(())
    }
}

fn resources(cpu_millis: u32, memory_mb: u32) -> Resources {
    Resources {
        cpu_millis,
        memory_mb,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Task;
    use taskyard_policy::Fcfs;
    use taskyard_wire::TaskKind;

    fn workload(tasks: usize) -> Workload {
        Workload {
            cluster: None,
            tenants: [("t".to_owned(), 1)].into_iter().collect(),
            pools: BTreeMap::new(),
            tasks: (0..tasks)
                .map(|i| Task {
                    arrival_ms: i as u64,
                    tenant: "t".to_owned(),
                    kind: TaskKind::Sleep,
                    cpu_millis: 1000,
                    memory_mb: 100,
                    runtime_ms: 50,
                    estimated_runtime_ms: None,
                    priority: 0,
                    pool: "default".to_owned(),
                })
                .collect(),
        }
    }

    /// Broken on purpose, in one of three ways.
    #[derive(Debug, Default)]
    struct Broken {
        inner: Fcfs,
        how: &'static str,
        last: Option<Waiting>,
        pushed: usize,
    }

    impl QueuePolicy for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn push(&mut self, task: Waiting) {
            self.pushed += 1;
            if self.how == "loses" && self.pushed == 3 {
                return;
            }
            self.inner.push(task);
        }
        fn remove(&mut self, id: Uuid) -> Option<Waiting> {
            self.inner.remove(id)
        }
        fn contains(&self, id: Uuid) -> bool {
            self.inner.contains(id)
        }
        fn len(&self) -> usize {
            self.inner.len()
        }
        fn pick(&mut self, fits: &mut dyn FnMut(&Waiting) -> bool) -> Option<Waiting> {
            match self.how {
                "repeats" => {
                    if let Some(again) = self.last.take() {
                        return Some(again);
                    }
                    let task = self.inner.pick(fits)?;
                    self.last = Some(task.clone());
                    Some(task)
                }
                "ignores fits" => self.inner.pick(&mut |_| true),
                _ => self.inner.pick(fits),
            }
        }
        fn first(&self, n: usize) -> Vec<&Waiting> {
            self.inner.first(n)
        }
    }

    fn run_broken(how: &'static str) -> SimulationError {
        let queue = Box::new(Broken {
            how,
            ..Broken::default()
        });
        let cluster = Cluster {
            nodes: 1,
            cpu_millis: 2000,
            memory_mb: 1000,
            ..Cluster::default()
        };
        simulate_queue(&workload(20), &cluster, "broken", queue)
            .expect_err("a broken policy is caught")
    }

    /// A whole-node task amid a stream of small ones that keeps every node
    /// busy: without a held node, each core that frees is refilled by a
    /// small task and the large one waits until the stream ends (55 s).
    #[test]
    fn a_whole_node_task_is_not_starved_by_a_stream_of_small_ones() {
        let small = |i: u64| Task {
            arrival_ms: i * 125,
            tenant: "small".to_owned(),
            kind: TaskKind::Sleep,
            cpu_millis: 1000,
            memory_mb: 100,
            runtime_ms: 1000,
            estimated_runtime_ms: Some(1000),
            priority: 0,
            pool: "default".to_owned(),
        };
        let mut tasks: Vec<Task> = (0..480).map(small).collect();
        tasks.push(Task {
            tenant: "big".to_owned(),
            cpu_millis: 4000,
            ..small(40)
        });
        let workload = Workload {
            cluster: None,
            tenants: [("small".to_owned(), 1), ("big".to_owned(), 1)]
                .into_iter()
                .collect(),
            pools: BTreeMap::new(),
            tasks,
        };
        let cluster = Cluster {
            nodes: 2,
            cpu_millis: 4000,
            memory_mb: 8000,
            ..Cluster::default()
        };
        for policy in PolicyKind::ALL {
            let report = simulate(&workload, &cluster, policy).expect("a clean run");
            assert_eq!(report.tasks, 481, "{policy}");
            let big = report
                .tenants
                .iter()
                .find(|t| t.tenant == "big")
                .expect("the big tenant is reported");
            // The first small task to overtake it (125 ms on) sets the
            // hold; the held node's tasks then end within their 1 s run.
            assert!(
                big.mean_wait_ms <= 1125.0,
                "{policy}: the whole-node task waited {} ms",
                big.mean_wait_ms
            );
        }
    }

    #[test]
    fn a_task_served_twice_is_caught() {
        let err = run_broken("repeats").to_string();
        assert!(err.contains("which is not waiting"), "{err}");
    }

    #[test]
    fn a_lost_task_is_caught() {
        let err = run_broken("loses").to_string();
        assert!(
            err.contains("the queue holds 0 tasks but 1 are waiting"),
            "{err}"
        );
    }

    #[test]
    fn serving_what_does_not_fit_is_caught() {
        let err = run_broken("ignores fits").to_string();
        assert!(err.contains("which its fits check refused"), "{err}");
    }

    /// A policy that ignores its fits check also ignores the quotas it
    /// carries: the engine's own count of the pool catches it. (The CPU
    /// quota, as the round stops a pool at its `max_running` before the
    /// policy is asked.)
    #[test]
    fn a_pool_past_its_quota_is_caught() {
        let mut workload = workload(20);
        workload.pools.insert(
            "default".to_owned(),
            crate::workload::PoolQuotas {
                max_cpu_millis: Some(1000),
                ..Default::default()
            },
        );
        let queue = Box::new(Broken {
            how: "ignores fits",
            ..Broken::default()
        });
        let err = simulate_queue(&workload, &Cluster::of(1), "broken", queue)
            .expect_err("a cap broken is caught")
            .to_string();
        assert!(
            err.contains("takes pool default past its quotas") && err.contains("2000m cpu in use"),
            "{err}"
        );
    }

    #[test]
    fn several_pools_need_a_queue_each() {
        let mut workload = workload(2);
        workload
            .pools
            .insert("batch".to_owned(), crate::workload::PoolQuotas::default());
        let err = simulate_queue(
            &workload,
            &Cluster::of(1),
            "fcfs",
            Box::new(Fcfs::default()),
        )
        .expect_err("one queue for two pools");
        assert!(err.to_string().starts_with("pools: names 2 pools"), "{err}");
    }

    #[test]
    fn an_honest_policy_runs_everything_once() {
        let queue = Box::new(Broken::default());
        let report =
            simulate_queue(&workload(20), &Cluster::of(1), "fcfs", queue).expect("an honest run");
        assert_eq!(report.tasks, 20);
    }
}
