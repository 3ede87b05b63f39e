//! `taskyard pool show|create|update|delete`: one pool, through the pool
//! manager (NATS request/reply on `taskyard.api.pools.<op>`).
//!
//! `create` builds the definition from the flags on top of the defaults (or
//! on top of `--file`); `update` fetches the pool, changes only what the
//! flags name, and sends the whole definition back, so unspecified fields
//! keep their values.

use crate::GlobalOptions;
use crate::commands::answered;
use crate::display::format_ms;
use crate::labels::{format_labels, parse_label, to_map};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use taskyard_client::ClientError;
use taskyard_wire::pool::{PlacementStrategy, PoolSpec};

#[derive(Debug, Args)]
pub struct Pool {
    #[command(subcommand)]
    pub action: PoolAction,
}

/// What to do with the pool.
#[derive(Debug, Subcommand)]
pub enum PoolAction {
    /// Show one pool's definition.
    Show(Show),
    /// Create a pool from flags (on top of the defaults) or a JSON file.
    Create(Create),
    /// Change a pool; fields no flag names keep their current values.
    Update(Update),
    /// Delete a pool (refused for `default` and for a pool with active tasks).
    Delete(Delete),
}

#[derive(Debug, Args)]
pub struct Show {
    /// The pool's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Print the definition as JSON instead.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Create {
    /// The new pool's name (optional with --file when the file names it).
    #[arg(value_name = "NAME", required_unless_present = "file")]
    pub name: Option<String>,
    /// A JSON pool definition to start from; flags override its fields.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub flags: PoolFlags,
}

#[derive(Debug, Args)]
pub struct Update {
    /// The pool's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Replace the definition with this JSON file (flags override its
    /// fields) instead of starting from the current one.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub flags: PoolFlags,
    /// Remove a limit, or the whole node selector (repeatable).
    #[arg(long, value_name = "FIELD", value_parser = UNSETTABLE)]
    pub unset: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Delete {
    /// The pool's name.
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// The fields `--unset` can remove.
pub const UNSETTABLE: [&str; 6] = [
    "node_selector",
    "max_running",
    "max_cpu",
    "max_memory",
    "tenant_max_running",
    "default_timeout_ms",
];

/// A pool's settings as flags; only what is given changes the definition.
#[derive(Debug, Clone, Default, Args)]
pub struct PoolFlags {
    /// Scheduling policy: fcfs, round_robin, sjf or wfq.
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<String>,
    /// How to pick among the nodes where a task fits: best_fit or spread.
    #[arg(long, value_name = "STRATEGY", value_parser = parse_placement)]
    pub placement: Option<PlacementStrategy>,
    /// A label member nodes must carry, as KEY=VALUE (repeatable); the given
    /// labels replace the whole selector.
    #[arg(long = "selector", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub selector: Vec<(String, String)>,
    /// Most tasks placed in the pool at once.
    #[arg(long, value_name = "N")]
    pub max_running: Option<u32>,
    /// Most CPU held by the pool's placed tasks, in millicores.
    #[arg(long, value_name = "MILLICORES")]
    pub max_cpu: Option<u32>,
    /// Most memory held by the pool's placed tasks, in MiB.
    #[arg(long, value_name = "MIB")]
    pub max_memory: Option<u32>,
    /// Most tasks of one tenant placed in the pool at once.
    #[arg(long, value_name = "N")]
    pub tenant_max_running: Option<u32>,
    /// Timeout of tasks that name none, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub default_timeout_ms: Option<u64>,
    /// Nodes count as this many times their CPU and memory (1.0 to 10).
    #[arg(long, value_name = "FACTOR")]
    pub overcommit: Option<f64>,
    /// A tenant's weight under wfq, as TENANT=N (repeatable); the given
    /// weights replace all weights.
    #[arg(long = "weight", value_name = "TENANT=N", value_parser = parse_weight)]
    pub weights: Vec<(String, u32)>,
    /// Wait before the first retry of tasks that name none, in milliseconds
    /// (doubled for each further retry).
    #[arg(long, value_name = "MS")]
    pub retry_backoff_ms: Option<u64>,
    /// Longest wait between attempts of tasks that name none, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub retry_backoff_max_ms: Option<u64>,
}

fn parse_weight(text: &str) -> Result<(String, u32), String> {
    let (tenant, weight) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not TENANT=N (such as acme=3)"))?;
    let weight = weight
        .parse()
        .map_err(|_| format!("the weight in `{text}` is not a whole number"))?;
    Ok((tenant.to_owned(), weight))
}

fn parse_placement(text: &str) -> Result<PlacementStrategy, String> {
    match text {
        "best_fit" | "best-fit" => Ok(PlacementStrategy::BestFit),
        "spread" => Ok(PlacementStrategy::Spread),
        other => Err(format!(
            "`{other}` is not a placement: use best_fit or spread"
        )),
    }
}

impl PoolFlags {
    /// Sets every field a flag gives; leaves the others as they are.
    pub fn apply(&self, spec: &mut PoolSpec) {
        if let Some(policy) = &self.policy {
            spec.policy.clone_from(policy);
        }
        if let Some(placement) = self.placement {
            spec.placement = placement;
        }
        if !self.selector.is_empty() {
            spec.node_selector = to_map(&self.selector);
        }
        if !self.weights.is_empty() {
            spec.tenant_weights = self.weights.iter().cloned().collect();
        }
        let set = |field: &mut Option<u32>, value: Option<u32>| {
            if value.is_some() {
                *field = value;
            }
        };
        set(&mut spec.max_running, self.max_running);
        set(&mut spec.max_cpu_millis, self.max_cpu);
        set(&mut spec.max_memory_mb, self.max_memory);
        set(&mut spec.tenant_max_running, self.tenant_max_running);
        if self.default_timeout_ms.is_some() {
            spec.default_timeout_ms = self.default_timeout_ms;
        }
        if let Some(overcommit) = self.overcommit {
            spec.overcommit = overcommit;
        }
        if let Some(ms) = self.retry_backoff_ms {
            spec.retry_backoff_ms = ms;
        }
        if let Some(ms) = self.retry_backoff_max_ms {
            spec.retry_backoff_max_ms = ms;
        }
    }
}

impl Create {
    /// The definition to send: the file (or the defaults) with the flags on
    /// top.
    pub fn spec(&self) -> anyhow::Result<PoolSpec> {
        let mut spec = match &self.file {
            Some(file) => read_definition(file, self.name.as_deref())?,
            None => PoolSpec {
                name: self.name.clone().unwrap_or_default(),
                ..PoolSpec::default_pool()
            },
        };
        self.flags.apply(&mut spec);
        Ok(spec)
    }
}

impl Update {
    /// The definition to send: `current` (or the file) with the flags on
    /// top and the `--unset` fields removed.
    pub fn spec(&self, current: PoolSpec) -> anyhow::Result<PoolSpec> {
        let mut spec = match &self.file {
            Some(file) => read_definition(file, Some(&self.name))?,
            None => current,
        };
        self.flags.apply(&mut spec);
        for field in &self.unset {
            match field.as_str() {
                "node_selector" => spec.node_selector.clear(),
                "max_running" => spec.max_running = None,
                "max_cpu" => spec.max_cpu_millis = None,
                "max_memory" => spec.max_memory_mb = None,
                "tenant_max_running" => spec.tenant_max_running = None,
                "default_timeout_ms" => spec.default_timeout_ms = None,
                other => bail!("cannot unset `{other}`"),
            }
        }
        Ok(spec)
    }
}

/// A pool definition from a JSON file; `name` (from the command line) fills
/// in a missing name and must match a given one.
fn read_definition(file: &PathBuf, name: Option<&str>) -> anyhow::Result<PoolSpec> {
    let shown = file.display();
    let text = std::fs::read(file).with_context(|| format!("reading {shown}"))?;
    let mut value: Value =
        serde_json::from_slice(&text).with_context(|| format!("{shown} is not valid JSON"))?;
    let Some(object) = value.as_object_mut() else {
        bail!("{shown} does not hold a JSON object (a pool definition)");
    };
    match (object.get("name"), name) {
        (None, Some(name)) => {
            object.insert("name".to_owned(), Value::from(name));
        }
        (None, None) => bail!("{shown} names no pool: add `name` or give NAME"),
        (Some(given), Some(name)) if given.as_str() != Some(name) => {
            bail!("{shown} names the pool {given}, not `{name}`")
        }
        (Some(_), _) => {}
    }
    serde_json::from_value(value).with_context(|| format!("{shown} is not a pool definition"))
}

impl Pool {
    pub async fn run(self, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
        let client = crate::bus::client(global).await?;
        match self.action {
            PoolAction::Show(show) => finish(client.pool(&show.name).await, show.json, None),
            PoolAction::Create(create) => {
                let spec = create.spec()?;
                finish(client.create_pool(&spec).await, false, Some("created"))
            }
            PoolAction::Update(update) => {
                let current = if update.file.is_some() {
                    None
                } else {
                    let Some(pool) = answered(client.pool(&update.name).await)? else {
                        return Ok(ExitCode::FAILURE);
                    };
                    Some(pool)
                };
                let spec = update.spec(current.unwrap_or_else(PoolSpec::default_pool))?;
                finish(client.update_pool(&spec).await, false, Some("updated"))
            }
            PoolAction::Delete(delete) => finish(
                client.delete_pool(&delete.name).await,
                false,
                Some("deleted"),
            ),
        }
    }
}

/// Prints the pool the pool manager answered with (after `done pool NAME`
/// on standard error when `done` is given), or its refusal; the exit code
/// says which.
fn finish(
    reply: Result<PoolSpec, ClientError>,
    json: bool,
    done: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let Some(pool) = answered(reply)? else {
        return Ok(ExitCode::FAILURE);
    };
    if let Some(done) = done {
        eprintln!("{done} pool {}", pool.name);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&pool)?);
    } else {
        print!("{}", render(&pool));
    }
    Ok(ExitCode::SUCCESS)
}

/// One pool as `field  value` lines.
pub fn render(pool: &PoolSpec) -> String {
    let limit = |value: Option<u32>, unit: &str| {
        value.map_or_else(|| "none".to_owned(), |n| format!("{n}{unit}"))
    };
    let fields = [
        ("name", pool.name.clone()),
        ("policy", pool.policy.clone()),
        ("placement", pool.placement.as_str().to_owned()),
        ("node selector", format_labels(&pool.node_selector)),
        ("max running", limit(pool.max_running, "")),
        ("max cpu", limit(pool.max_cpu_millis, " millicores")),
        ("max memory", limit(pool.max_memory_mb, " MiB")),
        ("per tenant", limit(pool.tenant_max_running, "")),
        (
            "default timeout",
            pool.default_timeout_ms
                .map_or_else(|| "none".to_owned(), format_ms),
        ),
        ("overcommit", pool.overcommit.to_string()),
        (
            "retry backoff",
            format!(
                "{}, doubling up to {}",
                format_ms(pool.retry_backoff_ms),
                format_ms(pool.retry_backoff_max_ms)
            ),
        ),
        (
            "tenant weights",
            if pool.tenant_weights.is_empty() {
                "none".to_owned()
            } else {
                pool.tenant_weights
                    .iter()
                    .map(|(tenant, weight)| format!("{tenant}={weight}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
    ];
    let mut out = String::new();
    for (name, value) in fields {
        let _ = writeln!(out, "{name:<16}{value}");
    }
    out
}
