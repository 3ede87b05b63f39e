//! The web console: server-rendered HTML pages, live without reloading.
//!
//! Pages are rendered with `maud`, whose `(expr)` splices escape HTML, so
//! strings from clients (specs, idempotency keys, labels, errors, logs)
//! cannot inject markup. There is no JavaScript framework and no build step:
//! one small script and one stylesheet (`services/api/assets/`) are built
//! into the binary and served under `/assets/`.
//!
//! # Pages
//! - `/` ([`overview`]): task counts by state, nodes with health and
//!   cpu/memory bars, pools with policy, queue depth and running count, and
//!   throughput and latency charts of the last hour.
//! - `/tasks` ([`tasks`]): the task list, filtered by state, pool, tenant,
//!   kind, creation time and id or name prefix, paged by a cursor (never
//!   `OFFSET`); the submit form (`POST /console/submit`).
//! - `/tasks/{id}` ([`task`]): spec, timeline with durations, attempts and
//!   nodes, why it waits or where it was placed, result or error, the live
//!   log, and cancel / retry buttons.
//! - `/nodes`, `/nodes/{id}` ([`nodes`]): nodes, and one node's cpu, memory
//!   and running history from `node_samples`.
//! - `/pools` ([`pools`]): pools with a form each to edit policy and quotas
//!   (`POST /console/pools/{name}`).
//! - `/workflows`, `/workflows/{id}` ([`workflows`]): workflows, and one
//!   workflow's DAG coloured by step state.
//! - `/dead-letters` ([`dead_letters`]).
//!
//! # Store rows
//! The pages read the store's rows (`TaskRow`, `NodeRow`, `WorkflowStep`,
//! ...) directly, unlike the JSON routes, which answer the api's own bodies
//! ([`crate::bodies`]): a page is HTML for people, not a public contract, so
//! a column rename may change it freely.
//!
//! # Live updates
//! [`live`] subscribes to `taskyard.events.>` and fans events out to
//! browsers on `GET /console/events` (server-sent events). On an event the
//! script re-fetches the page and swaps its `data-live` regions (at most once
//! a second, and every few seconds anyway), so forms being filled in are left
//! alone. The task page also follows `/api/v1/tasks/{id}/logs/stream`.

pub mod charts;
pub mod dead_letters;
pub mod live;
pub mod nodes;
pub mod overview;
pub mod pools;
pub mod task;
pub mod tasks;
pub mod workflows;

use crate::AppState;
use crate::error::ApiError;
use crate::readable::format_ms;
use axum::Router;
use axum::extract::Extension;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use taskyard_store::tasks::TaskRow;
use taskyard_wire::{TaskState, Timestamp};

/// How long a page waits for the pool manager's list of pools, so a slow
/// pool manager does not hold the page.
pub const POOLS_TIMEOUT: Duration = Duration::from_secs(2);

/// The script, built into the binary.
pub const CONSOLE_JS: &str = include_str!("../../assets/console.js");
/// The stylesheet, built into the binary.
pub const CONSOLE_CSS: &str = include_str!("../../assets/console.css");

/// The console's pages, forms, assets and event stream.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::page))
        .route("/tasks", get(tasks::page))
        .route("/tasks/{id}", get(task::page))
        .route("/nodes", get(nodes::list_page))
        .route("/nodes/{id}", get(nodes::node_page))
        .route("/pools", get(pools::page))
        .route("/workflows", get(workflows::list_page))
        .route("/workflows/{id}", get(workflows::workflow_page))
        .route("/dead-letters", get(dead_letters::page))
        .route("/console/submit", post(tasks::submit))
        .route("/console/pools/{name}", post(pools::update))
        .route("/console/events", get(live::events))
        .route("/assets/console.js", get(script))
        .route("/assets/console.css", get(stylesheet))
        .layer(Extension(live::Hub::default()))
}

/// Assets change only with the binary; a day of caching is safe because
/// pages link them with the version in the query.
const ASSET_CACHE: &str = "public, max-age=86400";

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        CONSOLE_JS,
    )
        .into_response()
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        CONSOLE_CSS,
    )
        .into_response()
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
        (status, Html(layout(title, "", body).into_string())).into_response()
    }
}

/// A page's HTML, with the status code.
pub type Page = Result<Html<String>, PageError>;

/// The page frame: header with the navigation (`active` is the current
/// section), the stylesheet and the script.
pub fn layout(title: &str, active: &str, body: Markup) -> Markup {
    let version = env!("CARGO_PKG_VERSION");
    let sections = [
        ("overview", "/", "Overview"),
        ("tasks", "/tasks", "Tasks"),
        ("nodes", "/nodes", "Nodes"),
        ("pools", "/pools", "Pools"),
        ("workflows", "/workflows", "Workflows"),
        ("dead-letters", "/dead-letters", "Dead letters"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Taskyard" }
                link rel="stylesheet" href={ "/assets/console.css?v=" (version) };
                script src={ "/assets/console.js?v=" (version) } defer {}
            }
            body {
                header {
                    a.brand href="/" { "Taskyard" }
                    nav {
                        @for (key, href, label) in sections {
                            a href=(href) class=[(key == active).then_some("active")] { (label) }
                        }
                    }
                    span #live.live title="live updates" { "live" }
                }
                main { (body) }
            }
        }
    }
}

/// A `th`/`td` row of a field table.
pub fn field(name: &str, value: Markup) -> Markup {
    html! { tr { th { (name) } td { (value) } } }
}

/// A reservation as a bar and numbers: `reserved / capacity unit`.
pub fn bar(reserved: i64, capacity: u32, unit: &str) -> Markup {
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

/// A usage bar of a percentage (0 to 100).
pub fn percent_bar(percent: f64, label: &str) -> Markup {
    let width = percent.clamp(0.0, 100.0).round() as i64;
    html! {
        div.bar.use title={ (label) } { span style={ "width:" (width) "%" } {} }
        span.small { (label) }
    }
}

pub fn state_badge(state: TaskState) -> Markup {
    html! { span class={ "state " (state_class(state)) } { (state.as_str()) } }
}

/// The colour family of a state.
pub fn state_class(state: TaskState) -> &'static str {
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
pub fn run_duration(task: &TaskRow, now: Timestamp) -> String {
    match (task.started_at, task.finished_at) {
        (Some(start), Some(end)) => format_duration(end - start),
        (Some(start), None) => format_duration(now - start),
        _ => String::new(),
    }
}

pub fn format_duration(duration: time::Duration) -> String {
    let ms = duration.whole_milliseconds().max(0);
    format_ms(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// `512 MiB`, `20.5 GiB`; `—` for 0, which a worker that measures no disk
/// reports.
pub fn format_mb(mb: i64) -> String {
    match mb {
        i64::MIN..=0 => "—".to_owned(),
        1..=1023 => format!("{mb} MiB"),
        _ => format!("{:.1} GiB", mb as f64 / 1024.0),
    }
}

pub fn format_opt_time(at: Option<Timestamp>) -> String {
    at.map(crate::readable::format_time)
        .unwrap_or_else(|| "—".to_owned())
}

pub fn pretty_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

pub fn compact_json(value: &Value) -> String {
    match value {
        Value::Null => "—".to_owned(),
        Value::Object(map) if map.is_empty() => "—".to_owned(),
        other => other.to_string(),
    }
}

/// `key=value, ...`, or `any node` for an empty selector.
pub fn selector(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "any node".to_owned();
    }
    labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A 303 to `location` (after a form post).
pub fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// A value for a query string: letters, digits and `-_.~` as they are,
/// everything else percent-encoded.
pub fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

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
        let html = percent_bar(250.0, "x").into_string();
        assert!(html.contains("width:100%"), "{html}");
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("a b&c=d"), "a%20b%26c%3Dd");
        assert_eq!(query_escape("gpu-1_x"), "gpu-1_x");
    }
}
