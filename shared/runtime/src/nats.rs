//! Connecting to NATS, and refusing to run on a server that cannot carry us.

use crate::health::{Dependency, health};
use async_nats::Event;
use std::time::Duration;

/// The smallest `max_payload` we accept: a full batch submission must fit.
pub const MIN_MAX_PAYLOAD: usize = 1024 * 1024;
/// How long a starting service keeps trying to reach NATS.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a service could not use NATS.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("{url:?} is not a NATS URL or a comma-separated list of them ({reason})")]
    BadUrl { url: String, reason: String },
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

/// The servers of a `TASKYARD_NATS_URL`: one URL, or several separated by
/// commas (the servers of one cluster). A client given several connects to
/// any that answers and, when it goes away, reconnects to another.
pub fn server_addrs(url: &str) -> Result<Vec<async_nats::ServerAddr>, NatsError> {
    let bad = |reason: String| NatsError::BadUrl {
        url: url.to_owned(),
        reason,
    };
    let addrs = url
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<async_nats::ServerAddr>()
                .map_err(|err| bad(format!("{part}: {err}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err(bad("it names no server".to_owned()));
    }
    Ok(addrs)
}

/// Connects as `name` (visible in the server's connection list), retrying
/// until `timeout`, and checks the server's payload limit and JetStream.
/// `url` may list several servers, separated by commas ([`server_addrs`]).
///
/// Once connected, the client reconnects by itself for as long as the
/// process runs (to any server of the cluster it has heard of), and its
/// connection events feed [`crate::health`]: one line when the connection
/// is lost, one when it is back, whatever the number of attempts between.
pub async fn connect(
    url: &str,
    name: &str,
    timeout: Duration,
) -> Result<async_nats::Client, NatsError> {
    let addrs = server_addrs(url)?;
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    let client = loop {
        let attempt = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(2))
            .max_reconnects(None)
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(|event| async move { on_event(event) })
            .connect(addrs.as_slice())
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
    health().up(Dependency::Nats);
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

/// The wait before reconnection attempt `attempts`: at once, then from
/// 10 ms doubling to [`MAX_RECONNECT_DELAY`]. The client's own default
/// goes to 4 s, and every process of the fleet reconnects on its own
/// schedule: a worker back 4 s after the resource manager would be judged
/// silent for those seconds.
fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exponent = u32::try_from(attempts - 2).unwrap_or(u32::MAX).min(16);
    (Duration::from_millis(10) * 2u32.pow(exponent)).min(MAX_RECONNECT_DELAY)
}

/// The longest wait between two reconnection attempts.
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// What the client says about its connection, told once per change.
fn on_event(event: Event) {
    match event {
        Event::Connected => health().up(Dependency::Nats),
        Event::Disconnected => health().down(Dependency::Nats, "disconnected from the server"),
        Event::Closed => health().down(Dependency::Nats, "the connection was closed"),
        Event::LameDuckMode => {
            tracing::info!("the NATS server is shutting down (lame duck mode); moving to another")
        }
        Event::SlowConsumer(sid) => {
            crate::warn_throttled!(
                subscription = sid,
                "a subscription fell behind and NATS dropped messages for it"
            )
        }
        Event::ServerError(err) => crate::warn_throttled!(error = %err, "NATS server error"),
        // One per failed reconnection attempt: the outage was logged once
        // already, and its reason is the last of these.
        Event::ClientError(err) => {
            if health().is_down(Dependency::Nats) {
                health().down(Dependency::Nats, format!("reconnecting: {err}"));
            } else {
                crate::warn_throttled!(error = %err, "NATS client error");
            }
        }
        Event::Draining => {}
    }
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn a_url_may_list_the_servers_of_a_cluster() {
        let one = server_addrs("nats://127.0.0.1:4222").expect("one server");
        assert_eq!(one.len(), 1);
        let three =
            server_addrs("nats://127.0.0.1:4222, nats://127.0.0.1:4223,nats://127.0.0.1:4224")
                .expect("three servers");
        let ports: Vec<u16> = three.iter().map(|addr| addr.port()).collect();
        assert_eq!(ports, [4222, 4223, 4224]);
        assert!(matches!(server_addrs(" , "), Err(NatsError::BadUrl { .. })));
        let bad = server_addrs("nats://127.0.0.1:4222,nats://host:notaport").expect_err("bad port");
        assert!(bad.to_string().contains("notaport"), "{bad}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnection_starts_at_once_and_backs_off_to_the_cap() {
        assert_eq!(reconnect_delay(0), Duration::ZERO);
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(10));
        assert_eq!(reconnect_delay(3), Duration::from_millis(20));
        assert_eq!(reconnect_delay(10), MAX_RECONNECT_DELAY);
        assert_eq!(reconnect_delay(usize::MAX), MAX_RECONNECT_DELAY);
    }
}
