//! Cancel requests on `taskyard.api.tasks.cancel`: a task that waits
//! (`pending`, `queued`, `retrying`) is `cancelled` at once; a placed one
//! (`scheduled`, `running`) is `cancelled` too, and its node is told to kill
//! the attempt, whose late report then changes nothing.

use crate::announce::{Announcer, kills_for};
use async_nats::service::{Request, Service};
use futures::StreamExt;
use taskyard_runtime::Shutdown;
use taskyard_runtime::access;
use taskyard_store::Store;
use taskyard_wire::control::{CancelReply, CancelRequest};
use taskyard_wire::{Rejection, codec, subjects};

/// Answers cancel requests until `shutdown`.
pub async fn serve(
    service: &Service,
    store: Store,
    announcer: Announcer,
    shutdown: Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut requests = service
        .endpoint(subjects::API_CANCEL)
        .await
        .map_err(|err| anyhow::anyhow!("cannot serve {}: {err}", subjects::API_CANCEL))?;
    Ok(tokio::spawn(async move {
        loop {
            let request = tokio::select! {
                _ = shutdown.wait() => break,
                next = requests.next() => match next {
                    Some(request) => request,
                    None => break,
                },
            };
            answer(request, &store, &announcer).await;
        }
    }))
}

async fn answer(request: Request, store: &Store, announcer: &Announcer) {
    let reply = match codec::decode::<CancelRequest>(&request.message.payload) {
        Err(err) => CancelReply::Refused {
            error: Rejection::new("", err.to_string()),
        },
        Ok(cancel) => cancel_one(&cancel, request.message.headers.as_ref(), store, announcer)
            .await
            .unwrap_or_else(|err| {
                tracing::error!(task_id = %cancel.task_id, error = format!("{err:#}"), "cancel failed");
                CancelReply::Refused {
                    error: Rejection::unavailable("the cancel could not be carried out now; retry"),
                }
            }),
    };
    if let Err(err) = request.respond(Ok(codec::encode(&reply).into())).await {
        tracing::warn!(error = %err, "cannot answer a cancel request");
    }
}

async fn cancel_one(
    cancel: &CancelRequest,
    headers: Option<&async_nats::HeaderMap>,
    store: &Store,
    announcer: &Announcer,
) -> anyhow::Result<CancelReply> {
    let reason = match &cancel.reason {
        Some(reason) => format!("cancelled: {reason}"),
        None => "cancelled on request".to_owned(),
    };
    let requester = access::requester(headers, cancel.requested_by.as_deref());
    let actor = store.actor(&requester).await?;
    let transitions = store
        .cancel_tasks(&[cancel.task_id], &reason, actor.as_deref())
        .await?;
    if let Some(t) = transitions.first() {
        let span = tracing::info_span!("task", task_id = %t.task_id, attempt = t.attempt);
        span.in_scope(
            || tracing::info!(from = %t.from, %reason, actor = actor.as_deref(), "task cancelled"),
        );
        metrics::counter!("taskyard_pool_manager_cancelled_total").increment(1);
        announcer.announce(&transitions).await?;
        announcer.kill(&kills_for(&transitions)).await;
        return Ok(CancelReply::Done {
            task_id: t.task_id,
            state: t.to,
            cancelled: true,
        });
    }
    Ok(match store.get_task(cancel.task_id).await? {
        Some(task) => CancelReply::Done {
            task_id: task.id,
            state: task.state,
            cancelled: false,
        },
        None => CancelReply::Refused {
            error: Rejection::not_found("task_id", format!("no task has id {}", cancel.task_id)),
        },
    })
}
