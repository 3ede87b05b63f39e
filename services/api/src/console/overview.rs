//! `GET /`: the overview.

use super::charts::{Series, bar_chart, line_chart, x_of};
use super::{Page, PageError, bar, format_mb, layout, percent_bar, query_escape, state_class};
use crate::AppState;
use crate::error::ApiError;
use crate::readable::format_age;
use crate::routes::pools::list_pools;
use crate::routes::summary::summarize;
use axum::extract::State;
use axum::response::Html;
use maud::{Markup, html};
use std::collections::BTreeMap;
use taskyard_store::console::{ConsoleFilter, MinuteStats, PoolLoad};
use taskyard_store::nodes::{Health, NodeRow};
use taskyard_wire::pool::PoolSpec;
use taskyard_wire::{TaskState, Timestamp};

/// Minutes the charts cover.
pub const CHART_MINUTES: u32 = 60;
/// Recent tasks shown.
pub const RECENT: u32 = 10;

/// `GET /`.
pub async fn page(State(state): State<AppState>) -> Page {
    let recent = ConsoleFilter {
        limit: RECENT,
        ..ConsoleFilter::default()
    };
    let quick = state.client.clone().with_timeout(super::POOLS_TIMEOUT);
    let (summary, nodes, loads, minutes, tasks, pools) = tokio::try_join!(
        summarize(&state.store),
        async { Ok(state.store.list_nodes().await?) },
        async { Ok(state.store.pool_loads().await?) },
        async { Ok(state.store.minute_stats(CHART_MINUTES).await?) },
        async { Ok::<_, ApiError>(state.store.console_tasks(&recent).await?) },
        // The page still shows the rest when the pool manager is away.
        async { Ok(list_pools(&quick).await) },
    )
    .map_err(PageError)?;
    if let Err(err) = &pools {
        err.log();
    }
    let now = taskyard_wire::now();
    let body = html! {
        div #counts data-live {
            section.counts {
                @for state in TaskState::ALL {
                    @let n = summary.states.get(state.as_str()).copied().unwrap_or(0);
                    a.count href={ "/tasks?state=" (state.as_str()) } title={ "show " (state.as_str()) " tasks" } {
                        span.n { (n) }
                        span class={ "state " (state_class(state)) } { (state.as_str()) }
                    }
                }
            }
        }
        div #charts.grid2 data-live {
            (charts(&minutes, now))
        }
        div #pools data-live { (pools_card(pools, &loads)) }
        div #nodes data-live { (nodes_card(&nodes, now)) }
        div #recent data-live {
            section.card {
                h2 { "Recent tasks " a.small href="/tasks" { "all tasks and the submit form →" } }
                (super::tasks::task_table(&tasks, now))
            }
        }
    };
    Ok(Html(layout("Overview", "overview", body).into_string()))
}

/// Throughput and latency per minute over the last hour.
pub fn charts(minutes: &[MinuteStats], now: Timestamp) -> Markup {
    let x1 = x_of(now);
    let x0 = x1 - f64::from(CHART_MINUTES) * 60.0;
    let point = |m: &MinuteStats, v: f64| (x_of(m.minute), v);
    let done = [
        Series {
            name: "succeeded".to_owned(),
            class: "s-ok",
            points: minutes
                .iter()
                .map(|m| point(m, m.succeeded as f64))
                .collect(),
        },
        Series {
            name: "failed, cancelled or rejected".to_owned(),
            class: "s-bad",
            points: minutes.iter().map(|m| point(m, m.failed as f64)).collect(),
        },
    ];
    let latency = [
        Series {
            name: "p50".to_owned(),
            class: "s1",
            points: minutes
                .iter()
                .filter_map(|m| m.p50_ms.map(|v| point(m, v)))
                .collect(),
        },
        Series {
            name: "p95".to_owned(),
            class: "s2",
            points: minutes
                .iter()
                .filter_map(|m| m.p95_ms.map(|v| point(m, v)))
                .collect(),
        },
    ];
    html! {
        section.card {
            h2 { "Throughput " small { "tasks finished per minute, last hour" } }
            (bar_chart("finished per minute", &done, x0, x1, 60.0))
        }
        section.card {
            h2 { "Latency " small { "submission to success, per minute" } }
            (line_chart("milliseconds", &latency, x0, x1, " ms", 10.0))
        }
    }
}

/// The pools with their policy, queue depth and running count, or why they
/// cannot be listed.
pub fn pools_card(pools: Result<Vec<PoolSpec>, ApiError>, loads: &[PoolLoad]) -> Markup {
    let loads: BTreeMap<&str, &PoolLoad> = loads.iter().map(|l| (l.pool.as_str(), l)).collect();
    html! {
        section.card {
            @match pools {
                Ok(pools) => {
                    h2 { "Pools " small { (pools.len()) } " " a.small href="/pools" { "edit →" } }
                    @if pools.is_empty() {
                        p.empty { "No pools." }
                    } @else {
                        table {
                            thead { tr {
                                th { "pool" } th { "policy" } th { "placement" } th { "node selector" }
                                th.num { "queued" } th.num { "running" } th.num { "max running" }
                            } }
                            tbody {
                                @for pool in &pools {
                                    @let load = loads.get(pool.name.as_str());
                                    tr {
                                        td { a href={ "/tasks?pool=" (query_escape(&pool.name)) } { (pool.name) } }
                                        td { (pool.policy) }
                                        td { (pool.placement.as_str()) }
                                        td { (super::selector(&pool.node_selector)) }
                                        td.num { (load.map_or(0, |l| l.waiting)) }
                                        td.num { (load.map_or(0, |l| l.running)) }
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

/// The nodes with health, reservations and measured use.
pub fn nodes_card(nodes: &[NodeRow], now: Timestamp) -> Markup {
    html! {
        section.card {
            h2 { "Nodes " small { (nodes.len()) } }
            @if nodes.is_empty() {
                p.empty { "No worker has sent a heartbeat yet." }
            } @else {
                table {
                    thead { tr {
                        th { "node" } th { "health" } th { "cpu reserved" } th { "memory reserved" }
                        th { "cpu used" } th { "memory used" } th.num { "disk free" }
                        th.num { "running" } th { "last heartbeat" }
                    } }
                    tbody {
                        @for node in nodes { (node_row(node, now)) }
                    }
                }
            }
        }
    }
}

pub fn health_class(health: Health) -> &'static str {
    match health {
        Health::Alive => "ok",
        Health::Suspect => "warn",
        Health::Lost => "bad",
    }
}

fn node_row(node: &NodeRow, now: Timestamp) -> Markup {
    let memory_percent = if node.capacity.memory_mb == 0 {
        0.0
    } else {
        node.memory_used_mb as f64 * 100.0 / f64::from(node.capacity.memory_mb)
    };
    html! {
        tr {
            td {
                a href={ "/nodes/" (query_escape(&node.id)) } { code { (node.id) } }
                @if node.cordoned { " " span.tag { "cordoned" } }
                @if node.draining { " " span.tag { "draining" } }
            }
            td { span class={ "state " (health_class(node.health)) } { (node.health.as_str()) } }
            td { (bar(node.reserved.cpu_millis, node.capacity.cpu_millis, "m")) }
            td { (bar(node.reserved.memory_mb, node.capacity.memory_mb, " MiB")) }
            td { (percent_bar(f64::from(node.cpu_percent), &format!("{:.0}%", node.cpu_percent))) }
            td { (percent_bar(memory_percent, &format_mb(node.memory_used_mb))) }
            td.num title={ "of " (format_mb(node.disk_total_mb)) } { (format_mb(node.disk_free_mb)) }
            td.num { (node.running) }
            td.time { (format_age(node.last_heartbeat_at, now)) }
        }
    }
}
