//! `taskyard node drain|cordon|uncordon|remove ID`: asks the resource
//! manager (over NATS) to change one node.

use crate::GlobalOptions;
use crate::commands::answered;
use crate::display::Table;
use clap::{Args, Subcommand};
use std::process::ExitCode;
use taskyard_client::NodeOp;

#[derive(Debug, Args)]
pub struct Node {
    #[command(subcommand)]
    pub action: NodeAction,
}

/// What to do with the node.
#[derive(Debug, Subcommand)]
pub enum NodeAction {
    /// Place no new work there, and ask its worker to finish and leave.
    Drain(NodeId),
    /// Place no new work there; running tasks go on.
    Cordon(NodeId),
    /// Place work there again.
    Uncordon(NodeId),
    /// Forget the node (refused while it is alive and not drained).
    Remove(NodeId),
}

#[derive(Debug, Args)]
pub struct NodeId {
    /// The node's id (as `taskyard nodes` lists it).
    #[arg(value_name = "ID")]
    pub id: String,
}

impl NodeAction {
    /// The operation and the node it is about.
    pub fn op(&self) -> (NodeOp, &str) {
        match self {
            NodeAction::Drain(node) => (NodeOp::Drain, &node.id),
            NodeAction::Cordon(node) => (NodeOp::Cordon, &node.id),
            NodeAction::Uncordon(node) => (NodeOp::Uncordon, &node.id),
            NodeAction::Remove(node) => (NodeOp::Remove, &node.id),
        }
    }
}

impl Node {
    pub async fn run(self, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
        let (op, id) = self.action.op();
        let client = crate::bus::client(global).await?;
        let Some(node) = answered(client.node(op, id).await)? else {
            return Ok(ExitCode::FAILURE);
        };
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
        let mut table = Table::new(&["id", "health", "cordoned", "draining", "removed"]);
        table.row(vec![
            node.node_id,
            node.health,
            yes_no(node.cordoned),
            yes_no(node.draining),
            yes_no(node.removed),
        ]);
        print!("{}", table.render());
        Ok(ExitCode::SUCCESS)
    }
}
