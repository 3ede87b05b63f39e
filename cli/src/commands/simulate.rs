//! `taskyard simulate`: run the scheduling policies on a workload in virtual
//! time (the `taskyard-simulator` crate) and compare them. Needs no stack.
//!
//! The workload is a JSON file (`--workload`) or generated from flags
//! (`--tasks`, `--tenants`, `--weights`, `--rate` or `--load`, `--seed`);
//! `--write-workload` saves it, generated or not, to edit and replay. See
//! docs/simulator.md.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use taskyard_simulator::{
    Arrivals, Cluster, Generator, PolicyKind, PolicyReport, Report, Workload,
};

use crate::display::Table;

/// Run scheduling policies on a workload in virtual time and print, per
/// policy, waits, turnaround, makespan, utilisation and fairness.
#[derive(Debug, Args)]
pub struct Simulate {
    /// A JSON workload file to run (format in docs/simulator.md) instead of
    /// a generated one.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["tasks", "tenants", "weights", "rate", "load", "batch", "seed"]
    )]
    pub workload: Option<PathBuf>,
    /// Tasks to generate.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = at_least_one)]
    pub tasks: usize,
    /// Tenants to generate: those --weights names, then t1, t2, … (default:
    /// the weighted ones, or 4).
    #[arg(long, value_name = "K", value_parser = at_least_one)]
    pub tenants: Option<usize>,
    /// Tenants' weights, as NAME=N[,NAME=N…]; unnamed tenants weigh 1.
    #[arg(long, value_name = "NAME=N,…", value_delimiter = ',', value_parser = parse_weight)]
    pub weights: Vec<(String, u32)>,
    /// Mean arrivals per second (Poisson).
    #[arg(long, value_name = "PER_SECOND", conflicts_with = "load", value_parser = positive)]
    pub rate: Option<f64>,
    /// Arrive at the rate that offers this load on the busier of CPU and
    /// memory (1.0 = the cluster's capacity) [default: 0.9 without --rate].
    #[arg(long, value_name = "FRACTION", value_parser = positive)]
    pub load: Option<f64>,
    /// Mean tasks per submission: tasks arrive in bursts of one tenant's
    /// tasks, sizes geometric with this mean (1 = one at a time).
    #[arg(long, value_name = "MEAN", default_value_t = 1.0, value_parser = at_least_1_0)]
    pub batch: f64,
    /// Seed of the generator: the same seed, the same workload.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Nodes (overrides the workload file's) [default: 4].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub nodes: Option<u32>,
    /// Each node's CPU in millicores [default: 16000].
    #[arg(long, value_name = "MILLICORES", value_parser = clap::value_parser!(u32).range(1..))]
    pub node_cpu: Option<u32>,
    /// Each node's memory in MiB [default: 65536].
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..))]
    pub node_memory: Option<u32>,
    /// Tasks a node runs at once [default: 256].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub slots: Option<u32>,
    /// A policy to run (repeatable) [default: every policy].
    #[arg(long = "policy", value_name = "NAME", value_parser = parse_policy)]
    pub policies: Vec<PolicyKind>,
    /// Also print each tenant's wait, share of service and dominant share.
    #[arg(long)]
    pub by_tenant: bool,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Save the workload (with its cluster) to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub write_workload: Option<PathBuf>,
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
}

fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("`{text}` is not a positive number")),
    }
}

fn at_least_1_0(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 1.0 => Ok(x),
        _ => Err(format!("`{text}` is not a number of at least 1")),
    }
}

fn parse_weight(text: &str) -> Result<(String, u32), String> {
    let (tenant, weight) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=N (such as a=3)"))?;
    if tenant.is_empty() {
        return Err(format!("`{text}` names no tenant"));
    }
    match weight.parse::<u32>() {
        Ok(0) => Err(format!("the weight in `{text}` must be at least 1")),
        Ok(weight) => Ok((tenant.to_owned(), weight)),
        Err(_) => Err(format!("the weight in `{text}` is not a whole number")),
    }
}

fn parse_policy(text: &str) -> Result<PolicyKind, String> {
    text.parse::<PolicyKind>().map_err(|err| err.to_string())
}

impl Simulate {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let (workload, cluster) = self.workload_and_cluster()?;
        if let Some(path) = &self.write_workload {
            let saved = Workload {
                cluster: Some(cluster.clone()),
                ..workload.clone()
            };
            saved
                .save(path)
                .with_context(|| format!("cannot save the workload to {}", path.display()))?;
            eprintln!("wrote the workload to {}", path.display());
        }
        let policies = if self.policies.is_empty() {
            PolicyKind::ALL.to_vec()
        } else {
            self.policies.clone()
        };
        let report = taskyard_simulator::run(&workload, &cluster, &policies)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", render(&report, self.by_tenant));
        }
        Ok(ExitCode::SUCCESS)
    }

    /// The workload (read or generated) and the cluster it runs on, with the
    /// node flags on top of the file's cluster or the defaults.
    fn workload_and_cluster(&self) -> anyhow::Result<(Workload, Cluster)> {
        let file = match &self.workload {
            Some(path) => Some(
                Workload::load(path).with_context(|| format!("bad workload {}", path.display()))?,
            ),
            None => None,
        };
        let mut cluster = file
            .as_ref()
            .map_or_else(Cluster::default, Workload::cluster_or_default);
        cluster.nodes = self.nodes.unwrap_or(cluster.nodes);
        cluster.cpu_millis = self.node_cpu.unwrap_or(cluster.cpu_millis);
        cluster.memory_mb = self.node_memory.unwrap_or(cluster.memory_mb);
        cluster.slots = self.slots.unwrap_or(cluster.slots);
        if let Some(workload) = file {
            workload
                .check_against(&cluster)
                .context("the workload does not fit the cluster")?;
            return Ok((workload, cluster));
        }
        let tenants = Generator::tenants_named(self.tenants, &self.weights)
            .map_err(|err| anyhow::anyhow!("--{err}"))?;
        let arrivals = match (self.rate, self.load) {
            (Some(rate), _) => Arrivals::PerSecond(rate),
            (None, Some(load)) => Arrivals::Load(load),
            (None, None) => Arrivals::Load(taskyard_simulator::generator::DEFAULT_LOAD),
        };
        let generated = Generator {
            tasks: self.tasks,
            tenants,
            cluster: cluster.clone(),
            arrivals,
            batch: self.batch,
            seed: self.seed,
            ..Generator::default()
        }
        .generate()
        .map_err(|err| anyhow::anyhow!("cannot generate the workload: {err}"))?;
        Ok((generated, cluster))
    }
}

/// Milliseconds as seconds with two decimals.
fn seconds(ms: f64) -> String {
    format!("{:.2}s", ms / 1000.0)
}

fn fraction(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

/// A pool and its quotas, as `batch (max_running 4, tenant_max_running 1)`.
fn pool_quotas(name: &str, quotas: &taskyard_simulator::PoolQuotas) -> String {
    let set: Vec<String> = [
        ("max_running", quotas.max_running),
        ("max_cpu_millis", quotas.max_cpu_millis),
        ("max_memory_mb", quotas.max_memory_mb),
        ("tenant_max_running", quotas.tenant_max_running),
    ]
    .into_iter()
    .filter_map(|(quota, value)| value.map(|v| format!("{quota} {v}")))
    .collect();
    if set.is_empty() {
        format!("{name} (no quotas)")
    } else {
        format!("{name} ({})", set.join(", "))
    }
}

/// The report as plain aligned tables.
pub fn render(report: &Report, by_tenant: bool) -> String {
    let w = &report.workload;
    let load = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    let weights: Vec<String> = w.tenants.iter().map(|(n, x)| format!("{n}={x}")).collect();
    let mut out = format!(
        "workload: {} tasks from {} tenants ({}) on {} nodes of {}m cpu and {} MiB; \
         arrivals over {}, offered load {} cpu, {} memory\n\n",
        w.tasks,
        w.tenants.len(),
        weights.join(","),
        w.cluster.nodes,
        w.cluster.cpu_millis,
        w.cluster.memory_mb,
        seconds(w.arrival_span_ms as f64),
        load(w.offered_cpu_load),
        load(w.offered_memory_load),
    );
    if !w.pools.is_empty() {
        // Only for files that list pools, so that older reports read as
        // they did.
        let pools: Vec<String> = w.pools.iter().map(|(n, q)| pool_quotas(n, q)).collect();
        out.insert_str(out.len() - 1, &format!("pools: {}\n", pools.join("; ")));
    }
    let mut table = Table::new(&[
        "policy",
        "tasks",
        "mean wait",
        "p99 wait",
        "max wait",
        "mean turnaround",
        "makespan",
        "cpu util",
        "mem util",
        "backlogged",
        "fairness",
        "dominant fairness",
    ]);
    for p in &report.policies {
        table.row(vec![
            p.policy.clone(),
            p.tasks.to_string(),
            seconds(p.mean_wait_ms),
            seconds(p.p99_wait_ms as f64),
            seconds(p.max_wait_ms as f64),
            seconds(p.mean_turnaround_ms),
            seconds(p.makespan_ms as f64),
            format!("{:.3}", p.cpu_utilisation),
            format!("{:.3}", p.memory_utilisation),
            seconds(p.backlogged_ms as f64),
            fraction(p.fairness),
            fraction(p.dominant_fairness),
        ]);
    }
    out.push_str(&table.render());
    if by_tenant {
        out.push('\n');
        out.push_str(&tenant_table(&report.policies).render());
    }
    out
}

fn tenant_table(policies: &[PolicyReport]) -> Table {
    let mut table = Table::new(&[
        "policy",
        "tenant",
        "weight",
        "tasks",
        "mean wait",
        "share",
        "share/weight",
        "dominant share",
    ]);
    for p in policies {
        for t in &p.tenants {
            table.row(vec![
                p.policy.clone(),
                t.tenant.clone(),
                t.weight.to_string(),
                t.tasks.to_string(),
                seconds(t.mean_wait_ms),
                fraction(t.share),
                fraction(t.share_per_weight),
                fraction(t.dominant_share),
            ]);
        }
    }
    table
}
