//! Every JetStream stream and durable consumer Taskyard uses, declared from
//! code so that any service can start first. `nats/README.md` lists them for
//! people; keep the two in step.
//!
//! Streams are created or updated idempotently at service start. Consumers are
//! created or updated by the one service that reads them.

use async_nats::jetstream::{self, consumer, stream};
use std::time::Duration;
use taskyard_wire::{TaskState, subjects};

/// Submissions from clients. Work queue: a submission is gone once the
/// orchestrator has recorded it.
pub const SUBMIT: &str = "TASKYARD_SUBMIT";
/// Task and node events. Limits retention (kept for [`EVENTS_MAX_AGE`]) so
/// that several services read every event.
pub const EVENTS: &str = "TASKYARD_EVENTS";
/// Dispatches, one subject per node. Work queue.
pub const DISPATCH: &str = "TASKYARD_DISPATCH";
/// Worker reports (started, finished). Work queue.
pub const STATUS: &str = "TASKYARD_STATUS";

/// Output lines of `exec` attempts. Limits retention (kept for
/// [`LOGS_MAX_AGE`]): the pool manager stores them in Postgres, and anyone
/// may read the stream while they are fresh.
pub const LOGS: &str = "TASKYARD_LOGS";

/// Durable timers: scheduled messages, and what they deliver when they fire.
/// Work queue, with message schedules allowed.
pub const TIMERS: &str = "TASKYARD_TIMERS";
/// Advisories of messages that reached their consumer's max deliveries, kept
/// so that a pool manager that was down still records the dead letters.
pub const ADVISORIES: &str = "TASKYARD_ADVISORIES";
/// The advisory subjects [`ADVISORIES`] keeps.
pub const MAX_DELIVERIES_ADVISORIES: &str = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>";

/// How long a republished message with the same `Nats-Msg-Id` is dropped.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long events are kept.
pub const EVENTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// How long output lines are kept in [`LOGS`] (Postgres keeps them after).
pub const LOGS_MAX_AGE: Duration = Duration::from_secs(3600);

/// Durable consumer of the orchestrator on [`SUBMIT`].
pub const ORCHESTRATOR: &str = "orchestrator";
/// Durable consumer of the orchestrator on [`EVENTS`] (finished tasks, whose
/// dependents it releases or cancels).
pub const ORCHESTRATOR_EVENTS: &str = "orchestrator-events";
/// Durable consumer of the scheduler on [`EVENTS`].
pub const SCHEDULER: &str = "scheduler";
/// Durable consumer of the pool-manager on [`STATUS`].
pub const POOL_MANAGER: &str = "pool-manager";
/// Durable consumer of the pool-manager on [`TIMERS`] (fired timers).
pub const POOL_MANAGER_TIMERS: &str = "pool-manager-timers";
/// Durable consumer of the pool-manager on [`EVENTS`] (lost nodes).
pub const POOL_MANAGER_NODES: &str = "pool-manager-nodes";
/// Durable consumer of the pool-manager on [`LOGS`] (stores output lines).
pub const POOL_MANAGER_LOGS: &str = "pool-manager-logs";
/// Durable consumer of the pool-manager on [`ADVISORIES`].
pub const POOL_MANAGER_DEAD_LETTERS: &str = "pool-manager-dead-letters";

/// The name of one node's dispatch consumer.
pub fn worker_consumer(node_id: &str) -> String {
    format!("worker-{node_id}")
}

/// Why the streams or a consumer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StreamSetupError {
    #[error("cannot create or update stream {stream}: {source}")]
    Stream {
        stream: &'static str,
        #[source]
        source: jetstream::context::CreateStreamError,
    },
    #[error("cannot find stream {stream}: {source}")]
    Missing {
        stream: &'static str,
        #[source]
        source: jetstream::context::GetStreamError,
    },
    #[error("cannot create or update consumer {consumer} on {stream}: {source}")]
    Consumer {
        stream: &'static str,
        consumer: String,
        #[source]
        source: jetstream::stream::ConsumerError,
    },
}

/// The stream definitions.
pub fn stream_configs(replicas: usize) -> Vec<stream::Config> {
    let replicas = replicas.max(1);
    vec![
        stream::Config {
            name: SUBMIT.to_owned(),
            description: Some("Task submissions from clients".to_owned()),
            subjects: vec![
                subjects::SUBMIT.to_owned(),
                subjects::SUBMIT_WILDCARD.to_owned(),
            ],
            retention: stream::RetentionPolicy::WorkQueue,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: replicas,
            ..Default::default()
        },
        stream::Config {
            name: EVENTS.to_owned(),
            description: Some("Task and node events".to_owned()),
            subjects: vec![format!("{}.>", subjects::EVENTS_PREFIX)],
            retention: stream::RetentionPolicy::Limits,
            max_age: EVENTS_MAX_AGE,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: replicas,
            ..Default::default()
        },
        stream::Config {
            name: DISPATCH.to_owned(),
            description: Some("Attempts sent to nodes, one subject per node".to_owned()),
            subjects: vec![subjects::DISPATCH_ALL.to_owned()],
            retention: stream::RetentionPolicy::WorkQueue,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: replicas,
            ..Default::default()
        },
        stream::Config {
            name: STATUS.to_owned(),
            description: Some("Workers' reports on their attempts".to_owned()),
            subjects: vec![subjects::STATUS_ALL.to_owned()],
            retention: stream::RetentionPolicy::WorkQueue,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: replicas,
            ..Default::default()
        },
        stream::Config {
            name: LOGS.to_owned(),
            description: Some("Output lines of exec attempts".to_owned()),
            subjects: vec![subjects::LOGS_ALL.to_owned()],
            retention: stream::RetentionPolicy::Limits,
            max_age: LOGS_MAX_AGE,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: replicas,
            ..Default::default()
        },
        stream::Config {
            name: TIMERS.to_owned(),
            description: Some("Durable timers: deadlines, backoffs, delayed starts".to_owned()),
            subjects: vec![subjects::TIMERS_ALL.to_owned()],
            retention: stream::RetentionPolicy::WorkQueue,
            allow_message_schedules: true,
            num_replicas: replicas,
            ..Default::default()
        },
        stream::Config {
            name: ADVISORIES.to_owned(),
            description: Some("Messages that reached their max deliveries".to_owned()),
            subjects: vec![MAX_DELIVERIES_ADVISORIES.to_owned()],
            retention: stream::RetentionPolicy::WorkQueue,
            max_age: EVENTS_MAX_AGE * 7,
            num_replicas: replicas,
            ..Default::default()
        },
    ]
}

/// Creates or updates every stream.
pub async fn ensure_streams(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<(), StreamSetupError> {
    // When several services create the same stream on a fresh cluster at
    // once, the server answers only some of them; the others would wait
    // out the context's whole request timeout before trying again.
    let mut js = js.clone();
    js.set_timeout(DECLARE_TIMEOUT);
    for config in stream_configs(replicas) {
        let stream = stream_name(&config.name);
        retrying(&format!("declaring stream {stream}"), || {
            js.create_or_update_stream(config.clone())
        })
        .await
        .map_err(|source| StreamSetupError::Stream { stream, source })?;
    }
    Ok(())
}

/// How long a starting service keeps trying one JetStream declaration.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one try of a stream declaration waits for its answer.
pub const DECLARE_TIMEOUT: Duration = Duration::from_secs(3);

/// Tries `declare` until it succeeds or [`SETUP_TIMEOUT`] has passed, with
/// backoff. A JetStream that is electing a leader (a cluster after a
/// failover), or one slow to answer on a loaded host, refuses or times out
/// a request it will take a moment later; several services declaring the
/// same stream at once can also race (both find it missing, one creation
/// loses). None of that should end a service's start, and a retry of an
/// idempotent declaration settles each.
async fn retrying<T, E, F, Fut>(what: &str, mut declare: F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    let mut warned = false;
    loop {
        match declare().await {
            Ok(value) => return Ok(value),
            Err(err) if started.elapsed() + delay < SETUP_TIMEOUT => {
                if !warned {
                    tracing::warn!(error = %err, "{what} failed; retrying");
                    warned = true;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(err) => return Err(err),
        }
    }
}

fn stream_name(name: &str) -> &'static str {
    [SUBMIT, EVENTS, DISPATCH, STATUS, LOGS, TIMERS, ADVISORIES]
        .into_iter()
        .find(|known| *known == name)
        .unwrap_or("unknown")
}

/// The orchestrator's consumer: every submission.
pub fn orchestrator_consumer() -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(ORCHESTRATOR.to_owned()),
        description: Some("Orchestrator: records submissions".to_owned()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_deliver: 10,
        max_ack_pending: 20_000,
        ..Default::default()
    }
}

/// The orchestrator's event consumer: tasks that ended, so that their
/// dependents are released (`succeeded`) or cancelled (the others), and
/// their workflows moved along.
///
/// New events only: the durable remembers its place across restarts, so
/// only events published before it was first created are never delivered,
/// and the orchestrator reconciles those from Postgres at start (pending
/// tasks whose dependencies have ended, workflows not yet over). Deliveries
/// are unlimited: a batch fails only while Postgres or NATS does, and is
/// handed back with a delay until they are back.
pub fn orchestrator_events_consumer() -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(ORCHESTRATOR_EVENTS.to_owned()),
        description: Some("Orchestrator: finished tasks, for their dependents".to_owned()),
        filter_subjects: [
            TaskState::Succeeded,
            TaskState::Failed,
            TaskState::TimedOut,
            TaskState::Cancelled,
            TaskState::Rejected,
        ]
        .iter()
        .map(|s| subjects::task_event(*s))
        .collect(),
        deliver_policy: consumer::DeliverPolicy::New,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 20_000,
        ..Default::default()
    }
}

/// The task states whose events end a placement or a wait in a queue.
pub const FINISHED_STATES: [TaskState; 6] = [
    TaskState::Succeeded,
    TaskState::Failed,
    TaskState::TimedOut,
    TaskState::Cancelled,
    TaskState::Rejected,
    TaskState::Retrying,
];

/// The scheduler's consumer: queued tasks, finished tasks, node changes.
pub fn scheduler_consumer() -> consumer::pull::Config {
    let mut filters = vec![subjects::task_event(TaskState::Queued)];
    filters.extend(FINISHED_STATES.iter().map(|s| subjects::task_event(*s)));
    filters.push(subjects::NODE_EVENTS_ALL.to_owned());
    filters.push(subjects::POOL_EVENTS_ALL.to_owned());
    consumer::pull::Config {
        durable_name: Some(SCHEDULER.to_owned()),
        description: Some("Scheduler: queued and finished tasks, node and pool changes".to_owned()),
        filter_subjects: filters,
        deliver_policy: consumer::DeliverPolicy::All,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 20_000,
        ..Default::default()
    }
}

/// The pool-manager's consumer: every worker report. A report redelivered
/// `max_deliver` times is given up and kept as a dead letter.
pub fn pool_manager_consumer(max_deliver: i64) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(POOL_MANAGER.to_owned()),
        description: Some("Pool manager: workers' reports".to_owned()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_deliver,
        max_ack_pending: 20_000,
        ..Default::default()
    }
}

/// The pool-manager's timer consumer: fired timers only. It must not match
/// the schedule subjects: on a work queue it would ack the schedules away.
/// Deliveries are unlimited, as a timer that fires early is handed back
/// until it is due.
pub fn pool_manager_timers_consumer() -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(POOL_MANAGER_TIMERS.to_owned()),
        description: Some("Pool manager: fired timers".to_owned()),
        filter_subject: subjects::TIMERS_FIRED.to_owned(),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 20_000,
        ..Default::default()
    }
}

/// The pool-manager's node consumer: lost and removed nodes, whose attempts
/// it ends. New events only: a lost node of last week needs nothing now,
/// and the reconciler covers events missed while no consumer existed.
pub fn pool_manager_nodes_consumer() -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(POOL_MANAGER_NODES.to_owned()),
        description: Some("Pool manager: lost nodes".to_owned()),
        filter_subjects: vec![
            subjects::node_event("lost"),
            subjects::node_event("removed"),
        ],
        deliver_policy: consumer::DeliverPolicy::New,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        ..Default::default()
    }
}

/// The pool-manager's log consumer: every output line, stored in Postgres.
/// Deliveries are unlimited: a batch fails only while Postgres does, and is
/// handed back with a delay until it is back (the stream's max age bounds
/// how long). Storing is idempotent on `(task, attempt, seq)`.
pub fn pool_manager_logs_consumer() -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(POOL_MANAGER_LOGS.to_owned()),
        description: Some("Pool manager: output lines of exec attempts".to_owned()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 20_000,
        ..Default::default()
    }
}

/// The pool-manager's dead-letter consumer: max-deliveries advisories.
pub fn pool_manager_dead_letters_consumer() -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(POOL_MANAGER_DEAD_LETTERS.to_owned()),
        description: Some("Pool manager: messages that reached max deliveries".to_owned()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        ..Default::default()
    }
}

/// One node's consumer on its dispatch subject. `max_ack_pending` bounds how
/// many attempts the node holds at once; `ack_wait` is kept alive by progress
/// acks while a task runs, so a worker that dies hands its attempts back.
pub fn worker_consumer_config(
    node_id: &str,
    max_in_flight: usize,
    ack_wait: Duration,
) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(worker_consumer(node_id)),
        description: Some(format!("Worker on node {node_id}")),
        filter_subject: subjects::dispatch(node_id),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait,
        max_ack_pending: i64::try_from(max_in_flight.max(1)).unwrap_or(i64::MAX),
        // A node that is gone for a day takes its consumer with it.
        inactive_threshold: Duration::from_secs(24 * 3600),
        ..Default::default()
    }
}

/// Creates or updates a durable pull consumer on `stream`.
pub async fn pull_consumer(
    js: &jetstream::Context,
    stream: &'static str,
    config: consumer::pull::Config,
) -> Result<consumer::PullConsumer, StreamSetupError> {
    let name = config.durable_name.clone().unwrap_or_default();
    let handle = retrying(&format!("finding stream {stream}"), || {
        js.get_stream(stream)
    })
    .await
    .map_err(|source| StreamSetupError::Missing { stream, source })?;
    retrying(&format!("declaring consumer {name} on {stream}"), || {
        handle.create_consumer(config.clone())
    })
    .await
    .map_err(|source| StreamSetupError::Consumer {
        stream,
        consumer: name.clone(),
        source,
    })
}
