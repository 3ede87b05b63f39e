//! `GET /tasks/{id}`: one task — spec, timeline, attempts, why it waits or
//! where it went, result or error, the live log, and cancel / retry.

use super::{
    Page, compact_json, field, format_duration, format_opt_time, layout, pretty_json, query_escape,
    run_duration, state_badge,
};
use crate::AppState;
use crate::readable::{format_ms, format_time};
use crate::routes::tasks::{TaskRecord, load_task};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Html;
use maud::{Markup, html};
use taskyard_store::tasks::{EventRow, TaskRow};
use taskyard_wire::{TaskState, Timestamp};

/// `GET /tasks/{id}`.
pub async fn page(State(state): State<AppState>, id: Result<Path<String>, PathRejection>) -> Page {
    let Path(id) = id?;
    // The store's rows, not the API's bodies: this page is HTML, not a
    // public JSON contract.
    let TaskRecord {
        task,
        links,
        events,
    } = load_task(&state.store, &id).await?;
    let now = taskyard_wire::now();
    let final_state = task.state.is_terminal();
    let body = html! {
        p { a href="/tasks" { "← all tasks" } }
        output #action-result {}
        div #task-live data-live {
            section.card {
                div.title-row {
                    h2 #task-title { "Task " code { (task.id) } " " span #task-state data-state=(task.state.as_str()) { (state_badge(task.state)) } }
                    div.actions {
                        button.action data-action={ "/api/v1/tasks/" (task.id) "/cancel" } disabled[final_state] { "Cancel" }
                        button.action data-action={ "/api/v1/tasks/" (task.id) "/retry" } disabled[!final_state || task.state == TaskState::Succeeded] { "Retry" }
                    }
                }
                table.fields { tbody {
                    @if task.state == TaskState::Queued && let Some(reason) = &task.wait_reason {
                        (field("waiting because", html! { span.waiting { (reason) } }))
                    }
                    @if let Some(reason) = placement_reason(&events) {
                        (field("placed because", html! { (reason) }))
                    }
                    @if let Some(name) = &links.name { (field("name", html! { (name) })) }
                    @if let Some(workflow) = links.workflow_id {
                        (field("workflow", html! { a href={ "/workflows/" (workflow) } { code { (workflow) } } }))
                    }
                    @if !links.depends_on.is_empty() {
                        (field("depends on", html! {
                            @for dep in &links.depends_on { a href={ "/tasks/" (dep) } { code { (dep) } } " " }
                        }))
                    }
                    @if let Some(step) = links.compensates {
                        (field("compensates", html! { a href={ "/tasks/" (step) } { code { (step) } } }))
                    }
                    (field("pool", html! { a href={ "/tasks?pool=" (query_escape(&task.pool)) } { (task.pool) } }))
                    (field("kind", html! { (task.kind) }))
                    (field("tenant", html! { (task.tenant) }))
                    (field("priority", html! { (task.priority) }))
                    (field("resources", html! {
                        (task.resources.cpu_millis) " millicores, " (task.resources.memory_mb) " MiB"
                    }))
                    (field("timeout", html! {
                        @match task.timeout_ms { Some(ms) => (format_ms(ms)), None => "none" }
                    }))
                    (field("attempt", html! { (task.attempt) " of " (task.max_attempts) }))
                    (field("node", html! {
                        @match &task.node_id {
                            Some(node) => a href={ "/nodes/" (query_escape(node)) } { (node) },
                            None => "—",
                        }
                    }))
                    (field("idempotency key", html! { (task.idempotency_key.as_deref().unwrap_or("—")) }))
                    (field("labels", html! { (compact_json(&task.labels)) }))
                    (field("node selector", html! { (compact_json(&task.node_selector)) }))
                    (field("created", html! { (format_time(task.created_at)) }))
                    (field("finished", html! { (format_opt_time(task.finished_at)) }))
                    (field("run time", html! { (run_duration(&task, now)) }))
                } }
                @if let Some(error) = &task.error {
                    h3 { "Error" }
                    pre.error #task-error { (error) }
                }
                @if let Some(result) = &task.result {
                    h3 { "Result" }
                    pre #task-result { (pretty_json(result)) }
                }
            }
            section.card {
                h2 { "Timeline" }
                (timeline(&task, &events, now))
            }
            section.card {
                h2 { "Attempts" }
                (attempts(&events, now))
            }
        }
        section.card {
            h2 { "Log " small #log-status {} }
            pre #log.log data-task=(task.id) data-final[final_state] {}
        }
        section.card {
            h2 { "Spec" }
            pre #task-spec { (pretty_json(&task.spec)) }
        }
    };
    let title = format!("Task {}", task.id);
    Ok(Html(layout(&title, "tasks", body).into_string()))
}

/// The reason of the latest placement, if it was placed.
fn placement_reason(events: &[EventRow]) -> Option<&str> {
    events
        .iter()
        .rev()
        .find(|e| e.to_state == TaskState::Scheduled)
        .and_then(|e| e.reason.as_deref())
}

/// Every transition with the time spent in the state it entered (until the
/// next one, or until now while it is still there), drawn to scale.
fn timeline(task: &TaskRow, events: &[EventRow], now: Timestamp) -> Markup {
    let spans: Vec<Option<time::Duration>> = events
        .iter()
        .enumerate()
        .map(|(i, event)| match events.get(i + 1) {
            Some(next) => Some(next.at - event.at),
            None if event.to_state.is_terminal() => None,
            None => Some(now - event.at),
        })
        .collect();
    let total = spans
        .iter()
        .flatten()
        .map(|d| d.whole_microseconds().max(0))
        .sum::<i128>()
        .max(1);
    html! {
        table #timeline.timeline {
            thead { tr {
                th { "at (UTC)" } th.num { "attempt" } th { "transition" } th { "node" }
                th.num { "in state for" } th { "" } th { "reason" }
            } }
            tbody {
                @for (event, span) in events.iter().zip(&spans) {
                    tr data-state=(event.to_state.as_str()) {
                        td.time { (format_time(event.at)) }
                        td.num { (event.attempt) }
                        td {
                            @if let Some(from) = event.from_state { (state_badge(from)) " → " }
                            (state_badge(event.to_state))
                        }
                        td { (event.node_id.as_deref().unwrap_or("")) }
                        td.num {
                            @match span {
                                Some(d) => (format_duration(*d)),
                                None => "—",
                            }
                        }
                        td.span {
                            @if let Some(d) = span {
                                @let width = (d.whole_microseconds().max(0) * 100 / total).max(1);
                                span class={ "seg " (super::state_class(event.to_state)) } style={ "width:" (width) "%" } {}
                            }
                        }
                        td.reason {
                            (event.reason.as_deref().unwrap_or(""))
                            @if let Some(actor) = &event.actor {
                                " " span.small.actor { "by " (actor) }
                            }
                        }
                    }
                }
            }
        }
        @if !task.state.is_terminal() {
            p.small { "Still " (task.state.as_str()) "; the last line grows until it moves." }
        }
    }
}

/// One row per attempt: node, placed, started, ended, how.
fn attempts(events: &[EventRow], now: Timestamp) -> Markup {
    let mut numbers: Vec<u32> = events
        .iter()
        .map(|e| e.attempt)
        .filter(|a| *a > 0)
        .collect();
    numbers.dedup();
    html! {
        @if numbers.is_empty() {
            p.empty { "Not placed on a node yet." }
        } @else {
            table #attempts {
                thead { tr {
                    th.num { "attempt" } th { "node" } th { "placed" } th { "started" }
                    th { "ended" } th { "outcome" } th.num { "ran for" } th { "reason" }
                } }
                tbody {
                    @for n in &numbers {
                        @let of: Vec<&EventRow> = events.iter().filter(|e| e.attempt == *n).collect();
                        @let placed = of.iter().find(|e| e.to_state == TaskState::Scheduled);
                        @let started = of.iter().find(|e| e.to_state == TaskState::Running);
                        @let ended = of.iter().rev().find(|e| {
                            matches!(e.from_state, Some(TaskState::Scheduled | TaskState::Running))
                                && e.to_state != TaskState::Running
                        });
                        tr {
                            td.num { (n) }
                            td { (of.iter().find_map(|e| e.node_id.as_deref()).unwrap_or("—")) }
                            td.time { (format_opt_time(placed.map(|e| e.at))) }
                            td.time { (format_opt_time(started.map(|e| e.at))) }
                            td.time { (format_opt_time(ended.map(|e| e.at))) }
                            td { @match ended { Some(e) => (state_badge(e.to_state)), None => "—" } }
                            td.num {
                                @match (started, ended) {
                                    (Some(s), Some(e)) => (format_duration(e.at - s.at)),
                                    (Some(s), None) => (format_duration(now - s.at)),
                                    _ => "",
                                }
                            }
                            td.reason { (ended.and_then(|e| e.reason.as_deref()).unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}
