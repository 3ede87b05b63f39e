//! Synthetic workloads: Poisson arrivals, heavy-tailed runtimes, several
//! weighted tenants, a mix of CPU-heavy and memory-heavy requests. Seeded
//! with a portable generator (ChaCha8), so a seed gives the same workload on
//! every machine and every run.
//!
//! # What a task looks like
//! - **Tenant**: drawn uniformly, so every tenant offers the same load and
//!   any difference in what they get comes from the policy.
//! - **Request**: tenants alternate in profile (in name order): the first,
//!   third, … ask for CPU-heavy requests 80% of the time, the others for
//!   memory-heavy ones 80% of the time. CPU-heavy: 1, 2 or 4 cores with
//!   0.5 to 2 GiB; memory-heavy: 0.25 to 1 core with 4 to 16 GiB. On the
//!   default node (16 cores, 64 GiB) both kinds take about the same share of
//!   their dominant resource, so dominant shares are comparable. Requests
//!   larger than a node are cut to the node.
//! - **Runtime**: bounded Pareto (see [`Runtimes`]): most tasks are short,
//!   a few are very long.
//! - **Estimate**: the runtime times a log-normal error (see
//!   [`Generator::estimate_noise`]), what SJF and WFQ see.
//! - **Arrivals**: a Poisson process at a fixed rate, or at the rate that
//!   offers a given load on the busier of CPU and memory (see [`Arrivals`]).
//!   With [`Generator::batch`] above 1, what arrives is a submission of
//!   several tasks of one tenant at once (a compound Poisson process, sizes
//!   geometric with that mean): the same load, in bursts.

use crate::workload::{Cluster, DEFAULT_POOL, Task, Workload};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use taskyard_wire::TaskKind;

/// Tenants when none are named.
pub const DEFAULT_TENANTS: usize = 4;
/// The load arrivals offer when the rate is not given.
pub const DEFAULT_LOAD: f64 = 0.9;
/// The chance that a task follows its tenant's profile (CPU- or
/// memory-heavy) rather than the other one.
const PROFILE_BIAS: f64 = 0.8;
/// CPU-heavy requests: (millicores, MiB), one drawn uniformly for each.
const CPU_HEAVY_CPU: [u32; 3] = [1000, 2000, 4000];
const CPU_HEAVY_MEMORY: [u32; 3] = [512, 1024, 2048];
/// Memory-heavy requests.
const MEMORY_HEAVY_CPU: [u32; 3] = [250, 500, 1000];
const MEMORY_HEAVY_MEMORY: [u32; 3] = [4096, 8192, 16384];

/// How fast tasks arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrivals {
    /// This many tasks per second, on average.
    PerSecond(f64),
    /// The rate at which the tasks' work, on the busier of CPU and memory,
    /// comes to this fraction of the cluster's capacity (1.0 = exactly
    /// full). The rate is computed from the drawn tasks themselves, so the
    /// offered load is exact, not an expectation.
    Load(f64),
}

/// Bounded Pareto runtimes: shape `alpha` between `min_ms` and `max_ms`.
/// The defaults (alpha 1.5 from 1 s to 2 min) give a mean near 2.7 s, a
/// median near 1.6 s, and one task in a thousand above 1 min.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Runtimes {
    pub min_ms: u64,
    pub max_ms: u64,
    pub alpha: f64,
}

impl Default for Runtimes {
    fn default() -> Self {
        Runtimes {
            min_ms: 1_000,
            max_ms: 120_000,
            alpha: 1.5,
        }
    }
}

/// The settings of a generated workload. Every field has a default.
#[derive(Debug, Clone, PartialEq)]
pub struct Generator {
    /// How many tasks.
    pub tasks: usize,
    /// The tenants and their weights.
    pub tenants: BTreeMap<String, u32>,
    /// The nodes, which the load is relative to.
    pub cluster: Cluster,
    /// How fast tasks arrive.
    pub arrivals: Arrivals,
    /// The runtime distribution.
    pub runtimes: Runtimes,
    /// Mean tasks per submission (1 = every task arrives on its own).
    pub batch: f64,
    /// Standard deviation of the natural log of estimate/runtime: 0 gives
    /// exact estimates, 0.5 (the default) estimates mostly within a factor
    /// of 0.6 to 1.6.
    pub estimate_noise: f64,
    /// The seed of the random generator.
    pub seed: u64,
}

impl Default for Generator {
    fn default() -> Self {
        Generator {
            tasks: 1000,
            tenants: (1..=DEFAULT_TENANTS)
                .map(|i| (format!("t{i}"), 1))
                .collect(),
            cluster: Cluster::default(),
            arrivals: Arrivals::Load(DEFAULT_LOAD),
            runtimes: Runtimes::default(),
            batch: 1.0,
            estimate_noise: 0.5,
            seed: 1,
        }
    }
}

/// A setting the generator cannot work with; `field` names it as
/// [`Generator`] does.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct GeneratorError {
    pub field: String,
    pub message: String,
}

fn refuse(field: &str, message: impl Into<String>) -> GeneratorError {
    GeneratorError {
        field: field.to_owned(),
        message: message.into(),
    }
}

impl Generator {
    /// The tenants of a generated workload: those `weights` name, with their
    /// weights, then `t1`, `t2`, … (weight 1, skipping names taken) up to
    /// `count` tenants in all. Without a count, the weighted tenants, or
    /// [`DEFAULT_TENANTS`] when there are none.
    pub fn tenants_named(
        count: Option<usize>,
        weights: &[(String, u32)],
    ) -> Result<BTreeMap<String, u32>, GeneratorError> {
        let mut tenants = BTreeMap::new();
        for (name, weight) in weights {
            if name.is_empty() {
                return Err(refuse("weights", "a tenant needs a name"));
            }
            if *weight == 0 {
                return Err(refuse(
                    "weights",
                    format!("{name}: a weight must be at least 1"),
                ));
            }
            if tenants.insert(name.clone(), *weight).is_some() {
                return Err(refuse("weights", format!("{name} is weighted twice")));
            }
        }
        let count = match count {
            Some(count) => count,
            None if tenants.is_empty() => DEFAULT_TENANTS,
            None => tenants.len(),
        };
        if count == 0 {
            return Err(refuse("tenants", "must be at least 1"));
        }
        if count < tenants.len() {
            return Err(refuse(
                "tenants",
                format!("{count} tenants, but the weights name {}", tenants.len()),
            ));
        }
        let mut next = 1;
        while tenants.len() < count {
            tenants.entry(format!("t{next}")).or_insert(1);
            next += 1;
        }
        Ok(tenants)
    }

    fn check(&self) -> Result<(), GeneratorError> {
        if self.tasks == 0 {
            return Err(refuse("tasks", "must be at least 1"));
        }
        if self.tenants.is_empty() {
            return Err(refuse("tenants", "must be at least 1"));
        }
        if let Some((name, _)) = self.tenants.iter().find(|(_, w)| **w == 0) {
            return Err(refuse(
                "weights",
                format!("{name}: a weight must be at least 1"),
            ));
        }
        match self.arrivals {
            Arrivals::PerSecond(rate) if !(rate.is_finite() && rate > 0.0) => {
                return Err(refuse("rate", "must be a positive number"));
            }
            Arrivals::Load(load) if !(load.is_finite() && load > 0.0) => {
                return Err(refuse("load", "must be a positive number"));
            }
            _ => {}
        }
        let Runtimes {
            min_ms,
            max_ms,
            alpha,
        } = self.runtimes;
        if min_ms == 0 || max_ms < min_ms {
            return Err(refuse("runtimes", "need 1 <= min_ms <= max_ms".to_owned()));
        }
        if !(alpha.is_finite() && alpha > 0.0) {
            return Err(refuse("runtimes", "alpha must be a positive number"));
        }
        if !(self.batch.is_finite() && self.batch >= 1.0) {
            return Err(refuse("batch", "must be a number of at least 1"));
        }
        if !(self.estimate_noise.is_finite() && self.estimate_noise >= 0.0) {
            return Err(refuse("estimate_noise", "must be a number of at least 0"));
        }
        let probe = Workload {
            cluster: Some(self.cluster.clone()),
            tenants: self.tenants.clone(),
            pools: BTreeMap::new(),
            tasks: Vec::new(),
        };
        probe
            .check_against(&self.cluster)
            .map_err(|err| refuse(err.field().unwrap_or("cluster"), err.to_string()))
    }

    /// Draws the workload. The same settings give the same workload.
    pub fn generate(&self) -> Result<Workload, GeneratorError> {
        self.check()?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let names: Vec<&String> = self.tenants.keys().collect();
        let (node_cpu, node_memory) = self.cluster.reservable();
        let cap = |value: u32, limit: u64| u32::try_from(limit).map_or(value, |l| value.min(l));
        let mut tasks = Vec::with_capacity(self.tasks);
        // Each task's submission, by position in `tasks`.
        let mut submission_of = Vec::with_capacity(self.tasks);
        let mut submissions = 0usize;
        while tasks.len() < self.tasks {
            let size = self.batch_size(&mut rng).min(self.tasks - tasks.len());
            let tenant = rng.random_range(0..names.len());
            for _ in 0..size {
                let cpu_profile = tenant % 2 == 0;
                let cpu_heavy = if rng.random_bool(PROFILE_BIAS) {
                    cpu_profile
                } else {
                    !cpu_profile
                };
                let (cpus, memories) = if cpu_heavy {
                    (CPU_HEAVY_CPU, CPU_HEAVY_MEMORY)
                } else {
                    (MEMORY_HEAVY_CPU, MEMORY_HEAVY_MEMORY)
                };
                let cpu = cpus[rng.random_range(0..cpus.len())];
                let memory = memories[rng.random_range(0..memories.len())];
                let runtime_ms = self.runtime(&mut rng);
                let estimated_runtime_ms = Some(self.estimate(&mut rng, runtime_ms));
                tasks.push(Task {
                    arrival_ms: 0,
                    tenant: names[tenant].clone(),
                    kind: TaskKind::Sleep,
                    cpu_millis: cap(cpu, node_cpu),
                    memory_mb: cap(memory, node_memory),
                    runtime_ms,
                    estimated_runtime_ms,
                    priority: 0,
                    pool: DEFAULT_POOL.to_owned(),
                });
                submission_of.push(submissions);
            }
            submissions += 1;
        }
        let per_ms = match self.arrivals {
            Arrivals::PerSecond(rate) => rate / 1000.0,
            Arrivals::Load(load) => {
                // Work per task on each resource, as a fraction of the
                // cluster's capacity per millisecond; the busier one sets
                // the rate: load = rate × work per task.
                let work = |of: fn(&Task) -> u32, capacity: u64| {
                    tasks
                        .iter()
                        .map(|t| f64::from(of(t)) * t.runtime_ms as f64)
                        .sum::<f64>()
                        / capacity.max(1) as f64
                        / tasks.len() as f64
                };
                let cpu = work(|t| t.cpu_millis, self.cluster.total_cpu_millis());
                let memory = work(|t| t.memory_mb, self.cluster.total_memory_mb());
                load / cpu.max(memory).max(f64::MIN_POSITIVE)
            }
        };
        // Submissions arrive at the task rate over the mean batch size.
        let per_ms = per_ms * submissions as f64 / tasks.len() as f64;
        let mut clock = 0.0f64;
        let mut arrival_ms = Vec::with_capacity(submissions);
        for _ in 0..submissions {
            // Exponential gaps: -ln(U)/rate with U in (0, 1].
            let uniform = 1.0 - rng.random::<f64>();
            clock += -uniform.ln() / per_ms;
            arrival_ms.push(clock as u64);
        }
        for (task, submission) in tasks.iter_mut().zip(submission_of) {
            task.arrival_ms = arrival_ms[submission];
        }
        Ok(Workload {
            cluster: Some(self.cluster.clone()),
            tenants: self.tenants.clone(),
            pools: BTreeMap::new(),
            tasks,
        })
    }

    /// Tasks in the next submission: 1, or geometric with mean `batch`.
    fn batch_size(&self, rng: &mut ChaCha8Rng) -> usize {
        if self.batch <= 1.0 {
            return 1;
        }
        let uniform = 1.0 - rng.random::<f64>();
        let failures = uniform.ln() / (1.0 - 1.0 / self.batch).ln();
        1 + failures as usize
    }

    /// A bounded Pareto draw by inverting its distribution function.
    fn runtime(&self, rng: &mut ChaCha8Rng) -> u64 {
        let Runtimes {
            min_ms,
            max_ms,
            alpha,
        } = self.runtimes;
        let (low, high) = (min_ms as f64, max_ms as f64);
        let uniform: f64 = rng.random();
        let tail = 1.0 - uniform * (1.0 - (low / high).powf(alpha));
        let value = low / tail.powf(1.0 / alpha);
        (value.round() as u64).clamp(min_ms, max_ms)
    }

    /// The runtime times exp(noise × Z), Z standard normal (Box–Muller).
    fn estimate(&self, rng: &mut ChaCha8Rng, runtime_ms: u64) -> u64 {
        let first = 1.0 - rng.random::<f64>();
        let second: f64 = rng.random();
        let normal = (-2.0 * first.ln()).sqrt() * (std::f64::consts::TAU * second).cos();
        let value = runtime_ms as f64 * (self.estimate_noise * normal).exp();
        (value.round() as u64).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_workload() {
        let settings = Generator {
            tasks: 300,
            ..Generator::default()
        };
        let first = settings.generate().expect("a workload");
        assert_eq!(first, settings.generate().expect("a workload"));
        let other = Generator {
            seed: 2,
            ..settings.clone()
        };
        assert_ne!(first, other.generate().expect("a workload"));
        first.check().expect("a generated workload is valid");
    }

    #[test]
    fn runtimes_and_arrivals_follow_their_settings() {
        let settings = Generator {
            tasks: 20_000,
            arrivals: Arrivals::PerSecond(100.0),
            ..Generator::default()
        };
        let workload = settings.generate().expect("a workload");
        let runtimes: Vec<u64> = workload.tasks.iter().map(|t| t.runtime_ms).collect();
        assert!(runtimes.iter().all(|r| (1_000..=120_000).contains(r)));
        let mean = runtimes.iter().sum::<u64>() as f64 / runtimes.len() as f64;
        // Bounded Pareto(1.5, 1 s, 120 s) has mean ≈ 2.73 s.
        assert!((2_400.0..3_100.0).contains(&mean), "mean runtime {mean}");
        // 20,000 arrivals at 100/s span about 200 s.
        let last = workload.tasks.last().map_or(0, |t| t.arrival_ms);
        assert!((190_000..210_000).contains(&last), "last arrival {last}");
        assert!(
            workload
                .tasks
                .windows(2)
                .all(|w| w[0].arrival_ms <= w[1].arrival_ms)
        );
    }

    #[test]
    fn tenants_come_from_the_weights_then_from_the_count() {
        let weights = vec![("a".to_owned(), 3), ("b".to_owned(), 1)];
        let named = Generator::tenants_named(None, &weights).expect("tenants");
        assert_eq!(named.len(), 2);
        let more = Generator::tenants_named(Some(4), &weights).expect("tenants");
        assert_eq!(
            more.into_iter().collect::<Vec<_>>(),
            vec![
                ("a".to_owned(), 3),
                ("b".to_owned(), 1),
                ("t1".to_owned(), 1),
                ("t2".to_owned(), 1)
            ]
        );
        let err = Generator::tenants_named(Some(1), &weights).expect_err("too few");
        assert_eq!(err.field, "tenants");
        let err = Generator::tenants_named(None, &[("a".to_owned(), 0)]).expect_err("zero");
        assert_eq!(err.field, "weights");
    }
}
