//! The typed client of Taskyard's request subjects, the one home of that
//! side of the contract.
//!
//! [`Client`] sends every request a Taskyard service answers over NATS
//! request/reply (submissions to the orchestrator, pools to the pool
//! manager, nodes to the resource manager, cancels to the pool manager) and
//! asks the bus which micro services run ([`Client::services`]). Each method
//! returns what the owner did, or one [`ClientError`]: nobody listening, no
//! answer in time, a refusal (with its [`Rejection`] and code), an
//! unreadable reply, or NATS itself failing. Nothing here knows HTTP: the
//! api, the CLI, the demo workload and the end-to-end tests all use it.
//!
//! [`readable`] formats durations and times for people, for the CLI and the
//! api's console alike.

pub mod discovery;
pub mod readable;

use async_nats::RequestErrorKind;
use async_nats::client::Request;
use bytes::Bytes;
use serde::Serialize;
use std::time::Duration;
use taskyard_wire::codec;
use taskyard_wire::control::{CancelReply, CancelRequest, NodeReply, NodeRequest};
use taskyard_wire::pool::{PoolName, PoolReply, PoolSpec};
use taskyard_wire::reply::SubmitReply;
use taskyard_wire::{Rejection, TaskState, actor, subjects};
use uuid::Uuid;

pub use discovery::{DISCOVERY_WINDOW, EndpointStats, ServiceInstance};

/// How long an owner may take to answer a request: long enough for a
/// service that is busy writing a batch, short enough that a person at a
/// terminal or an HTTP client learns soon that it is down.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Who answers submissions, as error messages name it.
pub const SUBMIT_OWNER: &str = "orchestrator";
/// Who owns pools, as error messages name it.
pub const POOL_OWNER: &str = "pool manager";
/// Who owns nodes, as error messages name it.
pub const NODE_OWNER: &str = "resource manager";
/// Who cancels tasks, as error messages name it.
pub const CANCEL_OWNER: &str = "pool manager";

/// Why a request did not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody subscribes to the subject: the owner is not running.
    #[error("no {owner} is listening on {subject}; is it running?")]
    NoReply {
        owner: &'static str,
        subject: String,
    },
    /// The owner did not answer in time.
    #[error("the {owner} did not answer on {subject} within {} s", timeout.as_secs())]
    TimedOut {
        owner: &'static str,
        subject: String,
        timeout: Duration,
    },
    /// The owner refused; the rejection's code says how (`not_found`, ...).
    #[error("{0}")]
    Refused(Rejection),
    /// The owner answered something that is not a reply of the contract
    /// (or not the one this request expects).
    #[error("the {owner}'s reply on {subject} is not understood: {reason}")]
    Unreadable {
        owner: &'static str,
        subject: String,
        reason: String,
    },
    /// The owner answered with a NATS service error (`Nats-Service-Error`
    /// headers) instead of a reply of the contract: it could not do it.
    #[error("the {owner} could not answer on {subject}: {message} (code {code})")]
    Failed {
        owner: &'static str,
        subject: String,
        /// `Nats-Service-Error-Code`, an HTTP-like status; 503 means "ask again later".
        code: u16,
        message: String,
    },
    /// The request is larger than the NATS server carries.
    #[error("the request is {size} bytes; the NATS server accepts at most {max}")]
    TooLarge { size: usize, max: usize },
    /// NATS could not carry the request (a closed connection, say).
    #[error("NATS failed on {subject}")]
    Nats {
        subject: String,
        #[source]
        source: async_nats::Error,
    },
}

impl ClientError {
    /// Whether the owner is missing or too slow (rather than a fault of the
    /// request or of the reply).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ClientError::NoReply { .. }
                | ClientError::TimedOut { .. }
                | ClientError::Failed { code: 503, .. }
        )
    }

    /// The owner's refusal, if that is what this is.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            ClientError::Refused(rejection) => Some(rejection),
            _ => None,
        }
    }
}

/// An operation on pools: the last token of `taskyard.api.pools.<op>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolOp {
    Create,
    Update,
    Delete,
    Get,
    List,
}

impl PoolOp {
    pub const ALL: [PoolOp; 5] = [
        PoolOp::Create,
        PoolOp::Update,
        PoolOp::Delete,
        PoolOp::Get,
        PoolOp::List,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PoolOp::Create => "create",
            PoolOp::Update => "update",
            PoolOp::Delete => "delete",
            PoolOp::Get => "get",
            PoolOp::List => "list",
        }
    }

    /// The operation a subject token names, if any.
    pub fn parse(token: &str) -> Option<PoolOp> {
        PoolOp::ALL.into_iter().find(|op| op.as_str() == token)
    }
}

/// An operation on one node: the last token of `taskyard.api.nodes.<op>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeOp {
    /// Stop placing work there and ask the worker to finish and leave.
    Drain,
    /// Stop placing work there; running tasks go on.
    Cordon,
    /// Place work there again.
    Uncordon,
    /// Forget the node (refused while it is alive and not drained).
    Remove,
}

impl NodeOp {
    pub const ALL: [NodeOp; 4] = [
        NodeOp::Drain,
        NodeOp::Cordon,
        NodeOp::Uncordon,
        NodeOp::Remove,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeOp::Drain => "drain",
            NodeOp::Cordon => "cordon",
            NodeOp::Uncordon => "uncordon",
            NodeOp::Remove => "remove",
        }
    }

    /// The operation a subject token names, if any.
    pub fn parse(token: &str) -> Option<NodeOp> {
        NodeOp::ALL.into_iter().find(|op| op.as_str() == token)
    }
}

/// The tasks a submission created (or found, for a resubmission).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// In submission order.
    pub ids: Vec<Uuid>,
    /// The workflow's id, when the submission was a workflow object.
    pub workflow_id: Option<Uuid>,
}

/// A node after an operation on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub node_id: String,
    pub health: String,
    pub cordoned: bool,
    pub draining: bool,
    pub removed: bool,
}

/// A task after a cancel request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelOutcome {
    pub task_id: Uuid,
    /// `cancelled`, or the final state it had already reached.
    pub state: TaskState,
    /// Whether this request cancelled it (false: it had already ended).
    pub cancelled: bool,
}

/// The body of pool `list`: `{}`.
#[derive(Debug, Serialize)]
struct ListPools {}

/// A client of the request subjects over one NATS connection; cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Client {
    nats: async_nats::Client,
    timeout: Duration,
    requested_by: Option<String>,
}

impl Client {
    /// A client on `nats` that waits [`REQUEST_TIMEOUT`] for each answer.
    pub fn new(nats: async_nats::Client) -> Client {
        Client {
            nats,
            timeout: REQUEST_TIMEOUT,
            requested_by: None,
        }
    }

    /// The same client, waiting `timeout` for each answer.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The same client, asking on behalf of `actor` (`token:<name>`; see
    /// [`taskyard_wire::actor`]): its submissions, cancels, node and pool
    /// changes are recorded as `actor`'s. Only the api service's word is
    /// believed: on a connection of the clients' account the services
    /// record the connection's own credential instead.
    pub fn on_behalf_of(mut self, actor: impl Into<String>) -> Client {
        self.requested_by = Some(actor.into());
        self
    }

    /// The connection it sends on.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// Submits `body` (a task, an array of tasks or a workflow object, as
    /// JSON) on `taskyard.api.submit`. It is sent as it is: the orchestrator
    /// is the one that validates it.
    pub async fn submit(&self, body: impl Into<Bytes>) -> Result<Submitted, ClientError> {
        let subject = subjects::API_SUBMIT;
        // The body is the submission itself, so who asked goes in a header.
        let headers = self.requested_by.as_deref().map(|by| {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(actor::REQUESTED_BY_HEADER, by);
            headers
        });
        match self
            .ask_with(SUBMIT_OWNER, subject.to_owned(), body.into(), headers)
            .await?
        {
            SubmitReply::Accepted { ids, workflow_id } => Ok(Submitted { ids, workflow_id }),
            SubmitReply::Refused { error } => Err(ClientError::Refused(error)),
        }
    }

    /// Every pool.
    pub async fn pools(&self) -> Result<Vec<PoolSpec>, ClientError> {
        match self.pool_request(PoolOp::List, &ListPools {}).await? {
            PoolReply::Many { pools } => Ok(pools),
            other => Err(unexpected_pool_reply(PoolOp::List, &other)),
        }
    }

    /// The pool named `name`; refused with `not_found` when there is none.
    pub async fn pool(&self, name: &str) -> Result<PoolSpec, ClientError> {
        let body = PoolName {
            name: name.to_owned(),
            requested_by: None,
        };
        self.one_pool(PoolOp::Get, &body).await
    }

    /// Creates the pool `definition` describes (a [`PoolSpec`], or the JSON
    /// object a client wrote, whose omissions the pool manager fills in);
    /// returns it as created.
    pub async fn create_pool<T: Serialize>(&self, definition: &T) -> Result<PoolSpec, ClientError> {
        self.one_pool(PoolOp::Create, &self.pool_change(definition))
            .await
    }

    /// Replaces the definition of the pool `definition` names.
    pub async fn update_pool<T: Serialize>(&self, definition: &T) -> Result<PoolSpec, ClientError> {
        self.one_pool(PoolOp::Update, &self.pool_change(definition))
            .await
    }

    /// Deletes the pool `name`; returns it as it was.
    pub async fn delete_pool(&self, name: &str) -> Result<PoolSpec, ClientError> {
        let body = PoolName {
            name: name.to_owned(),
            requested_by: self.requested_by.clone(),
        };
        self.one_pool(PoolOp::Delete, &body).await
    }

    /// The body of a pool change ([`taskyard_wire::pool::PoolChange`]): the
    /// definition as the caller wrote it (the pool manager fills in what it
    /// leaves out), with `requested_by` beside its fields.
    fn pool_change<T: Serialize>(&self, definition: &T) -> serde_json::Value {
        let mut body = serde_json::to_value(definition).unwrap_or(serde_json::Value::Null);
        if let (Some(by), serde_json::Value::Object(fields)) = (&self.requested_by, &mut body) {
            fields.insert(
                taskyard_wire::pool::REQUESTED_BY.to_owned(),
                serde_json::Value::from(by.as_str()),
            );
        }
        body
    }

    /// Asks the resource manager to `op` the node `node_id`.
    pub async fn node(&self, op: NodeOp, node_id: &str) -> Result<NodeStatus, ClientError> {
        let body = codec::encode(&NodeRequest {
            node_id: node_id.to_owned(),
            requested_by: self.requested_by.clone(),
        });
        let subject = subjects::api_nodes(op.as_str());
        match self.ask(NODE_OWNER, subject, body.into()).await? {
            NodeReply::Done {
                node_id,
                health,
                cordoned,
                draining,
                removed,
            } => Ok(NodeStatus {
                node_id,
                health,
                cordoned,
                draining,
                removed,
            }),
            NodeReply::Refused { error } => Err(ClientError::Refused(error)),
        }
    }

    /// Asks the pool manager to cancel task `task_id`, giving `reason` (kept
    /// in its history).
    pub async fn cancel(
        &self,
        task_id: Uuid,
        reason: Option<String>,
    ) -> Result<CancelOutcome, ClientError> {
        let body = codec::encode(&CancelRequest {
            task_id,
            reason,
            requested_by: self.requested_by.clone(),
        });
        let subject = subjects::API_CANCEL.to_owned();
        match self.ask(CANCEL_OWNER, subject, body.into()).await? {
            CancelReply::Done {
                task_id,
                state,
                cancelled,
            } => Ok(CancelOutcome {
                task_id,
                state,
                cancelled,
            }),
            CancelReply::Refused { error } => Err(ClientError::Refused(error)),
        }
    }

    /// Every micro service instance on the bus that answers within `window`
    /// (see [`discovery`]).
    pub async fn services(&self, window: Duration) -> Result<Vec<ServiceInstance>, ClientError> {
        discovery::discover(&self.nats, window).await
    }

    async fn one_pool<T: Serialize>(&self, op: PoolOp, body: &T) -> Result<PoolSpec, ClientError> {
        match self.pool_request(op, body).await? {
            PoolReply::One { pool } => Ok(pool),
            other => Err(unexpected_pool_reply(op, &other)),
        }
    }

    /// A pool request whose refusal is already an error.
    async fn pool_request<T: Serialize>(
        &self,
        op: PoolOp,
        body: &T,
    ) -> Result<PoolReply, ClientError> {
        let subject = subjects::api_pools(op.as_str());
        match self
            .ask(POOL_OWNER, subject, codec::encode(body).into())
            .await?
        {
            PoolReply::Refused { error } => Err(ClientError::Refused(error)),
            reply => Ok(reply),
        }
    }

    /// Sends `body` on `subject` and reads the reply as `T`.
    async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        owner: &'static str,
        subject: String,
        body: Bytes,
    ) -> Result<T, ClientError> {
        self.ask_with(owner, subject, body, None).await
    }

    /// [`Client::ask`], with `headers`.
    async fn ask_with<T: serde::de::DeserializeOwned>(
        &self,
        owner: &'static str,
        subject: String,
        body: Bytes,
        headers: Option<async_nats::HeaderMap>,
    ) -> Result<T, ClientError> {
        let size = body.len();
        let mut request = Request::new().payload(body).timeout(Some(self.timeout));
        if let Some(headers) = headers {
            request = request.headers(headers);
        }
        let reply = match self.nats.send_request(subject.clone(), request).await {
            Ok(reply) => reply,
            Err(err) => {
                return Err(match err.kind() {
                    RequestErrorKind::NoResponders => ClientError::NoReply { owner, subject },
                    RequestErrorKind::TimedOut => ClientError::TimedOut {
                        owner,
                        subject,
                        timeout: self.timeout,
                    },
                    RequestErrorKind::MaxPayloadExceeded => ClientError::TooLarge {
                        size,
                        max: self.nats.server_info().max_payload,
                    },
                    _ => ClientError::Nats {
                        subject,
                        source: Box::new(err),
                    },
                });
            }
        };
        if let Some(failure) = service_error(&reply) {
            let (code, message) = failure;
            return Err(ClientError::Failed {
                owner,
                subject,
                code,
                message,
            });
        }
        codec::decode(&reply.payload).map_err(|err| ClientError::Unreadable {
            owner,
            subject,
            reason: err.to_string(),
        })
    }
}

/// The code and text of a NATS service error reply, whose body is empty: read
/// as a reply of the contract, it would only say "EOF while parsing".
fn service_error(reply: &async_nats::Message) -> Option<(u16, String)> {
    let headers = reply.headers.as_ref()?;
    let message = headers.get(async_nats::service::NATS_SERVICE_ERROR)?;
    let code = headers
        .get(async_nats::service::NATS_SERVICE_ERROR_CODE)
        .and_then(|code| code.as_str().parse().ok())
        .unwrap_or(500);
    Some((code, message.as_str().to_owned()))
}

/// A pool reply of the contract, but not the one `op` is answered with.
fn unexpected_pool_reply(op: PoolOp, reply: &PoolReply) -> ClientError {
    let got = match reply {
        PoolReply::One { .. } => "one pool",
        PoolReply::Many { .. } => "a list of pools",
        PoolReply::Refused { .. } => "a refusal",
    };
    ClientError::Unreadable {
        owner: POOL_OWNER,
        subject: subjects::api_pools(op.as_str()),
        reason: format!("{got}, to a `{}` request", op.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_as_in_their_subjects() {
        for op in PoolOp::ALL {
            assert_eq!(PoolOp::parse(op.as_str()), Some(op));
        }
        for op in NodeOp::ALL {
            assert_eq!(NodeOp::parse(op.as_str()), Some(op));
        }
        assert_eq!(PoolOp::parse("rename"), None);
    }

    #[test]
    fn errors_name_the_owner_and_the_subject() {
        let err = ClientError::NoReply {
            owner: POOL_OWNER,
            subject: subjects::api_pools("list"),
        };
        assert_eq!(
            err.to_string(),
            "no pool manager is listening on taskyard.api.pools.list; is it running?"
        );
        assert!(err.is_unavailable());
        let refused = ClientError::Refused(Rejection::not_found("name", "no pool named `x`"));
        assert_eq!(refused.to_string(), "name: no pool named `x`");
        assert!(!refused.is_unavailable());
        assert!(refused.rejection().is_some());
    }
}
