//! The api service's settings.

use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use taskyard_runtime::{Common, ServiceConfig};

/// Where the API and console listen unless told otherwise: loopback only, so a
/// development stack is not exposed to the network by accident.
pub const DEFAULT_HTTP_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));

/// Settings of the api service; every key can be set as `TASKYARD_<KEY>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// NATS, Postgres, logs and metrics, as for every service.
    #[serde(flatten)]
    pub common: Common,
    /// Address of the HTTP listener for the API and the console
    /// (`TASKYARD_HTTP_ADDR`); port 0 picks a free port, which is logged.
    pub http_addr: SocketAddr,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            common: Common::default(),
            http_addr: DEFAULT_HTTP_ADDR,
        }
    }
}

impl ServiceConfig for Config {
    fn common(&self) -> &Common {
        &self.common
    }
}

#[cfg(test)]
// figment's `Jail` closures return its own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn the_http_address_comes_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            let config: Config =
                taskyard_runtime::config::load(None).map_err(figment::Error::from)?;
            assert_eq!(config.http_addr, DEFAULT_HTTP_ADDR);
            jail.set_env("TASKYARD_HTTP_ADDR", "0.0.0.0:9090");
            jail.set_env("TASKYARD_NATS_URL", "nats://elsewhere:4222");
            let config: Config =
                taskyard_runtime::config::load(None).map_err(figment::Error::from)?;
            assert_eq!(config.http_addr.to_string(), "0.0.0.0:9090");
            assert_eq!(config.common.nats_url, "nats://elsewhere:4222");
            Ok(())
        });
    }

    #[test]
    fn a_bad_address_is_reported_with_its_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TASKYARD_HTTP_ADDR", "nowhere");
            let err = taskyard_runtime::config::load::<Config>(None)
                .err()
                .unwrap_or_default();
            assert!(err.to_lowercase().contains("http_addr"), "{err}");
            Ok(())
        });
    }
}
