//! The worker's settings, and their check at start-up.
//!
//! [`Config`] is what the operator writes (a TOML file and `TASKYARD_<FIELD>`
//! variables, through `taskyard_runtime::config::load`). [`Config::resolve`]
//! fills in what comes from the host and checks everything at once, giving the
//! [`Settings`] the rest of the crate runs on.

use crate::capacity::HostFacts;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use taskyard_runtime::{Common, ServiceConfig};
use taskyard_wire::heartbeat::Capacity;
use taskyard_wire::subjects;

/// Attempts a node runs at once unless told otherwise.
pub const DEFAULT_SLOTS: u32 = 64;
/// How often a heartbeat is published.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 1_000;
/// How long NATS waits for an ack of a dispatch before it hands the attempt
/// to someone else; kept alive by progress acks every third of it.
pub const DEFAULT_ACK_WAIT_MS: u64 = 30_000;
/// How long running attempts may go on after SIGTERM.
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 30_000;
/// Bytes of stdout, and of stderr, kept per `exec` attempt.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// Lines of stdout and stderr streamed per `exec` attempt (task logs).
pub const DEFAULT_LOG_MAX_LINES: u64 = 10_000;
/// Bytes of one task log line kept; longer lines are cut and marked.
pub const DEFAULT_LOG_MAX_LINE_BYTES: usize = 4096;
/// Longest a task log line waits before it is published.
pub const DEFAULT_LOG_FLUSH_INTERVAL_MS: u64 = 200;
/// Task log lines that make a batch go out at once.
pub const DEFAULT_LOG_FLUSH_LINES: usize = 100;
/// How long a worker may be cut off from NATS before it stops its running
/// attempts itself: the resource manager's `DEFAULT_LOST_AFTER_MS`, after
/// which the node is declared lost and its attempts may run elsewhere. The
/// worker does not depend on that crate, so a test keeps the two equal.
pub const DEFAULT_FENCE_AFTER_MS: u64 = 10_000;
/// Shortest accepted ack wait: progress acks go out every third of it, and a
/// shorter one would have NATS redeliver running attempts on any hiccup.
pub const MIN_ACK_WAIT_MS: u64 = 300;

/// The worker's configuration. Every field can be set in the config file or as
/// `TASKYARD_<FIELD>` (for example `TASKYARD_NODE_ID=node-7`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Settings every service has (NATS URL, logs, metrics, stream replicas).
    #[serde(flatten)]
    pub common: Common,
    /// This node's name: it is in subjects (`taskyard.dispatch.<node>`) and in
    /// the consumer name, so it must be 1 to 64 letters, digits, `-` or `_`.
    /// Defaults to the hostname with every other character replaced by `-`.
    /// Two workers with one node id share one dispatch consumer.
    pub node_id: Option<String>,
    /// CPU offered to tasks, in millicores. Defaults to the host's logical
    /// CPUs × 1000; set it to run several small "nodes" on one machine.
    pub cpu_millis: Option<u32>,
    /// Memory offered to tasks, in MiB. Defaults to the host's total memory.
    pub memory_mb: Option<u32>,
    /// Most attempts run at once, whatever their size. Also bounds how many
    /// dispatches NATS hands this node before they are acked.
    pub slots: u32,
    /// Labels reported in heartbeats; pools pick their nodes by label.
    pub labels: BTreeMap<String, String>,
    /// Milliseconds between heartbeats; the resource-manager declares a node
    /// lost after it misses several.
    pub heartbeat_interval_ms: u64,
    /// Ack wait of this node's dispatch consumer, in milliseconds. A worker that
    /// dies hands its attempts back after this long; running attempts are kept
    /// alive by progress acks every third of it.
    pub ack_wait_ms: u64,
    /// After SIGTERM, how long running attempts may still finish, in
    /// milliseconds; those still running then are killed and reported failed so
    /// that the pool manager can retry them elsewhere.
    pub drain_timeout_ms: u64,
    /// Parent of the per-attempt directories of `exec` tasks that name no
    /// working directory. Defaults to `<tmp>/taskyard-worker/<node_id>`.
    pub work_dir: Option<PathBuf>,
    /// Bytes of stdout, and separately of stderr, kept from one `exec` attempt;
    /// the rest is read and dropped, and the result says it was truncated.
    /// Also bounds the body kept from an `http` task and the reply kept from a
    /// `nats` task.
    pub max_output_bytes: usize,
    /// Whether each `exec` attempt runs in a cgroup v2 of its own whose
    /// `memory.max` is the task's `resources.memory_mb`, so that a task that
    /// overruns its reservation is killed rather than starving its
    /// neighbours. When the host gives the worker no cgroup v2 memory
    /// controller, the worker says so once at start and runs without.
    pub memory_limits: bool,
    /// Lines of stdout and stderr (together) streamed as task logs per `exec`
    /// attempt; past it, one last line says how many were dropped. 0 turns
    /// task logs off. The bounded `result` capture is not affected.
    pub log_max_lines: u64,
    /// Bytes of one task log line kept; the rest of a longer line is dropped
    /// and the line ends with `[taskyard: line cut at N bytes]`.
    pub log_max_line_bytes: usize,
    /// Longest a task log line waits before it is published, in milliseconds.
    pub log_flush_interval_ms: u64,
    /// Task log lines that make a batch go out before the interval.
    pub log_flush_lines: usize,
    /// How long, in milliseconds, the worker may be cut off from NATS (no
    /// heartbeat got through, disconnected, or its own process frozen)
    /// before it stops its running attempts itself and reports them failed.
    /// Keep it equal to the resource manager's `lost_after_ms`: after that
    /// long the node is declared lost and its attempts may run elsewhere.
    /// 0 turns self-fencing off.
    pub fence_after_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            common: Common::default(),
            node_id: None,
            cpu_millis: None,
            memory_mb: None,
            slots: DEFAULT_SLOTS,
            labels: BTreeMap::new(),
            heartbeat_interval_ms: DEFAULT_HEARTBEAT_INTERVAL_MS,
            ack_wait_ms: DEFAULT_ACK_WAIT_MS,
            drain_timeout_ms: DEFAULT_DRAIN_TIMEOUT_MS,
            work_dir: None,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            memory_limits: true,
            log_max_lines: DEFAULT_LOG_MAX_LINES,
            log_max_line_bytes: DEFAULT_LOG_MAX_LINE_BYTES,
            log_flush_interval_ms: DEFAULT_LOG_FLUSH_INTERVAL_MS,
            log_flush_lines: DEFAULT_LOG_FLUSH_LINES,
            fence_after_ms: DEFAULT_FENCE_AFTER_MS,
        }
    }
}

impl ServiceConfig for Config {
    fn common(&self) -> &Common {
        &self.common
    }

    /// The same checks as [`Config::resolve`], run at load so that a bad
    /// worker setting stops the process with exit code 78 like any other
    /// service's, every problem named at once.
    fn problems(&self) -> Vec<String> {
        match self.resolve(&HostFacts::probe()) {
            Ok(_) => Vec::new(),
            Err(err) => err.problems,
        }
    }
}

/// The configuration as the worker runs it: host facts filled in, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_id: String,
    /// The host's name as the OS reports it (the node id may differ).
    pub hostname: String,
    pub capacity: Capacity,
    pub labels: BTreeMap<String, String>,
    pub heartbeat_interval: Duration,
    pub ack_wait: Duration,
    pub drain_timeout: Duration,
    pub work_dir: PathBuf,
    pub max_output_bytes: usize,
    pub memory_limits: bool,
    pub logs: crate::logs::LogSettings,
    /// How long a cut-off is tolerated before the worker fences itself;
    /// `None` when fencing is off.
    pub fence_after: Option<Duration>,
}

/// Every problem found in a [`Config`], reported together.
#[derive(Debug, thiserror::Error)]
#[error("invalid worker configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl Config {
    /// Fills in what the operator left to the host and checks every field.
    pub fn resolve(&self, host: &HostFacts) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();
        let hostname = host.hostname.clone().unwrap_or_default();
        let node_id = match &self.node_id {
            Some(node) => {
                if !subjects::is_token(node) {
                    problems.push(format!(
                        "node_id `{node}` cannot be a NATS subject token: use 1 to 64 \
                         letters, digits, `-` or `_`"
                    ));
                }
                node.clone()
            }
            None => {
                let node = sanitize_node_id(&hostname);
                if !subjects::is_token(&node) {
                    problems.push(format!(
                        "node_id is not set and the hostname `{hostname}` does not make one; \
                         set TASKYARD_NODE_ID"
                    ));
                }
                node
            }
        };
        if self.slots == 0 {
            problems.push("slots must be at least 1".to_owned());
        }
        if self.heartbeat_interval_ms == 0 {
            problems.push("heartbeat_interval_ms must be at least 1".to_owned());
        }
        if self.ack_wait_ms < MIN_ACK_WAIT_MS {
            problems.push(format!(
                "ack_wait_ms is {}; it must be at least {MIN_ACK_WAIT_MS}",
                self.ack_wait_ms
            ));
        }
        if self.max_output_bytes == 0 {
            problems.push("max_output_bytes must be at least 1".to_owned());
        }
        if self.log_max_line_bytes == 0 {
            problems.push("log_max_line_bytes must be at least 1".to_owned());
        }
        if self.log_flush_interval_ms == 0 {
            problems.push("log_flush_interval_ms must be at least 1".to_owned());
        }
        if self.log_flush_lines == 0 {
            problems.push("log_flush_lines must be at least 1".to_owned());
        }
        // A threshold one late heartbeat could cross would fence a healthy
        // worker's attempts.
        if self.fence_after_ms != 0
            && self.fence_after_ms < self.heartbeat_interval_ms.saturating_mul(2)
        {
            problems.push(format!(
                "fence_after_ms is {}; it must be at least twice heartbeat_interval_ms ({}), \
                 or 0 to turn self-fencing off",
                self.fence_after_ms, self.heartbeat_interval_ms
            ));
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let work_dir = self
            .work_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("taskyard-worker").join(&node_id));
        Ok(Settings {
            hostname: if hostname.is_empty() {
                node_id.clone()
            } else {
                hostname
            },
            node_id,
            capacity: Capacity {
                cpu_millis: self.cpu_millis.unwrap_or(host.cpu_millis),
                memory_mb: self.memory_mb.unwrap_or(host.memory_mb),
                slots: self.slots,
            },
            labels: self.labels.clone(),
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval_ms),
            ack_wait: Duration::from_millis(self.ack_wait_ms),
            drain_timeout: Duration::from_millis(self.drain_timeout_ms),
            work_dir,
            max_output_bytes: self.max_output_bytes,
            memory_limits: self.memory_limits,
            logs: crate::logs::LogSettings {
                max_lines: self.log_max_lines,
                max_line_bytes: self.log_max_line_bytes,
                flush_interval: Duration::from_millis(self.log_flush_interval_ms),
                flush_lines: self.log_flush_lines,
            },
            fence_after: (self.fence_after_ms != 0)
                .then(|| Duration::from_millis(self.fence_after_ms)),
        })
    }
}

/// A hostname as a node id: characters a subject token cannot hold become `-`
/// (so `web-1.example.com` is `web-1-example-com`), cut to 64 bytes.
pub fn sanitize_node_id(hostname: &str) -> String {
    hostname
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn host() -> HostFacts {
        HostFacts {
            hostname: Some("box.example.com".to_owned()),
            cpu_millis: 8_000,
            memory_mb: 16_384,
        }
    }

    #[test]
    fn defaults_come_from_the_host() {
        let settings = Config::default().resolve(&host()).expect("valid");
        assert_eq!(settings.node_id, "box-example-com");
        assert_eq!(settings.hostname, "box.example.com");
        assert_eq!(
            settings.capacity,
            Capacity {
                cpu_millis: 8_000,
                memory_mb: 16_384,
                slots: DEFAULT_SLOTS
            }
        );
        assert_eq!(
            settings.ack_wait,
            Duration::from_millis(DEFAULT_ACK_WAIT_MS)
        );
        assert!(
            settings
                .work_dir
                .ends_with("taskyard-worker/box-example-com")
        );
    }

    #[test]
    fn overrides_win_over_the_host() {
        let config = Config {
            node_id: Some("small-1".to_owned()),
            cpu_millis: Some(500),
            memory_mb: Some(256),
            slots: 2,
            work_dir: Some(PathBuf::from("/srv/work")),
            ..Config::default()
        };
        let settings = config.resolve(&host()).expect("valid");
        assert_eq!(settings.node_id, "small-1");
        assert_eq!(settings.capacity.cpu_millis, 500);
        assert_eq!(settings.capacity.memory_mb, 256);
        assert_eq!(settings.capacity.slots, 2);
        assert_eq!(settings.work_dir, Path::new("/srv/work"));
    }

    #[test]
    fn every_bad_setting_is_reported_at_once() {
        let config = Config {
            node_id: Some("a.b".to_owned()),
            slots: 0,
            ack_wait_ms: 10,
            ..Config::default()
        };
        let err = config.resolve(&host()).expect_err("invalid");
        let text = err.to_string();
        assert_eq!(err.problems.len(), 3, "{text}");
        assert!(text.contains("node_id `a.b`"), "{text}");
        assert!(text.contains("slots"), "{text}");
        assert!(text.contains("ack_wait_ms is 10"), "{text}");
    }

    #[test]
    fn the_fencing_threshold_is_the_resource_manager_s_lost_threshold() {
        // Read from its source: the worker must not depend on the
        // resource manager to learn one number.
        let source = include_str!("../../resource-manager/src/config.rs");
        let lost_after: u64 = source
            .lines()
            .find_map(|line| line.strip_prefix("pub const DEFAULT_LOST_AFTER_MS: u64 = "))
            .and_then(|rest| rest.trim_end_matches(';').replace('_', "").parse().ok())
            .expect("the resource manager names DEFAULT_LOST_AFTER_MS");
        assert_eq!(DEFAULT_FENCE_AFTER_MS, lost_after);
        let settings = Config::default().resolve(&host()).expect("valid");
        assert_eq!(
            settings.fence_after,
            Some(Duration::from_millis(lost_after))
        );
    }

    #[test]
    fn bad_settings_are_problems_at_load_all_at_once() {
        let config = Config {
            heartbeat_interval_ms: 1_000,
            fence_after_ms: 1_500,
            log_flush_lines: 0,
            ..Config::default()
        };
        let problems = config.problems();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("fence_after_ms is 1500")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p == "log_flush_lines must be at least 1"),
            "{problems:?}"
        );
    }

    #[test]
    fn fencing_can_be_turned_off_but_not_set_below_two_heartbeats() {
        let off = Config {
            fence_after_ms: 0,
            ..Config::default()
        };
        assert_eq!(off.resolve(&host()).expect("valid").fence_after, None);
        let tight = Config {
            heartbeat_interval_ms: 1_000,
            fence_after_ms: 1_500,
            ..Config::default()
        };
        let err = tight.resolve(&host()).expect_err("invalid");
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(
            err.to_string().contains(
                "fence_after_ms is 1500; it must be at least twice heartbeat_interval_ms (1000)"
            ),
            "{err}"
        );
        let two_beats = Config {
            fence_after_ms: 2_000,
            ..tight
        };
        assert_eq!(
            two_beats.resolve(&host()).expect("valid").fence_after,
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn a_host_without_a_usable_name_asks_for_a_node_id() {
        let facts = HostFacts {
            hostname: None,
            ..host()
        };
        let err = Config::default().resolve(&facts).expect_err("no node id");
        assert!(err.to_string().contains("TASKYARD_NODE_ID"), "{err}");
    }

    #[test]
    // The closure's error type is figment's, not ours.
    #[allow(clippy::result_large_err)]
    fn settings_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TASKYARD_NODE_ID", "env-node");
            jail.set_env("TASKYARD_CPU_MILLIS", "1500");
            jail.set_env("TASKYARD_SLOTS", "3");
            jail.set_env("TASKYARD_LABELS", "{zone=eu,gpu=none}");
            let config: Config =
                taskyard_runtime::config::load(None).map_err(figment::Error::from)?;
            assert_eq!(config.node_id.as_deref(), Some("env-node"));
            assert_eq!(config.cpu_millis, Some(1500));
            assert_eq!(config.memory_mb, None);
            assert_eq!(config.slots, 3);
            assert_eq!(config.labels.get("zone").map(String::as_str), Some("eu"));
            assert_eq!(config.ack_wait_ms, DEFAULT_ACK_WAIT_MS);
            assert!(config.memory_limits, "memory limits are on by default");
            assert_eq!(config.log_max_lines, DEFAULT_LOG_MAX_LINES);
            assert_eq!(config.fence_after_ms, DEFAULT_FENCE_AFTER_MS);
            jail.set_env("TASKYARD_LOG_MAX_LINES", "5");
            jail.set_env("TASKYARD_LOG_MAX_LINE_BYTES", "80");
            jail.set_env("TASKYARD_MEMORY_LIMITS", "false");
            jail.set_env("TASKYARD_FENCE_AFTER_MS", "3000");
            let config: Config =
                taskyard_runtime::config::load(None).map_err(figment::Error::from)?;
            assert!(!config.memory_limits);
            assert_eq!(config.fence_after_ms, 3000);
            assert_eq!(config.log_max_lines, 5);
            assert_eq!(config.log_max_line_bytes, 80);
            Ok(())
        });
    }
}
