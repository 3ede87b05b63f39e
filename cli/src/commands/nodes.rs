//! `taskyard nodes`: the worker nodes.

use crate::GlobalOptions;
use crate::display::{Table, format_age};
use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct Nodes {
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Nodes {
    pub async fn run(self, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
        let api = global.api();
        let (list, raw) = api.nodes().await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&raw)?);
            return Ok(ExitCode::SUCCESS);
        }
        if list.nodes.is_empty() {
            eprintln!("no nodes: no worker has sent a heartbeat yet");
            return Ok(ExitCode::SUCCESS);
        }
        let mut table = Table::new(&[
            "id",
            "health",
            "cpu (m)",
            "memory (MiB)",
            "running",
            "last heartbeat",
        ]);
        for node in &list.nodes {
            let marks: Vec<&str> = [(node.cordoned, "cordoned"), (node.draining, "draining")]
                .into_iter()
                .filter_map(|(on, mark)| on.then_some(mark))
                .collect();
            let health = if marks.is_empty() {
                node.health.clone()
            } else {
                format!("{} ({})", node.health, marks.join(", "))
            };
            table.row(vec![
                node.id.clone(),
                health,
                format!("{}/{}", node.reserved.cpu_millis, node.capacity.cpu_millis),
                format!("{}/{}", node.reserved.memory_mb, node.capacity.memory_mb),
                node.running.to_string(),
                format_age(node.last_heartbeat_at),
            ]);
        }
        print!("{}", table.render());
        Ok(ExitCode::SUCCESS)
    }
}
