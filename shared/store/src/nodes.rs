//! The node registry: written by the resource-manager from heartbeats, read by
//! the scheduler on start and by the API.

use crate::leases::Fence;
use crate::{Result, Store, to_i32, to_u32};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use taskyard_wire::Timestamp;
use taskyard_wire::heartbeat::{Capacity, Heartbeat};

/// A node's health as the resource-manager judges it from heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = NodeHealth)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    /// The worker said it is draining (SIGTERM or a drain request).
    pub draining: bool,
    /// An operator cordoned it: no new work.
    pub cordoned: bool,
    pub disk_total_mb: i64,
    pub disk_free_mb: i64,
    pub net_rx_bytes_per_s: i64,
    pub net_tx_bytes_per_s: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub registered_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_heartbeat_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub health_changed_at: Timestamp,
    /// CPU and memory held by tasks placed there (scheduled or running).
    pub reserved: Reserved,
}

/// What placed tasks hold on a node.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct Reserved {
    pub cpu_millis: i64,
    pub memory_mb: i64,
    pub tasks: i64,
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
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
                   memory_used_mb, running, labels, draining, started_at, last_heartbeat_at,
                   disk_total_mb, disk_free_mb, net_rx_bytes_per_s, net_tx_bytes_per_s)
SELECT id, hostname, version, 'alive', cpu_millis, memory_mb, slots, cpu_percent,
       memory_used_mb, running, labels, draining, started_at, at,
       disk_total_mb, disk_free_mb, net_rx, net_tx
FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::int[], $7::real[],
            $8::bigint[], $9::int[], $10::jsonb[], $11::bool[], $12::timestamptz[],
            $13::timestamptz[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[])
    AS i(id, hostname, version, cpu_millis, memory_mb, slots, cpu_percent, memory_used_mb,
         running, labels, draining, started_at, at, disk_total_mb, disk_free_mb, net_rx, net_tx)
WHERE (SELECT $18::text IS NULL OR taskyard_fence($18::text, $19::bigint))
ON CONFLICT (id) DO UPDATE SET
    hostname = excluded.hostname, version = excluded.version,
    health = 'alive',
    health_changed_at = CASE WHEN nodes.health = 'alive' THEN nodes.health_changed_at ELSE now() END,
    cpu_millis = excluded.cpu_millis, memory_mb = excluded.memory_mb, slots = excluded.slots,
    cpu_percent = excluded.cpu_percent, memory_used_mb = excluded.memory_used_mb,
    running = excluded.running, labels = excluded.labels, draining = excluded.draining,
    started_at = excluded.started_at, last_heartbeat_at = excluded.last_heartbeat_at,
    disk_total_mb = excluded.disk_total_mb, disk_free_mb = excluded.disk_free_mb,
    net_rx_bytes_per_s = excluded.net_rx_bytes_per_s,
    net_tx_bytes_per_s = excluded.net_tx_bytes_per_s";

const INSERT_SAMPLES: &str = "
INSERT INTO node_samples (node_id, at, cpu_percent, memory_used_mb, disk_free_mb,
                          net_rx_bytes_per_s, net_tx_bytes_per_s, running)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::real[], $4::bigint[], $5::bigint[],
                     $6::bigint[], $7::bigint[], $8::int[])
ON CONFLICT DO NOTHING";

const NODE_COLUMNS: &str = "n.id, n.hostname, n.version, n.health::text AS health, n.cpu_millis, \
     n.memory_mb, n.slots, n.cpu_percent, n.memory_used_mb, n.running, n.labels, n.draining, \
     n.cordoned, n.disk_total_mb, n.disk_free_mb, n.net_rx_bytes_per_s, n.net_tx_bytes_per_s, \
     n.started_at, n.registered_at, n.last_heartbeat_at, n.health_changed_at, \
     coalesce(r.cpu, 0) AS reserved_cpu, coalesce(r.mem, 0) AS reserved_mem, \
     coalesce(r.tasks, 0) AS reserved_tasks";

const RESERVATIONS: &str = "LEFT JOIN (SELECT node_id, sum(cpu_millis) AS cpu, sum(memory_mb) AS mem, \
     count(*) AS tasks FROM tasks WHERE finished_at IS NULL AND state IN ('scheduled', 'running') \
     GROUP BY node_id) r \
     ON r.node_id = n.id";

impl Store {
    /// Records the latest heartbeat of each node (one row per node in `beats`)
    /// and marks them alive; with a `fence`, only while the sender holds
    /// that lease at that epoch.
    pub async fn record_heartbeats(&self, beats: &[Heartbeat], fence: Option<Fence>) -> Result<()> {
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
        let disk_total: Vec<i64> = beats
            .iter()
            .map(|b| to_i64(b.usage.disk_total_mb))
            .collect();
        let disk_free: Vec<i64> = beats.iter().map(|b| to_i64(b.usage.disk_free_mb)).collect();
        let net_rx: Vec<i64> = beats
            .iter()
            .map(|b| to_i64(b.usage.net_rx_bytes_per_s))
            .collect();
        let net_tx: Vec<i64> = beats
            .iter()
            .map(|b| to_i64(b.usage.net_tx_bytes_per_s))
            .collect();
        let client = self.client().await?;
        let statement = client.prepare_cached(UPSERT_HEARTBEATS).await?;
        client
            .execute(
                &statement,
                &[
                    &ids,
                    &hosts,
                    &versions,
                    &cpus,
                    &mems,
                    &slots,
                    &cpu_pct,
                    &mem_used,
                    &running,
                    &labels,
                    &draining,
                    &started,
                    &at,
                    &disk_total,
                    &disk_free,
                    &net_rx,
                    &net_tx,
                    &fence.map(|f| f.lease),
                    &fence.map(|f| f.epoch),
                ],
            )
            .await?;
        Ok(())
    }

    /// Keeps one sample of each node's usage (the console charts them).
    pub async fn record_samples(&self, beats: &[Heartbeat]) -> Result<()> {
        if beats.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = beats.iter().map(|b| b.node_id.as_str()).collect();
        let at: Vec<Timestamp> = beats.iter().map(|b| b.at).collect();
        let cpu: Vec<f32> = beats.iter().map(|b| b.usage.cpu_percent).collect();
        let mem: Vec<i64> = beats
            .iter()
            .map(|b| to_i64(b.usage.memory_used_mb))
            .collect();
        let disk: Vec<i64> = beats.iter().map(|b| to_i64(b.usage.disk_free_mb)).collect();
        let rx: Vec<i64> = beats
            .iter()
            .map(|b| to_i64(b.usage.net_rx_bytes_per_s))
            .collect();
        let tx: Vec<i64> = beats
            .iter()
            .map(|b| to_i64(b.usage.net_tx_bytes_per_s))
            .collect();
        let running: Vec<i32> = beats.iter().map(|b| to_i32(b.running)).collect();
        let client = self.client().await?;
        let statement = client.prepare_cached(INSERT_SAMPLES).await?;
        client
            .execute(
                &statement,
                &[&ids, &at, &cpu, &mem, &disk, &rx, &tx, &running],
            )
            .await?;
        Ok(())
    }

    /// Deletes samples older than `keep`; returns how many.
    pub async fn prune_samples(&self, keep: std::time::Duration) -> Result<u64> {
        let client = self.client().await?;
        let seconds = keep.as_secs_f64();
        Ok(client
            .execute(
                "DELETE FROM node_samples WHERE at < now() - make_interval(secs => $1)",
                &[&seconds],
            )
            .await?)
    }

    /// Cordons or uncordons a node, recording the event with `actor` (who
    /// asked: see [`crate::actors`]); `None` if unknown.
    pub async fn set_cordoned(
        &self,
        node_id: &str,
        cordoned: bool,
        reason: &str,
        actor: Option<&str>,
    ) -> Result<Option<NodeRow>> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "WITH upd AS (UPDATE nodes SET cordoned = $2 WHERE id = $1 RETURNING id) \
                 INSERT INTO node_events (node_id, kind, reason, actor) \
                 SELECT id, CASE WHEN $2 THEN 'cordoned' ELSE 'uncordoned' END, $3, $4::text \
                 FROM upd",
                &[&node_id, &cordoned, &reason, &actor],
            )
            .await?;
        if changed == 0 {
            return Ok(None);
        }
        drop(client);
        self.get_node(node_id).await
    }

    /// Removes a node from the registry (its history stays, with `actor`);
    /// false if unknown.
    pub async fn remove_node(
        &self,
        node_id: &str,
        reason: &str,
        actor: Option<&str>,
    ) -> Result<bool> {
        let client = self.client().await?;
        let removed = client
            .execute(
                "WITH del AS (DELETE FROM nodes WHERE id = $1 RETURNING id) \
                 INSERT INTO node_events (node_id, kind, reason, actor) \
                 SELECT id, 'removed', $2, $3::text FROM del",
                &[&node_id, &reason, &actor],
            )
            .await?;
        Ok(removed > 0)
    }

    /// Sets nodes' health and records each change in `node_events`; with a
    /// `fence`, only while the sender holds that lease at that epoch.
    pub async fn set_health(&self, changes: &[HealthChange], fence: Option<Fence>) -> Result<()> {
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
                     AND n.health <> i.health::node_health \
                     AND (SELECT $4::text IS NULL OR taskyard_fence($4::text, $5::bigint)) \
                     RETURNING n.id, i.health, i.reason) \
                 INSERT INTO node_events (node_id, kind, reason) \
                 SELECT id, health, reason FROM upd",
                &[
                    &ids,
                    &health,
                    &reasons,
                    &fence.map(|f| f.lease),
                    &fence.map(|f| f.epoch),
                ],
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
        cordoned: row.try_get("cordoned")?,
        disk_total_mb: row.try_get("disk_total_mb")?,
        disk_free_mb: row.try_get("disk_free_mb")?,
        net_rx_bytes_per_s: row.try_get("net_rx_bytes_per_s")?,
        net_tx_bytes_per_s: row.try_get("net_tx_bytes_per_s")?,
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
