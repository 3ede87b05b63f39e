//! Every test stack runs its bus with credentials, as production does: each
//! service and each worker node gets its own nkey, made when it is spawned,
//! with exactly the permissions `taskyard_runtime::access` gives its kind;
//! the test's own clients connect as an admin. So the whole suite proves
//! the permissions sufficient, and the security tests prove them necessary.

use std::path::{Path, PathBuf};

use anyhow::Context;
use taskyard_runtime::access::{self, Identity, Kind};
use taskyard_runtime::nats::NatsSecurity;

/// The name of the admin identity the test's own clients use.
pub const ADMIN: &str = "test-admin";

/// The identities of one stack, their seed files and the server's
/// authorization config (`auth.conf`, included by every server's config).
#[derive(Debug)]
pub struct Credentials {
    dir: PathBuf,
    identities: Vec<Identity>,
    revoked: Vec<String>,
}

impl Credentials {
    /// Makes the folder, the admin's, every service's and the CLI's
    /// identities, and `auth.conf`: made before the server starts, they
    /// need no reload. (A reload that changes the accounts moves every
    /// connection to the new ones, and a subscription made meanwhile can
    /// miss a request.)
    pub fn create(dir: &Path) -> anyhow::Result<Credentials> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut credentials = Credentials {
            dir: dir.to_path_buf(),
            identities: Vec::new(),
            revoked: Vec::new(),
        };
        credentials.issue(ADMIN, Kind::Admin)?;
        for service in access::SERVICES {
            let kind = Kind::Service {
                service: service.to_owned(),
            };
            credentials.issue(service, kind)?;
        }
        credentials.issue("cli", Kind::Operator)?;
        Ok(credentials)
    }

    /// The config file the servers include (`creds/auth.conf` of the test
    /// folder: see `AUTH_INCLUDE` in `stack`).
    pub fn auth_file(&self) -> PathBuf {
        self.dir.join("auth.conf")
    }

    /// The seed file of identity `name`.
    pub fn seed_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.nk"))
    }

    /// The seed file of `name`, made (with `kind`) if it is new, in which
    /// case `auth.conf` is rewritten and the servers must be told to reload
    /// (the `bool`).
    pub fn issue(&mut self, name: &str, kind: Kind) -> anyhow::Result<(PathBuf, bool)> {
        let path = self.seed_file(name);
        if self.identities.iter().any(|i| i.name == name) {
            return Ok((path, false));
        }
        let new = access::generate(name, kind)?;
        write_secret(&path, &format!("{}\n", new.seed))?;
        self.identities.push(new.identity);
        self.render()?;
        Ok((path, true))
    }

    /// Drops `name` from `auth.conf` (its seed file stays, so a test can
    /// show it is refused).
    pub fn revoke(&mut self, name: &str) -> anyhow::Result<()> {
        let before = self.identities.len();
        self.identities.retain(|i| i.name != name);
        anyhow::ensure!(self.identities.len() < before, "no identity named {name}");
        self.revoked.push(name.to_owned());
        self.render()
    }

    /// How the test's own clients connect: as the admin.
    pub fn admin(&self) -> NatsSecurity {
        NatsSecurity {
            nkey_file: Some(self.seed_file(ADMIN)),
            ..NatsSecurity::default()
        }
    }

    fn render(&self) -> anyhow::Result<()> {
        let path = self.auth_file();
        // Written whole then renamed, so a server reloading meanwhile never
        // reads half a file.
        let tmp = self.dir.join("auth.conf.tmp");
        std::fs::write(&tmp, access::render_accounts(&self.identities))
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))
    }
}

/// Writes a secret readable by its owner only.
fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The identity a spawned binary runs as, from its name and environment:
/// `taskyard-<service>` is that service, `taskyard-worker` the node of its
/// `TASKYARD_NODE_ID`, and the CLI (`taskyard`) an operator.
pub fn identity_for(
    binary: &str,
    env: &[(&str, &str)],
    task_subjects: &[String],
) -> Option<(String, Kind)> {
    let program = Path::new(binary).file_name()?.to_str()?;
    if program == "taskyard" {
        return Some(("cli".to_owned(), Kind::Operator));
    }
    let service = program.strip_prefix("taskyard-")?;
    if service == "worker" {
        let node = env
            .iter()
            .find(|(key, _)| *key == "TASKYARD_NODE_ID")
            .map(|(_, value)| *value)?;
        let kind = Kind::parse("worker", Some(node), task_subjects).ok()?;
        return Some((access::worker_identity(node), kind));
    }
    // Replicas share their service's identity, as in production.
    let kind = Kind::parse("service", Some(service), &[]).ok()?;
    Some((service.to_owned(), kind))
}
