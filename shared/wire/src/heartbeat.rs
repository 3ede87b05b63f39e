//! Worker → resource-manager: I am alive, this is what I have.

use crate::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a node can give to tasks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// CPU in millicores.
    pub cpu_millis: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
    /// Most tasks it runs at once, whatever their size.
    pub slots: u32,
}

/// What the host is using right now (all processes, not only tasks).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// Whole-host CPU use, 0 to 100.
    pub cpu_percent: f32,
    /// Memory in use on the host, MiB.
    pub memory_used_mb: u64,
    /// Size of the filesystem holding the worker's task directories, MiB.
    #[serde(default)]
    pub disk_total_mb: u64,
    /// Free space there, MiB.
    #[serde(default)]
    pub disk_free_mb: u64,
    /// Network bytes received per second, all interfaces but loopback.
    #[serde(default)]
    pub net_rx_bytes_per_s: u64,
    /// Network bytes sent per second, all interfaces but loopback.
    #[serde(default)]
    pub net_tx_bytes_per_s: u64,
}

/// Published every heartbeat interval on `taskyard.nodes.heartbeat.<node>` (core NATS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub node_id: String,
    pub hostname: String,
    /// The worker's version.
    pub version: String,
    #[serde(with = "crate::rfc3339")]
    #[schemars(with = "String")]
    pub started_at: Timestamp,
    pub capacity: Capacity,
    pub usage: Usage,
    /// Attempts running now.
    pub running: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Set once the worker stops taking work (SIGTERM).
    #[serde(default)]
    pub draining: bool,
    #[serde(with = "crate::rfc3339")]
    #[schemars(with = "String")]
    pub at: Timestamp,
}
