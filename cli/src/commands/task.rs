//! `taskyard task ID`: one task, its result and its history.

use crate::GlobalOptions;
use crate::api::TaskView;
use crate::display::{Table, format_ms, format_opt_time, format_time, run_duration};
use clap::Args;
use serde_json::Value;
use std::fmt::Write;
use std::process::ExitCode;
use taskyard_wire::TaskState;

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
        let api = global.api();
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
        ("node selector", compact(&task.node_selector)),
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
        // Right under the state, where one looks for "why is it not running?".
        if name == "state"
            && task.state == TaskState::Queued
            && let Some(reason) = &task.wait_reason
        {
            let _ = writeln!(out, "{:<16}{reason}", "wait reason");
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: &str) -> TaskView {
        serde_json::from_value(serde_json::json!({
            "id": "0190a0a0-0000-7000-8000-000000000001", "pool": "gpu", "kind": "noop",
            "tenant": "default", "state": state, "attempt": 0, "max_attempts": 1,
            "resources": {"cpu_millis": 4000, "memory_mb": 64},
            "node_selector": {"gpu": "a100"},
            "wait_reason": "no node of pool gpu has 4000m free",
            "created_at": "2026-01-02T10:00:00Z"
        }))
        .expect("a task view")
    }

    #[test]
    fn a_queued_task_shows_why_it_waits_and_its_selector() {
        let text = render(&view("queued"));
        assert!(
            text.contains(
                "state           queued\nwait reason     no node of pool gpu has 4000m free\n"
            ),
            "{text}"
        );
        assert!(text.contains(r#"node selector   {"gpu":"a100"}"#), "{text}");
        let text = render(&view("running"));
        assert!(
            !text.contains("wait reason"),
            "a stale reason is not shown: {text}"
        );
    }
}
