//! DAGs and workflows on the real stack: dependencies released in order,
//! failures propagated to dependents, sagas compensated in reverse, and bad
//! workflows refused whole.

use serde_json::{Value, json};
use std::collections::HashMap;
use taskyard_testkit::wait_until;
use taskyard_tests::{Cluster, WAIT, WorkerSpec};
use taskyard_wire::Timestamp;
use taskyard_wire::reply::SubmitReply;
use uuid::Uuid;

/// Submits a workflow object; returns its id and its tasks' ids by name.
async fn submit_workflow(
    cluster: &Cluster,
    body: &Value,
) -> anyhow::Result<(Uuid, HashMap<String, Uuid>)> {
    let SubmitReply::Accepted { ids, workflow_id } = cluster.submit(body).await? else {
        anyhow::bail!("the workflow was refused: {body}");
    };
    let workflow_id = workflow_id.ok_or_else(|| anyhow::anyhow!("no workflow id in the reply"))?;
    Ok((workflow_id, names(body, &ids)))
}

/// The ids of a submission's tasks by their `name`.
fn names(body: &Value, ids: &[Uuid]) -> HashMap<String, Uuid> {
    let tasks = body
        .get("tasks")
        .or(Some(body))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    tasks
        .iter()
        .zip(ids)
        .filter_map(|(task, id)| Some((task["name"].as_str()?.to_owned(), *id)))
        .collect()
}

/// Waits until workflow `id` is over, and returns its state and error.
async fn wait_workflow(cluster: &Cluster, id: Uuid) -> anyhow::Result<(String, Option<String>)> {
    wait_until(&format!("workflow {id} to end"), WAIT, || async {
        let row = cluster
            .db
            .query_opt(
                "SELECT state, error FROM workflows WHERE id = $1 AND finished_at IS NOT NULL",
                &[&id],
            )
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    })
    .await
}

/// When task `id` entered `state` (its first such history row).
async fn entered(cluster: &Cluster, id: Uuid, state: &str) -> anyhow::Result<Timestamp> {
    let row = cluster
        .db
        .query_one(
            "SELECT min(at) FROM task_events WHERE task_id = $1 AND to_state = $2::text::task_state",
            &[&id, &state],
        )
        .await?;
    row.get::<_, Option<Timestamp>>(0)
        .ok_or_else(|| anyhow::anyhow!("task {id} never entered {state}"))
}

/// `(started_at, finished_at)` of a task.
async fn ran(cluster: &Cluster, id: Uuid) -> anyhow::Result<(Timestamp, Timestamp)> {
    let row = cluster
        .db
        .query_one(
            "SELECT started_at, finished_at FROM tasks WHERE id = $1",
            &[&id],
        )
        .await?;
    let started: Option<Timestamp> = row.get(0);
    let finished: Option<Timestamp> = row.get(1);
    match (started, finished) {
        (Some(started), Some(finished)) => Ok((started, finished)),
        _ => anyhow::bail!("task {id} did not run: {started:?} {finished:?}"),
    }
}

async fn error_of(cluster: &Cluster, id: Uuid) -> anyhow::Result<String> {
    let row = cluster
        .db
        .query_one("SELECT error FROM tasks WHERE id = $1", &[&id])
        .await?;
    Ok(row.get::<_, Option<String>>(0).unwrap_or_default())
}

#[tokio::test]
async fn a_diamond_runs_its_join_only_after_both_branches() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let body = json!({"workflow": "diamond", "tasks": [
        {"name": "d", "kind": "noop", "depends_on": ["b", "c"]},
        {"name": "b", "kind": "sleep", "spec": {"ms": 600}, "depends_on": ["a"]},
        {"name": "c", "kind": "sleep", "spec": {"ms": 100}, "depends_on": ["a"]},
        {"name": "a", "kind": "sleep", "spec": {"ms": 200}},
    ]});
    let (workflow, ids) = submit_workflow(&cluster, &body).await?;
    let (state, error) = wait_workflow(&cluster, workflow).await?;
    assert_eq!((state.as_str(), error), ("succeeded", None));
    for name in ["a", "b", "c", "d"] {
        assert_eq!(cluster.wait_final(ids[name]).await?, "succeeded", "{name}");
    }

    // The join waited in `pending` (an event the scheduler ignores) and was
    // queued only once both branches had succeeded.
    let trail = cluster.trail(ids["d"]).await?;
    assert_eq!(trail[0], (None, "pending".to_owned()));
    assert_eq!(trail[1], (Some("pending".to_owned()), "queued".to_owned()));
    let d_queued = entered(&cluster, ids["d"], "queued").await?;
    for branch in ["b", "c"] {
        let done = entered(&cluster, ids[branch], "succeeded").await?;
        assert!(
            d_queued >= done,
            "d queued at {d_queued}, {branch} succeeded at {done}"
        );
        let branch_queued = entered(&cluster, ids[branch], "queued").await?;
        let a_done = entered(&cluster, ids["a"], "succeeded").await?;
        assert!(branch_queued >= a_done, "{branch} before a succeeded");
    }
    let (d_started, _) = ran(&cluster, ids["d"]).await?;
    let (_, b_finished) = ran(&cluster, ids["b"]).await?;
    let (_, c_finished) = ran(&cluster, ids["c"]).await?;
    assert!(d_started >= b_finished.max(c_finished));
    // b and c ran side by side: c (100 ms) ended long before b (600 ms).
    assert!(c_finished < b_finished);
    Ok(())
}

#[tokio::test]
async fn a_failing_step_compensates_completed_steps_in_reverse_order() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let undo = |what: &str| json!({"kind": "exec", "spec": {"command": "sh", "args": ["-c", format!("sleep 0.3; echo undo {what}")]}});
    let body = json!({"workflow": "order", "tasks": [
        {"name": "reserve", "kind": "sleep", "spec": {"ms": 50}, "compensation": undo("reserve")},
        {"name": "charge", "kind": "sleep", "spec": {"ms": 50}, "depends_on": ["reserve"],
         "compensation": undo("charge")},
        {"name": "ship", "kind": "fail", "spec": {"message": "no truck"}, "depends_on": ["charge"]},
        {"name": "notify", "kind": "noop", "depends_on": ["ship"]},
    ]});
    let (workflow, ids) = submit_workflow(&cluster, &body).await?;
    let (state, error) = wait_workflow(&cluster, workflow).await?;
    assert_eq!(state, "failed");
    let error = error.unwrap_or_default();
    assert!(
        error.contains("ship") && error.contains("no truck"),
        "the workflow names its first failure: {error}"
    );
    assert_eq!(cluster.wait_final(ids["ship"]).await?, "failed");
    assert_eq!(cluster.wait_final(ids["notify"]).await?, "cancelled");
    let reason = error_of(&cluster, ids["notify"]).await?;
    assert!(reason.contains(&ids["ship"].to_string()), "{reason}");

    // One compensation per completed step, none for the failed one, run one
    // after the other: the last completed step is undone first.
    let rows = cluster
        .db
        .query(
            "SELECT id, compensates, state::text, name FROM tasks \
             WHERE workflow_id = $1 AND compensates IS NOT NULL",
            &[&workflow],
        )
        .await?;
    assert_eq!(rows.len(), 2);
    let undoing = |step: &str| {
        rows.iter()
            .find(|r| r.get::<_, Option<Uuid>>(1) == Some(ids[step]))
            .map(|r| r.get::<_, Uuid>(0))
            .ok_or_else(|| anyhow::anyhow!("no compensation of {step}"))
    };
    let (undo_charge, undo_reserve) = (undoing("charge")?, undoing("reserve")?);
    for row in &rows {
        assert_eq!(row.get::<_, String>(2), "succeeded");
    }
    let (charge_undo_start, charge_undo_end) = ran(&cluster, undo_charge).await?;
    let (reserve_undo_start, _) = ran(&cluster, undo_reserve).await?;
    assert!(
        charge_undo_end <= reserve_undo_start,
        "charge undone ({charge_undo_start} .. {charge_undo_end}) before reserve ({reserve_undo_start})"
    );
    let (_, ship_finished) = ran(&cluster, ids["ship"]).await?;
    assert!(charge_undo_start >= ship_finished);
    let result = cluster.task_json(undo_charge).await?;
    assert_eq!(result["result"]["stdout"], "undo charge\n");
    assert_eq!(result["name"], "compensate-charge");
    Ok(())
}

#[tokio::test]
async fn a_bad_workflow_is_refused_whole_and_nothing_runs() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let cycle = json!({"workflow": "loop", "tasks": [
        {"name": "fetch", "kind": "noop"},
        {"name": "parse", "kind": "noop", "depends_on": ["fetch", "store"]},
        {"name": "index", "kind": "noop", "depends_on": ["parse"]},
        {"name": "store", "kind": "noop", "depends_on": ["index"]},
    ]});
    let SubmitReply::Refused { error } = cluster.submit(&cycle).await? else {
        anyhow::bail!("a cycle was accepted");
    };
    assert_eq!(error.field, "tasks[1].depends_on");
    assert!(
        error.message.contains("parse -> store -> index -> parse"),
        "{}",
        error.message
    );

    let unknown = json!({"workflow": "typo", "tasks": [
        {"name": "fetch", "kind": "noop"},
        {"name": "parse", "kind": "noop", "depends_on": ["fecth"]},
    ]});
    let SubmitReply::Refused { error } = cluster.submit(&unknown).await? else {
        anyhow::bail!("an unknown dependency was accepted");
    };
    assert_eq!(error.field, "tasks[1].depends_on[0]");
    assert!(error.message.contains("`fecth`"), "{}", error.message);

    let ghost = Uuid::now_v7();
    let missing = json!({"workflow": "ghost", "tasks": [
        {"name": "only", "kind": "noop", "depends_on": [ghost.to_string()]},
    ]});
    let SubmitReply::Refused { error } = cluster.submit(&missing).await? else {
        anyhow::bail!("a dependency on no task was accepted");
    };
    assert_eq!(error.field, "tasks[0].depends_on[0]");
    assert_eq!(error.message, format!("no task has the id {ghost}"));

    // Through the stream too: recorded the same way, with nobody to reply to.
    cluster
        .publish(
            serde_json::to_vec(&json!({"workflow": "self", "tasks": [
                {"name": "me", "kind": "noop", "depends_on": ["me"]}
            ]}))?,
            None,
        )
        .await?;

    for (name, says) in [
        ("loop", "dependency cycle"),
        ("typo", "fecth"),
        ("ghost", "no task has the id"),
        ("self", "cannot depend on itself"),
    ] {
        // The orchestrator records the workflow, then its tasks, in two
        // statements: wait for both.
        let (state, error): (String, Option<String>) =
            wait_until(&format!("workflow {name} recorded"), WAIT, || async {
                let row = cluster
                    .db
                    .query_opt(
                        "SELECT state, error FROM workflows w WHERE name = $1 \
                         AND EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = w.id)",
                        &[&name],
                    )
                    .await?;
                Ok(row.map(|r| (r.get(0), r.get(1))))
            })
            .await?;
        assert_eq!(state, "rejected", "{name}");
        let error = error.unwrap_or_default();
        assert!(error.contains(says), "{name}: {error}");
        let tasks = cluster
            .db
            .query(
                "SELECT t.state::text, t.error FROM tasks t JOIN workflows w ON w.id = t.workflow_id \
                 WHERE w.name = $1",
                &[&name],
            )
            .await?;
        assert!(!tasks.is_empty(), "{name}: its tasks are recorded");
        for task in &tasks {
            assert_eq!(task.get::<_, String>(0), "rejected", "{name}");
            assert!(task.get::<_, Option<String>>(1).is_some(), "{name}");
        }
    }
    let runnable: i64 = cluster
        .db
        .query_one("SELECT count(*) FROM tasks WHERE state <> 'rejected'", &[])
        .await?
        .get(0);
    assert_eq!(runnable, 0, "nothing of a refused workflow may run");
    Ok(())
}

#[tokio::test]
async fn a_failing_dependency_cancels_its_dependents_with_the_reason() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let batch = json!([
        {"name": "extract", "kind": "fail", "spec": {"message": "disk full"}},
        {"name": "transform", "kind": "noop", "depends_on": ["extract"]},
        {"name": "load", "kind": "noop", "depends_on": ["transform"]},
        {"name": "audit", "kind": "noop"},
    ]);
    let ids = names(&batch, &cluster.submit_ok(&batch).await?);
    assert_eq!(cluster.wait_final(ids["extract"]).await?, "failed");
    assert_eq!(cluster.wait_final(ids["transform"]).await?, "cancelled");
    assert_eq!(cluster.wait_final(ids["load"]).await?, "cancelled");
    assert_eq!(cluster.wait_final(ids["audit"]).await?, "succeeded");
    let extract = format!("extract ({})", ids["extract"]);
    assert_eq!(
        error_of(&cluster, ids["transform"]).await?,
        format!("dependency {extract} failed: disk full")
    );
    let load = error_of(&cluster, ids["load"]).await?;
    assert!(
        load.contains(&format!("transform ({})", ids["transform"]))
            && load.contains(&format!("{extract} failed: disk full")),
        "{load}"
    );
    let trail = cluster.trail(ids["load"]).await?;
    assert_eq!(
        trail,
        [
            (None, "pending".to_owned()),
            (Some("pending".to_owned()), "cancelled".to_owned())
        ]
    );

    // A dependency on a task that already failed can never be met: refused.
    let late = json!({"kind": "noop", "depends_on": [ids["extract"].to_string()]});
    let SubmitReply::Refused { error } = cluster.submit(&late).await? else {
        anyhow::bail!("a dependency on a failed task was accepted");
    };
    assert_eq!(error.field, "depends_on[0]");
    assert!(
        error.message.contains("already ended failed"),
        "{}",
        error.message
    );

    // One on a task still running waits for it; one on a task that
    // succeeded is met at once.
    let slow = cluster
        .submit_ok(&json!({"kind": "sleep", "spec": {"ms": 800}}))
        .await?[0];
    let waiting = cluster
        .submit_ok(&json!({"kind": "noop", "depends_on": [slow.to_string()]}))
        .await?[0];
    assert_eq!(cluster.state(waiting).await?.as_deref(), Some("pending"));
    assert_eq!(cluster.wait_final(waiting).await?, "succeeded");
    let (_, slow_finished) = ran(&cluster, slow).await?;
    let (waiting_started, _) = ran(&cluster, waiting).await?;
    assert!(waiting_started >= slow_finished);
    let met = cluster
        .submit_ok(&json!({"kind": "noop", "depends_on": [ids["audit"].to_string()]}))
        .await?[0];
    assert_eq!(cluster.trail(met).await?[0], (None, "queued".to_owned()));
    assert_eq!(cluster.wait_final(met).await?, "succeeded");
    Ok(())
}

/// The schedule of a durable timer, as the TIMERS stream holds it.
async fn timer(cluster: &Cluster, kind: &str, task: Uuid) -> anyhow::Result<Value> {
    let js = async_nats::jetstream::new(cluster.nats.clone());
    let stream = js
        .get_stream("TASKYARD_TIMERS")
        .await
        .map_err(|err| anyhow::anyhow!("no timer stream: {err}"))?;
    let subject = taskyard_wire::subjects::timer_schedule(kind, &task);
    let message = stream
        .get_last_raw_message_by_subject(&subject)
        .await
        .map_err(|err| anyhow::anyhow!("no {kind} timer for {task}: {err}"))?;
    assert!(
        message.headers.get("Nats-Schedule").is_some(),
        "a timer is a scheduled message"
    );
    Ok(serde_json::from_slice(&message.payload)?)
}

#[tokio::test]
async fn creation_and_release_set_durable_timers() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let hour = 3_600_000;
    let delayed = cluster
        .submit_ok(&json!({"kind": "noop", "delay_ms": hour}))
        .await?[0];
    assert_eq!(cluster.state(delayed).await?.as_deref(), Some("pending"));
    let start = timer(&cluster, "start", delayed).await?;
    assert_eq!(start["kind"], "start");
    assert_eq!(start["attempt"], 0);

    let deadlined = cluster
        .submit_ok(&json!({"kind": "noop", "schedule_timeout_ms": hour}))
        .await?[0];
    assert_eq!(
        timer(&cluster, "placement", deadlined).await?["kind"],
        "placement"
    );

    // A task released by its dependency gets its placement deadline then.
    let slow = cluster
        .submit_ok(&json!({"kind": "sleep", "spec": {"ms": 300}}))
        .await?[0];
    let waiting = cluster
        .submit_ok(&json!({"kind": "noop", "schedule_timeout_ms": hour,
                           "depends_on": [slow.to_string()]}))
        .await?[0];
    assert!(
        timer(&cluster, "placement", waiting).await.is_err(),
        "not while pending"
    );
    assert_eq!(cluster.wait_final(waiting).await?, "succeeded");
    assert_eq!(
        timer(&cluster, "placement", waiting).await?["kind"],
        "placement"
    );
    Ok(())
}

#[tokio::test]
async fn a_delayed_dependent_waits_for_its_time_and_its_dependency() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    // `late` may start 2 s after submission, and only after `first`: the
    // dependency is met long before the time, so its start timer (the pool
    // manager's) releases it; `slow_dep` is met after its time, so the
    // orchestrator does, on the dependency's event.
    let batch = json!([
        {"name": "first", "kind": "noop"},
        {"name": "late", "kind": "noop", "delay_ms": 2000, "depends_on": ["first"]},
        {"name": "slow", "kind": "sleep", "spec": {"ms": 3000}},
        {"name": "slow_dep", "kind": "noop", "delay_ms": 1000, "depends_on": ["slow"]},
    ]);
    let ids = names(&batch, &cluster.submit_ok(&batch).await?);
    for name in ["late", "slow_dep"] {
        assert_eq!(cluster.wait_final(ids[name]).await?, "succeeded", "{name}");
    }
    let created = entered(&cluster, ids["late"], "pending").await?;
    let late_queued = entered(&cluster, ids["late"], "queued").await?;
    assert!(late_queued - created >= time::Duration::milliseconds(1900));
    let reasons = cluster
        .db
        .query(
            "SELECT task_id, reason FROM task_events WHERE to_state = 'queued' AND task_id = ANY($1)",
            &[&vec![ids["late"], ids["slow_dep"]]],
        )
        .await?;
    let reason = |id: Uuid| {
        reasons
            .iter()
            .find(|r| r.get::<_, Uuid>(0) == id)
            .and_then(|r| r.get::<_, Option<String>>(1))
            .unwrap_or_default()
    };
    assert!(
        reason(ids["late"]).contains("start time"),
        "{}",
        reason(ids["late"])
    );
    assert_eq!(reason(ids["slow_dep"]), "its dependency succeeded");
    let (_, slow_finished) = ran(&cluster, ids["slow"]).await?;
    assert!(entered(&cluster, ids["slow_dep"], "queued").await? >= slow_finished);
    Ok(())
}

#[tokio::test]
async fn cancelling_a_running_step_compensates_its_workflow() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let body = json!({"workflow": "deploy", "tasks": [
        {"name": "prepare", "kind": "noop", "compensation": {"kind": "echo", "spec": "cleanup"}},
        {"name": "roll-out", "kind": "sleep", "spec": {"ms": 60000}, "depends_on": ["prepare"]},
        {"name": "verify", "kind": "noop", "depends_on": ["roll-out"]},
    ]});
    let (workflow, ids) = submit_workflow(&cluster, &body).await?;
    cluster.wait_state(ids["roll-out"], "running").await?;
    cluster
        .cancel(ids["roll-out"], "operator: bad build")
        .await?;

    let (state, error) = wait_workflow(&cluster, workflow).await?;
    assert_eq!(state, "failed");
    let error = error.unwrap_or_default();
    assert!(
        error.contains("roll-out") && error.contains("was cancelled"),
        "{error}"
    );
    assert_eq!(cluster.wait_final(ids["verify"]).await?, "cancelled");
    let undo = cluster
        .db
        .query_one(
            "SELECT state::text, name FROM tasks WHERE compensates = $1",
            &[&ids["prepare"]],
        )
        .await?;
    assert_eq!(undo.get::<_, String>(0), "succeeded");
    assert_eq!(
        undo.get::<_, Option<String>>(1).as_deref(),
        Some("compensate-prepare")
    );
    Ok(())
}

#[tokio::test]
async fn a_restarted_orchestrator_releases_what_it_missed() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let body = json!({"workflow": "catch-up", "tasks": [
        {"name": "a", "kind": "sleep", "spec": {"ms": 1500}},
        {"name": "b", "kind": "noop", "depends_on": ["a"]},
    ]});
    let (workflow, ids) = submit_workflow(&cluster, &body).await?;
    cluster.wait_state(ids["a"], "running").await?;
    let orchestrator = cluster
        .stack
        .service("orchestrator")
        .ok_or_else(|| anyhow::anyhow!("no orchestrator"))?;
    orchestrator.signal(taskyard_testkit::Signal::SIGKILL)?;
    orchestrator
        .wait_exit(std::time::Duration::from_secs(10))
        .await;
    // Its consumer goes too: `a`'s event is never delivered to it (as for
    // events published before the consumer first existed).
    let js = async_nats::jetstream::new(cluster.nats.clone());
    js.get_stream("TASKYARD_EVENTS")
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?
        .delete_consumer("orchestrator-events")
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    assert_eq!(cluster.wait_final(ids["a"]).await?, "succeeded");
    assert_eq!(cluster.state(ids["b"]).await?.as_deref(), Some("pending"));

    cluster
        .stack
        .spawn("taskyard-orchestrator", "orchestrator-2", &[])
        .await?;
    assert_eq!(cluster.wait_final(ids["b"]).await?, "succeeded");
    let (state, _) = wait_workflow(&cluster, workflow).await?;
    assert_eq!(state, "succeeded");
    Ok(())
}
