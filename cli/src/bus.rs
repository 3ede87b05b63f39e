//! The CLI's NATS connection, for the commands that talk to services
//! directly (`submit`, `cancel`, `pools`, `pool`, `node`, `services`), and
//! the typed client of their requests on it.

use anyhow::Context;
use std::time::Duration;
use taskyard_runtime::nats::NatsSecurity;

/// How long connecting to NATS may take before the command gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the NATS server at `url` (or to any of several, separated by
/// commas: the servers of a cluster) as `security` says, saying what to
/// check when it fails.
pub async fn connect(url: &str, security: &NatsSecurity) -> anyhow::Result<async_nats::Client> {
    let (servers, options) = security.connect_options(url)?;
    options
        .name("taskyard-cli")
        .connection_timeout(CONNECT_TIMEOUT)
        .connect(servers)
        .await
        .with_context(|| format!("cannot reach NATS at {url} (is `taskyard up` running?)"))
}

/// Connects to NATS as the global options say and returns the request
/// client on it.
pub async fn client(global: &crate::GlobalOptions) -> anyhow::Result<taskyard_client::Client> {
    Ok(taskyard_client::Client::new(
        connect(&global.nats_url, &global.nats_security()).await?,
    ))
}
