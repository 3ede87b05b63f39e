//! The `reads` scenario: how long the console's pages and the REST API's
//! lists and filters take, on whatever history the database holds (see
//! `--history`), timed from outside as a browser or a client would wait.

use anyhow::Context;
use std::time::{Duration, Instant};

/// Timed fetches of each page, after one to warm it.
const RUNS: usize = 5;

/// One line of the table: a page, its median and slowest time.
pub struct Timing {
    pub page: String,
    pub median_ms: f64,
    pub max_ms: f64,
    pub bytes: usize,
}

/// Fetches every page `RUNS` times and returns their timings.
pub async fn measure(base: &str) -> anyhow::Result<Vec<Timing>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    // Ids and a cursor to follow, from the first page of the list.
    let first: serde_json::Value = http
        .get(format!("{base}/api/v1/tasks?limit=50"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
        .context("reading the first page of tasks")?;
    let id = first["tasks"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let cursor = first["next_cursor"].as_str().unwrap_or_default().to_owned();
    let prefix: String = id.chars().take(8).collect();
    let day_ago = (time::OffsetDateTime::now_utc() - time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let pages = [
        "/api/v1/tasks".to_owned(),
        format!("/api/v1/tasks?cursor={cursor}"),
        "/api/v1/tasks?state=succeeded".to_owned(),
        "/api/v1/tasks?state=failed".to_owned(),
        "/api/v1/tasks?state=cancelled".to_owned(),
        "/api/v1/tasks?state=queued".to_owned(),
        "/api/v1/tasks?state=running".to_owned(),
        "/api/v1/tasks?pool=history-1".to_owned(),
        "/api/v1/tasks?pool=history-1&state=failed".to_owned(),
        "/api/v1/tasks?tenant=history-7".to_owned(),
        format!("/api/v1/tasks/{id}"),
        format!("/api/v1/tasks/{id}/events"),
        "/api/v1/summary".to_owned(),
        "/api/v1/tenants".to_owned(),
        "/api/v1/nodes".to_owned(),
        "/api/v1/pools".to_owned(),
        "/api/v1/workflows".to_owned(),
        "/api/v1/dead-letters".to_owned(),
        "/".to_owned(),
        "/tasks".to_owned(),
        "/tasks?state=failed".to_owned(),
        "/tasks?state=running".to_owned(),
        "/tasks?kind=kind-3".to_owned(),
        "/tasks?tenant=history-7&state=cancelled".to_owned(),
        "/tasks?pool=history-2&state=failed".to_owned(),
        format!("/tasks?q={prefix}"),
        format!("/tasks?after={day_ago}"),
        format!("/tasks/{id}"),
        "/pools".to_owned(),
        "/nodes".to_owned(),
        "/workflows".to_owned(),
        "/dead-letters".to_owned(),
    ];
    let mut timings = Vec::with_capacity(pages.len());
    for page in pages {
        let url = format!("{base}{page}");
        let mut times = Vec::with_capacity(RUNS);
        let mut bytes = 0;
        for run in 0..=RUNS {
            let started = Instant::now();
            let response = http
                .get(&url)
                .send()
                .await
                .with_context(|| format!("fetching {page}"))?;
            let status = response.status();
            let body = response.bytes().await?;
            anyhow::ensure!(status.is_success(), "{page} answered {status}");
            if run > 0 {
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            bytes = body.len();
        }
        times.sort_by(|a, b| a.total_cmp(b));
        timings.push(Timing {
            page,
            median_ms: times[times.len() / 2],
            max_ms: times[times.len() - 1],
            bytes,
        });
    }
    Ok(timings)
}
