//! What scheduling theory predicts, checked on small fixed workloads: each
//! test builds a workload where the prediction is sharp and runs the real
//! policies on it.

use std::collections::BTreeMap;
use taskyard_simulator::{
    Cluster, Generator, PolicyKind, PolicyReport, Task, TenantReport, Workload, run, simulate,
};
use taskyard_wire::TaskKind;
use taskyard_wire::pool::PlacementStrategy;

fn task(arrival_ms: u64, tenant: &str, cpu: u32, memory: u32, runtime_ms: u64) -> Task {
    Task {
        arrival_ms,
        tenant: tenant.to_owned(),
        kind: TaskKind::Sleep,
        cpu_millis: cpu,
        memory_mb: memory,
        runtime_ms,
        estimated_runtime_ms: Some(runtime_ms),
        priority: 0,
        pool: "default".to_owned(),
    }
}

fn cluster(nodes: u32, cpu: u32, memory: u32) -> Cluster {
    Cluster {
        nodes,
        cpu_millis: cpu,
        memory_mb: memory,
        slots: 1000,
        strategy: PlacementStrategy::BestFit,
        overcommit: 1.0,
    }
}

fn workload(tenants: &[(&str, u32)], tasks: Vec<Task>) -> Workload {
    Workload {
        cluster: None,
        tenants: tenants.iter().map(|(n, w)| (n.to_string(), *w)).collect(),
        pools: BTreeMap::new(),
        tasks,
    }
}

fn policy(name: &str) -> PolicyKind {
    PolicyKind::parse(name).unwrap_or_else(|| panic!("{name} is a policy"))
}

fn tenant<'a>(report: &'a PolicyReport, name: &str) -> &'a TenantReport {
    report
        .tenants
        .iter()
        .find(|t| t.tenant == name)
        .unwrap_or_else(|| panic!("tenant {name} in the report"))
}

fn share(report: &PolicyReport, name: &str) -> f64 {
    tenant(report, name)
        .share
        .expect("service while backlogged")
}

/// Shortest job first minimises mean completion time on one machine; with
/// long and short jobs mixed, SJF's mean turnaround is below FCFS's.
#[test]
fn sjf_turns_around_faster_than_fcfs_on_mixed_jobs() {
    // Every sixth task is a minute long, the others a second; two at a time.
    let tasks = (0..60u64)
        .map(|i| {
            let runtime = if i % 6 == 0 { 60_000 } else { 1_000 };
            task(i * 100, "t", 1000, 256, runtime)
        })
        .collect();
    let workload = workload(&[("t", 1)], tasks);
    let cluster = cluster(1, 2000, 4096);
    let fcfs = simulate(&workload, &cluster, PolicyKind::Fcfs).expect("fcfs runs");
    let sjf = simulate(&workload, &cluster, policy("sjf")).expect("sjf runs");
    assert_eq!((fcfs.tasks, sjf.tasks), (60, 60));
    assert!(
        sjf.mean_turnaround_ms <= fcfs.mean_turnaround_ms,
        "sjf {} vs fcfs {}",
        sjf.mean_turnaround_ms,
        fcfs.mean_turnaround_ms
    );
    // Not a near thing: the short jobs stop waiting behind the long ones.
    assert!(sjf.mean_turnaround_ms < 0.8 * fcfs.mean_turnaround_ms);
}

/// Two tenants with equal tasks, both backlogged, weights 3:1: WFQ serves
/// them 3:1.
#[test]
fn wfq_serves_backlogged_tenants_in_the_ratio_of_their_weights() {
    let mut tasks = Vec::new();
    for _ in 0..400 {
        tasks.push(task(0, "a", 1000, 256, 1000));
        tasks.push(task(0, "b", 1000, 256, 1000));
    }
    let workload = workload(&[("a", 3), ("b", 1)], tasks);
    let report = simulate(&workload, &cluster(1, 4000, 4096), policy("wfq")).expect("wfq runs");
    assert!(report.backlogged_ms > 0);
    let ratio = share(&report, "a") / share(&report, "b");
    assert!((ratio / 3.0 - 1.0).abs() <= 0.10, "a:b = {ratio}");
    assert!(report.fairness.is_some_and(|f| f > 0.99), "{report:?}");

    // FCFS, for contrast, ignores the weights: 1:1.
    let fcfs = simulate(&workload, &cluster(1, 4000, 4096), PolicyKind::Fcfs).expect("runs");
    let ratio = share(&fcfs, "a") / share(&fcfs, "b");
    assert!((ratio - 1.0).abs() <= 0.10, "fcfs a:b = {ratio}");
}

/// Round robin gives each backlogged tenant a turn, so equal tenants get
/// equal service however much more one of them submits.
#[test]
fn round_robin_gives_equal_tenants_equal_shares() {
    // a submits three tasks for every one of b's and c's.
    let mut tasks = Vec::new();
    for i in 0..150u64 {
        for name in ["a", "a", "a", "b", "c"] {
            tasks.push(task(i, name, 1000, 256, 1000));
        }
    }
    let workload = workload(&[("a", 1), ("b", 1), ("c", 1)], tasks);
    let cluster = cluster(1, 4000, 4096);
    let report = simulate(&workload, &cluster, policy("round_robin")).expect("runs");
    for name in ["a", "b", "c"] {
        let s = share(&report, name);
        assert!((s * 3.0 - 1.0).abs() <= 0.10, "{name}: {s}");
    }
    assert!(report.fairness.is_some_and(|f| f > 0.99));

    // FCFS serves in submission order: a gets three fifths.
    let fcfs = simulate(&workload, &cluster, PolicyKind::Fcfs).expect("runs");
    assert!(share(&fcfs, "a") > 0.55, "{}", share(&fcfs, "a"));
}

/// Dominant Resource Fairness equalises dominant shares: a CPU-heavy and a
/// memory-heavy tenant end up holding the same fraction of their own
/// bottleneck resource.
#[test]
fn drf_equalises_dominant_shares() {
    let Some(drf) = PolicyKind::parse("drf") else {
        eprintln!("skipped: this build of taskyard-policy has no drf policy");
        return;
    };
    // On nodes of 16 cores and 16 GiB, a "cpu" task holds a quarter of a
    // node's CPU and a "memory" task a quarter of its memory: equal
    // dominant shares mean as many of each running (three of each per node,
    // after which neither kind fits). The cpu tenant submits first.
    let mut tasks = Vec::new();
    for _ in 0..300 {
        tasks.push(task(0, "cpu", 4000, 512, 1000));
    }
    for _ in 0..300 {
        tasks.push(task(0, "memory", 250, 4096, 1000));
    }
    let workload = workload(&[("cpu", 1), ("memory", 1)], tasks);
    let cluster = cluster(4, 16_000, 16_384);
    let report = simulate(&workload, &cluster, drf).expect("drf runs");
    let cpu = tenant(&report, "cpu").dominant_share.expect("backlogged");
    let memory = tenant(&report, "memory")
        .dominant_share
        .expect("backlogged");
    assert!(
        (cpu / memory - 1.0).abs() <= 0.10,
        "cpu {cpu} vs memory {memory}"
    );
    assert!(report.dominant_fairness.is_some_and(|f| f > 0.99));

    // FCFS, for contrast, serves in submission order: the cpu tenant takes
    // every core and the memory tenant's tasks, which need a little CPU
    // too, wait.
    let fcfs = simulate(&workload, &cluster, PolicyKind::Fcfs).expect("runs");
    let cpu = tenant(&fcfs, "cpu").dominant_share.expect("backlogged");
    let memory = tenant(&fcfs, "memory").dominant_share.expect("backlogged");
    assert!(memory < 0.5 * cpu, "fcfs: cpu {cpu} vs memory {memory}");
}

/// The same seed gives the same workload and the same report, to the bit.
#[test]
fn the_same_seed_gives_the_same_report() {
    let settings = Generator {
        tasks: 600,
        tenants: [("a", 3), ("b", 1), ("c", 1)]
            .into_iter()
            .map(|(n, w)| (n.to_owned(), w))
            .collect::<BTreeMap<_, _>>(),
        cluster: Cluster::of(3),
        seed: 42,
        ..Generator::default()
    };
    let report = |settings: &Generator| {
        let workload = settings.generate().expect("a workload");
        run(&workload, &settings.cluster, &PolicyKind::ALL).expect("every policy runs")
    };
    let first = report(&settings);
    let second = report(&settings);
    assert_eq!(first, second);
    assert_eq!(
        serde_json::to_string(&first).expect("json"),
        serde_json::to_string(&second).expect("json")
    );
    assert_eq!(first.policies.len(), PolicyKind::ALL.len());
    assert!(first.policies.iter().all(|p| p.tasks == 600));
    let other = report(&Generator {
        seed: 43,
        ..settings
    });
    assert_ne!(first, other);
}

/// A workload file with a bad field says which.
#[test]
fn a_bad_field_in_a_workload_file_is_named() {
    let text = r#"{
  "tenants": {"a": 1},
  "tasks": [
    {"arrival_ms": 0, "tenant": "a", "cpu_millis": 100, "memory_mb": 64, "runtime_ms": 10},
    {"arrival_ms": 1, "tenant": "a", "cpu_millis": 100, "memory_mb": -64, "runtime_ms": 10}
  ]
}"#;
    let err = Workload::from_json(text).expect_err("memory cannot be negative");
    assert_eq!(err.field(), Some("tasks[1].memory_mb"));
    assert!(err.to_string().contains("line 5"), "{err}");
}

/// The documented whole-node workload (docs/simulator.md, finding 4): under
/// every policy, the whole-node tasks wait about a second, not until the
/// stream of small tasks ends (18.5 s on average before nodes were held).
#[test]
fn the_documented_whole_node_tasks_are_not_starved() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/workloads/whole-node.json");
    let workload = Workload::load(&path).expect("the documented workload reads");
    let cluster = workload.cluster_or_default();
    for policy in PolicyKind::ALL {
        let report = simulate(&workload, &cluster, policy).expect("runs");
        let big = report
            .tenants
            .iter()
            .find(|t| t.tenant == "big")
            .expect("the big tenant is reported");
        assert_eq!(big.tasks, 3, "{policy}");
        assert!(big.mean_wait_ms < 1500.0, "{policy}: {}", big.mean_wait_ms);
        assert!(
            report.max_wait_ms < 2500,
            "{policy}: {}",
            report.max_wait_ms
        );
    }
}
