//! The resource manager's settings.

use crate::registry::Thresholds;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use taskyard_runtime::{Common, ServiceConfig};

/// A node whose last heartbeat is older than this is `suspect`.
pub const DEFAULT_SUSPECT_AFTER_MS: u64 = 3_000;
/// A node whose last heartbeat is older than this is `lost`.
pub const DEFAULT_LOST_AFTER_MS: u64 = 10_000;

/// A usage sample of each node this often.
pub const DEFAULT_SAMPLE_INTERVAL_MS: u64 = 10_000;
/// Samples are kept this long.
pub const DEFAULT_SAMPLE_RETENTION_HOURS: u64 = 24;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    /// `TASKYARD_SUSPECT_AFTER_MS`.
    pub suspect_after_ms: u64,
    /// `TASKYARD_LOST_AFTER_MS`; must exceed `suspect_after_ms`.
    pub lost_after_ms: u64,
    /// How often heartbeats are written to Postgres (`TASKYARD_FLUSH_INTERVAL_MS`).
    pub flush_interval_ms: u64,
    /// How often health is judged (`TASKYARD_SWEEP_INTERVAL_MS`).
    pub sweep_interval_ms: u64,
    /// How often a usage sample of each node is kept (`TASKYARD_SAMPLE_INTERVAL_MS`).
    pub sample_interval_ms: u64,
    /// How long samples are kept, in hours (`TASKYARD_SAMPLE_RETENTION_HOURS`).
    pub sample_retention_hours: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            common: Common::default(),
            suspect_after_ms: DEFAULT_SUSPECT_AFTER_MS,
            lost_after_ms: DEFAULT_LOST_AFTER_MS,
            flush_interval_ms: 200,
            sweep_interval_ms: 250,
            sample_interval_ms: DEFAULT_SAMPLE_INTERVAL_MS,
            sample_retention_hours: DEFAULT_SAMPLE_RETENTION_HOURS,
        }
    }
}

impl Config {
    pub fn thresholds(&self) -> Thresholds {
        let suspect = Duration::from_millis(self.suspect_after_ms);
        Thresholds {
            suspect_after: suspect,
            lost_after: Duration::from_millis(self.lost_after_ms).max(suspect),
        }
    }
}

impl ServiceConfig for Config {
    fn common(&self) -> &Common {
        &self.common
    }
}
