//! Layered configuration: named defaults, then a TOML file, then environment.
//!
//! Every key of a service's config can be set as `TASKYARD_<KEY>` (for example
//! `TASKYARD_NATS_URL`); nested keys use a double underscore. All problems are
//! reported at once.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Default NATS server.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
/// Default database (the `taskyard up` layout).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/taskyard";

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Settings every service has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Common {
    /// NATS server URL (`TASKYARD_NATS_URL`).
    pub nats_url: String,
    /// Postgres URL (`TASKYARD_DATABASE_URL`); workers ignore it. May hold a
    /// password, so it is never logged.
    pub database_url: String,
    /// The CA to verify Postgres's certificate against
    /// (`TASKYARD_DATABASE_CA_FILE`), instead of the system's roots; TLS
    /// itself follows the URL's `sslmode` (see `taskyard_store::tls`).
    pub database_ca_file: Option<PathBuf>,
    /// `text` or `json` (`TASKYARD_LOG_FORMAT`); the level comes from `RUST_LOG`.
    pub log_format: LogFormat,
    /// Where to serve Prometheus metrics (`TASKYARD_METRICS_ADDR`); off when unset.
    pub metrics_addr: Option<SocketAddr>,
    /// Replicas of each JetStream stream (1 for a single server, 3 for the cluster).
    pub stream_replicas: usize,
    /// This service's nkey seed file (`TASKYARD_NATS_NKEY_FILE`).
    pub nats_nkey_file: Option<PathBuf>,
    /// The CA of the NATS servers' certificates (`TASKYARD_NATS_CA_FILE`): TLS on.
    pub nats_ca_file: Option<PathBuf>,
    /// A client certificate for NATS (`TASKYARD_NATS_CERT_FILE`, `TASKYARD_NATS_KEY_FILE`).
    pub nats_cert_file: Option<PathBuf>,
    pub nats_key_file: Option<PathBuf>,
    /// Reach a NATS server on another host without credentials or TLS
    /// (`TASKYARD_NATS_ALLOW_INSECURE`); refused otherwise.
    pub nats_allow_insecure: bool,
}

impl Common {
    /// The NATS identity and certificates these settings name.
    pub fn nats_security(&self) -> crate::nats::NatsSecurity {
        crate::nats::NatsSecurity {
            nkey_file: self.nats_nkey_file.clone(),
            ca_file: self.nats_ca_file.clone(),
            cert_file: self.nats_cert_file.clone(),
            key_file: self.nats_key_file.clone(),
            allow_insecure: self.nats_allow_insecure,
            inbox_prefix: None,
        }
    }
}

impl Default for Common {
    fn default() -> Self {
        Common {
            nats_url: DEFAULT_NATS_URL.to_owned(),
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            database_ca_file: None,
            log_format: LogFormat::Text,
            metrics_addr: None,
            stream_replicas: 1,
            nats_nkey_file: None,
            nats_ca_file: None,
            nats_cert_file: None,
            nats_key_file: None,
            nats_allow_insecure: false,
        }
    }
}

/// A service's configuration: its own settings plus [`Common`] (flattened).
pub trait ServiceConfig: DeserializeOwned + Serialize + Default {
    fn common(&self) -> &Common;

    /// Every problem with the values, each naming its setting, all found
    /// at once: the service refuses to start on any (exit code 78) rather
    /// than clamp a value to something the operator did not ask for.
    fn problems(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Adds a problem to `problems` when setting `name` (its `TASKYARD_*`
/// variable's name, lower case) is below `min`.
pub fn at_least(problems: &mut Vec<String>, name: &str, value: u64, min: u64) {
    if value < min {
        problems.push(format!("{name} is {value}; it must be at least {min}"));
    }
}

/// Loads `C` from its defaults, `file` (if any), then `TASKYARD_*` variables.
pub fn load<C: ServiceConfig>(file: Option<&Path>) -> Result<C, String> {
    use figment::providers::{Env, Format, Serialized, Toml};
    let mut figment = figment::Figment::from(Serialized::defaults(C::default()));
    if let Some(file) = file {
        if !file.exists() {
            return Err(format!("  - config file {} does not exist", file.display()));
        }
        figment = figment.merge(Toml::file(file));
    }
    // TASKYARD_CONFIG names the file itself; it is not a setting.
    let config: C = figment
        .merge(Env::prefixed("TASKYARD_").split("__").ignore(&["config"]))
        .extract()
        .map_err(|err| {
            err.into_iter()
                .map(|e| format!("  - {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        })?;
    let problems = config.problems();
    if !problems.is_empty() {
        return Err(problems
            .iter()
            .map(|p| format!("  - {p}"))
            .collect::<Vec<_>>()
            .join("\n"));
    }
    Ok(config)
}

#[cfg(test)]
// figment's test jail speaks figment::Error, which is large; fine in tests.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Demo {
        #[serde(flatten)]
        common: Common,
        batch_size: usize,
    }

    impl ServiceConfig for Demo {
        fn common(&self) -> &Common {
            &self.common
        }

        fn problems(&self) -> Vec<String> {
            let mut problems = Vec::new();
            if self.batch_size > 1000 {
                problems.push(format!("batch_size is {}; at most 1000", self.batch_size));
            }
            if self.common.nats_url.is_empty() {
                problems.push("nats_url is empty".to_owned());
            }
            problems
        }
    }

    #[test]
    fn every_problem_with_the_values_is_reported_at_once() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TASKYARD_BATCH_SIZE", "5000");
            jail.set_env("TASKYARD_NATS_URL", "");
            let err = load::<Demo>(None).err().unwrap_or_default();
            assert_eq!(
                err, "  - batch_size is 5000; at most 1000\n  - nats_url is empty",
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn at_least_names_the_setting_and_its_bound() {
        let mut problems = Vec::new();
        at_least(&mut problems, "sweep_interval_ms", 5, 10);
        at_least(&mut problems, "flush_interval_ms", 10, 10);
        assert_eq!(
            problems,
            vec!["sweep_interval_ms is 5; it must be at least 10"]
        );
    }

    #[test]
    fn file_then_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "svc.toml",
                "batch_size = 7\nnats_url = \"nats://file:4222\"",
            )?;
            jail.set_env("TASKYARD_NATS_URL", "nats://env:4222");
            let demo: Demo = load(Some(Path::new("svc.toml"))).map_err(figment::Error::from)?;
            assert_eq!(demo.batch_size, 7);
            assert_eq!(demo.common.nats_url, "nats://env:4222");
            assert_eq!(demo.common.log_format, LogFormat::Text);
            Ok(())
        });
    }

    #[test]
    fn bad_settings_are_reported_with_their_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TASKYARD_BATCH_SIZE", "many");
            let err = load::<Demo>(None).err().unwrap_or_default();
            assert!(err.to_lowercase().contains("batch_size"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = load::<Demo>(Some(Path::new("/nonexistent/x.toml")))
            .err()
            .unwrap_or_default();
        assert!(err.contains("/nonexistent/x.toml"), "{err}");
    }
}
