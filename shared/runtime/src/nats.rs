//! Connecting to NATS, and refusing to run on a server that cannot carry us.

use std::time::Duration;

/// The smallest `max_payload` we accept: a full batch submission must fit.
pub const MIN_MAX_PAYLOAD: usize = 1024 * 1024;
/// How long a starting service keeps trying to reach NATS.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a service could not use NATS.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("cannot reach NATS at {url} after {waited:?}: {last}")]
    Unreachable {
        url: String,
        waited: Duration,
        last: String,
    },
    #[error(
        "the NATS server at {url} allows messages of {max_payload} bytes; Taskyard needs at \
         least {MIN_MAX_PAYLOAD} (set `max_payload` in the server config, see nats/dev.conf)"
    )]
    PayloadTooSmall { url: String, max_payload: usize },
    #[error(
        "JetStream is not available on the NATS server at {url} ({reason}); start nats-server \
         with JetStream enabled (`-js`, or the `jetstream` block of nats/dev.conf)"
    )]
    NoJetStream { url: String, reason: String },
}

/// Connects as `name` (visible in the server's connection list), retrying
/// until `timeout`, and checks the server's payload limit and JetStream.
pub async fn connect(
    url: &str,
    name: &str,
    timeout: Duration,
) -> Result<async_nats::Client, NatsError> {
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    let client = loop {
        let attempt = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(2))
            .connect(url)
            .await;
        match attempt {
            Ok(client) => break client,
            Err(err) if started.elapsed() < timeout => {
                tracing::debug!(error = %err, "NATS not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(err) => {
                return Err(NatsError::Unreachable {
                    url: url.to_owned(),
                    waited: started.elapsed(),
                    last: err.to_string(),
                });
            }
        }
    };
    let max_payload = client.server_info().max_payload;
    if max_payload < MIN_MAX_PAYLOAD {
        return Err(NatsError::PayloadTooSmall {
            url: url.to_owned(),
            max_payload,
        });
    }
    let jetstream = async_nats::jetstream::new(client.clone());
    if let Err(err) = jetstream.query_account().await {
        return Err(NatsError::NoJetStream {
            url: url.to_owned(),
            reason: err.to_string(),
        });
    }
    Ok(client)
}
