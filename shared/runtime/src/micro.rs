//! Registration as a NATS micro service, so `$SRV.PING`, `$SRV.INFO` and
//! `$SRV.STATS` find every Taskyard process.

use async_nats::service::{Service, ServiceExt};

/// Registers `taskyard-<service>` with this build's version.
pub async fn register(
    client: &async_nats::Client,
    service: &str,
    description: &str,
) -> anyhow::Result<Service> {
    client
        .service_builder()
        .description(description)
        .start(format!("taskyard-{service}"), env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|err| anyhow::anyhow!("cannot register the {service} micro service: {err}"))
}
