//! `GET /tasks`: the filtered, paged task list and the submit form;
//! `POST /console/submit`: the form's target.

use super::{Page, layout, query_escape, run_duration, see_other, state_badge};
use crate::AppState;
use crate::auth::Actor;
use crate::error::ApiError;
use crate::readable::format_time;
use crate::routes::paging::page_size;
use crate::routes::tasks::forward_submission;
use axum::Form;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value};
use taskyard_store::console::ConsoleFilter;
use taskyard_store::tasks::TaskRow;
use taskyard_wire::reply::SubmitReply;
use taskyard_wire::{TaskState, Timestamp};
use time::format_description::well_known::Rfc3339;

/// Tasks per page.
pub const PAGE_SIZE: u32 = 50;
/// Most tasks per page (`?limit=`).
pub const MAX_PAGE_SIZE: u32 = 500;

/// The list's query; empty values count as absent, so the filter form can
/// send every field.
#[derive(Debug, Default, Deserialize)]
pub struct TasksQuery {
    pub state: Option<String>,
    pub pool: Option<String>,
    pub tenant: Option<String>,
    pub kind: Option<String>,
    /// Created at or after (`2026-01-02T10:11`, UTC, or RFC 3339).
    pub after: Option<String>,
    /// Created before.
    pub before: Option<String>,
    /// An id prefix or a name prefix.
    pub q: Option<String>,
    /// The `seq` of the last task of the previous page.
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

/// A filter as typed in the form: blank counts as absent, and spaces
/// around it do not count.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A time from a `datetime-local` input (UTC) or RFC 3339.
pub fn parse_time(raw: &str) -> Option<Timestamp> {
    if let Ok(at) = Timestamp::parse(raw, &Rfc3339) {
        return Some(at);
    }
    // A `datetime-local` value has no offset (and maybe no seconds): UTC.
    let completed = match raw.len() {
        16 => format!("{raw}:00Z"),
        19 => format!("{raw}Z"),
        _ => return None,
    };
    Timestamp::parse(&completed, &Rfc3339).ok()
}

impl TasksQuery {
    /// The store filter; errors name the parameter.
    pub fn filter(&self) -> Result<ConsoleFilter, ApiError> {
        let state = present(&self.state)
            .map(|name| {
                name.parse::<TaskState>()
                    .map_err(|err| ApiError::bad_request("state", err.to_string()))
            })
            .transpose()?;
        let time = |name: &str, raw: Option<&str>| {
            raw.map(|raw| {
                parse_time(raw).ok_or_else(|| {
                    ApiError::bad_request(
                        name,
                        format!("`{raw}` is not a time: use 2026-01-02T10:11 (UTC) or RFC 3339"),
                    )
                })
            })
            .transpose()
        };
        let cursor = present(&self.cursor)
            .map(|raw| {
                raw.parse::<i64>().map_err(|_| {
                    ApiError::bad_request("cursor", format!("`{raw}` is not a cursor"))
                })
            })
            .transpose()?;
        let limit = page_size(present(&self.limit), PAGE_SIZE, MAX_PAGE_SIZE)?;
        Ok(ConsoleFilter {
            state,
            pool: present(&self.pool).map(str::to_owned),
            tenant: present(&self.tenant).map(str::to_owned),
            kind: present(&self.kind).map(str::to_owned),
            created_after: time("after", present(&self.after))?,
            created_before: time("before", present(&self.before))?,
            search: present(&self.q).map(str::to_owned),
            cursor,
            limit,
        })
    }

    /// This query as a query string, without the cursor.
    fn query_string(&self) -> String {
        [
            ("state", &self.state),
            ("pool", &self.pool),
            ("tenant", &self.tenant),
            ("kind", &self.kind),
            ("after", &self.after),
            ("before", &self.before),
            ("q", &self.q),
            ("limit", &self.limit),
        ]
        .iter()
        .filter_map(|(key, value)| present(value).map(|v| format!("{key}={}", query_escape(v))))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// `GET /tasks`.
pub async fn page(
    State(state): State<AppState>,
    query: Result<Query<TasksQuery>, QueryRejection>,
) -> Page {
    let Query(query) = query?;
    let filter = query.filter()?;
    let tasks = state.store.console_tasks(&filter).await?;
    let now = taskyard_wire::now();
    let next = (tasks.len() >= filter.limit as usize)
        .then(|| tasks.last().map(|t| t.seq))
        .flatten();
    let base = query.query_string();
    let link = |cursor: Option<i64>| {
        let mut parts: Vec<String> = Vec::new();
        if !base.is_empty() {
            parts.push(base.clone());
        }
        if let Some(cursor) = cursor {
            parts.push(format!("cursor={cursor}"));
        }
        if parts.is_empty() {
            "/tasks".to_owned()
        } else {
            format!("/tasks?{}", parts.join("&"))
        }
    };
    let body = html! {
        section.card {
            h2 { "Tasks" }
            (filter_form(&query))
        }
        div #task-list data-live {
            section.card {
                (task_table(&tasks, now))
                p.pager {
                    @if filter.cursor.is_some() { a href=(link(None)) { "← newest" } }
                    @if let Some(cursor) = next { a #older href=(link(Some(cursor))) { "older →" } }
                    span.small { (tasks.len()) " shown" }
                }
            }
        }
        (submit_card(&SubmitForm::default(), None))
    };
    Ok(Html(layout("Tasks", "tasks", body).into_string()))
}

fn filter_form(query: &TasksQuery) -> Markup {
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    html! {
        form.filters method="get" action="/tasks" {
            label { "state "
                select name="state" {
                    option value="" { "any" }
                    @for s in TaskState::ALL {
                        option value=(s.as_str()) selected[present(&query.state) == Some(s.as_str())] { (s.as_str()) }
                    }
                }
            }
            label { "pool " input name="pool" size="10" value=(value(&query.pool)); }
            label { "tenant " input name="tenant" size="10" value=(value(&query.tenant)); }
            label { "kind " input name="kind" size="8" value=(value(&query.kind)); }
            label { "created after " input type="datetime-local" name="after" value=(value(&query.after)); }
            label { "before " input type="datetime-local" name="before" value=(value(&query.before)); }
            label { "id or name " input type="search" name="q" size="14" placeholder="0193… or step name" value=(value(&query.q)); }
            button type="submit" { "Filter" }
            " " a.small href="/tasks" { "clear" }
        }
    }
}

/// The task table shared by the overview and the list.
pub fn task_table(tasks: &[TaskRow], now: Timestamp) -> Markup {
    html! {
        @if tasks.is_empty() {
            p.empty { "No tasks match." }
        } @else {
            table.tasks {
                thead { tr {
                    th { "id" } th { "pool" } th { "kind" } th { "tenant" } th { "state" }
                    th.num { "attempt" } th { "node" } th { "created (UTC)" } th.num { "duration" }
                } }
                tbody {
                    @for task in tasks {
                        tr data-task=(task.id) data-state=(task.state.as_str()) {
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
            }
        }
    }
}

/// The submit form's fields.
#[derive(Debug, Clone, Deserialize)]
pub struct SubmitForm {
    pub kind: String,
    #[serde(default)]
    pub spec: String,
    #[serde(default)]
    pub pool: String,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub cpu_millis: String,
    #[serde(default)]
    pub memory_mb: String,
    #[serde(default)]
    pub priority: String,
    #[serde(default)]
    pub max_attempts: String,
    #[serde(default)]
    pub timeout_ms: String,
}

impl Default for SubmitForm {
    fn default() -> Self {
        SubmitForm {
            kind: "exec".to_owned(),
            spec: r#"{"command": "sh", "args": ["-c", "echo hello from the console"]}"#.to_owned(),
            pool: String::new(),
            tenant: String::new(),
            cpu_millis: String::new(),
            memory_mb: String::new(),
            priority: String::new(),
            max_attempts: String::new(),
            timeout_ms: String::new(),
        }
    }
}

/// Kinds offered by the form.
const KINDS: [&str; 7] = ["exec", "http", "nats", "noop", "echo", "sleep", "fail"];

impl SubmitForm {
    /// The submission as JSON; errors name the field.
    pub fn to_json(&self) -> Result<Value, (String, String)> {
        let mut task = Map::new();
        task.insert("kind".to_owned(), Value::from(self.kind.trim()));
        let spec = self.spec.trim();
        if !spec.is_empty() {
            let value: Value = serde_json::from_str(spec)
                .map_err(|err| ("spec".to_owned(), format!("not valid JSON: {err}")))?;
            task.insert("spec".to_owned(), value);
        }
        for (name, value) in [("pool", &self.pool), ("tenant", &self.tenant)] {
            if !value.trim().is_empty() {
                task.insert(name.to_owned(), Value::from(value.trim()));
            }
        }
        let number = |name: &str, raw: &str| -> Result<Option<i64>, (String, String)> {
            let raw = raw.trim();
            if raw.is_empty() {
                return Ok(None);
            }
            raw.parse::<i64>()
                .map(Some)
                .map_err(|_| (name.to_owned(), format!("`{raw}` is not a whole number")))
        };
        let cpu = number("resources.cpu_millis", &self.cpu_millis)?;
        let memory = number("resources.memory_mb", &self.memory_mb)?;
        if cpu.is_some() || memory.is_some() {
            task.insert(
                "resources".to_owned(),
                serde_json::json!({
                    "cpu_millis": cpu.unwrap_or(100),
                    "memory_mb": memory.unwrap_or(64),
                }),
            );
        }
        for (name, raw) in [
            ("priority", &self.priority),
            ("max_attempts", &self.max_attempts),
            ("timeout_ms", &self.timeout_ms),
        ] {
            if let Some(n) = number(name, raw)? {
                task.insert(name.to_owned(), Value::from(n));
            }
        }
        Ok(Value::Object(task))
    }
}

/// The submit form, filled with `form`, and the error of the last try.
pub fn submit_card(form: &SubmitForm, error: Option<&str>) -> Markup {
    html! {
        section.card #submit {
            h2 { "Submit a task" }
            @if let Some(error) = error {
                p.error #submit-error { (error) }
            }
            form.submit method="post" action="/console/submit" {
                div.row {
                    label { "kind "
                        select name="kind" {
                            @for kind in KINDS {
                                option value=(kind) selected[form.kind == kind] { (kind) }
                            }
                        }
                    }
                    label { "pool " input name="pool" size="10" placeholder="default" value=(form.pool); }
                    label { "tenant " input name="tenant" size="10" placeholder="default" value=(form.tenant); }
                    label { "cpu (millicores) " input name="cpu_millis" size="6" inputmode="numeric" placeholder="100" value=(form.cpu_millis); }
                    label { "memory (MiB) " input name="memory_mb" size="6" inputmode="numeric" placeholder="64" value=(form.memory_mb); }
                    label { "priority " input name="priority" size="4" inputmode="numeric" placeholder="0" value=(form.priority); }
                    label { "attempts " input name="max_attempts" size="3" inputmode="numeric" placeholder="1" value=(form.max_attempts); }
                    label { "timeout (ms) " input name="timeout_ms" size="7" inputmode="numeric" value=(form.timeout_ms); }
                }
                label.block { "spec (JSON) "
                    textarea name="spec" rows="4" spellcheck="false" { (form.spec) }
                }
                button type="submit" { "Submit" }
            }
        }
    }
}

/// `POST /console/submit`: sends the form as a submission; on success a
/// 303 to the new task's page, else the form again with the error.
pub async fn submit(
    State(state): State<AppState>,
    actor: Actor,
    Form(form): Form<SubmitForm>,
) -> Response {
    let refused = |form: &SubmitForm, status: StatusCode, message: String| {
        let body = html! {
            p { a href="/tasks" { "← all tasks" } }
            (submit_card(form, Some(&message)))
        };
        (
            status,
            Html(layout("Submit a task", "tasks", body).into_string()),
        )
            .into_response()
    };
    let json = match form.to_json() {
        Ok(json) => json,
        Err((field, message)) => {
            return refused(
                &form,
                StatusCode::BAD_REQUEST,
                format!("{field}: {message}"),
            );
        }
    };
    let body = bytes::Bytes::from(serde_json::to_vec(&json).unwrap_or_default());
    match forward_submission(&state.client_for(&actor), body).await {
        Ok(SubmitReply::Accepted { ids, .. }) => match ids.first() {
            Some(id) => see_other(&format!("/tasks/{id}")),
            None => see_other("/tasks"),
        },
        Ok(SubmitReply::Refused { error }) => refused(
            &form,
            StatusCode::BAD_REQUEST,
            format!("{}: {}", error.field, error.message),
        ),
        Err(err) => {
            err.log();
            let status = err.status();
            refused(&form, status, err.public_message())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_from_inputs_and_rfc3339() {
        assert!(parse_time("2026-01-02T10:11").is_some());
        assert!(parse_time("2026-01-02T10:11:12").is_some());
        assert!(parse_time("2026-01-02T10:11:12Z").is_some());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn the_form_becomes_a_submission() {
        let form = SubmitForm {
            kind: "exec".to_owned(),
            spec: r#"{"command": "true"}"#.to_owned(),
            pool: "gpu".to_owned(),
            cpu_millis: "250".to_owned(),
            max_attempts: "2".to_owned(),
            ..SubmitForm::default()
        };
        let json = form.to_json().expect("valid");
        assert_eq!(json["spec"]["command"], "true");
        assert_eq!(json["pool"], "gpu");
        assert_eq!(json["resources"]["cpu_millis"], 250);
        assert_eq!(json["resources"]["memory_mb"], 64);
        assert_eq!(json["max_attempts"], 2);
        assert!(json.get("tenant").is_none());
        let bad = SubmitForm {
            spec: "{".to_owned(),
            ..SubmitForm::default()
        };
        assert_eq!(bad.to_json().expect_err("bad json").0, "spec");
    }

    #[test]
    fn bad_filters_are_named() {
        let query = TasksQuery {
            state: Some("nope".to_owned()),
            ..TasksQuery::default()
        };
        assert_eq!(query.filter().expect_err("bad").field(), Some("state"));
        let query = TasksQuery {
            after: Some("soon".to_owned()),
            ..TasksQuery::default()
        };
        assert_eq!(query.filter().expect_err("bad").field(), Some("after"));
    }
}
