//! The `taskyard-resource-manager` process: configuration and telemetry come from the
//! runtime; everything else is the library.

fn main() -> std::process::ExitCode {
    taskyard_runtime::service_main("resource-manager", taskyard_resource_manager::run)
}
