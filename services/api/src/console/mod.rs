//! The web console: server-rendered HTML, no JavaScript and no build step.
//!
//! `GET /` shows task counts by state, the pools (asked of the pool manager),
//! the nodes and the 50 most recent tasks (optionally filtered by `?state=`
//! and `?pool=`, like the JSON list);
//! `GET /tasks/{id}` shows one task with its spec, node selector, result,
//! error and history, and, while it is queued, why it still waits.
//! Pages refresh themselves every two seconds with a meta refresh; a finished
//! task's page does not, as it will not change.
//!
//! Everything is rendered with `maud`, whose `(expr)` splices escape HTML, so
//! strings from clients (specs, idempotency keys, labels, errors) cannot inject
//! markup.

use crate::AppState;
use crate::error::ApiError;
use crate::readable::{format_age, format_ms, format_time};
use crate::routes::pools::list_pools;
use crate::routes::summary::summarize;
use crate::routes::tasks::{ListParams, TaskDetail, load_task};
use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use taskyard_store::nodes::{Health, NodeRow};
use taskyard_store::tasks::TaskRow;
use taskyard_wire::pool::PoolSpec;
use taskyard_wire::{TaskState, Timestamp};

/// Seconds between automatic reloads of a live page.
pub const REFRESH_SECS: u32 = 2;
/// How long the overview waits for the pool manager's list of pools: about
/// one refresh, so a slow pool manager does not hold the page.
pub const POOLS_TIMEOUT: Duration = Duration::from_secs(2);

/// The console's pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/tasks/{id}", get(task_page))
}

/// An error shown as an HTML page rather than JSON.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(err: E) -> Self {
        PageError(err.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0.log();
        let status = self.0.status();
        let title = status.canonical_reason().unwrap_or("Error");
        let body = html! {
            section.card {
                h2 { (status.as_u16()) " " (title) }
                p { (self.0.public_message()) }
                p { a href="/" { "Back to the console" } }
            }
        };
        (status, Html(layout(title, false, body).into_string())).into_response()
    }
}

/// `GET /`: the overview.
pub async fn index(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Html<String>, PageError> {
    let Query(params) = params?;
    let filter = params.filter()?;
    let (summary, nodes, tasks, pools) = tokio::try_join!(
        summarize(&state.store),
        async { Ok(state.store.list_nodes().await?) },
        async { Ok::<_, ApiError>(state.store.list_tasks(&filter).await?) },
        // The page still shows the rest when the pool manager is away.
        async { Ok(list_pools(&state.nats, POOLS_TIMEOUT).await) },
    )?;
    if let Err(err) = &pools {
        err.log();
    }
    let now = taskyard_wire::now();
    let filtered = filter.state.is_some() || filter.pool.is_some();
    let body = html! {
        section.counts {
            @for state in TaskState::ALL {
                @let n = summary.states.get(state.as_str()).copied().unwrap_or(0);
                a.count href={ "/?state=" (state.as_str()) } title={ "show " (state.as_str()) " tasks" } {
                    span.n { (n) }
                    span class={ "state " (state_class(state)) } { (state.as_str()) }
                }
            }
        }
        (pools_card(pools))
        section.card {
            h2 { "Nodes " small { (nodes.len()) } }
            @if nodes.is_empty() {
                p.empty { "No worker has sent a heartbeat yet." }
            } @else {
                table {
                    thead { tr {
                        th { "node" } th { "health" } th { "cpu (reserved / capacity)" }
                        th { "memory (reserved / capacity)" } th.num { "disk free" }
                        th.num { "running" } th { "last heartbeat" }
                    } }
                    tbody {
                        @for node in &nodes { (node_row(node, now)) }
                    }
                }
            }
        }
        section.card {
            h2 {
                @if filtered { "Tasks" } @else { "Recent tasks" }
                @if let Some(state) = filter.state { " in " (state.as_str()) }
                @if let Some(pool) = &filter.pool { " of pool " (pool) }
                @if filtered { " " a.small href="/" { "(show all)" } }
            }
            @if tasks.is_empty() {
                p.empty { "No tasks yet. Submit one with " code { "taskyard submit --kind noop" } "." }
            } @else {
                table {
                    thead { tr {
                        th { "id" } th { "pool" } th { "kind" } th { "tenant" } th { "state" }
                        th.num { "attempt" } th { "node" } th { "created" } th.num { "duration" }
                    } }
                    tbody {
                        @for task in &tasks { (task_row(task, now)) }
                    }
                }
            }
        }
    };
    Ok(Html(layout("Taskyard", true, body).into_string()))
}

/// `GET /tasks/{id}`: one task and its history.
pub async fn task_page(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Html<String>, PageError> {
    let Path(id) = id?;
    let TaskDetail { task, events, .. } = load_task(&state.store, &id).await?;
    let now = taskyard_wire::now();
    let body = html! {
        p { a href="/" { "← all tasks" } }
        section.card {
            h2 { "Task " code { (task.id) } " " (state_badge(task.state)) }
            table.fields { tbody {
                @if task.state == TaskState::Queued && let Some(reason) = &task.wait_reason {
                    (field("waiting because", html! { span.waiting { (reason) } }))
                }
                (field("pool", html! { (task.pool) }))
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
                (field("node", html! { (task.node_id.as_deref().unwrap_or("—")) }))
                (field("idempotency key", html! { (task.idempotency_key.as_deref().unwrap_or("—")) }))
                (field("labels", html! { (compact_json(&task.labels)) }))
                (field("node selector", html! { (compact_json(&task.node_selector)) }))
                (field("created", html! { (format_time(task.created_at)) }))
                (field("queued", html! { (format_opt_time(task.queued_at)) }))
                (field("scheduled", html! { (format_opt_time(task.scheduled_at)) }))
                (field("started", html! { (format_opt_time(task.started_at)) }))
                (field("finished", html! { (format_opt_time(task.finished_at)) }))
                (field("duration", html! { (run_duration(&task, now)) }))
            } }
            h3 { "Spec" }
            pre { (pretty_json(&task.spec)) }
            @if let Some(result) = &task.result {
                h3 { "Result" }
                pre { (pretty_json(result)) }
            }
            @if let Some(error) = &task.error {
                h3 { "Error" }
                pre.error { (error) }
            }
        }
        section.card {
            h2 { "History" }
            table {
                thead { tr {
                    th { "at" } th.num { "attempt" } th { "transition" } th { "node" } th { "reason" }
                } }
                tbody {
                    @for event in &events {
                        tr {
                            td.time { (format_time(event.at)) }
                            td.num { (event.attempt) }
                            td {
                                @if let Some(from) = event.from_state { (state_badge(from)) " → " }
                                (state_badge(event.to_state))
                            }
                            td { (event.node_id.as_deref().unwrap_or("")) }
                            td { (event.reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    };
    let title = format!("Task {}", task.id);
    Ok(Html(
        layout(&title, !task.state.is_terminal(), body).into_string(),
    ))
}

fn layout(title: &str, refresh: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh { meta http-equiv="refresh" content=(REFRESH_SECS); }
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    a.brand href="/" { "Taskyard" }
                    nav {
                        a href="/api/v1/summary" { "summary" }
                        a href="/api/v1/tasks" { "tasks API" }
                        a href="/api/v1/nodes" { "nodes API" }
                        a href="/healthz" { "health" }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The pools, or why they cannot be shown.
fn pools_card(pools: Result<Vec<PoolSpec>, ApiError>) -> Markup {
    html! {
        section.card {
            @match pools {
                Ok(pools) => {
                    h2 { "Pools " small { (pools.len()) } }
                    @if pools.is_empty() {
                        p.empty { "No pools." }
                    } @else {
                        table {
                            thead { tr {
                                th { "pool" } th { "policy" } th { "placement" }
                                th { "node selector" } th.num { "max running" }
                            } }
                            tbody {
                                @for pool in &pools {
                                    tr {
                                        td { a href={ "/?pool=" (pool.name) } { (pool.name) } }
                                        td { (pool.policy) }
                                        td { (pool.placement.as_str()) }
                                        td { (selector(&pool.node_selector)) }
                                        td.num {
                                            @match pool.max_running { Some(n) => (n), None => "—" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                Err(err) => {
                    h2 { "Pools" }
                    p.empty { "Cannot list pools: " (err.public_message()) }
                }
            }
        }
    }
}

/// `key=value, ...`, or `any node` for an empty selector.
fn selector(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "any node".to_owned();
    }
    labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn node_row(node: &NodeRow, now: Timestamp) -> Markup {
    let health = match node.health {
        Health::Alive => "ok",
        Health::Suspect => "warn",
        Health::Lost => "bad",
    };
    html! {
        tr {
            td {
                code { (node.id) }
                @if node.cordoned { " " span.tag { "cordoned" } }
                @if node.draining { " " span.tag { "draining" } }
            }
            td { span class={ "state " (health) } { (node.health.as_str()) } }
            td { (bar(node.reserved.cpu_millis, node.capacity.cpu_millis, "m")) }
            td { (bar(node.reserved.memory_mb, node.capacity.memory_mb, " MiB")) }
            td.num title={ "of " (format_mb(node.disk_total_mb)) } { (format_mb(node.disk_free_mb)) }
            td.num { (node.running) }
            td.time { (format_age(node.last_heartbeat_at, now)) }
        }
    }
}

fn task_row(task: &TaskRow, now: Timestamp) -> Markup {
    html! {
        tr {
            td { a href={ "/tasks/" (task.id) } { code { (task.id) } } }
            td { (task.pool) }
            td { (task.kind) }
            td { (task.tenant) }
            td { (state_badge(task.state)) }
            td.num { (task.attempt) "/" (task.max_attempts) }
            td { (task.node_id.as_deref().unwrap_or("")) }
            td.time { (format_time(task.created_at)) }
            td.num { (run_duration(task, now)) }
        }
    }
}

fn field(name: &str, value: Markup) -> Markup {
    html! { tr { th { (name) } td { (value) } } }
}

/// A reservation as a bar and numbers: `reserved / capacity unit`.
fn bar(reserved: i64, capacity: u32, unit: &str) -> Markup {
    let percent = if capacity == 0 {
        0
    } else {
        (reserved.max(0) * 100 / i64::from(capacity)).min(100)
    };
    html! {
        div.bar title={ (percent) "% reserved" } { span style={ "width:" (percent) "%" } {} }
        span.small { (reserved) " / " (capacity) (unit) }
    }
}

fn state_badge(state: TaskState) -> Markup {
    html! { span class={ "state " (state_class(state)) } { (state.as_str()) } }
}

/// The colour family of a state.
fn state_class(state: TaskState) -> &'static str {
    match state {
        TaskState::Pending | TaskState::Queued => "wait",
        TaskState::Scheduled | TaskState::Running => "run",
        TaskState::Succeeded => "ok",
        TaskState::Retrying => "warn",
        TaskState::Failed | TaskState::TimedOut | TaskState::Rejected => "bad",
        TaskState::Cancelled => "off",
    }
}

/// How long the task ran (or has been running); empty before it started.
fn run_duration(task: &TaskRow, now: Timestamp) -> String {
    match (task.started_at, task.finished_at) {
        (Some(start), Some(end)) => format_duration(end - start),
        (Some(start), None) => format_duration(now - start),
        _ => String::new(),
    }
}

fn format_duration(duration: time::Duration) -> String {
    let ms = duration.whole_milliseconds().max(0);
    format_ms(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// `512 MiB`, `20.5 GiB`; `—` for 0, which a worker that measures no disk
/// reports.
fn format_mb(mb: i64) -> String {
    match mb {
        i64::MIN..=0 => "—".to_owned(),
        1..=1023 => format!("{mb} MiB"),
        _ => format!("{:.1} GiB", mb as f64 / 1024.0),
    }
}

fn format_opt_time(at: Option<Timestamp>) -> String {
    at.map(format_time).unwrap_or_else(|| "—".to_owned())
}

fn pretty_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn compact_json(value: &Value) -> String {
    match value {
        Value::Null => "—".to_owned(),
        Value::Object(map) if map.is_empty() => "—".to_owned(),
        other => other.to_string(),
    }
}

const CSS: &str = r#"
:root { --fg:#1f2933; --muted:#6b7785; --line:#e3e8ee; --bg:#f6f8fa; --accent:#2f6fde; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; align-items:center; gap:24px; padding:10px 24px; background:#14202e; }
header .brand { color:#fff; font-weight:700; font-size:17px; text-decoration:none; }
header nav a { color:#b8c4d2; margin-right:16px; text-decoration:none; font-size:13px; }
header nav a:hover { color:#fff; }
main { padding:20px 24px; max-width:1400px; }
a { color:var(--accent); }
h2 { font-size:16px; margin:0 0 12px; } h2 small { color:var(--muted); font-weight:400; }
h3 { font-size:14px; margin:16px 0 6px; }
.card { background:#fff; border:1px solid var(--line); border-radius:6px; padding:16px; margin-bottom:18px; overflow-x:auto; }
.counts { display:flex; flex-wrap:wrap; gap:10px; margin-bottom:18px; }
.count { display:flex; flex-direction:column; align-items:center; gap:4px; min-width:92px; padding:10px; background:#fff; border:1px solid var(--line); border-radius:6px; text-decoration:none; color:inherit; }
.count:hover { border-color:var(--accent); }
.count .n { font-size:20px; font-weight:600; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:5px 10px 5px 0; border-bottom:1px solid var(--line); vertical-align:middle; white-space:nowrap; }
th { color:var(--muted); font-weight:500; font-size:12px; }
.num { text-align:right; } .time { color:var(--muted); font-variant-numeric:tabular-nums; }
table.fields th { width:140px; } table.fields td { white-space:normal; }
code, pre { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:12.5px; }
pre { background:var(--bg); border:1px solid var(--line); border-radius:4px; padding:10px; overflow-x:auto; margin:0; }
pre.error { color:#9b1c1c; background:#fdf2f2; border-color:#f5c6c6; }
.state { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:500; }
.state.wait { background:#eef1f5; color:#4a5563; } .state.run { background:#e1ecfd; color:#1d4fb0; }
.state.ok { background:#def7e5; color:#17643a; } .state.warn { background:#fdf1d8; color:#8a5a00; }
.state.bad { background:#fde2e2; color:#9b1c1c; } .state.off { background:#ececec; color:#666; }
.tag { font-size:11px; padding:0 6px; border-radius:8px; background:#fdf1d8; color:#8a5a00; }
.bar { display:inline-block; width:90px; height:8px; background:#eef1f5; border-radius:4px; overflow:hidden; vertical-align:middle; margin-right:8px; }
.bar span { display:block; height:100%; background:var(--accent); }
.waiting { color:#8a5a00; }
.small { font-size:12px; color:var(--muted); } .empty { color:var(--muted); margin:0; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(format_ms(0), "0 ms");
        assert_eq!(format_ms(1_500), "1.5 s");
        assert_eq!(format_ms(125_000), "2m 5s");
        assert_eq!(format_ms(3_720_000), "1h 2m");
        assert_eq!(format_mb(0), "—");
        assert_eq!(format_mb(512), "512 MiB");
        assert_eq!(format_mb(20_992), "20.5 GiB");
    }

    #[test]
    fn bars_are_bounded() {
        let html = bar(3_000, 1_000, "m").into_string();
        assert!(html.contains("width:100%"), "{html}");
        let html = bar(5, 0, "m").into_string();
        assert!(html.contains("width:0%"), "{html}");
    }
}
