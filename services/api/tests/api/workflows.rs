//! `GET /api/v1/workflows/{id}`, and the store's dependency and workflow
//! statements on a real Postgres (the orchestrator runs them; here they are
//! driven one by one, with the finishing transitions written by hand).

use crate::helpers::{TestApp, code, task};
use axum::http::StatusCode;
use serde_json::{Value, json};
use taskyard_store::tasks::TaskInsert;
use taskyard_store::workflows::{WorkflowInsert, WorkflowState};
use taskyard_wire::TaskState;
use uuid::Uuid;

/// A pending step of `workflow` named `name` that waits for `deps`.
fn step(name: &str, workflow: Option<Uuid>, deps: &[Uuid]) -> TaskInsert {
    TaskInsert {
        name: Some(name.to_owned()),
        workflow_id: workflow,
        depends_on: deps.to_vec(),
        state: if deps.is_empty() {
            TaskState::Queued
        } else {
            TaskState::Pending
        },
        ..task("default")
    }
}

async fn workflow(app: &TestApp, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    app.store
        .insert_workflows(&[WorkflowInsert {
            id,
            name: name.to_owned(),
            tenant: "default".to_owned(),
            state: WorkflowState::Running,
            error: None,
        }])
        .await
        .expect("insert the workflow");
    id
}

/// Ends a task as a worker's report would (state, error, finished_at).
async fn end(app: &TestApp, id: Uuid, state: &str, error: Option<&str>) {
    let db = app._stack.db().await.expect("a database client");
    db.execute(
        "UPDATE tasks SET state = $2::text::task_state, error = $3, finished_at = clock_timestamp() \
         WHERE id = $1",
        &[&id, &state, &error],
    )
    .await
    .expect("end the task");
}

async fn states(app: &TestApp, ids: &[Uuid]) -> Vec<TaskState> {
    let found = app.store.task_states(ids).await.expect("read states");
    ids.iter()
        .map(|id| {
            found
                .iter()
                .find(|(found, _)| found == id)
                .map(|(_, state)| *state)
                .expect("every task exists")
        })
        .collect()
}

#[tokio::test]
async fn a_diamond_is_released_by_whichever_dependency_finishes_last() {
    let app = TestApp::start().await;
    let a = step("a", None, &[]);
    let b = step("b", None, &[a.id]);
    let c = step("c", None, &[a.id]);
    let d = step("d", None, &[b.id, c.id]);
    let ids = app.insert(vec![a, b, c, d]).await;
    let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[3]);

    assert!(
        app.store
            .release_dependents(&[a])
            .await
            .expect("release")
            .is_empty(),
        "a has not succeeded yet"
    );
    end(&app, a, "succeeded", None).await;
    let released = app.store.release_dependents(&[a]).await.expect("release");
    let mut moved: Vec<Uuid> = released.iter().map(|t| t.task_id).collect();
    moved.sort();
    let mut expected = vec![b, c];
    expected.sort();
    assert_eq!(moved, expected);
    let b_event = released.iter().find(|t| t.task_id == b).expect("b moved");
    assert_eq!(
        (b_event.from, b_event.to),
        (TaskState::Pending, TaskState::Queued)
    );
    assert!(
        b_event.requeued.is_some(),
        "a released task carries its placement request"
    );
    // A redelivered event changes nothing, but what it queued can be
    // announced again (the scheduler ignores a task it holds).
    assert!(
        app.store
            .release_dependents(&[a])
            .await
            .expect("release")
            .is_empty()
    );
    let again = app.store.queued_dependents(&[a]).await.expect("queued");
    assert_eq!(again.len(), 2);
    assert!(
        again
            .iter()
            .all(|t| t.to == TaskState::Queued && t.requeued.is_some())
    );

    end(&app, b, "succeeded", None).await;
    assert!(
        app.store
            .release_dependents(&[b])
            .await
            .expect("release")
            .is_empty(),
        "d still waits for c"
    );
    end(&app, c, "succeeded", None).await;
    let released = app
        .store
        .release_dependents(&[c, b])
        .await
        .expect("release");
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].task_id, d);
    assert_eq!(
        released[0].reason.as_deref(),
        Some("its 2 dependencies succeeded")
    );
}

#[tokio::test]
async fn a_failure_cancels_dependents_transitively_naming_the_cause() {
    let app = TestApp::start().await;
    let a = step("a", None, &[]);
    let b = step("b", None, &[a.id]);
    let c = step("c", None, &[b.id]);
    let other = step("other", None, &[]);
    let d = step("d", None, &[c.id, other.id]);
    let ids = app.insert(vec![a, b, c, other, d]).await;
    let (a, b, c, other, d) = (ids[0], ids[1], ids[2], ids[3], ids[4]);

    end(&app, other, "succeeded", None).await;
    assert!(
        app.store
            .cancel_dependents(&[a, other])
            .await
            .expect("cancel")
            .is_empty(),
        "a is still queued; a success cancels nothing"
    );
    end(&app, a, "failed", Some("boom")).await;
    let cancelled = app.store.cancel_dependents(&[a]).await.expect("cancel");
    assert_eq!(cancelled.len(), 3);
    let reason = |id: Uuid| {
        cancelled
            .iter()
            .find(|t| t.task_id == id)
            .and_then(|t| t.reason.clone())
            .unwrap_or_default()
    };
    assert_eq!(reason(b), format!("dependency a ({a}) failed: boom"));
    assert_eq!(
        reason(c),
        format!("dependency b ({b}) was cancelled because a ({a}) failed: boom")
    );
    assert_eq!(
        reason(d),
        format!("dependency c ({c}) was cancelled because a ({a}) failed: boom")
    );
    assert_eq!(
        states(&app, &[b, c, d]).await,
        [
            TaskState::Cancelled,
            TaskState::Cancelled,
            TaskState::Cancelled
        ]
    );
    assert!(
        app.store
            .cancel_dependents(&[a])
            .await
            .expect("cancel")
            .is_empty()
    );
}

#[tokio::test]
async fn a_failed_step_compensates_the_completed_ones_once_nothing_runs() {
    let app = TestApp::start().await;
    let w = workflow(&app, "trip").await;
    let undo = json!({"kind": "echo", "pool": "default", "tenant": "default"});
    let first = TaskInsert {
        compensation: Some(undo.clone()),
        ..step("first", Some(w), &[])
    };
    let second = TaskInsert {
        compensation: Some(undo.clone()),
        ..step("second", Some(w), &[])
    };
    let slow = TaskInsert {
        compensation: Some(undo.clone()),
        ..step("slow", Some(w), &[])
    };
    let pay = step("pay", Some(w), &[first.id]);
    let last = step("last", Some(w), &[pay.id]);
    let queued = step("queued", Some(w), &[]);
    let ids = app
        .insert(vec![first, second, slow, pay, last, queued])
        .await;
    let (first, second, slow, pay, last, queued) = (ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]);
    end(&app, first, "succeeded", None).await;
    end(&app, second, "succeeded", None).await;
    let db = app._stack.db().await.expect("a database client");
    db.execute(
        "UPDATE tasks SET state = 'running', attempt = 1, node_id = 'n1', started_at = now() \
         WHERE id = $1",
        &[&slow],
    )
    .await
    .expect("slow runs");
    db.execute(
        "UPDATE tasks SET state = 'running', attempt = 1, node_id = 'n1', started_at = now() \
         WHERE id = $1",
        &[&pay],
    )
    .await
    .expect("pay runs");
    end(&app, pay, "failed", Some("card declined")).await;

    let moves = app.store.advance_workflows(&[w]).await.expect("advance");
    assert_eq!(moves.compensating, [w]);
    assert!(moves.succeeded.is_empty());
    // What had not started is cancelled; what runs finishes.
    let mut cancelled: Vec<Uuid> = moves.cancelled.iter().map(|t| t.task_id).collect();
    cancelled.sort();
    let mut expected = vec![last, queued];
    expected.sort();
    assert_eq!(cancelled, expected);
    assert!(
        app.store
            .compensations_due(&[w])
            .await
            .expect("due")
            .is_empty(),
        "slow still runs: its outcome decides whether it is undone"
    );
    assert!(
        app.store
            .finish_failed_workflows(&[w])
            .await
            .expect("finish")
            .is_empty()
    );

    end(&app, slow, "succeeded", None).await;
    let due = app.store.compensations_due(&[w]).await.expect("due");
    let order: Vec<Uuid> = due.iter().map(|d| d.step_id).collect();
    assert_eq!(order, [slow, second, first], "last completed first");
    assert_eq!(due[0].compensation, undo);
    assert!(
        app.store
            .finish_failed_workflows(&[w])
            .await
            .expect("finish")
            .is_empty(),
        "compensations are due but do not exist yet"
    );

    // The compensations run and end; then the workflow fails.
    let mut compensations = Vec::new();
    for d in &due {
        let mut row = step("undo", Some(w), &[]);
        row.compensates = Some(d.step_id);
        compensations.push(row);
    }
    let undone = app.insert(compensations).await;
    for id in &undone {
        end(&app, *id, "succeeded", None).await;
    }
    assert_eq!(
        app.store
            .finish_failed_workflows(&[w])
            .await
            .expect("finish"),
        [w]
    );
    let (status, body) = app.get_json(&format!("/api/v1/workflows/{w}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "failed");
    assert_eq!(
        body["error"],
        format!("step pay ({pay}) failed: card declined")
    );
    let steps = body["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 9);
    let pay_step = steps
        .iter()
        .find(|s| s["name"] == "pay")
        .expect("pay is a step");
    assert_eq!(pay_step["depends_on"], json!([first.to_string()]));
    assert!(steps.iter().filter(|s| !s["compensates"].is_null()).count() == 3);
}

#[tokio::test]
async fn a_workflow_whose_steps_all_succeeded_succeeds() {
    let app = TestApp::start().await;
    let w = workflow(&app, "fine").await;
    let a = step("a", Some(w), &[]);
    let b = step("b", Some(w), &[a.id]);
    let ids = app.insert(vec![a, b]).await;
    end(&app, ids[0], "succeeded", None).await;
    let moves = app.store.advance_workflows(&[w]).await.expect("advance");
    assert!(moves.succeeded.is_empty() && moves.compensating.is_empty());
    end(&app, ids[1], "succeeded", None).await;
    let moves = app.store.advance_workflows(&[w]).await.expect("advance");
    assert_eq!(moves.succeeded, [w]);
    let again = app.store.advance_workflows(&[w]).await.expect("advance");
    assert!(again.succeeded.is_empty(), "a workflow succeeds once");

    let (_, task) = app.get_json(&format!("/api/v1/tasks/{}", ids[1])).await;
    assert_eq!(task["workflow_id"], w.to_string());
    assert_eq!(task["name"], "b");
    assert_eq!(task["depends_on"], json!([ids[0].to_string()]));
    assert_eq!(task["compensates"], Value::Null);
}

#[tokio::test]
async fn unknown_and_malformed_workflow_ids_are_named() {
    let app = TestApp::start().await;
    let (status, body) = app
        .get_json(&format!("/api/v1/workflows/{}", Uuid::now_v7()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(code(&body), "not_found");
    let (status, body) = app.get_json("/api/v1/workflows/nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "id");
}

#[tokio::test]
async fn reconciliation_lists_only_dependencies_with_work_to_do() {
    let app = TestApp::start().await;
    let done = step("done", None, &[]);
    let running = step("running", None, &[]);
    let failed = step("failed", None, &[]);
    let waits = step("waits", None, &[done.id, running.id]);
    let ready = step("ready", None, &[done.id]);
    let doomed = step("doomed", None, &[failed.id]);
    let ids = app
        .insert(vec![done, running, failed, waits, ready, doomed])
        .await;
    let (done, failed) = (ids[0], ids[2]);
    end(&app, done, "succeeded", None).await;
    end(&app, failed, "failed", Some("x")).await;
    let w = workflow(&app, "open").await;
    let unsettled = app.store.unsettled(100).await.expect("unsettled");
    let mut found = unsettled.finished_dependencies.clone();
    found.sort_by_key(|(id, _)| *id);
    let mut expected = vec![(done, TaskState::Succeeded), (failed, TaskState::Failed)];
    expected.sort_by_key(|(id, _)| *id);
    assert_eq!(
        found, expected,
        "`running` holds `waits`: nothing to do there"
    );
    assert_eq!(unsettled.open_workflows, [w]);
    // An empty running workflow is an interrupted submission, once old.
    assert_eq!(
        app.store
            .reject_orphan_workflows(60_000)
            .await
            .expect("orphans"),
        0
    );
    assert_eq!(
        app.store.reject_orphan_workflows(0).await.expect("orphans"),
        1
    );
    let (_, body) = app.get_json(&format!("/api/v1/workflows/{w}")).await;
    assert_eq!(body["state"], "rejected");
}

#[tokio::test]
async fn workflows_are_listed_newest_first_with_their_step_counts() {
    let app = TestApp::start().await;
    let older = workflow(&app, "older").await;
    let newer = workflow(&app, "newer").await;
    app.insert(vec![
        TaskInsert {
            workflow_id: Some(newer),
            ..task("default")
        },
        TaskInsert {
            workflow_id: Some(newer),
            ..task("default")
        },
    ])
    .await;
    let (status, body) = app.get_json("/api/v1/workflows").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed = body["workflows"].as_array().expect("a list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["id"], newer.to_string());
    assert_eq!(listed[0]["name"], "newer");
    assert_eq!(listed[0]["steps"], 2);
    assert_eq!(listed[0]["state"], "running");
    assert_eq!(listed[1]["id"], older.to_string());
    assert_eq!(listed[1]["steps"], 0);
    let (status, body) = app.get_json("/api/v1/workflows?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["workflows"].as_array().map(Vec::len), Some(1));
    let (status, body) = app.get_json("/api/v1/workflows?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "limit");
}
