//! Pools: written by the pool manager, read by everyone at start.

use crate::{Result, Store, StoreError, to_i32, to_u32};
use serde_json::Value;
use taskyard_wire::pool::{PlacementStrategy, PoolSpec};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

const POOL_COLUMNS: &str = "name, policy, placement, node_selector, max_running, max_cpu_millis, \
     max_memory_mb, tenant_max_running, default_timeout_ms, overcommit, tenant_weights, \
     retry_backoff_ms, retry_backoff_max_ms";

/// What deleting a pool did.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolDeletion {
    Deleted(PoolSpec),
    NotFound,
    /// Tasks of the pool are still waiting or running.
    Busy {
        active: i64,
    },
}

impl Store {
    /// Every pool, by name.
    pub async fn list_pools(&self) -> Result<Vec<PoolSpec>> {
        let client = self.client().await?;
        let sql = format!("SELECT {POOL_COLUMNS} FROM pools ORDER BY name");
        let rows = client.query(&sql, &[]).await?;
        rows.iter().map(pool_from_row).collect()
    }

    /// One pool, or `None`.
    pub async fn get_pool(&self, name: &str) -> Result<Option<PoolSpec>> {
        let client = self.client().await?;
        let sql = format!("SELECT {POOL_COLUMNS} FROM pools WHERE name = $1");
        let row = client.query_opt(&sql, &[&name]).await?;
        row.as_ref().map(pool_from_row).transpose()
    }

    /// Creates a pool, and its `created` row in `pool_events` with `actor`
    /// (who asked: see [`crate::actors`]); false when one of that name
    /// exists.
    pub async fn create_pool(&self, pool: &PoolSpec, actor: Option<&str>) -> Result<bool> {
        let client = self.client().await?;
        let values = PoolValues::of(pool);
        let definition = definition_of(pool);
        let mut params = values.params().to_vec();
        params.extend_from_slice(&[&actor as &(dyn ToSql + Sync), &definition]);
        let created = client
            .execute(
                "WITH ins AS ( \
                     INSERT INTO pools (name, policy, placement, node_selector, max_running, \
                         max_cpu_millis, max_memory_mb, tenant_max_running, default_timeout_ms, \
                         overcommit, tenant_weights, retry_backoff_ms, retry_backoff_max_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                     ON CONFLICT (name) DO NOTHING RETURNING name) \
                 INSERT INTO pool_events (pool, change, actor, definition) \
                 SELECT name, 'created', $14::text, $15::jsonb FROM ins",
                &params,
            )
            .await?;
        Ok(created == 1)
    }

    /// Replaces a pool's definition, recording the change with `actor`;
    /// false when there is no such pool.
    pub async fn update_pool(&self, pool: &PoolSpec, actor: Option<&str>) -> Result<bool> {
        let client = self.client().await?;
        let values = PoolValues::of(pool);
        let definition = definition_of(pool);
        let mut params = values.params().to_vec();
        params.extend_from_slice(&[&actor as &(dyn ToSql + Sync), &definition]);
        let updated = client
            .execute(
                "WITH upd AS ( \
                     UPDATE pools SET policy = $2, placement = $3, node_selector = $4, \
                         max_running = $5, max_cpu_millis = $6, max_memory_mb = $7, \
                         tenant_max_running = $8, default_timeout_ms = $9, overcommit = $10, \
                         tenant_weights = $11, retry_backoff_ms = $12, retry_backoff_max_ms = $13, \
                         updated_at = now() \
                     WHERE name = $1 RETURNING name) \
                 INSERT INTO pool_events (pool, change, actor, definition) \
                 SELECT name, 'updated', $14::text, $15::jsonb FROM upd",
                &params,
            )
            .await?;
        Ok(updated == 1)
    }

    /// Deletes a pool unless tasks of it are still live, recording the
    /// definition it had and `actor` in `pool_events`.
    pub async fn delete_pool(&self, name: &str, actor: Option<&str>) -> Result<PoolDeletion> {
        let Some(pool) = self.get_pool(name).await? else {
            return Ok(PoolDeletion::NotFound);
        };
        let client = self.client().await?;
        let active: i64 = client
            .query_one(
                "SELECT count(*) FROM tasks WHERE pool = $1 AND finished_at IS NULL",
                &[&name],
            )
            .await?
            .try_get(0)?;
        if active > 0 {
            return Ok(PoolDeletion::Busy { active });
        }
        // The definition recorded is the one read above: the pool manager
        // handles pool requests one at a time, so nothing changed it since.
        let definition = definition_of(&pool);
        let deleted = client
            .execute(
                "WITH del AS (DELETE FROM pools WHERE name = $1 RETURNING name) \
                 INSERT INTO pool_events (pool, change, actor, definition) \
                 SELECT name, 'deleted', $2::text, $3::jsonb FROM del",
                &[&name, &actor, &definition],
            )
            .await?;
        if deleted == 0 {
            return Ok(PoolDeletion::NotFound);
        }
        Ok(PoolDeletion::Deleted(pool))
    }
}

/// A definition as `pool_events` keeps it: the pool's JSON on the wire.
fn definition_of(pool: &PoolSpec) -> Value {
    serde_json::to_value(pool).unwrap_or(Value::Null)
}

/// A pool as the thirteen parameters of its INSERT and UPDATE, in column order.
struct PoolValues<'a> {
    pool: &'a PoolSpec,
    placement: &'static str,
    selector: Value,
    weights: Value,
    limits: [Option<i32>; 4],
    timeout: Option<i64>,
    backoff: [i64; 2],
}

impl<'a> PoolValues<'a> {
    fn of(pool: &'a PoolSpec) -> PoolValues<'a> {
        PoolValues {
            pool,
            placement: pool.placement.as_str(),
            selector: serde_json::to_value(&pool.node_selector).unwrap_or(Value::Null),
            weights: serde_json::to_value(&pool.tenant_weights).unwrap_or(Value::Null),
            limits: [
                pool.max_running.map(to_i32),
                pool.max_cpu_millis.map(to_i32),
                pool.max_memory_mb.map(to_i32),
                pool.tenant_max_running.map(to_i32),
            ],
            timeout: pool
                .default_timeout_ms
                .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)),
            backoff: [
                crate::to_i64(pool.retry_backoff_ms),
                crate::to_i64(pool.retry_backoff_max_ms),
            ],
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.pool.name,
            &self.pool.policy,
            &self.placement,
            &self.selector,
            &self.limits[0],
            &self.limits[1],
            &self.limits[2],
            &self.limits[3],
            &self.timeout,
            &self.pool.overcommit,
            &self.weights,
            &self.backoff[0],
            &self.backoff[1],
        ]
    }
}

fn pool_from_row(row: &Row) -> Result<PoolSpec> {
    let placement: String = row.try_get("placement")?;
    let timeout: Option<i64> = row.try_get("default_timeout_ms")?;
    Ok(PoolSpec {
        name: row.try_get("name")?,
        policy: row.try_get("policy")?,
        placement: match placement.as_str() {
            "best_fit" => PlacementStrategy::BestFit,
            "spread" => PlacementStrategy::Spread,
            other => return Err(StoreError::Corrupt(format!("unknown placement `{other}`"))),
        },
        node_selector: crate::tasks::labels_from(row.try_get("node_selector")?),
        max_running: row.try_get::<_, Option<i32>>("max_running")?.map(to_u32),
        max_cpu_millis: row.try_get::<_, Option<i32>>("max_cpu_millis")?.map(to_u32),
        max_memory_mb: row.try_get::<_, Option<i32>>("max_memory_mb")?.map(to_u32),
        tenant_max_running: row
            .try_get::<_, Option<i32>>("tenant_max_running")?
            .map(to_u32),
        default_timeout_ms: timeout.map(|ms| u64::try_from(ms).unwrap_or(0)),
        overcommit: row.try_get("overcommit")?,
        tenant_weights: serde_json::from_value(row.try_get("tenant_weights")?).unwrap_or_default(),
        retry_backoff_ms: u64::try_from(row.try_get::<_, i64>("retry_backoff_ms")?).unwrap_or(0),
        retry_backoff_max_ms: u64::try_from(row.try_get::<_, i64>("retry_backoff_max_ms")?)
            .unwrap_or(0),
    })
}
