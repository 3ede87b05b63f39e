//! Service binaries run as child processes of a test.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A spawned service. Cheap to clone; all clones refer to the same process.
///
/// The [`TestStack`](crate::TestStack) that spawned it kills it when dropped;
/// the process is also killed if the last reference goes away first.
#[derive(Clone, Debug)]
pub struct ServiceHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    pid: u32,
    log_path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Spawned with `kill_on_drop`, so it cannot outlive the last handle.
    child: tokio::process::Child,
    status: Option<ExitStatus>,
}

impl State {
    /// Reaps the child if it has exited. Signals are only sent while this
    /// returns `None` under the lock, so the pid cannot have been reused.
    fn poll(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.status = Some(status);
        }
        self.status
    }
}

impl ServiceHandle {
    pub(crate) fn new(name: String, log_path: PathBuf, child: tokio::process::Child) -> Self {
        let pid = child.id().unwrap_or(0);
        Self {
            inner: Arc::new(Inner {
                name,
                pid,
                log_path,
                state: Mutex::new(State {
                    child,
                    status: None,
                }),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State inconsistent.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The name it was spawned under (its log is `<name>.log`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// The log file that receives its stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.inner.log_path
    }

    /// Sends `signal` (SIGTERM, SIGKILL, SIGSTOP, SIGCONT, ...).
    ///
    /// Fails if the process has already exited.
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let mut state = self.state();
        if let Some(status) = state.poll() {
            anyhow::bail!(
                "cannot send {signal} to {}: it already exited ({status})",
                self.name()
            );
        }
        // Pids fit in i32 on every Unix; the cast only undoes std's choice of u32.
        kill(Pid::from_raw(self.inner.pid as i32), signal).map_err(|e| {
            anyhow::anyhow!(
                "sending {signal} to {} (pid {}): {e}",
                self.name(),
                self.pid()
            )
        })
    }

    /// The exit status if it has exited, without waiting.
    pub fn try_status(&self) -> Option<ExitStatus> {
        self.state().poll()
    }

    /// Whether it is still running (a stopped process counts as running).
    pub fn is_running(&self) -> bool {
        self.try_status().is_none()
    }

    /// Waits up to `timeout` for it to exit; `None` if it is still running.
    pub async fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            // Polling rather than awaiting Child::wait keeps the lock short, so
            // signal() from another task never waits on us.
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited after `grace`; returns the status.
    pub async fn stop(&self, grace: Duration) -> Option<ExitStatus> {
        if self.signal(Signal::SIGTERM).is_err() {
            return self.try_status();
        }
        if let Some(status) = self.wait_exit(grace).await {
            return Some(status);
        }
        self.kill_blocking();
        self.try_status()
    }

    /// Everything it has logged so far (empty if nothing yet).
    pub fn log(&self) -> String {
        match std::fs::read(&self.inner.log_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(_) => String::new(),
        }
    }

    /// SIGKILLs and reaps it, blocking the thread for at most 5 s; for `Drop`.
    pub(crate) fn kill_blocking(&self) {
        let mut state = self.state();
        if state.poll().is_some() {
            return;
        }
        if let Err(e) = state.child.start_kill() {
            eprintln!(
                "taskyard-testkit: killing {} (pid {}): {e}",
                self.name(),
                self.pid()
            );
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while state.poll().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The path of a binary built from this workspace, e.g. `bin_path("taskyard-api")`.
///
/// `$TASKYARD_BIN_DIR` wins; otherwise it is next to the test executable's
/// `deps/` folder, i.e. `target/<profile>/`.
///
/// # Panics
/// If the binary does not exist: tests cannot build it themselves, so the
/// message says to run `cargo build --workspace --bins` first.
pub fn bin_path(name: &str) -> PathBuf {
    let dir = match std::env::var_os("TASKYARD_BIN_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => profile_dir(),
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "binary {} not found; run `cargo build --workspace --bins` first (or set TASKYARD_BIN_DIR)",
        path.display()
    );
    path
}

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("cannot locate the test executable: {e}"));
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Integration and unit tests live in target/<profile>/deps; binaries one level up.
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_dir_is_the_parent_of_deps() {
        let dir = profile_dir();
        assert!(dir.join("deps").is_dir(), "{}", dir.display());
    }

    #[test]
    #[should_panic(expected = "cargo build --workspace --bins")]
    fn missing_binary_panics_with_a_hint() {
        bin_path("taskyard-no-such-binary");
    }
}
