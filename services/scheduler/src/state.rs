//! The scheduler's memory: each pool's definition and queue, the fleet,
//! reservations, and what each pool holds against its quotas.
//!
//! The placement round itself, quotas included, is the policy crate's
//! [`Planner`]: this state holds one and keeps it in step with Postgres and
//! the events, so that the simulator and the decision bench run the very
//! round the service runs. What is the service's own lives here: the pool
//! definitions it builds queues from, each placed task's reservation (to
//! free it when the task ends), learned run times, and the waiting reasons
//! last recorded.
//!
//! # Layout
//! - `rebuild`: the state as Postgres has it, at start, and the resync
//!   that heals it against Postgres.
//! - `events`: decoding task, node and pool events and applying them.
//! - `wait_reasons`: why each task at the head of a queue still waits.

mod events;
mod rebuild;
mod wait_reasons;

pub use rebuild::Healed;
pub use taskyard_policy::Decision;
pub use wait_reasons::EXPLAINED_PER_POOL;

use std::collections::HashMap;
use taskyard_policy::{Planner, PolicyKind, Pool, QueuePolicy, Waiting};
use taskyard_wire::Resources;
use taskyard_wire::pool::PoolSpec;
use uuid::Uuid;

/// What a placed task holds, until it finishes.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub node_id: String,
    pub pool: String,
    pub tenant: String,
    /// The attempt the placement started.
    pub attempt: u32,
    pub resources: Resources,
}

#[derive(Debug)]
pub struct SchedulerState {
    /// Pool definitions as the pool manager publishes them: their policy and
    /// weights shape each pool's queue. The planner holds what the round
    /// needs of them (placement rules and quotas).
    pools: HashMap<String, PoolSpec>,
    /// Queues, fleet, quota usage and held nodes: the shared round's state.
    planner: Planner,
    reservations: HashMap<Uuid, Reservation>,
    /// The reason last recorded for each explained waiting task.
    reasons: HashMap<Uuid, String>,
    /// Learned run times by (pool, kind), for tasks that give no estimate.
    estimates: HashMap<(String, String), u64>,
}

impl Default for SchedulerState {
    fn default() -> Self {
        SchedulerState::new()
    }
}

impl SchedulerState {
    /// An empty state that knows only the `default` pool.
    pub fn new() -> SchedulerState {
        let default = PoolSpec::default_pool();
        let mut planner = Planner::default();
        planner.set_pool(&default.name, Pool::of(&default));
        SchedulerState {
            pools: HashMap::from([(default.name.clone(), default)]),
            planner,
            reservations: HashMap::new(),
            reasons: HashMap::new(),
            estimates: HashMap::new(),
        }
    }

    /// What shortest-job-first has learned; applies to tasks queued from
    /// now on (and on the next rebuild, to every queued task).
    pub fn set_estimates(&mut self, estimates: HashMap<(String, String), u64>) {
        self.estimates = estimates;
    }

    pub fn queued(&self) -> usize {
        self.planner.queued()
    }

    pub fn nodes(&self) -> usize {
        self.planner.fleet().len()
    }

    /// Defines or redefines a pool, for the queues and for the round.
    fn define_pool(&mut self, spec: PoolSpec) {
        self.planner.set_pool(&spec.name, Pool::of(&spec));
        self.pools.insert(spec.name.clone(), spec);
    }

    fn enqueue(&mut self, mut task: Waiting, pool: &str) {
        if task.request.estimated_runtime_ms.is_none() {
            let key = (pool.to_owned(), task.request.kind.as_str().to_owned());
            task.request.estimated_runtime_ms = self.estimates.get(&key).copied();
        }
        let (pools, reservations) = (&self.pools, &self.reservations);
        self.planner.enqueue(pool, task, |planner| {
            new_queue(pools, reservations, planner, pool)
        });
    }

    /// Holds a reservation known from Postgres.
    fn hold(&mut self, id: Uuid, reservation: Reservation) {
        self.planner.reserve(
            &reservation.pool,
            &reservation.tenant,
            &reservation.node_id,
            &reservation.resources,
        );
        self.reasons.remove(&id);
        self.reservations.insert(id, reservation);
    }

    fn release(&mut self, id: Uuid) {
        if let Some(reservation) = self.reservations.remove(&id) {
            self.planner.release(
                &reservation.pool,
                &reservation.tenant,
                &reservation.node_id,
                &reservation.resources,
            );
        }
    }

    /// Decides up to `max` placements, taking turns across pools, and holds
    /// their resources. A pool at its quota, or one that does not exist,
    /// places nothing.
    pub fn plan_round(&mut self, max: usize) -> Vec<Decision> {
        let round = self.planner.plan_round(max);
        for (pool, err) in &round.unplaceable {
            tracing::error!(pool = %pool, task_id = %err.task, "{err}; the pool waits for the next round");
        }
        let mut decisions = round.decisions;
        for decision in &mut decisions {
            // "Why did this run there" answers both halves: the policy's
            // pick, then the node's score.
            decision.placed.reason = format!(
                "picked by {} in pool {} (priority {}); {}",
                decision.policy,
                decision.pool,
                decision.task.request.priority,
                decision.placed.reason
            );
            let task = &decision.task;
            self.reasons.remove(&task.id);
            self.reservations.insert(
                task.id,
                Reservation {
                    node_id: decision.placed.node_id.clone(),
                    pool: decision.pool.clone(),
                    tenant: task.request.tenant.clone(),
                    attempt: task.attempt + 1,
                    resources: task.request.resources,
                },
            );
        }
        decisions
    }

    /// Forgets a decision that the database did not take (the task was no
    /// longer queued).
    pub fn drop_decision(&mut self, decision: &Decision) {
        if self
            .reservations
            .get(&decision.task.id)
            .is_some_and(|r| r.attempt == decision.task.attempt + 1)
        {
            self.release(decision.task.id);
        }
    }

    /// Undoes a decision that could not be recorded: it waits again.
    pub fn undo_decision(&mut self, decision: Decision) {
        self.drop_decision(&decision);
        self.enqueue(decision.task, &decision.pool);
    }

    pub fn report_metrics(&self) {
        for (pool, queue) in self.planner.queues() {
            metrics::gauge!("taskyard_scheduler_queue_depth", "pool" => pool.to_owned())
                .set(queue.len() as f64);
            let held = f64::from(u8::from(self.planner.hold(pool).is_some()));
            metrics::gauge!("taskyard_scheduler_held_nodes", "pool" => pool.to_owned()).set(held);
        }
        for (pool, usage) in self.planner.usages() {
            metrics::gauge!("taskyard_scheduler_pool_running", "pool" => pool.to_owned())
                .set(f64::from(usage.running()));
        }
        metrics::gauge!("taskyard_scheduler_reservations").set(self.reservations.len() as f64);
    }
}

/// An empty queue under the pool's policy and tenant weights, told its
/// pool's capacity and what the pool's tenants hold already.
fn new_queue(
    pools: &HashMap<String, PoolSpec>,
    reservations: &HashMap<Uuid, Reservation>,
    planner: &Planner,
    pool: &str,
) -> Box<dyn QueuePolicy> {
    let weights = pools
        .get(pool)
        .map(|spec| spec.tenant_weights.clone())
        .unwrap_or_default();
    let mut queue = policy_of(pools, pool).build_classed(&weights);
    if let Some((cpu, memory)) = planner.capacity(pool) {
        queue.set_capacity(cpu, memory);
    }
    // What tenants hold already counts for policies that weigh it (DRF);
    // from now on picks charge themselves and releases are passed on.
    for reservation in reservations.values().filter(|r| r.pool == pool) {
        queue.allocated(&reservation.tenant, &reservation.resources);
    }
    queue
}

/// The policy a pool names; one this build does not know (a newer pool
/// manager) falls back to FCFS rather than stranding the pool's tasks.
fn policy_of(pools: &HashMap<String, PoolSpec>, pool: &str) -> PolicyKind {
    let name = pools
        .get(pool)
        .map(|spec| spec.policy.as_str())
        .unwrap_or("fcfs");
    PolicyKind::parse(name).unwrap_or_else(|| {
        tracing::warn!(pool, policy = name, "unknown policy; using fcfs");
        PolicyKind::Fcfs
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskyard_wire::event::{
        NodeEvent, NodeEventKind, PlacementRequest, TaskEvent, TaskEventBatch,
    };
    use taskyard_wire::heartbeat::Capacity;
    use taskyard_wire::pool::PoolEvent;
    use taskyard_wire::{TaskKind, TaskState};

    fn queued(id: u128, seq: i64, attempt: u32, cpu: u32) -> TaskEvent {
        TaskEvent {
            task_id: Uuid::from_u128(id),
            pool: "default".to_owned(),
            attempt,
            state: TaskState::Queued,
            from: None,
            node_id: None,
            reason: None,
            at: taskyard_wire::now(),
            request: Some(PlacementRequest {
                seq,
                kind: TaskKind::Noop,
                tenant: "t".to_owned(),
                priority: 0,
                resources: Resources {
                    cpu_millis: cpu,
                    memory_mb: 10,
                },
                node_selector: Default::default(),
                estimated_runtime_ms: None,
            }),
        }
    }

    fn finished(id: u128, attempt: u32) -> TaskEvent {
        TaskEvent {
            state: TaskState::Succeeded,
            request: None,
            ..queued(id, 0, attempt, 0)
        }
    }

    fn node(state: &mut SchedulerState, id: &str, cpu: u32) {
        state.apply_node(&NodeEvent {
            node_id: id.to_owned(),
            kind: NodeEventKind::Registered,
            capacity: Capacity {
                cpu_millis: cpu,
                memory_mb: 1000,
                slots: 10,
            },
            labels: Default::default(),
            draining: false,
            cordoned: false,
            reason: None,
            at: taskyard_wire::now(),
        });
    }

    #[test]
    fn places_only_what_fits_and_frees_on_finish() {
        let mut state = SchedulerState::new();
        node(&mut state, "n1", 1000);
        state.apply_tasks(&TaskEventBatch {
            events: vec![queued(1, 1, 0, 600), queued(2, 2, 0, 600)],
        });
        let round = state.plan_round(10);
        assert_eq!(round.len(), 1, "only one 600m task fits in 1000m");
        assert_eq!(round[0].task.id, Uuid::from_u128(1));
        assert!(state.plan_round(10).is_empty());
        state.apply_tasks(&TaskEventBatch {
            events: vec![finished(1, 1)],
        });
        let round = state.plan_round(10);
        assert_eq!(round.len(), 1);
        assert_eq!(round[0].task.id, Uuid::from_u128(2));
    }

    /// Two nodes of 2000m run four 1000m tasks; a 2000m task then waits
    /// with 1000m tasks queued behind it, and one of them overtakes it.
    #[test]
    fn a_large_task_holds_a_node_and_is_placed_when_it_drains() {
        let mut state = SchedulerState::new();
        node(&mut state, "n1", 2000);
        node(&mut state, "n2", 2000);
        state.apply_tasks(&TaskEventBatch {
            events: (1..=4).map(|i| queued(i, i as i64, 0, 1000)).collect(),
        });
        let mut on: HashMap<Uuid, String> = state
            .plan_round(10)
            .into_iter()
            .map(|d| (d.task.id, d.placed.node_id))
            .collect();
        assert_eq!(on.len(), 4);
        state.apply_tasks(&TaskEventBatch {
            events: vec![queued(10, 10, 0, 2000), queued(11, 11, 0, 1000)],
        });
        assert!(state.plan_round(10).is_empty());
        assert!(
            state.planner.holds().next().is_none(),
            "nothing overtook it yet"
        );

        state.apply_tasks(&TaskEventBatch {
            events: vec![finished(1, 1)],
        });
        on.remove(&Uuid::from_u128(1));
        let round = state.plan_round(10);
        assert_eq!(round.len(), 1);
        assert_eq!(round[0].task.id, Uuid::from_u128(11));
        on.insert(round[0].task.id, round[0].placed.node_id.clone());
        let held = state
            .planner
            .hold("default")
            .expect("the overtaken task holds a node");
        assert_eq!(held.task.id, Uuid::from_u128(10));
        let held_node = held.node_id.clone();
        let reasons: HashMap<Uuid, String> = state.changed_wait_reasons().into_iter().collect();
        assert_eq!(
            reasons.get(&Uuid::from_u128(10)).map(String::as_str),
            Some(
                format!(
                    "node {held_node} is held for it, as it fits nowhere now: no new work goes \
                     there until 2000m cpu more is free (number 1 in the fcfs order of pool default)"
                )
                .as_str()
            )
        );

        // One task on the held node ends: task 12 fits there but may not go.
        state.apply_tasks(&TaskEventBatch {
            events: vec![queued(12, 12, 0, 1000)],
        });
        let there: Vec<Uuid> = on
            .iter()
            .filter(|(_, node)| **node == held_node)
            .map(|(id, _)| *id)
            .collect();
        let [first, second] = there[..] else {
            panic!("two tasks run on the held node: {on:?}");
        };
        state.apply_tasks(&TaskEventBatch {
            events: vec![finished(first.as_u128(), 1)],
        });
        assert!(
            state.plan_round(10).is_empty(),
            "the held node takes no small task"
        );

        state.apply_tasks(&TaskEventBatch {
            events: vec![finished(second.as_u128(), 1)],
        });
        let round = state.plan_round(10);
        assert_eq!(round.len(), 1);
        assert_eq!(round[0].task.id, Uuid::from_u128(10));
        assert_eq!(round[0].placed.node_id, held_node);
        assert!(
            round[0].placed.reason.starts_with(
                "picked by fcfs in pool default (priority 0); on the node held for it"
            ),
            "{}",
            round[0].placed.reason
        );
        assert!(state.planner.holds().next().is_none());
    }

    /// Pools that share a node: a whole-node task of one pool is held for
    /// when the other pool's tasks keep taking the room it waits for.
    #[test]
    fn a_task_overtaken_by_another_pool_holds_a_node_too() {
        let mut state = SchedulerState::new();
        node(&mut state, "n1", 2000);
        let mut other = PoolSpec::default_pool();
        other.name = "other".to_owned();
        state.apply_pool(PoolEvent {
            pool: other,
            deleted: false,
            at: taskyard_wire::now(),
        });
        let in_pool = |mut event: TaskEvent, pool: &str| {
            event.pool = pool.to_owned();
            event
        };
        state.apply_tasks(&TaskEventBatch {
            events: vec![
                in_pool(queued(1, 1, 0, 1000), "other"),
                in_pool(queued(2, 2, 0, 1000), "other"),
            ],
        });
        assert_eq!(state.plan_round(10).len(), 2);
        state.apply_tasks(&TaskEventBatch {
            events: vec![
                queued(10, 10, 0, 2000),
                in_pool(queued(3, 3, 0, 1000), "other"),
            ],
        });
        assert!(state.plan_round(10).is_empty());

        // A core frees; the other pool's task takes it, and the default
        // pool's head sees it was overtaken.
        state.apply_tasks(&TaskEventBatch {
            events: vec![in_pool(finished(1, 1), "other")],
        });
        let round = state.plan_round(10);
        assert_eq!(
            round.iter().map(|d| d.task.id).collect::<Vec<_>>(),
            [Uuid::from_u128(3)]
        );
        state.plan_round(10);
        let held = state
            .planner
            .hold("default")
            .expect("the overtaken head holds n1");
        assert_eq!(
            (held.task.id, held.node_id.as_str()),
            (Uuid::from_u128(10), "n1")
        );

        // The other pool's next task may not refill n1; the head goes once
        // it drains.
        state.apply_tasks(&TaskEventBatch {
            events: vec![
                in_pool(queued(4, 4, 0, 1000), "other"),
                in_pool(finished(2, 1), "other"),
            ],
        });
        assert!(state.plan_round(10).is_empty());
        state.apply_tasks(&TaskEventBatch {
            events: vec![in_pool(finished(3, 1), "other")],
        });
        let round = state.plan_round(10);
        assert_eq!(round.first().map(|d| d.task.id), Some(Uuid::from_u128(10)));
    }

    #[test]
    fn a_redelivered_queued_event_queues_once() {
        let mut state = SchedulerState::new();
        let event = queued(1, 1, 0, 100);
        state.apply_tasks(&TaskEventBatch {
            events: vec![event.clone(), event.clone()],
        });
        assert_eq!(state.queued(), 1);
        node(&mut state, "n1", 1000);
        assert_eq!(state.plan_round(10).len(), 1);
        // The same event again after placement is stale: nothing new waits.
        state.apply_tasks(&TaskEventBatch {
            events: vec![event],
        });
        assert_eq!(state.queued(), 0);
    }

    #[test]
    fn a_pool_cap_holds_and_a_changed_pool_takes_effect() {
        let mut state = SchedulerState::new();
        node(&mut state, "n1", 10_000);
        let mut capped = PoolSpec::default_pool();
        capped.max_running = Some(2);
        state.apply_pool(PoolEvent {
            pool: capped.clone(),
            deleted: false,
            at: taskyard_wire::now(),
        });
        state.apply_tasks(&TaskEventBatch {
            events: (1..=5).map(|n| queued(n, n as i64, 0, 100)).collect(),
        });
        assert_eq!(state.plan_round(10).len(), 2, "the cap is two");
        let reasons = state.changed_wait_reasons();
        assert!(
            reasons
                .iter()
                .all(|(_, r)| r == "pool default is at its limit of 2 running tasks"),
            "{reasons:?}"
        );
        capped.max_running = Some(4);
        state.apply_pool(PoolEvent {
            pool: capped,
            deleted: false,
            at: taskyard_wire::now(),
        });
        assert_eq!(state.plan_round(10).len(), 2, "two more under the new cap");
    }

    fn with(mut event: TaskEvent, tenant: &str, priority: i32) -> TaskEvent {
        if let Some(request) = event.request.as_mut() {
            request.tenant = tenant.to_owned();
            request.priority = priority;
        }
        event
    }

    fn set_policy(state: &mut SchedulerState, policy: &str) {
        let mut pool = PoolSpec::default_pool();
        pool.policy = policy.to_owned();
        state.apply_pool(PoolEvent {
            pool,
            deleted: false,
            at: taskyard_wire::now(),
        });
    }

    #[test]
    fn a_higher_priority_class_goes_first_under_every_policy() {
        for policy in PolicyKind::NAMES {
            let mut state = SchedulerState::new();
            set_policy(&mut state, policy);
            state.apply_tasks(&TaskEventBatch {
                events: vec![
                    with(queued(1, 1, 0, 600), "a", 0),
                    with(queued(2, 2, 0, 600), "b", 5),
                ],
            });
            node(&mut state, "n1", 1000);
            let round = state.plan_round(10);
            assert_eq!(round.len(), 1, "{policy}");
            assert_eq!(round[0].task.id, Uuid::from_u128(2), "{policy}");
        }
    }

    #[test]
    fn a_waiting_task_knows_its_place_in_the_policy_s_order() {
        let mut state = SchedulerState::new();
        set_policy(&mut state, "sjf");
        node(&mut state, "n1", 1000);
        state.apply_tasks(&TaskEventBatch {
            events: vec![queued(1, 1, 0, 1000), queued(2, 2, 0, 100)],
        });
        let reasons: HashMap<Uuid, String> = state.changed_wait_reasons().into_iter().collect();
        assert_eq!(
            reasons[&Uuid::from_u128(2)],
            "waiting its turn: number 2 in the sjf order of pool default"
        );
        assert_eq!(state.plan_round(1).len(), 1);
        state.apply_tasks(&TaskEventBatch {
            events: vec![queued(3, 3, 0, 100)],
        });
        let reasons: HashMap<Uuid, String> = state.changed_wait_reasons().into_iter().collect();
        assert_eq!(
            reasons[&Uuid::from_u128(3)],
            "pool default: no node with 100m cpu and 10 MiB free; \
             the most free has 0m cpu and 990 MiB (number 2 in the sjf order)"
        );
    }

    #[test]
    fn drf_serves_the_tenant_holding_less_of_the_pool_first() {
        let mut state = SchedulerState::new();
        node(&mut state, "n1", 1000);
        set_policy(&mut state, "drf");
        // Tenant a already holds 600m of the pool's 1000m.
        state.apply_tasks(&TaskEventBatch {
            events: vec![with(queued(1, 1, 0, 600), "a", 0)],
        });
        assert_eq!(state.plan_round(10).len(), 1);
        // a submitted first, but b holds nothing: b goes next.
        state.apply_tasks(&TaskEventBatch {
            events: vec![
                with(queued(2, 2, 0, 100), "a", 0),
                with(queued(3, 3, 0, 100), "b", 0),
            ],
        });
        let round = state.plan_round(1);
        assert_eq!(round[0].task.id, Uuid::from_u128(3));
        // Once a's 600m is given back, a holds less than b and goes next.
        state.apply_tasks(&TaskEventBatch {
            events: vec![with(finished(1, 1), "a", 0)],
        });
        state.apply_tasks(&TaskEventBatch {
            events: vec![with(queued(4, 4, 0, 100), "b", 0)],
        });
        let round = state.plan_round(1);
        assert_eq!(round[0].task.id, Uuid::from_u128(2));
    }

    #[test]
    fn every_policy_a_pool_may_name_is_one_the_scheduler_runs() {
        assert_eq!(taskyard_wire::pool::POLICIES, PolicyKind::NAMES);
        for name in taskyard_wire::pool::POLICIES {
            assert!(PolicyKind::parse(name).is_some(), "{name}");
        }
    }

    #[test]
    fn a_lost_node_gives_back_what_it_held() {
        let mut state = SchedulerState::new();
        let mut capped = PoolSpec::default_pool();
        capped.max_running = Some(1);
        state.apply_pool(PoolEvent {
            pool: capped,
            deleted: false,
            at: taskyard_wire::now(),
        });
        node(&mut state, "n1", 1000);
        node(&mut state, "n2", 1000);
        state.apply_tasks(&TaskEventBatch {
            events: vec![queued(1, 1, 0, 100), queued(2, 2, 0, 100)],
        });
        let first = state.plan_round(10);
        assert_eq!(first.len(), 1);
        let lost_node = first[0].placed.node_id.clone();
        state.apply_node(&NodeEvent {
            node_id: lost_node.clone(),
            kind: NodeEventKind::Lost,
            capacity: Default::default(),
            labels: Default::default(),
            draining: false,
            cordoned: false,
            reason: None,
            at: taskyard_wire::now(),
        });
        let second = state.plan_round(10);
        assert_eq!(second.len(), 1, "the pool's only slot is free again");
        assert_ne!(second[0].placed.node_id, lost_node);
    }

    #[test]
    fn a_retry_frees_the_failed_attempt() {
        let mut state = SchedulerState::new();
        node(&mut state, "n1", 100);
        state.apply_tasks(&TaskEventBatch {
            events: vec![queued(1, 1, 0, 100)],
        });
        assert_eq!(state.plan_round(10).len(), 1);
        // Attempt 1 failed and the task is queued again as attempt 1.
        state.apply_tasks(&TaskEventBatch {
            events: vec![queued(1, 1, 1, 100)],
        });
        let round = state.plan_round(10);
        assert_eq!(round.len(), 1);
        assert_eq!(round[0].task.attempt, 1);
    }
}
