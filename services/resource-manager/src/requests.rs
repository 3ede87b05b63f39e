//! Operators' node requests on `taskyard.api.nodes.<op>`: drain, cordon,
//! uncordon, remove.

use crate::registry::Registry;
use async_nats::service::Request;
use taskyard_runtime::access;
use taskyard_runtime::batching::{Outgoing, publish_all};
use taskyard_store::Store;
use taskyard_store::nodes::Health;
use taskyard_wire::actor::Requester;
use taskyard_wire::control::{Control, NodeReply, NodeRequest};
use taskyard_wire::event::NodeEvent;
use taskyard_wire::{Rejection, RejectionCode, codec, subjects};

/// The operations, as they appear in subjects.
pub const OPERATIONS: [&str; 4] = ["drain", "cordon", "uncordon", "remove"];

/// Carries out one request and answers it.
pub async fn handle(
    op: &str,
    request: Request,
    registry: &mut Registry,
    store: &Store,
    client: &async_nats::Client,
    js: &async_nats::jetstream::Context,
) {
    let reply = match codec::decode::<NodeRequest>(&request.message.payload) {
        Ok(asked) => {
            // Who asked, for the node's history: the server's word for a
            // client, the api service's for its caller.
            let requester = access::requester(
                request.message.headers.as_ref(),
                asked.requested_by.as_deref(),
            );
            apply(op, &asked.node_id, &requester, registry, store, client, js).await
        }
        Err(err) => refused(RejectionCode::Invalid, "", err.to_string()),
    };
    if let Err(err) = request.respond(Ok(codec::encode(&reply).into())).await {
        tracing::warn!(error = %err, "cannot answer a node request");
    }
}

async fn apply(
    op: &str,
    node_id: &str,
    requester: &Requester,
    registry: &mut Registry,
    store: &Store,
    client: &async_nats::Client,
    js: &async_nats::jetstream::Context,
) -> NodeReply {
    let Some((health, _, draining)) = registry.status(node_id) else {
        return refused(
            RejectionCode::NotFound,
            "node_id",
            format!("no node `{node_id}`"),
        );
    };
    let outcome: anyhow::Result<NodeReply> = async {
        let actor = store.actor(requester).await?;
        let actor = actor.as_deref();
        match op {
            "cordon" | "drain" | "uncordon" => {
                let cordon = op != "uncordon";
                let reason = match op {
                    "cordon" => "cordoned by an operator",
                    "drain" => "drain requested by an operator",
                    _ => "uncordoned by an operator",
                };
                store.set_cordoned(node_id, cordon, reason, actor).await?;
                if let Some(event) = registry.set_cordoned(node_id, cordon, reason) {
                    announce(js, &event).await?;
                }
                if op == "drain" {
                    // The worker finishes what it runs and leaves; its
                    // heartbeats say when it is draining.
                    client
                        .publish(
                            subjects::control(node_id),
                            codec::encode(&Control::Drain).into(),
                        )
                        .await?;
                }
                tracing::info!(node_id, op, actor, "node request carried out");
                Ok(done(
                    node_id,
                    health,
                    cordon,
                    draining || op == "drain",
                    false,
                ))
            }
            "remove" => {
                if health == Health::Alive {
                    return Ok(refused(
                        RejectionCode::Conflict,
                        "node_id",
                        format!(
                            "node `{node_id}` is alive; drain it, and remove it once it is lost"
                        ),
                    ));
                }
                store
                    .remove_node(node_id, "removed by an operator", actor)
                    .await?;
                if let Some(event) = registry.remove(node_id, "removed by an operator") {
                    announce(js, &event).await?;
                }
                tracing::info!(node_id, actor, "node removed");
                Ok(done(node_id, health, false, draining, true))
            }
            other => Ok(refused(
                RejectionCode::Invalid,
                "",
                format!("unknown node operation `{other}`"),
            )),
        }
    }
    .await;
    outcome.unwrap_or_else(|err| {
        tracing::error!(
            error = format!("{err:#}"),
            node_id,
            op,
            "node request failed"
        );
        refused(
            RejectionCode::Unavailable,
            "",
            "the request could not be carried out now; retry".to_owned(),
        )
    })
}

async fn announce(js: &async_nats::jetstream::Context, event: &NodeEvent) -> anyhow::Result<()> {
    publish_all(
        js,
        vec![Outgoing::new(
            subjects::node_event(event.kind.as_str()),
            codec::encode(event),
        )],
    )
    .await?;
    Ok(())
}

fn done(node_id: &str, health: Health, cordoned: bool, draining: bool, removed: bool) -> NodeReply {
    NodeReply::Done {
        node_id: node_id.to_owned(),
        health: health.as_str().to_owned(),
        cordoned,
        draining,
        removed,
    }
}

fn refused(code: RejectionCode, field: &str, message: String) -> NodeReply {
    NodeReply::Refused {
        error: Rejection::with_code(code, field, message),
    }
}
