//! The orchestrator's settings.

use serde::{Deserialize, Serialize};
use taskyard_runtime::config::at_least;
use taskyard_runtime::{Common, ServiceConfig};
use taskyard_wire::task::Limits;

/// Most submissions taken from the stream at once.
pub const DEFAULT_BATCH_SIZE: usize = 1000;
/// How often dependents and workflows are reconciled with Postgres.
pub const DEFAULT_RECONCILE_INTERVAL_MS: u64 = 30_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    /// Most submissions recorded by one statement (`TASKYARD_BATCH_SIZE`).
    pub batch_size: usize,
    /// Largest `spec` of one task, in bytes (`TASKYARD_MAX_SPEC_BYTES`).
    pub max_spec_bytes: usize,
    /// Largest submission message, in bytes (`TASKYARD_MAX_SUBMISSION_BYTES`).
    pub max_submission_bytes: usize,
    /// Postgres connections (`TASKYARD_POOL_SIZE`).
    pub pool_size: usize,
    /// How often pending tasks whose dependencies ended, and workflows not
    /// yet over, are looked at in Postgres, in case an event was missed
    /// (`TASKYARD_RECONCILE_INTERVAL_MS`). Events do the work; this is the
    /// safety net.
    pub reconcile_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        let limits = Limits::default();
        Config {
            common: Common::default(),
            batch_size: DEFAULT_BATCH_SIZE,
            max_spec_bytes: limits.max_spec_bytes,
            max_submission_bytes: limits.max_submission_bytes,
            pool_size: taskyard_store::DEFAULT_POOL_SIZE,
            reconcile_interval_ms: DEFAULT_RECONCILE_INTERVAL_MS,
        }
    }
}

impl Config {
    pub fn reconcile_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.reconcile_interval_ms)
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_spec_bytes: self.max_spec_bytes,
            max_submission_bytes: self.max_submission_bytes,
        }
    }
}

impl ServiceConfig for Config {
    fn common(&self) -> &Common {
        &self.common
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        at_least(&mut problems, "batch_size", self.batch_size as u64, 1);
        at_least(&mut problems, "pool_size", self.pool_size as u64, 1);
        at_least(
            &mut problems,
            "max_spec_bytes",
            self.max_spec_bytes as u64,
            1,
        );
        at_least(
            &mut problems,
            "max_submission_bytes",
            self.max_submission_bytes as u64,
            1,
        );
        at_least(
            &mut problems,
            "reconcile_interval_ms",
            self.reconcile_interval_ms,
            100,
        );
        problems
    }
}
