//! The worker process: see the `taskyard_worker` library.

use std::process::ExitCode;

fn main() -> ExitCode {
    taskyard_runtime::service_main("worker", taskyard_worker::run)
}
