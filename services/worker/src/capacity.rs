//! What the host has, and what it is using, read with sysinfo.

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
use taskyard_wire::heartbeat::Usage;

const MIB: u64 = 1024 * 1024;

/// Facts about the host that settings default to.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// `None` when the OS does not say.
    pub hostname: Option<String>,
    /// Logical CPUs × 1000.
    pub cpu_millis: u32,
    /// Total memory in MiB.
    pub memory_mb: u32,
}

impl HostFacts {
    /// Reads the host.
    pub fn probe() -> HostFacts {
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        );
        // sysinfo finds no CPU in some sandboxes; the standard library asks
        // the scheduler instead, and one CPU is the floor.
        let cpus = match system.cpus().len() {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        HostFacts {
            hostname: System::host_name().filter(|name| !name.trim().is_empty()),
            cpu_millis: u32::try_from(cpus.saturating_mul(1000)).unwrap_or(u32::MAX),
            memory_mb: u32::try_from(system.total_memory() / MIB).unwrap_or(u32::MAX),
        }
    }
}

/// Samples the host's CPU and memory use. CPU use is measured between two
/// samples, so the first one reads 0.
#[derive(Debug)]
pub struct UsageProbe {
    system: System,
}

impl UsageProbe {
    pub fn new() -> UsageProbe {
        UsageProbe {
            system: System::new_with_specifics(
                RefreshKind::nothing()
                    .with_cpu(CpuRefreshKind::nothing().with_cpu_usage())
                    .with_memory(MemoryRefreshKind::nothing().with_ram()),
            ),
        }
    }

    /// Whole-host use since the previous sample.
    pub fn sample(&mut self) -> Usage {
        self.system.refresh_cpu_usage();
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let cpu_percent = self.system.global_cpu_usage();
        Usage {
            cpu_percent: if cpu_percent.is_finite() {
                cpu_percent.clamp(0.0, 100.0)
            } else {
                0.0
            },
            memory_used_mb: self.system.used_memory() / MIB,
        }
    }
}

impl Default for UsageProbe {
    fn default() -> Self {
        UsageProbe::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_has_cpus_and_memory() {
        let facts = HostFacts::probe();
        assert!(facts.cpu_millis >= 1000, "{facts:?}");
        assert!(facts.memory_mb > 0, "{facts:?}");
        let usage = UsageProbe::new().sample();
        assert!((0.0..=100.0).contains(&usage.cpu_percent), "{usage:?}");
        assert!(usage.memory_used_mb > 0, "{usage:?}");
    }
}
