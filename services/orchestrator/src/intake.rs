//! From the bytes of a submission to the rows to write. Pure: no I/O.
//!
//! A submission is planned as one unit ([`Planned`]): every row is created,
//! or every row is recorded `rejected` with the reason, naming the field.
//! Tasks with dependencies, or a start time to come, are `pending`; the
//! others `queued`. Dependencies on tasks that already exist are only listed
//! here; the recorder looks them up before writing
//! ([`Planned::apply_existing`]).

use crate::dag::{self, Dependency};
use crate::ids::{COMPENSATION, StreamOrigin, WORKFLOW_INDEX, derived_from, derived_id, fresh_id};
use crate::pool_view::PoolView;
use serde_json::Value;
use std::collections::HashMap;
use taskyard_store::tasks::TaskInsert;
use taskyard_store::workflows::{CompensationDue, WorkflowInsert, WorkflowState};
use taskyard_wire::task::{Limits, NewTask, Parsed, read_submission, validate_task};
use taskyard_wire::{Rejection, TaskState};
use uuid::Uuid;

/// Longest text copied from a rejected submission into `pool`, `kind` or
/// `tenant`, which are shown in lists.
const MAX_ECHOED_NAME: usize = 64;

/// Where ids for tasks without one come from.
#[derive(Debug, Clone, Copy)]
pub enum IdSource {
    /// Derived from the stream message, so a redelivery gets the same ids.
    Stream(StreamOrigin),
    /// Fresh UUIDv7s.
    Fresh,
}

impl IdSource {
    fn id(self, index: usize) -> Uuid {
        match self {
            IdSource::Stream(origin) => derived_id(origin, index),
            IdSource::Fresh => fresh_id(),
        }
    }

    /// A workflow's id: derived like its tasks', so that a redelivered
    /// workflow object is the same workflow.
    fn workflow_id(self) -> Uuid {
        self.id(WORKFLOW_INDEX)
    }
}

/// What to do with one submission.
#[derive(Debug)]
pub enum Plan {
    /// Rows to create (see [`Planned`]).
    Record(Planned),
    /// Not a task, a batch or a workflow object: nothing can be recorded
    /// about it.
    Unreadable(Rejection),
}

/// The rows of one submission, created together or rejected together.
#[derive(Debug, Clone)]
pub struct Planned {
    /// `queued` or `pending`; all `rejected` when `refusal` is set.
    pub rows: Vec<TaskInsert>,
    pub refusal: Option<Rejection>,
    /// The workflow row of a workflow object (`rejected` with the rows).
    pub workflow: Option<WorkflowInsert>,
    /// Dependencies on tasks outside the submission, which must exist and
    /// must not have ended without succeeding.
    pub existing: Vec<ExistingDependency>,
    /// Whether fields are named `tasks[i]...` (a batch or a workflow).
    pub batch: bool,
}

/// A `depends_on` entry that names an existing task.
#[derive(Debug, Clone, PartialEq)]
pub struct ExistingDependency {
    /// The depending task's place in the submission.
    pub index: usize,
    /// `depends_on[k]`, relative to the task.
    pub field: String,
    pub id: Uuid,
}

impl Planned {
    /// Records every row `rejected` because of `rejection` (its field
    /// relative to the whole submission), and the workflow with them.
    pub fn refuse(&mut self, rejection: Rejection) {
        for (index, row) in self.rows.iter_mut().enumerate() {
            row.state = TaskState::Rejected;
            row.error = Some(reason_for(&rejection, index, self.batch));
            row.run_at = None;
            // The corrected resubmission must not be taken for a duplicate
            // of this one.
            row.idempotency_key = None;
        }
        if let Some(workflow) = &mut self.workflow {
            workflow.state = WorkflowState::Rejected;
            workflow.error = Some(rejection.to_string());
        }
        self.refusal = Some(rejection);
    }

    /// Refuses a submission that Postgres would not store (`reason` is its
    /// refusal), keeping of each task only what cannot have been the cause:
    /// its id, kind, pool, tenant and numbers. The spec, labels, names,
    /// dependencies and workflow are dropped; the raw submission is in the
    /// stream or the client's hands, and the reason says what Postgres
    /// objected to.
    pub fn quarantine(&mut self, reason: &str) {
        self.workflow = None;
        self.existing.clear();
        for row in &mut self.rows {
            row.spec = Value::Null;
            row.labels = Value::Object(Default::default());
            row.node_selector = Value::Object(Default::default());
            row.name = None;
            row.workflow_id = None;
            row.depends_on.clear();
            row.compensation = None;
            row.compensates = None;
        }
        self.refuse(Rejection::new(
            "",
            format!("Postgres cannot store this submission: {reason}"),
        ));
    }

    /// Applies what Postgres says of the existing tasks named in
    /// `depends_on`: one that does not exist, or that ended without
    /// succeeding, refuses the submission (the task could never run, and a
    /// refusal reaches a request/reply client at once, where a task
    /// cancelled at birth would not); a task whose every dependency already
    /// succeeded is queued at once.
    pub fn apply_existing(&mut self, states: &HashMap<Uuid, TaskState>) {
        if self.refusal.is_some() {
            return;
        }
        let problem = self.existing.iter().find_map(|dep| {
            let message = match states.get(&dep.id) {
                None => format!("no task has the id {}", dep.id),
                Some(state) if state.is_terminal() && *state != TaskState::Succeeded => format!(
                    "task {} already ended {state}: this task could never run",
                    dep.id
                ),
                Some(_) => return None,
            };
            Some(self.culprit(dep.index, Rejection::new(dep.field.clone(), message)))
        });
        if let Some(rejection) = problem {
            self.refuse(rejection);
            return;
        }
        for row in &mut self.rows {
            let met = row
                .depends_on
                .iter()
                .all(|dep| states.get(dep) == Some(&TaskState::Succeeded));
            if row.state == TaskState::Pending && row.run_at.is_none() && met {
                row.state = TaskState::Queued;
            }
        }
    }

    /// `rejection` about task `index`, named as the client sent it.
    fn culprit(&self, index: usize, rejection: Rejection) -> Rejection {
        if self.batch {
            rejection.in_batch(index)
        } else {
            rejection
        }
    }
}

/// Plans one submission: valid tasks that their pools admit, with
/// dependencies that resolve and no cycle, are created; otherwise every task
/// of the submission (and its workflow) is recorded rejected.
pub fn plan(bytes: &[u8], limits: &Limits, ids: IdSource, pools: &PoolView) -> Plan {
    let submission = read_submission(bytes, limits);
    let workflow = submission.workflow.map(|name| WorkflowInsert {
        id: ids.workflow_id(),
        name,
        tenant: taskyard_wire::task::DEFAULT_TENANT.to_owned(),
        state: WorkflowState::Running,
        error: None,
    });
    match submission.parsed {
        Parsed::Valid(tasks) => {
            let batch = workflow.is_some()
                || tasks.len() > 1
                || bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
            plan_valid(tasks, limits, ids, pools, workflow, batch)
        }
        Parsed::Invalid {
            elements,
            rejection,
        } => {
            let batch =
                workflow.is_some() || elements.len() > 1 || rejection.field.starts_with("tasks[");
            let rows: Vec<TaskInsert> = elements
                .iter()
                .enumerate()
                .map(|(index, element)| {
                    let reason = reason_for(&rejection, index, batch);
                    let mut row = rejected_row(element, ids.id(index), reason, limits);
                    row.workflow_id = workflow.as_ref().map(|w| w.id);
                    row.name = element
                        .get("name")
                        .and_then(Value::as_str)
                        .map(|s| s.chars().take(MAX_ECHOED_NAME).collect());
                    row
                })
                .collect();
            let workflow = workflow.map(|w| WorkflowInsert {
                tenant: rows
                    .first()
                    .map(|row| row.tenant.clone())
                    .unwrap_or(w.tenant),
                state: WorkflowState::Rejected,
                error: Some(rejection.to_string()),
                ..w
            });
            Plan::Record(Planned {
                rows,
                refusal: Some(rejection),
                workflow,
                existing: Vec::new(),
                batch,
            })
        }
        Parsed::Unreadable(rejection) => Plan::Unreadable(rejection),
    }
}

fn plan_valid(
    mut tasks: Vec<NewTask>,
    limits: &Limits,
    ids: IdSource,
    pools: &PoolView,
    workflow: Option<WorkflowInsert>,
    batch: bool,
) -> Plan {
    let culprit = |index: usize, rejection: Rejection| {
        if batch {
            rejection.in_batch(index)
        } else {
            rejection
        }
    };
    let in_workflow = workflow.is_some();
    let admitted = tasks.iter_mut().enumerate().find_map(|(index, task)| {
        admit(task, limits, pools, in_workflow)
            .err()
            .map(|r| culprit(index, r))
    });
    let resolved = match admitted {
        Some(rejection) => Err(rejection),
        None => dag::resolve(&tasks).map_err(|refusal| culprit(refusal.index, refusal.rejection)),
    };
    let row_ids: Vec<Uuid> = tasks
        .iter()
        .enumerate()
        .map(|(index, task)| task.id.unwrap_or_else(|| ids.id(index)))
        .collect();
    let deps = resolved.as_ref().ok();
    let mut existing = Vec::new();
    let workflow_id = workflow.as_ref().map(|w| w.id);
    let tenant = tasks.first().map(|t| t.tenant.clone());
    let rows = tasks
        .into_iter()
        .enumerate()
        .map(|(index, task)| {
            let entries = task.depends_on.clone();
            let mut row = queued_row(task, row_ids[index]);
            row.workflow_id = workflow_id;
            for (k, dependency) in deps
                .and_then(|d| d.get(index))
                .into_iter()
                .flatten()
                .enumerate()
            {
                row.depends_on.push(match *dependency {
                    Dependency::InBatch(other) => row_ids[other],
                    Dependency::Existing(id) => {
                        // The entry's position, for the field name: the
                        // resolved list has no repeats, the submitted may.
                        let position = entries
                            .iter()
                            .position(|e| Uuid::parse_str(e).ok() == Some(id))
                            .unwrap_or(k);
                        existing.push(ExistingDependency {
                            index,
                            field: format!("depends_on[{position}]"),
                            id,
                        });
                        id
                    }
                });
            }
            if !row.depends_on.is_empty() {
                row.state = TaskState::Pending;
            }
            row
        })
        .collect();
    let mut planned = Planned {
        rows,
        refusal: None,
        workflow: workflow.map(|w| WorkflowInsert {
            tenant: tenant.unwrap_or(w.tenant.clone()),
            ..w
        }),
        existing,
        batch,
    };
    if let Err(rejection) = resolved {
        planned.refuse(rejection);
    }
    Plan::Record(planned)
}

/// Admits a task into its pool and checks its compensation: only a step of
/// a workflow has one, and it runs in the step's pool and tenant unless it
/// names its own (filled in here, so the stored compensation is complete).
fn admit(
    task: &mut NewTask,
    limits: &Limits,
    pools: &PoolView,
    in_workflow: bool,
) -> Result<(), Rejection> {
    pools.admit(task)?;
    let Some(Value::Object(compensation)) = &mut task.compensation else {
        return Ok(());
    };
    if !in_workflow {
        return Err(Rejection::new(
            "compensation",
            "only a step of a workflow has a compensation: submit {\"workflow\": \"<name>\", \"tasks\": [...]}",
        ));
    }
    compensation
        .entry("pool")
        .or_insert_with(|| Value::String(task.pool.clone()));
    compensation
        .entry("tenant")
        .or_insert_with(|| Value::String(task.tenant.clone()));
    // `within` keeps the code: an unknown pool in a compensation must
    // still make the caller reload its pools and plan again.
    let nested = |rejection: Rejection| rejection.within("compensation");
    let value = Value::Object(compensation.clone());
    let mut undo = validate_task(&value, limits).map_err(nested)?;
    pools.admit(&mut undo).map_err(nested)
}

/// The compensation tasks of the steps in `due` (by workflow, last
/// completed first): per workflow one chain, each link depending on the one
/// before, so they run one at a time in that order. Ids derive from the
/// step's, so planning them again gives the same tasks. A compensation that
/// no longer passes its checks (its pool was deleted, say) is recorded
/// `rejected`, which cancels the rest of its chain.
pub fn compensation_plans(
    due: &[CompensationDue],
    limits: &Limits,
    pools: &PoolView,
) -> Vec<Planned> {
    let mut plans: Vec<Planned> = Vec::new();
    let mut current: Option<Uuid> = None;
    for step in due {
        if current != Some(step.workflow_id) {
            current = Some(step.workflow_id);
            plans.push(Planned {
                rows: Vec::new(),
                refusal: None,
                workflow: None,
                existing: Vec::new(),
                batch: true,
            });
        }
        let Some(plan) = plans.last_mut() else {
            continue;
        };
        let id = derived_from(step.step_id, COMPENSATION);
        let step_label = step
            .step_name
            .clone()
            .unwrap_or_else(|| step.step_id.to_string());
        let checked = validate_task(&step.compensation, limits).and_then(|mut task| {
            pools.admit(&mut task)?;
            Ok(task)
        });
        let mut row = match checked {
            Ok(mut task) => {
                task.id = None;
                task.idempotency_key = None;
                queued_row(task, id)
            }
            Err(rejection) => {
                let text = |key: &str| {
                    step.compensation
                        .get(key)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .chars()
                        .take(MAX_ECHOED_NAME)
                        .collect::<String>()
                };
                TaskInsert::rejected(
                    id,
                    text("pool"),
                    text("kind"),
                    serde_json::json!({ "submitted": step.compensation }),
                    text("tenant"),
                    format!("the compensation of step {step_label} is refused: {rejection}"),
                )
            }
        };
        row.name = Some(
            row.name
                .take()
                .unwrap_or_else(|| format!("compensate-{step_label}")),
        );
        row.workflow_id = Some(step.workflow_id);
        row.compensates = Some(step.step_id);
        row.compensation = None;
        if let Some(previous) = plan.rows.last().map(|r| r.id) {
            row.depends_on = vec![previous];
            if row.state == TaskState::Queued {
                row.state = TaskState::Pending;
            }
        }
        plan.rows.push(row);
    }
    plans
}

/// What task `index` of a rejected submission is told: the rejection itself
/// for the culprit (or a single task), and the culprit's name for the others.
fn reason_for(rejection: &Rejection, index: usize, batch: bool) -> String {
    if batch && !is_culprit(rejection, index) {
        format!("batch rejected because of another task: {rejection}")
    } else {
        rejection.to_string()
    }
}

fn is_culprit(rejection: &Rejection, index: usize) -> bool {
    let prefix = format!("tasks[{index}]");
    rejection.field == prefix || rejection.field.starts_with(&format!("{prefix}."))
}

/// The row of a valid task: `pending` when it must wait for its start time,
/// `queued` otherwise (the caller makes it `pending` when it has
/// dependencies). (`delay_ms` becomes a `run_at` here, once: a
/// redelivered submission finds its rows already written.)
fn queued_row(task: NewTask, id: Uuid) -> TaskInsert {
    let now = taskyard_wire::now();
    // Validation bounds `delay_ms` by the schedule horizon, so the sum
    // exists; `checked_add` keeps an unchecked caller from a panic.
    let run_at = task.run_at.or_else(|| {
        task.delay_ms.and_then(|ms| {
            now.checked_add(time::Duration::milliseconds(
                i64::try_from(ms).unwrap_or(i64::MAX),
            ))
        })
    });
    let waits = run_at.is_some_and(|at| at > now);
    TaskInsert {
        id: task.id.unwrap_or(id),
        idempotency_key: task.idempotency_key,
        pool: task.pool,
        kind: task.kind.as_str().to_owned(),
        spec: task.spec,
        resources: task.resources,
        priority: task.priority,
        tenant: task.tenant,
        timeout_ms: task.timeout_ms,
        max_attempts: task.max_attempts,
        labels: serde_json::to_value(&task.labels).unwrap_or(Value::Null),
        node_selector: serde_json::to_value(&task.node_selector).unwrap_or(Value::Null),
        estimated_runtime_ms: task.estimated_runtime_ms,
        state: if waits {
            TaskState::Pending
        } else {
            TaskState::Queued
        },
        error: None,
        retry_backoff_ms: task.retry_backoff_ms,
        retry_backoff_max_ms: task.retry_backoff_max_ms,
        run_at: if waits { run_at } else { None },
        schedule_timeout_ms: task.schedule_timeout_ms,
        name: task.name,
        workflow_id: None,
        depends_on: Vec::new(),
        compensation: task.compensation,
        compensates: None,
        // Who asked is the request's, not the task's: the endpoint sets it.
        actor: None,
    }
}

/// A rejected task keeps what the client sent (in `spec`, bounded) so that it
/// can be read back, but not its idempotency key: the corrected resubmission
/// must not be taken for a duplicate of the rejected one.
fn rejected_row(element: &Value, id: Uuid, reason: String, limits: &Limits) -> TaskInsert {
    let text = |key: &str, default: &str| {
        element
            .get(key)
            .and_then(Value::as_str)
            .map(|s| s.chars().take(MAX_ECHOED_NAME).collect::<String>())
            .unwrap_or_else(|| default.to_owned())
    };
    let id = element
        .get("id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or(id);
    let size = serde_json::to_vec(element).map(|b| b.len()).unwrap_or(0);
    let submitted = if size <= limits.max_spec_bytes {
        element.clone()
    } else {
        serde_json::json!({ "omitted": format!("the submission was {size} bytes") })
    };
    TaskInsert::rejected(
        id,
        text("pool", taskyard_wire::task::DEFAULT_POOL),
        text("kind", ""),
        serde_json::json!({ "submitted": submitted }),
        text("tenant", taskyard_wire::task::DEFAULT_TENANT),
        reason,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> Limits {
        Limits::default()
    }

    fn plan(bytes: &[u8], limits: &Limits, ids: IdSource) -> Plan {
        super::plan(bytes, limits, ids, &PoolView::with_default_pool())
    }

    fn planned(value: Value) -> Planned {
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        match plan(&bytes, &limits(), IdSource::Fresh) {
            Plan::Record(planned) => planned,
            Plan::Unreadable(r) => panic!("unreadable: {r}"),
        }
    }

    fn stream() -> IdSource {
        IdSource::Stream(StreamOrigin {
            sequence: 9,
            published_nanos: 1_764_000_000_000_000_000,
        })
    }

    #[test]
    fn a_one_task_batch_names_its_element() {
        let Plan::Record(Planned { refusal, .. }) = plan(
            b" \n [{\"kind\":\"noop\",\"pool\":\"gpu\"}]",
            &limits(),
            IdSource::Fresh,
        ) else {
            panic!("expected rows");
        };
        assert_eq!(refusal.map(|r| r.field), Some("tasks[0].pool".to_owned()));
    }

    #[test]
    fn an_unknown_pool_rejects_the_batch_by_name() {
        let Planned { rows, refusal, .. } =
            planned(json!([{"kind": "noop"}, {"kind": "noop", "pool": "gpu"}]));
        let refusal = refusal.unwrap_or_else(|| panic!("expected a refusal"));
        assert_eq!(refusal.field, "tasks[1].pool");
        assert_eq!(refusal.message, "no pool named `gpu`");
        assert!(rows.iter().all(|r| r.state == TaskState::Rejected));
    }

    #[test]
    fn a_valid_batch_is_queued_whole() {
        let Planned { rows, refusal, .. } =
            planned(json!([{"kind": "noop"}, {"kind": "echo", "spec": {"a": 1}}]));
        assert!(refusal.is_none());
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.state == TaskState::Queued));
    }

    #[test]
    fn one_bad_task_rejects_its_whole_batch_and_names_it() {
        let Planned { rows, refusal, .. } =
            planned(json!([{"kind": "noop"}, {"kind": "noop", "bogus": 1}, {"kind": "noop"}]));
        assert_eq!(refusal.map(|r| r.field), Some("tasks[1].bogus".to_owned()));
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.state == TaskState::Rejected));
        let reasons: Vec<_> = rows.iter().filter_map(|r| r.error.clone()).collect();
        assert!(reasons[0].starts_with("batch rejected because of another task: tasks[1].bogus"));
        assert!(reasons[1].starts_with("tasks[1].bogus: unknown field"));
    }

    /// Postgres refuses NUL in `text` and `jsonb`: a submission holding one
    /// is refused by name, and what is recorded of it holds none.
    #[test]
    fn a_nul_is_refused_and_its_record_can_be_stored() {
        let planned = planned(json!({"workflow": "w\u{0}", "tasks": [
            {"kind": "noop", "name": "a\u{0}", "pool": "p\u{0}", "tenant": "t\u{0}"},
            {"kind": "ex\u{0}ec", "spec": {"command": "ls", "args": ["\u{0}"], "\u{0}": 1}}
        ]}));
        let refusal = planned.refusal.clone().expect("refused");
        assert!(refusal.message.contains("NUL"), "{refusal}");
        assert!(refusal.field.starts_with("tasks[0]") || refusal.field == "workflow");
        let nul = |text: &str| text.contains('\u{0}');
        let nul_in = |value: &Value| taskyard_wire::storable::find_nul(value).is_some();
        assert_eq!(planned.rows.len(), 2);
        for row in &planned.rows {
            assert_eq!(row.state, TaskState::Rejected);
            assert!(!nul(&row.pool) && !nul(&row.kind) && !nul(&row.tenant));
            assert!(!row.name.as_deref().is_some_and(nul));
            assert!(!row.error.as_deref().is_some_and(nul));
            assert!(!nul_in(&row.spec) && !nul_in(&row.labels) && !nul_in(&row.node_selector));
        }
        let workflow = planned.workflow.expect("a workflow row");
        assert_eq!(workflow.state, WorkflowState::Rejected);
        assert!(!nul(&workflow.name) && !workflow.error.as_deref().is_some_and(nul));
        // A single task names its field without a prefix.
        let single = planned_one(json!({"kind": "noop", "labels": {"team": "a\u{0}"}}));
        assert_eq!(single.field, "labels.team");
    }

    fn planned_one(value: Value) -> Rejection {
        planned(value).refusal.expect("refused")
    }

    #[test]
    fn a_delay_up_to_the_horizon_becomes_a_start_time() {
        let max = taskyard_wire::task::MAX_DELAY_MS;
        let planned = planned(json!({"kind": "noop", "delay_ms": max}));
        assert!(planned.refusal.is_none());
        assert_eq!(planned.rows[0].state, TaskState::Pending);
        let run_at = planned.rows[0].run_at.expect("a start time");
        assert!(
            run_at
                > taskyard_wire::now() + taskyard_wire::task::MAX_SCHEDULE_HORIZON
                    - time::Duration::MINUTE
        );
        let refused = planned_one(json!({"kind": "noop", "delay_ms": max + 1}));
        assert_eq!(refused.field, "delay_ms");
    }

    #[test]
    fn a_rejected_task_keeps_its_id_but_not_its_key() {
        let id = "0190b6a2-0000-7000-8000-000000000001";
        let Planned { rows, .. } =
            planned(json!({"id": id, "kind": "nope", "idempotency_key": "k"}));
        assert_eq!(rows[0].id.to_string(), id);
        assert_eq!(rows[0].idempotency_key, None);
        assert_eq!(rows[0].kind, "nope");
    }

    #[test]
    fn garbage_is_unreadable() {
        assert!(matches!(
            plan(b"\xff\xfe", &limits(), IdSource::Fresh),
            Plan::Unreadable(_)
        ));
    }

    #[test]
    fn a_workflow_waits_on_its_dependencies_by_id() {
        let planned = planned(json!({"workflow": "diamond", "tasks": [
            {"kind": "noop", "name": "a", "tenant": "t1"},
            {"kind": "noop", "name": "b", "depends_on": ["a"]},
            {"kind": "noop", "name": "c", "depends_on": ["a"]},
            {"kind": "noop", "name": "d", "depends_on": ["b", "c"]},
        ]}));
        assert!(planned.refusal.is_none());
        let workflow = planned.workflow.clone().expect("a workflow row");
        assert_eq!(
            (
                workflow.name.as_str(),
                workflow.tenant.as_str(),
                workflow.state
            ),
            ("diamond", "t1", WorkflowState::Running)
        );
        let rows = &planned.rows;
        let states: Vec<TaskState> = rows.iter().map(|r| r.state).collect();
        use TaskState::{Pending, Queued};
        assert_eq!(states, [Queued, Pending, Pending, Pending]);
        assert_eq!(rows[3].depends_on, [rows[1].id, rows[2].id]);
        assert!(rows.iter().all(|r| r.workflow_id == Some(workflow.id)));
        assert!(planned.existing.is_empty());
    }

    #[test]
    fn a_redelivered_workflow_gets_the_same_ids() {
        let body = br#"{"workflow": "w", "tasks": [{"kind": "noop", "name": "a"}, {"kind": "noop", "depends_on": ["a"]}]}"#;
        let ids = |plan: Plan| match plan {
            Plan::Record(p) => (
                p.workflow.map(|w| w.id),
                p.rows
                    .iter()
                    .map(|r| (r.id, r.depends_on.clone()))
                    .collect::<Vec<_>>(),
            ),
            Plan::Unreadable(r) => panic!("{r}"),
        };
        let first = ids(plan(body, &limits(), stream()));
        assert_eq!(first, ids(plan(body, &limits(), stream())));
        assert!(first.0.is_some());
        assert!(!first.1.iter().any(|(id, _)| Some(*id) == first.0));
    }

    #[test]
    fn a_cycle_rejects_the_workflow_and_names_its_tasks() {
        let planned = planned(json!({"workflow": "loop", "tasks": [
            {"kind": "noop", "name": "a", "depends_on": ["c"]},
            {"kind": "noop", "name": "b", "depends_on": ["a"]},
            {"kind": "noop", "name": "c", "depends_on": ["b"]},
        ]}));
        let refusal = planned.refusal.clone().expect("refused");
        assert_eq!(refusal.field, "tasks[0].depends_on");
        assert!(refusal.message.contains("a -> c -> b -> a"), "{refusal}");
        assert!(planned.rows.iter().all(|r| r.state == TaskState::Rejected));
        let workflow = planned.workflow.expect("a workflow row");
        assert_eq!(workflow.state, WorkflowState::Rejected);
        assert!(
            workflow
                .error
                .is_some_and(|e| e.contains("dependency cycle"))
        );
    }

    #[test]
    fn a_single_task_names_its_field_without_a_batch_prefix() {
        let planned = planned(json!({"kind": "noop", "depends_on": ["nobody"]}));
        assert_eq!(
            planned.refusal.map(|r| r.field),
            Some("depends_on[0]".to_owned())
        );
    }

    #[test]
    fn existing_dependencies_are_checked_before_writing() {
        let (done, running, failed, ghost) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let states = HashMap::from([
            (done, TaskState::Succeeded),
            (running, TaskState::Running),
            (failed, TaskState::Failed),
        ]);
        let mut met = planned(json!({"kind": "noop", "depends_on": [done.to_string()]}));
        assert_eq!(met.rows[0].state, TaskState::Pending);
        assert_eq!(met.existing[0].id, done);
        met.apply_existing(&states);
        assert_eq!(met.rows[0].state, TaskState::Queued);

        let mut waits = planned(json!([
            {"kind": "noop", "depends_on": [done.to_string(), running.to_string()]}
        ]));
        waits.apply_existing(&states);
        assert_eq!(waits.rows[0].state, TaskState::Pending);
        assert!(waits.refusal.is_none());

        let mut dead = planned(json!([
            {"kind": "noop"},
            {"kind": "noop", "depends_on": [done.to_string(), failed.to_string()]}
        ]));
        dead.apply_existing(&states);
        let refusal = dead.refusal.clone().expect("refused");
        assert_eq!(refusal.field, "tasks[1].depends_on[1]");
        assert!(
            refusal.message.contains("already ended failed"),
            "{refusal}"
        );
        assert!(dead.rows.iter().all(|r| r.state == TaskState::Rejected));

        let mut unknown = planned(json!({"kind": "noop", "depends_on": [ghost.to_string()]}));
        unknown.apply_existing(&states);
        let refusal = unknown.refusal.expect("refused");
        assert_eq!(refusal.field, "depends_on[0]");
        assert_eq!(refusal.message, format!("no task has the id {ghost}"));
    }

    #[test]
    fn compensations_belong_to_workflows_and_inherit_the_pool() {
        let refused = planned(json!([{"kind": "noop", "compensation": {"kind": "noop"}}]));
        assert_eq!(
            refused.refusal.map(|r| r.field),
            Some("tasks[0].compensation".to_owned())
        );
        let bad_pool = planned(json!({"workflow": "w", "tasks": [
            {"kind": "noop", "compensation": {"kind": "noop", "pool": "gpu"}}
        ]}));
        assert_eq!(
            bad_pool.refusal.map(|r| r.field),
            Some("tasks[0].compensation.pool".to_owned())
        );
        let ok = planned(json!({"workflow": "w", "tasks": [
            {"kind": "noop", "tenant": "acme", "compensation": {"kind": "echo"}}
        ]}));
        let compensation = ok.rows[0].compensation.clone().expect("kept");
        assert_eq!(compensation["pool"], "default");
        assert_eq!(compensation["tenant"], "acme");
    }

    #[test]
    fn compensations_run_as_a_chain_last_completed_first() {
        let workflow = Uuid::now_v7();
        let (late, early) = (Uuid::now_v7(), Uuid::now_v7());
        let due = [
            CompensationDue {
                workflow_id: workflow,
                step_id: late,
                step_name: Some("hotel".to_owned()),
                compensation: json!({"kind": "echo", "spec": "undo hotel"}),
            },
            CompensationDue {
                workflow_id: workflow,
                step_id: early,
                step_name: None,
                compensation: json!({"kind": "echo", "pool": "gone"}),
            },
        ];
        let pools = PoolView::with_default_pool();
        let plans = compensation_plans(&due, &limits(), &pools);
        assert_eq!(plans.len(), 1);
        let rows = &plans[0].rows;
        assert_eq!(rows[0].id, derived_from(late, COMPENSATION));
        assert_eq!(rows[0].state, TaskState::Queued);
        assert_eq!(rows[0].name.as_deref(), Some("compensate-hotel"));
        assert_eq!(rows[0].compensates, Some(late));
        assert_eq!(rows[0].workflow_id, Some(workflow));
        // Its pool is gone: recorded rejected, which cancels what follows.
        assert_eq!(rows[1].state, TaskState::Rejected);
        assert_eq!(rows[1].depends_on, [rows[0].id]);
        assert!(
            rows[1]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("no pool named `gone`")),
            "{:?}",
            rows[1].error
        );
        // Planned again (a redelivered event): the same tasks.
        let again = compensation_plans(&due, &limits(), &pools);
        assert_eq!(
            again[0].rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            rows.iter().map(|r| r.id).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_compensation_in_an_unknown_pool_is_refused_as_an_unknown_pool() {
        // The code, not only the words, survives the nesting: the consumer
        // reloads its pools and plans again on `unknown_pool`.
        let planned = planned(json!({
            "workflow": "trip",
            "tasks": [{"kind": "noop", "name": "book", "compensation": {"kind": "noop", "pool": "fresh"}}]
        }));
        let refusal = planned.refusal.expect("refused");
        assert_eq!(refusal.field, "tasks[0].compensation.pool", "{refusal}");
        assert!(
            crate::pool_view::is_unknown_pool(Some(&refusal)),
            "{refusal:?}"
        );
    }
}
