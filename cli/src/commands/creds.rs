//! `taskyard creds create | list | revoke | render`: the bus's NATS
//! identities.
//!
//! Like `token`, these write straight to Postgres (`--database-url`): the
//! first credentials cannot come over a bus that needs them. A new
//! identity's seed is written to `--out` or printed once, and never kept;
//! after every change the nats-server authorization config (`--auth-file`)
//! is rendered again from the live rows and the servers are told to reload
//! it, so a revoked identity is refused from its next connect on. The work
//! itself is in [`crate::credentials`].

use crate::credentials::{self, Reload, SeedFile};
use crate::database::Database;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use taskyard_runtime::access::Kind;

#[derive(Debug, Subcommand)]
pub enum Creds {
    /// Issue an identity: its seed goes to --out, or is printed once.
    Create(Create),
    /// List identities: name, kind, scope, public key, created, revoked.
    List(List),
    /// Revoke an identity by name: refused from its next connect on.
    Revoke(Revoke),
    /// Write the servers' authorization config again from the table (for a
    /// new server, or one whose file was lost) and reload the servers.
    Render(Render),
}

/// Where the authorization config goes, and which servers to reload.
#[derive(Debug, Clone, Args)]
pub struct Servers {
    /// The nats-server authorization config to write (mode 0600), which
    /// the servers' configs include.
    #[arg(long, default_value = credentials::DEFAULT_AUTH_FILE, value_name = "FILE")]
    pub auth_file: PathBuf,
    /// The pid file of a nats-server to reload after the change; repeat it
    /// for each server. Default: those of a `taskyard up` stack
    /// (`.taskyard/nats/nats.pid`, `.taskyard/nats-cluster/n1/nats.pid` ...
    /// n3) that exist.
    #[arg(long = "nats-pid-file", value_name = "FILE")]
    pub nats_pid_files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct Create {
    /// A name for people (who or what holds it); unique, revoked ones
    /// included, so a name in the audit trail means one identity.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// service, worker, submitter (submits, nothing else), operator
    /// (+ cancel, pools, nodes) or admin (everything, for break-glass work).
    #[arg(long, value_name = "KIND")]
    pub kind: String,
    /// The service a service credential is for (orchestrator, scheduler,
    /// pool-manager, resource-manager, api).
    #[arg(long, value_name = "SERVICE", conflicts_with = "node")]
    pub service: Option<String>,
    /// The node a worker credential speaks for.
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// A subject the worker's `nats` tasks may send requests to; repeatable.
    #[arg(long = "task-subject", value_name = "SUBJECT")]
    pub task_subjects: Vec<String>,
    /// Write the seed to this new file (mode 0600) instead of printing it.
    /// An existing file is never overwritten.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub servers: Servers,
    #[command(flatten)]
    pub database: Database,
}

#[derive(Debug, Args)]
pub struct List {
    #[command(flatten)]
    pub database: Database,
}

#[derive(Debug, Args)]
pub struct Revoke {
    /// The credential's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub servers: Servers,
    #[command(flatten)]
    pub database: Database,
}

#[derive(Debug, Args)]
pub struct Render {
    #[command(flatten)]
    pub servers: Servers,
    #[command(flatten)]
    pub database: Database,
}

impl Creds {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Creds::Create(cmd) => cmd.run().await,
            Creds::List(cmd) => cmd.run().await,
            Creds::Revoke(cmd) => cmd.run().await,
            Creds::Render(cmd) => cmd.run().await,
        }
    }
}

/// Prints a refusal of the caller's input; the command exits 1.
fn refuse(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::FAILURE)
}

impl Create {
    /// The kind asked for, with each option checked against it: an option
    /// that the kind ignores is refused rather than silently dropped.
    fn kind(&self) -> Result<Kind, String> {
        let kind = self.kind.trim();
        let misplaced = |option: &str, wanted: &str| {
            format!("{option} is only for {wanted} credentials, not `{kind}`")
        };
        if self.service.is_some() && kind != "service" {
            return Err(misplaced("--service", "service"));
        }
        if self.node.is_some() && kind != "worker" {
            return Err(misplaced("--node", "worker"));
        }
        if !self.task_subjects.is_empty() && kind != "worker" {
            return Err(misplaced("--task-subject", "worker"));
        }
        let scope = self.service.as_deref().or(self.node.as_deref());
        Kind::parse(kind, scope, &self.task_subjects).map_err(|err| err.to_string())
    }

    async fn run(self) -> anyhow::Result<ExitCode> {
        // Everything the caller gave is checked before anything is
        // written: bad input leaves the table and the files as they were.
        let kind = match self.kind() {
            Ok(kind) => kind,
            Err(why) => return refuse(why),
        };
        if self.name.trim().is_empty() {
            return refuse("a credential needs a name (--name)");
        }
        // The seed file is made (empty) before the row, so a path that
        // cannot be written refuses the credential; if the row is refused
        // the empty file is removed again.
        let seed_file = match self.out.as_deref().map(SeedFile::create).transpose() {
            Ok(file) => file,
            Err(err) if err.is_bad_input() => return refuse(err),
            Err(err) => return Err(err).context("preparing --out"),
        };
        let store = self.database.connect().await?;
        let new = match credentials::issue(&store, &self.name, kind).await {
            Ok(new) => new,
            Err(err) if err.is_bad_input() => return refuse(err),
            Err(err) => return Err(err).context("recording the credential"),
        };
        let identity = &new.identity;
        let described = describe(&identity.kind);
        match seed_file {
            Some(file) => {
                let path = file.path().to_path_buf();
                file.write(&new.seed).with_context(|| {
                    format!(
                        "credential `{}` is recorded but its seed could not be written; \
                         revoke it (`taskyard creds revoke {}`) and create another",
                        identity.name, identity.name
                    )
                })?;
                println!(
                    "credential `{}` ({described}) created; its seed is in {} (mode 0600)",
                    identity.name,
                    path.display()
                );
            }
            None => {
                println!("{}", new.seed);
                eprintln!(
                    "credential `{}` ({described}) created. The seed above is shown only this \
                     once and is never stored: keep it in a file readable by its holder only, \
                     and connect with `--nats-nkey FILE` or TASKYARD_NATS_NKEY_FILE.",
                    identity.name
                );
            }
        }
        eprintln!("public key: {}", identity.public_key);
        apply(&store, &self.servers).await?;
        Ok(ExitCode::SUCCESS)
    }
}

impl List {
    async fn run(self) -> anyhow::Result<ExitCode> {
        let store = self.database.connect().await?;
        let rows = store
            .list_credentials()
            .await
            .context("listing credentials")?;
        if rows.is_empty() {
            println!(
                "no credentials; create one with `taskyard creds create --name NAME --kind operator`"
            );
            return Ok(ExitCode::SUCCESS);
        }
        let scope = |row: &taskyard_store::credentials::CredentialRow| {
            let mut scope = row.scope.clone().unwrap_or_else(|| "-".to_owned());
            if !row.task_subjects.is_empty() {
                scope = format!("{scope} (tasks: {})", row.task_subjects.join(","));
            }
            scope
        };
        let width = |values: Vec<usize>, header: &str| {
            values.into_iter().max().unwrap_or(0).max(header.len())
        };
        let name_width = width(rows.iter().map(|r| r.name.len()).collect(), "NAME");
        let scope_width = width(rows.iter().map(|r| scope(r).len()).collect(), "SCOPE");
        let key_width = width(
            rows.iter().map(|r| r.public_key.len()).collect(),
            "PUBLIC KEY",
        );
        println!(
            "{:<name_width$}  {:<9}  {:<scope_width$}  {:<key_width$}  {:<19}  REVOKED",
            "NAME", "KIND", "SCOPE", "PUBLIC KEY", "CREATED"
        );
        for row in &rows {
            println!(
                "{:<name_width$}  {:<9}  {:<scope_width$}  {:<key_width$}  {:<19}  {}",
                row.name,
                row.kind,
                scope(row),
                row.public_key,
                taskyard_client::readable::format_time(row.created_at),
                row.revoked_at
                    .map(taskyard_client::readable::format_time)
                    .unwrap_or_else(|| "-".to_owned()),
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Revoke {
    async fn run(self) -> anyhow::Result<ExitCode> {
        let store = self.database.connect().await?;
        if !store
            .revoke_credential(&self.name)
            .await
            .context("revoking")?
        {
            return refuse(format_args!("no live credential is named `{}`", self.name));
        }
        println!(
            "credential `{}` revoked: refused from its next connect on, once the servers \
             have reloaded",
            self.name
        );
        apply(&store, &self.servers).await?;
        Ok(ExitCode::SUCCESS)
    }
}

impl Render {
    async fn run(self) -> anyhow::Result<ExitCode> {
        let store = self.database.connect().await?;
        apply(&store, &self.servers).await?;
        Ok(ExitCode::SUCCESS)
    }
}

/// `worker n1`, `service scheduler`, `operator`.
fn describe(kind: &Kind) -> String {
    match kind.scope() {
        Some(scope) => format!("{} {scope}", kind.name()),
        None => kind.name().to_owned(),
    }
}

/// Renders the config from the table and reloads the servers, saying what
/// was done, and how to finish by hand what could not be.
async fn apply(store: &taskyard_store::Store, servers: &Servers) -> anyhow::Result<()> {
    let auth_file = &servers.auth_file;
    let rendered = credentials::render_auth(store, auth_file)
        .await
        .with_context(|| {
            format!(
                "writing {}; the table is up to date, so `taskyard creds render` will \
                 write it once the cause is fixed",
                auth_file.display()
            )
        })?;
    for (name, why) in &rendered.skipped {
        eprintln!(
            "warning: credential `{name}` is left out of the config (refused): {why}; \
             revoke it and issue it again"
        );
    }
    println!(
        "wrote {} ({} identit{} admitted)",
        auth_file.display(),
        rendered.admitted.len(),
        if rendered.admitted.len() == 1 {
            "y"
        } else {
            "ies"
        }
    );
    let pid_files = if servers.nats_pid_files.is_empty() {
        credentials::default_pid_files()
    } else {
        servers.nats_pid_files.clone()
    };
    report(
        auth_file,
        &pid_files,
        &credentials::reload_servers(&pid_files),
    );
    Ok(())
}

fn report(auth_file: &Path, pid_files: &[PathBuf], reload: &Reload) {
    for (path, pid) in &reload.reloaded {
        println!(
            "told nats-server {pid} ({}) to reload its config",
            path.display()
        );
    }
    for (path, why) in &reload.skipped {
        eprintln!("warning: {}: {why}", path.display());
    }
    if reload.reloaded.is_empty() {
        let looked = if pid_files.is_empty() {
            format!(
                "no pid file given and none of a `taskyard up` stack found ({})",
                credentials::DEFAULT_PID_FILES.join(", ")
            )
        } else {
            "no pid file led to a running server".to_owned()
        };
        println!(
            "no nats-server was reloaded: {looked}. A server whose config includes {} \
             applies the change once reloaded: `nats-server --signal reload=<pid>`, or \
             pass --nats-pid-file.",
            auth_file.display()
        );
    }
}
