//! `taskyard.api.submit`: submit and get the ids, or the reason, in the reply.
//!
//! Requests that arrive while earlier ones are being recorded wait, and are
//! then recorded together: one statement and one commit for all of them,
//! one events message. Sixteen clients submitting one task each so cost
//! Postgres one fsync, not sixteen, and every later hop sees a batch.

use crate::intake::{IdSource, Plan, Planned, plan};
use crate::pool_view::{self, SharedView};
use crate::recorder::{Recorded, Recorder};
use async_nats::service::{Request, Service};
use futures::{FutureExt, StreamExt};
use taskyard_runtime::{Shutdown, access, error_throttled};
use taskyard_store::StoreError;
use taskyard_wire::reply::SubmitReply;
use taskyard_wire::task::Limits;
use taskyard_wire::{actor, codec, subjects};

/// Groups recorded at once; requests arriving meanwhile form the next group.
pub const GROUPS_IN_FLIGHT: usize = 2;
/// Most requests recorded in one group.
pub const MAX_GROUP: usize = 256;

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
    Ok(tokio::spawn(async move {
        let mut waiting: Vec<Request> = Vec::new();
        let mut in_flight = futures::stream::FuturesUnordered::new();
        let mut open = true;
        while open || !waiting.is_empty() || !in_flight.is_empty() {
            tokio::select! {
                _ = shutdown.wait(), if open => open = false,
                request = endpoint.next(), if open => match request {
                    Some(request) => waiting.push(request),
                    None => open = false,
                },
                _ = in_flight.next(), if !in_flight.is_empty() => {}
            }
            // Whatever else has arrived joins the group without a wait.
            while open && waiting.len() < MAX_GROUP {
                match endpoint.next().now_or_never() {
                    Some(Some(request)) => waiting.push(request),
                    Some(None) => open = false,
                    None => break,
                }
            }
            if !waiting.is_empty() && in_flight.len() < GROUPS_IN_FLIGHT {
                let group: Vec<Request> = waiting.drain(..waiting.len().min(MAX_GROUP)).collect();
                let (recorder, pools) = (recorder.clone(), pools.clone());
                in_flight.push(tokio::spawn(async move {
                    answer(group, &recorder, &pools, &limits).await;
                }));
            }
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

/// Plans each request of a group, records the group's plans in one go and
/// answers each. When the group cannot be recorded whole, each request is
/// recorded on its own, so that one submission Postgres refuses costs no
/// other its place.
async fn answer(group: Vec<Request>, recorder: &Recorder, pools: &SharedView, limits: &Limits) {
    let mut requests: Vec<Request> = Vec::with_capacity(group.len());
    let mut plans: Vec<Planned> = Vec::with_capacity(group.len());
    for request in group {
        match plan_request(&request, recorder, pools, limits).await {
            Ok(plan) => {
                requests.push(request);
                plans.push(plan);
            }
            Err(reply) => respond(request, reply).await,
        }
    }
    if plans.len() > 1 {
        match recorder.record(&mut plans).await {
            Ok(recorded) => {
                metrics::histogram!("taskyard_orchestrator_request_group_size")
                    .record(requests.len() as f64);
                for (request, recorded) in requests.into_iter().zip(recorded) {
                    respond(request, Ok(reply_for(Some(recorded)))).await;
                }
                return;
            }
            // Recording is idempotent (fresh ids, keys): whatever part of
            // the group was written is found again below.
            Err(err) => {
                tracing::debug!(error = %err, "a group of submissions failed; recording each alone")
            }
        }
    }
    for (request, plan) in requests.into_iter().zip(plans) {
        let reply = record_one(plan, recorder).await;
        respond(request, reply).await;
    }
}

/// What one request asks to record, with who asked, or the answer that
/// refuses it at once.
async fn plan_request(
    request: &Request,
    recorder: &Recorder,
    pools: &SharedView,
    limits: &Limits,
) -> Result<Planned, Result<SubmitReply, async_nats::service::error::Error>> {
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
    match planned {
        Plan::Unreadable(error) => Err(Ok(SubmitReply::Refused { error })),
        Plan::Record(mut planned) => {
            let actor = match submitter(request, recorder).await {
                Ok(actor) => actor,
                Err(err) => {
                    error_throttled!(error = %err, "cannot name who submitted");
                    return Err(unavailable());
                }
            };
            for row in &mut planned.rows {
                row.actor.clone_from(&actor);
            }
            Ok(planned)
        }
    }
}

/// Records one submission, quarantining it (recorded refused, with what can
/// be kept of it) when Postgres cannot store it.
async fn record_one(
    mut planned: Planned,
    recorder: &Recorder,
) -> Result<SubmitReply, async_nats::service::error::Error> {
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
