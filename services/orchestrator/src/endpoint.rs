//! `taskyard.api.submit`: submit and get the ids, or the reason, in the reply.

use crate::intake::{IdSource, Plan, plan};
use crate::pool_view::{self, SharedView};
use crate::recorder::{Recorded, Recorder};
use async_nats::service::{Request, Service};
use futures::StreamExt;
use std::sync::Arc;
use taskyard_runtime::{Shutdown, access, error_throttled};
use taskyard_store::StoreError;
use taskyard_wire::reply::SubmitReply;
use taskyard_wire::task::Limits;
use taskyard_wire::{actor, codec, subjects};
use tokio::sync::Semaphore;

/// Requests handled at once; more wait for a turn.
pub const MAX_CONCURRENT_REQUESTS: usize = 64;

/// Starts answering submissions; the task ends on `shutdown`.
pub async fn serve(
    service: &Service,
    recorder: Recorder,
    pools: SharedView,
    limits: Limits,
    shutdown: Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut endpoint = service
        .endpoint(subjects::API_SUBMIT)
        .await
        .map_err(|err| anyhow::anyhow!("cannot serve {}: {err}", subjects::API_SUBMIT))?;
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_REQUESTS));
    Ok(tokio::spawn(async move {
        loop {
            let request = tokio::select! {
                _ = shutdown.wait() => break,
                request = endpoint.next() => match request {
                    Some(request) => request,
                    None => break,
                },
            };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let recorder = recorder.clone();
            let pools = pools.clone();
            tokio::spawn(async move {
                answer(request, &recorder, &pools, &limits).await;
                drop(permit);
            });
        }
    }))
}

fn reply_for(recorded: Option<Recorded>) -> SubmitReply {
    match recorded {
        Some(Recorded {
            refusal: Some(error),
            ..
        }) => SubmitReply::Refused { error },
        Some(Recorded {
            ids, workflow_id, ..
        }) => SubmitReply::Accepted { ids, workflow_id },
        None => SubmitReply::Accepted {
            ids: Vec::new(),
            workflow_id: None,
        },
    }
}

async fn answer(request: Request, recorder: &Recorder, pools: &SharedView, limits: &Limits) {
    let mut planned = plan(
        &request.message.payload,
        limits,
        IdSource::Fresh,
        &pool_view::read(pools),
    );
    if matches!(&planned, Plan::Record(p) if pool_view::is_unknown_pool(p.refusal.as_ref())) {
        pool_view::catch_up(pools, recorder.store()).await;
        planned = plan(
            &request.message.payload,
            limits,
            IdSource::Fresh,
            &pool_view::read(pools),
        );
    }
    let reply = match planned {
        Plan::Unreadable(error) => Ok(SubmitReply::Refused { error }),
        Plan::Record(mut planned) => {
            let actor = match submitter(&request, recorder).await {
                Ok(actor) => actor,
                Err(err) => {
                    error_throttled!(error = %err, "cannot name who submitted");
                    return respond(request, unavailable()).await;
                }
            };
            for row in &mut planned.rows {
                row.actor.clone_from(&actor);
            }
            match recorder.record(std::slice::from_mut(&mut planned)).await {
                Ok(mut recorded) => Ok(reply_for(recorded.pop())),
                // Asking again would fail again: refuse it, and record it
                // refused like any other refusal (what can be kept of it).
                Err(err) if err.is_poison() => {
                    let reason = err.refusal();
                    metrics::counter!("taskyard_orchestrator_poison_total").increment(1);
                    tracing::warn!(%reason, "a submission Postgres cannot store was refused");
                    planned.quarantine(&reason);
                    if let Err(err) = recorder.record(std::slice::from_mut(&mut planned)).await {
                        tracing::warn!(error = %err, "cannot record a refused submission");
                    }
                    Ok(reply_for(Some(Recorded {
                        ids: Vec::new(),
                        workflow_id: None,
                        refusal: planned.refusal.take(),
                    })))
                }
                Err(err) => {
                    error_throttled!(error = %err, "cannot record a submission");
                    unavailable()
                }
            }
        }
    };
    respond(request, reply).await;
}

/// Who asked for the tasks of a request, for their first history row: the
/// sender the server names when it came from the clients' account, else
/// the caller the api service names in `Taskyard-Requested-By` (a retry,
/// a REST submission).
async fn submitter(request: &Request, recorder: &Recorder) -> Result<Option<String>, StoreError> {
    let headers = request.message.headers.as_ref();
    let claimed = headers
        .and_then(|headers| headers.get(actor::REQUESTED_BY_HEADER))
        .map(|value| value.as_str());
    recorder
        .store()
        .actor(&access::requester(headers, claimed))
        .await
}

fn unavailable() -> Result<SubmitReply, async_nats::service::error::Error> {
    Err(async_nats::service::error::Error {
        status: "cannot record the submission now; retry".to_owned(),
        code: 503,
    })
}

async fn respond(request: Request, reply: Result<SubmitReply, async_nats::service::error::Error>) {
    let response = reply.map(|reply| codec::encode(&reply).into());
    if let Err(err) = request.respond(response).await {
        tracing::warn!(error = %err, "cannot reply to a submission");
    }
}
