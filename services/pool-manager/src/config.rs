//! The pool manager's settings.

use serde::{Deserialize, Serialize};
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            common: Common::default(),
            batch_size: DEFAULT_BATCH_SIZE,
            pool_size: 4,
        }
    }
}

impl ServiceConfig for Config {
    fn common(&self) -> &Common {
        &self.common
    }
}
