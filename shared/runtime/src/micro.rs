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

/// What every service holds once it is on the bus.
pub struct Attached {
    pub client: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    /// The micro service registration; dropping it leaves `$SRV.PING`.
    pub service: Service,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached").finish_non_exhaustive()
    }
}

/// Connects service `service` to NATS, declares every stream, and registers
/// it as `taskyard-<service>`: the start of every service but the worker
/// (which races its connection against shutdown).
pub async fn attach(
    common: &crate::Common,
    service: &str,
    description: &str,
) -> anyhow::Result<Attached> {
    let client = crate::nats::connect(
        &common.nats_url,
        &format!("taskyard-{service}"),
        crate::nats::DEFAULT_CONNECT_TIMEOUT,
    )
    .await?;
    let js = async_nats::jetstream::new(client.clone());
    crate::streams::ensure_streams(&js, common.stream_replicas).await?;
    let service = register(&client, service, description).await?;
    Ok(Attached {
        client,
        js,
        service,
    })
}

/// Requests to a family of operations, each tagged with its operation.
pub type Operations = futures::stream::SelectAll<
    futures::stream::BoxStream<'static, (&'static str, async_nats::service::Request)>,
>;

/// Serves `<prefix>.<op>` for every operation as endpoints of `service`, and
/// merges their requests into one stream, each tagged with its operation.
pub async fn operations(
    service: &Service,
    prefix: &str,
    ops: &[&'static str],
) -> anyhow::Result<Operations> {
    use futures::StreamExt;
    let mut endpoints = Vec::with_capacity(ops.len());
    for &op in ops {
        let endpoint = service
            .endpoint(format!("{prefix}.{op}"))
            .await
            .map_err(|err| anyhow::anyhow!("cannot serve {prefix}.{op}: {err}"))?;
        endpoints.push(endpoint.map(move |request| (op, request)).boxed());
    }
    Ok(futures::stream::select_all(endpoints))
}
