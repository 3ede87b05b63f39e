//! Pool requests on `taskyard.api.pools.<op>`: create, update, delete, get,
//! list. Every change is announced on `taskyard.events.pool.<changed|deleted>`,
//! so the scheduler and orchestrator follow it without a restart.

use async_nats::service::{Request, Service};
use futures::StreamExt;
use taskyard_runtime::Shutdown;
use taskyard_runtime::access;
use taskyard_runtime::batching::{Outgoing, publish_all};
use taskyard_store::Store;
use taskyard_store::pools::PoolDeletion;
use taskyard_wire::pool::{PoolChange, PoolEvent, PoolName, PoolReply, PoolSpec};
use taskyard_wire::{Rejection, RejectionCode, codec, subjects};

/// The operations, as they appear in subjects.
pub const OPERATIONS: [&str; 5] = ["create", "update", "delete", "get", "list"];

/// Answers pool requests until `shutdown`.
pub async fn serve(
    service: &Service,
    store: Store,
    js: async_nats::jetstream::Context,
    shutdown: Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut requests =
        taskyard_runtime::micro::operations(service, subjects::API_POOLS_PREFIX, &OPERATIONS)
            .await?;
    Ok(tokio::spawn(async move {
        loop {
            let (op, request) = tokio::select! {
                _ = shutdown.wait() => break,
                next = requests.next() => match next {
                    Some(next) => next,
                    None => break,
                },
            };
            // One at a time: pool changes are rare, and ordering them keeps
            // the announced sequence equal to the database's.
            answer(op, request, &store, &js).await;
        }
    }))
}

async fn answer(op: &str, request: Request, store: &Store, js: &async_nats::jetstream::Context) {
    let headers = request.message.headers.as_ref();
    let reply = match apply(op, &request.message.payload, headers, store, js).await {
        Ok(reply) => reply,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), op, "pool request failed");
            refused(
                RejectionCode::Unavailable,
                "",
                "the request could not be carried out now; retry",
            )
        }
    };
    if let Err(err) = request.respond(Ok(codec::encode(&reply).into())).await {
        tracing::warn!(error = %err, "cannot answer a pool request");
    }
}

async fn apply(
    op: &str,
    body: &[u8],
    headers: Option<&async_nats::HeaderMap>,
    store: &Store,
    js: &async_nats::jetstream::Context,
) -> anyhow::Result<PoolReply> {
    // Who asked, for the changes' history: the server's word for a client,
    // the api service's for its caller.
    let actor = |requested_by: Option<&str>| {
        let requester = access::requester(headers, requested_by);
        async move { store.actor(&requester).await }
    };
    Ok(match op {
        "list" => PoolReply::Many {
            pools: store.list_pools().await?,
        },
        "get" => {
            let name = match codec::decode::<PoolName>(body) {
                Ok(by) => by.name,
                Err(err) => return Ok(refused(RejectionCode::Invalid, "", &err.to_string())),
            };
            match store.get_pool(&name).await? {
                Some(pool) => PoolReply::One { pool },
                None => not_found(&name),
            }
        }
        "create" | "update" => {
            let PoolChange { pool, requested_by } = match codec::decode::<PoolChange>(body) {
                Ok(change) => change,
                Err(err) => return Ok(refused(RejectionCode::Invalid, "", &err.to_string())),
            };
            if let Err(error) = pool.validate() {
                return Ok(PoolReply::Refused { error });
            }
            let actor = actor(requested_by.as_deref()).await?;
            let done = if op == "create" {
                store.create_pool(&pool, actor.as_deref()).await?
            } else {
                store.update_pool(&pool, actor.as_deref()).await?
            };
            if !done {
                return Ok(if op == "create" {
                    refused(
                        RejectionCode::Conflict,
                        "name",
                        &format!("a pool named `{}` already exists", pool.name),
                    )
                } else {
                    not_found(&pool.name)
                });
            }
            announce(js, &pool, false).await?;
            tracing::info!(pool = %pool.name, op, actor = actor.as_deref(), "pool saved");
            PoolReply::One { pool }
        }
        "delete" => {
            let (name, requested_by) = match codec::decode::<PoolName>(body) {
                Ok(by) => (by.name, by.requested_by),
                Err(err) => return Ok(refused(RejectionCode::Invalid, "", &err.to_string())),
            };
            if name == taskyard_wire::task::DEFAULT_POOL {
                return Ok(refused(
                    RejectionCode::Conflict,
                    "name",
                    "the default pool cannot be deleted",
                ));
            }
            let actor = actor(requested_by.as_deref()).await?;
            match store.delete_pool(&name, actor.as_deref()).await? {
                PoolDeletion::NotFound => not_found(&name),
                PoolDeletion::Busy { active } => refused(
                    RejectionCode::Conflict,
                    "name",
                    &format!("pool `{name}` still has {active} waiting or running tasks"),
                ),
                PoolDeletion::Deleted(pool) => {
                    announce(js, &pool, true).await?;
                    tracing::info!(pool = %pool.name, actor = actor.as_deref(), "pool deleted");
                    PoolReply::One { pool }
                }
            }
        }
        other => refused(
            RejectionCode::Invalid,
            "",
            &format!("unknown pool operation `{other}`"),
        ),
    })
}

async fn announce(
    js: &async_nats::jetstream::Context,
    pool: &PoolSpec,
    deleted: bool,
) -> anyhow::Result<()> {
    let event = PoolEvent {
        pool: pool.clone(),
        deleted,
        at: taskyard_wire::now(),
    };
    publish_all(
        js,
        vec![Outgoing::new(
            subjects::pool_event(deleted),
            codec::encode(&event),
        )],
    )
    .await?;
    Ok(())
}

fn not_found(name: &str) -> PoolReply {
    refused(
        RejectionCode::NotFound,
        "name",
        &format!("no pool named `{name}`"),
    )
}

fn refused(code: RejectionCode, field: &str, message: &str) -> PoolReply {
    PoolReply::Refused {
        error: Rejection::with_code(code, field, message),
    }
}
