//! `taskyard tasks`: a table of tasks, newest first.

use crate::GlobalOptions;
use crate::display::{Table, format_time, run_duration};
use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct Tasks {
    /// Only tasks in this state (queued, running, succeeded, failed, ...).
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,
    /// Only tasks of this pool.
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,
    /// How many tasks to show (at most 1000).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: u32,
    /// Only tasks older than this cursor (printed after a full page).
    #[arg(long, value_name = "SEQ")]
    pub before: Option<i64>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Tasks {
    /// The query string of `GET /api/v1/tasks`.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![("limit", self.limit.to_string())];
        if let Some(state) = &self.state {
            query.push(("state", state.clone()));
        }
        if let Some(pool) = &self.pool {
            query.push(("pool", pool.clone()));
        }
        if let Some(before) = self.before {
            query.push(("before", before.to_string()));
        }
        query
    }

    pub async fn run(self, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
        let api = global.api();
        let (page, raw) = api.tasks(&self.query()).await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&raw)?);
            return Ok(ExitCode::SUCCESS);
        }
        if page.tasks.is_empty() {
            eprintln!("no tasks");
            return Ok(ExitCode::SUCCESS);
        }
        let mut table = Table::new(&[
            "id", "pool", "kind", "state", "attempt", "node", "created", "duration",
        ]);
        for task in &page.tasks {
            table.row(vec![
                task.id.to_string(),
                task.pool.clone(),
                task.kind.clone(),
                task.state.to_string(),
                format!("{}/{}", task.attempt, task.max_attempts),
                task.node_id.clone().unwrap_or_default(),
                format_time(task.created_at),
                run_duration(task.started_at, task.finished_at),
            ]);
        }
        print!("{}", table.render());
        if let Some(before) = page.next_before {
            eprintln!("more: taskyard tasks --before {before}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
