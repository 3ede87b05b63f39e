//! Pool quotas in simulation: the scheduler's round applies them, so a cap
//! that binds shows in the waits and the makespan, exactly as the cap
//! predicts, under every policy. (The engine also counts each pool's
//! running tasks itself and fails the run if a quota is ever exceeded.)

use std::collections::BTreeMap;
use taskyard_simulator::{Cluster, PolicyKind, PolicyReport, PoolQuotas, Task, Workload, simulate};
use taskyard_wire::TaskKind;

/// A task of one second, arriving at 0.
fn task(tenant: &str, pool: &str, cpu_millis: u32) -> Task {
    Task {
        arrival_ms: 0,
        tenant: tenant.to_owned(),
        kind: TaskKind::Sleep,
        cpu_millis,
        memory_mb: 100,
        runtime_ms: 1000,
        estimated_runtime_ms: Some(1000),
        priority: 0,
        pool: pool.to_owned(),
    }
}

fn workload(pools: &[(&str, PoolQuotas)], tasks: Vec<Task>) -> Workload {
    let mut tenants: BTreeMap<String, u32> = BTreeMap::new();
    for task in &tasks {
        tenants.insert(task.tenant.clone(), 1);
    }
    Workload {
        cluster: None,
        tenants,
        pools: pools.iter().map(|(n, q)| (n.to_string(), *q)).collect(),
        tasks,
    }
}

/// One node with room for every task at once: only a quota makes anyone
/// wait.
fn roomy(cpu_millis: u32) -> Cluster {
    Cluster {
        nodes: 1,
        cpu_millis,
        ..Cluster::default()
    }
}

fn mean_wait_of(report: &PolicyReport, tenant: &str) -> f64 {
    report
        .tenants
        .iter()
        .find(|t| t.tenant == tenant)
        .map(|t| t.mean_wait_ms)
        .unwrap_or_else(|| panic!("{tenant} is reported"))
}

/// Twelve one-second tasks that one node could run together, in a pool
/// capped at three: they run three at a time, so the last starts at 3 s
/// and the run takes 4 s. A fourth at once would end it sooner.
#[test]
fn a_pool_cap_holds_the_pool_to_its_limit() {
    let tasks = (0..12).map(|_| task("t", "default", 1000)).collect();
    let capped = PoolQuotas {
        max_running: Some(3),
        ..PoolQuotas::default()
    };
    let uncapped = workload(&[], (0..12).map(|_| task("t", "default", 1000)).collect());
    let capped = workload(&[("default", capped)], tasks);
    for policy in PolicyKind::ALL {
        let free = simulate(&uncapped, &roomy(16_000), policy).expect("runs");
        assert_eq!(free.makespan_ms, 1000, "{policy}: no cap, no wait");
        let report = simulate(&capped, &roomy(16_000), policy).expect("runs within its cap");
        assert_eq!(report.tasks, 12, "{policy}");
        assert_eq!(report.makespan_ms, 4000, "{policy}");
        assert_eq!(report.max_wait_ms, 3000, "{policy}");
        assert_eq!(report.mean_wait_ms, 1500.0, "{policy}");
    }
}

/// A tenant capped at two running tasks waits for its own, while the
/// pool's other tenant goes straight through.
#[test]
fn a_tenant_cap_holds_back_that_tenant_only() {
    let mut tasks: Vec<Task> = (0..8).map(|_| task("busy", "default", 1000)).collect();
    tasks.extend((0..2).map(|_| task("quiet", "default", 1000)));
    let quotas = PoolQuotas {
        tenant_max_running: Some(2),
        ..PoolQuotas::default()
    };
    let workload = workload(&[("default", quotas)], tasks);
    for policy in PolicyKind::ALL {
        let report = simulate(&workload, &roomy(16_000), policy).expect("runs within its caps");
        // busy's eight run two at a time: waits 0, 0, 1, 1, 2, 2, 3, 3 s.
        assert_eq!(mean_wait_of(&report, "busy"), 1500.0, "{policy}");
        assert_eq!(mean_wait_of(&report, "quiet"), 0.0, "{policy}");
        assert_eq!(report.makespan_ms, 4000, "{policy}");
    }
}

/// Two pools on one node of four cores: `batch` may hold one core, so its
/// tasks run one after another while the default pool takes the rest. The
/// pools take turns, as in the scheduler's round.
#[test]
fn a_cpu_quota_binds_one_pool_while_another_shares_its_nodes() {
    let mut tasks: Vec<Task> = (0..4).map(|_| task("d", "default", 1000)).collect();
    tasks.extend((0..4).map(|_| task("b", "batch", 1000)));
    let quotas = PoolQuotas {
        max_cpu_millis: Some(1000),
        ..PoolQuotas::default()
    };
    let workload = workload(&[("batch", quotas)], tasks);
    for policy in PolicyKind::ALL {
        let report = simulate(&workload, &roomy(4000), policy).expect("runs within its quota");
        // batch: one at a time, waits 0, 1, 2, 3 s. default: three cores
        // at once at first, then the fourth task at 1 s.
        assert_eq!(mean_wait_of(&report, "b"), 1500.0, "{policy}");
        assert_eq!(mean_wait_of(&report, "d"), 250.0, "{policy}");
        assert_eq!(report.makespan_ms, 4000, "{policy}");
    }
}

/// Generated workloads split over two pools with quotas drawn per seed:
/// every policy runs every task, and the engine, which counts each pool's
/// running tasks, CPU and memory and each tenant's running tasks itself,
/// never sees a quota exceeded (it would fail the run).
#[test]
fn random_quotas_are_never_exceeded_and_every_task_runs() {
    for seed in 1..=16u64 {
        let settings = taskyard_simulator::Generator {
            tasks: 200,
            tenants: [("a", 3), ("b", 1), ("c", 1)]
                .into_iter()
                .map(|(n, w)| (n.to_owned(), w))
                .collect::<BTreeMap<_, _>>(),
            cluster: Cluster {
                nodes: 2,
                cpu_millis: 8000,
                memory_mb: 32_768,
                ..Cluster::default()
            },
            seed,
            ..taskyard_simulator::Generator::default()
        };
        let mut workload = settings.generate().expect("a workload");
        // A fixed scatter of tasks over the pools, different per seed.
        for (index, task) in workload.tasks.iter_mut().enumerate() {
            if (index as u64)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed)
                % 3
                == 0
            {
                task.pool = "batch".to_owned();
            }
        }
        let largest = |of: fn(&Task) -> u32| {
            workload
                .tasks
                .iter()
                .filter(|t| t.pool == "batch")
                .map(of)
                .max()
                .unwrap_or(1)
        };
        let batch = PoolQuotas {
            max_cpu_millis: Some(largest(|t| t.cpu_millis) * (1 + (seed % 3) as u32)),
            max_memory_mb: Some(largest(|t| t.memory_mb) * (1 + (seed % 2) as u32)),
            tenant_max_running: Some(1 + (seed % 3) as u32),
            ..PoolQuotas::default()
        };
        let default = PoolQuotas {
            max_running: Some(1 + (seed % 6) as u32),
            ..PoolQuotas::default()
        };
        workload.pools = [("batch".to_owned(), batch), ("default".to_owned(), default)]
            .into_iter()
            .collect();
        for policy in PolicyKind::ALL {
            let report = simulate(&workload, &settings.cluster, policy)
                .unwrap_or_else(|err| panic!("seed {seed}, {policy}: {err}"));
            assert_eq!(report.tasks, 200, "seed {seed}, {policy}");
        }
    }
}
