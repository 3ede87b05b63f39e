//! The node registry: written by the resource-manager from heartbeats, read by
//! the scheduler on start and by the API.

use crate::{Result, Store, to_i32, to_u32};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use taskyard_wire::Timestamp;
use taskyard_wire::heartbeat::{Capacity, Heartbeat};

/// A node's health as the resource-manager judges it from heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Alive,
    Suspect,
    Lost,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Alive => "alive",
            Health::Suspect => "suspect",
            Health::Lost => "lost",
        }
    }

    fn parse(name: &str) -> Result<Health> {
        match name {
            "alive" => Ok(Health::Alive),
            "suspect" => Ok(Health::Suspect),
            "lost" => Ok(Health::Lost),
            other => Err(crate::StoreError::Corrupt(format!(
                "unknown node health `{other}`"
            ))),
        }
    }
}

/// A node as the registry keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeRow {
    pub id: String,
    pub hostname: String,
    pub version: String,
    pub health: Health,
    pub capacity: Capacity,
    pub cpu_percent: f32,
    pub memory_used_mb: i64,
    pub running: u32,
    pub labels: BTreeMap<String, String>,
    pub draining: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub last_heartbeat_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub health_changed_at: Timestamp,
    /// CPU and memory held by tasks placed there (scheduled or running).
    pub reserved: Reserved,
}

/// What placed tasks hold on a node.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Reserved {
    pub cpu_millis: i64,
    pub memory_mb: i64,
    pub tasks: i64,
}

/// A health change to record.
#[derive(Debug, Clone)]
pub struct HealthChange {
    pub node_id: String,
    pub health: Health,
    pub reason: String,
}

const UPSERT_HEARTBEATS: &str = "
INSERT INTO nodes (id, hostname, version, health, cpu_millis, memory_mb, slots, cpu_percent,
                   memory_used_mb, running, labels, draining, started_at, last_heartbeat_at)
SELECT id, hostname, version, 'alive', cpu_millis, memory_mb, slots, cpu_percent,
       memory_used_mb, running, labels, draining, started_at, at
FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::int[], $7::real[],
            $8::bigint[], $9::int[], $10::jsonb[], $11::bool[], $12::timestamptz[],
            $13::timestamptz[])
    AS i(id, hostname, version, cpu_millis, memory_mb, slots, cpu_percent, memory_used_mb,
         running, labels, draining, started_at, at)
ON CONFLICT (id) DO UPDATE SET
    hostname = excluded.hostname, version = excluded.version,
    health = 'alive',
    health_changed_at = CASE WHEN nodes.health = 'alive' THEN nodes.health_changed_at ELSE now() END,
    cpu_millis = excluded.cpu_millis, memory_mb = excluded.memory_mb, slots = excluded.slots,
    cpu_percent = excluded.cpu_percent, memory_used_mb = excluded.memory_used_mb,
    running = excluded.running, labels = excluded.labels, draining = excluded.draining,
    started_at = excluded.started_at, last_heartbeat_at = excluded.last_heartbeat_at";

const NODE_COLUMNS: &str = "n.id, n.hostname, n.version, n.health::text AS health, n.cpu_millis, \
     n.memory_mb, n.slots, n.cpu_percent, n.memory_used_mb, n.running, n.labels, n.draining, \
     n.started_at, n.registered_at, n.last_heartbeat_at, n.health_changed_at, \
     coalesce(r.cpu, 0) AS reserved_cpu, coalesce(r.mem, 0) AS reserved_mem, \
     coalesce(r.tasks, 0) AS reserved_tasks";

const RESERVATIONS: &str = "LEFT JOIN (SELECT node_id, sum(cpu_millis) AS cpu, sum(memory_mb) AS mem, \
     count(*) AS tasks FROM tasks WHERE state IN ('scheduled', 'running') GROUP BY node_id) r \
     ON r.node_id = n.id";

impl Store {
    /// Records the latest heartbeat of each node (one row per node in `beats`)
    /// and marks them alive.
    pub async fn record_heartbeats(&self, beats: &[Heartbeat]) -> Result<()> {
        if beats.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = beats.iter().map(|b| b.node_id.as_str()).collect();
        let hosts: Vec<&str> = beats.iter().map(|b| b.hostname.as_str()).collect();
        let versions: Vec<&str> = beats.iter().map(|b| b.version.as_str()).collect();
        let cpus: Vec<i32> = beats
            .iter()
            .map(|b| to_i32(b.capacity.cpu_millis))
            .collect();
        let mems: Vec<i32> = beats.iter().map(|b| to_i32(b.capacity.memory_mb)).collect();
        let slots: Vec<i32> = beats.iter().map(|b| to_i32(b.capacity.slots)).collect();
        let cpu_pct: Vec<f32> = beats.iter().map(|b| b.usage.cpu_percent).collect();
        let mem_used: Vec<i64> = beats
            .iter()
            .map(|b| i64::try_from(b.usage.memory_used_mb).unwrap_or(i64::MAX))
            .collect();
        let running: Vec<i32> = beats.iter().map(|b| to_i32(b.running)).collect();
        let labels: Vec<Value> = beats
            .iter()
            .map(|b| serde_json::to_value(&b.labels).unwrap_or(Value::Null))
            .collect();
        let draining: Vec<bool> = beats.iter().map(|b| b.draining).collect();
        let started: Vec<Timestamp> = beats.iter().map(|b| b.started_at).collect();
        let at: Vec<Timestamp> = beats.iter().map(|b| b.at).collect();
        let client = self.client().await?;
        let statement = client.prepare_cached(UPSERT_HEARTBEATS).await?;
        client
            .execute(
                &statement,
                &[
                    &ids, &hosts, &versions, &cpus, &mems, &slots, &cpu_pct, &mem_used, &running,
                    &labels, &draining, &started, &at,
                ],
            )
            .await?;
        Ok(())
    }

    /// Sets nodes' health and records each change in `node_events`.
    pub async fn set_health(&self, changes: &[HealthChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = changes.iter().map(|c| c.node_id.as_str()).collect();
        let health: Vec<&str> = changes.iter().map(|c| c.health.as_str()).collect();
        let reasons: Vec<&str> = changes.iter().map(|c| c.reason.as_str()).collect();
        let client = self.client().await?;
        client
            .execute(
                "WITH input AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) \
                     AS i(id, health, reason)), \
                 upd AS (UPDATE nodes n SET health = i.health::node_health, \
                     health_changed_at = now() FROM input i WHERE n.id = i.id \
                     AND n.health <> i.health::node_health RETURNING n.id, i.health, i.reason) \
                 INSERT INTO node_events (node_id, kind, reason) \
                 SELECT id, health, reason FROM upd",
                &[&ids, &health, &reasons],
            )
            .await?;
        Ok(())
    }

    /// Records a node event that is not a health change (registration, draining).
    pub async fn record_node_event(&self, node_id: &str, kind: &str, reason: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO node_events (node_id, kind, reason) VALUES ($1, $2, $3)",
                &[&node_id, &kind, &reason],
            )
            .await?;
        Ok(())
    }

    /// Every node, with what placed tasks reserve on it.
    pub async fn list_nodes(&self) -> Result<Vec<NodeRow>> {
        let client = self.client().await?;
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes n {RESERVATIONS} ORDER BY n.id");
        let rows = client.query(&sql, &[]).await?;
        rows.iter().map(node_from_row).collect()
    }

    /// One node, or `None`.
    pub async fn get_node(&self, id: &str) -> Result<Option<NodeRow>> {
        let client = self.client().await?;
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes n {RESERVATIONS} WHERE n.id = $1");
        let row = client.query_opt(&sql, &[&id]).await?;
        row.as_ref().map(node_from_row).transpose()
    }
}

fn node_from_row(row: &tokio_postgres::Row) -> Result<NodeRow> {
    let labels: Value = row.try_get("labels")?;
    Ok(NodeRow {
        id: row.try_get("id")?,
        hostname: row.try_get("hostname")?,
        version: row.try_get("version")?,
        health: Health::parse(row.try_get("health")?)?,
        capacity: Capacity {
            cpu_millis: to_u32(row.try_get("cpu_millis")?),
            memory_mb: to_u32(row.try_get("memory_mb")?),
            slots: to_u32(row.try_get("slots")?),
        },
        cpu_percent: row.try_get("cpu_percent")?,
        memory_used_mb: row.try_get("memory_used_mb")?,
        running: to_u32(row.try_get("running")?),
        labels: serde_json::from_value(labels).unwrap_or_default(),
        draining: row.try_get("draining")?,
        started_at: row.try_get("started_at")?,
        registered_at: row.try_get("registered_at")?,
        last_heartbeat_at: row.try_get("last_heartbeat_at")?,
        health_changed_at: row.try_get("health_changed_at")?,
        reserved: Reserved {
            cpu_millis: row.try_get("reserved_cpu")?,
            memory_mb: row.try_get("reserved_mem")?,
            tasks: row.try_get("reserved_tasks")?,
        },
    })
}
