//! The scheduler's memory: each pool's definition and queue, the fleet,
//! reservations, and what each pool holds against its quotas.

use std::collections::HashMap;
use taskyard_policy::{
    Fleet, HeadHold, Placed, PolicyKind, PoolRules, QueuePolicy, Turn, Waiting, release_hold,
    take_turn,
};
use taskyard_store::nodes::Health;
use taskyard_store::{Store, StoreError};
use taskyard_wire::event::{NodeEvent, NodeEventKind, TaskEventBatch};
use taskyard_wire::pool::{PoolEvent, PoolSpec};
use taskyard_wire::{Resources, TaskState, codec};
use uuid::Uuid;

/// Waiting tasks per pool whose reason is kept up to date (the head of each
/// queue; further back, the reason is simply "waiting its turn").
pub const EXPLAINED_PER_POOL: usize = 20;

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

/// A placement decided in memory, not yet recorded.
#[derive(Debug, Clone)]
pub struct Decision {
    pub pool: String,
    pub task: Waiting,
    pub placed: Placed,
}

/// What a pool's placed tasks hold, against its quotas.
#[derive(Debug, Clone, Default)]
struct Usage {
    running: u32,
    cpu_millis: u64,
    memory_mb: u64,
    per_tenant: HashMap<String, u32>,
}

impl Usage {
    fn add(&mut self, tenant: &str, resources: &Resources) {
        self.running += 1;
        self.cpu_millis += u64::from(resources.cpu_millis);
        self.memory_mb += u64::from(resources.memory_mb);
        *self.per_tenant.entry(tenant.to_owned()).or_default() += 1;
    }

    fn remove(&mut self, tenant: &str, resources: &Resources) {
        self.running = self.running.saturating_sub(1);
        self.cpu_millis = self
            .cpu_millis
            .saturating_sub(u64::from(resources.cpu_millis));
        self.memory_mb = self
            .memory_mb
            .saturating_sub(u64::from(resources.memory_mb));
        if let Some(count) = self.per_tenant.get_mut(tenant) {
            *count = count.saturating_sub(1);
        }
    }

    /// Why the pool as a whole takes no more now, if it does not.
    fn pool_full(&self, pool: &PoolSpec) -> Option<String> {
        match pool.max_running {
            Some(max) if self.running >= max => Some(format!(
                "pool {} is at its limit of {max} running tasks",
                pool.name
            )),
            _ => None,
        }
    }

    /// Why this task may not be placed now under the pool's quotas.
    fn refuses(&self, pool: &PoolSpec, tenant: &str, resources: &Resources) -> Option<String> {
        if let Some(reason) = self.pool_full(pool) {
            return Some(reason);
        }
        if let Some(max) = pool.max_cpu_millis
            && self.cpu_millis + u64::from(resources.cpu_millis) > u64::from(max)
        {
            return Some(format!(
                "pool {} would exceed its limit of {max}m cpu in use ({}m in use)",
                pool.name, self.cpu_millis
            ));
        }
        if let Some(max) = pool.max_memory_mb
            && self.memory_mb + u64::from(resources.memory_mb) > u64::from(max)
        {
            return Some(format!(
                "pool {} would exceed its limit of {max} MiB in use ({} MiB in use)",
                pool.name, self.memory_mb
            ));
        }
        if let Some(max) = pool.tenant_max_running
            && self.per_tenant.get(tenant).copied().unwrap_or(0) >= max
        {
            return Some(format!(
                "tenant {tenant} is at its limit of {max} running tasks in pool {}",
                pool.name
            ));
        }
        None
    }
}

#[derive(Debug)]
pub struct SchedulerState {
    pools: HashMap<String, PoolSpec>,
    queues: HashMap<String, Box<dyn QueuePolicy>>,
    fleet: Fleet,
    reservations: HashMap<Uuid, Reservation>,
    usage: HashMap<String, Usage>,
    /// The reason last recorded for each explained waiting task.
    reasons: HashMap<Uuid, String>,
    /// Learned run times by (pool, kind), for tasks that give no estimate.
    estimates: HashMap<(String, String), u64>,
    /// Nodes or pools changed since the queues were last told their pools'
    /// capacity.
    capacity_stale: bool,
    /// Per pool, the node held for a task that fits nowhere now (see
    /// [`taskyard_policy::turn`]).
    holds: HashMap<String, HeadHold>,
    /// Placements decided so far, and the count as each pool last saw it
    /// at the end of its turn: more since then were other pools' (which
    /// may have taken room its head waits for).
    placements: u64,
    placements_seen: HashMap<String, u64>,
}

impl Default for SchedulerState {
    fn default() -> Self {
        SchedulerState::new()
    }
}

fn pool_rules(pool: &PoolSpec) -> PoolRules<'_> {
    PoolRules {
        node_selector: &pool.node_selector,
        strategy: pool.placement,
        overcommit: pool.overcommit,
    }
}

impl SchedulerState {
    /// An empty state that knows only the `default` pool.
    pub fn new() -> SchedulerState {
        let default = PoolSpec::default_pool();
        SchedulerState {
            pools: HashMap::from([(default.name.clone(), default)]),
            queues: HashMap::new(),
            fleet: Fleet::default(),
            reservations: HashMap::new(),
            usage: HashMap::new(),
            reasons: HashMap::new(),
            estimates: HashMap::new(),
            capacity_stale: true,
            holds: HashMap::new(),
            placements: 0,
            placements_seen: HashMap::new(),
        }
    }

    /// What shortest-job-first has learned; applies to tasks queued from
    /// now on (and on the next rebuild, to every queued task).
    pub fn set_estimates(&mut self, estimates: HashMap<(String, String), u64>) {
        self.estimates = estimates;
    }

    /// The state as Postgres has it: pools, known nodes, reservations of
    /// placed tasks, and queued tasks.
    pub async fn rebuild(store: &Store) -> Result<SchedulerState, StoreError> {
        let mut state = SchedulerState::new();
        state.estimates = store.runtime_estimates().await?;
        state.pools = store
            .list_pools()
            .await?
            .into_iter()
            .map(|pool| (pool.name.clone(), pool))
            .collect();
        for node in store.list_nodes().await? {
            let schedulable = node.health == Health::Alive && !node.draining && !node.cordoned;
            state
                .fleet
                .upsert_labelled(&node.id, node.capacity, node.labels.clone(), schedulable);
        }
        for placed in store.placed_tasks().await? {
            state.hold(
                placed.id,
                Reservation {
                    node_id: placed.node_id,
                    pool: placed.pool,
                    tenant: placed.tenant,
                    attempt: placed.attempt,
                    resources: placed.resources,
                },
            );
        }
        for task in store.queued_tasks().await? {
            state.enqueue(
                Waiting {
                    id: task.id,
                    attempt: task.attempt,
                    request: task.request,
                },
                &task.pool,
            );
        }
        Ok(state)
    }

    pub fn queued(&self) -> usize {
        self.queues.values().map(|q| q.len()).sum()
    }

    pub fn nodes(&self) -> usize {
        self.fleet.len()
    }

    fn enqueue(&mut self, mut task: Waiting, pool: &str) {
        if task.request.estimated_runtime_ms.is_none() {
            let key = (pool.to_owned(), task.request.kind.as_str().to_owned());
            task.request.estimated_runtime_ms = self.estimates.get(&key).copied();
        }
        if !self.queues.contains_key(pool) {
            let queue = self.new_queue(pool);
            self.queues.insert(pool.to_owned(), queue);
        }
        if let Some(queue) = self.queues.get_mut(pool) {
            queue.push(task);
        }
    }

    /// An empty queue under the pool's policy and tenant weights.
    fn new_queue(&self, pool: &str) -> Box<dyn QueuePolicy> {
        let weights = self
            .pools
            .get(pool)
            .map(|spec| spec.tenant_weights.clone())
            .unwrap_or_default();
        let mut queue = self.policy_of(pool).build_classed(&weights);
        if let Some(spec) = self.pools.get(pool) {
            let (cpu, memory) = self.fleet.capacity_of(&spec.node_selector, spec.overcommit);
            queue.set_capacity(cpu, memory);
        }
        // What tenants hold already counts for policies that weigh it (DRF);
        // from now on picks charge themselves and releases are passed on.
        for reservation in self.reservations.values().filter(|r| r.pool == pool) {
            queue.allocated(&reservation.tenant, &reservation.resources);
        }
        queue
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

    /// The policy a pool names; one this build does not know (a newer pool
    /// manager) falls back to FCFS rather than stranding the pool's tasks.
    fn policy_of(&self, pool: &str) -> PolicyKind {
        let name = self
            .pools
            .get(pool)
            .map(|spec| spec.policy.as_str())
            .unwrap_or("fcfs");
        PolicyKind::parse(name).unwrap_or_else(|| {
            tracing::warn!(pool, policy = name, "unknown policy; using fcfs");
            PolicyKind::Fcfs
        })
    }

    /// Holds a reservation known from Postgres or the events.
    fn hold(&mut self, id: Uuid, reservation: Reservation) {
        self.fleet
            .reserve(&reservation.node_id, &reservation.resources);
        self.account(id, reservation);
    }

    /// Counts a reservation the fleet already holds against its pool.
    fn account(&mut self, id: Uuid, reservation: Reservation) {
        self.usage
            .entry(reservation.pool.clone())
            .or_default()
            .add(&reservation.tenant, &reservation.resources);
        self.reasons.remove(&id);
        self.reservations.insert(id, reservation);
    }

    fn release(&mut self, id: Uuid) {
        if let Some(reservation) = self.reservations.remove(&id) {
            self.fleet
                .release(&reservation.node_id, &reservation.resources);
            if let Some(usage) = self.usage.get_mut(&reservation.pool) {
                usage.remove(&reservation.tenant, &reservation.resources);
            }
            if let Some(queue) = self.queues.get_mut(&reservation.pool) {
                queue.released(&reservation.tenant, &reservation.resources);
            }
        }
    }

    /// Applies one event message; anything unreadable is logged and skipped
    /// (events are news, and Postgres stays the truth).
    pub fn apply(&mut self, subject: &str, payload: &[u8]) {
        if subject.starts_with("taskyard.events.node.") {
            match codec::decode::<NodeEvent>(payload) {
                Ok(event) => self.apply_node(&event),
                Err(err) => tracing::warn!(subject, error = %err, "skipping node event"),
            }
        } else if subject.starts_with("taskyard.events.pool.") {
            match codec::decode::<PoolEvent>(payload) {
                Ok(event) => self.apply_pool(event),
                Err(err) => tracing::warn!(subject, error = %err, "skipping pool event"),
            }
        } else {
            match codec::decode::<TaskEventBatch>(payload) {
                Ok(batch) => self.apply_tasks(&batch),
                Err(err) => tracing::warn!(subject, error = %err, "skipping task events"),
            }
        }
    }

    /// A pool was created, changed or deleted: its queued tasks are placed
    /// under the new rules from the next round on.
    pub fn apply_pool(&mut self, event: PoolEvent) {
        let name = event.pool.name.clone();
        if event.deleted {
            self.pools.remove(&name);
            return;
        }
        tracing::info!(pool = %name, policy = %event.pool.policy, "pool definition changed");
        let before = self
            .pools
            .get(&name)
            .map(|p| (p.policy.clone(), p.tenant_weights.clone()));
        let after = Some((event.pool.policy.clone(), event.pool.tenant_weights.clone()));
        self.capacity_stale = true;
        self.pools.insert(name.clone(), event.pool);
        if before != after
            && let Some(old) = self.queues.remove(&name)
        {
            // The waiting tasks are served in the new policy's order (or
            // under the new weights) from the next round on.
            let waiting: Vec<Waiting> = old.first(old.len()).into_iter().cloned().collect();
            let mut queue = self.new_queue(&name);
            for task in waiting {
                queue.push(task);
            }
            self.queues.insert(name, queue);
        }
    }

    pub fn apply_tasks(&mut self, batch: &TaskEventBatch) {
        for event in &batch.events {
            match event.state {
                TaskState::Queued => {
                    // A retry ends the previous attempt's reservation; an
                    // event older than the current placement is stale.
                    if let Some(reservation) = self.reservations.get(&event.task_id) {
                        if reservation.attempt > event.attempt {
                            continue;
                        }
                        self.release(event.task_id);
                    }
                    let Some(request) = event.request.clone() else {
                        tracing::warn!(task_id = %event.task_id, "queued event without a placement request");
                        continue;
                    };
                    self.enqueue(
                        Waiting {
                            id: event.task_id,
                            attempt: event.attempt,
                            request,
                        },
                        &event.pool,
                    );
                }
                // A retry's backoff, like an end, gives the node back.
                state if state.is_terminal() || state == TaskState::Retrying => {
                    if let Some(queue) = self.queues.get_mut(&event.pool) {
                        queue.remove(event.task_id);
                    }
                    self.reasons.remove(&event.task_id);
                    if self
                        .reservations
                        .get(&event.task_id)
                        .is_some_and(|r| r.attempt <= event.attempt)
                    {
                        self.release(event.task_id);
                    }
                }
                _ => {}
            }
        }
    }

    pub fn apply_node(&mut self, event: &NodeEvent) {
        self.capacity_stale = true;
        match event.kind {
            NodeEventKind::Registered | NodeEventKind::Updated | NodeEventKind::Alive => {
                self.fleet.upsert_labelled(
                    &event.node_id,
                    event.capacity,
                    event.labels.clone(),
                    event.schedulable(),
                );
            }
            NodeEventKind::Suspect => self.fleet.set_schedulable(&event.node_id, false),
            NodeEventKind::Lost | NodeEventKind::Removed => {
                // What the node held is given back: its pool's quotas and
                // its own capacity must not stay taken by work that is gone
                // with it. Queueing those tasks again is the pool manager's
                // part; their later events free nothing twice, as the
                // reservation is already gone.
                let held: Vec<Uuid> = self
                    .reservations
                    .iter()
                    .filter(|(_, r)| r.node_id == event.node_id)
                    .map(|(id, _)| *id)
                    .collect();
                for id in held {
                    self.release(id);
                }
                if event.kind == NodeEventKind::Removed {
                    self.fleet.remove(&event.node_id);
                } else {
                    self.fleet.set_schedulable(&event.node_id, false);
                }
            }
        }
    }

    /// Decides up to `max` placements, taking turns across pools, and holds
    /// their resources. A pool at its quota, or one that does not exist,
    /// places nothing.
    pub fn plan_round(&mut self, max: usize) -> Vec<Decision> {
        self.refresh_capacity();
        self.forget_stale_holds();
        let mut decisions = Vec::new();
        let mut pools: Vec<String> = self
            .queues
            .iter()
            .filter(|(pool, q)| !q.is_empty() && self.pools.contains_key(*pool))
            .map(|(pool, _)| pool.clone())
            .collect();
        pools.sort();
        while decisions.len() < max && !pools.is_empty() {
            pools.retain(|pool| {
                if decisions.len() >= max {
                    return true;
                }
                let (Some(queue), Some(spec)) = (self.queues.get_mut(pool), self.pools.get(pool))
                else {
                    return false;
                };
                let empty = Usage::default();
                let usage = self.usage.get(pool).unwrap_or(&empty);
                let mut hold = self.holds.remove(pool);
                if usage.pool_full(spec).is_some() {
                    // Its head could not go even on a free node: hold nothing.
                    release_hold(&mut self.fleet, &mut hold);
                    return false;
                }
                let seen = self.placements_seen.get(pool).copied();
                let turn = take_turn(
                    queue.as_mut(),
                    &mut self.fleet,
                    &mut hold,
                    pool_rules(spec),
                    &mut |t| {
                        usage
                            .refuses(spec, &t.request.tenant, &t.request.resources)
                            .is_none()
                    },
                    seen.is_some_and(|seen| self.placements > seen),
                );
                if let Some(hold) = hold {
                    self.holds.insert(pool.clone(), hold);
                }
                if matches!(turn, Ok(Some(_))) {
                    self.placements += 1;
                }
                self.placements_seen.insert(pool.clone(), self.placements);
                let Some(Turn { task, mut placed }) = turn.unwrap_or_else(|err| {
                    tracing::error!(pool = %pool, task_id = %err.task, "{err}; the pool waits for the next round");
                    None
                }) else {
                    return false;
                };
                // "Why did this run there" answers both halves: the policy's
                // pick, then the node's score.
                placed.reason = format!(
                    "picked by {} in pool {pool} (priority {}); {}",
                    queue.name(),
                    task.request.priority,
                    placed.reason
                );
                let reservation = Reservation {
                    node_id: placed.node_id.clone(),
                    pool: pool.clone(),
                    tenant: task.request.tenant.clone(),
                    attempt: task.attempt + 1,
                    resources: task.request.resources,
                };
                self.account(task.id, reservation);
                decisions.push(Decision {
                    pool: pool.clone(),
                    task,
                    placed,
                });
                true
            });
        }
        decisions
    }

    /// Lets go of the holds of pools that are gone and of tasks no longer
    /// queued (cancelled, or queued again elsewhere), whose pool may not
    /// take another turn soon to notice.
    fn forget_stale_holds(&mut self) {
        let stale: Vec<String> = self
            .holds
            .iter()
            .filter(|(pool, hold)| {
                !self.pools.contains_key(*pool)
                    || !self
                        .queues
                        .get(*pool)
                        .is_some_and(|queue| queue.contains(hold.task.id))
            })
            .map(|(pool, _)| pool.clone())
            .collect();
        for pool in stale {
            let mut hold = self.holds.remove(&pool);
            release_hold(&mut self.fleet, &mut hold);
        }
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

    /// Why the tasks at the head of each queue still wait, for those whose
    /// reason changed since it was last recorded. A task that fits and only
    /// waits its turn gets its place in the policy's order; only the first
    /// [`EXPLAINED_PER_POOL`] of each pool are explained, and the caller
    /// writes at most every [`crate::REASONS_EVERY`], so a busy queue costs
    /// a bounded number of writes.
    pub fn changed_wait_reasons(&mut self) -> Vec<(Uuid, String)> {
        let mut changed = Vec::new();
        for (pool, queue) in &self.queues {
            let usage = self.usage.get(pool).cloned().unwrap_or_default();
            for (place, task) in queue.first(EXPLAINED_PER_POOL).into_iter().enumerate() {
                let reason = match self.pools.get(pool) {
                    None => {
                        format!("pool {pool} does not exist; create it or resubmit to another pool")
                    }
                    Some(spec) => usage
                        .refuses(spec, &task.request.tenant, &task.request.resources)
                        .unwrap_or_else(|| {
                            let in_pool = pool_rules(spec);
                            let rules = in_pool.for_task(task);
                            let place = place + 1;
                            let policy = queue.name();
                            let held = self
                                .holds
                                .get(pool)
                                .filter(|hold| hold.task.id == task.id)
                                .and_then(|hold| {
                                    let short = self.fleet.shortfall_on(
                                        &hold.node_id,
                                        &task.request.resources,
                                        &rules,
                                    )?;
                                    Some((&hold.node_id, short))
                                })
                                .filter(|(_, short)| !short.is_none());
                            if let Some((node, short)) = held {
                                format!(
                                    "node {node} is held for it, as it fits nowhere now: no new work goes there until {short} more is free (number {place} in the {policy} order of pool {pool})"
                                )
                            } else if self.fleet.any_fits_with(&task.request.resources, &rules) {
                                format!(
                                    "waiting its turn: number {place} in the {policy} order of pool {pool}"
                                )
                            } else {
                                let lacks = self.fleet.why_not(&task.request.resources, &rules, pool);
                                format!("{lacks} (number {place} in the {policy} order)")
                            }
                        }),
                };
                if self.reasons.get(&task.id) != Some(&reason) {
                    self.reasons.insert(task.id, reason.clone());
                    changed.push((task.id, reason));
                }
            }
        }
        changed
    }

    pub fn report_metrics(&self) {
        for (pool, queue) in &self.queues {
            metrics::gauge!("taskyard_scheduler_queue_depth", "pool" => pool.clone())
                .set(queue.len() as f64);
            let held = f64::from(u8::from(self.holds.contains_key(pool)));
            metrics::gauge!("taskyard_scheduler_held_nodes", "pool" => pool.clone()).set(held);
        }
        for (pool, usage) in &self.usage {
            metrics::gauge!("taskyard_scheduler_pool_running", "pool" => pool.clone())
                .set(f64::from(usage.running));
        }
        metrics::gauge!("taskyard_scheduler_reservations").set(self.reservations.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskyard_wire::TaskKind;
    use taskyard_wire::event::{PlacementRequest, TaskEvent};
    use taskyard_wire::heartbeat::Capacity;

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
        assert!(state.holds.is_empty(), "nothing overtook it yet");

        state.apply_tasks(&TaskEventBatch {
            events: vec![finished(1, 1)],
        });
        on.remove(&Uuid::from_u128(1));
        let round = state.plan_round(10);
        assert_eq!(round.len(), 1);
        assert_eq!(round[0].task.id, Uuid::from_u128(11));
        on.insert(round[0].task.id, round[0].placed.node_id.clone());
        let held = state
            .holds
            .get("default")
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
        assert!(state.holds.is_empty());
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
            .holds
            .get("default")
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
