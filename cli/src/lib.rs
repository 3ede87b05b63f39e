//! `taskyard`, the command line: submit tasks over NATS and look at the
//! cluster through the REST API.
//!
//! Submissions go straight to the orchestrator (`taskyard.api.submit`, request
//! and reply), so they work without the api service; so do pools (the pool
//! manager, `taskyard.api.pools.<op>`), node operations (the resource
//! manager, `taskyard.api.nodes.<op>`) and `services` (`$SRV.INFO` and
//! `$SRV.STATS`), through the same typed client as the API
//! ([`taskyard_client::Client`]): the CLI stands beside the services and
//! depends on none of them. Reads of tasks and nodes go through the API
//! (`/api/v1/...`). Only four commands reach Postgres themselves, as they
//! act on it before or beside the services: `up` (it starts or reuses one),
//! `migrate`, `token` and `creds` ([`database`]).
//!
//! # Layout
//! - [`Cli`], [`GlobalOptions`] and [`Command`]: the argument grammar. Each
//!   subcommand is one struct in [`commands`] with an async `run`; adding one
//!   is a module, a variant and a match arm.
//! - [`commands`]: `up`, `submit`, `tasks`, `task`, `logs`, `nodes`, `node`, `pools`,
//!   `pool`, `services`, `bench`, `migrate`, `token`, `creds`.
//! - [`credentials`]: the bus's NATS identities as a library: issue one,
//!   write its seed, render the servers' authorization config, reload them
//!   (for `creds`, and for `up` issuing every service's identity).
//! - [`bus`]: the NATS connection of the commands that talk to services.
//! - [`labels`]: `KEY=VALUE` arguments (node selectors).
//! - [`secure_bus`]: certificates and every process's credential for a
//!   `taskyard up --secure` stack.
//! - [`stack`]: a whole local stack (servers and service processes), for
//!   `up` and `bench`.
//! - [`demo`]: the demo workload of `up --demo`.
//! - [`api`]: the HTTP client of the REST API and the shapes it answers with.
//! - [`display`]: plain-text tables and time formatting.

pub mod api;
pub mod bus;
pub mod commands;
pub mod credentials;
pub mod database;
pub mod demo;
pub mod display;
pub mod labels;
pub mod secure_bus;
pub mod stack;

use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;

/// Where the REST API listens in a `taskyard up` stack.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8080";

/// Taskyard: a distributed task scheduler.
#[derive(Debug, Parser)]
#[command(name = "taskyard", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand understands.
#[derive(Debug, Clone, Args)]
pub struct GlobalOptions {
    /// NATS server that carries submissions and events.
    #[arg(
        long,
        global = true,
        env = "TASKYARD_NATS_URL",
        default_value = taskyard_runtime::config::DEFAULT_NATS_URL,
        value_name = "URL"
    )]
    pub nats_url: String,
    /// The nkey seed file this command connects to NATS with (from
    /// `taskyard creds create`); not needed by a `taskyard up` stack on
    /// loopback, whose bus runs open.
    #[arg(
        long,
        global = true,
        env = "TASKYARD_NATS_NKEY_FILE",
        value_name = "FILE"
    )]
    pub nats_nkey: Option<std::path::PathBuf>,
    /// The CA that signed the NATS servers' certificates: set, the command
    /// speaks TLS to NATS.
    #[arg(
        long,
        global = true,
        env = "TASKYARD_NATS_CA_FILE",
        value_name = "FILE"
    )]
    pub nats_ca: Option<std::path::PathBuf>,
    /// Base URL of the REST API.
    #[arg(
        long,
        global = true,
        env = "TASKYARD_API_URL",
        default_value = DEFAULT_API_URL,
        value_name = "URL"
    )]
    pub api_url: String,
    /// Bearer token for the REST API (from `taskyard token create`); not
    /// needed by a `taskyard up` stack, whose API runs open on loopback.
    #[arg(
        long,
        global = true,
        env = "TASKYARD_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
}

impl GlobalOptions {
    /// The NATS identity and CA of `--nats-nkey` and `--nats-ca`.
    pub fn nats_security(&self) -> taskyard_runtime::nats::NatsSecurity {
        taskyard_runtime::nats::NatsSecurity {
            nkey_file: self.nats_nkey.clone(),
            ca_file: self.nats_ca.clone(),
            ..Default::default()
        }
    }

    /// A client of the REST API at `--api-url`, sending `--token`.
    pub fn api(&self) -> api::ApiClient {
        api::ApiClient::new(&self.api_url).with_token(self.token.clone())
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole stack on this machine (NATS, Postgres, every service).
    Up(commands::up::Up),
    /// Submit a task or an atomic batch, and optionally wait for it to finish.
    Submit(commands::submit::Submit),
    /// List tasks, newest first.
    Tasks(commands::tasks::Tasks),
    /// Show one task with its result and history.
    Task(commands::task::Task),
    /// Print a task's output lines; `-f` follows it until it ends.
    Logs(commands::logs::Logs),
    /// Show one workflow with its steps.
    Workflow(commands::workflow::Workflow),
    /// Cancel a task: at once while it waits, killed on its node if it runs.
    Cancel(commands::cancel::Cancel),
    /// List worker nodes with their capacity and reservations.
    Nodes(commands::nodes::Nodes),
    /// Drain, cordon, uncordon or remove one node.
    Node(commands::node::Node),
    /// List pools.
    Pools(commands::pools::Pools),
    /// Show, create, update or delete one pool.
    Pool(commands::pool::Pool),
    /// List the NATS micro services on the bus, with their request counts.
    Services(commands::services::Services),
    /// Measure end-to-end throughput and latency on a throwaway stack.
    Bench(commands::bench::Bench),
    /// Apply database migrations.
    Migrate(commands::migrate::Migrate),
    /// Create, list or revoke the REST API's bearer tokens (in Postgres).
    #[command(subcommand)]
    Token(commands::token::Token),
    /// Issue, list, revoke the bus's NATS credentials, and write the
    /// servers' authorization config (in Postgres, like `token`).
    #[command(subcommand)]
    Creds(commands::creds::Creds),
    /// Run the scheduling policies on a workload in virtual time and compare them.
    Simulate(commands::simulate::Simulate),
}

impl Cli {
    /// Runs the chosen subcommand; its exit code says how it went.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        self.command.run(&self.global).await
    }
}

impl Command {
    pub async fn run(self, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
        match self {
            Command::Submit(cmd) => cmd.run(global).await,
            Command::Tasks(cmd) => cmd.run(global).await,
            Command::Task(cmd) => cmd.run(global).await,
            Command::Workflow(cmd) => cmd.run(global).await,
            Command::Logs(cmd) => cmd.run(global).await,
            Command::Cancel(cmd) => cmd.run(global).await,
            Command::Nodes(cmd) => cmd.run(global).await,
            Command::Node(cmd) => cmd.run(global).await,
            Command::Pools(cmd) => cmd.run(global).await,
            Command::Pool(cmd) => cmd.run(global).await,
            Command::Services(cmd) => cmd.run(global).await,
            Command::Up(cmd) => cmd.run(global).await,
            Command::Bench(cmd) => cmd.run().await,
            Command::Migrate(cmd) => cmd.run().await,
            Command::Token(cmd) => cmd.run().await,
            Command::Creds(cmd) => cmd.run().await,
            Command::Simulate(cmd) => cmd.run().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }
}
