//! The `exec` driver: runs a command, captures its output, kills its whole
//! process group when it must stop.
//!
//! The command is the leader of a new process group, so that whatever it
//! starts (a shell's background jobs, a build's compilers) can be killed with
//! it. When the command exits, stops or times out, the group is SIGKILLed: an
//! attempt leaves nothing running behind it, and nothing holds the output
//! pipes open.
//!
//! When the worker has cgroup v2 memory limits ([`crate::cgroup`]), the
//! command is moved into a cgroup of its own right after it starts, limited to
//! the task's memory reservation; an attempt the OOM killer ends fails with
//! `killed: out of memory (limit N MiB)`.

use super::{DriverEnv, End, Interrupt, Limits, Ran};
use crate::cgroup::AttemptCgroup;
use crate::logs::LineWriter;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use taskyard_wire::logs::LogStream;
use taskyard_wire::task::ExecSpec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// How long output is still read after the command's group was killed. Only a
/// process that left the group (`setsid`) can keep a pipe open that long.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);
/// Read size of the output pipes.
const READ_CHUNK: usize = 8 * 1024;

/// Runs `spec`. `scratch` is the attempt's own directory, created and removed
/// here, used when the spec names no working directory.
pub async fn run(spec: ExecSpec, scratch: &Path, env: &DriverEnv, limits: &Limits) -> Ran {
    // The scratch dir's name is the attempt's (`<task>-<attempt>`); its
    // cgroup is named alike.
    let attempt = scratch
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "attempt".to_owned());
    let Some(dir) = &spec.working_dir else {
        if let Err(err) = fresh_dir(scratch).await {
            return Ran::failed(format!(
                "cannot create the working directory {}: {err}",
                scratch.display()
            ));
        }
        let ran = run_in(&spec, scratch, &attempt, env, limits).await;
        if let Err(err) = tokio::fs::remove_dir_all(scratch).await {
            tracing::warn!(dir = %scratch.display(), error = %err, "cannot remove the attempt's directory");
        }
        return ran;
    };
    let dir = Path::new(dir);
    // Spawning in a missing directory fails with ENOENT, which would read as
    // if the command were missing.
    match tokio::fs::metadata(dir).await {
        Ok(meta) if meta.is_dir() => run_in(&spec, dir, &attempt, env, limits).await,
        Ok(_) => Ran::failed(format!(
            "working directory {} is not a directory",
            dir.display()
        )),
        Err(err) => Ran::failed(format!("working directory {}: {err}", dir.display())),
    }
}

/// An empty directory at `dir`, whatever a crashed earlier run left there.
async fn fresh_dir(dir: &Path) -> std::io::Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    tokio::fs::create_dir_all(dir).await
}

async fn run_in(
    spec: &ExecSpec,
    dir: &Path,
    attempt: &str,
    env: &DriverEnv,
    limits: &Limits,
) -> Ran {
    let clock = limits.start();
    let mut command = Command::new(&spec.command);
    command
        .args(&spec.args)
        .envs(&spec.env)
        .current_dir(dir)
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // A backstop should this future be dropped (worker aborting): the
        // leader at least dies with it.
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => return Ran::failed(format!("cannot start `{}`: {err}", spec.command)),
    };
    // As early as can be without unsafe code (a pre-exec hook): anything the
    // command forks from now on is born in the cgroup. A fork in the few
    // microseconds before this escapes the memory limit, not the group kill.
    let cgroup = confine(child.id(), attempt, env, limits);
    // With process_group(0) the group id is the leader's pid.
    let group = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .map(Pid::from_raw);

    if let (Some(input), Some(mut stdin)) = (spec.stdin.clone(), child.stdin.take()) {
        // Written on the side: a command that reads its input only after
        // writing output must not deadlock against us. Dropping the handle
        // closes the pipe, which is the command's end of input.
        tokio::spawn(async move {
            if let Err(err) = stdin.write_all(input.as_bytes()).await {
                tracing::debug!(error = %err, "the command did not read all of its stdin");
            }
        });
    }
    // Task logs: lines as they come, apart from (and not bounding) the
    // captured output of the result.
    let log = match (&env.logs, limits.attempt) {
        (Some(publisher), Some((task_id, attempt))) => publisher.start(task_id, attempt),
        _ => None,
    };
    let stdout = Capture::start(
        child.stdout.take(),
        env.max_output_bytes,
        log.as_ref().map(|log| log.writer(LogStream::Stdout)),
    );
    let stderr = Capture::start(
        child.stderr.take(),
        env.max_output_bytes,
        log.as_ref().map(|log| log.writer(LogStream::Stderr)),
    );

    let interrupted = tokio::select! {
        status = child.wait() => Err(status),
        interrupt = clock.interrupted() => Ok(interrupt),
    };
    // Whatever ended the attempt, nothing it started may outlive it. After a
    // normal exit the leader is reaped, but its pid stays reserved as long as
    // anything of its group lives, so this cannot hit an unrelated process.
    if let Some(group) = group {
        kill_group(group);
    }
    let (status, interrupt) = match interrupted {
        Err(status) => (status, None),
        Ok(interrupt) => (child.wait().await, Some(interrupt)),
    };
    let mut oom_limit = None;
    if let Some(cgroup) = cgroup {
        match cgroup.oom_kills() {
            Ok(0) => {}
            Ok(_) => oom_limit = Some(cgroup.memory_mb()),
            Err(err) => tracing::warn!(error = %err, "cannot read the attempt's memory events"),
        }
        // Before the output is collected: this also kills what left the
        // process group but not the cgroup, and so frees the pipes.
        cgroup.remove().await;
    }
    let (stdout, stderr) = tokio::join!(stdout.finish(), stderr.finish());
    // Before the report: the log is stored ahead of the final state.
    if let Some(log) = log {
        log.finish().await;
    }
    let status = match status {
        Ok(status) => status,
        Err(err) => {
            return Ran {
                end: End::Failed(format!("cannot wait for `{}`: {err}", spec.command)),
                result: output_json(None, &stdout, &stderr),
            };
        }
    };
    let end = match (interrupt, oom_limit) {
        (Some(Interrupt::TimedOut(timeout)), _) => End::TimedOut(timeout),
        (Some(Interrupt::Stopped), _) => End::Stopped,
        // The OOM killer's SIGKILL, or a parent that failed because its child
        // was killed: either way memory is what the user must fix. A command
        // that survived the loss of a child and succeeded stays a success.
        (None, Some(limit_mb)) if !status.success() => {
            End::Failed(format!("killed: out of memory (limit {limit_mb} MiB)"))
        }
        (None, _) => exit_end(status),
    };
    Ran {
        end,
        result: output_json(Some(status), &stdout, &stderr),
    }
}

/// Puts the command into a cgroup limited to the task's memory, when the
/// worker has cgroups and the task reserved memory. A failure costs the
/// limit, not the attempt: refusing to run would turn a host problem into a
/// failure of every task sent here.
fn confine(
    pid: Option<u32>,
    attempt: &str,
    env: &DriverEnv,
    limits: &Limits,
) -> Option<AttemptCgroup> {
    let (Some(cgroups), Some(memory_mb), Some(pid)) = (&env.cgroups, limits.memory_mb, pid) else {
        return None;
    };
    let cgroup = match cgroups.create(attempt, memory_mb) {
        Ok(cgroup) => cgroup,
        Err(err) => {
            tracing::warn!(error = %err, "cannot create the attempt's cgroup; it runs without a memory limit");
            return None;
        }
    };
    if let Err(err) = cgroup.add(pid) {
        // ESRCH: the command is already gone, nothing to limit.
        tracing::debug!(error = %err, "cannot move the command into its cgroup");
    }
    Some(cgroup)
}

fn exit_end(status: ExitStatus) -> End {
    match (status.code(), status.signal()) {
        (Some(0), _) => End::Succeeded,
        (Some(code), _) => End::Failed(format!("exit code {code}")),
        (None, Some(signal)) => End::Failed(format!("killed by signal {signal}")),
        (None, None) => End::Failed(format!("ended with {status}")),
    }
}

fn kill_group(group: Pid) {
    match killpg(group, Signal::SIGKILL) {
        // Nothing of the group is left: the usual case after a clean exit.
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(err) => {
            tracing::warn!(group = group.as_raw(), error = %err, "cannot kill the process group")
        }
    }
}

fn output_json(status: Option<ExitStatus>, stdout: &Captured, stderr: &Captured) -> Value {
    json!({
        "exit_code": status.and_then(|s| s.code()),
        "signal": status.and_then(|s| s.signal()),
        "stdout": String::from_utf8_lossy(&stdout.bytes),
        "stderr": String::from_utf8_lossy(&stderr.bytes),
        "stdout_truncated": stdout.truncated,
        "stderr_truncated": stderr.truncated,
    })
}

/// The first bytes of one output stream.
#[derive(Debug, Default, Clone)]
struct Captured {
    bytes: Vec<u8>,
    /// More came than was kept.
    truncated: bool,
}

/// One output pipe being read on its own task. The bytes are shared rather
/// than returned, so that what was read survives giving up on the reader.
struct Capture {
    captured: Arc<Mutex<Captured>>,
    reader: Option<JoinHandle<()>>,
}

impl Capture {
    fn start<R>(pipe: Option<R>, max: usize, lines: Option<LineWriter>) -> Capture
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let captured = Arc::new(Mutex::new(Captured::default()));
        let reader = pipe.map(|pipe| {
            tokio::spawn(read_bounded(pipe, max, captured.clone(), lines).in_current_span())
        });
        Capture { captured, reader }
    }

    /// Waits (a bounded time) for the pipe to close, and returns what was kept.
    async fn finish(self) -> Captured {
        if let Some(mut reader) = self.reader
            && tokio::time::timeout(OUTPUT_GRACE, &mut reader)
                .await
                .is_err()
        {
            tracing::warn!("a process outside the task's group keeps its output open; output cut");
            reader.abort();
        }
        let captured = self.captured.lock().unwrap_or_else(PoisonError::into_inner);
        captured.clone()
    }
}

/// Reads `pipe` to its end, keeping the first `max` bytes, and hands every
/// byte to `lines` (task logs). It reads on past the limit so that the
/// command never blocks on a full pipe.
async fn read_bounded<R: AsyncRead + Unpin>(
    mut pipe: R,
    max: usize,
    into: Arc<Mutex<Captured>>,
    mut lines: Option<LineWriter>,
) {
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let n = match pipe.read(&mut chunk).await {
            Ok(0) => {
                if let Some(lines) = lines.take() {
                    lines.close();
                }
                return;
            }
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                tracing::debug!(error = %err, "output pipe failed");
                if let Some(lines) = lines.take() {
                    lines.close();
                }
                return;
            }
        };
        if let Some(lines) = &mut lines {
            lines.write(&chunk[..n]);
        }
        let mut captured = into.lock().unwrap_or_else(PoisonError::into_inner);
        let room = max.saturating_sub(captured.bytes.len());
        let kept = n.min(room);
        captured.bytes.extend_from_slice(&chunk[..kept]);
        if kept < n {
            captured.truncated = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Instant;
    use tempfile::TempDir;

    struct Fixture {
        dir: TempDir,
        env: DriverEnv,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = DriverEnv {
            max_output_bytes: 64 * 1024,
            ..DriverEnv::new(dir.path().join("work")).expect("an HTTP client")
        };
        Fixture { dir, env }
    }

    fn sh(script: &str) -> ExecSpec {
        ExecSpec {
            command: "sh".to_owned(),
            args: vec!["-c".to_owned(), script.to_owned()],
            env: BTreeMap::new(),
            working_dir: None,
            stdin: None,
        }
    }

    impl Fixture {
        async fn run(&self, spec: ExecSpec, limits: &Limits) -> Ran {
            run(spec, &self.env.work_dir.join("task-1"), &self.env, limits).await
        }
    }

    fn text<'a>(ran: &'a Ran, field: &str) -> &'a str {
        ran.result[field].as_str().unwrap_or_default()
    }

    #[tokio::test]
    async fn captures_stdout_and_exit_code_zero() {
        let f = fixture();
        let ran = f
            .run(sh("echo hello; echo oops >&2"), &Limits::default())
            .await;
        assert_eq!(ran.end, End::Succeeded, "{ran:?}");
        assert_eq!(ran.result["exit_code"], 0);
        assert_eq!(ran.result["signal"], Value::Null);
        assert_eq!(text(&ran, "stdout"), "hello\n");
        assert_eq!(text(&ran, "stderr"), "oops\n");
        assert_eq!(ran.result["stdout_truncated"], false);
    }

    #[tokio::test]
    async fn output_lines_stream_as_task_logs_and_the_result_is_unchanged() {
        use crate::logs::{LogPublisher, LogSettings, cut_marker, dropped_marker};
        let mut f = fixture();
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let settings = LogSettings {
            max_lines: 4,
            max_line_bytes: 8,
            flush_interval: Duration::from_millis(50),
            flush_lines: 100,
        };
        f.env.logs = Some(LogPublisher::to_channel(sender, "n1", settings));
        let limits = Limits {
            attempt: Some((uuid::Uuid::from_u128(9), 3)),
            ..Limits::default()
        };
        let script = "echo first; sleep 0.3; echo err >&2; sleep 0.3; \
                      echo a-very-long-line; printf 'x\\ny\\nz'";
        let ran = f.run(sh(script), &limits).await;
        assert_eq!(ran.end, End::Succeeded, "{ran:?}");
        assert_eq!(text(&ran, "stdout"), "first\na-very-long-line\nx\ny\nz");
        assert_eq!(text(&ran, "stderr"), "err\n");
        let mut batches = Vec::new();
        while let Ok(batch) = receiver.try_recv() {
            batches.push(batch);
        }
        assert!(
            batches.len() >= 3,
            "lines go out while it runs: {batches:?}"
        );
        assert!(
            batches
                .iter()
                .all(|b| b.task_id == uuid::Uuid::from_u128(9) && b.attempt == 3)
        );
        let lines: Vec<(u64, LogStream, String)> = batches
            .into_iter()
            .flat_map(|b| b.lines)
            .map(|l| (l.seq, l.stream, l.line))
            .collect();
        assert_eq!(
            lines,
            vec![
                (1, LogStream::Stdout, "first".to_owned()),
                (2, LogStream::Stderr, "err".to_owned()),
                (3, LogStream::Stdout, format!("a-very-l{}", cut_marker(8))),
                (4, LogStream::Stdout, "x".to_owned()),
                (5, LogStream::Stderr, dropped_marker(2, 4)),
            ]
        );
    }

    #[tokio::test]
    async fn a_failing_command_reports_its_exit_code() {
        let f = fixture();
        let ran = f.run(sh("echo partial; exit 3"), &Limits::default()).await;
        assert_eq!(ran.end, End::Failed("exit code 3".to_owned()));
        assert_eq!(ran.result["exit_code"], 3);
        assert_eq!(text(&ran, "stdout"), "partial\n");
    }

    #[tokio::test]
    async fn a_signalled_command_names_the_signal() {
        let f = fixture();
        let ran = f.run(sh("kill -TERM $$"), &Limits::default()).await;
        assert_eq!(ran.end, End::Failed("killed by signal 15".to_owned()));
        assert_eq!(ran.result["signal"], 15);
        assert_eq!(ran.result["exit_code"], Value::Null);
    }

    #[tokio::test]
    async fn output_beyond_the_limit_is_cut_and_flagged() {
        let mut f = fixture();
        f.env.max_output_bytes = 10;
        // 200 KB: more than a pipe buffer, so a reader that stopped at the
        // limit would leave the command blocked forever.
        let ran = f
            .run(
                sh("head -c 200000 /dev/zero | tr '\\0' x; echo short >&2"),
                &Limits {
                    timeout: Some(Duration::from_secs(20)),
                    ..Limits::default()
                },
            )
            .await;
        assert_eq!(ran.end, End::Succeeded, "{ran:?}");
        assert_eq!(text(&ran, "stdout"), "xxxxxxxxxx");
        assert_eq!(ran.result["stdout_truncated"], true);
        assert_eq!(text(&ran, "stderr"), "short\n");
        assert_eq!(ran.result["stderr_truncated"], false);
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let f = fixture();
        let pids = f.dir.path().join("pids");
        let script = format!(
            "echo $$ > {p}.tmp; sleep 30 & echo $! >> {p}.tmp; mv {p}.tmp {p}; sleep 30",
            p = pids.display()
        );
        let limits = Limits {
            timeout: Some(Duration::from_millis(500)),
            ..Limits::default()
        };
        let started = Instant::now();
        let ran = f.run(sh(&script), &limits).await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(ran.end, End::TimedOut(Duration::from_millis(500)));
        assert_eq!(ran.result["signal"], 9);

        let pids = std::fs::read_to_string(&pids).expect("the script wrote its pids");
        let pids: Vec<i32> = pids.lines().filter_map(|l| l.trim().parse().ok()).collect();
        assert_eq!(pids.len(), 2, "{pids:?}");
        for pid in pids {
            assert!(
                !alive(pid),
                "process {pid} of the task survived its timeout"
            );
        }
    }

    /// Alive and not a zombie (an orphan may wait for a PID 1 that never reaps).
    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X"),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn a_stop_kills_the_command() {
        let f = fixture();
        let limits = Limits::default();
        let kill = limits.kill.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            kill.cancel();
        });
        let started = Instant::now();
        let ran = f.run(sh("sleep 30"), &limits).await;
        assert_eq!(ran.end, End::Stopped);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn stdin_is_passed_then_closed() {
        let f = fixture();
        let mut spec = sh("cat; echo done");
        spec.stdin = Some("line one\nline two\n".to_owned());
        let ran = f.run(spec, &Limits::default()).await;
        assert_eq!(ran.end, End::Succeeded, "{ran:?}");
        assert_eq!(text(&ran, "stdout"), "line one\nline two\ndone\n");
    }

    #[tokio::test]
    async fn without_stdin_the_command_reads_nothing() {
        let f = fixture();
        let ran = f.run(sh("cat; echo eof"), &Limits::default()).await;
        assert_eq!(text(&ran, "stdout"), "eof\n");
    }

    #[tokio::test]
    async fn env_and_working_dir_are_applied() {
        let f = fixture();
        let dir = f.dir.path().join("given");
        std::fs::create_dir(&dir).expect("mkdir");
        let mut spec = sh("echo \"$GREETING\"; pwd; test -n \"$PATH\" && echo has-path");
        spec.env
            .insert("GREETING".to_owned(), "hi there".to_owned());
        spec.working_dir = Some(dir.display().to_string());
        let ran = f.run(spec, &Limits::default()).await;
        let expected = format!(
            "hi there\n{}\nhas-path\n",
            dir.canonicalize().expect("dir").display()
        );
        assert_eq!(text(&ran, "stdout"), expected);
    }

    #[tokio::test]
    async fn without_a_working_dir_a_scratch_dir_is_used_and_removed() {
        let f = fixture();
        let scratch = f.env.work_dir.join("task-1");
        let ran = f
            .run(sh("pwd; touch left-behind"), &Limits::default())
            .await;
        assert_eq!(ran.end, End::Succeeded, "{ran:?}");
        assert_eq!(text(&ran, "stdout").trim(), scratch.display().to_string());
        assert!(!scratch.exists(), "the scratch dir is removed afterwards");
    }

    #[tokio::test]
    async fn a_missing_command_is_named() {
        let f = fixture();
        let spec = ExecSpec {
            command: "no-such-command-xyz".to_owned(),
            ..sh("")
        };
        let ran = f.run(spec, &Limits::default()).await;
        let End::Failed(error) = &ran.end else {
            panic!("expected a failure, got {ran:?}");
        };
        assert!(
            error.contains("cannot start `no-such-command-xyz`"),
            "{error}"
        );
        assert!(error.contains("No such file or directory"), "{error}");
    }

    #[tokio::test]
    async fn a_task_over_its_memory_is_killed_and_says_so() {
        use crate::cgroup::{CGROUP_ROOT, Cgroups};
        let node = format!("test-oom-{}", std::process::id());
        let cgroups = match Cgroups::setup(Path::new(CGROUP_ROOT), &node) {
            Ok(cgroups) => Arc::new(cgroups),
            Err(why) => {
                eprintln!("skipped: cgroup v2 memory limits are not available here: {why}");
                return;
            }
        };
        let base = cgroups.base().to_owned();
        let mut f = fixture();
        f.env.cgroups = Some(cgroups);
        let limits = Limits {
            timeout: Some(Duration::from_secs(30)),
            memory_mb: Some(32),
            ..Limits::default()
        };
        let hog = ExecSpec {
            command: "python3".to_owned(),
            args: vec![
                "-c".to_owned(),
                "b = bytearray(200*1024*1024); import time; time.sleep(1)".to_owned(),
            ],
            ..sh("")
        };
        let ran = f.run(hog, &limits).await;
        if let End::Failed(error) = &ran.end
            && error.starts_with("cannot start `python3`")
        {
            eprintln!("skipped: no python3 to allocate with: {error}");
            return;
        }
        assert_eq!(
            ran.end,
            End::Failed("killed: out of memory (limit 32 MiB)".to_owned()),
            "{ran:?}"
        );
        // Within its limit a command runs as usual, and no cgroup is left.
        let ran = f.run(sh("echo fits"), &limits).await;
        assert_eq!(ran.end, End::Succeeded, "{ran:?}");
        let left: Vec<_> = std::fs::read_dir(&base)
            .map(|entries| entries.flatten().filter(|e| e.path().is_dir()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "cgroups left behind: {left:?}");
    }

    #[tokio::test]
    async fn a_missing_working_dir_is_named() {
        let f = fixture();
        let mut spec = sh("true");
        spec.working_dir = Some("/no/such/dir".to_owned());
        let ran = f.run(spec, &Limits::default()).await;
        let End::Failed(error) = &ran.end else {
            panic!("expected a failure, got {ran:?}");
        };
        assert!(error.contains("working directory /no/such/dir"), "{error}");
    }
}
