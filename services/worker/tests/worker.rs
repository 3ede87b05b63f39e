//! The worker against a real nats-server, run in-process: what the scheduler
//! sends it and what the pool manager and resource manager get back.

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use taskyard_runtime::access::Kind;
use taskyard_runtime::{Common, Shutdown, streams};
use taskyard_testkit::{TestStack, wait_until};
use taskyard_wire::control::Control;
use taskyard_wire::dispatch::Dispatch;
use taskyard_wire::heartbeat::{Capacity, Heartbeat};
use taskyard_wire::status::{Outcome, StatusMessage, StatusReport};
use taskyard_wire::task::TaskKind;
use taskyard_wire::{Resources, codec, subjects};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Bound on every wait for something the worker should do promptly.
const WAIT: Duration = Duration::from_secs(15);

/// A worker running in this process, against `stack`.
struct Node {
    shutdown: Shutdown,
    run: JoinHandle<anyhow::Result<()>>,
}

impl Node {
    fn start(
        stack: &TestStack,
        id: &str,
        work_dir: &Path,
        tweak: impl FnOnce(&mut taskyard_worker::Config),
    ) -> Node {
        // Each node connects with its own credential, as in production;
        // its `nats` tasks may call the test's `test.>` services.
        let kind = Kind::parse("worker", Some(id), &["test.>".to_owned()]).expect("a node id");
        let nkey = stack
            .credential(&taskyard_runtime::access::worker_identity(id), kind)
            .expect("the node's credential");
        let mut config = taskyard_worker::Config {
            common: Common {
                nats_url: stack.nats_url.clone(),
                nats_nkey_file: Some(nkey),
                ..Common::default()
            },
            node_id: Some(id.to_owned()),
            cpu_millis: Some(1_500),
            memory_mb: Some(512),
            slots: 4,
            heartbeat_interval_ms: 200,
            work_dir: Some(work_dir.to_owned()),
            ..taskyard_worker::Config::default()
        };
        tweak(&mut config);
        let shutdown = Shutdown::new();
        let run = tokio::spawn(taskyard_worker::run(config, shutdown.clone()));
        Node { shutdown, run }
    }

    /// Triggers shutdown and checks `run` returns Ok within `within`.
    async fn stop(self, within: Duration) {
        self.shutdown.trigger();
        match tokio::time::timeout(within, self.run).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => panic!("the worker failed: {err:#}"),
            Ok(Err(err)) => panic!("the worker task failed: {err}"),
            Err(_) => panic!("the worker did not stop within {within:?} of shutdown"),
        }
    }
}

fn dispatch(kind: TaskKind, spec: Value, attempt: u32) -> Dispatch {
    Dispatch {
        task_id: Uuid::now_v7(),
        attempt,
        pool: "default".to_owned(),
        tenant: "default".to_owned(),
        kind,
        spec,
        resources: Resources::default(),
        timeout_ms: None,
        dispatched_at: taskyard_wire::now(),
    }
}

/// Sends a dispatch the way the scheduler does.
async fn send(js: &jetstream::Context, node: &str, dispatch: &Dispatch) {
    js.publish_with_headers(
        node_subject(node),
        msg_id(&dispatch.msg_id()),
        codec::encode(dispatch).into(),
    )
    .await
    .expect("publish the dispatch")
    .await
    .expect("the dispatch is stored");
}

fn node_subject(node: &str) -> String {
    subjects::dispatch(node)
}

fn msg_id(id: &str) -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    headers
}

/// Reads the node's reports off the STATUS stream, as the pool manager would.
struct Reports {
    messages: consumer::pull::Stream,
    seen: Vec<StatusReport>,
}

impl Reports {
    async fn open(js: &jetstream::Context, node: &str) -> Reports {
        let stream = js.get_stream(streams::STATUS).await.expect("STATUS stream");
        let consumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(format!("test-{node}")),
                filter_subject: subjects::status(node),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            })
            .await
            .expect("a consumer on STATUS");
        Reports {
            messages: consumer.messages().await.expect("pull from STATUS"),
            seen: Vec::new(),
        }
    }

    /// The first report (seen before or arriving within [`WAIT`]) that `pick` accepts.
    async fn find(&mut self, what: &str, pick: impl Fn(&StatusReport) -> bool) -> StatusReport {
        if let Some(found) = self.seen.iter().find(|r| pick(r)) {
            return found.clone();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.messages.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no {what} within {WAIT:?}; reports so far: {:#?}",
                        self.seen
                    )
                });
            let message = next.expect("STATUS stream open").expect("a STATUS message");
            message.ack().await.expect("ack a report");
            let status: StatusMessage = codec::decode(&message.payload).expect("a status message");
            let reports = status.into_reports();
            self.seen.extend(reports.iter().cloned());
            if let Some(found) = reports.into_iter().find(|r| pick(r)) {
                return found;
            }
        }
    }

    async fn started(&mut self, dispatch: &Dispatch) -> StatusReport {
        let (id, attempt) = (dispatch.task_id, dispatch.attempt);
        self.find("Started report", |r| {
            matches!(r, StatusReport::Started { task_id, attempt: a, .. } if *task_id == id && *a == attempt)
        })
        .await
    }

    async fn finished(&mut self, dispatch: &Dispatch) -> StatusReport {
        let (id, attempt) = (dispatch.task_id, dispatch.attempt);
        self.find("Finished report", |r| {
            matches!(r, StatusReport::Finished { task_id, attempt: a, .. } if *task_id == id && *a == attempt)
        })
        .await
    }
}

/// The next heartbeat that `pick` accepts, within [`WAIT`].
async fn heartbeat(
    sub: &mut async_nats::Subscriber,
    what: &str,
    pick: impl Fn(&Heartbeat) -> bool,
) -> Heartbeat {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let message = tokio::time::timeout_at(deadline, sub.next())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
            .expect("heartbeat subscription open");
        let beat: Heartbeat = codec::decode(&message.payload).expect("a heartbeat");
        if pick(&beat) {
            return beat;
        }
    }
}

/// Waits until the node's consumer holds no dispatch: none waiting, none unacked.
async fn wait_all_acked(js: &jetstream::Context, node: &str) {
    let name = streams::worker_consumer(node);
    wait_until("every dispatch acked", WAIT, || {
        let js = js.clone();
        let name = name.clone();
        async move {
            let mut consumer: consumer::PullConsumer = js
                .get_consumer_from_stream(&name, streams::DISPATCH)
                .await?;
            let info = consumer.info().await?;
            Ok((info.num_pending == 0 && info.num_ack_pending == 0).then_some(()))
        }
    })
    .await
    .expect("the worker acks what it finished");
}

async fn setup() -> (
    TestStack,
    async_nats::Client,
    jetstream::Context,
    tempfile::TempDir,
) {
    init_tracing();
    let stack = TestStack::start().await.expect("nats-server and postgres");
    let client = stack.nats_client().await.expect("connect to NATS");
    let js = jetstream::new(client.clone());
    streams::ensure_streams(&js, 1).await.expect("streams");
    let work_dir = tempfile::tempdir().expect("work dir");
    (stack, client, js, work_dir)
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("taskyard_worker=debug")),
        )
        .with_test_writer()
        .try_init();
}

#[tokio::test]
async fn runs_dispatches_reports_them_and_stops_on_shutdown() {
    let (stack, client, js, work_dir) = setup().await;
    let node = "it-node-1";
    let mut heartbeats = client
        .subscribe(subjects::heartbeat(node))
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    let mut reports = Reports::open(&js, node).await;
    let worker = Node::start(&stack, node, work_dir.path(), |_| {});

    // The node announces itself with the capacity it was given.
    let beat = heartbeat(&mut heartbeats, "heartbeat", |_| true).await;
    assert_eq!(beat.node_id, node);
    assert_eq!(
        beat.capacity,
        Capacity {
            cpu_millis: 1_500,
            memory_mb: 512,
            slots: 4
        }
    );
    assert!(!beat.draining);
    assert_eq!(beat.version, env!("CARGO_PKG_VERSION"));
    assert!(
        beat.usage.disk_total_mb > 0,
        "the work dir's filesystem is reported: {:?}",
        beat.usage
    );
    assert!(beat.usage.disk_free_mb <= beat.usage.disk_total_mb);

    // Something unreadable on the node's subject does not block what follows.
    js.publish(node_subject(node), "not a dispatch".into())
        .await
        .expect("publish garbage")
        .await
        .expect("garbage stored");

    let echo = dispatch(TaskKind::Echo, json!({"hello": "world"}), 2);
    send(&js, node, &echo).await;
    let StatusReport::Started { node_id, .. } = reports.started(&echo).await else {
        unreachable!("started() returns Started reports");
    };
    assert_eq!(node_id, node);
    match reports.finished(&echo).await {
        StatusReport::Finished {
            outcome,
            result,
            error,
            node_id,
            started_at,
            finished_at,
            ..
        } => {
            assert_eq!(outcome, Outcome::Succeeded);
            assert_eq!(result, json!({"hello": "world"}));
            assert_eq!(error, None);
            assert_eq!(node_id, node);
            assert!(started_at <= finished_at);
        }
        other => panic!("expected Finished, got {other:?}"),
    }

    let noop = dispatch(TaskKind::Noop, Value::Null, 1);
    send(&js, node, &noop).await;
    assert!(matches!(
        reports.finished(&noop).await,
        StatusReport::Finished {
            outcome: Outcome::Succeeded,
            result: Value::Null,
            ..
        }
    ));

    // A command that leaves a trace, sent twice: the second delivery of a
    // finished attempt is acked without running it again.
    let marks = work_dir.path().join("marks");
    let exec = dispatch(
        TaskKind::Exec,
        json!({"command": "sh", "args": ["-c", format!("echo ran >> {}; echo out", marks.display())]}),
        1,
    );
    send(&js, node, &exec).await;
    match reports.finished(&exec).await {
        StatusReport::Finished {
            outcome, result, ..
        } => {
            assert_eq!(outcome, Outcome::Succeeded, "{result}");
            assert_eq!(result["exit_code"], 0);
            assert_eq!(result["stdout"], "out\n");
        }
        other => panic!("expected Finished, got {other:?}"),
    }
    // A different message id, as when the scheduler re-sends after the
    // stream's duplicate window.
    js.publish_with_headers(
        node_subject(node),
        msg_id("resent"),
        codec::encode(&exec).into(),
    )
    .await
    .expect("publish the duplicate")
    .await
    .expect("duplicate stored");
    wait_all_acked(&js, node).await;
    let marks = std::fs::read_to_string(&marks).expect("the command ran");
    assert_eq!(marks, "ran\n", "the attempt ran exactly once");

    // A failing task reports its error.
    let fail = dispatch(TaskKind::Fail, json!({"message": "no luck"}), 3);
    send(&js, node, &fail).await;
    match reports.finished(&fail).await {
        StatusReport::Finished { outcome, error, .. } => {
            assert_eq!(outcome, Outcome::Failed);
            assert_eq!(error.as_deref(), Some("no luck"));
        }
        other => panic!("expected Finished, got {other:?}"),
    }

    worker.stop(Duration::from_secs(5)).await;
    drop(stack);
}

#[tokio::test]
async fn a_timed_out_attempt_is_reported_as_such() {
    let (stack, _client, js, work_dir) = setup().await;
    let node = "it-node-2";
    let mut reports = Reports::open(&js, node).await;
    let worker = Node::start(&stack, node, work_dir.path(), |_| {});
    let mut slow = dispatch(
        TaskKind::Exec,
        json!({"command": "sleep", "args": ["30"]}),
        1,
    );
    slow.timeout_ms = Some(300);
    send(&js, node, &slow).await;
    match reports.finished(&slow).await {
        StatusReport::Finished {
            outcome,
            error,
            result,
            ..
        } => {
            assert_eq!(outcome, Outcome::TimedOut);
            assert_eq!(error.as_deref(), Some("timed out after 300 ms"));
            assert_eq!(result["signal"], 9);
        }
        other => panic!("expected Finished, got {other:?}"),
    }
    wait_all_acked(&js, node).await;
    worker.stop(Duration::from_secs(5)).await;
    drop(stack);
}

#[tokio::test]
async fn shutdown_drains_then_reports_what_it_had_to_stop() {
    let (stack, client, js, work_dir) = setup().await;
    let node = "it-node-3";
    let mut heartbeats = client
        .subscribe(subjects::heartbeat(node))
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    let mut reports = Reports::open(&js, node).await;
    let worker = Node::start(&stack, node, work_dir.path(), |config| {
        config.drain_timeout_ms = 300;
    });

    let long = dispatch(TaskKind::Sleep, json!({"ms": 60_000}), 4);
    send(&js, node, &long).await;
    reports.started(&long).await;
    heartbeat(
        &mut heartbeats,
        "heartbeat counting the running attempt",
        |b| b.running == 1,
    )
    .await;

    let stopped = tokio::time::Instant::now();
    worker.stop(Duration::from_secs(5)).await;
    assert!(
        stopped.elapsed() >= Duration::from_millis(300),
        "the drain timeout was granted"
    );

    let beat = heartbeat(&mut heartbeats, "draining heartbeat", |b| b.draining).await;
    assert_eq!(beat.node_id, node);
    match reports.finished(&long).await {
        StatusReport::Finished { outcome, error, .. } => {
            assert_eq!(outcome, Outcome::Failed);
            assert_eq!(
                error.as_deref(),
                Some("worker on node it-node-3 stopped before the attempt finished")
            );
        }
        other => panic!("expected Finished, got {other:?}"),
    }
    wait_all_acked(&js, node).await;
    drop(stack);
}

#[tokio::test]
async fn a_drain_control_message_stops_the_worker_like_sigterm() {
    let (stack, client, js, work_dir) = setup().await;
    let node = "it-node-4";
    let mut heartbeats = client
        .subscribe(subjects::heartbeat(node))
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    let mut reports = Reports::open(&js, node).await;
    let worker = Node::start(&stack, node, work_dir.path(), |config| {
        config.drain_timeout_ms = 10_000;
    });
    // The control subscription is made before the first heartbeat goes out
    // on the same connection, so after one the server knows it.
    heartbeat(&mut heartbeats, "first heartbeat", |_| true).await;

    // Something unreadable on the control subject is ignored.
    client
        .publish(subjects::control(node), "{\"action\": \"explode\"}".into())
        .await
        .expect("publish garbage");
    client.flush().await.expect("flush");
    let beat = heartbeat(&mut heartbeats, "heartbeat after garbage", |_| true).await;
    assert!(
        !beat.draining,
        "an unreadable control message drained the node"
    );
    let beat = heartbeat(&mut heartbeats, "another heartbeat", |_| true).await;
    assert!(!beat.draining);

    // A running attempt is let finish, as on SIGTERM.
    let short = dispatch(TaskKind::Sleep, json!({"ms": 500}), 1);
    send(&js, node, &short).await;
    reports.started(&short).await;

    client
        .publish(
            subjects::control(node),
            codec::encode(&Control::Drain).into(),
        )
        .await
        .expect("publish drain");
    client.flush().await.expect("flush");
    heartbeat(&mut heartbeats, "draining heartbeat", |b| b.draining).await;
    match tokio::time::timeout(Duration::from_secs(5), worker.run).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => panic!("the worker failed: {err:#}"),
        Ok(Err(err)) => panic!("the worker task failed: {err}"),
        Err(_) => panic!("the worker did not stop within 5 s of the drain message"),
    }
    assert!(
        !worker.shutdown.is_triggered(),
        "the drain came from NATS, not from the process's shutdown"
    );
    match reports.finished(&short).await {
        StatusReport::Finished { outcome, .. } => assert_eq!(outcome, Outcome::Succeeded),
        other => panic!("expected Finished, got {other:?}"),
    }
    wait_all_acked(&js, node).await;
    drop(stack);
}

#[tokio::test]
async fn http_and_nats_tasks_run_on_the_worker() {
    let (stack, client, js, work_dir) = setup().await;
    let node = "it-node-5";
    let mut reports = Reports::open(&js, node).await;

    // A service on NATS, in "another language": a plain subscriber.
    let mut requests = client.subscribe("test.greeter").await.expect("subscribe");
    client.flush().await.expect("flush");
    let responder = client.clone();
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            if let Some(reply) = request.reply {
                let name = String::from_utf8_lossy(&request.payload).into_owned();
                let answer = json!({"greeting": format!("hello {name}")});
                let _ = responder
                    .publish(reply, codec::encode(&answer).into())
                    .await;
            }
        }
    });
    // And one on HTTP, where nothing listens.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };

    let worker = Node::start(&stack, node, work_dir.path(), |_| {});
    let nats = dispatch(
        TaskKind::Nats,
        json!({"subject": "test.greeter", "payload": "ada", "timeout_ms": 5_000}),
        1,
    );
    send(&js, node, &nats).await;
    match reports.finished(&nats).await {
        StatusReport::Finished {
            outcome, result, ..
        } => {
            assert_eq!(outcome, Outcome::Succeeded, "{result}");
            assert_eq!(result["reply"], json!({"greeting": "hello ada"}));
        }
        other => panic!("expected Finished, got {other:?}"),
    }

    let url = format!("http://127.0.0.1:{closed}/hook");
    let http = dispatch(TaskKind::Http, json!({"url": url}), 1);
    send(&js, node, &http).await;
    match reports.finished(&http).await {
        StatusReport::Finished { outcome, error, .. } => {
            assert_eq!(outcome, Outcome::Failed);
            let error = error.unwrap_or_default();
            assert!(error.contains(&url), "{error}");
        }
        other => panic!("expected Finished, got {other:?}"),
    }
    worker.stop(Duration::from_secs(5)).await;
    drop(stack);
}

/// A TCP proxy in front of nats-server that can stop passing bytes, as a
/// network partition does: connections stay open, nothing is reset, and what
/// is sent meanwhile waits (like TCP retransmits) until the partition heals.
struct Partition {
    url: String,
    open: watch::Sender<bool>,
}

impl Partition {
    async fn start(upstream: &str) -> Partition {
        let upstream = upstream.trim_start_matches("nats://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let url = format!("nats://{}", listener.local_addr().expect("proxy address"));
        let (open, watcher) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pipe(client_read, server_write, watcher.clone()));
                tokio::spawn(pipe(server_read, client_write, watcher.clone()));
            }
        });
        Partition { url, open }
    }

    fn cut(&self) {
        self.open.send_replace(false);
    }

    fn heal(&self) {
        self.open.send_replace(true);
    }
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut open: watch::Receiver<bool>) {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        if open.wait_for(|open| *open).await.is_err() {
            return;
        }
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Read as the partition began: held until it heals.
        if open.wait_for(|open| *open).await.is_err() {
            return;
        }
        if to.write_all(&chunk[..n]).await.is_err() {
            return;
        }
    }
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_partitioned_worker_stops_its_attempt_itself_and_says_why() {
    let (stack, client, js, work_dir) = setup().await;
    let node = "it-node-6";
    let mut heartbeats = client
        .subscribe(subjects::heartbeat(node))
        .await
        .expect("subscribe to heartbeats");
    let partition = Partition::start(&stack.nats_url).await;
    let mut reports = Reports::open(&js, node).await;
    let worker = Node::start(&stack, node, work_dir.path(), |config| {
        config.common.nats_url = partition.url.clone();
        config.fence_after_ms = 2_000;
    });
    let pids = work_dir.path().join("pids");
    let marker = work_dir.path().join("marker");
    // The shell and its child both record their pids: the whole group must go.
    let script = format!(
        "echo $$ > {p}.tmp; sleep 30 & echo $! >> {p}.tmp; mv {p}.tmp {p}; wait; echo done > {m}",
        p = pids.display(),
        m = marker.display()
    );
    let long = dispatch(
        TaskKind::Exec,
        json!({"command": "sh", "args": ["-c", script]}),
        1,
    );
    send(&js, node, &long).await;
    reports.started(&long).await;
    let pids: Vec<i32> = wait_until("the command to write its pids", WAIT, || async {
        Ok(std::fs::read_to_string(&pids)
            .ok()
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect()))
    })
    .await
    .expect("the command started");
    assert_eq!(pids.len(), 2, "{pids:?}");

    // In touch for longer than the threshold (its heartbeats reach the
    // server over a span past 2 s): nothing is fenced.
    let first = heartbeat(&mut heartbeats, "a heartbeat", |_| true).await.at;
    heartbeat(&mut heartbeats, "a heartbeat 2.5 s later", |beat| {
        (beat.at - first).whole_milliseconds() >= 2_500
    })
    .await;
    assert!(
        pids.iter().all(|pid| alive(*pid)),
        "a worker whose heartbeats get through must not fence"
    );

    // Cut off, but not frozen and not disconnected as far as its client
    // knows: no kill from anyone could reach it now.
    partition.cut();
    let cut_at = tokio::time::Instant::now();
    let gone = wait_until(
        "the attempt's processes to be gone while partitioned",
        Duration::from_secs(8),
        || async { Ok(pids.iter().all(|pid| !alive(*pid)).then_some(())) },
    )
    .await;
    let waited = cut_at.elapsed();
    partition.heal();
    gone.expect("the worker fences itself");
    assert!(
        waited >= Duration::from_millis(1_500),
        "fenced after {waited:?}, before the threshold of 2 s was near"
    );

    match reports.finished(&long).await {
        StatusReport::Finished { outcome, error, .. } => {
            assert_eq!(outcome, Outcome::Failed);
            let error = error.unwrap_or_default();
            assert!(
                error.starts_with(&format!(
                    "killed on node {node}: the worker was cut off for "
                )),
                "{error}"
            );
            assert!(
                error.ends_with(
                    "(no heartbeat got through to NATS), longer than the lost threshold of 2 s; \
                     the attempt was stopped, another node may run it"
                ),
                "{error}"
            );
        }
        other => panic!("expected Finished, got {other:?}"),
    }
    assert!(
        !marker.exists(),
        "the fenced attempt must not finish its work"
    );
    wait_all_acked(&js, node).await;
    worker.stop(Duration::from_secs(10)).await;
    drop(stack);
}
