//! `taskyard cancel ID [--reason TEXT]`: asks the pool manager (over NATS)
//! to cancel a task. A waiting task is cancelled at once; a running one is
//! killed on its node.

use crate::GlobalOptions;
use clap::Args;
use std::process::ExitCode;
use taskyard_api::requests;
use taskyard_wire::control::CancelReply;
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
        let client = crate::bus::connect(&global.nats_url).await?;
        match requests::cancel(&client, self.id, self.reason, requests::REQUEST_TIMEOUT).await? {
            CancelReply::Done {
                task_id,
                cancelled: true,
                ..
            } => {
                println!("{task_id} cancelled");
                Ok(ExitCode::SUCCESS)
            }
            CancelReply::Done { task_id, state, .. } => {
                println!("{task_id} had already ended: {state}");
                Ok(ExitCode::SUCCESS)
            }
            CancelReply::Refused { error } => {
                crate::commands::print_refusal(&error);
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
