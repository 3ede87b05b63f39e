//! What the host has, and what it is using, read with sysinfo.

use std::path::{Path, PathBuf};
use std::time::Instant;
use sysinfo::{
    CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, Networks, RefreshKind, System,
};
use taskyard_wire::heartbeat::Usage;

const MIB: u64 = 1024 * 1024;
/// Shortest interval a network rate is measured over, in seconds.
const MIN_RATE_INTERVAL_S: f64 = 0.1;

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

/// Samples the host's CPU, memory, disk and network use. CPU use and network
/// rates are measured between two samples, so the first one reads 0.
#[derive(Debug)]
pub struct UsageProbe {
    system: System,
    disks: Disks,
    networks: Networks,
    /// The directory whose filesystem is reported (the task directories').
    work_dir: PathBuf,
    /// When the network counters were last read (`None`: not yet): sysinfo
    /// counts bytes since the previous refresh, and a heartbeat can come
    /// early (drain), so the rate divides by the real interval.
    networks_at: Option<Instant>,
    /// The last rates computed, bytes per second received and sent.
    net_rates: (u64, u64),
}

impl UsageProbe {
    /// A probe reporting the filesystem that holds `work_dir`.
    pub fn new(work_dir: &Path) -> UsageProbe {
        UsageProbe {
            system: System::new_with_specifics(
                RefreshKind::nothing()
                    .with_cpu(CpuRefreshKind::nothing().with_cpu_usage())
                    .with_memory(MemoryRefreshKind::nothing().with_ram()),
            ),
            disks: Disks::new_with_refreshed_list_specifics(
                DiskRefreshKind::nothing().with_storage(),
            ),
            networks: Networks::new_with_refreshed_list(),
            work_dir: work_dir.to_owned(),
            networks_at: None,
            net_rates: (0, 0),
        }
    }

    /// Whole-host use since the previous sample.
    pub fn sample(&mut self) -> Usage {
        self.system.refresh_cpu_usage();
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let cpu_percent = self.system.global_cpu_usage();
        let (disk_total_mb, disk_free_mb) = self.disk_space();
        let (net_rx_bytes_per_s, net_tx_bytes_per_s) = self.network_rates();
        Usage {
            cpu_percent: if cpu_percent.is_finite() {
                cpu_percent.clamp(0.0, 100.0)
            } else {
                0.0
            },
            memory_used_mb: self.system.used_memory() / MIB,
            disk_total_mb,
            disk_free_mb,
            net_rx_bytes_per_s,
            net_tx_bytes_per_s,
        }
    }

    /// Size and free space of the filesystem holding the work dir, in MiB:
    /// the mount whose point is the longest prefix of the work dir. Zeros
    /// when sysinfo lists none (some container roots).
    fn disk_space(&mut self) -> (u64, u64) {
        // Mounts come and go (a volume attached later), so the list is
        // refreshed too; it is one read of /proc/mounts.
        self.disks
            .refresh_specifics(true, DiskRefreshKind::nothing().with_storage());
        let dir = existing_ancestor(&self.work_dir);
        self.disks
            .list()
            .iter()
            .filter(|disk| dir.starts_with(disk.mount_point()))
            .max_by_key(|disk| disk.mount_point().as_os_str().len())
            .map_or((0, 0), |disk| {
                (disk.total_space() / MIB, disk.available_space() / MIB)
            })
    }

    /// Bytes per second received and sent since the previous sample, over
    /// every interface but loopback.
    fn network_rates(&mut self) -> (u64, u64) {
        let now = Instant::now();
        let Some(since) = self.networks_at else {
            // The counters started at construction; a rate over the few
            // microseconds since would be noise, possibly a huge one.
            self.networks.refresh(true);
            self.networks_at = Some(now);
            return self.net_rates;
        };
        let seconds = now.duration_since(since).as_secs_f64();
        if seconds < MIN_RATE_INTERVAL_S {
            // An extra heartbeat right after a regular one (drain): the last
            // rates are a better answer than a rate over a few milliseconds.
            return self.net_rates;
        }
        self.networks.refresh(true);
        self.networks_at = Some(now);
        let (mut rx, mut tx) = (0u64, 0u64);
        for (name, data) in self.networks.list() {
            let loopback = name == "lo"
                || (!data.ip_networks().is_empty()
                    && data.ip_networks().iter().all(|net| net.addr.is_loopback()));
            if !loopback {
                rx = rx.saturating_add(data.received());
                tx = tx.saturating_add(data.transmitted());
            }
        }
        // Float to integer casts saturate; a rate needs no more precision.
        self.net_rates = ((rx as f64 / seconds) as u64, (tx as f64 / seconds) as u64);
        self.net_rates
    }
}

/// The work dir, or its nearest ancestor that exists (it is created with the
/// first `exec` attempt), made absolute so that mount points compare.
fn existing_ancestor(dir: &Path) -> PathBuf {
    let mut candidate = dir;
    loop {
        if let Ok(found) = candidate.canonicalize() {
            return found;
        }
        match candidate.parent() {
            Some(parent) => candidate = parent,
            None => return PathBuf::from("/"),
        }
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
        let dir = tempfile::tempdir().expect("tempdir");
        let mut probe = UsageProbe::new(&dir.path().join("not-yet-created"));
        let usage = probe.sample();
        assert!((0.0..=100.0).contains(&usage.cpu_percent), "{usage:?}");
        assert!(usage.memory_used_mb > 0, "{usage:?}");
        assert!(usage.disk_total_mb > 0, "{usage:?}");
        assert!(usage.disk_free_mb <= usage.disk_total_mb, "{usage:?}");
        // A second sample measures rates over a real interval.
        let again = probe.sample();
        assert!(again.disk_total_mb > 0, "{again:?}");
    }
}
