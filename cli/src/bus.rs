//! The CLI's NATS connection, for the commands that talk to services
//! directly (`submit`, `pools`, `pool`, `node`, `services`).

use anyhow::Context;
use std::time::Duration;

/// How long connecting to NATS may take before the command gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the NATS server at `url`, saying what to check when it fails.
pub async fn connect(url: &str) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name("taskyard-cli")
        .connection_timeout(CONNECT_TIMEOUT)
        .connect(url)
        .await
        .with_context(|| format!("cannot reach NATS at {url} (is `taskyard up` running?)"))
}
