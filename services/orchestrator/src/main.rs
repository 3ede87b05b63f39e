//! The `taskyard-orchestrator` process: configuration and telemetry come from the
//! runtime; everything else is the library.

fn main() -> std::process::ExitCode {
    taskyard_runtime::service_main("orchestrator", taskyard_orchestrator::run)
}
