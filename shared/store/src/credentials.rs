//! NATS credentials (`nats_credentials`): who may connect to the bus, and
//! as what.
//!
//! A row holds an identity's name, kind, scope and the public half of its
//! nkey; the seed is never stored (only its holder has it). `taskyard creds`
//! writes the rows and renders the server's authorization config from the
//! live ones. Services read the table to name the identity behind a request
//! (the `Nats-Request-Info` header carries the sender's public key), so the
//! audit trail says `nats:alice`, not a key. Revoking stamps `revoked_at`;
//! the row stays for the record.

use crate::{Result, Store};
use taskyard_wire::Timestamp;
use uuid::Uuid;

/// One credential as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    pub id: Uuid,
    pub name: String,
    /// `service`, `worker`, `submitter`, `operator` or `admin`.
    pub kind: String,
    /// The service or node a service or worker credential is for.
    pub scope: Option<String>,
    /// Subjects a worker's `nats` tasks may send requests to.
    pub task_subjects: Vec<String>,
    /// The nkey's public half (`U...`).
    pub public_key: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A credential to record (its seed stays with the caller).
#[derive(Debug, Clone)]
pub struct NewCredential<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub scope: Option<&'a str>,
    pub task_subjects: &'a [String],
    pub public_key: &'a str,
}

/// Why a credential could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum CreateCredentialError {
    #[error("a live credential named `{0}` already exists; revoke it first to re-issue the name")]
    NameTaken(String),
    #[error("a credential needs a name")]
    EmptyName,
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

const COLUMNS: &str = "id, name, kind, scope, task_subjects, public_key, created_at, revoked_at";

fn from_row(row: &tokio_postgres::Row) -> Result<CredentialRow> {
    Ok(CredentialRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        scope: row.try_get("scope")?,
        task_subjects: row.try_get("task_subjects")?,
        public_key: row.try_get("public_key")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl Store {
    /// Records a new credential; no live one may have its name, so that a
    /// name in the audit trail means one holder at a time.
    pub async fn create_credential(
        &self,
        new: &NewCredential<'_>,
    ) -> Result<CredentialRow, CreateCredentialError> {
        let name = new.name.trim();
        if name.is_empty() {
            return Err(CreateCredentialError::EmptyName);
        }
        let client = self.client().await?;
        let sql = format!(
            "INSERT INTO nats_credentials (id, name, kind, scope, task_subjects, public_key) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING RETURNING {COLUMNS}"
        );
        let row = client
            .query_opt(
                &sql,
                &[
                    &Uuid::now_v7(),
                    &name,
                    &new.kind,
                    &new.scope,
                    &new.task_subjects,
                    &new.public_key,
                ],
            )
            .await
            .map_err(crate::StoreError::from)?;
        match row {
            Some(row) => Ok(from_row(&row)?),
            None => Err(CreateCredentialError::NameTaken(name.to_owned())),
        }
    }

    /// Every credential, revoked ones included, oldest first.
    pub async fn list_credentials(&self) -> Result<Vec<CredentialRow>> {
        let client = self.client().await?;
        let sql = format!("SELECT {COLUMNS} FROM nats_credentials ORDER BY created_at, name");
        let rows = client.query(&sql, &[]).await?;
        rows.iter().map(from_row).collect()
    }

    /// Revokes the credential named `name`; `false` when no live one has it.
    pub async fn revoke_credential(&self, name: &str) -> Result<bool> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE nats_credentials SET revoked_at = now() \
                 WHERE name = $1 AND revoked_at IS NULL",
                &[&name],
            )
            .await?;
        Ok(n > 0)
    }

    /// The name of the credential whose public key is `public_key`, revoked
    /// or not (a request may be judged after its sender was revoked).
    pub async fn credential_name(&self, public_key: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT name FROM nats_credentials WHERE public_key = $1",
                &[&public_key],
            )
            .await?;
        Ok(row.map(|row| row.try_get("name")).transpose()?)
    }
}
