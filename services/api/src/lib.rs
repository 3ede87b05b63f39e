//! The api service: Taskyard's REST API and web console.
//!
//! It reads Postgres (the source of truth) for everything it shows, and turns a
//! `POST /api/v1/tasks` into a request on `taskyard.api.submit`, so the
//! orchestrator stays the only writer of new tasks: the API validates nothing
//! itself and forwards the client's bytes verbatim. In the same way, pools
//! are read and changed through the pool manager and node operations go to
//! the resource manager, each over NATS request/reply.
//!
//! The router is built by a plain [`app`] function, so tests drive it with
//! `tower::ServiceExt::oneshot` without binding a port; [`run`] only connects,
//! binds and serves it until the shutdown signal.
//!
//! # Layout
//! - [`bodies`]: the JSON bodies of the API (`Task`, `TaskDetail`, `Node`,
//!   `Workflow`, `DeadLetter`, ...), the api's own types built from store
//!   rows by `From<Row>`, so a column rename cannot change the public API
//!   by accident.
//! - [`config`]: the service's settings ([`Config`]).
//! - [`error`]: [`ApiError`], the one error type of every handler, and its
//!   JSON body `{"error": {"code", "message"}}`.
//! - [`readable`]: how durations and times read for people (from
//!   `taskyard_client`, where the CLI finds it too).
//! - [`routes`]: the JSON API: `tasks` (submit, get, list, cancel, retry,
//!   events), `logs` (a task's output, paged and live), `workflows`,
//!   `tenants`, `dead_letters`, `nodes` (list,
//!   get, drain, cordon, uncordon, remove), `pools` (list, get, create,
//!   update, delete), `services`, `summary` and `health` (`/healthz`);
//!   each answers [`bodies`], never a store row.
//!
//! Every request to another service (submit, pools, nodes, cancel, and the
//! micro services on the bus) goes through [`taskyard_client::Client`], the
//! typed client the CLI and the tests use too.
//! - [`console`]: the server-rendered HTML pages (`/` and `/tasks/{id}`).
//!   Its pages: overview (`/`), tasks (`/tasks`, with the submit form), a task
//!   (`/tasks/{id}`: timeline, attempts, live log, cancel / retry), nodes
//!   (`/nodes`, with resource history), pools (`/pools`, editable), workflows
//!   (`/workflows`, with the DAG) and dead letters, updated live from the
//!   event stream over server-sent events (`/console/events`); its script and
//!   stylesheet are built into the binary (`/assets/`).
//! - [`telemetry`]: the request counter middleware.
//! - [`auth`]: bearer tokens and roles (the middleware), and `/login`.
//! - [`openapi`]: the OpenAPI document (`/api/v1/openapi.json`), derived
//!   from the handlers and their response types.

pub mod auth;
pub mod bodies;
pub mod config;
pub mod console;
pub mod error;
pub mod openapi;
pub mod routes;

pub use taskyard_client::readable;
pub mod telemetry;

pub use config::{AuthMode, Config};
pub use error::ApiError;

use anyhow::Context;
use axum::Router;
use taskyard_runtime::health::{self, Dependency};
use taskyard_runtime::{Shutdown, micro, nats};
use taskyard_store::{DbTls, Store};

/// What every handler needs; cheap to clone (both are handles on pools).
#[derive(Debug, Clone)]
pub struct AppState {
    /// Every read goes to Postgres.
    pub store: Store,
    /// The live feed follows events here.
    pub nats: async_nats::Client,
    /// Submissions, pool requests, node operations and cancels go over NATS
    /// request/reply to the services that own them, through this client.
    pub client: taskyard_client::Client,
    /// Whether requests need a token (see [`auth`]).
    pub auth: AuthMode,
}

impl AppState {
    /// `auth` is said explicitly: there is no default that could leave an
    /// API open by accident.
    pub fn new(store: Store, nats: async_nats::Client, auth: AuthMode) -> AppState {
        AppState {
            store,
            client: taskyard_client::Client::new(nats.clone()),
            nats,
            auth,
        }
    }
}

/// The whole HTTP surface: the JSON API, the console and `/healthz`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(routes::router())
        .merge(console::router())
        .merge(auth::router())
        .merge(openapi::router())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ))
        .layer(axum::middleware::from_fn(telemetry::count_requests))
        .with_state(state)
}

/// Runs the api service until `shutdown` is triggered: connects to Postgres
/// (applying migrations) and NATS, registers as a micro service, and serves
/// [`app`] on `config.http_addr`, finishing in-flight requests on shutdown.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    config.check()?;
    let common = &config.common;
    let store = Store::connect_and_migrate_with(
        &common.database_url,
        taskyard_store::DEFAULT_POOL_SIZE,
        &DbTls::from_ca_file(common.database_ca_file.clone()),
    )
    .await
    .context("connecting to Postgres")?;
    health::spawn_probe(Dependency::Postgres, shutdown.clone(), {
        let store = store.clone();
        move || {
            let store = store.clone();
            async move { store.ping().await }
        }
    });
    let client = nats::connect(
        &common.nats_url,
        &common.nats_security(),
        "taskyard-api",
        nats::DEFAULT_CONNECT_TIMEOUT,
    )
    .await
    .context("connecting to NATS")?;
    // Kept alive for as long as we serve: dropping it unregisters us.
    let _service = micro::register(&client, "api", "Taskyard REST API and web console").await?;
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding the HTTP listener on {}", config.http_addr))?;
    let addr = listener
        .local_addr()
        .context("reading the HTTP listener's address")?;
    match config.auth {
        AuthMode::Required => {
            tracing::info!(%addr, "authentication required: requests need a bearer token");
        }
        AuthMode::Off => {
            tracing::warn!(
                %addr,
                "authentication is OFF (TASKYARD_AUTH=off): anyone on this machine can use the \
                 API and the console, with every right"
            );
        }
    }
    tracing::info!(%addr, "listening; web console at http://{addr}/");
    axum::serve(listener, app(AppState::new(store, client, config.auth)))
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
        .context("serving HTTP")?;
    Ok(())
}
