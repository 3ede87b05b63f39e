//! The pool manager's settings.

use serde::{Deserialize, Serialize};
use taskyard_runtime::config::at_least;
use taskyard_runtime::{Common, ServiceConfig};

/// Most reports taken from the stream at once.
pub const DEFAULT_BATCH_SIZE: usize = 2000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    /// Most reports handled per batch (`TASKYARD_BATCH_SIZE`).
    pub batch_size: usize,
    /// Postgres connections (`TASKYARD_POOL_SIZE`).
    pub pool_size: usize,
    /// How long after a running attempt's deadline the pool manager times it
    /// out itself, when the worker has not (`TASKYARD_TIMEOUT_GRACE_MS`).
    pub timeout_grace_ms: u64,
    /// How often the reconciler looks for overdue timers and lost nodes with
    /// work (`TASKYARD_RECONCILE_INTERVAL_MS`).
    pub reconcile_interval_ms: u64,
    /// How late a timer must be before the reconciler applies it
    /// (`TASKYARD_RECONCILE_GRACE_MS`).
    pub reconcile_grace_ms: u64,
    /// Deliveries of a worker report before it is kept as a dead letter
    /// (`TASKYARD_MAX_DELIVERIES`).
    pub max_deliveries: u32,
    /// How often tasks are counted by pool and state for the `taskyard_tasks`
    /// metric (`TASKYARD_CENSUS_INTERVAL_MS`).
    pub census_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            common: Common::default(),
            batch_size: DEFAULT_BATCH_SIZE,
            pool_size: 4,
            timeout_grace_ms: 1000,
            reconcile_interval_ms: 10_000,
            reconcile_grace_ms: 5000,
            max_deliveries: 10,
            census_interval_ms: 15_000,
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
            "reconcile_interval_ms",
            self.reconcile_interval_ms,
            100,
        );
        at_least(
            &mut problems,
            "census_interval_ms",
            self.census_interval_ms,
            100,
        );
        at_least(
            &mut problems,
            "max_deliveries",
            u64::from(self.max_deliveries),
            1,
        );
        problems
    }
}

#[cfg(test)]
mod problems {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_zeroes_are_named() {
        assert_eq!(Config::default().problems(), Vec::<String>::new());
        let zero = Config {
            batch_size: 0,
            max_deliveries: 0,
            ..Config::default()
        };
        assert_eq!(
            zero.problems(),
            vec![
                "batch_size is 0; it must be at least 1".to_owned(),
                "max_deliveries is 0; it must be at least 1".to_owned(),
            ]
        );
    }
}
