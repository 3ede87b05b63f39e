//! The per-test servers and the services spawned against them.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use taskyard_devstack::{
    NatsCluster, NatsOptions, NatsServer, Postgres, PostgresOptions, TlsFiles, ensure_certificates,
};
use tempfile::TempDir;

use crate::credentials::{Credentials, identity_for};
use crate::service::{ServiceHandle, bin_path};
use taskyard_runtime::access::Kind;
use taskyard_runtime::nats::NatsSecurity;

/// Lines of each log that [`TestStack::dump_logs`] prints.
const DUMP_LINES: usize = 60;

/// A `nats-server` and a PostgreSQL with a fresh database, in a temporary folder.
///
/// Field order matters for `Drop`: services are killed in `drop`, then `nats`
/// and `pg` stop, and `dir` is deleted last.
#[derive(Debug)]
pub struct TestStack {
    /// The NATS server (JetStream on, no fsync).
    pub nats: NatsServer,
    /// The three-server cluster the services use instead of `nats` when the
    /// stack was started with [`TestStack::start_cluster`] (`nats` then
    /// stands idle); `None` otherwise.
    pub nats_cluster: Option<NatsCluster>,
    /// The PostgreSQL server (fsync off).
    pub pg: Postgres,
    /// URL of this test's database, `taskyard_<8 hex>`.
    pub database_url: String,
    /// URL of the NATS server.
    pub nats_url: String,
    /// Name of this test's database.
    pub database_name: String,
    /// The bus's identities: every service and node spawned gets its own.
    credentials: std::sync::Mutex<Credentials>,
    /// Subjects the workers' `nats` tasks may send requests to.
    task_subjects: Vec<String>,
    /// The certificates of a stack started with [`TestStack::start_tls`].
    tls: Option<TlsFiles>,
    services: Vec<ServiceHandle>,
    dir: TempDir,
}

impl TestStack {
    /// Starts both servers in a new folder `$TMPDIR/taskyard-test-*` and creates
    /// an empty database.
    pub async fn start() -> anyhow::Result<TestStack> {
        TestStack::start_with(true, false).await
    }

    /// Like [`TestStack::start`], with the bus on TLS: the server presents
    /// a certificate of a CA made for this test ([`TestStack::tls`]), every
    /// service spawned and the test's own clients trust it, and a client
    /// that does not cannot connect.
    pub async fn start_tls() -> anyhow::Result<TestStack> {
        TestStack::start_with(true, true).await
    }

    /// Like [`TestStack::start`], with PostgreSQL's default durability
    /// (`fsync`, `synchronous_commit`): a commit it answered survives an
    /// immediate shutdown, as in production. Without it the last commits
    /// before [`TestStack::stop_postgres_immediate`] are lost, which no
    /// service could be asked to ride out.
    pub async fn start_durable() -> anyhow::Result<TestStack> {
        TestStack::start_with(false, false).await
    }

    async fn start_with(fast_unsafe: bool, tls: bool) -> anyhow::Result<TestStack> {
        let dir = tempfile::Builder::new()
            .prefix("taskyard-test-")
            .tempdir_in(std::env::temp_dir())
            .context("creating the test folder")?;
        give_to_postgres_user(dir.path())?;
        let credentials = Credentials::create(&dir.path().join("creds"))?;
        let tls = match tls {
            true => Some(ensure_certificates(&dir.path().join("tls"), &[])?),
            false => None,
        };
        let nats = NatsServer::start(NatsOptions {
            dir: dir.path().join("nats"),
            port: None,
            sync_always: false,
            authorization: AUTH_INCLUDE.to_owned(),
            tls: tls.clone(),
            ..NatsOptions::default()
        })
        .await
        .context("starting nats-server")?;
        let pg = Postgres::start(PostgresOptions {
            dir: dir.path().join("postgres"),
            port: None,
            fast_unsafe,
            tls: None,
        })
        .await
        .context("starting postgres")?;
        let database_name = format!(
            "taskyard_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        // migrations are applied by the services
        let database_url = pg
            .create_database(&database_name)
            .await
            .with_context(|| format!("creating database {database_name}"))?;
        let nats_url = nats.url();
        Ok(TestStack {
            nats,
            nats_cluster: None,
            pg,
            database_url,
            nats_url,
            database_name,
            credentials: std::sync::Mutex::new(credentials),
            task_subjects: Vec::new(),
            tls,
            services: Vec::new(),
            dir,
        })
    }

    /// The config line that makes a server enforce the stack's credentials.
    pub fn auth_include(&self) -> String {
        AUTH_INCLUDE.to_owned()
    }

    fn credentials(&self) -> std::sync::MutexGuard<'_, Credentials> {
        // Credentials stay whole across a panic elsewhere: every change is
        // written to a new file and renamed into place.
        self.credentials
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The certificates of a stack started with [`TestStack::start_tls`].
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// How the test's own clients connect to NATS: as the admin.
    pub fn nats_security(&self) -> NatsSecurity {
        NatsSecurity {
            ca_file: self.tls.as_ref().map(|tls| tls.ca.clone()),
            ..self.credentials().admin()
        }
    }

    /// How a client connects as identity `name` (made with `kind` if new).
    pub fn security_of(&self, name: &str, kind: Kind) -> anyhow::Result<NatsSecurity> {
        Ok(NatsSecurity {
            inbox_prefix: kind.inbox_prefix(),
            nkey_file: Some(self.credential(name, kind)?),
            ca_file: self.tls.as_ref().map(|tls| tls.ca.clone()),
            ..NatsSecurity::default()
        })
    }

    /// The environment that makes the `taskyard` CLI connect as an
    /// operator named `cli`, as a person would (and trust the CA of a TLS
    /// stack).
    pub fn cli_env(&self) -> anyhow::Result<Vec<(String, String)>> {
        let security = self.security_of("cli", Kind::Operator)?;
        let mut env = Vec::new();
        if let Some(nkey) = security.nkey_file {
            env.push((
                "TASKYARD_NATS_NKEY_FILE".to_owned(),
                nkey.to_string_lossy().into_owned(),
            ));
        }
        if let Some(ca) = security.ca_file {
            env.push((
                "TASKYARD_NATS_CA_FILE".to_owned(),
                ca.to_string_lossy().into_owned(),
            ));
        }
        Ok(env)
    }

    /// A NATS client of the test's own, as the admin (every right).
    pub async fn nats_client(&self) -> anyhow::Result<async_nats::Client> {
        self.nats_client_as(&self.nats_security()).await
    }

    /// A NATS client connected as `security` says, on the first try.
    pub async fn nats_client_as(
        &self,
        security: &NatsSecurity,
    ) -> anyhow::Result<async_nats::Client> {
        let (addrs, options) = security.connect_options(&self.nats_url)?;
        options
            .connect(addrs)
            .await
            .with_context(|| format!("connecting to NATS at {}", self.nats_url))
    }

    /// The seed file of identity `name`, made with `kind` (and the servers
    /// reloaded) if it is new.
    pub fn credential(&self, name: &str, kind: Kind) -> anyhow::Result<PathBuf> {
        let (path, new) = self.credentials().issue(name, kind)?;
        if new {
            self.reload_nats()?;
        }
        Ok(path)
    }

    /// Where identity `name`'s seed is (kept after a revoke, so a test can
    /// show the server refuses it).
    pub fn seed_file(&self, name: &str) -> PathBuf {
        self.credentials().seed_file(name)
    }

    /// Removes identity `name` from the servers' config and reloads them:
    /// it is refused from its next connection on.
    pub fn revoke(&self, name: &str) -> anyhow::Result<()> {
        self.credentials().revoke(name)?;
        self.reload_nats()
    }

    /// Lets the workers spawned from now on send `nats` tasks' requests to
    /// `subjects` (see `access::Kind::Worker`).
    pub fn grant_task_subjects(&mut self, subjects: &[&str]) {
        self.task_subjects = subjects.iter().map(|s| (*s).to_owned()).collect();
    }

    /// Tells every running server to re-read its config and waits until
    /// each has, so that a changed `auth.conf` is in force on return.
    pub fn reload_nats(&self) -> anyhow::Result<()> {
        self.nats.reload()?;
        if let Some(cluster) = &self.nats_cluster {
            for server in (0..3).filter_map(|i| cluster.server(i)) {
                server.reload()?;
            }
        }
        Ok(())
    }

    /// The temporary folder; service logs are `<name>.log` in it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The environment every service gets: where NATS and the database are, and
    /// readable logs.
    pub fn service_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("TASKYARD_NATS_URL".to_owned(), self.nats_url.clone()),
            (
                "TASKYARD_DATABASE_URL".to_owned(),
                self.database_url.clone(),
            ),
            ("TASKYARD_LOG_FORMAT".to_owned(), "text".to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ];
        if self.nats_cluster.is_some() {
            env.push(crate::cluster::replicas_env());
        }
        if let Some(tls) = &self.tls {
            env.push((
                "TASKYARD_NATS_CA_FILE".to_owned(),
                tls.ca.to_string_lossy().into_owned(),
            ));
        }
        env
    }

    /// Spawns a workspace binary (see [`bin_path`]; a value containing `/` is used
    /// as a path) with [`Self::service_env`] plus `extra_env`, logging to `<name>.log`.
    pub async fn spawn(
        &mut self,
        binary: &str,
        name: &str,
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<ServiceHandle> {
        self.spawn_with_args(binary, name, &[], extra_env).await
    }

    /// Like [`Self::spawn`], with command-line arguments.
    ///
    /// Reusing a name (e.g. to restart a service) appends to the same log, and
    /// [`Self::service`] then returns the newest process.
    pub async fn spawn_with_args(
        &mut self,
        binary: &str,
        name: &str,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<ServiceHandle> {
        let program = if binary.contains('/') {
            PathBuf::from(binary)
        } else {
            bin_path(binary)
        };
        let log_path = self.dir().join(format!("{name}.log"));
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        writeln!(
            log,
            "=== taskyard-testkit: starting {name}: {} {} ===",
            program.display(),
            args.join(" ")
        )
        .with_context(|| format!("writing {}", log_path.display()))?;
        let stderr = log
            .try_clone()
            .with_context(|| format!("duplicating {}", log_path.display()))?;
        let mut env = self.service_env();
        let chooses_own = extra_env
            .iter()
            .any(|(key, _)| *key == "TASKYARD_NATS_NKEY_FILE");
        if !chooses_own
            && let Some((identity, kind)) = identity_for(binary, extra_env, &self.task_subjects)
        {
            let seed = self.credential(&identity, kind)?;
            env.push((
                "TASKYARD_NATS_NKEY_FILE".to_owned(),
                seed.to_string_lossy().into_owned(),
            ));
        }
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(args)
            .envs(env)
            .envs(extra_env.iter().copied())
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {name} ({})", program.display()))?;
        let handle = ServiceHandle::new(name.to_owned(), log_path, child);
        self.services.push(handle.clone());
        Ok(handle)
    }

    /// The newest service spawned under `name`.
    pub fn service(&self, name: &str) -> Option<ServiceHandle> {
        self.services
            .iter()
            .rev()
            .find(|s| s.name() == name)
            .cloned()
    }

    /// Every service spawned so far, oldest first (including exited ones).
    pub fn services(&self) -> &[ServiceHandle] {
        &self.services
    }

    /// A client for this test's database; its connection runs on a spawned task.
    pub async fn db(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
                .await
                .with_context(|| format!("connecting to {}", self.database_url))?;
        tokio::spawn(async move {
            // Errors here surface as failed queries on the client; nothing to add.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Prints the last 60 lines of every log in the folder (services, NATS,
    /// PostgreSQL) to stderr. Called whenever a stack is dropped: a test
    /// that fails by returning an error is not panicking, yet its logs are
    /// what tells why, and the test runner shows a test's output only when
    /// it fails.
    pub fn dump_logs(&self) {
        let mut logs = Vec::new();
        collect_logs(self.dir(), &mut logs);
        logs.sort();
        for path in logs {
            let shown = path
                .strip_prefix(self.dir())
                .unwrap_or(&path)
                .display()
                .to_string();
            let text = match std::fs::read(&path) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) => format!("(unreadable: {e})"),
            };
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(DUMP_LINES);
            eprintln!(
                "===== {shown} (last {} of {} lines) =====",
                lines.len() - from,
                lines.len()
            );
            for line in &lines[from..] {
                eprintln!("{line}");
            }
        }
        eprintln!("===== end of logs in {} =====", self.dir().display());
    }

    /// Kills every spawned service (SIGKILL) and reaps it.
    pub fn kill_services(&mut self) {
        for service in self.services.iter().rev() {
            service.kill_blocking();
        }
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        self.dump_logs();
        // Services first, so they do not log connection errors while the
        // servers go away; the fields then drop in declaration order.
        self.kill_services();
    }
}

/// The line that includes `creds/auth.conf` in a server's config. nats-server
/// resolves an include against the including file's folder and takes no
/// absolute path; every server's folder (`nats/`, `n1/` ...) sits beside
/// `creds/` in the test folder.
const AUTH_INCLUDE: &str = "include \"../creds/auth.conf\"\n";

/// `*.log` files in `dir` and one level below (the servers' own folders).
fn collect_logs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.parent() == Some(dir) && !path.ends_with("pgdata") {
                let Ok(inner) = std::fs::read_dir(&path) else {
                    continue;
                };
                out.extend(
                    inner
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "log")),
                );
            }
        } else if path.extension().is_some_and(|e| e == "log") {
            out.push(path);
        }
    }
}

/// PostgreSQL refuses to run as root, so under root it runs as `postgres`,
/// which must be able to enter the folder (tempdirs are 0700).
fn give_to_postgres_user(dir: &Path) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let user = nix::unistd::User::from_name("postgres")
        .context("looking up OS user postgres")?
        .context("running as root, but OS user postgres does not exist (PostgreSQL refuses to run as root)")?;
    nix::unistd::chown(dir, Some(user.uid), Some(user.gid))
        .with_context(|| format!("chown postgres {}", dir.display()))
}
