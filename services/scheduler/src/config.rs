//! The scheduler's settings.

use serde::{Deserialize, Serialize};
use taskyard_runtime::config::at_least;
use taskyard_runtime::{Common, ServiceConfig};

/// Most events taken from the stream at once.
pub const DEFAULT_BATCH_SIZE: usize = 2000;
/// Most placements recorded by one statement.
pub const DEFAULT_MAX_ROUND: usize = 1000;
/// How often the active scheduler checks its reservations and queues
/// against Postgres, healing what an event lost after a commit left wrong.
pub const DEFAULT_RESYNC_INTERVAL_MS: u64 = 30_000;

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
    /// How long the scheduler lease lasts unrenewed (`TASKYARD_LEASE_TTL_MS`):
    /// a standby takes over within this of the active scheduler's death.
    pub lease_ttl_ms: u64,
    /// How often reservations and queues are checked against Postgres
    /// (`TASKYARD_RESYNC_INTERVAL_MS`).
    pub resync_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            common: Common::default(),
            batch_size: DEFAULT_BATCH_SIZE,
            max_round: DEFAULT_MAX_ROUND,
            pool_size: 4,
            lease_ttl_ms: taskyard_store::leases::DEFAULT_LEASE_TTL_MS,
            resync_interval_ms: DEFAULT_RESYNC_INTERVAL_MS,
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
        at_least(&mut problems, "lease_ttl_ms", self.lease_ttl_ms, 250);
        at_least(
            &mut problems,
            "resync_interval_ms",
            self.resync_interval_ms,
            100,
        );
        problems
    }
}
