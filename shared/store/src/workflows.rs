//! Dependencies and workflows: releasing a task whose dependencies all
//! succeeded, cancelling the dependents of one that did not, and moving a
//! workflow along (`running → succeeded`, or `running → compensating →
//! failed` with the compensation of its completed steps), plus the reads of
//! the workflow page.
//!
//! Like every transition, each is one guarded statement over a batch given
//! as arrays, whose `RETURNING` rows feed `task_events` in the same statement:
//! an event handled twice, late, or for a task that moved on changes nothing.
//! The statements re-read the states they depend on instead of trusting the
//! event that triggered them, so callers may pass any candidate ids. The
//! guards and single states of those that move tasks come from their rows in
//! [`crate::transitions::table`]; the constants here are the templates.

use crate::tasks::parse_state;
use crate::transitions::{
    Statement, Transition, returned_task, table, transition_columns, transition_from_row,
};
use crate::{Result, Store, StoreError};
use serde::Serialize;
use serde_json::Value;
use taskyard_wire::{TaskState, Timestamp};
use tokio_postgres::Row;
use uuid::Uuid;

/// The states a dependency can end in without succeeding: its dependents
/// can never run.
pub const DEAD_STATES: [TaskState; 4] = [
    TaskState::Failed,
    TaskState::TimedOut,
    TaskState::Cancelled,
    TaskState::Rejected,
];

/// Where a workflow is in its life (`workflows.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowState {
    /// Its steps run as their dependencies allow.
    Running,
    /// Every step succeeded. Terminal.
    Succeeded,
    /// A step failed for good: the steps not started were cancelled, and the
    /// compensations of the completed ones run, last completed first.
    Compensating,
    /// Compensation is over; `error` says which step failed first. Terminal.
    Failed,
    /// Reserved for a cancel of the whole workflow. Terminal.
    Cancelled,
    /// Refused at submission (nothing of it ran). Terminal.
    Rejected,
}

impl WorkflowState {
    pub const ALL: [WorkflowState; 6] = [
        WorkflowState::Running,
        WorkflowState::Succeeded,
        WorkflowState::Compensating,
        WorkflowState::Failed,
        WorkflowState::Cancelled,
        WorkflowState::Rejected,
    ];

    /// The name in Postgres and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowState::Running => "running",
            WorkflowState::Succeeded => "succeeded",
            WorkflowState::Compensating => "compensating",
            WorkflowState::Failed => "failed",
            WorkflowState::Cancelled => "cancelled",
            WorkflowState::Rejected => "rejected",
        }
    }

    fn parse(name: &str) -> Result<WorkflowState> {
        WorkflowState::ALL
            .into_iter()
            .find(|state| state.as_str() == name)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown workflow state `{name}`")))
    }
}

impl std::fmt::Display for WorkflowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workflow to create: `running`, or `rejected` with its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowInsert {
    pub id: Uuid,
    pub name: String,
    pub tenant: String,
    pub state: WorkflowState,
    pub error: Option<String>,
}

/// A workflow as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowRow {
    pub id: Uuid,
    pub name: String,
    pub tenant: String,
    pub state: WorkflowState,
    /// Why it was rejected, or which step failed first.
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

/// One step of a workflow (a compensation task is a step too, with
/// `compensates` set).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowStep {
    pub id: Uuid,
    pub name: Option<String>,
    pub kind: String,
    pub pool: String,
    pub state: TaskState,
    pub attempt: u32,
    /// Tasks that must succeed before this one is queued.
    pub depends_on: Vec<Uuid>,
    /// On a compensation: the step it undoes.
    pub compensates: Option<Uuid>,
    /// Whether the step has a compensation to run if the workflow fails.
    pub has_compensation: bool,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub queued_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

/// A workflow with its steps, in creation order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowDetail {
    #[serde(flatten)]
    pub workflow: WorkflowRow,
    pub steps: Vec<WorkflowStep>,
}

/// A task's place in a DAG.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct TaskLinks {
    pub name: Option<String>,
    pub workflow_id: Option<Uuid>,
    pub depends_on: Vec<Uuid>,
    pub compensates: Option<Uuid>,
}

/// A completed step whose compensation is due, in the order they are to
/// run: by workflow, last completed first.
#[derive(Debug, Clone, PartialEq)]
pub struct CompensationDue {
    pub workflow_id: Uuid,
    pub step_id: Uuid,
    pub step_name: Option<String>,
    /// The compensation as submitted (a task object).
    pub compensation: Value,
}

/// What [`Store::advance_workflows`] did.
#[derive(Debug, Clone, Default)]
pub struct WorkflowMoves {
    /// Workflows that entered `compensating`.
    pub compensating: Vec<Uuid>,
    /// Workflows whose every step succeeded.
    pub succeeded: Vec<Uuid>,
    /// Steps of compensating workflows that had not started: cancelled.
    pub cancelled: Vec<Transition>,
}

/// What a reconciler finds to do: finished dependencies of pending tasks
/// (their events may have been missed), and workflows not yet over.
#[derive(Debug, Clone, Default)]
pub struct Unsettled {
    pub finished_dependencies: Vec<(Uuid, TaskState)>,
    pub open_workflows: Vec<Uuid>,
}

/// How a task is named in reasons: `name (id)`, or its id.
macro_rules! label {
    ($t:literal) => {
        concat!(
            "CASE WHEN ",
            $t,
            ".name IS NULL THEN ",
            $t,
            ".id::text ELSE format('%s (%s)', ",
            $t,
            ".name, ",
            $t,
            ".id) END"
        )
    };
}

/// How a dead task's end reads in reasons: `failed: boom`.
macro_rules! ending {
    ($t:literal) => {
        concat!(
            "CASE ",
            $t,
            ".state WHEN 'failed' THEN 'failed' WHEN 'timed_out' THEN 'timed out' \
             WHEN 'cancelled' THEN 'was cancelled' ELSE 'was rejected' END \
             || coalesce(': ' || left(",
            $t,
            ".error, 300), '')"
        )
    };
}

/// `pending → queued` for dependents of `$1` whose dependencies all
/// succeeded and whose start time (if any) has come. `depends_on && $1`
/// uses the GIN index `tasks_depends_on`; the `NOT EXISTS` re-reads every
/// dependency, so a task with two dependencies is released by the event of
/// whichever finished last, whatever order the events come in.
pub(crate) const RELEASE: &str = concat!(
    "
WITH upd AS (
    UPDATE tasks t
    SET state = {to}, queued_at = now()
    WHERE cardinality(t.depends_on) > 0
      AND t.state {from} AND t.depends_on && $1::uuid[]
      AND (t.run_at IS NULL OR t.run_at <= now())
      AND NOT EXISTS (SELECT 1 FROM tasks d
                      WHERE d.id = ANY(t.depends_on) AND d.state <> 'succeeded')
    RETURNING ",
    returned_task!(),
    ", {from_state}::task_state AS from_state,
              NULL::text AS node_id, now() AS finished_at,
              CASE WHEN cardinality(t.depends_on) = 1 THEN 'its dependency succeeded'
                   ELSE format('its %s dependencies succeeded', cardinality(t.depends_on))
              END AS reason
), history AS (
    INSERT INTO task_events (task_id, attempt, from_state, to_state, at, reason)
    SELECT id, attempt, {from_state}, {to}, finished_at, reason FROM upd
)
SELECT ",
    transition_columns!(),
    " FROM upd"
);

/// Dependents of `$1` that are queued and were never placed, as the
/// `pending → queued` transitions that queued them: announced again when an
/// event is redelivered, in case the first announcement was lost between
/// the commit and the publish (the scheduler ignores a task it holds).
const QUEUED_DEPENDENTS: &str = concat!(
    "
SELECT ",
    transition_columns!(),
    "
FROM (SELECT ",
    returned_task!(),
    ", 'pending'::task_state AS from_state,
             NULL::text AS node_id, t.queued_at AS finished_at,
             'its dependencies succeeded (announced again)'::text AS reason
      FROM tasks t
      WHERE cardinality(t.depends_on) > 0
        AND t.state = 'queued' AND t.attempt = 0
        AND t.queued_at IS NOT NULL
        AND t.depends_on && $1::uuid[]) AS q"
);

/// `pending → cancelled` for every task that (transitively) depends on one
/// of `$1` that ended without succeeding. The reason names the dependency
/// that failed; a task further down also names the one in between.
///
/// The recursion carries `(task, root)` pairs only, so its size is the
/// number of doomed tasks times the failed roots that reach them (not their
/// paths); `UNION` (not `UNION ALL`) over those finite pairs also ends it if
/// a cycle ever slipped past the orchestrator's check. The task in between
/// is found afterwards by joining a task's dependencies to the pairs.
pub(crate) const CANCEL_DEPENDENTS: &str = concat!(
    "
WITH RECURSIVE dead AS (
    SELECT d.id, ",
    label!("d"),
    " AS label, ",
    ending!("d"),
    " AS ending
    FROM tasks d
    WHERE d.id = ANY($1::uuid[]) AND d.state IN ('failed', 'timed_out', 'cancelled', 'rejected')
), doomed(id, root) AS (
    SELECT t.id, d.id
    FROM dead d JOIN tasks t ON t.depends_on @> ARRAY[d.id]
    WHERE cardinality(t.depends_on) > 0 AND t.state {from}
  UNION
    SELECT t.id, x.root
    FROM doomed x JOIN tasks t ON t.depends_on @> ARRAY[x.id]
    WHERE cardinality(t.depends_on) > 0 AND t.state {from}
), chosen AS (
    -- One root per task: one it depends on directly if there is one.
    SELECT DISTINCT ON (x.id) x.id, x.root, x.root = ANY(t.depends_on) AS direct, t.depends_on
    FROM doomed x JOIN tasks t ON t.id = x.id
    ORDER BY x.id, (x.root = ANY(t.depends_on)) DESC, x.root
), via_task AS (
    SELECT DISTINCT ON (c.id) c.id, v.id AS via
    FROM chosen c
    CROSS JOIN LATERAL unnest(c.depends_on) AS dep(id)
    JOIN doomed y ON y.id = dep.id AND y.root = c.root
    JOIN tasks v ON v.id = dep.id
    WHERE NOT c.direct
    ORDER BY c.id, v.seq
), why AS (
    SELECT c.id,
           CASE WHEN c.direct OR b.via IS NULL
                THEN format('dependency %s %s', r.label, r.ending)
                ELSE format('dependency %s was cancelled because %s %s', ",
    label!("v"),
    ", r.label, r.ending)
           END AS reason
    FROM chosen c
    JOIN dead r ON r.id = c.root
    LEFT JOIN via_task b ON b.id = c.id
    LEFT JOIN tasks v ON v.id = b.via
), upd AS (
    UPDATE tasks t
    SET state = {to}, finished_at = now(), error = w.reason
    FROM why w
    WHERE t.id = w.id AND t.state {from}
    RETURNING ",
    returned_task!(),
    ", {from_state}::task_state AS from_state,
              NULL::text AS node_id, t.finished_at, t.error AS reason
), history AS (
    INSERT INTO task_events (task_id, attempt, from_state, to_state, at, reason)
    SELECT id, attempt, {from_state}, {to}, finished_at, reason FROM upd
)
SELECT ",
    transition_columns!(),
    " FROM upd"
);

/// `running → compensating` for workflows with a step (not a compensation)
/// that ended without succeeding; `error` names the first such step.
const START_COMPENSATING: &str = concat!(
    "
WITH first_failure AS (
    SELECT DISTINCT ON (t.workflow_id) t.workflow_id,
           format('step %s %s', ",
    label!("t"),
    ", ",
    ending!("t"),
    ") AS reason
    FROM tasks t
    WHERE t.workflow_id = ANY($1::uuid[]) AND t.compensates IS NULL
      AND t.state IN ('failed', 'timed_out', 'cancelled', 'rejected')
    ORDER BY t.workflow_id, t.finished_at, t.seq
)
UPDATE workflows w
SET state = 'compensating', error = f.reason
FROM first_failure f
WHERE w.id = f.workflow_id AND w.state = 'running'
RETURNING w.id"
);

/// The steps of a compensating workflow that have not started (`pending`,
/// `queued`, `retrying`) are cancelled: a saga stops at its first failure.
/// Steps already placed finish; their compensation waits for them.
pub(crate) const CANCEL_REMAINING: &str = concat!(
    "
WITH old AS (
    SELECT t.id, t.state AS old_state,
           format('workflow %s is compensating: %s', w.name, w.error) AS why
    FROM tasks t JOIN workflows w ON w.id = t.workflow_id
    WHERE w.id = ANY($1::uuid[]) AND w.state = 'compensating' AND t.compensates IS NULL
      AND t.state {from}
    FOR UPDATE OF t
), upd AS (
    UPDATE tasks t
    SET state = {to}, finished_at = now(), retry_at = NULL, wait_reason = NULL,
        error = o.why
    FROM old o
    WHERE t.id = o.id
    RETURNING ",
    returned_task!(),
    ", o.old_state AS from_state,
              NULL::text AS node_id, t.finished_at, t.error AS reason
), history AS (
    INSERT INTO task_events (task_id, attempt, from_state, to_state, at, reason)
    SELECT id, attempt, from_state, state, finished_at, reason FROM upd
)
SELECT ",
    transition_columns!(),
    " FROM upd"
);

/// `running → succeeded` when every task of the workflow succeeded.
const FINISH_SUCCEEDED: &str = "
UPDATE workflows w
SET state = 'succeeded', finished_at = now()
WHERE w.id = ANY($1::uuid[]) AND w.state = 'running'
  AND EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = w.id)
  AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = w.id AND t.state <> 'succeeded')
RETURNING w.id";

/// The compensations of a compensating workflow, once none of its steps is
/// live any more (a step that was running when another failed may still
/// succeed, and must be undone too): its succeeded steps that have one,
/// last completed first.
const COMPENSATIONS_DUE: &str = "
SELECT w.id AS workflow_id, s.id AS step_id, s.name AS step_name, s.compensation
FROM workflows w JOIN tasks s ON s.workflow_id = w.id
WHERE w.id = ANY($1::uuid[]) AND w.state = 'compensating'
  AND NOT EXISTS (SELECT 1 FROM tasks l
                  WHERE l.workflow_id = w.id AND l.compensates IS NULL
                    AND l.state IN ('pending', 'queued', 'scheduled', 'running', 'retrying'))
  AND s.compensates IS NULL AND s.state = 'succeeded' AND s.compensation IS NOT NULL
ORDER BY w.id, s.finished_at DESC, s.seq DESC";

/// `compensating → failed` once nothing of the workflow is live and every
/// compensation due exists (and so has finished).
const FINISH_FAILED: &str = "
UPDATE workflows w
SET state = 'failed', finished_at = now(),
    error = coalesce(w.error, 'a step failed')
            || CASE WHEN EXISTS (SELECT 1 FROM tasks c
                                 WHERE c.workflow_id = w.id AND c.compensates IS NOT NULL
                                   AND c.state <> 'succeeded')
                    THEN '; a compensation did not succeed' ELSE '' END
WHERE w.id = ANY($1::uuid[]) AND w.state = 'compensating'
  AND NOT EXISTS (SELECT 1 FROM tasks l
                  WHERE l.workflow_id = w.id
                    AND l.state IN ('pending', 'queued', 'scheduled', 'running', 'retrying'))
  AND NOT EXISTS (SELECT 1 FROM tasks s
                  WHERE s.workflow_id = w.id AND s.compensates IS NULL
                    AND s.state = 'succeeded' AND s.compensation IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM tasks c
                                    WHERE c.workflow_id = w.id AND c.compensates = s.id))
RETURNING w.id";

const INSERT_WORKFLOWS: &str = "
INSERT INTO workflows (id, name, tenant, state, error, finished_at)
SELECT id, name, tenant, state, error, CASE WHEN state = 'running' THEN NULL ELSE now() END
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
    AS i(id, name, tenant, state, error)
ON CONFLICT (id) DO NOTHING
RETURNING id";

/// A `running` workflow without a single task, long after its creation: the
/// submission stopped between the workflow row and its tasks (only a
/// request/reply submission can, as a stream submission is redelivered).
const REJECT_ORPHANS: &str = "
UPDATE workflows w
SET state = 'rejected', finished_at = now(),
    error = 'none of its tasks was recorded (the submission was interrupted); submit it again'
WHERE w.state = 'running' AND w.created_at < now() - $1::bigint * interval '1 millisecond'
  AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = w.id)";

/// Finished dependencies of pending tasks that have something to do: one
/// that did not succeed (its dependents are cancelled), or every one
/// succeeded and the start time has come (they are queued). A pending task
/// still waiting for another dependency is left out, so that the limit is
/// spent on work.
const FINISHED_DEPENDENCIES: &str = "
SELECT DISTINCT d.id, d.state::text AS state
FROM tasks t JOIN tasks d ON d.id = ANY(t.depends_on)
WHERE t.finished_at IS NULL AND t.state = 'pending' AND cardinality(t.depends_on) > 0
  AND (d.state IN ('failed', 'timed_out', 'cancelled', 'rejected')
       OR (d.state = 'succeeded'
           AND (t.run_at IS NULL OR t.run_at <= now())
           AND NOT EXISTS (SELECT 1 FROM tasks o
                           WHERE o.id = ANY(t.depends_on) AND o.state <> 'succeeded')))
LIMIT $1";

impl Store {
    /// Creates workflows (those that exist already are left alone); returns
    /// the ids created.
    pub async fn insert_workflows(&self, workflows: &[WorkflowInsert]) -> Result<Vec<Uuid>> {
        if workflows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = workflows.iter().map(|w| w.id).collect();
        let names: Vec<&str> = workflows.iter().map(|w| w.name.as_str()).collect();
        let tenants: Vec<&str> = workflows.iter().map(|w| w.tenant.as_str()).collect();
        let states: Vec<&str> = workflows.iter().map(|w| w.state.as_str()).collect();
        let errors: Vec<Option<&str>> = workflows.iter().map(|w| w.error.as_deref()).collect();
        let client = self.client().await?;
        let statement = client.prepare_cached(INSERT_WORKFLOWS).await?;
        let rows = client
            .query(&statement, &[&ids, &names, &tenants, &states, &errors])
            .await?;
        rows.iter().map(|row| Ok(row.try_get("id")?)).collect()
    }

    /// Deletes those of `ids` that no task belongs to: a workflow created
    /// for a resubmission whose tasks all existed already. Returns how many.
    pub async fn drop_empty_workflows(&self, ids: &[Uuid]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let client = self.client().await?;
        Ok(client
            .execute(
                "DELETE FROM workflows w WHERE w.id = ANY($1) \
                 AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = w.id)",
                &[&ids],
            )
            .await?)
    }

    /// The state of each of `ids` that exists.
    pub async fn task_states(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, TaskState)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT id, state::text AS state FROM tasks WHERE id = ANY($1)")
            .await?;
        let rows = client.query(&statement, &[&ids]).await?;
        rows.iter()
            .map(|row| Ok((row.try_get("id")?, parse_state(row.try_get("state")?)?)))
            .collect()
    }

    /// The workflows the tasks among `ids` belong to.
    pub async fn workflows_of(&self, ids: &[Uuid]) -> Result<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT DISTINCT workflow_id FROM tasks \
                 WHERE id = ANY($1) AND workflow_id IS NOT NULL",
            )
            .await?;
        let rows = client.query(&statement, &[&ids]).await?;
        rows.iter()
            .map(|row| Ok(row.try_get("workflow_id")?))
            .collect()
    }

    /// Queues the pending dependents of `ids` whose dependencies all
    /// succeeded and whose start time has come.
    pub async fn release_dependents(&self, ids: &[Uuid]) -> Result<Vec<Transition>> {
        self.transitions(&table::RELEASE, ids).await
    }

    /// The dependents of `ids` that were queued and not placed yet (see
    /// `QUEUED_DEPENDENTS`), as transitions to announce again.
    pub async fn queued_dependents(&self, ids: &[Uuid]) -> Result<Vec<Transition>> {
        self.announce_again(ids).await
    }

    /// Cancels the pending tasks that depend, directly or not, on one of
    /// `ids` that ended without succeeding (other ids are ignored).
    pub async fn cancel_dependents(&self, ids: &[Uuid]) -> Result<Vec<Transition>> {
        self.transitions(&table::CANCEL_DEPENDENTS, ids).await
    }

    /// Moves the workflows among `ids` along: `running → compensating` when
    /// a step failed for good (cancelling its steps that have not started),
    /// `running → succeeded` when every step succeeded.
    pub async fn advance_workflows(&self, ids: &[Uuid]) -> Result<WorkflowMoves> {
        if ids.is_empty() {
            return Ok(WorkflowMoves::default());
        }
        let compensating = self.workflow_ids(START_COMPENSATING, ids).await?;
        let cancelled = self.transitions(&table::CANCEL_REMAINING, ids).await?;
        let succeeded = self.workflow_ids(FINISH_SUCCEEDED, ids).await?;
        Ok(WorkflowMoves {
            compensating,
            succeeded,
            cancelled,
        })
    }

    /// The compensations due in the workflows among `ids` (see
    /// [`CompensationDue`]); the same list every time until the workflow
    /// fails, so creating them must be idempotent (derived ids).
    pub async fn compensations_due(&self, ids: &[Uuid]) -> Result<Vec<CompensationDue>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let statement = client.prepare_cached(COMPENSATIONS_DUE).await?;
        let rows = client.query(&statement, &[&ids]).await?;
        rows.iter()
            .map(|row| {
                Ok(CompensationDue {
                    workflow_id: row.try_get("workflow_id")?,
                    step_id: row.try_get("step_id")?,
                    step_name: row.try_get("step_name")?,
                    compensation: row.try_get("compensation")?,
                })
            })
            .collect()
    }

    /// `compensating → failed` for the workflows among `ids` whose
    /// compensation is over.
    pub async fn finish_failed_workflows(&self, ids: &[Uuid]) -> Result<Vec<Uuid>> {
        self.workflow_ids(FINISH_FAILED, ids).await
    }

    /// Marks `running` workflows that got no task within `grace_ms` rejected;
    /// returns how many.
    pub async fn reject_orphan_workflows(&self, grace_ms: u64) -> Result<u64> {
        let client = self.client().await?;
        let statement = client.prepare_cached(REJECT_ORPHANS).await?;
        Ok(client
            .execute(&statement, &[&crate::to_i64(grace_ms)])
            .await?)
    }

    /// What a reconciler should look at: finished dependencies of pending
    /// tasks (at most `limit`), and every workflow not yet over.
    pub async fn unsettled(&self, limit: u32) -> Result<Unsettled> {
        let client = self.client().await?;
        let statement = client.prepare_cached(FINISHED_DEPENDENCIES).await?;
        let rows = client.query(&statement, &[&i64::from(limit)]).await?;
        let finished_dependencies = rows
            .iter()
            .map(|row| Ok((row.try_get("id")?, parse_state(row.try_get("state")?)?)))
            .collect::<Result<Vec<_>>>()?;
        let rows = client
            .query(
                "SELECT id FROM workflows WHERE state IN ('running', 'compensating') \
                 ORDER BY created_at",
                &[],
            )
            .await?;
        let open_workflows = rows
            .iter()
            .map(|row| Ok(row.try_get("id")?))
            .collect::<Result<Vec<_>>>()?;
        Ok(Unsettled {
            finished_dependencies,
            open_workflows,
        })
    }

    /// One workflow with its steps, or `None`.
    pub async fn get_workflow(&self, id: Uuid) -> Result<Option<WorkflowDetail>> {
        let client = self.client().await?;
        let Some(row) = client
            .query_opt(
                "SELECT id, name, tenant, state, error, created_at, finished_at \
                 FROM workflows WHERE id = $1",
                &[&id],
            )
            .await?
        else {
            return Ok(None);
        };
        let workflow = WorkflowRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            tenant: row.try_get("tenant")?,
            state: WorkflowState::parse(row.try_get("state")?)?,
            error: row.try_get("error")?,
            created_at: row.try_get("created_at")?,
            finished_at: row.try_get("finished_at")?,
        };
        let rows = client
            .query(
                "SELECT id, name, kind, pool, state::text AS state, attempt, depends_on, \
                        compensates, compensation IS NOT NULL AS has_compensation, error, \
                        created_at, queued_at, started_at, finished_at \
                 FROM tasks WHERE workflow_id = $1 ORDER BY seq",
                &[&id],
            )
            .await?;
        let steps = rows.iter().map(step_from_row).collect::<Result<_>>()?;
        Ok(Some(WorkflowDetail { workflow, steps }))
    }

    /// A task's name, workflow, dependencies and what it compensates; `None`
    /// when there is no such task.
    pub async fn task_links(&self, id: Uuid) -> Result<Option<TaskLinks>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT name, workflow_id, depends_on, compensates FROM tasks WHERE id = $1",
                &[&id],
            )
            .await?;
        row.map(|row| {
            Ok(TaskLinks {
                name: row.try_get("name")?,
                workflow_id: row.try_get("workflow_id")?,
                depends_on: row.try_get("depends_on")?,
                compensates: row.try_get("compensates")?,
            })
        })
        .transpose()
    }

    /// Runs a statement of the transition table that takes only task ids.
    async fn transitions(&self, statement: &Statement, ids: &[Uuid]) -> Result<Vec<Transition>> {
        self.transition_rows(statement.sql(), ids).await
    }

    /// Runs `QUEUED_DEPENDENTS`, which reads transitions without making any.
    async fn announce_again(&self, ids: &[Uuid]) -> Result<Vec<Transition>> {
        self.transition_rows(QUEUED_DEPENDENTS, ids).await
    }

    async fn transition_rows(&self, sql: &str, ids: &[Uuid]) -> Result<Vec<Transition>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        let rows = client.query(&statement, &[&ids]).await?;
        rows.iter().map(transition_from_row).collect()
    }

    async fn workflow_ids(&self, sql: &str, ids: &[Uuid]) -> Result<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        let rows = client.query(&statement, &[&ids]).await?;
        rows.iter().map(|row| Ok(row.try_get("id")?)).collect()
    }
}

fn step_from_row(row: &Row) -> Result<WorkflowStep> {
    Ok(WorkflowStep {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        pool: row.try_get("pool")?,
        state: parse_state(row.try_get("state")?)?,
        attempt: crate::to_u32(row.try_get("attempt")?),
        depends_on: row.try_get("depends_on")?,
        compensates: row.try_get("compensates")?,
        has_compensation: row.try_get("has_compensation")?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        queued_at: row.try_get("queued_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_states_round_trip() {
        for state in WorkflowState::ALL {
            assert_eq!(WorkflowState::parse(state.as_str()).ok(), Some(state));
        }
        assert!(WorkflowState::parse("dreaming").is_err());
    }

    #[test]
    fn reasons_name_tasks_by_name_and_id() {
        assert_eq!(
            label!("d"),
            "CASE WHEN d.name IS NULL THEN d.id::text ELSE format('%s (%s)', d.name, d.id) END"
        );
        assert!(CANCEL_DEPENDENTS.contains("format('%s (%s)', v.name, v.id)"));
    }
}
