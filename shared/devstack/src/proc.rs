//! Process plumbing shared by the servers: log files, log tails, signals, reaping.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::error::DevstackError;

/// How many log lines errors quote.
pub(crate) const TAIL_LINES: usize = 40;

/// A log file opened for appending, remembering where this run's output starts
/// so that error messages quote this run and not an older one.
pub(crate) struct LogFile {
    pub(crate) path: PathBuf,
    file: File,
    start: u64,
}

impl LogFile {
    /// Opens (creating) `path` for appending and writes a header line.
    pub(crate) fn open(path: PathBuf, header: &str) -> Result<Self, DevstackError> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(DevstackError::io(format!("opening log {}", path.display())))?;
        let start = file
            .seek(SeekFrom::End(0))
            .map_err(DevstackError::io(format!("seeking log {}", path.display())))?;
        writeln!(file, "=== taskyard-devstack: {header} ===")
            .map_err(DevstackError::io(format!("writing log {}", path.display())))?;
        Ok(Self { path, file, start })
    }

    /// A handle for a child's stdout or stderr.
    pub(crate) fn stdio(&self) -> Result<Stdio, DevstackError> {
        let file = self.file.try_clone().map_err(DevstackError::io(format!(
            "duplicating log handle {}",
            self.path.display()
        )))?;
        Ok(Stdio::from(file))
    }

    /// The last lines written since this log was opened.
    pub(crate) fn tail(&self) -> String {
        tail_from(&self.path, self.start, TAIL_LINES)
    }
}

/// The last `lines` lines of `path` after byte `start`; a note instead when unreadable,
/// since this only decorates another error.
pub(crate) fn tail_from(path: &Path, start: u64, lines: usize) -> String {
    let mut bytes = Vec::new();
    let read = File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(start))?;
        f.read_to_end(&mut bytes)
    });
    if let Err(e) = read {
        return format!("(could not read {}: {e})", path.display());
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether a process with this pid exists (possibly owned by another user).
pub(crate) fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

/// Signals a child that we have not reaped yet, so its pid cannot have been reused.
pub(crate) fn signal_child(child: &mut Child, signal: Signal) {
    if matches!(child.try_wait(), Ok(None)) {
        let pid = pid_of(child);
        if let Err(e) = kill(pid, signal) {
            tracing::debug!(%pid, ?signal, error = %e, "signal failed");
        }
    }
}

/// SIGKILLs the child's whole process group, taking server backends down with it.
pub(crate) fn kill_group(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let pid = pid_of(child);
        if let Err(e) = killpg(pid, Signal::SIGKILL) {
            tracing::debug!(%pid, error = %e, "killpg failed; killing the leader only");
            signal_child(child, Signal::SIGKILL);
        }
    }
}

fn pid_of(child: &Child) -> Pid {
    // Pids fit in i32 on every Unix; the cast only undoes std's choice of u32.
    Pid::from_raw(child.id() as i32)
}

/// Waits for the child to exit, blocking the thread; for use in `Drop`.
pub(crate) fn wait_blocking(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            // ECHILD means someone else reaped it; either way there is nothing left to wait for.
            Ok(None) | Err(_) => return None,
        }
    }
}

/// Waits for the child to exit without blocking the async runtime.
pub(crate) async fn wait_async(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(None) | Err(_) => return None,
        }
    }
}

/// Sends `signal`, waits up to `grace`, then SIGKILLs the process group and reaps.
pub(crate) fn shutdown_blocking(child: &mut Child, signal: Signal, grace: Duration) {
    signal_child(child, signal);
    if wait_blocking(child, grace).is_none() {
        kill_group(child);
        wait_blocking(child, Duration::from_secs(5));
    }
}

/// Makes `path` absolute without requiring it to exist.
pub(crate) fn absolute(path: &Path) -> Result<PathBuf, DevstackError> {
    std::path::absolute(path).map_err(DevstackError::io(format!("resolving {}", path.display())))
}

/// Creates `path` and its parents.
pub(crate) fn create_dir(path: &Path) -> Result<(), DevstackError> {
    std::fs::create_dir_all(path).map_err(DevstackError::io(format!("creating {}", path.display())))
}

/// Whether a log tail shows that the port was taken, which is worth a retry on another port.
pub(crate) fn port_conflict(tail: &str) -> bool {
    tail.contains("address already in use") || tail.contains("Address already in use")
}

/// Writes `bytes` to a new `path` (replacing it) with mode 0600 from the
/// start, so the key is never readable by others, not even for a moment.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DevstackError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(DevstackError::Io {
                context: format!("removing {}", path.display()),
                source,
            });
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(DevstackError::io(format!("creating {}", path.display())))?;
    file.write_all(bytes)
        .map_err(DevstackError::io(format!("writing {}", path.display())))
}
