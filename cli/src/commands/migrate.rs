//! `taskyard migrate`: apply the database migrations (services also do this
//! when they start).

use clap::Args;
use std::process::ExitCode;

/// Apply pending database migrations.
#[derive(Debug, Args)]
pub struct Migrate {
    #[arg(
        long,
        env = "TASKYARD_DATABASE_URL",
        default_value = taskyard_runtime::config::DEFAULT_DATABASE_URL,
        value_name = "URL"
    )]
    pub database_url: String,
}

impl Migrate {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        taskyard_store::Store::connect_and_migrate(&self.database_url, 1).await?;
        println!(
            "migrations applied to {}",
            crate::stack::redact(&self.database_url)
        );
        Ok(ExitCode::SUCCESS)
    }
}
