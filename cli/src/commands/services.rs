//! `taskyard services`: the NATS micro services on the bus (every Taskyard
//! process, and anything else that registers), asked directly with
//! `$SRV.INFO` and `$SRV.STATS`, so it works without the API.

use crate::GlobalOptions;
use crate::display::{Table, format_ms};
use clap::Args;
use std::process::ExitCode;
use taskyard_client::{DISCOVERY_WINDOW, ServiceInstance};

#[derive(Debug, Args)]
pub struct Services {
    /// Print the instances as JSON (with per-endpoint counts) instead.
    #[arg(long)]
    pub json: bool,
}

impl Services {
    pub async fn run(self, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
        let client = crate::bus::client(global).await?;
        let services = client.services(DISCOVERY_WINDOW).await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&services)?);
        } else if services.is_empty() {
            eprintln!(
                "no micro service answered within {} ms",
                DISCOVERY_WINDOW.as_millis()
            );
        } else {
            print!("{}", table(&services));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// One row per instance.
pub fn table(services: &[ServiceInstance]) -> String {
    let mut table = Table::new(&[
        "name",
        "version",
        "instance id",
        "role",
        "uptime",
        "requests",
        "errors",
    ]);
    for service in services {
        table.row(vec![
            service.name.clone(),
            service.version.clone(),
            service.id.clone(),
            service.role.clone().unwrap_or_else(|| "-".to_owned()),
            service.uptime_ms.map_or_else(|| "-".to_owned(), format_ms),
            service.requests.to_string(),
            service.errors.to_string(),
        ]);
    }
    table.render()
}
