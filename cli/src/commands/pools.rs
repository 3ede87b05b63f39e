//! `taskyard pools`: every pool, asked of the pool manager over NATS.

use crate::GlobalOptions;
use crate::commands::answered;
use crate::display::{Table, format_ms};
use crate::labels::format_labels;
use clap::Args;
use std::process::ExitCode;
use taskyard_wire::pool::PoolSpec;

#[derive(Debug, Args)]
pub struct Pools {
    /// Print the pools as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Pools {
    pub async fn run(self, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
        let client = crate::bus::client(global).await?;
        let Some(pools) = answered(client.pools().await)? else {
            return Ok(ExitCode::FAILURE);
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&pools)?);
        } else if pools.is_empty() {
            eprintln!("no pools");
        } else {
            print!("{}", table(&pools));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The pools as a table, one row each.
pub fn table(pools: &[PoolSpec]) -> String {
    let mut table = Table::new(&[
        "name",
        "policy",
        "placement",
        "selector",
        "max running",
        "max cpu (m)",
        "max memory (MiB)",
        "per tenant",
        "default timeout",
        "overcommit",
    ]);
    let limit = |value: Option<u32>| value.map_or_else(|| "-".to_owned(), |n| n.to_string());
    for pool in pools {
        table.row(vec![
            pool.name.clone(),
            pool.policy.clone(),
            pool.placement.as_str().to_owned(),
            format_labels(&pool.node_selector),
            limit(pool.max_running),
            limit(pool.max_cpu_millis),
            limit(pool.max_memory_mb),
            limit(pool.tenant_max_running),
            pool.default_timeout_ms
                .map_or_else(|| "-".to_owned(), format_ms),
            pool.overcommit.to_string(),
        ]);
    }
    table.render()
}
