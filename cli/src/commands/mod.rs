//! One module per subcommand, each a clap `Args` struct with
//! `async fn run(self, &GlobalOptions) -> anyhow::Result<ExitCode>`.

pub mod bench;
pub mod cancel;
pub mod creds;
pub mod logs;
pub mod migrate;
pub mod node;
pub mod nodes;
pub mod pool;
pub mod pools;
pub mod services;
pub mod simulate;
pub mod submit;
pub mod task;
pub mod tasks;
pub mod token;
pub mod up;
pub mod workflow;

/// What a service answered: `Some` of it, or `None` once its refusal is
/// printed (the command then exits 1); a service that cannot be reached is
/// an error.
pub fn answered<T>(
    result: Result<T, taskyard_client::ClientError>,
) -> Result<Option<T>, taskyard_client::ClientError> {
    match result {
        Ok(answer) => Ok(Some(answer)),
        Err(taskyard_client::ClientError::Refused(error)) => {
            print_refusal(&error);
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Prints a service's refusal as `error: field: message` (or without the
/// field when it names none), as every command that asks a service does.
pub fn print_refusal(error: &taskyard_wire::Rejection) {
    if error.field.is_empty() {
        eprintln!("error: {}", error.message);
    } else {
        eprintln!("error: {}: {}", error.field, error.message);
    }
}
