//! Tracing and metrics set-up.

use crate::config::LogFormat;
use std::net::SocketAddr;
use tracing_subscriber::EnvFilter;

/// Starts tracing: `RUST_LOG` picks the level (default `info`).
pub fn init_tracing(service: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second init (tests running services in one process) keeps the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    tracing::debug!(service, "tracing started");
}

/// Serves Prometheus metrics on `addr` when set.
pub fn init_metrics(addr: Option<SocketAddr>) -> anyhow::Result<()> {
    if let Some(addr) = addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .map_err(|err| anyhow::anyhow!("cannot serve metrics on {addr}: {err}"))?;
        tracing::info!(%addr, "serving Prometheus metrics");
    }
    Ok(())
}
