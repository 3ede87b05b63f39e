//! `taskyard bench`: end-to-end throughput and latency of the whole pipeline
//! on `noop` tasks, on a throwaway stack. A benchmark, not a test: it prints
//! a table and judges nothing.

use crate::stack::{CONTROL_PLANE, LocalStack, StackOptions};
use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use taskyard_runtime::batching::{Outgoing, publish_all};
use taskyard_wire::event::TaskEventBatch;

/// The tenant of benchmark tasks, so their numbers are read apart.
const TENANT: &str = "bench";
/// Submission messages published before their acks are awaited together.
const PUBLISH_CHUNK: usize = 2000;

/// Run N noop tasks through orchestrator, scheduler, K workers and pool
/// manager, every transition persisted, and print tasks per second and
/// submit-to-start p50/p99.
#[derive(Debug, Args)]
pub struct Bench {
    /// Tasks to run.
    #[arg(long, default_value_t = 20_000)]
    pub tasks: usize,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    pub workers: u32,
    /// Tasks per submission message (1 = one JSON object per task; more =
    /// atomic batches of that size).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Slots (concurrent attempts) of each worker.
    #[arg(long, default_value_t = 512)]
    pub slots: u32,
    /// Let JetStream skip its fsync per write (`sync_interval` default), to
    /// see what durability costs. Off by default: the benchmark measures the
    /// configuration Taskyard ships.
    #[arg(long)]
    pub no_fsync: bool,
    /// Keep the stack's folder (data and logs) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
    /// Run on a three-server JetStream cluster on loopback, every stream
    /// replicated on all three, instead of one server.
    #[arg(long)]
    pub cluster: bool,
}

impl Bench {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        anyhow::ensure!(self.tasks > 0, "--tasks must be at least 1");
        let batch = self.batch.max(1);
        let temp = tempfile::Builder::new()
            .prefix("taskyard-bench-")
            .tempdir()?;
        // Postgres runs as its own user when we are root: it must enter the folder.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755))?;
        }
        let (nats_url, cluster_ports) = if self.cluster {
            let ports = taskyard_devstack::ClusterPorts::free()?;
            let urls: Vec<String> = ports
                .client
                .iter()
                .map(|port| format!("nats://127.0.0.1:{port}"))
                .collect();
            (urls.join(","), Some(ports))
        } else {
            let port = taskyard_devstack::free_port()?;
            (format!("nats://127.0.0.1:{port}"), None)
        };
        let pg_port = taskyard_devstack::free_port()?;
        println!("starting a throwaway stack in {}", temp.path().display());
        let mut stack = LocalStack::servers(&StackOptions {
            dir: temp.path().to_path_buf(),
            nats_url,
            cluster: self.cluster,
            cluster_ports,
            database_url: format!("postgres://postgres@127.0.0.1:{pg_port}/taskyard"),
            database_ca_file: None,
            fast_postgres: false,
            nats_sync_always: !self.no_fsync,
            nats_host: None,
            secure: None,
        })
        .await?;
        let outcome = self.measure(&mut stack, batch).await;
        stack.stop().await;
        if self.keep {
            let kept = temp.keep();
            println!("kept {}", kept.display());
        }
        let report = outcome?;
        println!();
        println!(
            "| NATS | tasks | workers | tasks/message | seconds | tasks/s | submit→start p50 | p99 | max | succeeded |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
            if self.cluster {
                "3-server cluster, R3"
            } else {
                "1 server"
            },
            self.tasks,
            self.workers,
            batch,
            report.seconds,
            self.tasks as f64 / report.seconds,
            report.latency.p50_ms,
            report.latency.p99_ms,
            report.latency.max_ms,
            report.succeeded
        );
        Ok(ExitCode::SUCCESS)
    }

    async fn measure(&self, stack: &mut LocalStack, batch: usize) -> anyhow::Result<Report> {
        for service in CONTROL_PLANE {
            stack.spawn(service, service, &[])?;
        }
        for index in 1..=self.workers.max(1) {
            stack.spawn(
                "worker",
                &format!("worker-{index}"),
                &[
                    ("TASKYARD_NODE_ID", format!("bench-{index}")),
                    ("TASKYARD_SLOTS", self.slots.to_string()),
                ],
            )?;
        }
        let store = taskyard_store::Store::connect(&stack.database_url, 2).await?;
        let client = crate::bus::connect(&stack.nats_url, &stack.nats_security()).await?;
        wait_ready(&store, &client, self.workers.max(1) as usize).await?;
        // Progress comes from the events, not from polling Postgres, so the
        // measurement does not load the database it measures.
        let mut finished_events = client
            .subscribe(taskyard_wire::subjects::TASK_EVENTS_ALL)
            .await
            .map_err(|err| anyhow::anyhow!("cannot follow task events: {err}"))?;
        let js = async_nats::jetstream::new(client);

        let tasks = self.tasks;
        let started = Instant::now();
        let publisher = tokio::spawn(async move {
            let mut sent = 0;
            while sent < tasks {
                let mut messages = Vec::with_capacity(PUBLISH_CHUNK);
                while messages.len() < PUBLISH_CHUNK && sent < tasks {
                    let n = batch.min(tasks - sent);
                    messages.push(Outgoing::new(
                        taskyard_wire::subjects::SUBMIT,
                        submission(n),
                    ));
                    sent += n;
                }
                publish_all(&js, messages).await?;
            }
            anyhow::Ok(())
        });

        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(120)
            + Duration::from_millis(tasks as u64 * 2);
        let mut done = std::collections::HashSet::with_capacity(tasks);
        while done.len() < tasks {
            let message = match tokio::time::timeout_at(deadline, finished_events.next()).await {
                Ok(Some(message)) => message,
                Ok(None) => anyhow::bail!("the event subscription ended"),
                Err(_) => anyhow::bail!(
                    "only {} of {tasks} tasks finished in time; see the logs in {}",
                    done.len(),
                    stack.log_dir().display()
                ),
            };
            if let Ok(batch) = taskyard_wire::codec::decode::<TaskEventBatch>(&message.payload) {
                done.extend(
                    batch
                        .events
                        .iter()
                        .filter(|e| e.state.is_terminal())
                        .map(|e| e.task_id),
                );
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        publisher.await.context("publisher task")??;
        let (_, succeeded) = store.finished_count(TENANT).await?;
        let latency = store.start_latency(TENANT).await?;
        Ok(Report {
            seconds,
            latency,
            succeeded,
        })
    }
}

struct Report {
    seconds: f64,
    latency: taskyard_store::stats::StartLatency,
    succeeded: i64,
}

/// One submission of `n` noop tasks, stamped with the client's clock.
fn submission(n: usize) -> Vec<u8> {
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let task = serde_json::json!({
        "kind": "noop",
        "tenant": TENANT,
        "resources": {"cpu_millis": 0, "memory_mb": 0},
        "labels": {"submitted_at_ms": now_ms.to_string()},
    });
    if n == 1 {
        serde_json::to_vec(&task).unwrap_or_default()
    } else {
        serde_json::to_vec(&vec![task; n]).unwrap_or_default()
    }
}

async fn wait_ready(
    store: &taskyard_store::Store,
    client: &async_nats::Client,
    workers: usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alive = store
            .list_nodes()
            .await
            .map(|nodes| {
                nodes
                    .iter()
                    .filter(|n| n.health == taskyard_store::nodes::Health::Alive)
                    .count()
            })
            .unwrap_or(0);
        let orchestrator = tokio::time::timeout(
            Duration::from_millis(500),
            client.request("$SRV.PING.taskyard-orchestrator", "".into()),
        )
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
        let scheduler = tokio::time::timeout(
            Duration::from_millis(500),
            client.request("$SRV.PING.taskyard-scheduler", "".into()),
        )
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
        if alive >= workers && orchestrator && scheduler {
            // The scheduler learns of nodes from events; give it a moment.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the stack did not come up within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
