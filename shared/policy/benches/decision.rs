//! The cost of one scheduling decision, for every policy, at scale.
//!
//! A fleet of 10,000 nodes of mixed sizes, already partly loaded, and a queue
//! of 1,000,000 tasks over 1,000 tenants (varied weights, priorities,
//! resources and runtime estimates). For each policy in [`PolicyKind::ALL`],
//! built with [`PolicyKind::build_classed`] as the scheduler is to build it, and
//! each placement strategy, the bench times 100,000 decisions. One decision
//! is what the scheduler does per task: a round of the scheduler's own
//! [`Planner`] that decides one placement (`plan_round(1)`), over one pool
//! with no quotas. That is the pool's turn, `take_turn`:
//!
//! 1. `queue.pick`, asking the pool's quotas and then `fleet.any_fits_with`
//!    about each task it offers;
//! 2. `fleet.place` for the picked task;
//! 3. `fleet.reserve` on the chosen node;
//! 4. when the first task offered lacked room, holding a node for it (and,
//!    in later turns, placing it there once it fits);
//!
//! and around it what the round adds per decision: the pools' turn order,
//! counting the placement against the pool's quotas, and the decision's
//! reason.
//!
//! So that the fleet does not fill up, the oldest placed task finishes
//! (`Planner::release`: the fleet, the pool's usage and `queue.released`)
//! once more than [`RUNNING`] of the
//! bench's tasks run; releases are not part of the timed decision. Setup
//! (making the fleet and the tasks, pushing them, building the fleet's
//! index) is not timed either, and is printed apart.
//!
//! Each row runs three times from scratch (fresh fleet, fresh queue) and
//! shows the pass with the lowest mean, listing the other passes' means: on
//! a shared machine a pre-empted decision counts whole milliseconds, which
//! swamps a mean of microseconds. `DECISION_BENCH_PASSES` changes the count.
//!
//! Run: `cargo bench -p taskyard-policy --bench decision`. Every input comes
//! from a fixed-seed generator, so passes and runs differ only by the
//! machine's noise. `DECISION_BENCH_SCALE=10` divides the sizes by 10 for a quick look;
//! `DECISION_BENCH_ONLY=drf/best_fit` runs only the rows whose
//! `policy/strategy` contains that text (for profiling one).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};
use taskyard_policy::{Decision, Fleet, Planner, PolicyKind, Pool, Round, Rules, Waiting};
use taskyard_wire::event::PlacementRequest;
use taskyard_wire::heartbeat::Capacity;
use taskyard_wire::pool::PlacementStrategy;
use taskyard_wire::{Resources, TaskKind};
use uuid::Uuid;

const NODES: usize = 10_000;
const TASKS: usize = 1_000_000;
const TENANTS: usize = 1_000;
const DECISIONS: usize = 100_000;
/// The most of the bench's own tasks that run at once before the oldest
/// finishes.
const RUNNING: usize = 40_000;
/// How many times each row runs, from scratch; the fastest pass is shown.
const PASSES: usize = 3;
/// The mean decision time the policies must stay under.
const TARGET_NS: f64 = 5_000.0;
/// The bench's one pool.
const POOL: &str = "bench";

/// SplitMix64: a tiny, fixed-seed generator, so that every run sees the same
/// fleet and the same tasks.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Scale {
    nodes: usize,
    tasks: usize,
    tenants: usize,
    decisions: usize,
    running: usize,
    passes: usize,
}

fn scale() -> Scale {
    let divisor = std::env::var("DECISION_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    Scale {
        nodes: NODES / divisor,
        tasks: TASKS / divisor,
        tenants: (TENANTS / divisor).max(2),
        decisions: DECISIONS / divisor,
        running: RUNNING / divisor,
        passes: std::env::var("DECISION_BENCH_PASSES")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(PASSES)
            .max(1),
    }
}

/// Nodes of five shapes, from 4 cores / 8 GiB / 16 slots to 64 cores /
/// 256 GiB / 128 slots, each already running some background load (0 to 60%
/// of its cpu and memory) so that free space varies node to node.
fn fleet(rng: &mut Rng, nodes: usize) -> (Fleet, u64, u64) {
    const SHAPES: [(u32, u32, u32); 5] = [
        (4_000, 8 * 1024, 16),
        (8_000, 32 * 1024, 32),
        (16_000, 64 * 1024, 64),
        (32_000, 128 * 1024, 96),
        (64_000, 256 * 1024, 128),
    ];
    let mut fleet = Fleet::default();
    let (mut cpu_total, mut memory_total) = (0u64, 0u64);
    for i in 0..nodes {
        let (cpu, memory, slots) = SHAPES[rng.below(SHAPES.len() as u64) as usize];
        let id = format!("node-{i:05}");
        let capacity = Capacity {
            cpu_millis: cpu,
            memory_mb: memory,
            slots,
        };
        fleet.upsert_labelled(&id, capacity, BTreeMap::new(), true);
        let load = rng.unit() * 0.6;
        fleet.reserve(
            &id,
            &Resources {
                cpu_millis: (f64::from(cpu) * load) as u32,
                memory_mb: (f64::from(memory) * load * (0.5 + rng.unit())).min(f64::from(memory))
                    as u32,
            },
        );
        cpu_total += u64::from(cpu);
        memory_total += u64::from(memory);
    }
    (fleet, cpu_total, memory_total)
}

/// The tenants' names and weights (1 to 10).
fn tenants(rng: &mut Rng, tenants: usize) -> (Vec<String>, BTreeMap<String, u32>) {
    let names: Vec<String> = (0..tenants).map(|i| format!("tenant-{i:04}")).collect();
    let weights = names
        .iter()
        .map(|name| (name.clone(), 1 + rng.below(10) as u32))
        .collect();
    (names, weights)
}

/// Tasks: tenants skewed (a few busy, many quiet), most at priority 0 and a
/// few higher, cpu-heavy or memory-heavy, with or without an estimate.
fn tasks(rng: &mut Rng, count: usize, tenants: &[String]) -> Vec<Waiting> {
    (0..count)
        .map(|i| {
            let tenant = &tenants[((rng.unit().powi(2)) * tenants.len() as f64) as usize];
            let priority = match rng.below(100) {
                0..=79 => 0,
                80..=94 => 1,
                95..=98 => 2,
                _ => 3,
            };
            let resources = if rng.below(2) == 0 {
                Resources {
                    cpu_millis: 500 + rng.below(7_500) as u32,
                    memory_mb: 256 + rng.below(4_096) as u32,
                }
            } else {
                Resources {
                    cpu_millis: 100 + rng.below(1_900) as u32,
                    memory_mb: 2_048 + rng.below(30_720) as u32,
                }
            };
            let estimated_runtime_ms = (rng.below(4) != 0).then(|| 100 + rng.below(3_600_000));
            Waiting {
                id: Uuid::from_u128(i as u128 + 1),
                attempt: 0,
                request: PlacementRequest {
                    seq: i as i64,
                    kind: TaskKind::Noop,
                    tenant: tenant.clone(),
                    priority,
                    resources,
                    node_selector: BTreeMap::new(),
                    estimated_runtime_ms,
                },
            }
        })
        .collect()
}

struct Row {
    policy: &'static str,
    strategy: &'static str,
    setup: Duration,
    decisions: usize,
    unplaced: usize,
    total: Duration,
    samples: Vec<u32>,
}

fn run(
    kind: PolicyKind,
    strategy: PlacementStrategy,
    pristine: &Fleet,
    capacity: (u64, u64),
    weights: &BTreeMap<String, u32>,
    tasks: &[Waiting],
    scale: &Scale,
) -> Row {
    let none = BTreeMap::new();
    let setup = Instant::now();
    let fleet = pristine.clone();
    // Builds the fleet's index for these rules now, not in the first
    // decision.
    let index_rules = Rules {
        pool_selector: &none,
        task_selector: &none,
        strategy,
        overcommit: 1.0,
    };
    fleet.any_fits_with(&Resources::default(), &index_rules);
    let mut planner = Planner::with_fleet(fleet);
    planner.set_pool(
        POOL,
        Pool {
            strategy,
            ..Pool::default()
        },
    );
    let mut queue = kind.build_classed(weights);
    queue.set_capacity(capacity.0, capacity.1);
    for task in tasks {
        queue.push(task.clone());
    }
    planner.insert_queue(POOL, queue);
    // The first round tells the queue its pool's capacity (the same, as
    // the bench's fleet is the whole pool): not part of a decision.
    planner.plan_round(0);
    let setup = setup.elapsed();

    let mut samples = Vec::with_capacity(scale.decisions);
    let mut running: VecDeque<(String, String, Resources)> = VecDeque::new();
    let mut unplaced = 0;
    let mut total = Duration::ZERO;
    for _ in 0..scale.decisions {
        while running.len() >= scale.running {
            if let Some((node, tenant, resources)) = running.pop_front() {
                planner.release(POOL, &tenant, &node, &resources);
            }
        }
        let start = Instant::now();
        let round = decide(&mut planner);
        let elapsed = start.elapsed();
        total += elapsed;
        samples.push(u32::try_from(elapsed.as_nanos()).unwrap_or(u32::MAX));
        match round.decisions.into_iter().next() {
            Some(Decision { task, placed, .. }) => {
                running.push_back((placed.node_id, task.request.tenant, task.request.resources));
            }
            // Nothing fits now (a node is being held), or, which cannot
            // happen, the policy served what did not fit: counted.
            None => unplaced += 1,
        }
    }
    Row {
        policy: kind.name(),
        strategy: strategy.as_str(),
        setup,
        decisions: scale.decisions,
        unplaced,
        total,
        samples,
    }
}

/// One decision: a round of the scheduler's planner that decides one
/// placement. Kept out of line so that a profile can tell it from the
/// setup.
#[inline(never)]
fn decide(planner: &mut Planner) -> Round {
    planner.plan_round(1)
}

fn mean_ns(row: &Row) -> f64 {
    row.total.as_nanos() as f64 / row.decisions.max(1) as f64
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn main() {
    let scale = scale();
    let mut rng = Rng(0x7A5C_4A2D);
    let started = Instant::now();
    let (pristine, cpu_total, memory_total) = fleet(&mut rng, scale.nodes);
    let (names, weights) = tenants(&mut rng, scale.tenants);
    let tasks = tasks(&mut rng, scale.tasks, &names);
    println!(
        "decision bench: {} nodes, {} queued tasks over {} tenants, {} decisions per row, \
         at most {} running before the oldest finishes; fleet and tasks made in {:.0} ms",
        scale.nodes,
        scale.tasks,
        scale.tenants,
        scale.decisions,
        scale.running,
        started.elapsed().as_secs_f64() * 1e3,
    );
    println!(
        "{:<12} {:<9} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "policy",
        "strategy",
        "decisions",
        "total ms",
        "mean ns",
        "p50 ns",
        "p99 ns",
        "max ns",
        "setup ms"
    );
    let only = std::env::var("DECISION_BENCH_ONLY").unwrap_or_default();
    let mut missed = Vec::new();
    for strategy in [PlacementStrategy::BestFit, PlacementStrategy::Spread] {
        for kind in PolicyKind::ALL {
            if !format!("{}/{}", kind.name(), strategy.as_str()).contains(&only) {
                continue;
            }
            // Each pass starts afresh; the row shows the pass with the
            // lowest mean and lists the others' means.
            let mut passes: Vec<Row> = (0..scale.passes)
                .map(|_| {
                    run(
                        kind,
                        strategy,
                        &pristine,
                        (cpu_total, memory_total),
                        &weights,
                        &tasks,
                        &scale,
                    )
                })
                .collect();
            passes.sort_by_key(|row| row.total);
            let mut passes = passes.into_iter();
            let Some(mut row) = passes.next() else {
                continue;
            };
            let others: Vec<String> = passes
                .map(|other| format!("{:.0}", mean_ns(&other)))
                .collect();
            row.samples.sort_unstable();
            let mean = mean_ns(&row);
            println!(
                "{:<12} {:<9} {:>9} {:>10.1} {:>9.0} {:>9} {:>9} {:>9} {:>9.0}{}",
                row.policy,
                row.strategy,
                row.decisions,
                row.total.as_secs_f64() * 1e3,
                mean,
                percentile(&row.samples, 0.50),
                percentile(&row.samples, 0.99),
                row.samples.last().copied().unwrap_or(0),
                row.setup.as_secs_f64() * 1e3,
                if others.is_empty() {
                    String::new()
                } else {
                    format!("  other passes: {} ns", others.join(", "))
                },
            );
            if row.unplaced > 0 {
                println!("    {} picks placed nothing", row.unplaced);
            }
            if mean > TARGET_NS {
                missed.push(format!("{}/{}", row.policy, row.strategy));
            }
        }
    }
    if missed.is_empty() {
        println!("every policy within {TARGET_NS:.0} ns per decision (mean)");
    } else {
        println!(
            "over {TARGET_NS:.0} ns per decision (mean): {}",
            missed.join(", ")
        );
    }
}
