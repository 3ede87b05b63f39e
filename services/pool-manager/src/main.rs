//! The `taskyard-pool-manager` process: configuration and telemetry come from the
//! runtime; everything else is the library.

fn main() -> std::process::ExitCode {
    taskyard_runtime::service_main("pool-manager", taskyard_pool_manager::run)
}
