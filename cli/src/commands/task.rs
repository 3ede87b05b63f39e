//! `taskyard task ID`: one task, its result and its history.

use crate::GlobalOptions;
use crate::api::{ApiClient, TaskView};
use crate::display::{Table, format_ms, format_opt_time, format_time, run_duration};
use clap::Args;
use serde_json::Value;
use std::fmt::Write;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct Task {
    /// The task's id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Print the API's JSON instead.
    #[arg(long)]
    pub json: bool,
}

impl Task {
    pub async fn run(self, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
        let api = ApiClient::new(&global.api_url);
        let (task, raw) = api.task(&self.id).await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&raw)?);
        } else {
            print!("{}", render(&task));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The task as text: fields, spec, result, error, then its history.
pub fn render(task: &TaskView) -> String {
    let none = || "-".to_owned();
    let fields = [
        ("id", task.id.to_string()),
        ("state", task.state.to_string()),
        ("pool", task.pool.clone()),
        ("kind", task.kind.clone()),
        ("tenant", task.tenant.clone()),
        ("priority", task.priority.to_string()),
        (
            "resources",
            format!(
                "{} millicores, {} MiB",
                task.resources.cpu_millis, task.resources.memory_mb
            ),
        ),
        (
            "timeout",
            task.timeout_ms.map(format_ms).unwrap_or_else(none),
        ),
        (
            "attempt",
            format!("{} of {}", task.attempt, task.max_attempts),
        ),
        ("node", task.node_id.clone().unwrap_or_else(none)),
        (
            "idempotency key",
            task.idempotency_key.clone().unwrap_or_else(none),
        ),
        ("labels", compact(&task.labels)),
        ("created", format_time(task.created_at)),
        ("queued", format_opt_time(task.queued_at)),
        ("scheduled", format_opt_time(task.scheduled_at)),
        ("started", format_opt_time(task.started_at)),
        ("finished", format_opt_time(task.finished_at)),
        ("duration", run_duration(task.started_at, task.finished_at)),
    ];
    let mut out = String::new();
    for (name, value) in fields {
        let _ = writeln!(out, "{name:<16}{value}");
    }
    let _ = writeln!(out, "\nspec\n{}", indent(&pretty(&task.spec)));
    if let Some(result) = &task.result {
        let _ = writeln!(out, "\nresult\n{}", indent(&pretty(result)));
    }
    if let Some(error) = &task.error {
        let _ = writeln!(out, "\nerror\n{}", indent(error));
    }
    let mut history = Table::new(&["at", "attempt", "transition", "node", "reason"]);
    for event in &task.events {
        let transition = match event.from_state {
            Some(from) => format!("{from} -> {}", event.to_state),
            None => event.to_state.to_string(),
        };
        history.row(vec![
            format_time(event.at),
            event.attempt.to_string(),
            transition,
            event.node_id.clone().unwrap_or_default(),
            event.reason.clone().unwrap_or_default(),
        ]);
    }
    let _ = write!(out, "\nhistory\n{}", indent(&history.render()));
    out
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn compact(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::Object(map) if map.is_empty() => "-".to_owned(),
        other => other.to_string(),
    }
}

fn indent(text: &str) -> String {
    let mut out: String = text.lines().map(|line| format!("  {line}\n")).collect();
    if out.is_empty() {
        out.push('\n');
    }
    out
}
