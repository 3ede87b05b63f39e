//! From the bytes of a submission to the rows to write. Pure: no I/O.

use crate::ids::{StreamOrigin, derived_id, fresh_id};
use crate::pool_view::PoolView;
use serde_json::Value;
use taskyard_store::tasks::TaskInsert;
use taskyard_wire::task::{Limits, NewTask, Parsed, parse_submission};
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
}

/// What to do with one submission.
#[derive(Debug)]
pub enum Plan {
    /// Rows to create: all `queued`, or (when `refusal` is set) all `rejected`.
    Record {
        rows: Vec<TaskInsert>,
        refusal: Option<Rejection>,
    },
    /// Not a JSON object or array: nothing can be recorded about it.
    Unreadable(Rejection),
}

/// Plans one submission: valid tasks that their pools admit are queued;
/// otherwise every task of the submission is recorded rejected.
pub fn plan(bytes: &[u8], limits: &Limits, ids: IdSource, pools: &PoolView) -> Plan {
    match parse_submission(bytes, limits) {
        Parsed::Valid(mut tasks) => {
            let batch =
                tasks.len() > 1 || bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
            let refusal = tasks.iter_mut().enumerate().find_map(|(index, task)| {
                pools.admit(task).err().map(|rejection| {
                    if batch {
                        rejection.in_batch(index)
                    } else {
                        rejection
                    }
                })
            });
            match refusal {
                None => Plan::Record {
                    rows: tasks
                        .into_iter()
                        .enumerate()
                        .map(|(index, task)| queued_row(task, ids.id(index)))
                        .collect(),
                    refusal: None,
                },
                Some(rejection) => {
                    let rows = tasks
                        .into_iter()
                        .enumerate()
                        .map(|(index, task)| {
                            let reason = reason_for(&rejection, index, batch);
                            let id = task.id.unwrap_or_else(|| ids.id(index));
                            let mut row = queued_row(task, id);
                            row.state = TaskState::Rejected;
                            row.error = Some(reason);
                            // The corrected resubmission must not be taken
                            // for a duplicate of this one.
                            row.idempotency_key = None;
                            row
                        })
                        .collect();
                    Plan::Record {
                        rows,
                        refusal: Some(rejection),
                    }
                }
            }
        }
        Parsed::Invalid {
            elements,
            rejection,
        } => {
            let batch = elements.len() > 1 || rejection.field.starts_with("tasks[");
            let rows = elements
                .iter()
                .enumerate()
                .map(|(index, element)| {
                    let reason = reason_for(&rejection, index, batch);
                    rejected_row(element, ids.id(index), reason, limits)
                })
                .collect();
            Plan::Record {
                rows,
                refusal: Some(rejection),
            }
        }
        Parsed::Unreadable(rejection) => Plan::Unreadable(rejection),
    }
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
/// `queued` otherwise. (`delay_ms` becomes a `run_at` here, once: a
/// redelivered submission finds its rows already written.)
fn queued_row(task: NewTask, id: Uuid) -> TaskInsert {
    let now = taskyard_wire::now();
    let run_at = task.run_at.or_else(|| {
        task.delay_ms
            .map(|ms| now + time::Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX)))
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

    fn limits() -> Limits {
        Limits::default()
    }

    fn plan(bytes: &[u8], limits: &Limits, ids: IdSource) -> Plan {
        super::plan(bytes, limits, ids, &PoolView::with_default_pool())
    }

    #[test]
    fn a_one_task_batch_names_its_element() {
        let Plan::Record { refusal, .. } = plan(
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
        let Plan::Record { rows, refusal } = plan(
            br#"[{"kind":"noop"},{"kind":"noop","pool":"gpu"}]"#,
            &limits(),
            IdSource::Fresh,
        ) else {
            panic!("expected rows");
        };
        let refusal = refusal.unwrap_or_else(|| panic!("expected a refusal"));
        assert_eq!(refusal.field, "tasks[1].pool");
        assert_eq!(refusal.message, "no pool named `gpu`");
        assert!(rows.iter().all(|r| r.state == TaskState::Rejected));
    }

    #[test]
    fn a_valid_batch_is_queued_whole() {
        let Plan::Record { rows, refusal } = plan(
            br#"[{"kind":"noop"},{"kind":"echo","spec":{"a":1}}]"#,
            &limits(),
            IdSource::Fresh,
        ) else {
            panic!("expected rows");
        };
        assert!(refusal.is_none());
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.state == TaskState::Queued));
    }

    #[test]
    fn one_bad_task_rejects_its_whole_batch_and_names_it() {
        let Plan::Record { rows, refusal } = plan(
            br#"[{"kind":"noop"},{"kind":"noop","bogus":1},{"kind":"noop"}]"#,
            &limits(),
            IdSource::Fresh,
        ) else {
            panic!("expected rows");
        };
        assert_eq!(refusal.map(|r| r.field), Some("tasks[1].bogus".to_owned()));
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.state == TaskState::Rejected));
        let reasons: Vec<_> = rows.iter().filter_map(|r| r.error.clone()).collect();
        assert!(reasons[0].starts_with("batch rejected because of another task: tasks[1].bogus"));
        assert!(reasons[1].starts_with("tasks[1].bogus: unknown field"));
    }

    #[test]
    fn a_rejected_task_keeps_its_id_but_not_its_key() {
        let id = "0190b6a2-0000-7000-8000-000000000001";
        let body = format!(r#"{{"id":"{id}","kind":"nope","idempotency_key":"k"}}"#);
        let Plan::Record { rows, .. } = plan(body.as_bytes(), &limits(), IdSource::Fresh) else {
            panic!("expected rows");
        };
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
}
