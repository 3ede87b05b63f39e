//! `GET /nodes`, `GET /nodes/{id}`: the fleet, and one node's resource
//! history from `node_samples`.

use super::charts::{Series, line_chart, x_of};
use super::overview::{health_class, nodes_card};
use super::{Page, bar, field, format_mb, layout, selector};
use crate::AppState;
use crate::error::ApiError;
use crate::readable::{format_age, format_time};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Html;
use maud::html;

/// Minutes of history on a node's page.
pub const HISTORY_MINUTES: u32 = 60;
/// Points per chart at most (samples are averaged into buckets).
pub const HISTORY_POINTS: u32 = 360;

/// `GET /nodes`.
pub async fn list_page(State(state): State<AppState>) -> Page {
    let nodes = state.store.list_nodes().await?;
    let now = taskyard_wire::now();
    let body = html! {
        div #nodes data-live { (nodes_card(&nodes, now)) }
        p.small { "Open a node for its cpu, memory and running history." }
    };
    Ok(Html(layout("Nodes", "nodes", body).into_string()))
}

/// `GET /nodes/{id}`.
pub async fn node_page(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Page {
    let Path(id) = id?;
    let (node, history) = tokio::try_join!(
        state.store.get_node(&id),
        state
            .store
            .node_history(&id, HISTORY_MINUTES, HISTORY_POINTS)
    )?;
    let node = node.ok_or_else(|| ApiError::NotFound(format!("no node has the id {id}")))?;
    let now = taskyard_wire::now();
    let x1 = x_of(now);
    // A young node's history fills the chart (at least the last minute).
    let x0 = history
        .first()
        .map_or(x1 - 60.0, |p| x_of(p.at).min(x1 - 60.0))
        .max(x1 - f64::from(HISTORY_MINUTES) * 60.0);
    let points = |f: &dyn Fn(&taskyard_store::console::NodePoint) -> f64| {
        history
            .iter()
            .map(|p| (x_of(p.at), f(p)))
            .collect::<Vec<_>>()
    };
    let cpu = [Series {
        name: "cpu used".to_owned(),
        class: "s1",
        points: points(&|p| p.cpu_percent),
    }];
    let memory = [Series {
        name: "memory used".to_owned(),
        class: "s2",
        points: points(&|p| p.memory_used_mb),
    }];
    let running = [Series {
        name: "running tasks".to_owned(),
        class: "s3",
        points: points(&|p| p.running as f64),
    }];
    let body = html! {
        p { a href="/nodes" { "← all nodes" } }
        div #node-live data-live {
            section.card {
                h2 { "Node " code { (node.id) } " "
                    span class={ "state " (health_class(node.health)) } { (node.health.as_str()) }
                    @if node.cordoned { " " span.tag { "cordoned" } }
                    @if node.draining { " " span.tag { "draining" } }
                }
                table.fields { tbody {
                    (field("hostname", html! { (node.hostname) }))
                    (field("version", html! { (node.version) }))
                    (field("labels", html! { (selector(&node.labels)) }))
                    (field("cpu reserved", bar(node.reserved.cpu_millis, node.capacity.cpu_millis, "m")))
                    (field("memory reserved", bar(node.reserved.memory_mb, node.capacity.memory_mb, " MiB")))
                    (field("slots", html! { (node.running) " running of " (node.capacity.slots) }))
                    (field("cpu used", html! { (format!("{:.0}%", node.cpu_percent)) }))
                    (field("memory used", html! { (format_mb(node.memory_used_mb)) }))
                    (field("disk free", html! { (format_mb(node.disk_free_mb)) " of " (format_mb(node.disk_total_mb)) }))
                    (field("started", html! { (format_time(node.started_at)) }))
                    (field("last heartbeat", html! { (format_age(node.last_heartbeat_at, now)) }))
                } }
            }
            div.grid3 {
                section.card { h2 { "CPU" } (line_chart("percent of the host", &cpu, x0, x1, "%", 100.0)) }
                section.card { h2 { "Memory" } (line_chart("MiB used", &memory, x0, x1, "", 1.0)) }
                section.card { h2 { "Running" } (line_chart("tasks", &running, x0, x1, "", 1.0)) }
            }
        }
    };
    Ok(Html(
        layout(&format!("Node {}", node.id), "nodes", body).into_string(),
    ))
}
