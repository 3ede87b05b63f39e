//! `taskyard cancel ID [--reason TEXT]`: asks the pool manager (over NATS)
//! to cancel a task. A waiting task is cancelled at once; a running one is
//! killed on its node.

use crate::GlobalOptions;
use crate::commands::answered;
use clap::Args;
use std::process::ExitCode;
use taskyard_client::CancelOutcome;
use uuid::Uuid;

#[derive(Debug, Args)]
pub struct Cancel {
    /// The task's id.
    #[arg(value_name = "ID")]
    pub id: Uuid,
    /// Why, kept in the task's error and history.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

impl Cancel {
    pub async fn run(self, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
        let client = crate::bus::client(global).await?;
        let Some(outcome) = answered(client.cancel(self.id, self.reason).await)? else {
            return Ok(ExitCode::FAILURE);
        };
        match outcome {
            CancelOutcome {
                task_id,
                cancelled: true,
                ..
            } => println!("{task_id} cancelled"),
            CancelOutcome { task_id, state, .. } => {
                println!("{task_id} had already ended: {state}")
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
