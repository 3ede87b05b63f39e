//! Registration as a NATS micro service, so `$SRV.PING`, `$SRV.INFO` and
//! `$SRV.STATS` find every Taskyard process, and say what each does among
//! its service's replicas and whether it reaches its dependencies (the
//! `health` of [`crate::health`], the same report as `/healthz`).

use async_nats::service::{Service, ServiceExt};
use std::sync::{Arc, PoisonError, RwLock};

/// What an instance does among its service's replicas: `active` where every
/// replica shares the work, `active (epoch N)` or `standby` where one holds
/// a lease. Every endpoint's `$SRV.STATS` data carries it as `role` (next
/// to `health`), and so does the reply of the instance's own `role`
/// endpoint.
#[derive(Debug, Clone)]
pub struct RoleCell(Arc<RwLock<String>>);

impl RoleCell {
    fn new() -> RoleCell {
        RoleCell(Arc::new(RwLock::new("active".to_owned())))
    }

    pub fn set(&self, role: impl Into<String>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = role.into();
    }

    pub fn get(&self) -> String {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A registered micro service and the role it reports.
pub struct Registered {
    /// Dropping it leaves `$SRV.PING`.
    pub service: Service,
    pub role: RoleCell,
}

/// Registers `taskyard-<service>` with this build's version, with an
/// endpoint `taskyard.role.<service>.<instance id>` that answers the role,
/// so that even a service without requests of its own shows one.
pub async fn register(
    client: &async_nats::Client,
    service: &str,
    description: &str,
) -> anyhow::Result<Registered> {
    let role = RoleCell::new();
    let shown = role.clone();
    let registered = client
        .service_builder()
        .description(description)
        .stats_handler(move |_endpoint, _stats| {
            serde_json::json!({ "role": shown.get(), "health": crate::health::health().report() })
        })
        .start(format!("taskyard-{service}"), env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|err| anyhow::anyhow!("cannot register the {service} micro service: {err}"))?;
    let id = registered.info().await.id;
    let mut endpoint = registered
        .endpoint(format!("taskyard.role.{service}.{id}"))
        .await
        .map_err(|err| anyhow::anyhow!("cannot serve the {service} role endpoint: {err}"))?;
    let answered = role.clone();
    tokio::spawn(async move {
        use futures::StreamExt;
        while let Some(request) = endpoint.next().await {
            let body = serde_json::json!({ "role": answered.get() }).to_string();
            if let Err(err) = request.respond(Ok(body.into())).await {
                tracing::debug!(error = %err, "cannot answer a role request");
            }
        }
    });
    Ok(Registered {
        service: registered,
        role,
    })
}

/// What every service holds once it is on the bus.
pub struct Attached {
    pub client: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    /// The micro service registration; dropping it leaves `$SRV.PING`.
    pub service: Service,
    /// What this instance reports as its role.
    pub role: RoleCell,
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
        &common.nats_security(),
        &format!("taskyard-{service}"),
        crate::nats::DEFAULT_CONNECT_TIMEOUT,
    )
    .await?;
    let js = async_nats::jetstream::new(client.clone());
    crate::streams::ensure_streams(&js, common.stream_replicas).await?;
    let registered = register(&client, service, description).await?;
    Ok(Attached {
        client,
        js,
        service: registered.service,
        role: registered.role,
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
