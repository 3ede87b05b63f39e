//! The resource manager's settings.

use crate::registry::Thresholds;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use taskyard_runtime::config::at_least;
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
    /// How long the resource-manager lease lasts unrenewed
    /// (`TASKYARD_LEASE_TTL_MS`): a standby takes over within this of the
    /// active one's death.
    pub lease_ttl_ms: u64,
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
            lease_ttl_ms: taskyard_store::leases::DEFAULT_LEASE_TTL_MS,
        }
    }
}

impl Config {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            suspect_after: Duration::from_millis(self.suspect_after_ms),
            lost_after: Duration::from_millis(self.lost_after_ms),
        }
    }
}

impl ServiceConfig for Config {
    fn common(&self) -> &Common {
        &self.common
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        at_least(&mut problems, "suspect_after_ms", self.suspect_after_ms, 1);
        if self.lost_after_ms <= self.suspect_after_ms {
            problems.push(format!(
                "lost_after_ms is {}; it must be more than suspect_after_ms ({})",
                self.lost_after_ms, self.suspect_after_ms
            ));
        }
        at_least(
            &mut problems,
            "flush_interval_ms",
            self.flush_interval_ms,
            10,
        );
        at_least(
            &mut problems,
            "sweep_interval_ms",
            self.sweep_interval_ms,
            10,
        );
        at_least(
            &mut problems,
            "sample_interval_ms",
            self.sample_interval_ms,
            100,
        );
        at_least(
            &mut problems,
            "sample_retention_hours",
            self.sample_retention_hours,
            1,
        );
        at_least(&mut problems, "lease_ttl_ms", self.lease_ttl_ms, 250);
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(Config::default().problems(), Vec::<String>::new());
    }

    #[test]
    fn a_lost_threshold_not_past_suspicion_is_refused_with_the_rest() {
        let config = Config {
            suspect_after_ms: 5_000,
            lost_after_ms: 3_000,
            sweep_interval_ms: 0,
            ..Config::default()
        };
        assert_eq!(
            config.problems(),
            vec![
                "lost_after_ms is 3000; it must be more than suspect_after_ms (5000)".to_owned(),
                "sweep_interval_ms is 0; it must be at least 10".to_owned(),
            ]
        );
    }
}
