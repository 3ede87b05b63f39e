//! Writes planned rows and publishes what happened.

use crate::intake::Planned;
use async_nats::jetstream;
use std::collections::{HashMap, HashSet};
use taskyard_runtime::batching::{BatchError, Outgoing, publish_all};
use taskyard_runtime::timers;
use taskyard_store::tasks::{CreatedTask, TaskInsert, Transition};
use taskyard_store::{Store, StoreError};
use taskyard_wire::event::{TaskEvent, TaskEventBatch};
use taskyard_wire::timer::{Timer, TimerKind};
use taskyard_wire::{Rejection, TaskState, codec, subjects};
use uuid::Uuid;

/// Most events in one event message (each is a few hundred bytes).
pub const EVENTS_PER_MESSAGE: usize = 1000;

/// Why submissions could not be recorded; they are retried.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("tasks were written but their events or timers were not published: {0}")]
    Publish(#[from] BatchError),
}

impl RecordError {
    /// Whether Postgres refused what the submissions hold: recording them
    /// again unchanged would fail again ([`taskyard_runtime::poison`]).
    pub fn is_poison(&self) -> bool {
        matches!(self, RecordError::Store(err) if err.is_poison())
    }

    /// What to tell the client, or keep in the dead letter, of a refusal.
    pub fn refusal(&self) -> String {
        match self {
            RecordError::Store(err) => err.refusal(),
            other => other.to_string(),
        }
    }
}

/// What became of one submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Its tasks' ids in order: for a task that already existed (same id or
    /// idempotency key), the existing task's id.
    pub ids: Vec<Uuid>,
    /// The workflow's id, for a workflow object that was accepted.
    pub workflow_id: Option<Uuid>,
    /// Why it was refused, if it was (possibly found only here: a
    /// dependency on a task that does not exist or already failed).
    pub refusal: Option<Rejection>,
}

/// Writes tasks and announces them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder {
    store: Store,
    js: jetstream::Context,
}

impl Recorder {
    pub fn new(store: Store, js: jetstream::Context) -> Recorder {
        Recorder { store, js }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Records several submissions (workflows in one statement, tasks in
    /// another), publishes their events and sets their timers. Every step
    /// is idempotent, so a batch that fails half way is simply recorded
    /// again.
    pub async fn record(&self, plans: &mut [Planned]) -> Result<Vec<Recorded>, RecordError> {
        self.check_existing(plans).await?;
        let workflows: Vec<_> = plans.iter().filter_map(|p| p.workflow.clone()).collect();
        // Before the tasks, which reference their workflow.
        self.store.insert_workflows(&workflows).await?;

        let rows: Vec<TaskInsert> = plans.iter().flat_map(|p| p.rows.iter().cloned()).collect();
        let created = self.store.insert_tasks(&rows).await?;
        let created_ids: HashSet<Uuid> = created.iter().map(|task| task.id).collect();
        let mut by_id: HashMap<Uuid, CreatedTask> =
            created.iter().map(|task| (task.id, task.clone())).collect();
        let mut events: Vec<TaskEvent> = created.iter().map(creation_event).collect();
        let mut timers: Vec<Timer> = created.iter().filter_map(creation_timer).collect();

        let missing: Vec<&TaskInsert> =
            rows.iter().filter(|r| !by_id.contains_key(&r.id)).collect();
        let mut by_key: HashMap<String, CreatedTask> = HashMap::new();
        if !missing.is_empty() {
            let ids: Vec<Uuid> = missing.iter().map(|r| r.id).collect();
            let keys: Vec<String> = missing
                .iter()
                .filter_map(|r| r.idempotency_key.clone())
                .collect();
            for existing in self.store.find_created(&ids, &keys).await? {
                // A duplicate whose task still waits: announce it again, in
                // case the first announcement was lost in a crash. The
                // scheduler ignores a task it already holds. Its timer is
                // set again for the same reason (setting one twice is
                // harmless: the second replaces the first).
                if existing.state == TaskState::Queued {
                    events.push(creation_event(&existing));
                }
                timers.extend(creation_timer(&existing));
                if let Some(key) = &existing.idempotency_key {
                    by_key.insert(key.clone(), existing.clone());
                }
                by_id.insert(existing.id, existing);
            }
            metrics::counter!("taskyard_orchestrator_duplicates_total")
                .increment(missing.len() as u64);
        }
        self.publish(events).await?;
        timers::set_all(&self.js, &timers).await?;
        for task in &created {
            metrics::counter!("taskyard_orchestrator_tasks_total", "state" => task.state.as_str())
                .increment(1);
        }

        // An existing dependency may have finished between its check and the
        // insert, its event handled before our rows were visible: settle the
        // new tasks against it now. (Refused plans too: a redelivered
        // submission whose dependency failed since its first delivery finds
        // its rows already written, pending.)
        let existing: Vec<Uuid> = plans
            .iter()
            .flat_map(|p| p.existing.iter().map(|d| d.id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !existing.is_empty() {
            let mut moved = self.store.release_dependents(&existing).await?;
            moved.extend(self.store.cancel_dependents(&existing).await?);
            self.announce(&moved).await?;
        }

        let mut recorded = Vec::with_capacity(plans.len());
        for plan in plans.iter() {
            let ids: Vec<Uuid> = plan
                .rows
                .iter()
                .map(|row| {
                    if by_id.contains_key(&row.id) {
                        return row.id;
                    }
                    row.idempotency_key
                        .as_ref()
                        .and_then(|key| by_key.get(key))
                        .map(|existing| existing.id)
                        .unwrap_or(row.id)
                })
                .collect();
            let workflow_id = match (&plan.workflow, &plan.refusal) {
                (Some(workflow), None) => Some(
                    self.settle_workflow_id(workflow.id, plan, &created_ids, &ids)
                        .await?,
                ),
                _ => None,
            };
            recorded.push(Recorded {
                ids,
                workflow_id,
                refusal: plan.refusal.clone(),
            });
        }
        Ok(recorded)
    }

    /// A resubmitted workflow whose tasks all existed already (the client
    /// reused their ids or idempotency keys) is the earlier workflow: the
    /// row just created for it is dropped again, and the earlier one's id
    /// reported.
    async fn settle_workflow_id(
        &self,
        workflow_id: Uuid,
        plan: &Planned,
        created: &HashSet<Uuid>,
        ids: &[Uuid],
    ) -> Result<Uuid, StoreError> {
        if plan.rows.iter().any(|row| created.contains(&row.id)) {
            return Ok(workflow_id);
        }
        let Some(first) = ids.first() else {
            return Ok(workflow_id);
        };
        let earlier = self
            .store
            .task_links(*first)
            .await?
            .and_then(|links| links.workflow_id);
        match earlier {
            Some(earlier) if earlier != workflow_id => {
                self.store.drop_empty_workflows(&[workflow_id]).await?;
                Ok(earlier)
            }
            _ => Ok(workflow_id),
        }
    }

    /// Looks up the existing tasks that submissions depend on, in one query
    /// for the whole batch, and applies what it finds to each plan.
    async fn check_existing(&self, plans: &mut [Planned]) -> Result<(), StoreError> {
        let ids: Vec<Uuid> = plans
            .iter()
            .filter(|p| p.refusal.is_none())
            .flat_map(|p| p.existing.iter().map(|d| d.id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let states: HashMap<Uuid, TaskState> =
            self.store.task_states(&ids).await?.into_iter().collect();
        for plan in plans.iter_mut() {
            plan.apply_existing(&states);
        }
        Ok(())
    }

    /// Publishes the events of transitions made outside a submission
    /// (releases, cancellations) and sets the placement timer of every task
    /// that was queued.
    pub async fn announce(&self, transitions: &[Transition]) -> Result<(), BatchError> {
        if transitions.is_empty() {
            return Ok(());
        }
        let events = transitions.iter().map(Transition::event).collect();
        self.publish(events).await?;
        let timers: Vec<Timer> = transitions
            .iter()
            .filter(|t| t.to == TaskState::Queued)
            .filter_map(|t| {
                t.due.map(|due_at| Timer {
                    kind: TimerKind::Placement,
                    task_id: t.task_id,
                    attempt: t.attempt,
                    due_at,
                })
            })
            .collect();
        timers::set_all(&self.js, &timers).await
    }

    async fn publish(&self, events: Vec<TaskEvent>) -> Result<(), BatchError> {
        let mut by_state: HashMap<TaskState, Vec<TaskEvent>> = HashMap::new();
        for event in events {
            by_state.entry(event.state).or_default().push(event);
        }
        let mut messages = Vec::new();
        for (state, events) in by_state {
            for chunk in events.chunks(EVENTS_PER_MESSAGE) {
                let batch = TaskEventBatch {
                    events: chunk.to_vec(),
                };
                messages.push(Outgoing::new(
                    subjects::task_event(state),
                    codec::encode(&batch),
                ));
            }
        }
        publish_all(&self.js, messages).await
    }
}

/// A created task's event: `queued` (with what the scheduler needs),
/// `pending` (which the scheduler does not follow) or `rejected`.
fn creation_event(task: &CreatedTask) -> TaskEvent {
    TaskEvent {
        task_id: task.id,
        pool: task.queued.pool.clone(),
        attempt: task.queued.attempt,
        state: task.state,
        from: None,
        node_id: None,
        reason: task.error.clone(),
        at: task.created_at,
        request: (task.state == TaskState::Queued).then(|| task.queued.request.clone()),
    }
}

/// The timer a new task needs: a delayed task's start, or a queued task's
/// placement deadline.
fn creation_timer(task: &CreatedTask) -> Option<Timer> {
    let (kind, due_at) = match task.state {
        TaskState::Pending => (TimerKind::Start, task.run_at?),
        TaskState::Queued => (TimerKind::Placement, task.placement_deadline?),
        _ => return None,
    };
    Some(Timer {
        kind,
        task_id: task.id,
        attempt: task.queued.attempt,
        due_at,
    })
}
