//! Records placements and sends the dispatches.

use crate::state::{Decision, SchedulerState};
use async_nats::jetstream;
use std::collections::BTreeMap;
use std::collections::HashSet;
use taskyard_runtime::batching::{BatchError, Outgoing, publish_all};
use taskyard_runtime::poison::Bisection;
use taskyard_runtime::warn_throttled;
use taskyard_store::leases::Fence;
use taskyard_store::tasks::{Placement, ScheduledTask};
use taskyard_store::{Store, StoreError};
use taskyard_wire::dispatch::{Dispatch, DispatchBatch};
use taskyard_wire::event::{TaskEvent, TaskEventBatch};
use taskyard_wire::{TaskState, codec, subjects};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("recording placements failed: {0}")]
    Store(#[from] StoreError),
}

/// Sends work out; remembers what it could not send yet.
#[derive(Debug)]
pub struct Dispatcher {
    store: Store,
    js: jetstream::Context,
    /// Recorded as `scheduled` but not yet on NATS.
    undispatched: Vec<ScheduledTask>,
    /// The lease this scheduler places under: a round recorded after
    /// another scheduler took over is refused by Postgres.
    fence: Fence,
}

impl Dispatcher {
    pub fn new(store: Store, js: jetstream::Context, fence: Fence) -> Dispatcher {
        Dispatcher {
            store,
            js,
            undispatched: Vec::new(),
            fence,
        }
    }

    /// After a restart, tasks in `scheduled` may never have been dispatched:
    /// send them again. The stream drops a dispatch it already has (same
    /// `Nats-Msg-Id`), and a worker's report is fenced by the attempt.
    pub async fn resend_scheduled(&mut self) -> Result<(), StoreError> {
        self.undispatched = self.store.scheduled_tasks().await?;
        if !self.undispatched.is_empty() {
            tracing::info!(
                tasks = self.undispatched.len(),
                "re-sending dispatches of scheduled tasks"
            );
        }
        self.flush_undispatched().await;
        Ok(())
    }

    /// Sends what is waiting to be sent; false if it is still waiting.
    pub async fn flush_undispatched(&mut self) -> bool {
        if self.undispatched.is_empty() {
            return true;
        }
        let tasks = std::mem::take(&mut self.undispatched);
        match self.publish(&tasks).await {
            Ok(()) => true,
            Err(err) => {
                warn_throttled!(error = %err, tasks = tasks.len(), "dispatch failed; will retry");
                self.undispatched = tasks;
                false
            }
        }
    }

    /// Keeps the waiting reasons the API shows.
    pub async fn record_wait_reasons(&self, reasons: &[(Uuid, String)]) -> Result<(), StoreError> {
        self.store.set_wait_reasons(reasons).await
    }

    /// Records a round of decisions and dispatches what the database took.
    pub async fn place(
        &mut self,
        state: &mut SchedulerState,
        decisions: Vec<Decision>,
    ) -> Result<(), DispatchError> {
        let started = std::time::Instant::now();
        let placements: Vec<Placement> = decisions
            .iter()
            .map(|d| Placement {
                task_id: d.task.id,
                attempt: d.task.attempt,
                node_id: d.placed.node_id.clone(),
                reason: d.placed.reason.clone(),
            })
            .collect();
        // A placement Postgres refuses for what it holds must not keep the
        // round's others from being recorded: it is isolated, and its task
        // set aside (it stays queued in Postgres; a restart tries it again).
        let mut bisection = Bisection::new(placements.len(), StoreError::is_poison);
        while let Some(part) = bisection.next_part() {
            let result = self
                .store
                .mark_scheduled(&placements[part.clone()], Some(self.fence))
                .await;
            bisection.record(part, result);
        }
        let isolated = bisection.finish();
        let mut decisions: Vec<Option<Decision>> = decisions.into_iter().map(Some).collect();
        for (index, err) in &isolated.poison {
            if let Some(decision) = decisions[*index].take() {
                tracing::warn!(task_id = %decision.task.id, reason = %err.refusal(), "a placement Postgres cannot record; the task is set aside");
                metrics::counter!("taskyard_scheduler_poison_total").increment(1);
                state.drop_decision(&decision);
            }
        }
        for index in isolated.retry_indices() {
            if let Some(decision) = decisions[index].take() {
                state.undo_decision(decision);
            }
        }
        let decisions: Vec<Decision> = decisions.into_iter().flatten().collect();
        let scheduled: Vec<ScheduledTask> = isolated
            .recorded
            .into_iter()
            .flat_map(|(_, scheduled)| scheduled)
            .collect();
        let taken: HashSet<Uuid> = scheduled.iter().map(|t| t.id).collect();
        for decision in decisions.iter().filter(|d| !taken.contains(&d.task.id)) {
            tracing::debug!(task_id = %decision.task.id, "no longer queued; placement dropped");
            state.drop_decision(decision);
        }
        metrics::counter!("taskyard_scheduler_placements_total").increment(scheduled.len() as u64);
        metrics::histogram!("taskyard_scheduler_round_seconds")
            .record(started.elapsed().as_secs_f64());
        if let Err(err) = self.publish(&scheduled).await {
            warn_throttled!(error = %err, tasks = scheduled.len(), "dispatch failed; will retry");
            self.undispatched.extend(scheduled);
        }
        match isolated.retry_error {
            Some(err) => Err(err.into()),
            None => Ok(()),
        }
    }

    async fn publish(&self, tasks: &[ScheduledTask]) -> Result<(), BatchError> {
        if tasks.is_empty() {
            return Ok(());
        }
        let mut messages = dispatch_messages(tasks);
        let events: Vec<TaskEvent> = tasks
            .iter()
            .map(|task| TaskEvent {
                task_id: task.id,
                pool: task.pool.clone(),
                attempt: task.attempt,
                state: TaskState::Scheduled,
                from: Some(TaskState::Queued),
                node_id: Some(task.node_id.clone()),
                reason: task.reason.clone(),
                at: task.scheduled_at,
                request: None,
            })
            .collect();
        for chunk in events.chunks(1000) {
            messages.push(Outgoing::new(
                subjects::task_event(TaskState::Scheduled),
                codec::encode(&TaskEventBatch {
                    events: chunk.to_vec(),
                }),
            ));
        }
        publish_all(&self.js, messages).await
    }
}

/// Largest dispatch message the scheduler builds. Specs may be up to 64 KiB
/// each, so a round's dispatches to one node are split to stay well inside
/// the server's payload limit.
pub const MAX_DISPATCH_MESSAGE_BYTES: usize = 512 * 1024;

/// One message per node per round (more if it would grow past
/// [`MAX_DISPATCH_MESSAGE_BYTES`]).
fn dispatch_messages(tasks: &[ScheduledTask]) -> Vec<Outgoing> {
    let now = taskyard_wire::now();
    let mut by_node: BTreeMap<&str, Vec<(Dispatch, usize)>> = BTreeMap::new();
    for task in tasks {
        let dispatch = Dispatch {
            task_id: task.id,
            attempt: task.attempt,
            pool: task.pool.clone(),
            tenant: task.tenant.clone(),
            kind: task.kind,
            spec: task.spec.clone(),
            resources: task.resources,
            timeout_ms: task.timeout_ms,
            dispatched_at: now,
        };
        let size = codec::encode(&dispatch).len();
        by_node
            .entry(task.node_id.as_str())
            .or_default()
            .push((dispatch, size));
    }
    let mut messages = Vec::new();
    for (node, dispatches) in by_node {
        let mut batch = Vec::new();
        let mut bytes = 0;
        for (dispatch, size) in dispatches {
            if !batch.is_empty() && bytes + size > MAX_DISPATCH_MESSAGE_BYTES {
                messages.push(batch_message(node, std::mem::take(&mut batch)));
                bytes = 0;
            }
            bytes += size;
            batch.push(dispatch);
        }
        if !batch.is_empty() {
            messages.push(batch_message(node, batch));
        }
    }
    messages
}

/// The batch's `Nats-Msg-Id` names its first and last attempts, so sending
/// the same round again (after a failed publish) is dropped by the stream.
fn batch_message(node: &str, dispatches: Vec<Dispatch>) -> Outgoing {
    let id = match (dispatches.first(), dispatches.last()) {
        (Some(first), Some(last)) => {
            format!("{}..{}#{}", first.msg_id(), last.msg_id(), dispatches.len())
        }
        _ => String::new(),
    };
    Outgoing::new(
        subjects::dispatch(node),
        codec::encode(&DispatchBatch { dispatches }),
    )
    .with_msg_id(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskyard_wire::{Resources, TaskKind};
    use uuid::Uuid;

    fn task(n: u128, node: &str, spec_bytes: usize) -> ScheduledTask {
        ScheduledTask {
            id: Uuid::from_u128(n),
            attempt: 1,
            pool: "default".to_owned(),
            tenant: "t".to_owned(),
            kind: TaskKind::Echo,
            spec: serde_json::json!({"blob": "x".repeat(spec_bytes)}),
            resources: Resources::default(),
            timeout_ms: None,
            node_id: node.to_owned(),
            scheduled_at: taskyard_wire::now(),
            reason: None,
        }
    }

    #[test]
    fn one_message_per_node_unless_it_grows_too_large() {
        let tasks = vec![task(1, "a", 10), task(2, "b", 10), task(3, "a", 10)];
        let messages = dispatch_messages(&tasks);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].subject, "taskyard.dispatch.a");
        let batch: DispatchBatch =
            codec::decode(&messages[0].payload).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(batch.dispatches.len(), 2);

        let big: Vec<ScheduledTask> = (0..20).map(|n| task(n, "a", 60_000)).collect();
        let messages = dispatch_messages(&big);
        assert!(messages.len() >= 3, "{} messages", messages.len());
        assert!(
            messages
                .iter()
                .all(|m| m.payload.len() <= MAX_DISPATCH_MESSAGE_BYTES)
        );
        let total: usize = messages
            .iter()
            .map(|m| {
                codec::decode::<DispatchBatch>(&m.payload)
                    .map(|b| b.dispatches.len())
                    .unwrap_or(0)
            })
            .sum();
        assert_eq!(total, 20);
    }
}
