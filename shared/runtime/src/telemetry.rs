//! Tracing and metrics set-up.
//!
//! Every service exports Prometheus metrics with a `service` label, counts its
//! own warnings and errors (`taskyard_log_events_total`), and records every
//! `*_seconds` histogram with the same buckets, so dashboards can take
//! quantiles across services.

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

/// Starts tracing: `RUST_LOG` picks the level (default `info`).
pub fn init_tracing(service: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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

/// Serves Prometheus metrics on `addr` when set, every series labelled with
/// the service's name.
pub fn init_metrics(service: &str, addr: Option<SocketAddr>) -> anyhow::Result<()> {
    if let Some(addr) = addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .add_global_label("service", service)
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &SECONDS_BUCKETS)
            .map_err(|err| anyhow::anyhow!("bad histogram buckets: {err}"))?
            .install()
            .map_err(|err| anyhow::anyhow!("cannot serve metrics on {addr}: {err}"))?;
        tracing::info!(%addr, "serving Prometheus metrics");
    }
    Ok(())
}
