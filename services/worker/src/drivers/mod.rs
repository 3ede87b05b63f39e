//! Drivers: how each kind of task runs on this node.
//!
//! A driver gets a parsed [`Job`] and the [`Limits`] of its attempt, and says how
//! the run ended ([`End`]) and what it produced. It knows nothing about NATS;
//! the executor turns a [`Ran`] into a status report.
//!
//! - [`exec`]: a command in its own process group, output captured, memory
//!   limited by a cgroup when the host allows.
//! - [`http`]: one HTTP request, judged by its status.
//! - [`nats`]: one NATS request to a service in any language, its reply the result.
//! - [`builtin`]: `noop`, `echo`, `sleep`, `fail`, for demos and benchmarks.

pub mod builtin;
pub mod exec;
pub mod http;
pub mod nats;

use crate::cgroup::Cgroups;
use crate::config::DEFAULT_MAX_OUTPUT_BYTES;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use taskyard_wire::task::Job;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What every attempt on this node shares.
#[derive(Debug, Clone)]
pub struct DriverEnv {
    /// Parent of the per-attempt scratch directories of `exec`.
    pub work_dir: PathBuf,
    /// Bytes of stdout, and of stderr, kept per `exec` attempt; also the bound
    /// on an `http` body and a `nats` reply kept in the result.
    pub max_output_bytes: usize,
    /// Per-attempt memory cgroups for `exec`; `None` when the host has none
    /// to give or the operator turned them off.
    pub cgroups: Option<Arc<Cgroups>>,
    /// The worker's own NATS connection, which `nats` tasks send their
    /// requests on (one connection per node, not per task).
    pub nats: Option<async_nats::Client>,
    /// One HTTP client for every `http` attempt, so connections are pooled.
    pub http: reqwest::Client,
    /// Where `exec` attempts stream their output lines (task logs); `None`
    /// when they stream nothing.
    pub logs: Option<crate::logs::LogPublisher>,
}

impl DriverEnv {
    /// An environment with default bounds, no cgroups and no NATS.
    pub fn new(work_dir: PathBuf) -> Result<DriverEnv, reqwest::Error> {
        Ok(DriverEnv {
            work_dir,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            cgroups: None,
            nats: None,
            http: http::client()?,
            logs: None,
        })
    }
}

/// What may cut one attempt short.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// The attempt's own deadline (`timeout_ms` of its dispatch); `None` runs
    /// until done.
    pub timeout: Option<Duration>,
    /// Cancelled when the worker gives up on its running attempts (drain
    /// timeout after SIGTERM).
    pub kill: CancellationToken,
    /// The task's memory reservation in MiB, enforced on `exec` when the
    /// worker has cgroups.
    pub memory_mb: Option<u32>,
    /// The task and attempt being run, which names its log lines; without
    /// it an `exec` attempt streams no task logs.
    pub attempt: Option<(uuid::Uuid, u32)>,
}

/// Why an attempt was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// Its timeout passed; carries the timeout.
    TimedOut(Duration),
    /// The worker is stopping.
    Stopped,
}

impl Limits {
    /// Starts the clock: the returned [`Clock`] resolves when the attempt must stop.
    pub fn start(&self) -> Clock {
        Clock {
            deadline: self
                .timeout
                .map(|timeout| (Instant::now() + timeout, timeout)),
            kill: self.kill.clone(),
        }
    }
}

/// The running clock of one attempt.
#[derive(Debug, Clone)]
pub struct Clock {
    deadline: Option<(Instant, Duration)>,
    kill: CancellationToken,
}

impl Clock {
    /// Completes when the attempt must stop; never, when it has no deadline and
    /// the worker keeps running.
    pub async fn interrupted(&self) -> Interrupt {
        let timed_out = async {
            match self.deadline {
                Some((at, timeout)) => {
                    tokio::time::sleep_until(at).await;
                    timeout
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // Killing wins a tie: the worker is leaving either way, and the
            // pool manager should retry such an attempt rather than count a timeout.
            biased;
            _ = self.kill.cancelled() => Interrupt::Stopped,
            timeout = timed_out => Interrupt::TimedOut(timeout),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Succeeded,
    /// Failed, with the reason shown to the user.
    Failed(String),
    /// Its timeout passed and it was stopped.
    TimedOut(Duration),
    /// The worker stopped it before it finished.
    Stopped,
}

impl From<Interrupt> for End {
    fn from(interrupt: Interrupt) -> Self {
        match interrupt {
            Interrupt::TimedOut(timeout) => End::TimedOut(timeout),
            Interrupt::Stopped => End::Stopped,
        }
    }
}

/// A driver's report on one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    pub end: End,
    /// What the run produced; `null` when nothing.
    pub result: Value,
}

impl Ran {
    pub fn succeeded(result: Value) -> Ran {
        Ran {
            end: End::Succeeded,
            result,
        }
    }

    pub fn failed(error: impl Into<String>) -> Ran {
        Ran {
            end: End::Failed(error.into()),
            result: Value::Null,
        }
    }
}

/// Runs `job`. `scratch` names the attempt's scratch directory under the work
/// dir (`<task_id>-<attempt>`), used by `exec` when the task gives no working dir.
pub async fn run(job: Job, scratch: &str, env: &DriverEnv, limits: &Limits) -> Ran {
    match job {
        Job::Exec(spec) => exec::run(spec, &env.work_dir.join(scratch), env, limits).await,
        Job::Noop => builtin::noop(),
        Job::Echo(spec) => builtin::echo(spec),
        Job::Sleep(spec) => builtin::sleep(spec, limits).await,
        Job::Fail(spec) => builtin::fail(spec),
        Job::Http(spec) => http::run(spec, env, limits).await,
        Job::Nats(spec) => nats::run(spec, env, limits).await,
    }
}
