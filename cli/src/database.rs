//! `--database-url`, for the commands that talk to Postgres directly rather
//! than through the services: `migrate`, `token` (the first admin token
//! cannot come from an API that needs one) and `creds` (nor the first
//! NATS credential from a bus that needs one).

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use taskyard_store::{DbTls, Store};

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
    /// The CA to verify Postgres's certificate against, instead of the
    /// system's roots; TLS itself follows the URL's sslmode
    /// (docs/security.md#postgres-over-tls).
    #[arg(long, env = "TASKYARD_DATABASE_CA_FILE", value_name = "FILE")]
    pub database_ca_file: Option<PathBuf>,
}

impl Database {
    /// Connects and applies pending migrations.
    pub async fn connect(&self) -> anyhow::Result<Store> {
        Store::connect_and_migrate_with(&self.database_url, 1, &self.tls())
            .await
            .with_context(|| format!("connecting to {}", crate::stack::redact(&self.database_url)))
    }

    /// Whom to trust for the server's certificate.
    pub fn tls(&self) -> DbTls {
        DbTls::from_ca_file(self.database_ca_file.clone())
    }
}
