//! What a run measured: per policy, waits, turnaround, makespan,
//! utilisation and fairness; per tenant, its share of service and of the
//! cluster.
//!
//! # Definitions
//! - **wait**: from arrival to start (placement). **turnaround**: from
//!   arrival to completion. p99 is the nearest-rank 99th percentile.
//! - **makespan**: from the first arrival to the last completion.
//! - **utilisation**: CPU-time used (Σ cpu_millis × runtime_ms) over CPU-time
//!   offered (the nodes' total CPU × makespan); the same for memory.
//! - **backlogged time**: the time during which *every* tenant (of those
//!   with any task in the workload) had at least one task waiting, not
//!   merely running. Fairness is measured there only: a tenant with nothing
//!   waiting is not being held back, and over a whole run below saturation
//!   every tenant gets all it asked for, whatever the policy.
//! - **service** of a tenant: Σ over its running tasks of cpu_millis × time
//!   run, during backlogged time only. **share**: its part of all tenants'
//!   service; **share/weight**: share divided by its weight's part of all
//!   weights (1.0 = exactly its weighted share).
//! - **fairness**: Jain's index of weight-normalised service, (Σx)²/(n·Σx²)
//!   with x = service / weight: 1.0 when service follows the weights
//!   exactly, 1/n when one tenant gets everything.
//! - **dominant share** of a tenant: the larger of its CPU and its memory
//!   held, each as a fraction of the cluster's; averaged over backlogged
//!   time. DRF aims to make these equal (weighted: proportional to weight).

use crate::workload::{Cluster, PoolQuotas, Task, Workload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The workload a report is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSummary {
    pub tasks: usize,
    pub tenants: BTreeMap<String, u32>,
    pub cluster: Cluster,
    /// The pools the workload lists, with their quotas; empty for one
    /// `default` pool without quotas.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pools: BTreeMap<String, PoolQuotas>,
    /// From the first arrival to the last.
    pub arrival_span_ms: u64,
    /// CPU-time asked for over CPU-time the cluster offers during the
    /// arrival span; none when every task arrives at once.
    pub offered_cpu_load: Option<f64>,
    /// The same for memory.
    pub offered_memory_load: Option<f64>,
}

impl WorkloadSummary {
    pub fn of(workload: &Workload, cluster: &Cluster) -> Self {
        let first = workload.tasks.iter().map(|t| t.arrival_ms).min();
        let last = workload.tasks.iter().map(|t| t.arrival_ms).max();
        let span = last.unwrap_or(0) - first.unwrap_or(0);
        let load = |of: fn(&Task) -> u32, capacity: u64| {
            (span > 0 && capacity > 0).then(|| {
                let work: f64 = workload
                    .tasks
                    .iter()
                    .map(|t| f64::from(of(t)) * t.runtime_ms as f64)
                    .sum();
                work / (capacity as f64 * span as f64)
            })
        };
        WorkloadSummary {
            tasks: workload.tasks.len(),
            tenants: workload.tenants.clone(),
            cluster: cluster.clone(),
            pools: workload.pools.clone(),
            arrival_span_ms: span,
            offered_cpu_load: load(|t| t.cpu_millis, cluster.total_cpu_millis()),
            offered_memory_load: load(|t| t.memory_mb, cluster.total_memory_mb()),
        }
    }
}

/// One tenant under one policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantReport {
    pub tenant: String,
    pub weight: u32,
    pub tasks: usize,
    pub mean_wait_ms: f64,
    pub mean_turnaround_ms: f64,
    /// CPU millicore-milliseconds served during backlogged time.
    pub service: u128,
    /// Part of all service during backlogged time; none without any.
    pub share: Option<f64>,
    /// `share` over the weight's part of all weights.
    pub share_per_weight: Option<f64>,
    /// Mean dominant share during backlogged time.
    pub dominant_share: Option<f64>,
}

/// One policy's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    pub policy: String,
    pub tasks: usize,
    pub mean_wait_ms: f64,
    pub p99_wait_ms: u64,
    /// The longest any task waited: where starvation shows.
    pub max_wait_ms: u64,
    pub mean_turnaround_ms: f64,
    pub makespan_ms: u64,
    pub cpu_utilisation: f64,
    pub memory_utilisation: f64,
    /// Time during which every tenant had a task waiting.
    pub backlogged_ms: u64,
    /// Jain's index of weight-normalised service during backlogged time.
    pub fairness: Option<f64>,
    /// Jain's index of weight-normalised mean dominant shares during
    /// backlogged time (1.0 = what weighted DRF aims for).
    pub dominant_fairness: Option<f64>,
    pub tenants: Vec<TenantReport>,
}

/// A whole run: the workload and every policy's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub workload: WorkloadSummary,
    pub policies: Vec<PolicyReport>,
}

/// Jain's fairness index of `values`: (Σx)²/(n·Σx²); none when all are 0.
pub fn jain(values: &[f64]) -> Option<f64> {
    let sum: f64 = values.iter().sum();
    let squares: f64 = values.iter().map(|x| x * x).sum();
    (squares > 0.0).then(|| sum * sum / (values.len() as f64 * squares))
}

/// When a task ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Outcome {
    pub started_ms: u64,
    pub ended_ms: u64,
}

/// What the engine tells the report as it runs.
#[derive(Debug)]
pub(crate) struct Recorder {
    /// Tenant names in order, and their index.
    names: Vec<String>,
    index_of: BTreeMap<String, usize>,
    /// Per tenant: whether it has any task in the workload (a tenant with
    /// none is never backlogged and does not count for fairness).
    active: Vec<bool>,
    /// Per tenant: tasks waiting, CPU and memory held now.
    waiting: Vec<usize>,
    cpu: Vec<u64>,
    memory: Vec<u64>,
    /// Per tenant, over backlogged time: Σ cpu × dt, and ∫ dominant share.
    service: Vec<u128>,
    dominant: Vec<f64>,
    backlogged_ms: u64,
    /// The cluster's reservable CPU and memory, the dominant shares'
    /// denominators (what DRF is told with `set_capacity`).
    capacity: (f64, f64),
    /// Each task's run, by workload index.
    outcomes: Vec<Option<Outcome>>,
}

impl Recorder {
    pub fn new(workload: &Workload, cluster: &Cluster) -> Self {
        let names: Vec<String> = workload.tenants.keys().cloned().collect();
        let index_of = names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), i))
            .collect();
        let n = names.len();
        let (cpu, memory) = cluster.reservable();
        let nodes = f64::from(cluster.nodes);
        let active = names
            .iter()
            .map(|name| workload.tasks.iter().any(|t| t.tenant == *name))
            .collect();
        Recorder {
            active,
            names,
            index_of,
            waiting: vec![0; n],
            cpu: vec![0; n],
            memory: vec![0; n],
            service: vec![0; n],
            dominant: vec![0.0; n],
            backlogged_ms: 0,
            capacity: (cpu as f64 * nodes, memory as f64 * nodes),
            outcomes: vec![None; workload.tasks.len()],
        }
    }

    fn tenant(&self, name: &str) -> Option<usize> {
        self.index_of.get(name).copied()
    }

    /// Time passes from `from` to `to` with nothing changing.
    pub fn advance(&mut self, from: u64, to: u64) {
        let dt = to.saturating_sub(from);
        let everyone_waits = self
            .waiting
            .iter()
            .zip(&self.active)
            .all(|(waiting, active)| *waiting > 0 || !active);
        if dt == 0 || !everyone_waits {
            return;
        }
        self.backlogged_ms += dt;
        let (total_cpu, total_memory) = self.capacity;
        for tenant in 0..self.names.len() {
            self.service[tenant] += u128::from(self.cpu[tenant]) * u128::from(dt);
            let share = (self.cpu[tenant] as f64 / total_cpu)
                .max(self.memory[tenant] as f64 / total_memory);
            self.dominant[tenant] += share * dt as f64;
        }
    }

    pub fn arrived(&mut self, tenant: &str) {
        if let Some(t) = self.tenant(tenant) {
            self.waiting[t] += 1;
        }
    }

    pub fn started(&mut self, task: &Task) {
        if let Some(t) = self.tenant(&task.tenant) {
            self.waiting[t] = self.waiting[t].saturating_sub(1);
            self.cpu[t] += u64::from(task.cpu_millis);
            self.memory[t] += u64::from(task.memory_mb);
        }
    }

    pub fn completed(&mut self, index: usize, task: &Task, outcome: Outcome) {
        if let Some(t) = self.tenant(&task.tenant) {
            self.cpu[t] = self.cpu[t].saturating_sub(u64::from(task.cpu_millis));
            self.memory[t] = self.memory[t].saturating_sub(u64::from(task.memory_mb));
        }
        if let Some(slot) = self.outcomes.get_mut(index) {
            *slot = Some(outcome);
        }
    }

    /// The report, once every task has run.
    pub fn finish(self, policy: &str, workload: &Workload, cluster: &Cluster) -> PolicyReport {
        let runs: Vec<(&Task, Outcome)> = workload
            .tasks
            .iter()
            .zip(&self.outcomes)
            .filter_map(|(task, outcome)| outcome.map(|o| (task, o)))
            .collect();
        let wait = |(task, o): &(&Task, Outcome)| o.started_ms.saturating_sub(task.arrival_ms);
        let turnaround = |(task, o): &(&Task, Outcome)| o.ended_ms.saturating_sub(task.arrival_ms);
        let mean = |values: &mut dyn Iterator<Item = u64>| {
            let (sum, n) = values.fold((0u128, 0u64), |(s, n), v| (s + u128::from(v), n + 1));
            if n == 0 { 0.0 } else { sum as f64 / n as f64 }
        };
        let mut waits: Vec<u64> = runs.iter().map(wait).collect();
        waits.sort_unstable();
        let p99 = if waits.is_empty() {
            0
        } else {
            let rank = (waits.len() * 99).div_ceil(100).max(1);
            waits[rank - 1]
        };
        let first = runs.iter().map(|(t, _)| t.arrival_ms).min().unwrap_or(0);
        let last = runs.iter().map(|(_, o)| o.ended_ms).max().unwrap_or(0);
        let makespan = last.saturating_sub(first);
        let used = |of: fn(&Task) -> u32| -> f64 {
            runs.iter()
                .map(|(t, o)| f64::from(of(t)) * o.ended_ms.saturating_sub(o.started_ms) as f64)
                .sum()
        };
        let utilisation = |work: f64, capacity: u64| {
            if makespan == 0 || capacity == 0 {
                0.0
            } else {
                work / (capacity as f64 * makespan as f64)
            }
        };

        let total_service: u128 = self.service.iter().sum();
        let total_weight: u64 = workload
            .tenants
            .iter()
            .filter(|(name, _)| runs.iter().any(|(t, _)| t.tenant == **name))
            .map(|(_, w)| u64::from(*w))
            .sum();
        let backlogged = self.backlogged_ms > 0;
        let tenants: Vec<TenantReport> = self
            .names
            .iter()
            .enumerate()
            .map(|(t, name)| {
                let weight = workload.tenants.get(name).copied().unwrap_or(1).max(1);
                let own: Vec<&(&Task, Outcome)> = runs
                    .iter()
                    .filter(|(task, _)| task.tenant == *name)
                    .collect();
                let share =
                    (total_service > 0).then(|| self.service[t] as f64 / total_service as f64);
                let weight_part = f64::from(weight) / total_weight.max(1) as f64;
                TenantReport {
                    tenant: name.clone(),
                    weight,
                    tasks: own.len(),
                    mean_wait_ms: mean(&mut own.iter().map(|r| wait(r))),
                    mean_turnaround_ms: mean(&mut own.iter().map(|r| turnaround(r))),
                    service: self.service[t],
                    share,
                    share_per_weight: share.map(|s| s / weight_part),
                    dominant_share: backlogged
                        .then(|| self.dominant[t] / self.backlogged_ms as f64),
                }
            })
            .collect();
        let normalised = |of: &dyn Fn(&TenantReport) -> Option<f64>| -> Option<f64> {
            let values: Option<Vec<f64>> = tenants
                .iter()
                .filter(|t| t.tasks > 0)
                .map(|t| of(t).map(|v| v / f64::from(t.weight)))
                .collect();
            jain(&values?)
        };
        PolicyReport {
            policy: policy.to_owned(),
            tasks: runs.len(),
            mean_wait_ms: mean(&mut runs.iter().map(wait)),
            p99_wait_ms: p99,
            max_wait_ms: waits.last().copied().unwrap_or(0),
            mean_turnaround_ms: mean(&mut runs.iter().map(turnaround)),
            makespan_ms: makespan,
            cpu_utilisation: utilisation(used(|t| t.cpu_millis), cluster.total_cpu_millis()),
            memory_utilisation: utilisation(used(|t| t.memory_mb), cluster.total_memory_mb()),
            backlogged_ms: self.backlogged_ms,
            fairness: normalised(&|t| backlogged.then_some(t.service as f64)),
            dominant_fairness: normalised(&|t| t.dominant_share),
            tenants,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_is_one_for_equal_and_one_over_n_for_a_monopoly() {
        assert_eq!(jain(&[2.0, 2.0, 2.0]), Some(1.0));
        assert_eq!(jain(&[5.0, 0.0, 0.0, 0.0]), Some(0.25));
        assert_eq!(jain(&[0.0, 0.0]), None);
    }
}
