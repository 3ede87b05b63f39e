//! The error type of this crate.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Why a server could not be started or used.
///
/// Variants about a running server carry the log file and its last lines,
/// because that is where the real reason almost always is.
#[derive(Debug, thiserror::Error)]
pub enum DevstackError {
    /// A server would be reachable from other hosts with no credentials or
    /// no TLS.
    #[error(
        "refusing to run nats-server on {host} without {missing}: anyone who reaches it could \
         forge dispatches and read every task; listen on 127.0.0.1, or give it both"
    )]
    Insecure { host: String, missing: String },

    /// A server did not take a changed config.
    #[error("nats-server did not reload its config ({detail}); see {}", log.display())]
    Reload { log: PathBuf, detail: String },

    /// Certificates for a TLS stack could not be made.
    #[error("cannot make the stack's certificates: {0}")]
    Tls(String),

    /// A server binary could not be found.
    #[error("{binary} not found: {hint}")]
    BinaryNotFound {
        /// The program looked for, e.g. `nats-server` or `initdb`.
        binary: &'static str,
        /// What to install or set to fix it.
        hint: String,
    },

    /// The OS refused to start a program.
    #[error("failed to spawn {program}: {source}")]
    Spawn {
        /// The program that was spawned.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A server process exited before it accepted connections.
    #[error("{what} exited before becoming ready ({status}); see {}:\n{tail}", log.display())]
    ExitedEarly {
        /// Which server, e.g. `nats-server`.
        what: &'static str,
        /// Its exit status.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The last lines it logged during this start.
        tail: String,
    },

    /// A server process kept running but did not accept connections in time.
    #[error("{what} not ready within {}s; see {}:\n{tail}", timeout.as_secs(), log.display())]
    NotReady {
        /// Which server, e.g. `postgres`.
        what: &'static str,
        /// How long we waited.
        timeout: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines it logged during this start.
        tail: String,
    },

    /// `initdb` failed.
    #[error("initdb failed ({status}); see {}:\n{tail}", log.display())]
    InitDb {
        /// Its exit status.
        status: ExitStatus,
        /// The log its output was appended to.
        log: PathBuf,
        /// The last lines of its output.
        tail: String,
    },

    /// A live PostgreSQL already owns the data directory.
    #[error(
        "data directory {} is in use by running postmaster pid {pid}; stop it or reuse it (see its postmaster.pid)",
        data_dir.display()
    )]
    DataDirInUse {
        /// The data directory.
        data_dir: PathBuf,
        /// The pid recorded in `postmaster.pid`.
        pid: i32,
    },

    /// We are root but there is no OS user to run PostgreSQL as.
    #[error(
        "running as root, but OS user `{user}` does not exist; PostgreSQL refuses to run as root (install the postgresql package, which creates it, or run as a normal user)"
    )]
    UserNotFound {
        /// The user looked up.
        user: String,
    },

    /// The user PostgreSQL runs as cannot reach its folder.
    #[error(
        "{} is not searchable by OS user `{user}`, which runs PostgreSQL; chmod o+x it or use a folder outside it",
        path.display()
    )]
    NotTraversable {
        /// The first folder on the way that blocks access.
        path: PathBuf,
        /// The user PostgreSQL runs as.
        user: String,
    },

    /// A database name that would need quoting in a URL.
    #[error("invalid database name {0:?}: use 1 to 63 ASCII letters, digits, `_` or `-`")]
    InvalidDatabaseName(String),

    /// A statement or connection to a started PostgreSQL failed.
    #[error("{context}: {source}")]
    Postgres {
        /// What we were doing.
        context: String,
        /// The driver error.
        #[source]
        source: tokio_postgres::Error,
    },

    /// Three servers started but did not become one JetStream cluster in time.
    #[error(
        "the NATS cluster did not form within {}s ({last}); see the logs {}",
        timeout.as_secs(),
        logs.iter().map(|l| l.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    ClusterNotFormed {
        /// How long we waited.
        timeout: Duration,
        /// What the last check saw.
        last: String,
        /// The servers' log files.
        logs: Vec<PathBuf>,
    },

    /// An index past the servers of a cluster.
    #[error("the NATS cluster has no server {index}; it has {size}")]
    NoSuchServer {
        /// The index asked for.
        index: usize,
        /// How many servers there are.
        size: usize,
    },

    /// A request to a running NATS server failed or was refused.
    #[error("{context}: {source}")]
    Nats {
        /// What we asked.
        context: String,
        /// The client's error, or the server's refusal.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A file system or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, including the path.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A system call made through `nix` failed.
    #[error("{context}: {source}")]
    Sys {
        /// What we were doing.
        context: String,
        /// The OS error.
        #[source]
        source: nix::Error,
    },
}

impl DevstackError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    pub(crate) fn sys(context: impl Into<String>) -> impl FnOnce(nix::Error) -> Self {
        let context = context.into();
        move |source| Self::Sys { context, source }
    }

    /// The log tail of a server that exited early, for retry decisions.
    pub(crate) fn early_exit_tail(&self) -> Option<&str> {
        match self {
            Self::ExitedEarly { tail, .. } => Some(tail),
            _ => None,
        }
    }
}
