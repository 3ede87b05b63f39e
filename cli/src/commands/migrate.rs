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
        let store = self.database.connect().await?;
        // Under sslmode=prefer only the server decides; say which it was.
        let channel = match store.encrypted().await {
            Ok(true) => " over TLS",
            Ok(false) => " in the clear",
            Err(_) => "",
        };
        println!(
            "migrations applied to {}{channel}",
            crate::stack::redact(&self.database.database_url)
        );
        Ok(ExitCode::SUCCESS)
    }
}
