//! Ports and reachability checks.

use std::net::TcpListener;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_postgres::Socket;
use tokio_postgres::tls::MakeTlsConnect;

use crate::error::DevstackError;

const REACHABLE_TIMEOUT: Duration = Duration::from_secs(2);

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Another process may take it before the server binds it; the servers retry
/// on another port when they chose it themselves.
pub fn free_port() -> Result<u16, DevstackError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(DevstackError::io("binding 127.0.0.1:0 to find a free port"))?;
    let addr = listener
        .local_addr()
        .map_err(DevstackError::io("reading the address of a bound socket"))?;
    Ok(addr.port())
}

/// Whether a NATS server answers at `url` (`nats://[user:pass@]host[:port]`, first of a
/// comma-separated list) within 2 s, i.e. sends its `INFO {` greeting.
pub async fn nats_reachable(url: &str) -> bool {
    let Some((host, port)) = nats_host_port(url) else {
        return false;
    };
    tokio::time::timeout(REACHABLE_TIMEOUT, nats_greets(host, port))
        .await
        .unwrap_or(false)
}

/// Whether a PostgreSQL connection with exactly these settings succeeds within 2 s.
///
/// The database in the URL must exist; check the `postgres` database to ask
/// only whether the server runs.
pub async fn postgres_reachable(url: &str) -> bool {
    postgres_reachable_with(url, tokio_postgres::NoTls).await
}

/// [`postgres_reachable`] with TLS as the URL's `sslmode` asks, through
/// `tls` (e.g. `taskyard_store::DbTls::connector_for`): a server that
/// insists on TLS, or a URL with `sslmode=require`, is unreachable without.
pub async fn postgres_reachable_with<T>(url: &str, tls: T) -> bool
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let attempt = async {
        match tokio_postgres::connect(url, tls).await {
            Ok((client, connection)) => {
                // The connection future must be polled for the client to work at all.
                let task = tokio::spawn(connection);
                let ok = client.simple_query("SELECT 1").await.is_ok();
                drop(client);
                let _ = task.await;
                ok
            }
            Err(_) => false,
        }
    };
    tokio::time::timeout(REACHABLE_TIMEOUT, attempt)
        .await
        .unwrap_or(false)
}

/// Connects and checks for the `INFO {` line every NATS server sends first.
pub(crate) async fn nats_greets(host: &str, port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((host, port)).await else {
        return false;
    };
    let mut got = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    while got.len() < 6 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"INFO {")
}

fn nats_host_port(url: &str) -> Option<(&str, u16)> {
    let first = url.split(',').next()?.trim();
    let rest = first.split_once("://").map_or(first, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    let rest = rest.split('/').next()?;
    if rest.is_empty() {
        return None;
    }
    // Bracketed IPv6 hosts contain colons of their own.
    if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => 4222,
        };
        return Some((host, port));
    }
    match rest.rsplit_once(':') {
        Some((host, port)) => Some((host, port.parse().ok()?)),
        None => Some((rest, 4222)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nats_urls() {
        assert_eq!(
            nats_host_port("nats://127.0.0.1:4333"),
            Some(("127.0.0.1", 4333))
        );
        assert_eq!(nats_host_port("nats://u:p@host"), Some(("host", 4222)));
        assert_eq!(
            nats_host_port("localhost:1,nats://b:2"),
            Some(("localhost", 1))
        );
        assert_eq!(nats_host_port("nats://[::1]:5"), Some(("::1", 5)));
        assert_eq!(nats_host_port("nats://"), None);
    }

    #[tokio::test]
    async fn unreachable_servers_are_reported_quickly() {
        let port = free_port().expect("free port");
        assert!(!nats_reachable(&format!("nats://127.0.0.1:{port}")).await);
        assert!(
            !postgres_reachable(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).await
        );
    }
}
