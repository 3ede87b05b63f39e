//! Fixtures for the end-to-end tests in `tests/tests/`: a [`Cluster`] runs
//! the control plane and any number of workers as separate processes (the
//! binaries of this workspace) against the test's own nats-server and
//! Postgres, and offers the client's view: submit, wait, read rows.

use anyhow::Context;
use serde_json::Value;
use std::time::Duration;
use taskyard_client::{Client, ClientError, NodeOp, PoolOp};
use taskyard_testkit::{ServiceHandle, TestStack, wait_until};
use taskyard_wire::Rejection;
use taskyard_wire::control::NodeReply;
use taskyard_wire::pool::PoolReply;
use taskyard_wire::reply::SubmitReply;
use uuid::Uuid;

/// The longest any end-to-end wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// A worker to start: its node id and what it offers.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub node_id: String,
    pub cpu_millis: u32,
    pub memory_mb: u32,
    pub slots: u32,
    /// Node labels, as `TASKYARD_LABELS__<KEY>` settings.
    pub labels: Vec<(String, String)>,
    /// Further `TASKYARD_*` settings of the worker process.
    pub env: Vec<(String, String)>,
}

impl WorkerSpec {
    pub fn new(node_id: &str) -> WorkerSpec {
        WorkerSpec {
            node_id: node_id.to_owned(),
            cpu_millis: 4000,
            memory_mb: 4096,
            slots: 64,
            labels: Vec::new(),
            env: Vec::new(),
        }
    }

    /// The same worker with one more setting (`TASKYARD_LOG_MAX_LINES`, ...).
    pub fn env(mut self, key: &str, value: &str) -> WorkerSpec {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The same worker with a label.
    pub fn label(mut self, key: &str, value: &str) -> WorkerSpec {
        self.labels.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// The control plane and workers of one test.
pub struct Cluster {
    pub stack: TestStack,
    pub nats: async_nats::Client,
    pub db: tokio_postgres::Client,
    /// Where each service serves its Prometheus metrics (`host:port`), by
    /// its log name (`scheduler`, `worker-w1`, ...).
    pub metrics: std::collections::BTreeMap<String, String>,
}

/// Resource-manager thresholds and sampling short enough for tests.
/// Its lease lasts 2 s, as the scheduler's does.
const FAST_HEALTH: [(&str, &str); 4] = [
    ("TASKYARD_SUSPECT_AFTER_MS", "1500"),
    ("TASKYARD_LOST_AFTER_MS", "3000"),
    ("TASKYARD_SAMPLE_INTERVAL_MS", "300"),
    ("TASKYARD_LEASE_TTL_MS", "2000"),
];

/// The pool manager of the tests: a report is given up after three
/// deliveries (not ten), so the dead letter test is quick; the reconciler
/// passes once at start and then every 30 s, so that tests of timers see
/// the timers, not the backstop.
pub const POOL_MANAGER: [(&str, &str); 3] = [
    ("TASKYARD_MAX_DELIVERIES", "3"),
    ("TASKYARD_RECONCILE_INTERVAL_MS", "30000"),
    ("TASKYARD_CENSUS_INTERVAL_MS", "500"),
];

/// The scheduler of the tests: a lease of 2 s, so that a test that kills
/// the active scheduler sees its successor take over within seconds.
pub const SCHEDULER: [(&str, &str); 1] = [("TASKYARD_LEASE_TTL_MS", "2000")];

impl Cluster {
    /// Starts NATS, Postgres, the orchestrator, scheduler, pool manager and
    /// resource manager, then the given workers, and waits until every
    /// worker's node is registered.
    pub async fn start(workers: &[WorkerSpec]) -> anyhow::Result<Cluster> {
        Cluster::start_on(TestStack::start().await?, workers).await
    }

    /// Like [`Cluster::start`], on a Postgres that keeps every commit it
    /// answered across a crash ([`TestStack::start_durable`]).
    pub async fn start_durable(workers: &[WorkerSpec]) -> anyhow::Result<Cluster> {
        Cluster::start_on(TestStack::start_durable().await?, workers).await
    }

    /// Like [`Cluster::start`], on a three-server NATS cluster
    /// ([`TestStack::start_cluster`]): every service and the test's own
    /// client get the three URLs, and every stream has three replicas.
    pub async fn start_on_nats_cluster(workers: &[WorkerSpec]) -> anyhow::Result<Cluster> {
        let stack = TestStack::start_cluster().await?;
        Cluster::start_on(stack, workers).await
    }

    /// Like [`Cluster::start`], with the bus on TLS
    /// ([`TestStack::start_tls`]): every service trusts the stack's CA.
    pub async fn start_tls(workers: &[WorkerSpec]) -> anyhow::Result<Cluster> {
        Cluster::start_on(TestStack::start_tls().await?, workers).await
    }

    async fn start_on(mut stack: TestStack, workers: &[WorkerSpec]) -> anyhow::Result<Cluster> {
        let mut metrics = std::collections::BTreeMap::new();
        let services: [(&str, &[(&str, &str)]); 4] = [
            ("orchestrator", &[]),
            ("scheduler", &SCHEDULER),
            ("pool-manager", &POOL_MANAGER),
            ("resource-manager", &FAST_HEALTH),
        ];
        for (service, extra) in services {
            let addr = free_addr()?;
            let mut env = vec![("TASKYARD_METRICS_ADDR", addr.as_str())];
            env.extend_from_slice(extra);
            stack
                .spawn(&format!("taskyard-{service}"), service, &env)
                .await?;
            metrics.insert(service.to_owned(), addr);
        }
        let nats = stack.nats_client().await?;
        let db = stack.db().await?;
        let mut cluster = Cluster {
            stack,
            nats,
            db,
            metrics,
        };
        for worker in workers {
            cluster.start_worker(worker).await?;
        }
        // Its `$SRV.PING` answers before its endpoint subscribes: a
        // submission in between would find no responders.
        cluster
            .wait_for_endpoint("orchestrator", taskyard_wire::subjects::API_SUBMIT)
            .await?;
        Ok(cluster)
    }

    /// Starts one more replica of a control-plane service (`scheduler`,
    /// `pool-manager`, ...), logging as `name`, with the settings the
    /// harness gives that service plus `extra`.
    pub async fn start_replica(
        &mut self,
        service: &str,
        name: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<ServiceHandle> {
        let addr = free_addr()?;
        let mut env = vec![("TASKYARD_METRICS_ADDR", addr.as_str())];
        let given: &[(&str, &str)] = match service {
            "scheduler" => &SCHEDULER,
            "pool-manager" => &POOL_MANAGER,
            "resource-manager" => &FAST_HEALTH,
            _ => &[],
        };
        env.extend_from_slice(given);
        env.extend_from_slice(extra);
        let handle = self
            .stack
            .spawn(&format!("taskyard-{service}"), name, &env)
            .await?;
        self.metrics.insert(name.to_owned(), addr);
        Ok(handle)
    }

    /// Starts one worker process and waits for its node to be registered.
    pub async fn start_worker(&mut self, spec: &WorkerSpec) -> anyhow::Result<ServiceHandle> {
        let cpu = spec.cpu_millis.to_string();
        let memory = spec.memory_mb.to_string();
        let slots = spec.slots.to_string();
        let labels: Vec<(String, String)> = spec
            .labels
            .iter()
            .map(|(key, value)| {
                (
                    format!("TASKYARD_LABELS__{}", key.to_uppercase()),
                    value.clone(),
                )
            })
            .collect();
        let mut env: Vec<(&str, &str)> = vec![
            ("TASKYARD_NODE_ID", spec.node_id.as_str()),
            ("TASKYARD_CPU_MILLIS", cpu.as_str()),
            ("TASKYARD_MEMORY_MB", memory.as_str()),
            ("TASKYARD_SLOTS", slots.as_str()),
            ("TASKYARD_HEARTBEAT_INTERVAL_MS", "250"),
        ];
        env.extend(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        env.extend(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let metrics_addr = free_addr()?;
        env.push(("TASKYARD_METRICS_ADDR", metrics_addr.as_str()));
        let name = format!("worker-{}", spec.node_id);
        let handle = self.stack.spawn("taskyard-worker", &name, &env).await?;
        self.metrics.insert(name, metrics_addr);
        let node = spec.node_id.clone();
        let exited = wait_until(&format!("node {node} to be alive"), WAIT, || async {
            // A worker that gave up will never register: say so now, with
            // its last words, rather than at the deadline.
            if let Some(status) = handle.try_status() {
                return Ok(Some(Some(status)));
            }
            let row = self
                .db
                .query_opt(
                    "SELECT 1 FROM nodes WHERE id = $1 AND health = 'alive'",
                    &[&node],
                )
                .await?;
            Ok(row.map(|_| None))
        })
        .await?;
        if let Some(status) = exited {
            let log = handle.log();
            let from = log.lines().count().saturating_sub(20);
            let tail: Vec<&str> = log.lines().skip(from).collect();
            anyhow::bail!(
                "worker {node} exited ({status}) before its node was alive; its last lines:\n{}",
                tail.join("\n")
            );
        }
        Ok(handle)
    }

    /// Starts the api service on a free loopback port and returns its base
    /// URL once `/healthz` answers. Loopback only, so it may run open.
    pub async fn start_api(&mut self) -> anyhow::Result<String> {
        self.start_api_with_auth("off").await
    }

    /// [`Cluster::start_api`] with `TASKYARD_AUTH` set to `auth`
    /// (`required`: every request needs a token).
    pub async fn start_api_with_auth(&mut self, auth: &str) -> anyhow::Result<String> {
        let addr = free_addr()?;
        let metrics_addr = free_addr()?;
        self.stack
            .spawn(
                "taskyard-api",
                "api",
                &[
                    ("TASKYARD_HTTP_ADDR", &addr),
                    ("TASKYARD_METRICS_ADDR", &metrics_addr),
                    ("TASKYARD_AUTH", auth),
                ],
            )
            .await?;
        self.metrics.insert("api".to_owned(), metrics_addr);
        let base = format!("http://{addr}");
        let http = reqwest::Client::new();
        wait_until("the api to answer /healthz", WAIT, || async {
            let answered = http
                .get(format!("{base}/healthz"))
                .timeout(Duration::from_millis(500))
                .send()
                .await
                .is_ok();
            Ok(answered.then_some(()))
        })
        .await?;
        Ok(base)
    }

    /// Runs the `taskyard` CLI against this cluster's NATS; returns its exit
    /// code and standard output.
    pub async fn taskyard(&self, args: &[&str]) -> anyhow::Result<(i32, String)> {
        let output = tokio::time::timeout(
            WAIT,
            tokio::process::Command::new(taskyard_testkit::bin_path("taskyard"))
                .args(["--nats-url", &self.stack.nats_url])
                .args(args)
                .envs(self.stack.cli_env()?)
                .output(),
        )
        .await
        .context("the taskyard CLI did not finish in time")?
        .context("running the taskyard CLI")?;
        Ok((
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        ))
    }

    /// Waits until service `name` lists `subject` among its endpoints in
    /// `$SRV.INFO`. The endpoint's subscription went out on the service's
    /// connection before the reply that lists it, so requests now find it.
    pub async fn wait_for_endpoint(&self, name: &str, subject: &str) -> anyhow::Result<()> {
        let info = format!("$SRV.INFO.taskyard-{name}");
        wait_until(&format!("{name} to serve {subject}"), WAIT, || async {
            let Ok(Ok(reply)) = tokio::time::timeout(
                Duration::from_millis(500),
                self.nats.request(info.clone(), "".into()),
            )
            .await
            else {
                return Ok(None);
            };
            let info: Value = serde_json::from_slice(&reply.payload)?;
            let serves = info["endpoints"]
                .as_array()
                .is_some_and(|endpoints| endpoints.iter().any(|e| e["subject"] == subject));
            Ok(serves.then_some(()))
        })
        .await
    }

    /// Waits until the micro service `taskyard-<name>` answers `$SRV.PING`.
    pub async fn wait_for_service(&self, name: &str) -> anyhow::Result<()> {
        let subject = format!("$SRV.PING.taskyard-{name}");
        wait_until(&format!("{name} to answer $SRV.PING"), WAIT, || async {
            match tokio::time::timeout(
                Duration::from_millis(500),
                self.nats.request(subject.clone(), "".into()),
            )
            .await
            {
                Ok(Ok(_)) => Ok(Some(())),
                _ => Ok(None),
            }
        })
        .await
    }

    /// The typed client of the request subjects, on this cluster's NATS.
    pub fn client(&self) -> Client {
        Client::new(self.nats.clone())
    }

    /// A pool request (`create`, `update`, `delete`, `get`, `list`), its
    /// answer as the pool manager's reply (a refusal included).
    pub async fn pools(&self, op: &str, body: &Value) -> anyhow::Result<PoolReply> {
        let op = PoolOp::parse(op).with_context(|| format!("no pool operation `{op}`"))?;
        let client = self.client();
        let name = || body["name"].as_str().unwrap_or_default();
        let answer = match op {
            PoolOp::List => client.pools().await.map(|pools| PoolReply::Many { pools }),
            PoolOp::Get => client
                .pool(name())
                .await
                .map(|pool| PoolReply::One { pool }),
            PoolOp::Delete => client
                .delete_pool(name())
                .await
                .map(|pool| PoolReply::One { pool }),
            PoolOp::Create => client
                .create_pool(body)
                .await
                .map(|pool| PoolReply::One { pool }),
            PoolOp::Update => client
                .update_pool(body)
                .await
                .map(|pool| PoolReply::One { pool }),
        };
        refused_or(answer, |error| PoolReply::Refused { error })
    }

    /// A node request (`drain`, `cordon`, `uncordon`, `remove`), its answer
    /// as the resource manager's reply (a refusal included).
    pub async fn node(&self, op: &str, node_id: &str) -> anyhow::Result<NodeReply> {
        let op = NodeOp::parse(op).with_context(|| format!("no node operation `{op}`"))?;
        let answer = self
            .client()
            .node(op, node_id)
            .await
            .map(|node| NodeReply::Done {
                node_id: node.node_id,
                health: node.health,
                cordoned: node.cordoned,
                draining: node.draining,
                removed: node.removed,
            });
        refused_or(answer, |error| NodeReply::Refused { error })
    }

    /// Submits by request/reply on `taskyard.api.submit`; the answer is the
    /// orchestrator's reply (a refusal included).
    pub async fn submit(&self, body: &Value) -> anyhow::Result<SubmitReply> {
        let answer = self
            .client()
            .submit(serde_json::to_vec(body)?)
            .await
            .map(|submitted| SubmitReply::Accepted {
                ids: submitted.ids,
                workflow_id: submitted.workflow_id,
            });
        refused_or(answer, |error| SubmitReply::Refused { error })
    }

    /// Submits and expects ids.
    pub async fn submit_ok(&self, body: &Value) -> anyhow::Result<Vec<Uuid>> {
        match self.submit(body).await? {
            SubmitReply::Accepted { ids, .. } => Ok(ids),
            SubmitReply::Refused { error } => anyhow::bail!("refused: {error}"),
        }
    }

    /// Publishes raw bytes on `taskyard.submit` through JetStream and waits
    /// for the stream's ack, as any client would.
    pub async fn publish(
        &self,
        payload: impl Into<bytes::Bytes>,
        msg_id: Option<&str>,
    ) -> anyhow::Result<()> {
        let js = async_nats::jetstream::new(self.nats.clone());
        let mut publish =
            async_nats::jetstream::message::PublishMessage::build().payload(payload.into());
        if let Some(id) = msg_id {
            publish = publish.message_id(id);
        }
        js.send_publish(taskyard_wire::subjects::SUBMIT, publish)
            .await?
            .await
            .context("the SUBMIT stream did not ack")?;
        Ok(())
    }

    /// The state of a task, if it exists.
    pub async fn state(&self, id: Uuid) -> anyhow::Result<Option<String>> {
        let row = self
            .db
            .query_opt("SELECT state::text FROM tasks WHERE id = $1", &[&id])
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Waits until task `id` is in a terminal state, and returns it.
    pub async fn wait_final(&self, id: Uuid) -> anyhow::Result<String> {
        wait_until(&format!("task {id} to finish"), WAIT, || async {
            let row = self
                .db
                .query_opt(
                    "SELECT state::text FROM tasks WHERE id = $1 AND finished_at IS NOT NULL",
                    &[&id],
                )
                .await?;
            Ok(row.map(|r| r.get::<_, String>(0)))
        })
        .await
    }

    /// Waits until `sql` (a `SELECT count(*)`) returns at least `n`.
    pub async fn wait_count(
        &self,
        what: &str,
        sql: &str,
        n: i64,
        timeout: Duration,
    ) -> anyhow::Result<i64> {
        wait_until(what, timeout, || async {
            let count: i64 = self.db.query_one(sql, &[]).await?.get(0);
            Ok((count >= n).then_some(count))
        })
        .await
    }

    /// One column of one task as JSON.
    pub async fn task_json(&self, id: Uuid) -> anyhow::Result<Value> {
        let row = self
            .db
            .query_one("SELECT to_jsonb(t) FROM tasks t WHERE id = $1", &[&id])
            .await?;
        Ok(row.get(0))
    }

    /// Waits until task `id` is in `state`.
    pub async fn wait_state(&self, id: Uuid, state: &str) -> anyhow::Result<()> {
        wait_until(&format!("task {id} to be {state}"), WAIT, || async {
            Ok((self.state(id).await?.as_deref() == Some(state)).then_some(()))
        })
        .await
    }

    /// Asks the pool manager to cancel a task; returns its reply as JSON.
    pub async fn cancel(&self, id: Uuid, reason: &str) -> anyhow::Result<Value> {
        let answer = self
            .client()
            .cancel(id, Some(reason.to_owned()))
            .await
            .map(|done| {
                serde_json::json!({
                    "task_id": done.task_id, "state": done.state, "cancelled": done.cancelled
                })
            });
        refused_or(answer, |error| serde_json::json!({ "error": error }))
    }

    /// A task's history as `(from, to)` pairs, oldest first.
    pub async fn trail(&self, id: Uuid) -> anyhow::Result<Vec<(Option<String>, String)>> {
        let rows = self
            .db
            .query(
                "SELECT from_state::text, to_state::text FROM task_events WHERE task_id = $1 ORDER BY id",
                &[&id],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

/// A request's answer, with the owner's refusal turned back into the
/// reply that carries it (`refused`), so that tests can look at it; any
/// other failure is an error.
fn refused_or<T>(
    answer: Result<T, ClientError>,
    refused: impl FnOnce(Rejection) -> T,
) -> anyhow::Result<T> {
    match answer {
        Ok(answer) => Ok(answer),
        Err(ClientError::Refused(error)) => Ok(refused(error)),
        Err(err) => Err(err.into()),
    }
}

/// A loopback address with a port free now (the OS picks it; a service
/// started right after binds it).
pub fn free_addr() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.to_string())
}

/// Publishes every payload on `taskyard.submit`, then waits for all the
/// stream's acks together, as a client in a hurry would.
pub async fn publish_all(cluster: &Cluster, payloads: Vec<Vec<u8>>) -> anyhow::Result<()> {
    let js = async_nats::jetstream::new(cluster.nats.clone());
    let mut acks = Vec::with_capacity(payloads.len());
    for payload in payloads {
        acks.push(
            js.publish(taskyard_wire::subjects::SUBMIT, payload.into())
                .await?,
        );
    }
    for ack in acks {
        tokio::time::timeout(WAIT, ack)
            .await
            .context("the SUBMIT stream did not ack in time")?
            .context("the SUBMIT stream refused a submission")?;
    }
    Ok(())
}

/// Waits until every consumer of every Taskyard stream has nothing left to
/// deliver and nothing unacknowledged: the work in flight is done.
pub async fn wait_until_settled(cluster: &Cluster) -> anyhow::Result<()> {
    use futures::TryStreamExt;
    use taskyard_runtime::streams;
    let js = async_nats::jetstream::new(cluster.nats.clone());
    wait_until("every consumer to settle", WAIT, || async {
        for name in [
            streams::SUBMIT,
            streams::EVENTS,
            streams::DISPATCH,
            streams::STATUS,
            streams::LOGS,
            streams::TIMERS,
            streams::ADVISORIES,
        ] {
            let Ok(stream) = js.get_stream(name).await else {
                continue;
            };
            let busy: Vec<_> = stream
                .consumers()
                .try_filter(|info| {
                    futures::future::ready(info.num_pending > 0 || info.num_ack_pending > 0)
                })
                .try_collect()
                .await?;
            if !busy.is_empty() {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await
}

/// The share of one core process `pid` used over `window` (user plus
/// system time, from `/proc/<pid>/stat`).
pub async fn cpu_share(pid: u32, window: Duration) -> anyhow::Result<f64> {
    fn ticks(pid: u32) -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // The command name may hold spaces; the fields after it do not.
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .context("a /proc stat line")?;
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
        let utime: u64 = fields.get(11).context("utime")?.parse()?;
        let stime: u64 = fields.get(12).context("stime")?.parse()?;
        Ok(utime + stime)
    }
    // Clock ticks are 1/100 s on every Linux this runs on (USER_HZ).
    const TICKS_PER_SECOND: f64 = 100.0;
    let before = ticks(pid)?;
    // A measurement over a window, not a wait for an event.
    tokio::time::sleep(window).await;
    let used = ticks(pid)?.saturating_sub(before) as f64 / TICKS_PER_SECOND;
    Ok(used / window.as_secs_f64())
}

/// Makes Postgres refuse, with SQLSTATE `sqlstate`, every update of a task
/// whose `error` becomes `error`; then starts a long task on `node` and
/// publishes a forged `finished` report for it carrying that error. Returns
/// the task's id and the report's bytes. What a report that can never be
/// recorded does to its consumer, without touching any other report.
pub async fn publish_refused_report(
    cluster: &Cluster,
    node: &str,
    error: &str,
    sqlstate: &str,
) -> anyhow::Result<(Uuid, Vec<u8>)> {
    cluster
        .db
        .batch_execute(&format!(
            "CREATE FUNCTION refuse_report() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.error = '{error}' THEN
                 RAISE EXCEPTION 'refused by the test' USING ERRCODE = '{sqlstate}';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_report BEFORE UPDATE ON tasks
               FOR EACH ROW EXECUTE FUNCTION refuse_report();"
        ))
        .await?;
    let held = cluster
        .submit_ok(
            &serde_json::json!({"kind": "sleep", "spec": {"ms": 30000}, "timeout_ms": 60000}),
        )
        .await?;
    let id = *held.first().context("the task's id")?;
    cluster.wait_state(id, "running").await?;
    let forged = serde_json::json!({
        "type": "finished", "task_id": id, "attempt": 1, "node_id": node,
        "outcome": "failed", "result": null, "error": error,
        "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z"
    });
    let bytes = serde_json::to_vec(&forged)?;
    let js = async_nats::jetstream::new(cluster.nats.clone());
    js.publish(format!("taskyard.status.{node}"), bytes.clone().into())
        .await?
        .await
        .context("the STATUS stream did not take the report")?;
    Ok((id, bytes))
}
