//! Test support: a real `nats-server` and PostgreSQL per test, on free ports in a
//! temporary folder, plus the service binaries as child processes.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::time::Duration;
//! let mut stack = taskyard_testkit::TestStack::start().await?;
//! let api = stack.spawn("taskyard-api", "api", &[("TASKYARD_HTTP_ADDR", "127.0.0.1:0")]).await?;
//! taskyard_testkit::wait_until("api log line", Duration::from_secs(10), || {
//!     let log = api.log();
//!     async move { Ok(log.contains("listening").then_some(())) }
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! Dropping the [`TestStack`] kills every service it spawned, then stops
//! PostgreSQL and NATS, then deletes the folder; when the test is panicking it
//! first prints the tail of every log to stderr.
//!
//! Layout:
//! - [`stack`]: [`TestStack`], the servers, the database and the service environment.
//! - [`credentials`]: the bus's identities; every service and node spawned
//!   gets its own nkey, the test's clients connect as an admin.
//! - [`cluster`]: [`TestStack::start_cluster`], the same on a three-server NATS cluster.
//! - [`service`]: [`ServiceHandle`], a spawned service binary: signals, exit, log.
//! - [`outages`]: NATS killed and restarted, Postgres restarted in immediate
//!   mode, each on the same port and data.
//! - [`wait`]: [`wait_until`], polling with a deadline.
//! - [`bin_path`] (in `service`): where the workspace's built binaries are.

pub mod cluster;
pub mod credentials;
pub mod outages;
pub mod service;
pub mod stack;
pub mod wait;

pub use nix::sys::signal::Signal;
pub use service::{ServiceHandle, bin_path};
pub use stack::TestStack;
pub use taskyard_devstack::NatsCluster;
pub use wait::wait_until;
