//! A discrete-event simulator for Taskyard's scheduling policies.
//!
//! It runs the very planning round of `taskyard-policy` that the scheduler
//! service runs (queue policies, placement, pools taking turns, quotas), in
//! virtual time, on a workload of tasks with arrival times, requests and
//! runtimes, and reports for each policy the waits, turnaround, makespan,
//! utilisation and fairness across tenants. It checks its own invariants as
//! it goes (no task lost or run twice, no node over capacity, no pool past
//! its quotas) and is deterministic: the same workload, or the same
//! generator seed, gives the same report.
//!
//! # Layout
//! - [`workload`]: the [`Workload`] (cluster, weighted tenants, pools with
//!   their quotas, tasks), its JSON file format and its typed
//!   [`WorkloadError`]s.
//! - [`generator`]: synthetic workloads ([`Generator`]): Poisson arrivals,
//!   bounded-Pareto runtimes, CPU- and memory-heavy requests, seeded.
//! - [`engine`]: the event loop that drives the scheduler's round over the
//!   workload's pools ([`simulate`]), and the invariants it checks
//!   ([`SimulationError`]).
//! - [`report`]: the metrics and their definitions ([`Report`]).

pub mod engine;
pub mod generator;
pub mod report;
pub mod workload;

pub use engine::{SimulationError, simulate, simulate_all, simulate_pools, simulate_queue};
pub use generator::{Arrivals, Generator, GeneratorError, Runtimes};
pub use report::{PolicyReport, Report, TenantReport, WorkloadSummary, jain};
pub use taskyard_policy::PolicyKind;
pub use workload::{Cluster, DEFAULT_POOL, PoolQuotas, Task, Workload, WorkloadError};

/// Runs `workload` on `cluster` under each of `policies` and reports them
/// together.
pub fn run(
    workload: &Workload,
    cluster: &Cluster,
    policies: &[PolicyKind],
) -> Result<Report, SimulationError> {
    Ok(Report {
        workload: WorkloadSummary::of(workload, cluster),
        policies: simulate_all(workload, cluster, policies)?,
    })
}
