//! Starts and stops local `nats-server` and PostgreSQL processes in a folder.
//!
//! `taskyard up` uses it with persistent data under `./.taskyard/`; the test
//! kit uses it with a temporary folder per test. Every server listens on
//! 127.0.0.1 only, logs into its folder, and is killed when its handle is
//! dropped, so a panicking test never leaves servers behind.
//!
//! Layout:
//! - [`error`]: [`DevstackError`], which says what went wrong and which log to read.
//! - [`nats`]: [`NatsServer`] and [`NatsOptions`]; finding the `nats-server` binary.
//! - [`nats_cluster`]: [`NatsCluster`], three servers on loopback as one JetStream
//!   cluster, with one server killed and restarted at will.
//! - [`postgres`]: [`Postgres`] and [`PostgresOptions`]; `initdb`, running as the
//!   `postgres` OS user when we are root, creating databases, [`bin_dir`].
//! - [`tls`]: a local CA and the servers' certificate, for a stack on TLS.
//! - [`net`]: [`free_port`], [`nats_reachable`], [`postgres_reachable`].
//! - `proc` (private): log files, log tails, signals and reaping shared by both servers.

pub mod error;
pub mod nats;
pub mod nats_cluster;
pub mod net;
pub mod postgres;
mod proc;
pub mod tls;

pub use error::DevstackError;
pub use nats::{NatsOptions, NatsServer, nats_server_binary};
pub use nats_cluster::{ClusterPorts, NatsCluster, NatsClusterOptions};
pub use net::{free_port, nats_reachable, postgres_reachable, postgres_reachable_with};
pub use postgres::{
    Postgres, PostgresOptions, bin_dir, create_database_at, create_database_at_with,
};
pub use tls::{TlsFiles, ensure_certificates};
