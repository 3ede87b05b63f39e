//! Memory limits for `exec` attempts, with cgroup v2.
//!
//! A task reserves `resources.memory_mb` on its node, and the scheduler packs
//! nodes by those reservations; a task that uses more starves its neighbours
//! or gets an innocent process OOM-killed. So each `exec` attempt runs in a
//! cgroup of its own, `<root>/taskyard-worker-<node>/<task>-<attempt>`, whose
//! `memory.max` is the reservation, and an overrun kills that attempt only.
//!
//! Set-up ([`Cgroups::setup`]) checks once, at start, that it can work: cgroup2
//! mounted at the root, the memory controller available and enabled for our
//! subtree, a child cgroup that gets a `memory.max`. Anything missing is
//! reported as one [`Unavailable`] reason, and the worker runs without limits.
//!
//! The files are kernel pseudo-files: reading and writing them never blocks on
//! a disk, so plain `std::fs` is used even on async tasks.

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where cgroup2 is mounted on a unified (cgroup v2 only) host.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// How long removing an attempt's cgroup is retried: the kernel refuses
/// (`EBUSY`) until the last killed process is gone, which takes a moment.
const REMOVE_FOR: Duration = Duration::from_secs(2);
const REMOVE_EVERY: Duration = Duration::from_millis(20);
const MIB: u64 = 1024 * 1024;

/// Why memory limits cannot be used on this host.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(String);

/// This worker's cgroup, the parent of one cgroup per running `exec` attempt.
#[derive(Debug)]
pub struct Cgroups {
    /// `<root>/taskyard-worker-<node>`: holds no process itself, so that the
    /// memory controller can be enabled for its children.
    base: PathBuf,
}

impl Cgroups {
    /// Prepares `<root>/taskyard-worker-<node>` for per-attempt cgroups, or says
    /// why it cannot.
    pub fn setup(root: &Path, node: &str) -> Result<Cgroups, Unavailable> {
        check_cgroup2(root)?;
        Cgroups::setup_in(root, node)
    }

    /// [`Cgroups::setup`] without the file-system type check.
    fn setup_in(root: &Path, node: &str) -> Result<Cgroups, Unavailable> {
        let available = read(&root.join("cgroup.controllers")).map_err(|err| {
            Unavailable(format!(
                "cannot read {}/cgroup.controllers: {err}",
                root.display()
            ))
        })?;
        if !has_controller(&available, "memory") {
            return Err(Unavailable(format!(
                "the memory controller is not available in {} (it offers: {})",
                root.display(),
                if available.trim().is_empty() {
                    "none"
                } else {
                    available.trim()
                }
            )));
        }
        enable_memory(root)?;
        let base = root.join(format!("taskyard-worker-{node}"));
        match std::fs::create_dir(&base) {
            Ok(()) => {}
            // Left by an earlier run of this node, or in use by a twin with
            // the same node id: empty leftovers go, populated ones stay.
            Err(err) if err.kind() == ErrorKind::AlreadyExists => remove_empty_children(&base),
            Err(err) => {
                return Err(Unavailable(format!(
                    "cannot create {}: {err}",
                    base.display()
                )));
            }
        }
        let cgroups = Cgroups { base };
        enable_memory(&cgroups.base)?;
        // The proof: a child cgroup that takes a memory limit.
        let probe = cgroups.base.join(format!("probe-{}", std::process::id()));
        let probed =
            std::fs::create_dir(&probe).and_then(|()| write(&probe.join("memory.max"), "max"));
        let _ = std::fs::remove_dir(&probe);
        if let Err(err) = probed {
            return Err(Unavailable(format!(
                "cannot set memory.max in a child cgroup of {}: {err}",
                cgroups.base.display()
            )));
        }
        Ok(cgroups)
    }

    /// The cgroup of one attempt, limited to `memory_mb` MiB (0: no limit).
    pub fn create(&self, name: &str, memory_mb: u32) -> io::Result<AttemptCgroup> {
        let dir = self.base.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {
                // A redelivered attempt whose first run crashed the worker.
                kill_all(&dir);
                std::fs::remove_dir(&dir)?;
                std::fs::create_dir(&dir)?;
            }
            Err(err) => return Err(err),
        }
        let cgroup = AttemptCgroup { dir, memory_mb };
        if let Err(err) = cgroup.limit() {
            let _ = std::fs::remove_dir(&cgroup.dir);
            return Err(err);
        }
        Ok(cgroup)
    }

    pub fn base(&self) -> &Path {
        &self.base
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        // Empty by now unless an attempt outlived the worker's drain; then the
        // next start cleans up.
        let _ = std::fs::remove_dir(&self.base);
    }
}

/// The cgroup one `exec` attempt runs in.
#[derive(Debug)]
pub struct AttemptCgroup {
    dir: PathBuf,
    memory_mb: u32,
}

impl AttemptCgroup {
    fn limit(&self) -> io::Result<()> {
        if self.memory_mb == 0 {
            return Ok(());
        }
        write(
            &self.dir.join("memory.max"),
            &(u64::from(self.memory_mb) * MIB).to_string(),
        )?;
        // The reservation is of memory, not of memory plus swap: swapping would
        // only hide the overrun while slowing the whole node.
        optional(write(&self.dir.join("memory.swap.max"), "0"))?;
        // An attempt is one unit: when the kernel has to kill in it, it kills
        // all of it rather than leave a half-dead process tree running.
        optional(write(&self.dir.join("memory.oom.group"), "1"))
    }

    /// The limit, in MiB (0: none).
    pub fn memory_mb(&self) -> u32 {
        self.memory_mb
    }

    /// Moves process `pid` into the cgroup; what it starts from then on is
    /// born in it.
    pub fn add(&self, pid: u32) -> io::Result<()> {
        write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    /// How many processes of the cgroup the OOM killer killed.
    pub fn oom_kills(&self) -> io::Result<u64> {
        read(&self.dir.join("memory.events")).map(|events| event_count(&events, "oom_kill"))
    }

    /// Kills whatever is left in the cgroup (processes that left the attempt's
    /// process group included) and removes it.
    pub async fn remove(self) {
        kill_all(&self.dir);
        let deadline = tokio::time::Instant::now() + REMOVE_FOR;
        loop {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(err) if err.kind() == ErrorKind::NotFound => return,
                Err(err) if tokio::time::Instant::now() >= deadline => {
                    tracing::warn!(cgroup = %self.dir.display(), error = %err, "cannot remove the attempt's cgroup");
                    return;
                }
                Err(_) => tokio::time::sleep(REMOVE_EVERY).await,
            }
        }
    }
}

/// Whether `root` is a cgroup2 mount, with the reason when it is not.
fn check_cgroup2(root: &Path) -> Result<(), Unavailable> {
    use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};
    let fs = statfs(root)
        .map_err(|err| Unavailable(format!("cannot stat {}: {err}", root.display())))?;
    if fs.filesystem_type() == CGROUP2_SUPER_MAGIC {
        Ok(())
    } else {
        Err(Unavailable(format!(
            "{} is not a cgroup2 mount (the host uses cgroup v1 or a hybrid hierarchy)",
            root.display()
        )))
    }
}

/// Enables the memory controller for the children of `dir`, if it is not yet.
fn enable_memory(dir: &Path) -> Result<(), Unavailable> {
    let control = dir.join("cgroup.subtree_control");
    let enabled = read(&control)
        .map_err(|err| Unavailable(format!("cannot read {}: {err}", control.display())))?;
    if has_controller(&enabled, "memory") {
        return Ok(());
    }
    write(&control, "+memory").map_err(|err| {
        // The kernel's "no internal processes" rule: a cgroup that holds
        // processes cannot hand controllers to its children.
        let hint = if err.raw_os_error() == Some(nix::errno::Errno::EBUSY as i32) {
            " (processes live in that cgroup; give the worker a delegated cgroup subtree)"
        } else {
            ""
        };
        Unavailable(format!(
            "cannot enable the memory controller in {}: {err}{hint}",
            control.display()
        ))
    })
}

/// Removes the empty cgroups under `base` that an earlier run left. The
/// kernel refuses to remove a populated one, which is what we want: it may
/// belong to another worker with this node id. A leftover attempt that still
/// runs is killed when its attempt is redelivered here ([`Cgroups::create`]).
fn remove_empty_children(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir()
            && let Err(err) = std::fs::remove_dir(&path)
        {
            tracing::info!(cgroup = %path.display(), error = %err, "keeping a cgroup an earlier run left");
        }
    }
}

/// `cgroup.kill` (Linux 5.14+) SIGKILLs every process in the cgroup. Older
/// kernels lack it; the executor's process-group kill still applies there.
fn kill_all(dir: &Path) {
    if let Err(err) = write(&dir.join("cgroup.kill"), "1")
        && err.kind() != ErrorKind::NotFound
    {
        tracing::debug!(cgroup = %dir.display(), error = %err, "cannot kill through cgroup.kill");
    }
}

/// Whether a space-separated controller list names `name`.
fn has_controller(list: &str, name: &str) -> bool {
    list.split_whitespace().any(|c| c == name)
}

/// The count of `key` in a flat-keyed file such as `memory.events`
/// (`oom_kill 1` per line); 0 when absent.
fn event_count(events: &str, key: &str) -> u64 {
    events
        .lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(name, _)| *name == key)
        .and_then(|(_, count)| count.trim().parse().ok())
        .unwrap_or(0)
}

/// A missing optional interface file (no swap accounting, an old kernel) is
/// not an error.
fn optional(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn read(path: &Path) -> io::Result<String> {
    std::fs::read_to_string(path)
}

/// Writes into an existing interface file: cgroupfs files cannot be created,
/// so a missing one is `NotFound` rather than a new regular file.
fn write(path: &Path, value: &str) -> io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.write_all(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_events_are_read() {
        let events = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(event_count(events, "oom_kill"), 1);
        assert_eq!(event_count(events, "oom"), 1);
        assert_eq!(event_count(events, "max"), 12);
        assert_eq!(event_count("", "oom_kill"), 0);
        assert!(has_controller("cpuset cpu io memory pids", "memory"));
        assert!(!has_controller("cpuset cpu io memory_x", "memory"));
    }

    #[test]
    fn a_tree_without_the_memory_controller_is_refused_with_the_reason() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::write(root.path().join("cgroup.controllers"), "cpu io pids\n").expect("write");
        let err = Cgroups::setup_in(root.path(), "n1").expect_err("no memory controller");
        assert!(
            err.to_string()
                .contains("the memory controller is not available"),
            "{err}"
        );
        assert!(err.to_string().contains("cpu io pids"), "{err}");
    }

    #[test]
    fn a_tree_that_gives_children_no_memory_max_is_refused() {
        // A plain directory looks like a cgroup tree, but its children get no
        // interface files: the probe must notice.
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::write(root.path().join("cgroup.controllers"), "memory\n").expect("write");
        std::fs::write(root.path().join("cgroup.subtree_control"), "memory\n").expect("write");
        let err = Cgroups::setup_in(root.path(), "n1").expect_err("no cgroupfs");
        let text = err.to_string();
        assert!(text.contains("taskyard-worker-n1"), "{text}");
    }

    #[test]
    fn a_non_cgroup2_root_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Cgroups::setup(dir.path(), "n1").expect_err("a tmp dir is no cgroup2");
        assert!(err.to_string().contains("is not a cgroup2 mount"), "{err}");
    }
}
