//! Writes planned rows and publishes what happened.

use async_nats::jetstream;
use std::collections::HashMap;
use taskyard_runtime::batching::{BatchError, Outgoing, publish_all};
use taskyard_store::tasks::{CreatedTask, TaskInsert};
use taskyard_store::{Store, StoreError};
use taskyard_wire::event::{TaskEvent, TaskEventBatch};
use taskyard_wire::{TaskState, codec, subjects};
use uuid::Uuid;

/// Most events in one event message (each is a few hundred bytes).
pub const EVENTS_PER_MESSAGE: usize = 1000;

/// Why submissions could not be recorded; they are retried.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("tasks were written but their events were not published: {0}")]
    Publish(#[from] BatchError),
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

    /// Records several submissions in one statement and publishes their
    /// events. Returns, for each submission, the ids of its tasks in order:
    /// for a task that already existed (same id or idempotency key), the
    /// existing task's id.
    pub async fn record(
        &self,
        submissions: Vec<Vec<TaskInsert>>,
    ) -> Result<Vec<Vec<Uuid>>, RecordError> {
        let rows: Vec<TaskInsert> = submissions.iter().flatten().cloned().collect();
        let created = self.store.insert_tasks(&rows).await?;
        let mut by_id: HashMap<Uuid, CreatedTask> =
            created.iter().map(|task| (task.id, task.clone())).collect();
        let mut events: Vec<TaskEvent> = created.iter().map(creation_event).collect();

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
                // scheduler ignores a task it already holds.
                if existing.state == TaskState::Queued {
                    events.push(creation_event(&existing));
                }
                if let Some(key) = &existing.idempotency_key {
                    by_key.insert(key.clone(), existing.clone());
                }
                by_id.insert(existing.id, existing);
            }
            metrics::counter!("taskyard_orchestrator_duplicates_total")
                .increment(missing.len() as u64);
        }
        self.publish(events).await?;
        for task in &created {
            metrics::counter!("taskyard_orchestrator_tasks_total", "state" => task.state.as_str())
                .increment(1);
        }

        Ok(submissions
            .iter()
            .map(|rows| {
                rows.iter()
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
                    .collect()
            })
            .collect())
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
