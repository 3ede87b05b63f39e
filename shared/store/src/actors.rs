//! The `actor` of a history row: who asked for the change, as
//! `migrations/V12__actors.sql` spells it, from who sent the request
//! ([`Requester`], whose trust rule is in `taskyard_wire::actor`).

use crate::{Result, Store};
use taskyard_wire::actor::{self, Requester};

impl Store {
    /// The actor to record for a request from `requester`: a client's
    /// credential by name (`nats:alice`), or its public key when no row
    /// names it (a credential made outside `taskyard creds`); the api
    /// service's claim for its caller as it is; `None` for the system.
    pub async fn actor(&self, requester: &Requester) -> Result<Option<String>> {
        Ok(match requester {
            Requester::Client {
                public_key: Some(key),
                ..
            } => Some(match self.cached_credential_name(key).await? {
                Some(name) => actor::nats(&name),
                None => actor::nats(key),
            }),
            Requester::Client {
                account,
                public_key: None,
            } => Some(actor::nats_account(account)),
            Requester::Cluster { claimed } => claimed.clone(),
        })
    }
}

/// Keys whose names are kept at most: more credentials than this is not a
/// cluster a person runs, and past it a lookup simply asks Postgres.
const NAMES_KEPT: usize = 10_000;

impl Store {
    /// [`Store::credential_name`], asked of Postgres once per key: the name
    /// of a recorded key never changes (revoking keeps it). A key with no
    /// row is asked again next time, since it may be recorded meanwhile.
    async fn cached_credential_name(&self, public_key: &str) -> Result<Option<String>> {
        let known = self
            .credential_names
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(public_key)
            .cloned();
        if known.is_some() {
            return Ok(known);
        }
        let name = self.credential_name(public_key).await?;
        if let Some(name) = &name {
            let mut names = self
                .credential_names
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if names.len() < NAMES_KEPT {
                names.insert(public_key.to_owned(), name.clone());
            }
        }
        Ok(name)
    }
}
