//! Bearer tokens of the REST API (`api_tokens`).
//!
//! A token is `ty_` followed by 32 random bytes in unpadded base64url. It is
//! shown once, when it is created; the table keeps only its SHA-256 in hex,
//! so neither a database dump nor a backup holds a usable token. A token is
//! looked up by that hash, and revoking it stamps `revoked_at` (the row stays
//! for the record).

use crate::{Result, Store};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use taskyard_wire::Timestamp;
use uuid::Uuid;

/// Every token starts with this, so that one pasted somewhere is easy to
/// recognise (and to scan for).
pub const TOKEN_PREFIX: &str = "ty_";
/// Random bytes in a token.
pub const TOKEN_BYTES: usize = 32;

/// What a token may do. Each role may do everything the one before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads: every `GET`.
    Viewer,
    /// Reads, and runs the cluster: submit, cancel, retry, drain, cordon.
    Operator,
    /// Everything, pools and node removal included.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not `viewer`, `operator` or `admin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a role: use viewer, operator or admin")]
pub struct UnknownRole(pub String);

impl std::str::FromStr for Role {
    type Err = UnknownRole;

    fn from_str(name: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == name)
            .ok_or_else(|| UnknownRole(name.to_owned()))
    }
}

/// A token as listed: everything but the token itself (which is not kept).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenRow {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
}

/// The live token a presented secret belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
}

/// A new token: the secret, to show once, and its row.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    pub token: String,
    pub row: TokenRow,
}

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateTokenError {
    #[error("a token named `{0}` already exists")]
    NameTaken(String),
    #[error("a token needs a name")]
    EmptyName,
    #[error("cannot draw random bytes for the token: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

/// A fresh high-entropy token: `ty_` and 32 bytes from the OS's generator.
pub fn generate_token() -> Result<String, CreateTokenError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|err| CreateTokenError::Random(err.to_string()))?;
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// What the table keeps of a token: its SHA-256, lower-case hex.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        use std::fmt::Write;
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

const TOKEN_COLUMNS: &str = "id, name, role, created_at, last_used_at, revoked_at";

fn token_from_row(row: &tokio_postgres::Row) -> Result<TokenRow> {
    let role: String = row.try_get("role")?;
    Ok(TokenRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role
            .parse()
            .map_err(|err: UnknownRole| crate::StoreError::Corrupt(err.to_string()))?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl Store {
    /// Creates a token named `name` with `role`; the secret is returned once
    /// and only its hash is stored.
    pub async fn create_token(
        &self,
        name: &str,
        role: Role,
    ) -> Result<CreatedToken, CreateTokenError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(CreateTokenError::EmptyName);
        }
        let token = generate_token()?;
        let client = self.client().await?;
        let sql = format!(
            "INSERT INTO api_tokens (id, name, role, token_hash) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING RETURNING {TOKEN_COLUMNS}"
        );
        let row = client
            .query_opt(
                &sql,
                &[&Uuid::now_v7(), &name, &role.as_str(), &hash_token(&token)],
            )
            .await
            .map_err(crate::StoreError::from)?;
        match row {
            Some(row) => Ok(CreatedToken {
                token,
                row: token_from_row(&row)?,
            }),
            None => Err(CreateTokenError::NameTaken(name.to_owned())),
        }
    }

    /// Every token, revoked ones included, oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRow>> {
        let client = self.client().await?;
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, name");
        let rows = client.query(&sql, &[]).await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes the token named `name`; `false` when no live token has it.
    pub async fn revoke_token(&self, name: &str) -> Result<bool> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE api_tokens SET revoked_at = now() \
                 WHERE name = $1 AND revoked_at IS NULL",
                &[&name],
            )
            .await?;
        Ok(n > 0)
    }

    /// The live (not revoked) token whose secret is `token`, stamping its
    /// `last_used_at` (at most once a minute, to keep reads from writing).
    pub async fn authenticate_token(&self, token: &str) -> Result<Option<Authenticated>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "WITH found AS ( \
                     SELECT id, name, role, last_used_at FROM api_tokens \
                     WHERE token_hash = $1 AND revoked_at IS NULL \
                 ), touched AS ( \
                     UPDATE api_tokens t SET last_used_at = now() FROM found \
                     WHERE t.id = found.id \
                       AND (found.last_used_at IS NULL \
                            OR found.last_used_at < now() - interval '1 minute') \
                 ) \
                 SELECT id, name, role FROM found",
                &[&hash_token(token)],
            )
            .await?;
        row.map(|row| {
            let role: String = row.try_get("role")?;
            Ok(Authenticated {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                role: role
                    .parse()
                    .map_err(|err: UnknownRole| crate::StoreError::Corrupt(err.to_string()))?,
            })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_prefixed() {
        let a = generate_token().expect("a token");
        let b = generate_token().expect("a token");
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(a, b);
    }

    #[test]
    fn the_hash_is_sha256_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn roles_are_ordered_and_parsed() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        assert!("root".parse::<Role>().is_err());
    }
}
