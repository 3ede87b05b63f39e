use std::process::ExitCode;

fn main() -> ExitCode {
    taskyard_runtime::service_main("api", taskyard_api::run)
}
