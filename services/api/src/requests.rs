//! Requests to the services that own pools and nodes, over NATS request/reply.
//!
//! Pools belong to the pool manager (`taskyard.api.pools.<op>`), nodes to the
//! resource manager (`taskyard.api.nodes.<op>`); the API and the CLI only
//! ask. Nothing here knows about HTTP, so the CLI sends the very same requests
//! through these functions and reads the same typed replies.

use async_nats::RequestErrorKind;
use async_nats::client::Request;
use bytes::Bytes;
use serde::Serialize;
use std::time::Duration;
use taskyard_wire::codec::{self, DecodeError};
use taskyard_wire::control::{CancelReply, CancelRequest, NodeReply, NodeRequest};
use taskyard_wire::pool::PoolReply;
use taskyard_wire::subjects;

/// How long the pool manager or the resource manager may take to answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Who owns pools, as error messages name it.
pub const POOL_OWNER: &str = "pool manager";
/// Who owns nodes, as error messages name it.
pub const NODE_OWNER: &str = "resource manager";
/// Who cancels tasks, as error messages name it.
pub const CANCEL_OWNER: &str = "pool manager";

/// Why a request got no usable reply.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Nobody subscribes to the subject: the owner is not running.
    #[error("no {owner} is listening on {subject}; is it running?")]
    NoResponders {
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
    /// The request could not be sent (a closed connection, say).
    #[error("cannot send the request on {subject}")]
    Send {
        subject: String,
        #[source]
        source: async_nats::RequestError,
    },
    /// The owner answered something that is not a reply of the contract.
    #[error("the {owner}'s reply on {subject} is not understood")]
    Reply {
        owner: &'static str,
        subject: String,
        #[source]
        source: DecodeError,
    },
}

impl RequestError {
    /// Whether the owner is missing or too slow (rather than a fault of ours).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            RequestError::NoResponders { .. } | RequestError::TimedOut { .. }
        )
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
    pub fn as_str(self) -> &'static str {
        match self {
            PoolOp::Create => "create",
            PoolOp::Update => "update",
            PoolOp::Delete => "delete",
            PoolOp::Get => "get",
            PoolOp::List => "list",
        }
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
}

/// The body of `get` and `delete`: `{"name": "..."}`.
#[derive(Debug, Serialize)]
pub struct PoolName<'a> {
    pub name: &'a str,
}

/// The body of `list`: `{}`.
#[derive(Debug, Serialize)]
pub struct ListPools {}

/// Sends `body` on `taskyard.api.pools.<op>` and reads the pool manager's
/// reply.
pub async fn pools(
    client: &async_nats::Client,
    op: PoolOp,
    body: Bytes,
    timeout: Duration,
) -> Result<PoolReply, RequestError> {
    request(
        client,
        POOL_OWNER,
        subjects::api_pools(op.as_str()),
        body,
        timeout,
    )
    .await
}

/// Asks the resource manager to `op` the node `node_id`.
pub async fn nodes(
    client: &async_nats::Client,
    op: NodeOp,
    node_id: &str,
    timeout: Duration,
) -> Result<NodeReply, RequestError> {
    let body = codec::encode(&NodeRequest {
        node_id: node_id.to_owned(),
    });
    request(
        client,
        NODE_OWNER,
        subjects::api_nodes(op.as_str()),
        body.into(),
        timeout,
    )
    .await
}

/// Asks the pool manager to cancel task `task_id`.
pub async fn cancel(
    client: &async_nats::Client,
    task_id: uuid::Uuid,
    reason: Option<String>,
    timeout: Duration,
) -> Result<CancelReply, RequestError> {
    let body = codec::encode(&CancelRequest { task_id, reason });
    request(
        client,
        CANCEL_OWNER,
        subjects::API_CANCEL.to_owned(),
        body.into(),
        timeout,
    )
    .await
}

async fn request<T: serde::de::DeserializeOwned>(
    client: &async_nats::Client,
    owner: &'static str,
    subject: String,
    body: Bytes,
    timeout: Duration,
) -> Result<T, RequestError> {
    let request = Request::new().payload(body).timeout(Some(timeout));
    let reply = match client.send_request(subject.clone(), request).await {
        Ok(reply) => reply,
        Err(err) => {
            return Err(match err.kind() {
                RequestErrorKind::NoResponders => RequestError::NoResponders { owner, subject },
                RequestErrorKind::TimedOut => RequestError::TimedOut {
                    owner,
                    subject,
                    timeout,
                },
                _ => RequestError::Send {
                    subject,
                    source: err,
                },
            });
        }
    };
    codec::decode(&reply.payload).map_err(|source| RequestError::Reply {
        owner,
        subject,
        source,
    })
}
