//! `taskyard workflow ID`: one workflow, its state and its steps.

use crate::GlobalOptions;
use crate::display::{Table, format_opt_time, format_time, run_duration};
use clap::Args;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write;
use std::process::ExitCode;
use taskyard_wire::{TaskState, Timestamp};
use uuid::Uuid;

#[derive(Debug, Args)]
pub struct Workflow {
    /// The workflow's id (printed by `taskyard submit`, or the
    /// `workflow_id` of any of its tasks).
    #[arg(value_name = "ID")]
    pub id: String,
    /// Print the API's JSON instead.
    #[arg(long)]
    pub json: bool,
}

/// `GET /api/v1/workflows/{id}` as the CLI reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowView {
    pub id: Uuid,
    pub name: String,
    #[serde(default)]
    pub tenant: String,
    pub state: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub finished_at: Option<Timestamp>,
    #[serde(default)]
    pub steps: Vec<StepView>,
}

/// One step of a workflow.
#[derive(Debug, Clone, Deserialize)]
pub struct StepView {
    pub id: Uuid,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub kind: String,
    pub state: TaskState,
    #[serde(default)]
    pub depends_on: Vec<Uuid>,
    #[serde(default)]
    pub compensates: Option<Uuid>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<Timestamp>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub finished_at: Option<Timestamp>,
}

impl Workflow {
    pub async fn run(self, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
        let api = global.api();
        let raw = api
            .get_value(&format!("/api/v1/workflows/{}", self.id), &[])
            .await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&raw)?);
            return Ok(ExitCode::SUCCESS);
        }
        let workflow: WorkflowView = serde_json::from_value(raw).map_err(|err| {
            anyhow::anyhow!("the API's workflow is not what this CLI expects: {err}")
        })?;
        print!("{}", render(&workflow));
        Ok(ExitCode::SUCCESS)
    }
}

/// The workflow as text: its fields, then one line per step, dependencies
/// and compensated steps by name.
pub fn render(workflow: &WorkflowView) -> String {
    let names: HashMap<Uuid, String> = workflow
        .steps
        .iter()
        .map(|s| (s.id, label(s.name.as_deref(), s.id)))
        .collect();
    let name_of = |id: &Uuid| names.get(id).cloned().unwrap_or_else(|| id.to_string());
    let mut out = String::new();
    for (field, value) in [
        ("id", workflow.id.to_string()),
        ("name", workflow.name.clone()),
        ("state", workflow.state.clone()),
        ("tenant", workflow.tenant.clone()),
        ("created", format_time(workflow.created_at)),
        ("finished", format_opt_time(workflow.finished_at)),
    ] {
        let _ = writeln!(out, "{field:<16}{value}");
    }
    if let Some(error) = &workflow.error {
        let _ = writeln!(out, "{:<16}{error}", "error");
    }
    let mut steps = Table::new(&[
        "step",
        "id",
        "kind",
        "state",
        "depends on",
        "compensates",
        "started",
        "took",
        "error",
    ]);
    for step in &workflow.steps {
        let depends: Vec<String> = step.depends_on.iter().map(name_of).collect();
        steps.row(vec![
            label(step.name.as_deref(), step.id),
            step.id.to_string(),
            step.kind.clone(),
            step.state.to_string(),
            if depends.is_empty() {
                "-".to_owned()
            } else {
                depends.join(", ")
            },
            step.compensates
                .as_ref()
                .map(name_of)
                .unwrap_or_else(|| "-".to_owned()),
            format_opt_time(step.started_at),
            run_duration(step.started_at, step.finished_at),
            step.error.clone().unwrap_or_default(),
        ]);
    }
    let _ = write!(out, "\nsteps\n{}", steps.render());
    out
}

fn label(name: Option<&str>, id: Uuid) -> String {
    name.map(str::to_owned).unwrap_or_else(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_name_their_dependencies_and_what_they_undo() {
        let view: WorkflowView = serde_json::from_value(serde_json::json!({
            "id": "0190a0a0-0000-7000-8000-0000000000aa", "name": "trip", "tenant": "default",
            "state": "failed", "error": "step pay failed: card declined",
            "created_at": "2026-01-02T10:00:00Z", "finished_at": "2026-01-02T10:01:00Z",
            "steps": [
                {"id": "0190a0a0-0000-7000-8000-000000000001", "name": "book", "kind": "echo",
                 "state": "succeeded", "depends_on": []},
                {"id": "0190a0a0-0000-7000-8000-000000000002", "name": "pay", "kind": "fail",
                 "state": "failed", "error": "card declined",
                 "depends_on": ["0190a0a0-0000-7000-8000-000000000001"]},
                {"id": "0190a0a0-0000-7000-8000-000000000003", "name": "compensate-book",
                 "kind": "echo", "state": "succeeded",
                 "compensates": "0190a0a0-0000-7000-8000-000000000001"}
            ]
        }))
        .expect("a workflow view");
        let text = render(&view);
        assert!(text.contains("state           failed\n"), "{text}");
        assert!(
            text.contains("error           step pay failed: card declined\n"),
            "{text}"
        );
        let pay = text
            .lines()
            .find(|l| l.starts_with("pay "))
            .unwrap_or_default();
        assert!(pay.contains("  book  "), "{pay}");
        let undo = text
            .lines()
            .find(|l| l.starts_with("compensate-book"))
            .unwrap_or_default();
        assert!(undo.contains("  book  "), "{undo}");
    }
}
