//! Property tests for every queue policy, through the public API only.

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use taskyard_policy::queue::sjf::{DEFAULT_AGING_STEP_MS, DEFAULT_ESTIMATE_MS};
use taskyard_policy::{
    Fcfs, MAX_LOOKAHEAD, PolicyKind, Priority, QueuePolicy, RoundRobin, Sjf, Waiting, Wfq,
};
use taskyard_wire::event::PlacementRequest;
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
                memory_mb: 1,
            },
            node_selector: BTreeMap::new(),
            estimated_runtime_ms: estimate,
        },
    }
}

const TENANTS: [&str; 4] = ["a", "b", "c", "d"];

/// Every policy under test, by a label for failure messages.
fn all_policies() -> Vec<(&'static str, Box<dyn QueuePolicy>)> {
    let weights = BTreeMap::from([
        ("a".to_owned(), 3),
        ("b".to_owned(), 1),
        ("c".to_owned(), 2),
    ]);
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

    /// Across random pushes, removes and picks, every policy holds exactly
    /// the tasks a plain map would: nothing lost, nothing duplicated, a
    /// replaced task is returned in its latest version, picks only hand out
    /// tasks that fit and ask `fits` about at most MAX_LOOKAHEAD tasks.
    #[test]
    fn nothing_lost_or_duplicated(ops in proptest::collection::vec(op(), 0..300)) {
        for (label, mut queue) in all_policies() {
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
    #[test]
    fn first_agrees_with_pick_order(ops in proptest::collection::vec(op(), 0..200), n in 0usize..50) {
        for (label, mut queue) in all_policies() {
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
            }
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
    }
    assert_eq!(PolicyKind::parse("lifo"), None);
    let err = "lifo".parse::<PolicyKind>().expect_err("unknown");
    assert!(err.to_string().contains("round_robin"));
    assert_eq!(PolicyKind::default(), PolicyKind::Fcfs);
}
