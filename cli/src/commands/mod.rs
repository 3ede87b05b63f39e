//! One module per subcommand, each a clap `Args` struct with
//! `async fn run(self, &GlobalOptions) -> anyhow::Result<ExitCode>`.

pub mod bench;
pub mod migrate;
pub mod nodes;
pub mod submit;
pub mod task;
pub mod tasks;
pub mod up;
