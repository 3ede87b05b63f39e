//! A local PostgreSQL server (`initdb` + `postgres`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid, User};
use tokio_postgres::Socket;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;

use crate::error::DevstackError;
use crate::net::free_port;
use crate::proc::{self, LogFile};
use crate::tls::TlsFiles;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: u32 = 3;
const DEFAULT_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
const OS_USER: &str = "postgres";
const INSTALL_HINT: &str = "install PostgreSQL 15 (`apt-get install postgresql-15`) or set TASKYARD_PG_BIN_DIR to the folder holding initdb and postgres";
/// Unix socket paths are limited to 107 bytes; `/.s.PGSQL.65535` takes 15.
const MAX_SOCKET_DIR_LEN: usize = 90;

/// How to start a [`Postgres`].
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// Folder for the data directory `pgdata/`, the log `postgres.log` and the
    /// socket folder `run/`. Created when missing; reusing it keeps the databases.
    pub dir: PathBuf,
    /// TCP port on 127.0.0.1. `None` picks a free port (and retries on another
    /// one if it was taken in the meantime).
    pub port: Option<u16>,
    /// Turn off `fsync`, `synchronous_commit` and `full_page_writes`: much faster,
    /// but a machine crash can corrupt the data. Only for throwaway test data.
    pub fast_unsafe: bool,
    /// Serve TLS with this certificate and key (`ssl = on`); clients may
    /// still connect in the clear (`sslmode=disable`). The two files are
    /// copied into the data directory on every start, so a renewed
    /// certificate is picked up by [`Postgres::start_again`].
    pub tls: Option<TlsFiles>,
}

/// A running PostgreSQL postmaster in its own process group.
///
/// Dropping it shuts it down immediately (SIGQUIT, then SIGKILL to the group
/// after 5 s); [`Postgres::stop`] shuts it down cleanly.
#[derive(Debug)]
pub struct Postgres {
    child: Option<Child>,
    pid: u32,
    port: u16,
    dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log: PathBuf,
    /// Whether it was started with [`PostgresOptions::fast_unsafe`], for
    /// [`Postgres::start_again`].
    fast_unsafe: bool,
    /// The certificate it serves, for [`Postgres::start_again`].
    tls: Option<TlsFiles>,
    /// Holds the socket folder alive when `dir` is too deep for a Unix socket path.
    _socket_tmp: Option<tempfile::TempDir>,
}

/// The OS user the server processes run as when we are root.
#[derive(Debug, Clone)]
struct RunAs {
    uid: Uid,
    gid: Gid,
}

impl Postgres {
    /// Initialises `dir/pgdata` when it has no `PG_VERSION`, starts `postgres`
    /// and waits up to 30 s until a connection to the `postgres` database works.
    pub async fn start(opts: PostgresOptions) -> Result<Postgres, DevstackError> {
        let bin = bin_dir()?;
        let postgres_bin = require(&bin, "postgres")?;
        let dir = proc::absolute(&opts.dir)?;
        proc::create_dir(&dir)?;
        let run_as = run_as()?;
        if let Some(user) = &run_as {
            check_traversable(&dir, user)?;
        }
        let data_dir = dir.join("pgdata");
        let log_path = dir.join("postgres.log");
        if !data_dir.join("PG_VERSION").exists() {
            init_data_dir(&bin, &dir, &data_dir, &log_path, run_as.as_ref()).await?;
        }
        remove_stale_pid_file(&data_dir)?;
        if let Some(tls) = &opts.tls {
            install_certificate(tls, &data_dir, run_as.as_ref())?;
        }
        let (socket_dir, socket_tmp) = socket_dir(&dir, run_as.as_ref())?;

        let mut attempt = 1;
        loop {
            let port = match opts.port {
                Some(port) => port,
                None => free_port()?,
            };
            let spawned = Spawn {
                postgres_bin: &postgres_bin,
                dir: &dir,
                data_dir: &data_dir,
                socket_dir: &socket_dir,
                log_path: &log_path,
                run_as: run_as.as_ref(),
                port,
                fast_unsafe: opts.fast_unsafe,
                tls: opts.tls.is_some(),
            }
            .run()
            .await;
            match spawned {
                Err(e)
                    if opts.port.is_none()
                        && attempt < PORT_ATTEMPTS
                        && e.early_exit_tail().is_some_and(proc::port_conflict) =>
                {
                    tracing::debug!(port, "postgres port taken meanwhile; retrying on another");
                    attempt += 1;
                }
                Err(e) => return Err(e),
                Ok((child, pid)) => {
                    return Ok(Postgres {
                        child: Some(child),
                        pid,
                        port,
                        dir,
                        data_dir,
                        socket_dir,
                        log: log_path,
                        fast_unsafe: opts.fast_unsafe,
                        tls: opts.tls.clone(),
                        _socket_tmp: socket_tmp,
                    });
                }
            }
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `postgres://postgres@127.0.0.1:PORT/{db}`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The folder given in [`PostgresOptions::dir`], made absolute.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory, `dir/pgdata`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The folder holding the Unix socket (for `psql -h`).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Creates database `name` unless it exists, and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String, DevstackError> {
        create_database_at(&self.url("postgres"), name).await?;
        Ok(self.url(name))
    }

    /// Whether the postmaster is running (not stopped, not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Immediate shutdown, what `pg_ctl stop -m immediate` does: SIGQUIT to
    /// the postmaster, which quits every backend at once, without a
    /// checkpoint, so that the next start recovers from the WAL as after a
    /// crash. Clients see their connections cut. The folder and port are
    /// kept for [`Postgres::start_again`].
    ///
    /// Not `pg_ctl` itself: its restart would leave a postmaster that is
    /// not our child, which nothing would stop when this handle is dropped.
    pub async fn stop_immediate(&mut self) {
        if let Some(mut child) = self.child.take() {
            proc::signal_child(&mut child, Signal::SIGQUIT);
            if proc::wait_async(&mut child, Duration::from_secs(10))
                .await
                .is_none()
            {
                proc::kill_group(&mut child);
                proc::wait_async(&mut child, Duration::from_secs(5)).await;
            }
        }
    }

    /// Starts the server again on the same data directory and port (as
    /// [`Postgres::start`], which waits until it accepts connections).
    /// A server still running is stopped first, immediately.
    pub async fn start_again(&mut self) -> Result<(), DevstackError> {
        self.stop_immediate().await;
        let started = Postgres::start(PostgresOptions {
            dir: self.dir.clone(),
            port: Some(self.port),
            fast_unsafe: self.fast_unsafe,
            tls: self.tls.clone(),
        })
        .await?;
        // The old value holds no process any more: dropping it stops nothing.
        drop(std::mem::replace(self, started));
        Ok(())
    }

    /// `pg_ctl restart -m immediate`: [`Postgres::stop_immediate`], then
    /// [`Postgres::start_again`].
    pub async fn restart_immediate(&mut self) -> Result<(), DevstackError> {
        self.stop_immediate().await;
        self.start_again().await
    }

    /// Shuts down cleanly (SIGINT "fast" shutdown, which checkpoints), escalating
    /// to SIGQUIT after 10 s and SIGKILL after 5 s more.
    pub async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            proc::signal_child(&mut child, Signal::SIGINT);
            if proc::wait_async(&mut child, Duration::from_secs(10))
                .await
                .is_some()
            {
                return;
            }
            proc::signal_child(&mut child, Signal::SIGQUIT);
            if proc::wait_async(&mut child, Duration::from_secs(5))
                .await
                .is_some()
            {
                return;
            }
            proc::kill_group(&mut child);
            proc::wait_async(&mut child, Duration::from_secs(5)).await;
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate shutdown: Drop must be quick, and crash recovery on the next
        // start is cheap for the data sizes this runs with.
        if let Some(mut child) = self.child.take() {
            proc::shutdown_blocking(&mut child, Signal::SIGQUIT, Duration::from_secs(5));
        }
    }
}

struct Spawn<'a> {
    postgres_bin: &'a Path,
    dir: &'a Path,
    data_dir: &'a Path,
    socket_dir: &'a Path,
    log_path: &'a Path,
    run_as: Option<&'a RunAs>,
    port: u16,
    fast_unsafe: bool,
    /// Whether [`install_certificate`] put a certificate in the data dir.
    tls: bool,
}

impl Spawn<'_> {
    async fn run(self) -> Result<(Child, u32), DevstackError> {
        let log = LogFile::open(
            self.log_path.to_path_buf(),
            &format!("starting postgres on port {}", self.port),
        )?;
        let mut cmd = Command::new(self.postgres_bin);
        cmd.arg("-D")
            .arg(self.data_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.socket_dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "max_connections=200"])
            .args(["-c", "shared_buffers=128MB"]);
        if self.fast_unsafe {
            cmd.args(["-c", "fsync=off"])
                .args(["-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off"]);
        }
        if self.tls {
            // Relative to the data directory. On the command line rather
            // than in postgresql.conf, so that a start without TLS on the
            // same data turns it off again.
            cmd.args(["-c", "ssl=on"])
                .args(["-c", &format!("ssl_cert_file={SERVER_CERT}")])
                .args(["-c", &format!("ssl_key_file={SERVER_KEY}")]);
        }
        // Its own process group: a terminal's Ctrl-C must not reach the postmaster
        // before our owner decides how to shut down, and killpg reaches the backends.
        cmd.process_group(0);
        configure(&mut cmd, self.dir, self.run_as);
        cmd.stdout(log.stdio()?).stderr(log.stdio()?);
        let child = cmd.spawn().map_err(|source| DevstackError::Spawn {
            program: self.postgres_bin.to_path_buf(),
            source,
        })?;
        let pid = child.id();
        // Wrapping right away so every early return below kills it.
        let mut guard = ChildGuard(Some(child));
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = guard.get()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(DevstackError::ExitedEarly {
                    what: "postgres",
                    status,
                    log: log.path.clone(),
                    tail: log.tail(),
                });
            }
            if connects(&url).await
                && let Some(child) = guard.disarm()
            {
                tracing::debug!(port = self.port, pid, "postgres ready");
                return Ok((child, pid));
            }
            if Instant::now() >= deadline {
                return Err(DevstackError::NotReady {
                    what: "postgres",
                    timeout: READY_TIMEOUT,
                    log: log.path.clone(),
                    tail: log.tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Kills a postmaster that never became ready, also when the start future is dropped.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn get(&mut self) -> Option<&mut Child> {
        self.0.as_mut()
    }

    fn disarm(&mut self) -> Option<Child> {
        self.0.take()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            proc::shutdown_blocking(&mut child, Signal::SIGQUIT, Duration::from_secs(5));
        }
    }
}

async fn connects(url: &str) -> bool {
    let attempt = tokio::time::timeout(
        Duration::from_secs(2),
        tokio_postgres::connect(url, tokio_postgres::NoTls),
    );
    match attempt.await {
        Ok(Ok((client, connection))) => {
            drop(client);
            let _ = connection.await;
            true
        }
        _ => false,
    }
}

/// Where in the data directory the served certificate and key are copied.
const SERVER_CERT: &str = "server.crt";
const SERVER_KEY: &str = "server.key";

/// Copies `tls`'s certificate and key into `data_dir`, owned by the user
/// the server runs as, readable by it alone: Postgres refuses a key that
/// others can read, and as root ours may sit where the `postgres` user
/// cannot read at all.
fn install_certificate(
    tls: &TlsFiles,
    data_dir: &Path,
    run_as: Option<&RunAs>,
) -> Result<(), DevstackError> {
    for (from, name) in [(&tls.cert, SERVER_CERT), (&tls.key, SERVER_KEY)] {
        let bytes = std::fs::read(from)
            .map_err(DevstackError::io(format!("reading {}", from.display())))?;
        let to = data_dir.join(name);
        proc::write_private(&to, &bytes)?;
        if let Some(user) = run_as {
            chown(&to, user)?;
        }
    }
    Ok(())
}

/// Runs `initdb` on a fresh (or half-initialised) data directory.
async fn init_data_dir(
    bin: &Path,
    dir: &Path,
    data_dir: &Path,
    log_path: &Path,
    run_as: Option<&RunAs>,
) -> Result<(), DevstackError> {
    let initdb = require(bin, "initdb")?;
    // Without PG_VERSION this is left over from an interrupted initdb, which
    // refuses non-empty folders; nothing in it is worth keeping.
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir).map_err(DevstackError::io(format!(
            "removing incomplete {}",
            data_dir.display()
        )))?;
    }
    proc::create_dir(data_dir)?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).map_err(
        DevstackError::io(format!("chmod 700 {}", data_dir.display())),
    )?;
    if let Some(user) = run_as {
        chown(data_dir, user)?;
    }
    let log = LogFile::open(
        log_path.to_path_buf(),
        &format!("initdb {}", data_dir.display()),
    )?;
    let mut cmd = Command::new(&initdb);
    cmd.arg("-D").arg(data_dir).args([
        "-A",
        "trust",
        "-U",
        "postgres",
        "--no-sync",
        "-E",
        "UTF8",
        "--locale=C",
    ]);
    configure(&mut cmd, dir, run_as);
    cmd.stdout(log.stdio()?).stderr(log.stdio()?);
    let status = tokio::process::Command::from(cmd)
        .status()
        .await
        .map_err(|source| DevstackError::Spawn {
            program: initdb.clone(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(DevstackError::InitDb {
            status,
            log: log.path.clone(),
            tail: log.tail(),
        })
    }
}

/// Settings common to `initdb` and `postgres`.
fn configure(cmd: &mut Command, dir: &Path, run_as: Option<&RunAs>) {
    // The inherited cwd may be unreadable for the postgres user (e.g. /root).
    cmd.current_dir(dir).stdin(std::process::Stdio::null());
    // Messages in English keep log tails and our port-conflict check predictable.
    cmd.env("LC_ALL", "C")
        .env_remove("PGDATA")
        .env_remove("PGPORT");
    if let Some(user) = run_as {
        // std drops supplementary groups when root changes uid.
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
}

/// The user to run as when we are root; `None` runs as ourselves.
fn run_as() -> Result<Option<RunAs>, DevstackError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = User::from_name(OS_USER)
        .map_err(DevstackError::sys(format!("looking up OS user {OS_USER}")))?
        .ok_or_else(|| DevstackError::UserNotFound {
            user: OS_USER.to_owned(),
        })?;
    Ok(Some(RunAs {
        uid: user.uid,
        gid: user.gid,
    }))
}

fn chown(path: &Path, user: &RunAs) -> Result<(), DevstackError> {
    nix::unistd::chown(path, Some(user.uid), Some(user.gid)).map_err(DevstackError::sys(format!(
        "chown {OS_USER} {}",
        path.display()
    )))
}

/// Fails early with a clear message instead of initdb's "permission denied"
/// when a folder above `dir` is closed to the postgres user.
fn check_traversable(dir: &Path, user: &RunAs) -> Result<(), DevstackError> {
    for folder in dir.ancestors() {
        let meta = std::fs::metadata(folder)
            .map_err(DevstackError::io(format!("reading {}", folder.display())))?;
        let mode = meta.mode();
        let bit = if meta.uid() == user.uid.as_raw() {
            0o100
        } else if meta.gid() == user.gid.as_raw() {
            0o010
        } else {
            0o001
        };
        if mode & bit == 0 {
            return Err(DevstackError::NotTraversable {
                path: folder.to_path_buf(),
                user: OS_USER.to_owned(),
            });
        }
    }
    Ok(())
}

/// Removes `postmaster.pid` left by a killed server; refuses if that server lives.
fn remove_stale_pid_file(data_dir: &Path) -> Result<(), DevstackError> {
    let pid_file = data_dir.join("postmaster.pid");
    let text = match std::fs::read_to_string(&pid_file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(DevstackError::Io {
                context: format!("reading {}", pid_file.display()),
                source: e,
            });
        }
    };
    // A negative pid marks a single-user backend; either way the first line is it.
    let pid = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
        .map(i32::abs);
    match pid {
        Some(pid) if proc::pid_alive(pid) => Err(DevstackError::DataDirInUse {
            data_dir: data_dir.to_path_buf(),
            pid,
        }),
        _ => {
            // The postmaster is gone, but backends it left (a SIGKILL of the
            // group reaches them a moment apart) may still be attached to its
            // shared memory, and a new postmaster then refuses to start.
            if let Some(shmid) = shared_memory_id(&text) {
                wait_detached(shmid, OLD_BACKENDS_TIMEOUT);
            }
            tracing::info!(path = %pid_file.display(), "removing stale postmaster.pid");
            std::fs::remove_file(&pid_file).map_err(DevstackError::io(format!(
                "removing {}",
                pid_file.display()
            )))
        }
    }
}

/// How long a start waits for a dead postmaster's backends to let go of its
/// shared memory.
const OLD_BACKENDS_TIMEOUT: Duration = Duration::from_secs(10);

/// The System V shared memory id a postmaster.pid records (its seventh line
/// is `key id`).
fn shared_memory_id(pid_file: &str) -> Option<u64> {
    pid_file
        .lines()
        .nth(6)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// How many processes are attached to segment `shmid` (`None` once it is
/// gone), from `/proc/sysvipc/shm`.
fn attached_to(shmid: u64) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1)?.parse::<u64>().ok()? == shmid).then(|| fields.get(6)?.parse().ok())?
    })
}

/// Waits until nothing is attached to `shmid`, or `timeout` passes (the
/// start then fails with Postgres's own message).
fn wait_detached(shmid: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while attached_to(shmid).is_some_and(|n| n > 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `dir/run`, or a short temporary folder when `dir` is too deep for a socket path.
fn socket_dir(
    dir: &Path,
    run_as: Option<&RunAs>,
) -> Result<(PathBuf, Option<tempfile::TempDir>), DevstackError> {
    let preferred = dir.join("run");
    let (path, tmp) = if preferred.as_os_str().len() <= MAX_SOCKET_DIR_LEN {
        proc::create_dir(&preferred)?;
        (preferred, None)
    } else {
        let tmp = tempfile::Builder::new()
            .prefix("taskyard-pgsock-")
            .tempdir()
            .map_err(DevstackError::io("creating a temporary socket folder"))?;
        (tmp.path().to_path_buf(), Some(tmp))
    };
    if let Some(user) = run_as {
        chown(&path, user)?;
    }
    Ok((path, tmp))
}

/// `bin/name`, or an error naming it.
fn require(bin: &Path, name: &'static str) -> Result<PathBuf, DevstackError> {
    let path = bin.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(DevstackError::BinaryNotFound {
            binary: name,
            hint: format!("{} does not exist; {INSTALL_HINT}", path.display()),
        })
    }
}

/// Creates database `name` on the server of `admin_url` (a URL of an existing
/// database, usually `postgres`) unless it exists. Works on any server, not
/// only one this crate started.
pub async fn create_database_at(admin_url: &str, name: &str) -> Result<(), DevstackError> {
    create_database_at_with(admin_url, name, tokio_postgres::NoTls).await
}

/// [`create_database_at`] with TLS as the URL's `sslmode` asks, through
/// `tls`, for a server elsewhere.
pub async fn create_database_at_with<T>(
    admin_url: &str,
    name: &str,
    tls: T,
) -> Result<(), DevstackError>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(DevstackError::InvalidDatabaseName(name.to_owned()));
    }
    let (client, connection) = tokio_postgres::connect(admin_url, tls)
        .await
        .map_err(|source| DevstackError::Postgres {
            context: format!("connecting to {admin_url}"),
            source,
        })?;
    // The connection future must be polled for the client to work at all.
    let task = tokio::spawn(connection);
    let result = client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await;
    drop(client);
    let _ = task.await;
    match result {
        Ok(()) => Ok(()),
        // A concurrent creator can also lose on pg_database's unique index.
        Err(e)
            if e.code() == Some(&SqlState::DUPLICATE_DATABASE)
                || e.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
        {
            Ok(())
        }
        Err(source) => Err(DevstackError::Postgres {
            context: format!("creating database {name}"),
            source,
        }),
    }
}

/// The folder with the PostgreSQL server binaries: `$TASKYARD_PG_BIN_DIR`, else
/// `/usr/lib/postgresql/15/bin`, else `pg_config --bindir`.
pub fn bin_dir() -> Result<PathBuf, DevstackError> {
    if let Some(dir) = std::env::var_os("TASKYARD_PG_BIN_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let default = Path::new(DEFAULT_BIN_DIR);
    if default.join("postgres").is_file() {
        return Ok(default.to_path_buf());
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| PathBuf::from(s.trim()))
        .filter(|dir| dir.join("postgres").is_file());
    from_pg_config.ok_or_else(|| DevstackError::BinaryNotFound {
        binary: "postgres",
        hint: INSTALL_HINT.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres_reachable;

    /// A temporary folder the postgres user can enter when the tests run as root.
    fn pg_tempdir() -> tempfile::TempDir {
        let tmp = tempfile::Builder::new()
            .prefix("taskyard-devstack-")
            .tempdir()
            .expect("tempdir");
        if let Some(user) = run_as().expect("user lookup") {
            chown(tmp.path(), &user).expect("chown");
        }
        tmp
    }

    #[tokio::test]
    async fn starts_creates_databases_and_dies_on_drop() {
        let tmp = pg_tempdir();
        let pg = Postgres::start(PostgresOptions {
            dir: tmp.path().to_path_buf(),
            port: None,
            fast_unsafe: true,
            tls: None,
        })
        .await
        .expect("postgres starts");
        let url = pg.create_database("devstack_test").await.expect("create");
        assert_eq!(url, pg.url("devstack_test"));
        let again = pg
            .create_database("devstack_test")
            .await
            .expect("create is idempotent");
        assert_eq!(again, url);
        assert!(postgres_reachable(&url).await);
        assert!(matches!(
            pg.create_database("bad\"name").await,
            Err(DevstackError::InvalidDatabaseName(_))
        ));
        let port = pg.port();
        drop(pg);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        assert!(
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
            "port still accepts after drop"
        );
    }

    #[test]
    fn the_shared_memory_id_is_read_from_the_pid_file() {
        let pid_file =
            "4242\n/data\n1700000000\n5432\n/run\n127.0.0.1\n  10115049   5439533\nready   \n";
        assert_eq!(shared_memory_id(pid_file), Some(5_439_533));
        assert_eq!(shared_memory_id("4242\n/data\n"), None);
    }

    #[tokio::test]
    async fn restarts_on_existing_data_after_a_kill() {
        let tmp = pg_tempdir();
        let opts = PostgresOptions {
            dir: tmp.path().to_path_buf(),
            port: None,
            fast_unsafe: true,
            tls: None,
        };
        let pg = Postgres::start(opts.clone()).await.expect("first start");
        pg.create_database("kept").await.expect("create");
        // Simulate a crashed run: postmaster.pid stays behind with a dead pid.
        let mut child = pg_child(pg);
        proc::kill_group(&mut child);
        proc::wait_blocking(&mut child, Duration::from_secs(5));
        let pid_file = tmp.path().join("pgdata/postmaster.pid");
        assert!(pid_file.exists(), "SIGKILL leaves postmaster.pid");
        let pg = Postgres::start(opts).await.expect("second start");
        assert!(postgres_reachable(&pg.url("kept")).await);
        pg.stop().await;
    }

    #[tokio::test]
    async fn an_immediate_restart_keeps_the_port_and_the_data() {
        let tmp = pg_tempdir();
        let mut pg = Postgres::start(PostgresOptions {
            dir: tmp.path().to_path_buf(),
            port: None,
            fast_unsafe: true,
            tls: None,
        })
        .await
        .expect("postgres starts");
        let url = pg.create_database("kept").await.expect("create");
        pg.stop_immediate().await;
        assert!(!pg.is_running());
        assert!(
            !postgres_reachable(&url).await,
            "down after an immediate stop"
        );
        pg.start_again().await.expect("starts again");
        assert!(pg.is_running());
        assert_eq!(pg.url("kept"), url, "same port");
        assert!(postgres_reachable(&url).await, "the database survived");
        pg.restart_immediate().await.expect("restarts");
        assert!(postgres_reachable(&url).await);
        pg.stop().await;
    }

    fn pg_child(mut pg: Postgres) -> Child {
        pg.child.take().expect("running child")
    }
}
