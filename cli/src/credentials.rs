//! The bus's identities, as a library: issue one (an nkey made here, its
//! public half recorded in `nats_credentials`), write its seed for its
//! holder, render the nats-server authorization config from the live rows,
//! and tell running servers to reload it.
//!
//! `taskyard creds` is built on these, and so is `taskyard up --secure`,
//! which issues every service's and worker's identity the same way. A seed
//! is handed back to the caller or written to a file readable by its owner
//! only; it is never stored, logged, or put in an error.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use taskyard_runtime::access::{self, Identity, Kind, KindError, NewIdentity, NkeyError};
use taskyard_store::Store;
use taskyard_store::StoreError;
use taskyard_store::credentials::{CreateCredentialError, CredentialRow, NewCredential};

/// Where `taskyard creds` writes the authorization config unless told.
pub const DEFAULT_AUTH_FILE: &str = ".taskyard/creds/auth.conf";

/// The pid files of the servers `taskyard up` starts (one server, or the
/// three of `--cluster`), relative to where it runs.
pub const DEFAULT_PID_FILES: [&str; 4] = [
    ".taskyard/nats/nats.pid",
    ".taskyard/nats-cluster/n1/nats.pid",
    ".taskyard/nats-cluster/n2/nats.pid",
    ".taskyard/nats-cluster/n3/nats.pid",
];

/// Why a credential could not be issued, or the config not written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The name is taken or empty: the caller's input, nothing was written.
    #[error(transparent)]
    Refused(CreateCredentialError),
    #[error(transparent)]
    Nkey(#[from] NkeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{} already exists; a seed file is never overwritten (choose another path, or \
         remove the old file if you meant to replace it)",
        .0.display()
    )]
    SeedFileExists(PathBuf),
    #[error(
        "another `taskyard creds` has held {} for {}s; try again once it is done",
        .0.display(),
        LOCK_TIMEOUT.as_secs()
    )]
    Busy(PathBuf),
    // The io error is the source: anyhow's `{:#}` prints it after this.
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl CredentialError {
    /// Whether the caller's input was at fault (a name taken or empty, a
    /// seed file that exists), rather than the database or the disk.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            CredentialError::Refused(
                CreateCredentialError::NameTaken(_) | CreateCredentialError::EmptyName
            ) | CredentialError::SeedFileExists(_)
        )
    }

    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CredentialError {
        let path = path.to_path_buf();
        move |source| CredentialError::Io { what, path, source }
    }
}

impl From<CreateCredentialError> for CredentialError {
    fn from(err: CreateCredentialError) -> Self {
        match err {
            CreateCredentialError::Store(err) => CredentialError::Store(err),
            other => CredentialError::Refused(other),
        }
    }
}

/// Makes an nkey for `name` as `kind` and records its public half. The
/// seed is in the answer only: the caller hands it to the holder (see
/// [`write_seed`]). The servers admit it once the config is rendered again
/// and they reload ([`render_auth`], [`reload_servers`]).
pub async fn issue(store: &Store, name: &str, kind: Kind) -> Result<NewIdentity, CredentialError> {
    // The store trims the name it records; the identity must say the same.
    let name = name.trim();
    let new = access::generate(name, kind)?;
    let identity = &new.identity;
    let no_subjects = Vec::new();
    let task_subjects = match &identity.kind {
        Kind::Worker { task_subjects, .. } => task_subjects,
        _ => &no_subjects,
    };
    store
        .create_credential(&NewCredential {
            name,
            kind: identity.kind.name(),
            scope: identity.kind.scope(),
            task_subjects,
            public_key: &identity.public_key,
        })
        .await?;
    Ok(new)
}

/// The kind a recorded credential was issued as.
pub fn kind_of(row: &CredentialRow) -> Result<Kind, KindError> {
    Kind::parse(&row.kind, row.scope.as_deref(), &row.task_subjects)
}

/// The identity a recorded credential stands for.
pub fn identity_of(row: &CredentialRow) -> Result<Identity, KindError> {
    Ok(Identity {
        name: row.name.clone(),
        kind: kind_of(row)?,
        public_key: row.public_key.clone(),
    })
}

/// What [`render_auth`] wrote.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    /// The names of the identities the config admits.
    pub admitted: Vec<String>,
    /// Live rows left out because they no longer make a valid identity
    /// (edited by hand, or a kind this version does not know), with why.
    /// Leaving one out refuses its holder, which is the safe side.
    pub skipped: Vec<(String, KindError)>,
}

/// The config for `rows`: every live one, none revoked. When no identity is
/// live it admits a sealed one, whose seed nobody has: nats-server with no
/// user at all lets anyone in, so revoking the last credential must not
/// open the bus.
pub fn render_rows(rows: &[CredentialRow]) -> Result<(String, Rendered), NkeyError> {
    let mut rendered = Rendered::default();
    let mut identities = Vec::new();
    for row in rows.iter().filter(|row| row.revoked_at.is_none()) {
        match identity_of(row) {
            Ok(identity) => {
                rendered.admitted.push(identity.name.clone());
                identities.push(identity);
            }
            Err(err) => rendered.skipped.push((row.name.clone(), err)),
        }
    }
    if identities.is_empty() {
        // The seed is dropped here, unseen: this key admits no one.
        let sealed = access::generate(SEALED_NAME, Kind::Submitter)?;
        identities.push(sealed.identity);
    }
    Ok((access::render_accounts(&identities), rendered))
}

/// The name in the config's comment of the identity that keeps an empty
/// config closed.
const SEALED_NAME: &str = "sealed: no live credential; this key's seed was thrown away";

/// Writes the authorization config of the live credentials to `auth_file`
/// (mode 0600, its folder made if missing). It is written whole to a
/// temporary file beside it and renamed into place, so a server reloading
/// meanwhile reads the old config or the new one, never half of one.
pub async fn render_auth(store: &Store, auth_file: &Path) -> Result<Rendered, CredentialError> {
    make_folder(folder_of(auth_file))?;
    // Two commands rendering at once could otherwise write their reads of
    // the table in the wrong order, and a stale read would let a revoked
    // key back in. Held until the file is replaced.
    let _lock = lock_render(auth_file).await?;
    let rows = store.list_credentials().await?;
    let (config, rendered) = render_rows(&rows)?;
    write_private(auth_file, config.as_bytes())?;
    Ok(rendered)
}

/// How long a render waits for another one to finish.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

async fn lock_render(auth_file: &Path) -> Result<Flock<File>, CredentialError> {
    let name = auth_file
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "auth".to_owned());
    let path = folder_of(auth_file).join(format!(".{name}.lock"));
    let deadline = Instant::now() + LOCK_TIMEOUT;
    loop {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(CredentialError::io("opening", &path))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((_, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err((_, Errno::EWOULDBLOCK)) => return Err(CredentialError::Busy(path)),
            Err((_, errno)) => {
                return Err(CredentialError::io("locking", &path)(errno.into()));
            }
        }
    }
}

/// The folder a file is in (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

fn make_folder(dir: &Path) -> Result<(), CredentialError> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(CredentialError::io("creating", dir))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CredentialError> {
    let dir = folder_of(path);
    make_folder(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".auth.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(CredentialError::io("creating a temporary file in", dir))?;
    // tempfile makes it 0600 already; said again so it does not rest on that.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(CredentialError::io("setting the mode of", tmp.path()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(CredentialError::io("writing", tmp.path()))?;
    tmp.persist(path)
        .map_err(|err| CredentialError::io("replacing", path)(err.error))?;
    Ok(())
}

/// A seed file reserved before anything is recorded, so that a path that
/// cannot be written refuses the credential before its row exists. Dropped
/// unwritten, it is removed again.
#[derive(Debug)]
pub struct SeedFile {
    path: PathBuf,
    file: Option<File>,
}

impl SeedFile {
    /// Creates `path`, empty and readable by its owner only; refuses a path
    /// that exists.
    pub fn create(path: &Path) -> Result<SeedFile, CredentialError> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|err| match err.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    CredentialError::SeedFileExists(path.to_path_buf())
                }
                _ => CredentialError::io("creating", path)(err),
            })?;
        Ok(SeedFile {
            path: path.to_path_buf(),
            file: Some(file),
        })
    }

    /// The path it was made at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `seed` (one line, as `--nats-nkey` files are read) and keeps
    /// the file.
    pub fn write(mut self, seed: &str) -> Result<(), CredentialError> {
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        let written = file
            .write_all(format!("{seed}\n").as_bytes())
            .and_then(|()| file.sync_all());
        match written {
            Ok(()) => Ok(()),
            Err(err) => {
                // Half a seed is worse than none: its holder would be
                // refused with no hint why.
                let _ = std::fs::remove_file(&self.path);
                Err(CredentialError::io("writing", &self.path)(err))
            }
        }
    }
}

impl Drop for SeedFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes `seed` to a new file at `path` (mode 0600); refuses a path that
/// exists rather than overwrite someone's key.
pub fn write_seed(path: &Path, seed: &str) -> Result<(), CredentialError> {
    SeedFile::create(path)?.write(seed)
}

/// What [`reload_servers`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reload {
    /// The pid files whose server was told to reload, with its pid.
    pub reloaded: Vec<(PathBuf, u32)>,
    /// The pid files that led to no server, with why (a stale file after a
    /// crash, a pid now used by another program): not an error, the
    /// caller says so.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Tells the nats-server of each pid file to reload its config (SIGHUP, as
/// `nats-server --signal reload` does), so a changed authorization config
/// applies: an identity removed from it is refused from its next connect.
pub fn reload_servers(pid_files: &[PathBuf]) -> Reload {
    let mut reload = Reload::default();
    for path in pid_files {
        match reload_one(path) {
            Ok(pid) => reload.reloaded.push((path.clone(), pid)),
            Err(why) => reload.skipped.push((path.clone(), why)),
        }
    }
    reload
}

/// The pid files among [`DEFAULT_PID_FILES`] that exist.
pub fn default_pid_files() -> Vec<PathBuf> {
    DEFAULT_PID_FILES
        .iter()
        .map(PathBuf::from)
        .filter(|path| path.exists())
        .collect()
}

fn reload_one(path: &Path) -> Result<u32, String> {
    use nix::sys::signal::{Signal, kill};

    let text = std::fs::read_to_string(path).map_err(|err| err.to_string())?;
    let pid = parse_pid(&text)?;
    if !is_nats_server(pid)? {
        return Err(format!(
            "process {pid} is not a nats-server (the file is stale and its pid reused)"
        ));
    }
    // `parse_pid` keeps it within 1..=i32::MAX.
    let raw = i32::try_from(pid).map_err(|_| format!("`{pid}` is not a process id"))?;
    match kill(nix::unistd::Pid::from_raw(raw), Signal::SIGHUP) {
        Ok(()) => Ok(pid),
        Err(Errno::ESRCH) => Err(format!("no process {pid} runs (the file is stale)")),
        Err(err) => Err(format!("cannot signal process {pid}: {err}")),
    }
}

/// The pid in a pid file. Zero and negative numbers are refused: `kill`
/// reads them as a process group or every process.
fn parse_pid(text: &str) -> Result<u32, String> {
    let trimmed = text.trim();
    match trimmed.parse::<i32>() {
        Ok(pid) if pid > 0 => Ok(pid.unsigned_abs()),
        _ => Err(format!("`{trimmed}` is not a process id")),
    }
}

/// Whether `pid` is a nats-server, where `/proc` can tell: a pid file left
/// by a crash may name a process that has nothing to do with NATS, and
/// SIGHUP ends most programs. Without `/proc` (not Linux), it is trusted.
fn is_nats_server(pid: u32) -> Result<bool, String> {
    if !Path::new("/proc/self/comm").exists() {
        return Ok(true);
    }
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => Ok(comm.trim() == "nats-server"),
        Err(_) => Err(format!("no process {pid} runs (the file is stale)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn row(name: &str, kind: &str, scope: Option<&str>, revoked: bool) -> CredentialRow {
        let now = taskyard_wire::Timestamp::now_utc();
        CredentialRow {
            id: uuid::Uuid::now_v7(),
            name: name.to_owned(),
            kind: kind.to_owned(),
            scope: scope.map(str::to_owned),
            task_subjects: Vec::new(),
            public_key: access::generate(name, Kind::Submitter)
                .expect("nkey")
                .identity
                .public_key,
            created_at: now,
            revoked_at: revoked.then_some(now),
        }
    }

    #[test]
    fn a_row_gives_back_its_kind() {
        let mut worker = row("w", "worker", Some("n1"), false);
        worker.task_subjects = vec!["pricing.>".to_owned()];
        assert_eq!(
            kind_of(&worker).expect("worker"),
            Kind::Worker {
                node: "n1".to_owned(),
                task_subjects: vec!["pricing.>".to_owned()],
            }
        );
        let service = row("s", "service", Some("scheduler"), false);
        assert_eq!(
            kind_of(&service).expect("service"),
            Kind::Service {
                service: "scheduler".to_owned()
            }
        );
        assert_eq!(
            kind_of(&row("o", "operator", None, false)).expect("operator"),
            Kind::Operator
        );
        assert!(kind_of(&row("x", "worker", None, false)).is_err());
    }

    #[test]
    fn the_config_admits_live_rows_only_and_skips_broken_ones() {
        let live = row("alice", "operator", None, false);
        let revoked = row("bob", "operator", None, true);
        let broken = row("carol", "service", Some("mailer"), false);
        let (config, rendered) =
            render_rows(&[live.clone(), revoked.clone(), broken.clone()]).expect("render");
        assert!(config.contains(&live.public_key), "{config}");
        assert!(!config.contains(&revoked.public_key), "{config}");
        assert!(!config.contains(&broken.public_key), "{config}");
        assert_eq!(rendered.admitted, vec!["alice".to_owned()]);
        assert_eq!(rendered.skipped.len(), 1);
        assert_eq!(rendered.skipped[0].0, "carol");
        assert!(!config.contains(SEALED_NAME));
    }

    #[test]
    fn no_live_row_still_renders_a_closed_config() {
        let revoked = row("bob", "operator", None, true);
        let (config, rendered) = render_rows(&[revoked]).expect("render");
        assert!(rendered.admitted.is_empty());
        // One user, whose key nobody holds: the server still asks for one.
        assert!(config.contains(SEALED_NAME), "{config}");
        assert_eq!(config.matches("nkey:").count(), 1, "{config}");
    }

    #[test]
    fn the_config_is_replaced_whole_and_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("creds/auth.conf");
        write_private(&path, b"first\n").expect("write");
        write_private(&path, b"second\n").expect("rewrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "second\n");
        assert_eq!(
            std::fs::metadata(&path).expect("meta").mode() & 0o777,
            0o600
        );
        let left: Vec<_> = std::fs::read_dir(dir.path().join("creds"))
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 1, "no temporary file is left: {left:?}");
    }

    #[tokio::test]
    async fn one_render_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let auth = dir.path().join("auth.conf");
        let first = lock_render(&auth).await.expect("first lock");
        let second = tokio::spawn({
            let auth = auth.clone();
            async move { lock_render(&auth).await.map(drop) }
        });
        let mut second = second;
        let waited = tokio::time::timeout(Duration::from_millis(200), &mut second).await;
        assert!(waited.is_err(), "the second waits for the first");
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the second goes on once the first is done")
            .expect("joined")
            .expect("second lock");
    }

    #[test]
    fn a_seed_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("alice.nk");
        write_seed(&path, "SUAAAA").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "SUAAAA\n");
        assert_eq!(
            std::fs::metadata(&path).expect("meta").mode() & 0o777,
            0o600
        );
        let err = write_seed(&path, "SUBBBB").expect_err("exists");
        assert!(err.is_bad_input());
        assert!(err.to_string().contains("already exists"), "{err}");
        assert!(!err.to_string().contains("SUBBBB"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "SUAAAA\n");
    }

    #[test]
    fn an_unwritten_reservation_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("reserved.nk");
        let reserved = SeedFile::create(&path).expect("reserve");
        assert!(path.exists());
        drop(reserved);
        assert!(!path.exists());
    }

    #[test]
    fn pid_files_that_lead_to_no_server_are_reported_not_signalled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        // A live process that is not a nats-server: SIGHUP would end it.
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let files = vec![
            write("zero.pid", "0\n"),
            write("negative.pid", "-1\n"),
            write("garbage.pid", "nats\n"),
            write("gone.pid", &format!("{}\n", i32::MAX)),
            write("other.pid", &format!("{}\n", sleeper.id())),
            dir.path().join("missing.pid"),
        ];
        let reload = reload_servers(&files);
        let still_running = matches!(sleeper.try_wait(), Ok(None));
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        assert!(reload.reloaded.is_empty(), "{reload:?}");
        assert_eq!(reload.skipped.len(), files.len(), "{reload:?}");
        assert!(still_running, "the unrelated process was signalled");
        let why = |name: &str| {
            reload
                .skipped
                .iter()
                .find(|(path, _)| path.ends_with(name))
                .map(|(_, why)| why.clone())
                .unwrap_or_default()
        };
        assert!(why("zero.pid").contains("not a process id"));
        assert!(why("negative.pid").contains("not a process id"));
        assert!(why("gone.pid").contains("stale"), "{}", why("gone.pid"));
        assert!(why("other.pid").contains("not a nats-server"));
    }
}
