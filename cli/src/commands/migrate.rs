//! `taskyard migrate`: apply the database migrations (services also do this
//! when they start).

use crate::database::Database;
use clap::Args;
use std::process::ExitCode;

/// Apply pending database migrations.
#[derive(Debug, Args)]
pub struct Migrate {
    #[command(flatten)]
    pub database: Database,
}

impl Migrate {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        self.database.connect().await?;
        println!(
            "migrations applied to {}",
            crate::stack::redact(&self.database.database_url)
        );
        Ok(ExitCode::SUCCESS)
    }
}
