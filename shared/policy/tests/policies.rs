//! Property tests for every queue policy, through the public API only.

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use taskyard_policy::queue::sjf::{DEFAULT_AGING_STEP_MS, DEFAULT_ESTIMATE_MS};
use taskyard_policy::{
    Drf, Fcfs, Fleet, MAX_LOOKAHEAD, PolicyKind, Priority, QueuePolicy, RoundRobin, Rules, Sjf,
    Waiting, Wfq,
};
use taskyard_wire::event::PlacementRequest;
use taskyard_wire::heartbeat::Capacity;
use taskyard_wire::pool::{PlacementStrategy, selector_matches};
use taskyard_wire::{Resources, TaskKind};
use uuid::Uuid;

/// A task fixture: `id` picks the Uuid, the rest go into the request.
fn task(
    id: u32,
    seq: i64,
    tenant: &str,
    priority: i32,
    estimate: Option<u64>,
    cpu: u32,
) -> Waiting {
    Waiting {
        id: Uuid::from_u128(u128::from(id) + 1),
        attempt: 0,
        request: PlacementRequest {
            seq,
            kind: TaskKind::Noop,
            tenant: tenant.to_owned(),
            priority,
            resources: Resources {
                cpu_millis: cpu,
                // Varied, so that DRF's shares are not all cpu.
                memory_mb: id * 37 % 100 + 1,
            },
            node_selector: BTreeMap::new(),
            estimated_runtime_ms: estimate,
        },
    }
}

const TENANTS: [&str; 4] = ["a", "b", "c", "d"];

/// A task fixture with both resources set.
fn sized(id: u32, seq: i64, tenant: &str, priority: i32, cpu: u32, memory: u32) -> Waiting {
    let mut t = task(id, seq, tenant, priority, None, cpu);
    t.request.resources.memory_mb = memory;
    t
}

fn test_weights() -> BTreeMap<String, u32> {
    BTreeMap::from([
        ("a".to_owned(), 3),
        ("b".to_owned(), 1),
        ("c".to_owned(), 2),
    ])
}

/// Every policy under priority classes, as `build_classed` makes them.
fn classed_policies() -> Vec<(String, Box<dyn QueuePolicy>)> {
    let weights = test_weights();
    PolicyKind::ALL
        .iter()
        .map(|kind| (format!("classed_{kind}"), kind.build_classed(&weights)))
        .collect()
}

/// Every policy under test, by a label for failure messages.
fn all_policies() -> Vec<(&'static str, Box<dyn QueuePolicy>)> {
    let weights = test_weights();
    let mut out: Vec<(&'static str, Box<dyn QueuePolicy>)> = PolicyKind::ALL
        .iter()
        .zip(PolicyKind::NAMES)
        .map(|(kind, name)| (name, kind.build_with(&weights)))
        .collect();
    out.push(("sjf_fast_aging", Box::new(Sjf::new(500, 1_000_000))));
    out.push(("priority_fcfs", Box::new(Priority::<Fcfs>::default())));
    out.push((
        "priority_round_robin",
        Box::new(Priority::<RoundRobin>::default()),
    ));
    out.push(("priority_sjf", Box::new(Priority::<Sjf>::default())));
    let w = weights.clone();
    out.push((
        "priority_wfq",
        Box::new(Priority::new(move || Wfq::new(w.clone()))),
    ));
    out.push(("drf_unweighted", Box::new(Drf::default())));
    out
}

#[derive(Debug, Clone)]
enum Op {
    Push {
        id: u32,
        seq: i64,
        tenant: usize,
        priority: i32,
        estimate: Option<u64>,
        cpu: u32,
    },
    Remove(u32),
    /// Pick with room for tasks of at most this much CPU.
    Pick(u32),
    /// One of the hooks on holdings and capacity (only `op_with_hooks`
    /// makes these).
    Hook(Hook),
}

#[derive(Debug, Clone)]
enum Hook {
    Allocated {
        tenant: usize,
        cpu: u32,
        memory: u32,
    },
    Released {
        tenant: usize,
        cpu: u32,
        memory: u32,
    },
    Capacity {
        cpu: u64,
        memory: u64,
    },
}

impl Hook {
    fn apply(&self, queue: &mut dyn QueuePolicy) {
        match *self {
            Hook::Allocated {
                tenant,
                cpu,
                memory,
            } => queue.allocated(
                TENANTS[tenant],
                &Resources {
                    cpu_millis: cpu,
                    memory_mb: memory,
                },
            ),
            Hook::Released {
                tenant,
                cpu,
                memory,
            } => queue.released(
                TENANTS[tenant],
                &Resources {
                    cpu_millis: cpu,
                    memory_mb: memory,
                },
            ),
            Hook::Capacity { cpu, memory } => queue.set_capacity(cpu, memory),
        }
    }
}

fn hook() -> impl Strategy<Value = Hook> {
    prop_oneof![
        (0usize..4, 0u32..200, 0u32..200).prop_map(|(tenant, cpu, memory)| Hook::Allocated {
            tenant,
            cpu,
            memory
        }),
        (0usize..4, 0u32..200, 0u32..200).prop_map(|(tenant, cpu, memory)| Hook::Released {
            tenant,
            cpu,
            memory
        }),
        (0u64..5_000, 0u64..5_000).prop_map(|(cpu, memory)| Hook::Capacity { cpu, memory }),
    ]
}

/// `op()` plus the hooks.
fn op_with_hooks() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => op(),
        1 => hook().prop_map(Op::Hook),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..40, 0i64..60, 0usize..4, 0i32..3, proptest::option::of(0u64..10_000), 1u32..100)
            .prop_map(|(id, seq, tenant, priority, estimate, cpu)| Op::Push { id, seq, tenant, priority, estimate, cpu }),
        1 => (0u32..40).prop_map(Op::Remove),
        2 => (0u32..120).prop_map(Op::Pick),
    ]
}

fn seqs_of(tasks: &[&Waiting]) -> Vec<Uuid> {
    tasks.iter().map(|t| t.id).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Across random pushes, removes, picks and hooks, every policy (alone
    /// and under priority classes) holds exactly the tasks a plain map
    /// would: nothing lost, nothing duplicated, a replaced task is returned
    /// in its latest version, picks only hand out tasks that fit and ask
    /// `fits` about at most MAX_LOOKAHEAD tasks.
    #[test]
    fn nothing_lost_or_duplicated(ops in proptest::collection::vec(op_with_hooks(), 0..300)) {
        let policies = all_policies()
            .into_iter()
            .map(|(label, queue)| (label.to_owned(), queue))
            .chain(classed_policies());
        for (label, mut queue) in policies {
            let mut model: BTreeMap<Uuid, Waiting> = BTreeMap::new();
            for op in &ops {
                match op {
                    Op::Push { id, seq, tenant, priority, estimate, cpu } => {
                        let t = task(*id, *seq, TENANTS[*tenant], *priority, *estimate, *cpu);
                        model.insert(t.id, t.clone());
                        queue.push(t);
                    }
                    Op::Remove(id) => {
                        let id = Uuid::from_u128(u128::from(*id) + 1);
                        prop_assert_eq!(queue.remove(id), model.remove(&id), "{}", label);
                    }
                    Op::Pick(room) => {
                        let mut asked = 0;
                        let picked = queue.pick(&mut |t| {
                            asked += 1;
                            t.request.resources.cpu_millis <= *room
                        });
                        prop_assert!(asked <= MAX_LOOKAHEAD, "{}: asked {}", label, asked);
                        if let Some(t) = picked {
                            prop_assert!(t.request.resources.cpu_millis <= *room, "{}", label);
                            prop_assert_eq!(model.remove(&t.id), Some(t), "{}", label);
                        }
                    }
                    Op::Hook(hook) => hook.apply(&mut *queue),
                }
                prop_assert_eq!(queue.len(), model.len(), "{}", label);
                for id in 0..40u32 {
                    let id = Uuid::from_u128(u128::from(id) + 1);
                    prop_assert_eq!(queue.contains(id), model.contains_key(&id), "{}", label);
                }
            }
            let listed: BTreeSet<Uuid> = queue.first(usize::MAX).iter().map(|t| t.id).collect();
            prop_assert_eq!(listed.len(), model.len(), "{}: first() repeats", label);
            let mut drained = BTreeMap::new();
            while let Some(t) = queue.pick(&mut |_| true) {
                prop_assert!(drained.insert(t.id, t).is_none(), "{}: served twice", label);
            }
            prop_assert_eq!(drained, model, "{}", label);
            prop_assert!(queue.is_empty());
        }
    }

    /// When everything fits, `first(n)` lists exactly the tasks the next `n`
    /// picks serve, in that order, for every policy and any queue history.
    /// (Under priority classes, DRF's lower levels are listed as they stand
    /// before the higher levels' picks charge their tenants, as `Priority`
    /// documents, so classed DRF is left out.)
    #[test]
    fn first_agrees_with_pick_order(ops in proptest::collection::vec(op_with_hooks(), 0..200), n in 0usize..50) {
        let policies = all_policies()
            .into_iter()
            .map(|(label, queue)| (label.to_owned(), queue))
            .chain(classed_policies().into_iter().filter(|(label, _)| label != "classed_drf"));
        for (label, mut queue) in policies {
            for op in &ops {
                match op {
                    Op::Push { id, seq, tenant, priority, estimate, cpu } => {
                        queue.push(task(*id, *seq, TENANTS[*tenant], *priority, *estimate, *cpu));
                    }
                    Op::Remove(id) => {
                        queue.remove(Uuid::from_u128(u128::from(*id) + 1));
                    }
                    Op::Pick(room) => {
                        queue.pick(&mut |t| t.request.resources.cpu_millis <= *room);
                    }
                    Op::Hook(hook) => hook.apply(&mut *queue),
                }
            }
            let listed = seqs_of(&queue.first(n));
            prop_assert_eq!(listed.len(), n.min(queue.len()), "{}", label);
            let served: Vec<Uuid> = (0..listed.len())
                .filter_map(|_| queue.pick(&mut |_| true))
                .map(|t| t.id)
                .collect();
            prop_assert_eq!(listed, served, "{}", label);
        }
    }

    /// FCFS serves the lowest (seq, id) among the fitting tasks within the
    /// first MAX_LOOKAHEAD in (seq, id) order.
    #[test]
    fn fcfs_serves_the_oldest_task_that_fits(
        tasks in proptest::collection::vec((0i64..1000, 1u32..100), 0..150),
        room in 0u32..120,
    ) {
        let mut queue = Fcfs::default();
        let mut order = BTreeMap::new();
        for (i, (seq, cpu)) in tasks.iter().enumerate() {
            let t = task(i as u32, *seq, "t", 0, None, *cpu);
            order.insert((t.request.seq, t.id), t.clone());
            queue.push(t);
        }
        let expected = order
            .values()
            .take(MAX_LOOKAHEAD)
            .find(|t| t.request.resources.cpu_millis <= room)
            .map(|t| t.id);
        let picked = queue.pick(&mut |t| t.request.resources.cpu_millis <= room).map(|t| t.id);
        prop_assert_eq!(picked, expected);
    }

    /// Round robin with two tenants that always have work never serves the
    /// same tenant twice in a row, and within a tenant keeps FCFS order. The
    /// served tenant refills its backlog now and then; the alternation is
    /// checked for as long as both tenants have stayed backlogged.
    #[test]
    fn round_robin_alternates_two_backlogged_tenants(
        arrivals in proptest::collection::vec((0usize..2, 0i64..10_000), 0..200),
        refill in proptest::collection::vec(any::<bool>(), 0..300),
    ) {
        let mut queue = RoundRobin::default();
        let mut next_id = 0u32;
        let mut push = |queue: &mut RoundRobin, tenant: &str, seq: Option<i64>| {
            next_id += 1;
            // Refills come after every initial task (seq < 10_000), rising.
            let seq = seq.unwrap_or(20_000 + i64::from(next_id));
            queue.push(task(next_id, seq, tenant, 0, None, 1));
        };
        // Both tenants start backlogged.
        push(&mut queue, TENANTS[0], Some(0));
        push(&mut queue, TENANTS[1], Some(0));
        for (tenant, seq) in &arrivals {
            push(&mut queue, TENANTS[*tenant], Some(*seq));
        }
        let mut last: Option<String> = None;
        let mut last_seq: BTreeMap<String, (i64, Uuid)> = BTreeMap::new();
        let mut refill = refill.into_iter();
        let mut always_both = true;
        loop {
            let backlogged: BTreeSet<&str> = queue.first(usize::MAX).iter().map(|t| t.request.tenant.as_str()).collect();
            always_both &= backlogged.len() == 2;
            let Some(t) = queue.pick(&mut |_| true) else { break };
            if always_both {
                prop_assert_ne!(Some(&t.request.tenant), last.as_ref());
            }
            let key = (t.request.seq, t.id);
            if let Some(prev) = last_seq.insert(t.request.tenant.clone(), key) {
                prop_assert!(prev < key, "FCFS within a tenant");
            }
            if refill.next() == Some(true) {
                push(&mut queue, &t.request.tenant, None);
            }
            last = Some(t.request.tenant);
        }
    }

    /// With every tenant backlogged, each round serves every tenant exactly
    /// once, in a fixed rotation; a tenant whose head does not fit is
    /// skipped and keeps its place.
    #[test]
    fn round_robin_gives_each_tenant_one_turn_per_round(
        tenants in 2usize..5,
        per_tenant in 3usize..20,
    ) {
        let mut queue = RoundRobin::default();
        let mut id = 0;
        for k in 0..per_tenant {
            for tenant in TENANTS.iter().take(tenants) {
                id += 1;
                queue.push(task(id, k as i64, tenant, 0, None, 1));
            }
        }
        let served: Vec<String> = std::iter::from_fn(|| queue.pick(&mut |_| true))
            .map(|t| t.request.tenant)
            .collect();
        let first_round = &served[..tenants];
        for round in served.chunks(tenants) {
            prop_assert_eq!(round, first_round);
        }
    }

    /// SJF serves, among the tasks within the first MAX_LOOKAHEAD in order
    /// of (estimate − step × age, seq, id) — age being the tasks served since
    /// the task was first pushed — the first that fits. The model computes
    /// that key from scratch at every pick.
    #[test]
    fn sjf_serves_the_least_effective_key_that_fits(
        ops in proptest::collection::vec(op(), 0..300),
        default_estimate in 0u64..5_000,
        step in 1u64..2_000,
    ) {
        let mut queue = Sjf::new(default_estimate, step);
        // id → (task, clock when first pushed)
        let mut model: BTreeMap<Uuid, (Waiting, u64)> = BTreeMap::new();
        let mut clock = 0u64;
        for op in &ops {
            match op {
                Op::Push { id, seq, estimate, cpu, .. } => {
                    let t = task(*id, *seq, "t", 0, *estimate, *cpu);
                    let pushed = model.get(&t.id).map_or(clock, |(_, p)| *p);
                    model.insert(t.id, (t.clone(), pushed));
                    queue.push(t);
                }
                Op::Remove(id) => {
                    let id = Uuid::from_u128(u128::from(*id) + 1);
                    prop_assert_eq!(queue.remove(id), model.remove(&id).map(|(t, _)| t));
                }
                Op::Pick(room) => {
                    let mut order: Vec<(i128, i64, Uuid)> = model
                        .values()
                        .map(|(t, pushed)| {
                            let estimate = t.request.estimated_runtime_ms.unwrap_or(default_estimate);
                            let age = clock - pushed;
                            (i128::from(estimate) - i128::from(step) * i128::from(age), t.request.seq, t.id)
                        })
                        .collect();
                    order.sort();
                    let expected = order
                        .iter()
                        .take(MAX_LOOKAHEAD)
                        .map(|(_, _, id)| &model[id].0)
                        .find(|t| t.request.resources.cpu_millis <= *room)
                        .map(|t| t.id);
                    let picked = queue.pick(&mut |t| t.request.resources.cpu_millis <= *room).map(|t| t.id);
                    prop_assert_eq!(picked, expected);
                    if let Some(id) = picked {
                        model.remove(&id);
                        clock += 1;
                    }
                    prop_assert_eq!(queue.clock(), clock);
                }
                Op::Hook(_) => {}
            }
        }
    }

    /// The aging bound of `Sjf`'s doc, with every task fitting: a task Y
    /// pushed after X is served before X only if it was pushed within
    /// floor((E_X − E_Y) / step) picks of X; and X is served within
    /// (tasks queued when it arrived) + (tasks pushed within
    /// floor((E_X − e_min) / step) picks after it) picks.
    #[test]
    fn sjf_aging_bound_holds(
        // Each step: how many tasks arrive (with these estimates), then one pick.
        steps in proptest::collection::vec(proptest::collection::vec(proptest::option::of(0u64..50_000), 0..4), 1..300),
        step in 1u64..5_000,
    ) {
        let mut queue = Sjf::new(DEFAULT_ESTIMATE_MS, step);
        struct Seen { pushed: u64, estimate: u64, queued_ahead: usize }
        let mut seen: BTreeMap<Uuid, Seen> = BTreeMap::new();
        let mut pushes: Vec<(Uuid, u64, u64)> = Vec::new(); // (id, clock, estimate)
        let mut served: Vec<(Uuid, u64)> = Vec::new(); // (id, clock when served)
        let mut id = 0u32;
        let tail = (0..steps.len() * 4).map(|_| Vec::new());
        for arrivals in steps.iter().cloned().chain(tail) {
            for estimate in arrivals {
                id += 1;
                let t = task(id, i64::from(id), "t", 0, estimate, 1);
                let e = estimate.unwrap_or(DEFAULT_ESTIMATE_MS);
                seen.insert(t.id, Seen { pushed: queue.clock(), estimate: e, queued_ahead: queue.len() });
                pushes.push((t.id, queue.clock(), e));
                queue.push(t);
            }
            let clock = queue.clock();
            if let Some(t) = queue.pick(&mut |_| true) {
                served.push((t.id, clock));
            }
        }
        prop_assert!(queue.is_empty());
        let position: BTreeMap<Uuid, usize> = served.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect();
        for (x, x_served) in &served {
            let sx = &seen[x];
            // Overtakers: pushed after X, served before X.
            let overtakers: Vec<&(Uuid, u64, u64)> = pushes
                .iter()
                .filter(|(y, p, _)| *p >= sx.pushed && y > x && position[y] < position[x])
                .collect();
            for (_, p_y, e_y) in &overtakers {
                prop_assert!(sx.estimate >= *e_y);
                prop_assert!(p_y - sx.pushed <= (sx.estimate - e_y) / step,
                    "overtaken by a task pushed {} picks later", p_y - sx.pushed);
            }
            let e_min = overtakers.iter().map(|(_, _, e)| *e).min().unwrap_or(sx.estimate);
            let window = (sx.estimate - e_min) / step;
            let pushed_in_window = pushes
                .iter()
                .filter(|(y, p, _)| y > x && *p >= sx.pushed && *p <= sx.pushed + window)
                .count();
            prop_assert!((x_served - sx.pushed) as usize <= sx.queued_ahead + pushed_in_window);
        }
    }

    /// The bound as the doc's last sentence states it: with one short task
    /// arriving per pick, a long task pushed to an empty queue is served after
    /// at most ceil((E − e_min) / step) picks ahead of it.
    #[test]
    fn sjf_long_task_is_served_despite_a_stream_of_short_ones(
        long in 0u64..1_000_000,
        short in 0u64..1_000,
        step in 1u64..10_000,
    ) {
        prop_assume!(short <= long);
        let mut queue = Sjf::new(DEFAULT_ESTIMATE_MS, step);
        queue.push(task(0, 0, "t", 0, Some(long), 1));
        let bound = (long - short).div_ceil(step);
        let mut ahead = 0u64;
        let mut id = 0;
        loop {
            id += 1;
            queue.push(task(id, i64::from(id), "t", 0, Some(short), 1));
            let Some(t) = queue.pick(&mut |_| true) else { break };
            if t.id == Uuid::from_u128(1) {
                break;
            }
            ahead += 1;
            prop_assert!(ahead <= bound, "{} picks ahead, bound {}", ahead, bound);
        }
        prop_assert_eq!(ahead, bound);
    }

    /// WFQ with a backlog of equal-cost tasks serves tenants in proportion to
    /// their weights: over any window of picks, Jain's fairness index of
    /// service divided by weight is at least 0.99.
    #[test]
    fn wfq_shares_follow_weights(
        weights in prop_oneof![Just(vec![3u32, 1]), Just(vec![1u32, 2, 5])],
        cost in proptest::option::of(1u64..100_000),
        window in 40usize..400,
        interleave in any::<bool>(),
    ) {
        let names: Vec<String> = (0..weights.len()).map(|i| TENANTS[i].to_owned()).collect();
        let map: BTreeMap<String, u32> = names.iter().cloned().zip(weights.iter().copied()).collect();
        let mut queue = Wfq::new(map);
        let backlog = 500u32;
        let mut id = 0u32;
        let mut push = |queue: &mut Wfq, tenant: usize| {
            id += 1;
            queue.push(task(id, i64::from(id), &names[tenant], 0, cost, 1));
        };
        if interleave {
            for _ in 0..backlog {
                for tenant in 0..weights.len() {
                    push(&mut queue, tenant);
                }
            }
        } else {
            for tenant in 0..weights.len() {
                for _ in 0..backlog {
                    push(&mut queue, tenant);
                }
            }
        }
        let mut served: BTreeMap<String, u32> = BTreeMap::new();
        for _ in 0..window {
            let t = queue.pick(&mut |_| true).expect("backlogged");
            *served.entry(t.request.tenant).or_default() += 1;
        }
        let normalised: Vec<f64> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| f64::from(served.get(TENANTS[i]).copied().unwrap_or(0)) / f64::from(*w))
            .collect();
        let jain = jain(&normalised);
        prop_assert!(jain >= 0.99, "jain {} served {:?}", jain, served);
    }

    /// The same with arrivals over time: tenants refill their backlog after
    /// each service, so the queue never runs dry, and shares still follow
    /// the weights.
    #[test]
    fn wfq_shares_follow_weights_with_steady_arrivals(
        weights in prop_oneof![Just(vec![3u32, 1]), Just(vec![1u32, 2, 5])],
        cost in 1u64..10_000,
        window in 40usize..400,
    ) {
        let names: Vec<String> = (0..weights.len()).map(|i| TENANTS[i].to_owned()).collect();
        let map: BTreeMap<String, u32> = names.iter().cloned().zip(weights.iter().copied()).collect();
        let mut queue = Wfq::new(map);
        let mut id = 0u32;
        for _ in 0..4 {
            for name in &names {
                id += 1;
                queue.push(task(id, i64::from(id), name, 0, Some(cost), 1));
            }
        }
        let mut served: BTreeMap<String, u32> = BTreeMap::new();
        for _ in 0..window {
            let t = queue.pick(&mut |_| true).expect("backlogged");
            id += 1;
            queue.push(task(id, i64::from(id), &t.request.tenant, 0, Some(cost), 1));
            *served.entry(t.request.tenant).or_default() += 1;
        }
        let normalised: Vec<f64> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| f64::from(served.get(TENANTS[i]).copied().unwrap_or(0)) / f64::from(*w))
            .collect();
        let jain = jain(&normalised);
        prop_assert!(jain >= 0.99, "jain {} served {:?}", jain, served);
    }

    /// Priority classes never serve a task while a task of a higher class
    /// fits (queues kept below the shared lookahead), and within a class keep
    /// the inner policy's order (FCFS here).
    #[test]
    fn priority_never_serves_a_lower_class_while_a_higher_fits(
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        let mut queue = Priority::<Fcfs>::default();
        let mut model: BTreeMap<Uuid, Waiting> = BTreeMap::new();
        for op in &ops {
            match op {
                Op::Push { id, seq, tenant, priority, estimate, cpu } => {
                    if model.len() >= MAX_LOOKAHEAD - 1 {
                        continue;
                    }
                    let t = task(*id, *seq, TENANTS[*tenant], *priority, *estimate, *cpu);
                    model.insert(t.id, t.clone());
                    queue.push(t);
                }
                Op::Remove(id) => {
                    let id = Uuid::from_u128(u128::from(*id) + 1);
                    prop_assert_eq!(queue.remove(id), model.remove(&id));
                }
                Op::Pick(room) => {
                    let fits = |t: &Waiting| t.request.resources.cpu_millis <= *room;
                    let expected = model
                        .values()
                        .filter(|t| fits(t))
                        .min_by_key(|t| (std::cmp::Reverse(t.request.priority), t.request.seq, t.id))
                        .map(|t| t.id);
                    let picked = queue.pick(&mut |t| fits(t));
                    prop_assert_eq!(picked.as_ref().map(|t| t.id), expected);
                    if let Some(t) = picked {
                        model.remove(&t.id);
                    }
                }
                Op::Hook(_) => {}
            }
        }
    }

    /// DRF with two tenants whose dominant resources differ (one asks mostly
    /// cpu, the other mostly memory), both always backlogged: whenever the
    /// next task fits, after every pick the weighted dominant shares they
    /// hold are within one task's weighted dominant share of each other,
    /// whether tasks finish (oldest first) between picks or not. Alone and
    /// under priority classes alike.
    #[test]
    fn drf_keeps_dominant_shares_within_one_task(
        cpu_total in 10_000u64..1_000_000,
        memory_total in 10_000u64..1_000_000,
        // a: cpu-heavy, b: memory-heavy, as fractions (per mille) of the pool.
        a_size in (20u64..100, 1u64..20),
        b_size in (1u64..20, 20u64..100),
        weights in (1u32..5, 1u32..5),
        // Per step: does the oldest running task finish before the pick?
        steps in proptest::collection::vec(any::<bool>(), 1..400),
        classed in any::<bool>(),
    ) {
        let weight_map = BTreeMap::from([("a".to_owned(), weights.0), ("b".to_owned(), weights.1)]);
        let mut queue: Box<dyn QueuePolicy> = if classed {
            PolicyKind::Drf.build_classed(&weight_map)
        } else {
            Box::new(Drf::new(weight_map))
        };
        queue.set_capacity(cpu_total, memory_total);
        let shape = |size: (u64, u64)| Resources {
            cpu_millis: (cpu_total * size.0 / 1000) as u32,
            memory_mb: (memory_total * size.1 / 1000) as u32,
        };
        let shapes = [("a", shape(a_size), weights.0), ("b", shape(b_size), weights.1)];
        let share = |cpu: u64, memory: u64, weight: u32| {
            (cpu as f64 / cpu_total as f64).max(memory as f64 / memory_total as f64) / f64::from(weight)
        };
        let one_task = shapes
            .iter()
            .map(|(_, r, w)| share(u64::from(r.cpu_millis), u64::from(r.memory_mb), *w))
            .fold(0.0, f64::max);
        let mut id = 0u32;
        let mut push = |queue: &mut Box<dyn QueuePolicy>, tenant: usize| {
            id += 1;
            let (name, r, _) = shapes[tenant];
            queue.push(sized(id, i64::from(id), name, 0, r.cpu_millis, r.memory_mb));
        };
        // A standing backlog of a few tasks each.
        for _ in 0..3 {
            push(&mut queue, 0);
            push(&mut queue, 1);
        }
        let mut running: VecDeque<(usize, Resources)> = VecDeque::new();
        let mut held = [(0u64, 0u64); 2];
        for finish in steps {
            if finish && let Some((tenant, r)) = running.pop_front() {
                queue.released(shapes[tenant].0, &r);
                held[tenant].0 -= u64::from(r.cpu_millis);
                held[tenant].1 -= u64::from(r.memory_mb);
            }
            let t = queue.pick(&mut |_| true).expect("backlogged");
            let tenant = usize::from(t.request.tenant == "b");
            held[tenant].0 += u64::from(t.request.resources.cpu_millis);
            held[tenant].1 += u64::from(t.request.resources.memory_mb);
            running.push_back((tenant, t.request.resources));
            push(&mut queue, tenant);
            let shares = [0, 1].map(|i| share(held[i].0, held[i].1, shapes[i].2));
            prop_assert!(
                (shares[0] - shares[1]).abs() <= one_task + 1e-9,
                "shares {:?} apart by more than one task ({})", shares, one_task
            );
        }
    }

    /// Under priority classes with every task in one class, DRF serves
    /// exactly as DRF alone: the wrapper passes every hook on.
    #[test]
    fn classed_drf_with_one_class_is_drf(ops in proptest::collection::vec(op_with_hooks(), 0..300)) {
        let weights = test_weights();
        let mut alone = Drf::new(weights.clone());
        let mut classed = PolicyKind::Drf.build_classed(&weights);
        prop_assert_eq!(classed.name(), "drf");
        for op in &ops {
            match op {
                Op::Push { id, seq, tenant, estimate, cpu, .. } => {
                    let t = task(*id, *seq, TENANTS[*tenant], 7, *estimate, *cpu);
                    alone.push(t.clone());
                    classed.push(t);
                }
                Op::Remove(id) => {
                    let id = Uuid::from_u128(u128::from(*id) + 1);
                    prop_assert_eq!(alone.remove(id), classed.remove(id));
                }
                Op::Pick(room) => {
                    let fits = |t: &Waiting| t.request.resources.cpu_millis <= *room;
                    prop_assert_eq!(alone.pick(&mut |t| fits(t)), classed.pick(&mut |t| fits(t)));
                    // A pick brings the level up to date: the listings agree.
                    prop_assert_eq!(seqs_of(&alone.first(10)), seqs_of(&classed.first(10)));
                }
                Op::Hook(hook) => {
                    hook.apply(&mut alone);
                    hook.apply(&mut *classed);
                }
            }
        }
        for tenant in TENANTS {
            prop_assert_eq!(alone.dominant_share(tenant), {
                let mut probe = Drf::new(weights.clone());
                probe.set_capacity(alone.capacity().0, alone.capacity().1);
                let (cpu, memory) = alone.held_by(tenant);
                probe.allocated(tenant, &Resources { cpu_millis: cpu as u32, memory_mb: memory as u32 });
                probe.dominant_share(tenant)
            });
        }
    }

    /// Classed DRF over several priority levels serves exactly as a plain
    /// model: the highest level with a head that fits, and within it the
    /// tenant with the least dominant share of what it holds across all
    /// levels (picks anywhere, allocations and releases). Queues stay below
    /// the lookahead so that the model needs no budget.
    #[test]
    fn classed_drf_weighs_holdings_across_levels(ops in proptest::collection::vec(op_with_hooks(), 0..300)) {
        let weights = test_weights();
        let mut queue = PolicyKind::Drf.build_classed(&weights);
        let mut tasks: BTreeMap<Uuid, Waiting> = BTreeMap::new();
        let mut held: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        let mut totals = (1u64, 1u64);
        let share = |held: (u64, u64), totals: (u64, u64), tenant: &str| {
            let w = u128::from(weights.get(tenant).copied().unwrap_or(1).max(1));
            let cpu = (u128::from(held.0) << 64) / (u128::from(totals.0) * w);
            let memory = (u128::from(held.1) << 64) / (u128::from(totals.1) * w);
            cpu.max(memory)
        };
        for op in &ops {
            match op {
                Op::Push { id, seq, tenant, priority, estimate, cpu } => {
                    if tasks.len() >= MAX_LOOKAHEAD / 2 {
                        continue;
                    }
                    let t = task(*id, *seq, TENANTS[*tenant], *priority, *estimate, *cpu);
                    tasks.insert(t.id, t.clone());
                    queue.push(t);
                }
                Op::Remove(id) => {
                    let id = Uuid::from_u128(u128::from(*id) + 1);
                    prop_assert_eq!(queue.remove(id), tasks.remove(&id));
                }
                Op::Pick(room) => {
                    let fits = |t: &Waiting| t.request.resources.cpu_millis <= *room;
                    // Heads: each (level, tenant)'s oldest task.
                    let mut heads: BTreeMap<(std::cmp::Reverse<i32>, &str), &Waiting> = BTreeMap::new();
                    for t in tasks.values() {
                        let key = (std::cmp::Reverse(t.request.priority), t.request.tenant.as_str());
                        let head = heads.entry(key).or_insert(t);
                        if (t.request.seq, t.id) < (head.request.seq, head.id) {
                            *head = t;
                        }
                    }
                    let mut candidates: Vec<_> = heads
                        .iter()
                        .map(|((level, tenant), head)| {
                            let h = held.get(tenant).copied().unwrap_or((0, 0));
                            ((*level, share(h, totals, tenant), *tenant), *head)
                        })
                        .collect();
                    candidates.sort_by(|a, b| a.0.cmp(&b.0));
                    let expected = candidates.iter().map(|(_, t)| *t).find(|t| fits(t)).map(|t| t.id);
                    let picked = queue.pick(&mut |t| fits(t));
                    prop_assert_eq!(picked.as_ref().map(|t| t.id), expected);
                    if let Some(t) = picked {
                        tasks.remove(&t.id);
                        let tenant = TENANTS.iter().find(|n| **n == t.request.tenant).copied().unwrap_or_default();
                        let h = held.entry(tenant).or_default();
                        h.0 += u64::from(t.request.resources.cpu_millis);
                        h.1 += u64::from(t.request.resources.memory_mb);
                    }
                }
                Op::Hook(hook) => {
                    hook.apply(&mut *queue);
                    match *hook {
                        Hook::Allocated { tenant, cpu, memory } => {
                            let h = held.entry(TENANTS[tenant]).or_default();
                            h.0 += u64::from(cpu);
                            h.1 += u64::from(memory);
                        }
                        Hook::Released { tenant, cpu, memory } => {
                            let h = held.entry(TENANTS[tenant]).or_default();
                            h.0 = h.0.saturating_sub(u64::from(cpu));
                            h.1 = h.1.saturating_sub(u64::from(memory));
                        }
                        Hook::Capacity { cpu, memory } => totals = (cpu.max(1), memory.max(1)),
                    }
                }
            }
        }
    }

    /// For every policy under priority classes: when the tasks of some
    /// classes fit and the others do not, a pick serves a task of the
    /// highest class that fits, and serves nothing only when no class fits.
    #[test]
    fn a_higher_class_is_served_before_a_lower_one(
        tasks in proptest::collection::vec((0usize..4, 0i32..4, 1u32..100, proptest::option::of(0u64..10_000)), 0..(MAX_LOOKAHEAD - 4)),
        fitting in proptest::collection::vec(0u8..16, 1..40),
    ) {
        for (label, mut queue) in classed_policies() {
            let mut model: BTreeMap<Uuid, Waiting> = BTreeMap::new();
            for (i, (tenant, priority, cpu, estimate)) in tasks.iter().enumerate() {
                let t = task(i as u32, i as i64, TENANTS[*tenant], *priority, *estimate, *cpu);
                model.insert(t.id, t.clone());
                queue.push(t);
            }
            for mask in &fitting {
                let fits = |t: &Waiting| mask & (1 << t.request.priority) != 0;
                let top = model.values().filter(|t| fits(t)).map(|t| t.request.priority).max();
                let picked = queue.pick(&mut |t| fits(t));
                prop_assert_eq!(picked.as_ref().map(|t| t.request.priority), top, "{}", label);
                if let Some(t) = picked {
                    model.remove(&t.id);
                }
            }
        }
    }

    /// Placement, over random fleets (up to past the placement walk) and
    /// random streams of placements and releases, never puts a task where
    /// it does not fit (so never reserves more than a node offers), never
    /// outside the selectors, and refuses only when no node has room.
    #[test]
    fn placement_never_exceeds_a_nodes_capacity(
        nodes in proptest::collection::vec((0usize..4, any::<bool>(), 0u32..3), 1..400),
        ops in proptest::collection::vec((any::<bool>(), 0u32..16_000, 0u32..65_536, any::<usize>()), 0..400),
        spread in any::<bool>(),
        selective in any::<bool>(),
        overcommit in prop_oneof![Just(1.0f64), 1.0f64..3.0],
    ) {
        const SHAPES: [(u32, u32, u32); 4] = [(4_000, 8_192, 16), (16_000, 65_536, 32), (32_000, 131_072, 64), (64_000, 262_144, 128)];
        let gpu = BTreeMap::from([("gpu".to_owned(), "yes".to_owned())]);
        let none = BTreeMap::new();
        let mut fleet = Fleet::default();
        for (i, (shape, labelled, slots_cut)) in nodes.iter().enumerate() {
            let (cpu, memory, slots) = SHAPES[*shape];
            let labels = if *labelled { gpu.clone() } else { BTreeMap::new() };
            // Some nodes have few slots, so that slots run out too.
            let slots = slots >> (4 * slots_cut);
            fleet.upsert_labelled(&format!("n{i:03}"), Capacity { cpu_millis: cpu, memory_mb: memory, slots }, labels, true);
        }
        let rules = Rules {
            pool_selector: if selective { &gpu } else { &none },
            task_selector: &none,
            strategy: if spread { PlacementStrategy::Spread } else { PlacementStrategy::BestFit },
            overcommit,
        };
        let mut held: Vec<(String, Resources)> = Vec::new();
        for (release, cpu, memory, k) in ops {
            if release && !held.is_empty() {
                let (node, request) = held.swap_remove(k % held.len());
                fleet.release(&node, &request);
                continue;
            }
            let request = Resources { cpu_millis: cpu, memory_mb: memory };
            let somewhere = (0..nodes.len())
                .filter_map(|i| fleet.get(&format!("n{i:03}")))
                .any(|slot| selector_matches(rules.pool_selector, &slot.labels) && slot.fits_with(&request, overcommit));
            let placed = fleet.place(&request, &rules);
            prop_assert_eq!(placed.is_some(), somewhere);
            prop_assert_eq!(fleet.any_fits_with(&request, &rules), somewhere);
            if let Some(placed) = placed {
                let slot = fleet.get(&placed.node_id).cloned().expect("placed on a known node");
                prop_assert!(slot.fits_with(&request, overcommit));
                prop_assert!(selector_matches(rules.pool_selector, &slot.labels));
                fleet.reserve(&placed.node_id, &request);
                held.push((placed.node_id, request));
            }
        }
        for i in 0..nodes.len() {
            let slot = fleet.get(&format!("n{i:03}")).cloned().expect("still there");
            let offers = |v: u32| (f64::from(v) * overcommit) as u64;
            prop_assert!(slot.reserved_cpu <= offers(slot.capacity.cpu_millis));
            prop_assert!(slot.reserved_memory <= offers(slot.capacity.memory_mb));
            prop_assert!(slot.reserved_slots <= slot.capacity.slots);
        }
    }
}

/// Jain's fairness index: (Σx)² / (n Σx²), 1 when all equal.
fn jain(xs: &[f64]) -> f64 {
    let sum: f64 = xs.iter().sum();
    let squares: f64 = xs.iter().map(|x| x * x).sum();
    if squares == 0.0 {
        return 1.0;
    }
    sum * sum / (xs.len() as f64 * squares)
}

#[test]
fn a_round_robin_tenant_whose_head_does_not_fit_keeps_its_turn() {
    let mut queue = RoundRobin::default();
    queue.push(task(1, 1, "a", 0, None, 500));
    queue.push(task(2, 2, "a", 0, None, 1));
    queue.push(task(3, 3, "b", 0, None, 1));
    queue.push(task(4, 4, "b", 0, None, 1));
    // a's head is too big: b is served, a keeps its place at the front.
    let small = |t: &Waiting| t.request.resources.cpu_millis <= 100;
    assert_eq!(
        queue.pick(&mut |t| small(t)).map(|t| t.request.seq),
        Some(3)
    );
    assert_eq!(
        queue.pick(&mut |t| small(t)).map(|t| t.request.seq),
        Some(4)
    );
    // FCFS within a: a's second task does not jump its head.
    assert_eq!(queue.pick(&mut |t| small(t)), None);
    assert_eq!(queue.pick(&mut |_| true).map(|t| t.request.seq), Some(1));
}

#[test]
fn round_robin_looks_at_no_more_than_the_lookahead_of_tenants() {
    let mut queue = RoundRobin::default();
    for i in 0..(MAX_LOOKAHEAD as u32 + 10) {
        queue.push(task(i, i64::from(i), &format!("t{i:03}"), 0, None, 500));
    }
    queue.push(task(1000, 1000, "zzz", 0, None, 1));
    let mut asked = 0;
    let picked = queue.pick(&mut |t| {
        asked += 1;
        t.request.resources.cpu_millis <= 100
    });
    assert_eq!(picked, None);
    assert_eq!(asked, MAX_LOOKAHEAD);
}

#[test]
fn sjf_without_an_estimate_uses_the_default() {
    let mut queue = Sjf::default();
    queue.push(task(1, 1, "t", 0, None, 1));
    queue.push(task(2, 2, "t", 0, Some(DEFAULT_ESTIMATE_MS + 1), 1));
    queue.push(task(3, 3, "t", 0, Some(DEFAULT_ESTIMATE_MS - 1), 1));
    let order: Vec<i64> = std::iter::from_fn(|| queue.pick(&mut |_| true))
        .map(|t| t.request.seq)
        .collect();
    assert_eq!(order, vec![3, 1, 2]);
    assert_eq!(Sjf::default().aging_step_ms(), DEFAULT_AGING_STEP_MS);
    assert_eq!(Sjf::new(1, 0).aging_step_ms(), 1, "no aging would starve");
}

#[test]
fn wfq_unnamed_tenants_weigh_one_and_no_estimate_costs_one() {
    let mut queue = Wfq::new(BTreeMap::from([("heavy".to_owned(), 2)]));
    for i in 0..6 {
        queue.push(task(i, i64::from(i), "light", 0, None, 1));
        queue.push(task(100 + i, 100 + i64::from(i), "heavy", 0, None, 1));
    }
    let first6: Vec<String> = (0..6)
        .filter_map(|_| queue.pick(&mut |_| true))
        .map(|t| t.request.tenant)
        .collect();
    assert_eq!(first6.iter().filter(|t| *t == "heavy").count(), 4);
    assert_eq!(queue.weight_of("light"), 1);
}

#[test]
fn priority_shares_one_lookahead_across_levels() {
    let mut queue = Priority::<Fcfs>::default();
    for i in 0..MAX_LOOKAHEAD as u32 {
        queue.push(task(i, i64::from(i), "t", 5, None, 500));
    }
    queue.push(task(1000, 0, "t", 1, None, 1));
    let mut asked = 0;
    let picked = queue.pick(&mut |t| {
        asked += 1;
        t.request.resources.cpu_millis <= 100
    });
    assert_eq!(picked, None);
    assert_eq!(asked, MAX_LOOKAHEAD);
    queue.remove(Uuid::from_u128(1));
    assert_eq!(
        queue
            .pick(&mut |t| t.request.resources.cpu_millis <= 100)
            .map(|t| t.request.priority),
        Some(1)
    );
}

#[test]
fn policy_names_parse_and_build() {
    for (kind, name) in PolicyKind::ALL.iter().zip(PolicyKind::NAMES) {
        assert_eq!(PolicyKind::parse(name), Some(*kind));
        assert_eq!(name.parse::<PolicyKind>(), Ok(*kind));
        assert_eq!(kind.to_string(), name);
        assert_eq!(kind.build().name(), name);
        assert_eq!(kind.build_with(&BTreeMap::new()).name(), name);
        assert_eq!(kind.build_classed(&BTreeMap::new()).name(), name);
    }
    assert_eq!(PolicyKind::parse("drf"), Some(PolicyKind::Drf));
    assert_eq!(PolicyKind::parse("lifo"), None);
    let err = "lifo".parse::<PolicyKind>().expect_err("unknown");
    assert!(err.to_string().contains("round_robin"));
    assert_eq!(PolicyKind::default(), PolicyKind::Fcfs);
}

#[test]
fn wfq_jain_stays_high_over_a_long_backlog() {
    let weights = [1u32, 2, 5];
    let map: BTreeMap<String, u32> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| (TENANTS[i].to_owned(), *w))
        .collect();
    let mut queue = Wfq::new(map);
    let backlog = 20_000u32;
    let mut id = 0;
    for tenant in TENANTS.iter().take(weights.len()) {
        for _ in 0..backlog {
            id += 1;
            queue.push(task(id, i64::from(id), tenant, 0, Some(250), 1));
        }
    }
    let mut served = [0u32; 3];
    for pick in 1..=20_000 {
        let t = queue.pick(&mut |_| true).expect("backlogged");
        let tenant = TENANTS
            .iter()
            .position(|n| *n == t.request.tenant)
            .expect("known");
        served[tenant] += 1;
        if pick % 1000 == 0 {
            let normalised: Vec<f64> = served
                .iter()
                .zip(weights)
                .map(|(s, w)| f64::from(*s) / f64::from(w))
                .collect();
            let jain = jain(&normalised);
            assert!(
                jain >= 0.99,
                "after {pick} picks: jain {jain}, served {served:?}"
            );
        }
    }
}

#[test]
fn drf_serves_the_lowest_dominant_share_and_charges_picks() {
    let mut queue = Drf::default();
    queue.set_capacity(10_000, 10_000);
    // a asks for cpu, b for memory; a goes first on the name tie.
    for i in 0..4 {
        queue.push(sized(i, i64::from(i), "a", 0, 2_000, 100));
        queue.push(sized(10 + i, 10 + i64::from(i), "b", 0, 100, 1_000));
    }
    let order: Vec<String> = (0..6)
        .filter_map(|_| queue.pick(&mut |_| true))
        .map(|t| t.request.tenant)
        .collect();
    // Shares after each pick: a 0.2, b 0.1, b 0.2, a 0.4, b 0.3, b 0.4.
    assert_eq!(order, ["a", "b", "b", "a", "b", "b"]);
    assert_eq!(queue.held_by("a"), (4_000, 200));
    // a gives back both: its share drops to 0 and it goes next.
    queue.released(
        "a",
        &Resources {
            cpu_millis: 4_000,
            memory_mb: 200,
        },
    );
    assert_eq!(queue.dominant_share("a"), 0);
    assert_eq!(
        queue
            .pick(&mut |_| true)
            .map(|t| t.request.tenant)
            .as_deref(),
        Some("a")
    );
    // A running task the queue did not pick counts too.
    queue.allocated(
        "a",
        &Resources {
            cpu_millis: 9_000,
            memory_mb: 0,
        },
    );
    queue.push(sized(20, 20, "b", 0, 100, 1_000));
    queue.push(sized(21, 21, "b", 0, 100, 1_000));
    // a holds 1.1 of the cpu, b 0.4 of the memory: b's two go first.
    let listed: Vec<&str> = queue
        .first(3)
        .iter()
        .map(|t| t.request.tenant.as_str())
        .collect();
    assert_eq!(listed, ["b", "b", "a"]);
}

#[test]
fn drf_before_any_capacity_counts_totals_as_one() {
    let mut queue = Drf::default();
    assert_eq!(queue.capacity(), (1, 1));
    queue.set_capacity(0, 0);
    assert_eq!(queue.capacity(), (1, 1));
    queue.allocated(
        "a",
        &Resources {
            cpu_millis: 3,
            memory_mb: 5,
        },
    );
    // 5 MiB against 3 millicores: the raw amounts, memory dominant.
    assert_eq!(queue.dominant_share("a"), 5u128 << 64);
}

#[test]
fn classed_drf_levels_see_what_the_other_levels_charged() {
    let mut queue = PolicyKind::Drf.build_classed(&BTreeMap::new());
    queue.set_capacity(10_000, 10_000);
    // Level 0 exists before the high class runs; b waits there too.
    queue.push(sized(1, 1, "a", 0, 1_000, 1_000));
    queue.push(sized(2, 2, "b", 0, 1_000, 1_000));
    for i in 0..3 {
        queue.push(sized(10 + i, 10 + i64::from(i), "a", 5, 1_000, 1_000));
    }
    for _ in 0..3 {
        assert_eq!(
            queue.pick(&mut |_| true).map(|t| t.request.priority),
            Some(5)
        );
    }
    // a holds three tasks from level 5: level 0 serves b first.
    assert_eq!(
        queue
            .pick(&mut |_| true)
            .map(|t| t.request.tenant)
            .as_deref(),
        Some("b")
    );
    // A level made now learns the holdings from the wrapper's ledger.
    queue.push(sized(20, 20, "a", 3, 1_000, 1_000));
    queue.push(sized(21, 21, "c", 3, 1_000, 1_000));
    assert_eq!(
        queue
            .pick(&mut |_| true)
            .map(|t| t.request.tenant)
            .as_deref(),
        Some("c")
    );
    // Releases reach every level: once a gives everything back, it leads.
    queue.released(
        "a",
        &Resources {
            cpu_millis: 3_000,
            memory_mb: 3_000,
        },
    );
    queue.push(sized(22, 22, "c", 3, 1_000, 1_000));
    assert_eq!(
        queue
            .pick(&mut |_| true)
            .map(|t| t.request.tenant)
            .as_deref(),
        Some("a")
    );
}
