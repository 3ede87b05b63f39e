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
            } => Some(match self.credential_name(key).await? {
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
