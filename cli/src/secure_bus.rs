//! The bus of a `taskyard up --secure` stack: one nkey per service, per
//! worker node and one for the person at the keyboard under `<dir>/creds`,
//! the servers' authorization config rendered from `nats_credentials`
//! beside them, and the certificates the servers present (a local CA and
//! its server certificate under `<dir>/tls`, made by [`crate::stack`] before
//! Postgres starts, since a Postgres started there serves them too).
//!
//! Identities are kept across restarts: a seed file whose key is still live
//! under its name is used again; one that is missing or was revoked is
//! issued anew (the old key revoked first), so deleting `<dir>/creds` is a
//! way to rotate every key of the stack.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use taskyard_devstack::TlsFiles;
use taskyard_runtime::access::Kind;
use taskyard_store::Store;

use crate::credentials;

/// The identity the person running `taskyard up` (and its demo) connects as.
pub const OPERATOR: &str = "cli";

/// Certificates and seed files of a secure local stack.
#[derive(Debug, Clone)]
pub struct SecureBus {
    tls: TlsFiles,
    creds_dir: PathBuf,
    seeds: BTreeMap<String, PathBuf>,
}

impl SecureBus {
    /// Makes (or keeps) the seed file of each of `identities`, and the
    /// authorization config of every live credential (these and any made by
    /// `taskyard creds`); the servers will present `tls`.
    pub async fn prepare(
        dir: &Path,
        store: &Store,
        tls: TlsFiles,
        identities: &[(String, Kind)],
    ) -> anyhow::Result<SecureBus> {
        let creds_dir = dir.join("creds");
        create_private_dir(&creds_dir)?;
        let mut seeds = BTreeMap::new();
        for (name, kind) in identities {
            let path = ensure_identity(store, &creds_dir, name, kind.clone())
                .await
                .with_context(|| format!("preparing the credential `{name}`"))?;
            seeds.insert(name.clone(), path);
        }
        credentials::render_auth(store, &creds_dir.join("auth.conf"))
            .await
            .context("rendering the servers' authorization config")?;
        Ok(SecureBus {
            tls,
            creds_dir,
            seeds,
        })
    }

    pub fn tls(&self) -> &TlsFiles {
        &self.tls
    }

    /// The config line that makes a server whose config sits `depth`
    /// folders below the stack's folder enforce the credentials
    /// (nats-server takes includes relative to the including file only).
    pub fn authorization(&self, depth: usize) -> String {
        format!("include \"{}creds/auth.conf\"\n", "../".repeat(depth))
    }

    /// The seed file of identity `name`, prepared by [`SecureBus::prepare`].
    pub fn seed(&self, name: &str) -> anyhow::Result<&Path> {
        self.seeds
            .get(name)
            .map(PathBuf::as_path)
            .with_context(|| format!("no credential `{name}` was prepared for this stack"))
    }

    /// Where the seed files and `auth.conf` are.
    pub fn creds_dir(&self) -> &Path {
        &self.creds_dir
    }
}

/// The seed file of `name`: the one on disk when its key is live under that
/// name, else a new key (a stale live row of the name revoked first).
async fn ensure_identity(
    store: &Store,
    creds_dir: &Path,
    name: &str,
    kind: Kind,
) -> anyhow::Result<PathBuf> {
    let path = creds_dir.join(format!("{name}.nk"));
    let live = store
        .list_credentials()
        .await?
        .into_iter()
        .find(|row| row.name == name && row.revoked_at.is_none());
    if let (Some(row), Ok(seed)) = (&live, std::fs::read_to_string(&path))
        && public_key_of(&seed).as_deref() == Some(row.public_key.as_str())
        && credentials::kind_of(row).ok().as_ref() == Some(&kind)
    {
        return Ok(path);
    }
    if live.is_some() {
        store.revoke_credential(name).await?;
    }
    if path.exists() {
        std::fs::remove_file(&path).with_context(|| format!("replacing {}", path.display()))?;
    }
    let new = credentials::issue(store, name, kind).await?;
    credentials::write_seed(&path, &new.seed)?;
    Ok(path)
}

/// Makes `dir` (readable by its owner only: it holds every seed of the
/// stack) if it is missing.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// The public key of a seed, if it is one.
fn public_key_of(seed: &str) -> Option<String> {
    nkeys::KeyPair::from_seed(seed.trim())
        .ok()
        .map(|pair| pair.public_key())
}
