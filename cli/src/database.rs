//! `--database-url`, for the commands that talk to Postgres directly rather
//! than through the services: `migrate`, `token` (the first admin token
//! cannot come from an API that needs one) and `creds` (nor the first
//! NATS credential from a bus that needs one).

use anyhow::Context;
use clap::Args;
use taskyard_store::Store;

#[derive(Debug, Clone, Args)]
pub struct Database {
    /// Postgres, Taskyard's source of truth.
    #[arg(
        long,
        env = "TASKYARD_DATABASE_URL",
        default_value = taskyard_runtime::config::DEFAULT_DATABASE_URL,
        value_name = "URL"
    )]
    pub database_url: String,
}

impl Database {
    /// Connects and applies pending migrations.
    pub async fn connect(&self) -> anyhow::Result<Store> {
        Store::connect_and_migrate(&self.database_url, 1)
            .await
            .with_context(|| format!("connecting to {}", crate::stack::redact(&self.database_url)))
    }
}
