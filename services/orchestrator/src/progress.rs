//! What a finished task means for the tasks that wait on it: dependents
//! released or cancelled, workflows moved along, compensations started.
//!
//! Every step is a guarded statement that re-reads the states it depends on,
//! and compensation tasks have ids derived from their step's, so handling an
//! event twice, late, or out of order changes nothing more than handling it
//! once. Transitions made here are announced like any other (events, and the
//! placement timer of a task that was queued); `cancelled` events come back
//! through [`crate::events`], which cancels further dependents and moves
//! their workflows too.

use crate::intake::compensation_plans;
use crate::pool_view::{self, SharedView};
use crate::recorder::{RecordError, Recorder};
use taskyard_runtime::batching::BatchError;
use taskyard_store::StoreError;
use taskyard_store::tasks::Transition;
use taskyard_store::workflows::DEAD_STATES;
use taskyard_wire::TaskState;
use taskyard_wire::task::Limits;
use uuid::Uuid;

/// Most finished dependencies one reconciliation looks at; the next one
/// takes the rest.
pub const RECONCILE_LIMIT: u32 = 10_000;
/// Workflows moved along per statement when reconciling.
pub const WORKFLOW_CHUNK: usize = 1000;
/// How old a `running` workflow without any task must be before it counts
/// as an interrupted submission.
pub const ORPHAN_GRACE_MS: u64 = 5 * 60 * 1000;

/// Why finished tasks could not be processed; their events are redelivered.
#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("transitions were written but not announced: {0}")]
    Publish(#[from] BatchError),
    #[error("compensations could not be created: {0}")]
    Record(#[from] RecordError),
}

impl ProgressError {
    /// Whether Postgres refused what the events hold (see
    /// `taskyard_runtime::poison`).
    pub fn is_poison(&self) -> bool {
        match self {
            ProgressError::Store(err) => err.is_poison(),
            ProgressError::Record(err) => err.is_poison(),
            ProgressError::Publish(_) => false,
        }
    }

    /// Postgres's reason, for a dead letter.
    pub fn refusal(&self) -> String {
        match self {
            ProgressError::Store(err) => err.refusal(),
            ProgressError::Record(err) => err.refusal(),
            other => other.to_string(),
        }
    }
}

/// Moves dependents and workflows along. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Progress {
    recorder: Recorder,
    pools: SharedView,
    limits: Limits,
}

impl Progress {
    pub fn new(recorder: Recorder, pools: SharedView, limits: Limits) -> Progress {
        Progress {
            recorder,
            pools,
            limits,
        }
    }

    pub fn store(&self) -> &taskyard_store::Store {
        self.recorder.store()
    }

    /// Handles tasks that ended (`(id, state)`, as their events say):
    /// releases dependents of those that succeeded, cancels (transitively)
    /// those of the others, and moves their workflows along. `redelivered`
    /// says the events may have been handled before, by a process that
    /// stopped before it acked them: dependents it queued are announced
    /// again, in case it stopped before announcing them.
    pub async fn finished(
        &self,
        finished: &[(Uuid, TaskState)],
        redelivered: bool,
    ) -> Result<(), ProgressError> {
        if finished.is_empty() {
            return Ok(());
        }
        let store = self.recorder.store();
        let succeeded: Vec<Uuid> = finished
            .iter()
            .filter(|(_, state)| *state == TaskState::Succeeded)
            .map(|(id, _)| *id)
            .collect();
        let dead: Vec<Uuid> = finished
            .iter()
            .filter(|(_, state)| DEAD_STATES.contains(state))
            .map(|(id, _)| *id)
            .collect();
        let mut moved = store.release_dependents(&succeeded).await?;
        let released = moved.len();
        if redelivered {
            let fresh: std::collections::HashSet<Uuid> = moved.iter().map(|t| t.task_id).collect();
            let again = store.queued_dependents(&succeeded).await?;
            moved.extend(again.into_iter().filter(|t| !fresh.contains(&t.task_id)));
        }
        let cancelled = store.cancel_dependents(&dead).await?;
        log_transitions(&moved, "released: its dependencies succeeded");
        log_transitions(&cancelled, "cancelled: a dependency did not succeed");
        metrics::counter!("taskyard_orchestrator_released_total").increment(released as u64);
        metrics::counter!("taskyard_orchestrator_dependents_cancelled_total")
            .increment(cancelled.len() as u64);
        let mut touched: Vec<Uuid> = finished.iter().map(|(id, _)| *id).collect();
        touched.extend(cancelled.iter().map(|t| t.task_id));
        moved.extend(cancelled);
        self.recorder.announce(&moved).await?;

        let workflows = store.workflows_of(&touched).await?;
        self.advance(&workflows).await
    }

    /// Moves workflows along: `running → succeeded`; `running →
    /// compensating` (steps not started are cancelled); the compensation
    /// chain once no step is live; `compensating → failed` once it is over.
    pub async fn advance(&self, workflows: &[Uuid]) -> Result<(), ProgressError> {
        if workflows.is_empty() {
            return Ok(());
        }
        let store = self.recorder.store();
        let moves = store.advance_workflows(workflows).await?;
        for id in &moves.succeeded {
            tracing::info_span!("workflow", workflow_id = %id).in_scope(|| {
                tracing::info!("workflow succeeded");
            });
        }
        for id in &moves.compensating {
            tracing::info_span!("workflow", workflow_id = %id).in_scope(|| {
                tracing::info!("a step failed for good: workflow compensating");
            });
        }
        log_transitions(&moves.cancelled, "cancelled: its workflow is compensating");
        self.recorder.announce(&moves.cancelled).await?;

        let due = store.compensations_due(workflows).await?;
        if !due.is_empty() {
            // The pool view's guard is released before anything is awaited.
            let mut plans = {
                let pools = pool_view::read(&self.pools);
                compensation_plans(&due, &self.limits, &pools)
            };
            self.recorder.record(&mut plans).await?;
        }
        for id in store.finish_failed_workflows(workflows).await? {
            tracing::info_span!("workflow", workflow_id = %id).in_scope(|| {
                tracing::info!("compensation over: workflow failed");
            });
        }
        Ok(())
    }

    /// Does what missed events would have done: the orchestrator's event
    /// consumer only sees events published after it was first created, and
    /// a service may write a transition and stop before publishing its
    /// event. Runs at start and then periodically.
    pub async fn reconcile(&self) -> Result<(), ProgressError> {
        let store = self.recorder.store();
        let orphans = store.reject_orphan_workflows(ORPHAN_GRACE_MS).await?;
        if orphans > 0 {
            tracing::warn!(
                orphans,
                "workflows whose tasks were never recorded: rejected"
            );
        }
        let unsettled = store.unsettled(RECONCILE_LIMIT).await?;
        if !unsettled.finished_dependencies.is_empty() {
            tracing::info!(
                dependencies = unsettled.finished_dependencies.len(),
                "reconciling dependents of finished tasks"
            );
        }
        self.finished(&unsettled.finished_dependencies, false)
            .await?;
        for chunk in unsettled.open_workflows.chunks(WORKFLOW_CHUNK) {
            self.advance(chunk).await?;
        }
        Ok(())
    }
}

fn log_transitions(transitions: &[Transition], what: &str) {
    for t in transitions {
        tracing::info_span!("task", task_id = %t.task_id, attempt = t.attempt).in_scope(|| {
            tracing::debug!(reason = t.reason.as_deref(), "{what}");
        });
    }
}
