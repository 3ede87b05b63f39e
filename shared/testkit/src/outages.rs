//! Outages of the stack's servers, for tests of what the services ride out.
//!
//! Each server comes back on the same port and the same data, so the
//! services' URLs stay right and nothing they stored is gone: what a
//! restart in production looks like to them.

use anyhow::Context;

use crate::TestStack;

impl TestStack {
    /// Kills the stack's single nats-server (`nats`) with SIGKILL, as a
    /// crash would.
    pub async fn kill_nats(&mut self) {
        self.nats.kill().await;
    }

    /// Starts nats-server again on the same port and JetStream store,
    /// killing it first if it still runs.
    pub async fn restart_nats(&mut self) -> anyhow::Result<()> {
        self.nats
            .restart()
            .await
            .context("restarting nats-server on its port and store")
    }

    /// Stops PostgreSQL in immediate mode (`pg_ctl stop -m immediate`:
    /// every connection cut, no checkpoint).
    pub async fn stop_postgres_immediate(&mut self) {
        self.pg.stop_immediate().await;
    }

    /// Starts PostgreSQL again on the same port and data directory; it
    /// recovers from its WAL first, as after a crash.
    pub async fn start_postgres(&mut self) -> anyhow::Result<()> {
        self.pg
            .start_again()
            .await
            .context("starting postgres again on its port and data")
    }

    /// `pg_ctl restart -m immediate`.
    pub async fn restart_postgres_immediate(&mut self) -> anyhow::Result<()> {
        self.pg
            .restart_immediate()
            .await
            .context("restarting postgres in immediate mode")
    }
}
