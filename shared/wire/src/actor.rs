//! Who asked for a change: the `actor` that history rows keep
//! (`task_events`, `node_events`, `pool_events`).
//!
//! A request on `taskyard.api.>` may name who it is made for
//! (`requested_by` in the body; the `Taskyard-Requested-By` header on a
//! submission, whose body is the task itself). Only a sender in the
//! cluster's own account is believed: that is the api service, which
//! checked its caller's token. A request that crossed from the clients'
//! account carries the server's `Nats-Request-Info` header naming the
//! sender's nkey, and that, not the body, says who asked: a client cannot
//! speak for anyone but itself.

/// What a REST caller is recorded as when the API runs without auth
/// (allowed on loopback only): nobody in particular, through the API.
pub const API_OPEN: &str = "api:open";

/// The header that carries `requested_by` on a submission
/// (`taskyard.api.submit`), whose body is the submission itself.
pub const REQUESTED_BY_HEADER: &str = "Taskyard-Requested-By";

/// A REST caller with the API token named `name`.
pub fn token(name: &str) -> String {
    format!("token:{name}")
}

/// A NATS requester whose credential is named `name` (or, when no
/// credential row names its key, the public key itself).
pub fn nats(name: &str) -> String {
    format!("nats:{name}")
}

/// A NATS requester of account `account` whose key the server did not say.
pub fn nats_account(account: &str) -> String {
    format!("nats:account:{account}")
}

/// Who sent a request, as far as its receiver can know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    /// The request crossed from another account (the clients'): the server
    /// names the sender's nkey, whatever the body claims.
    Client {
        account: String,
        /// The sender's public key (`U...`), when the server gave it.
        public_key: Option<String>,
    },
    /// The request came from within the cluster's account: its sender (the
    /// api service) speaks for its own caller, or for nobody (`None`: the
    /// system itself).
    Cluster { claimed: Option<String> },
}

impl Requester {
    /// The trust rule. `crossed` is what the server's `Nats-Request-Info`
    /// header says (the account and the nkey), when the request has one;
    /// `claimed` is the request's own `requested_by`. The header wins: a
    /// claim is believed only from a sender inside the cluster's account,
    /// which no client is.
    pub fn judge(crossed: Option<Crossed>, claimed: Option<&str>) -> Requester {
        match crossed {
            Some(Crossed {
                account,
                public_key,
            }) => Requester::Client {
                account,
                public_key,
            },
            None => Requester::Cluster {
                claimed: claimed
                    .map(str::trim)
                    .filter(|claim| !claim.is_empty())
                    .map(str::to_owned),
            },
        }
    }
}

/// What the server says of a request that crossed accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossed {
    pub account: String,
    pub public_key: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Crossed {
        Crossed {
            account: "CLIENTS".to_owned(),
            public_key: Some("UALICE".to_owned()),
        }
    }

    #[test]
    fn the_servers_word_beats_the_bodys_claim() {
        assert_eq!(
            Requester::judge(Some(alice()), Some("token:root")),
            Requester::Client {
                account: "CLIENTS".to_owned(),
                public_key: Some("UALICE".to_owned()),
            }
        );
    }

    #[test]
    fn a_claim_from_inside_the_cluster_is_believed() {
        assert_eq!(
            Requester::judge(None, Some("token:alice")),
            Requester::Cluster {
                claimed: Some("token:alice".to_owned())
            }
        );
        assert_eq!(
            Requester::judge(None, Some("  ")),
            Requester::Cluster { claimed: None },
            "an empty claim names nobody"
        );
        assert_eq!(
            Requester::judge(None, None),
            Requester::Cluster { claimed: None }
        );
    }

    #[test]
    fn actors_are_spelled_as_the_migration_says() {
        assert_eq!(token("ci"), "token:ci");
        assert_eq!(nats("alice"), "nats:alice");
        assert_eq!(nats_account("CLIENTS"), "nats:account:CLIENTS");
    }
}
