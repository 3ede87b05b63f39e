//! `GET /workflows`, `GET /workflows/{id}`: workflows, and one workflow's
//! DAG drawn as SVG (layered by dependency depth, coloured by step state).

use super::{Page, field, format_opt_time, layout, state_badge, state_class};
use crate::AppState;
use crate::error::ApiError;
use crate::readable::format_time;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Html;
use maud::{Markup, html};
use std::collections::HashMap;
use taskyard_store::workflows::WorkflowStep;
use uuid::Uuid;

/// Workflows listed, newest first.
pub const SHOWN: u32 = 100;

/// `GET /workflows`.
pub async fn list_page(State(state): State<AppState>) -> Page {
    let workflows = state.store.list_workflows(SHOWN).await?;
    let body = html! {
        div #workflows data-live {
            section.card {
                h2 { "Workflows " small { (workflows.len()) } }
                @if workflows.is_empty() {
                    p.empty { "No workflows yet: submit steps with " code { "depends_on" } "." }
                } @else {
                    table {
                        thead { tr {
                            th { "id" } th { "name" } th { "tenant" } th { "state" } th.num { "steps" }
                            th { "created (UTC)" } th { "finished" } th { "error" }
                        } }
                        tbody {
                            @for w in &workflows {
                                tr {
                                    td { a href={ "/workflows/" (w.id) } { code { (w.id) } } }
                                    td { (w.name) }
                                    td { (w.tenant) }
                                    td { span class={ "state " (workflow_class(&w.state)) } { (w.state) } }
                                    td.num { (w.steps) }
                                    td.time { (format_time(w.created_at)) }
                                    td.time { (format_opt_time(w.finished_at)) }
                                    td.reason { (w.error.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Html(layout("Workflows", "workflows", body).into_string()))
}

fn workflow_class(state: &str) -> &'static str {
    match state {
        "succeeded" => "ok",
        "failed" | "rejected" => "bad",
        "compensating" => "warn",
        "cancelled" => "off",
        _ => "run",
    }
}

/// `GET /workflows/{id}`.
pub async fn workflow_page(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Page {
    let Path(raw) = id?;
    let id: Uuid = raw.parse().map_err(|_| {
        ApiError::bad_request("id", format!("`{raw}` is not a workflow id (a UUID)"))
    })?;
    let detail = state
        .store
        .get_workflow(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no workflow has the id {id}")))?;
    let w = &detail.workflow;
    let body = html! {
        p { a href="/workflows" { "← all workflows" } }
        div #workflow-live data-live {
            section.card {
                h2 { "Workflow " (w.name) " "
                    span class={ "state " (workflow_class(w.state.as_str())) } { (w.state.as_str()) } }
                table.fields { tbody {
                    (field("id", html! { code { (w.id) } }))
                    (field("tenant", html! { (w.tenant) }))
                    (field("created", html! { (format_time(w.created_at)) }))
                    (field("finished", html! { (format_opt_time(w.finished_at)) }))
                    @if let Some(error) = &w.error { (field("error", html! { span.waiting { (error) } })) }
                } }
            }
            section.card {
                h2 { "Steps" }
                (dag(&detail.steps))
            }
            section.card {
                table {
                    thead { tr {
                        th { "step" } th { "id" } th { "kind" } th { "state" } th.num { "attempt" }
                        th { "depends on" } th { "error" }
                    } }
                    tbody {
                        @for step in &detail.steps {
                            tr {
                                td { (label(step)) @if step.compensates.is_some() { " " span.tag { "compensation" } } }
                                td { a href={ "/tasks/" (step.id) } { code { (step.id) } } }
                                td { (step.kind) }
                                td { (state_badge(step.state)) }
                                td.num { (step.attempt) }
                                td { (step.depends_on.len()) }
                                td.reason { (step.error.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Html(
        layout(&format!("Workflow {}", w.name), "workflows", body).into_string(),
    ))
}

fn label(step: &WorkflowStep) -> String {
    step.name
        .clone()
        .unwrap_or_else(|| step.id.to_string()[..8].to_owned())
}

/// Each step's layer: 0 without dependencies, else one past its deepest
/// dependency; a compensation sits one past the step it undoes.
pub fn layers(steps: &[WorkflowStep]) -> HashMap<Uuid, usize> {
    let mut depth: HashMap<Uuid, usize> = steps.iter().map(|s| (s.id, 0)).collect();
    // A DAG settles in at most `steps` passes; stop there even if it did not.
    for _ in 0..steps.len() {
        let mut changed = false;
        for step in steps {
            let parents = step.depends_on.iter().chain(step.compensates.iter());
            let want = parents
                .filter_map(|p| depth.get(p).map(|d| d + 1))
                .max()
                .unwrap_or(0);
            if depth.get(&step.id).copied() != Some(want) {
                depth.insert(step.id, want);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    depth
}

const BOX_W: f64 = 160.0;
const BOX_H: f64 = 44.0;
const GAP_X: f64 = 60.0;
const GAP_Y: f64 = 16.0;
const PAD: f64 = 10.0;

/// The DAG as SVG: one column per layer, edges from each dependency.
pub fn dag(steps: &[WorkflowStep]) -> Markup {
    let depth = layers(steps);
    let mut rows: HashMap<usize, usize> = HashMap::new();
    let mut place: HashMap<Uuid, (f64, f64)> = HashMap::new();
    for step in steps {
        let d = depth.get(&step.id).copied().unwrap_or(0);
        let row = rows.entry(d).or_default();
        place.insert(
            step.id,
            (
                PAD + d as f64 * (BOX_W + GAP_X),
                PAD + *row as f64 * (BOX_H + GAP_Y),
            ),
        );
        *row += 1;
    }
    let columns = rows.keys().max().map_or(1, |d| d + 1);
    let height_rows = rows.values().max().copied().unwrap_or(1);
    let width = PAD * 2.0 + columns as f64 * BOX_W + (columns as f64 - 1.0) * GAP_X;
    let height = PAD * 2.0 + height_rows as f64 * (BOX_H + GAP_Y) - GAP_Y;
    html! {
        @if steps.is_empty() {
            p.empty { "No steps." }
        } @else {
            svg.dag #dag viewBox={ "0 0 " (width) " " (height) } width=(width) height=(height) role="img" aria-label="workflow steps" {
                @for step in steps {
                    @let (x, y) = place[&step.id];
                    @for (parent, dashed) in step.depends_on.iter().map(|p| (p, false)).chain(step.compensates.iter().map(|p| (p, true))) {
                        @if let Some(&(px, py)) = place.get(parent) {
                            @let (x1, y1) = (px + BOX_W, py + BOX_H / 2.0);
                            @let (x2, y2) = (x, y + BOX_H / 2.0);
                            @let mid = (x1 + x2) / 2.0;
                            path class=(if dashed { "edge comp" } else { "edge" })
                                d=(format!("M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}")) {}
                        }
                    }
                }
                @for step in steps {
                    @let (x, y) = place[&step.id];
                    a href={ "/tasks/" (step.id) } {
                        g class={ "step " (state_class(step.state)) } data-state=(step.state.as_str()) {
                            rect x=(x) y=(y) width=(BOX_W) height=(BOX_H) rx="6" {}
                            text x=(x + 10.0) y=(y + 18.0) class="name" { (label(step)) }
                            text x=(x + 10.0) y=(y + 34.0) class="sub" { (step.state.as_str()) " · " (step.kind) }
                        }
                    }
                }
            }
        }
    }
}
