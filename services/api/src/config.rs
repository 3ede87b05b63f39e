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
    /// Whether requests need a bearer token (`TASKYARD_AUTH`): `required`
    /// (the default) or `off`, which only a loopback `http_addr` may use.
    pub auth: AuthMode,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            common: Common::default(),
            http_addr: DEFAULT_HTTP_ADDR,
            auth: AuthMode::Required,
        }
    }
}

/// Whether the API asks for a token (`TASKYARD_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every request but `/healthz`, `/metrics`, `/login` and the console's
    /// assets needs a token of a role that allows it.
    #[default]
    Required,
    /// Anyone who can reach the listener may do anything: allowed only on
    /// a loopback address.
    Off,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Required => "required",
            AuthMode::Off => "off",
        }
    }
}

/// A configuration the api refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `TASKYARD_AUTH=off` on an address other machines can reach.
    #[error(
        "TASKYARD_AUTH=off is allowed only on a loopback address, and TASKYARD_HTTP_ADDR is \
         {addr}: anyone who can reach it could run and cancel tasks. Keep TASKYARD_AUTH=required \
         and create a token with `taskyard token create --name NAME --role admin`, or listen \
         on 127.0.0.1"
    )]
    OpenOnNetwork { addr: SocketAddr },
}

impl Config {
    /// Refuses what must not run: auth off on a non-loopback address.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.auth == AuthMode::Off && !self.http_addr.ip().is_loopback() {
            return Err(ConfigError::OpenOnNetwork {
                addr: self.http_addr,
            });
        }
        Ok(())
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
    fn auth_is_required_unless_turned_off_on_loopback() {
        figment::Jail::expect_with(|jail| {
            let config: Config =
                taskyard_runtime::config::load(None).map_err(figment::Error::from)?;
            assert_eq!(config.auth, AuthMode::Required);
            assert_eq!(config.check(), Ok(()));
            jail.set_env("TASKYARD_AUTH", "off");
            let config: Config =
                taskyard_runtime::config::load(None).map_err(figment::Error::from)?;
            assert_eq!(config.auth, AuthMode::Off);
            assert_eq!(config.check(), Ok(()));
            jail.set_env("TASKYARD_HTTP_ADDR", "0.0.0.0:8080");
            let config: Config =
                taskyard_runtime::config::load(None).map_err(figment::Error::from)?;
            assert!(matches!(
                config.check(),
                Err(ConfigError::OpenOnNetwork { .. })
            ));
            jail.set_env("TASKYARD_AUTH", "maybe");
            let err = taskyard_runtime::config::load::<Config>(None)
                .err()
                .unwrap_or_default();
            assert!(err.to_lowercase().contains("auth"), "{err}");
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
