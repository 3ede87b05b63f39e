//! What every Taskyard service process shares, so that each service crate is
//! only its own logic.
//!
//! A service binary is three lines: it names itself and hands its `run(config,
//! shutdown)` to [`service_main`], which loads the configuration (defaults, then
//! a TOML file, then `TASKYARD_*` variables), starts tracing and the Prometheus
//! exporter, turns SIGTERM and ctrl-c into a [`Shutdown`], and logs the whole
//! error chain if `run` fails.
//!
//! # Layout
//! - [`config`]: the layered configuration loader and the settings every
//!   service has ([`config::Common`]).
//! - [`telemetry`]: tracing and metrics set-up, and `/healthz`.
//! - [`health`]: whether NATS and Postgres answer, logged once per outage.
//! - [`lag`]: consumer lag as metrics.
//! - [`nats`]: connecting to NATS and checking the server is fit for us.
//! - [`access`]: the kinds of NATS identity, their permissions, and the
//!   server's authorization config.
//! - [`streams`]: every JetStream stream and consumer, declared idempotently.
//! - [`batching`]: pulling messages in batches and publishing many at once.
//! - [`consume`]: the consume loop: a handler's verdict per message, settled.
//! - [`poison`]: finding the message a batch statement refuses.
//! - [`throttle`]: a warning that repeats, logged once an interval with a count.
//! - [`shutdown`]: the shutdown signal.
//! - [`micro`]: registration as a NATS micro service (`$SRV.PING` etc.).

pub mod access;
pub mod batching;
pub mod config;
pub mod consume;
pub mod health;
pub mod lag;
#[cfg(test)]
mod log_capture;
pub mod micro;
pub mod nats;
pub mod poison;
pub mod shutdown;
pub mod streams;
pub mod telemetry;
pub mod throttle;
pub mod timers;

pub use config::{Common, ServiceConfig};
pub use shutdown::Shutdown;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code for a configuration error (sysexits' EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// Runs one service as a process: config, telemetry, signals, then `run`.
///
/// The only argument understood is `--config <file>` (or `TASKYARD_CONFIG`).
pub fn service_main<C, F, Fut>(service: &'static str, run: F) -> ExitCode
where
    C: ServiceConfig,
    F: FnOnce(C, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let file = match config_file_from_args(std::env::args().skip(1)) {
        Ok(file) => file,
        Err(message) => {
            eprintln!("{service}: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let config: C = match config::load(file.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{service}: invalid configuration:\n{err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{service}: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        telemetry::init_tracing(service, config.common().log_format);
        if let Err(err) = telemetry::init_metrics(service, config.common().metrics_addr) {
            tracing::error!(error = %err, "cannot start the metrics exporter");
            return ExitCode::FAILURE;
        }
        let shutdown = Shutdown::new();
        shutdown.cancel_on_signals();
        tracing::info!(version = env!("CARGO_PKG_VERSION"), "{service} starting");
        match run(config, shutdown).await {
            Ok(()) => {
                tracing::info!("{service} stopped");
                ExitCode::SUCCESS
            }
            Err(err) => {
                tracing::error!(error = format!("{err:#}"), "{service} failed");
                ExitCode::FAILURE
            }
        }
    })
}

fn config_file_from_args(
    mut args: impl Iterator<Item = String>,
) -> Result<Option<PathBuf>, String> {
    let mut file = std::env::var_os("TASKYARD_CONFIG").map(PathBuf::from);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => match args.next() {
                Some(path) => file = Some(PathBuf::from(path)),
                None => return Err("--config needs a file path".to_owned()),
            },
            "--help" | "-h" => {
                return Err(
                    "usage: [--config FILE]; settings also come from TASKYARD_* \
                     environment variables (see docs/configuration.md)"
                        .to_owned(),
                );
            }
            other => {
                return Err(format!(
                    "unexpected argument `{other}`; usage: [--config FILE]"
                ));
            }
        }
    }
    Ok(file)
}
