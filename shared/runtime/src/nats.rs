//! Connecting to NATS, and refusing to run on a server that cannot carry us.

use crate::health::{Dependency, health};
use async_nats::Event;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
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
    #[error("cannot use the NATS nkey file {path}: {reason}")]
    Credentials { path: PathBuf, reason: String },
    #[error(
        "refusing to connect to NATS at {url} without {missing}: the server is not on this \
         machine, so the bus would be open to the network (see docs/security.md; set \
         TASKYARD_NATS_NKEY_FILE and TASKYARD_NATS_CA_FILE, or TASKYARD_NATS_ALLOW_INSECURE=true \
         for a network you trust)"
    )]
    Insecure { url: String, missing: String },
}

/// How a client proves who it is to NATS and checks the server: the
/// `TASKYARD_NATS_*` settings every service shares (see `docs/security.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsSecurity {
    /// A file holding this identity's nkey seed (`SU...`), as
    /// `taskyard creds create` writes it. Never logged.
    pub nkey_file: Option<PathBuf>,
    /// The CA that signed the servers' certificates: set, the client speaks
    /// TLS and checks the server against it.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key, for servers that verify clients.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Connect to a server on another host without credentials or TLS.
    pub allow_insecure: bool,
    /// The prefix of this client's reply inboxes, when its identity may
    /// read only its own (a worker's: see [`crate::access`]).
    #[serde(skip)]
    pub inbox_prefix: Option<String>,
}

impl NatsSecurity {
    /// What this client lacks to talk to a server off this machine, if anything.
    fn missing_off_loopback(&self) -> Option<String> {
        let missing: Vec<&str> = [
            (self.nkey_file.is_none(), "credentials"),
            (self.ca_file.is_none(), "TLS"),
        ]
        .into_iter()
        .filter_map(|(lacking, what)| lacking.then_some(what))
        .collect();
        (!missing.is_empty()).then(|| missing.join(" or "))
    }

    /// The servers of `url` and the options that connect to them as this
    /// identity; refused when a server is off this machine and the
    /// connection would be open ([`NatsError::Insecure`]).
    pub fn connect_options(
        &self,
        url: &str,
    ) -> Result<(Vec<async_nats::ServerAddr>, async_nats::ConnectOptions), NatsError> {
        let addrs = server_addrs(url)?;
        if !self.allow_insecure
            && !all_on_loopback(&addrs)
            && let Some(missing) = self.missing_off_loopback()
        {
            return Err(NatsError::Insecure {
                url: url.to_owned(),
                missing,
            });
        }
        install_tls_provider();
        let mut options = async_nats::ConnectOptions::new();
        if let Some(prefix) = &self.inbox_prefix {
            options = options.custom_inbox_prefix(prefix);
        }
        if let Some(path) = &self.nkey_file {
            options = options.nkey(read_seed(path)?);
        }
        if let Some(ca) = &self.ca_file {
            options = options.require_tls(true).add_root_certificates(ca.clone());
        }
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                options = options.add_client_certificate(cert.clone(), key.clone());
            }
            (None, None) => {}
            (Some(path), None) | (None, Some(path)) => {
                return Err(NatsError::Credentials {
                    path: path.clone(),
                    reason: "a client certificate needs both TASKYARD_NATS_CERT_FILE and \
                             TASKYARD_NATS_KEY_FILE"
                        .to_owned(),
                });
            }
        }
        Ok((addrs, options))
    }
}

/// Reads an nkey seed file: one line, a user seed. Checked here so that a
/// wrong file is named at start rather than refused by the server.
/// Makes ring rustls's process-wide provider, as async-nats's TLS needs
/// one: a binary that also links reqwest's aws-lc-rs has two, and rustls
/// then refuses to choose (a panic at the first TLS connection). The first
/// call wins; later ones change nothing.
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn read_seed(path: &Path) -> Result<String, NatsError> {
    let bad = |reason: String| NatsError::Credentials {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|err| bad(err.to_string()))?;
    let seed = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .ok_or_else(|| bad("the file holds no seed".to_owned()))?;
    if !seed.starts_with("SU") {
        return Err(bad(
            "it does not hold a user nkey seed (a line starting with SU)".to_owned(),
        ));
    }
    nkeys::KeyPair::from_seed(seed).map_err(|err| bad(format!("the seed is not valid: {err}")))?;
    Ok(seed.to_owned())
}

/// Whether every server of `addrs` is on this machine.
fn all_on_loopback(addrs: &[async_nats::ServerAddr]) -> bool {
    addrs.iter().all(|addr| {
        let host = addr.host().trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
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
    security: &NatsSecurity,
    name: &str,
    timeout: Duration,
) -> Result<async_nats::Client, NatsError> {
    let (addrs, base) = security.connect_options(url)?;
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    let client = loop {
        let attempt = base
            .clone()
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
