//! Tracing and metrics set-up.
//!
//! Every service exports Prometheus metrics with a `service` label, counts its
//! own warnings and errors (`taskyard_log_events_total`), and records every
//! `*_seconds` histogram with the same buckets, so dashboards can take
//! quantiles across services. The same port answers `GET /healthz` from
//! [`crate::health`]: 200 while every dependency is reachable, 503 with the
//! reason while one is not.

use crate::config::LogFormat;
use metrics_exporter_prometheus::Matcher;
use std::net::SocketAddr;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Buckets of every `*_seconds` histogram: from a millisecond to ten minutes.
pub const SECONDS_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
    600.0,
];

/// Libraries that log every attempt of a reconnection (async-nats an
/// `event:` line per try, deadpool a line per broken connection it drops):
/// [`crate::health`] says the same once per outage. Kept unless `RUST_LOG`
/// names them.
const QUIET: [(&str, &str); 2] = [("async_nats", "warn"), ("deadpool", "error")];

/// Starts tracing: `RUST_LOG` picks the level (default `info`).
pub fn init_tracing(service: &str, format: LogFormat) {
    let asked = std::env::var("RUST_LOG").unwrap_or_default();
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    for (target, level) in QUIET {
        if !asked.contains(target)
            && let Ok(directive) = format!("{target}={level}").parse()
        {
            filter = filter.add_directive(directive);
        }
    }
    // Colour only on a terminal: log files and collectors get plain text.
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    // A second init (tests running services in one process) keeps the first.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(LogEventCounter)
        .try_init();
    tracing::debug!(service, "tracing started");
}

/// Counts warnings and errors logged, by level: a service's error rate
/// without parsing its logs.
struct LogEventCounter;

impl<S: Subscriber> Layer<S> for LogEventCounter {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            _ => return,
        };
        metrics::counter!("taskyard_log_events_total", "level" => level).increment(1);
    }
}

/// Serves Prometheus metrics and `/healthz` on `addr` when set, every
/// series labelled with the service's name. Binds before returning, so a
/// port in use fails the start.
pub fn init_metrics(service: &str, addr: Option<SocketAddr>) -> anyhow::Result<()> {
    let Some(addr) = addr else {
        return Ok(());
    };
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .add_global_label("service", service)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &SECONDS_BUCKETS)
        .map_err(|err| anyhow::anyhow!("bad histogram buckets: {err}"))?
        .install_recorder()
        .map_err(|err| anyhow::anyhow!("cannot install the metrics recorder: {err}"))?;
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|listener| {
            listener.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(listener)
        })
        .map_err(|err| anyhow::anyhow!("cannot serve metrics on {addr}: {err}"))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        // What the exporter's own listener did: histograms are drained
        // into their buckets here, not on every record.
        let mut ticks = tokio::time::interval(UPKEEP_EVERY);
        loop {
            ticks.tick().await;
            upkeep.run_upkeep();
        }
    });
    let metrics = move || {
        let handle = handle.clone();
        async move { handle.render() }
    };
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/metrics", axum::routing::get(metrics.clone()))
        // The exporter answered metrics on any path; scrapers set up
        // against `/` keep working.
        .fallback(metrics);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "the metrics endpoint stopped");
        }
    });
    tracing::info!(%addr, "serving Prometheus metrics and /healthz");
    Ok(())
}

/// How often histograms are drained into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /healthz`: 200 `{"status": "ok", ...}` while every dependency in
/// use answers; 503 with each one's status, and why and for how long one
/// is unavailable, while it does not.
async fn healthz() -> (axum::http::StatusCode, axum::Json<crate::health::Report>) {
    let report = crate::health::health().report();
    let status = if report.is_healthy() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report))
}
