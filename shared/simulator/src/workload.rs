//! What a simulation runs: the cluster, the tenants with their weights, and
//! the tasks with their arrival times, requests and runtimes; read from and
//! written to a JSON workload file.
//!
//! # File format
//! ```json
//! {
//!   "cluster": {"nodes": 4, "cpu_millis": 16000, "memory_mb": 65536},
//!   "tenants": {"a": 3, "b": 1},
//!   "tasks": [
//!     {"arrival_ms": 0, "tenant": "a", "cpu_millis": 1000, "memory_mb": 512,
//!      "runtime_ms": 3000, "estimated_runtime_ms": 2500},
//!     {"arrival_ms": 40, "tenant": "b", "kind": "exec", "cpu_millis": 250,
//!      "memory_mb": 8192, "runtime_ms": 900, "priority": 1}
//!   ]
//! }
//! ```
//! `cluster` is optional (the defaults of [`Cluster`]); `kind` defaults to
//! `sleep`, `priority` to 0 and `estimated_runtime_ms` to none. Unknown
//! fields are refused, so a misspelt one does not silently fall back to its
//! default.
//!
//! # Pools and quotas
//! Optional, and absent from older files: `pools` names pools and their
//! quotas, as a pool definition sets them, and a task's `pool` (default
//! `default`) says which it is submitted to.
//! ```json
//! "pools": {"default": {"max_running": 8}, "batch": {"max_cpu_millis": 4000, "tenant_max_running": 2}},
//! ```
//! Every pool spans every node of the cluster and runs the policy under
//! test; pools take turns as the scheduler's round has them. The `default`
//! pool exists whether or not it is listed (without quotas when not).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use taskyard_policy::Quotas;
use taskyard_wire::TaskKind;
use taskyard_wire::pool::PlacementStrategy;

/// CPU of a node when the workload does not say: 16 cores.
pub const DEFAULT_NODE_CPU_MILLIS: u32 = 16_000;
/// Memory of a node when the workload does not say: 64 GiB.
pub const DEFAULT_NODE_MEMORY_MB: u32 = 65_536;
/// Tasks a node runs at once when the workload does not say: enough that
/// CPU and memory, not slots, are what fills a node.
pub const DEFAULT_NODE_SLOTS: u32 = 256;
/// Nodes when the workload does not say.
pub const DEFAULT_NODES: u32 = 4;
/// The pool of tasks that name none, as in the scheduler.
pub const DEFAULT_POOL: &str = "default";

/// The nodes the tasks run on: `nodes` identical nodes, all in one pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// How many nodes.
    #[serde(default = "default_nodes")]
    pub nodes: u32,
    /// Each node's CPU, in millicores.
    #[serde(default = "default_cpu")]
    pub cpu_millis: u32,
    /// Each node's memory, in MiB.
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// Most tasks one node runs at once.
    #[serde(default = "default_slots")]
    pub slots: u32,
    /// Best fit (the default) or spread, as a pool says.
    #[serde(default)]
    pub strategy: PlacementStrategy,
    /// Nodes count as this many times their CPU and memory (1.0 = none).
    #[serde(default = "default_overcommit")]
    pub overcommit: f64,
}

fn default_nodes() -> u32 {
    DEFAULT_NODES
}
fn default_cpu() -> u32 {
    DEFAULT_NODE_CPU_MILLIS
}
fn default_memory() -> u32 {
    DEFAULT_NODE_MEMORY_MB
}
fn default_slots() -> u32 {
    DEFAULT_NODE_SLOTS
}
fn default_overcommit() -> f64 {
    1.0
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            nodes: DEFAULT_NODES,
            cpu_millis: DEFAULT_NODE_CPU_MILLIS,
            memory_mb: DEFAULT_NODE_MEMORY_MB,
            slots: DEFAULT_NODE_SLOTS,
            strategy: PlacementStrategy::BestFit,
            overcommit: 1.0,
        }
    }
}

impl Cluster {
    /// `nodes` nodes of the default size.
    pub fn of(nodes: u32) -> Self {
        Cluster {
            nodes,
            ..Cluster::default()
        }
    }

    /// CPU of all nodes together, in millicores (without over-commit).
    pub fn total_cpu_millis(&self) -> u64 {
        u64::from(self.nodes) * u64::from(self.cpu_millis)
    }

    /// Memory of all nodes together, in MiB (without over-commit).
    pub fn total_memory_mb(&self) -> u64 {
        u64::from(self.nodes) * u64::from(self.memory_mb)
    }

    /// What one node offers to reservations: its capacity times the
    /// over-commit factor, rounded down as placement rounds it.
    pub fn reservable(&self) -> (u64, u64) {
        let scaled = |value: u32| (f64::from(value) * self.overcommit.max(1.0)) as u64;
        (scaled(self.cpu_millis), scaled(self.memory_mb))
    }

    /// Every bad setting, as `(field, message)`.
    fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut bad = |field: &str, message: &str| {
            problems.push((format!("cluster.{field}"), message.to_owned()));
        };
        if self.nodes == 0 {
            bad("nodes", "must be at least 1");
        }
        if self.cpu_millis == 0 {
            bad("cpu_millis", "must be at least 1");
        }
        if self.memory_mb == 0 {
            bad("memory_mb", "must be at least 1");
        }
        if self.slots == 0 {
            bad("slots", "must be at least 1");
        }
        if !self.overcommit.is_finite() || self.overcommit < 1.0 {
            bad("overcommit", "must be a number of at least 1.0");
        }
        problems
    }
}

/// A pool's quotas as a workload file gives them; absent ones are no limit.
/// The same quotas a pool definition sets (`taskyard_wire::pool::PoolSpec`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolQuotas {
    /// Most tasks running in the pool at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running: Option<u32>,
    /// Most CPU (millicores) the pool's running tasks reserve together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpu_millis: Option<u32>,
    /// Most memory (MiB) the pool's running tasks reserve together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_mb: Option<u32>,
    /// Most tasks of one tenant running in the pool at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_max_running: Option<u32>,
}

impl PoolQuotas {
    /// The quotas as the round applies them.
    pub fn quotas(&self) -> Quotas {
        Quotas {
            max_running: self.max_running,
            max_cpu_millis: self.max_cpu_millis,
            max_memory_mb: self.max_memory_mb,
            tenant_max_running: self.tenant_max_running,
        }
    }

    /// Every quota that would stop any task from ever running, as
    /// `(field, message)`: a limit of 0 would leave the run waiting for
    /// ever, which the simulator reports as a broken invariant instead of
    /// a bad file.
    fn problems(&self, pool: &str) -> Vec<(String, String)> {
        [
            ("max_running", self.max_running),
            ("max_cpu_millis", self.max_cpu_millis),
            ("max_memory_mb", self.max_memory_mb),
            ("tenant_max_running", self.tenant_max_running),
        ]
        .into_iter()
        .filter(|(_, value)| *value == Some(0))
        .map(|(field, _)| {
            (
                format!("pools.{pool}.{field}"),
                "must be at least 1 (leave it out for no limit)".to_owned(),
            )
        })
        .collect()
    }
}

/// One task as the workload gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// When it is submitted, in milliseconds of virtual time.
    pub arrival_ms: u64,
    /// Whose it is: one of the workload's tenants.
    pub tenant: String,
    /// Its driver; only carried along (the simulator runs nothing).
    #[serde(default = "default_kind")]
    pub kind: TaskKind,
    /// CPU it reserves while it runs, in millicores.
    pub cpu_millis: u32,
    /// Memory it reserves while it runs, in MiB.
    pub memory_mb: u32,
    /// How long it actually runs once placed.
    pub runtime_ms: u64,
    /// What the client says it will run, which is all that SJF (and WFQ,
    /// as a cost) sees; none when the client gives no estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_runtime_ms: Option<u64>,
    /// Its priority class (higher first, under priority classes).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
    /// The pool it is submitted to: [`DEFAULT_POOL`] or one of the
    /// workload's `pools`.
    #[serde(default = "default_pool", skip_serializing_if = "is_default_pool")]
    pub pool: String,
}

fn default_kind() -> TaskKind {
    TaskKind::Sleep
}

fn default_pool() -> String {
    DEFAULT_POOL.to_owned()
}

fn is_default_pool(pool: &str) -> bool {
    pool == DEFAULT_POOL
}

fn is_zero(value: &i32) -> bool {
    *value == 0
}

/// A whole workload file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// The nodes; the defaults of [`Cluster`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Cluster>,
    /// Every tenant and its weight (at least 1), which WFQ (and weighted
    /// fairness) use.
    pub tenants: BTreeMap<String, u32>,
    /// Pools and their quotas; none means the `default` pool alone, with
    /// no quotas.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pools: BTreeMap<String, PoolQuotas>,
    /// The tasks, in any order (they are served as they arrive).
    pub tasks: Vec<Task>,
}

/// Why a workload cannot be read or run.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not a workload: bad JSON, a missing, unknown or
    /// mistyped field. `field` is its path, like `tasks[3].cpu_millis`.
    #[error("{field}: {message} (line {line}, column {column})")]
    Parse {
        field: String,
        message: String,
        line: usize,
        column: usize,
    },
    /// Well-formed, but a value makes no sense (an undeclared tenant, a
    /// task larger than any node). `field` is its path.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl WorkloadError {
    /// The path of the field at fault (`tasks[3].tenant`), if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            WorkloadError::Io { .. } => None,
            WorkloadError::Parse { field, .. } | WorkloadError::Invalid { field, .. } => {
                Some(field)
            }
        }
    }
}

impl Workload {
    /// Parses and checks a workload from JSON text.
    pub fn from_json(text: &str) -> Result<Workload, WorkloadError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let workload: Workload =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
                let field = match err.path().to_string() {
                    root if root == "." => "(top level)".to_owned(),
                    path => path,
                };
                let inner = err.into_inner();
                let (line, column) = (inner.line(), inner.column());
                let full = inner.to_string();
                let message = full
                    .strip_suffix(&format!(" at line {line} column {column}"))
                    .unwrap_or(&full)
                    .to_owned();
                WorkloadError::Parse {
                    field,
                    message,
                    line,
                    column,
                }
            })?;
        workload.check()?;
        Ok(workload)
    }

    /// Reads, parses and checks a workload file.
    pub fn load(path: &Path) -> Result<Workload, WorkloadError> {
        let text = std::fs::read_to_string(path).map_err(|source| WorkloadError::Io {
            path: path.to_owned(),
            source,
        })?;
        Workload::from_json(&text)
    }

    /// Writes the workload to `path` in the format [`Workload::to_json`]
    /// gives.
    pub fn save(&self, path: &Path) -> Result<(), WorkloadError> {
        std::fs::write(path, self.to_json()).map_err(|source| WorkloadError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// The workload as JSON with one task per line, so that a saved file
    /// reads and edits well and an error's line number points at one task.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\n");
        if let Some(cluster) = &self.cluster {
            out.push_str(&format!("  \"cluster\": {},\n", json(cluster)));
        }
        out.push_str(&format!("  \"tenants\": {},\n", json(&self.tenants)));
        if !self.pools.is_empty() {
            out.push_str(&format!("  \"pools\": {},\n", json(&self.pools)));
        }
        out.push_str("  \"tasks\": [");
        for (index, task) in self.tasks.iter().enumerate() {
            out.push_str(if index == 0 { "\n    " } else { ",\n    " });
            out.push_str(&json(task));
        }
        out.push_str(if self.tasks.is_empty() {
            "]\n"
        } else {
            "\n  ]\n"
        });
        out.push_str("}\n");
        out
    }

    /// Every pool the tasks may go to, in name order: `default` and those
    /// the workload lists, each with its quotas.
    pub fn pools(&self) -> BTreeMap<String, PoolQuotas> {
        let mut pools = self.pools.clone();
        pools.entry(DEFAULT_POOL.to_owned()).or_default();
        pools
    }

    /// The cluster the workload names, or the default one.
    pub fn cluster_or_default(&self) -> Cluster {
        self.cluster.clone().unwrap_or_default()
    }

    /// Checks what types alone do not: every tenant declared with a weight
    /// of at least 1, at least one task, times that do not overflow, and
    /// (when the workload names its cluster) every task small enough for a
    /// node. Reports the first problem.
    pub fn check(&self) -> Result<(), WorkloadError> {
        let invalid = |field: String, message: String| WorkloadError::Invalid { field, message };
        if self.tenants.is_empty() {
            return Err(invalid(
                "tenants".to_owned(),
                "names no tenant; give each a weight, like {\"a\": 1}".to_owned(),
            ));
        }
        if let Some((name, _)) = self.tenants.iter().find(|(_, weight)| **weight == 0) {
            return Err(invalid(
                format!("tenants.{name}"),
                "weight must be at least 1".to_owned(),
            ));
        }
        if self.tasks.is_empty() {
            return Err(invalid("tasks".to_owned(), "there are no tasks".to_owned()));
        }
        for (pool, quotas) in &self.pools {
            if let Some((field, message)) = quotas.problems(pool).into_iter().next() {
                return Err(invalid(field, message));
            }
        }
        for (index, task) in self.tasks.iter().enumerate() {
            if task.pool != DEFAULT_POOL && !self.pools.contains_key(&task.pool) {
                let known: Vec<String> = self.pools().into_keys().collect();
                return Err(invalid(
                    format!("tasks[{index}].pool"),
                    format!(
                        "{:?} is not one of the pools ({})",
                        task.pool,
                        known.join(", ")
                    ),
                ));
            }
            if let Some(quotas) = self.pools.get(&task.pool) {
                let over = |max: Option<u32>, asks: u32| max.is_some_and(|max| asks > max);
                if over(quotas.max_cpu_millis, task.cpu_millis)
                    || over(quotas.max_memory_mb, task.memory_mb)
                {
                    return Err(invalid(
                        format!("tasks[{index}]"),
                        format!(
                            "asks for {}m cpu and {} MiB, more than pool {}'s quotas allow at once: it could never run",
                            task.cpu_millis, task.memory_mb, task.pool
                        ),
                    ));
                }
            }
            if !self.tenants.contains_key(&task.tenant) {
                let known: Vec<&str> = self.tenants.keys().map(String::as_str).collect();
                return Err(invalid(
                    format!("tasks[{index}].tenant"),
                    format!(
                        "{:?} is not one of the tenants ({})",
                        task.tenant,
                        known.join(", ")
                    ),
                ));
            }
            if task.arrival_ms.checked_add(task.runtime_ms).is_none() {
                return Err(invalid(
                    format!("tasks[{index}].runtime_ms"),
                    "arrival plus runtime overflows".to_owned(),
                ));
            }
        }
        if let Some(cluster) = &self.cluster {
            self.check_against(cluster)?;
        }
        Ok(())
    }

    /// Checks that the cluster is sound and that every task could run on one
    /// of its nodes (the scheduler rejects the others at submission).
    pub fn check_against(&self, cluster: &Cluster) -> Result<(), WorkloadError> {
        if let Some((field, message)) = cluster.problems().into_iter().next() {
            return Err(WorkloadError::Invalid { field, message });
        }
        let (cpu, memory) = cluster.reservable();
        for (index, task) in self.tasks.iter().enumerate() {
            if u64::from(task.cpu_millis) > cpu || u64::from(task.memory_mb) > memory {
                return Err(WorkloadError::Invalid {
                    field: format!("tasks[{index}]"),
                    message: format!(
                        "asks for {}m cpu and {} MiB, more than a node offers ({cpu}m and {memory} MiB): it could never run",
                        task.cpu_millis, task.memory_mb
                    ),
                });
            }
        }
        Ok(())
    }
}

/// One value as compact JSON. Serialising these plain types cannot fail;
/// `null` stands in rather than a panic all the same.
fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
  "cluster": {"nodes": 2, "cpu_millis": 4000, "memory_mb": 4096},
  "tenants": {"a": 3, "b": 1},
  "tasks": [
    {"arrival_ms": 0, "tenant": "a", "cpu_millis": 1000, "memory_mb": 512, "runtime_ms": 3000},
    {"arrival_ms": 5, "tenant": "b", "kind": "exec", "cpu_millis": 250, "memory_mb": 1024,
     "runtime_ms": 900, "estimated_runtime_ms": 1000, "priority": 2}
  ]
}"#;

    #[test]
    fn a_good_file_reads_and_round_trips() {
        let workload = Workload::from_json(GOOD).expect("a good workload");
        assert_eq!(workload.tasks.len(), 2);
        assert_eq!(workload.tasks[0].kind, TaskKind::Sleep);
        assert_eq!(workload.tasks[1].priority, 2);
        assert_eq!(workload.cluster_or_default().slots, DEFAULT_NODE_SLOTS);
        let again = Workload::from_json(&workload.to_json()).expect("its own output reads");
        assert_eq!(again, workload);
    }

    #[test]
    fn a_mistyped_field_is_named_with_its_line() {
        let bad = GOOD.replace(r#""cpu_millis": 250"#, r#""cpu_millis": "lots""#);
        let err = Workload::from_json(&bad).expect_err("a string is no cpu");
        assert_eq!(err.field(), Some("tasks[1].cpu_millis"));
        let text = err.to_string();
        assert!(
            text.starts_with("tasks[1].cpu_millis: invalid type"),
            "{text}"
        );
        assert!(text.contains("line 6"), "{text}");
    }

    #[test]
    fn a_misspelt_or_missing_field_is_named() {
        let misspelt = GOOD.replace(r#""runtime_ms": 3000"#, r#""runtime": 3000"#);
        let err = Workload::from_json(&misspelt).expect_err("unknown field");
        assert!(
            err.field().is_some_and(|f| f.starts_with("tasks[0]")),
            "{err}"
        );
        assert!(err.to_string().contains("unknown field `runtime`"), "{err}");

        let missing = GOOD.replace(r#", "runtime_ms": 3000"#, "");
        let err = Workload::from_json(&missing).expect_err("missing field");
        assert_eq!(err.field(), Some("tasks[0]"));
        assert!(
            err.to_string().contains("missing field `runtime_ms`"),
            "{err}"
        );
    }

    #[test]
    fn nonsense_values_are_named() {
        let stranger = GOOD.replace(r#""tenant": "b""#, r#""tenant": "c""#);
        let err = Workload::from_json(&stranger).expect_err("undeclared tenant");
        assert_eq!(err.field(), Some("tasks[1].tenant"));
        assert!(
            err.to_string()
                .contains("\"c\" is not one of the tenants (a, b)")
        );

        let weightless = GOOD.replace(r#""b": 1"#, r#""b": 0"#);
        let err = Workload::from_json(&weightless).expect_err("zero weight");
        assert_eq!(err.field(), Some("tenants.b"));

        let huge = GOOD.replace(r#""cpu_millis": 1000"#, r#""cpu_millis": 8000"#);
        let err = Workload::from_json(&huge).expect_err("larger than a node");
        assert_eq!(err.field(), Some("tasks[0]"));
        assert!(err.to_string().contains("could never run"), "{err}");

        let empty = GOOD.replace(r#""nodes": 2"#, r#""nodes": 0"#);
        let err = Workload::from_json(&empty).expect_err("no nodes");
        assert_eq!(err.field(), Some("cluster.nodes"));

        let err = Workload::from_json("{\"tenants\": {\"a\": 1},").expect_err("cut short");
        assert!(matches!(err, WorkloadError::Parse { .. }), "{err}");
    }

    const POOLED: &str = r#"{
  "tenants": {"a": 1},
  "pools": {"default": {"max_running": 2}, "batch": {"max_cpu_millis": 4000, "tenant_max_running": 1}},
  "tasks": [
    {"arrival_ms": 0, "tenant": "a", "cpu_millis": 1000, "memory_mb": 512, "runtime_ms": 3000},
    {"arrival_ms": 0, "tenant": "a", "pool": "batch", "cpu_millis": 1000, "memory_mb": 512, "runtime_ms": 3000}
  ]
}"#;

    #[test]
    fn pools_and_quotas_read_and_round_trip_and_old_files_have_none() {
        let workload = Workload::from_json(POOLED).expect("a pooled workload");
        assert_eq!(workload.tasks[0].pool, DEFAULT_POOL);
        assert_eq!(workload.tasks[1].pool, "batch");
        assert_eq!(workload.pools["batch"].quotas().tenant_max_running, Some(1));
        assert_eq!(
            Workload::from_json(&workload.to_json()).expect("its own output reads"),
            workload
        );

        let old = Workload::from_json(GOOD).expect("a file without pools");
        assert!(old.pools.is_empty());
        assert_eq!(old.pools().into_keys().collect::<Vec<_>>(), [DEFAULT_POOL]);
        assert!(old.tasks.iter().all(|t| t.pool == DEFAULT_POOL));
        assert!(!old.to_json().contains("pool"), "{}", old.to_json());
    }

    #[test]
    fn bad_pools_and_quotas_are_named() {
        let stranger = POOLED.replace(r#""pool": "batch""#, r#""pool": "gpu""#);
        let err = Workload::from_json(&stranger).expect_err("an unlisted pool");
        assert_eq!(err.field(), Some("tasks[1].pool"));
        assert!(
            err.to_string()
                .contains("\"gpu\" is not one of the pools (batch, default)"),
            "{err}"
        );

        let zero = POOLED.replace(r#""max_running": 2"#, r#""max_running": 0"#);
        let err = Workload::from_json(&zero).expect_err("a cap of 0");
        assert_eq!(err.field(), Some("pools.default.max_running"));

        let misspelt = POOLED.replace("max_running", "max_runing");
        let err = Workload::from_json(&misspelt).expect_err("an unknown quota");
        assert!(
            err.to_string().contains("unknown field `max_runing`"),
            "{err}"
        );

        let too_big = POOLED.replace(r#""max_cpu_millis": 4000"#, r#""max_cpu_millis": 500"#);
        let err = Workload::from_json(&too_big).expect_err("over its pool's quota");
        assert_eq!(err.field(), Some("tasks[1]"));
        assert!(err.to_string().contains("could never run"), "{err}");
    }
}
