//! Records placements and sends the dispatches.

use crate::state::{Decision, SchedulerState};
use async_nats::jetstream;
use std::collections::HashSet;
use taskyard_runtime::batching::{BatchError, Outgoing, publish_all};
use taskyard_store::tasks::{Placement, ScheduledTask};
use taskyard_store::{Store, StoreError};
use taskyard_wire::dispatch::Dispatch;
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
}

impl Dispatcher {
    pub fn new(store: Store, js: jetstream::Context) -> Dispatcher {
        Dispatcher {
            store,
            js,
            undispatched: Vec::new(),
        }
    }

    /// After a restart, tasks in `scheduled` may never have been dispatched:
    /// send them again. The stream drops a dispatch it already has (same
    /// `Nats-Msg-Id`), and a worker's report is fenced by the attempt.
    pub async fn resend_scheduled(&mut self) -> Result<(), StoreError> {
        self.undispatched = self.store.scheduled_tasks().await?;
        if !self.undispatched.is_empty() {
            tracing::info!(tasks = self.undispatched.len(), "re-sending dispatches of scheduled tasks");
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
                tracing::warn!(error = %err, tasks = tasks.len(), "dispatch failed; will retry");
                self.undispatched = tasks;
                false
            }
        }
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
        let scheduled = match self.store.mark_scheduled(&placements).await {
            Ok(scheduled) => scheduled,
            Err(err) => {
                for decision in decisions {
                    state.undo_decision(decision);
                }
                return Err(err.into());
            }
        };
        let taken: HashSet<Uuid> = scheduled.iter().map(|t| t.id).collect();
        for decision in decisions.iter().filter(|d| !taken.contains(&d.task.id)) {
            tracing::debug!(task_id = %decision.task.id, "no longer queued; placement dropped");
            state.drop_decision(decision);
        }
        metrics::counter!("taskyard_scheduler_placements_total").increment(scheduled.len() as u64);
        metrics::histogram!("taskyard_scheduler_round_seconds").record(started.elapsed().as_secs_f64());
        if let Err(err) = self.publish(&scheduled).await {
            tracing::warn!(error = %err, tasks = scheduled.len(), "dispatch failed; will retry");
            self.undispatched.extend(scheduled);
        }
        Ok(())
    }

    async fn publish(&self, tasks: &[ScheduledTask]) -> Result<(), BatchError> {
        if tasks.is_empty() {
            return Ok(());
        }
        let mut messages: Vec<Outgoing> = tasks
            .iter()
            .map(|task| {
                let dispatch = Dispatch {
                    task_id: task.id,
                    attempt: task.attempt,
                    pool: task.pool.clone(),
                    tenant: task.tenant.clone(),
                    kind: task.kind,
                    spec: task.spec.clone(),
                    resources: task.resources,
                    timeout_ms: task.timeout_ms,
                    dispatched_at: taskyard_wire::now(),
                };
                Outgoing::new(subjects::dispatch(&task.node_id), codec::encode(&dispatch))
                    .with_msg_id(dispatch.msg_id())
            })
            .collect();
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
