//! Applies `migrations/` with refinery.

use crate::{Result, Store, StoreError};

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// Arbitrary but fixed: every Taskyard process that migrates takes this lock,
/// so that services starting together apply each migration once.
const MIGRATION_LOCK: i64 = 0x7461_736b_7961_7264; // "taskyard"

impl Store {
    /// Applies pending migrations; safe to call from many processes at once.
    pub async fn migrate(&self) -> Result<()> {
        let mut object = self.client().await?;
        let client: &mut tokio_postgres::Client = &mut object;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let outcome = embedded::migrations::runner()
            .set_abort_divergent(true)
            .run_async(client)
            .await;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await?;
        let report = outcome.map_err(|err| StoreError::Migrate(err.to_string()))?;
        for migration in report.applied_migrations() {
            tracing::info!(migration = %migration, "applied migration");
        }
        Ok(())
    }
}
