//! The scheduler's settings.

use serde::{Deserialize, Serialize};
use taskyard_runtime::config::at_least;
use taskyard_runtime::{Common, ServiceConfig};

/// Most events taken from the stream at once.
pub const DEFAULT_BATCH_SIZE: usize = 2000;
/// Most placements recorded by one statement.
pub const DEFAULT_MAX_ROUND: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    /// Most events handled per batch (`TASKYARD_BATCH_SIZE`).
    pub batch_size: usize,
    /// Most placements per round (`TASKYARD_MAX_ROUND`).
    pub max_round: usize,
    /// Postgres connections (`TASKYARD_POOL_SIZE`).
    pub pool_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            common: Common::default(),
            batch_size: DEFAULT_BATCH_SIZE,
            max_round: DEFAULT_MAX_ROUND,
            pool_size: 4,
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
        at_least(&mut problems, "max_round", self.max_round as u64, 1);
        at_least(&mut problems, "pool_size", self.pool_size as u64, 1);
        problems
    }
}
