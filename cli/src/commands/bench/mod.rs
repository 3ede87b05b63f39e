//! `taskyard bench`: the scenarios the peer job queues are measured with
//! (`burn`, `e2e`, `e2e-batch`, `paced`) and the read side (`reads`), run
//! against a stack started
//! exactly as `taskyard up` starts it, driven from outside as a client
//! would: JetStream publishes to `taskyard.submit`, figures read from the
//! tasks' rows afterwards. A benchmark, not a test: it prints one line per
//! scenario in the peers' format and judges nothing.

mod reads;

use crate::commands::up::{MetricsPorts, spawn_api, spawn_control_plane, spawn_workers};
use crate::stack::{LocalStack, StackOptions};
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use taskyard_store::Store;
use taskyard_store::stats::RunFigures;

/// Run the peers' scenarios against the stack `taskyard up` starts and
/// print one line each.
#[derive(Debug, Args)]
pub struct Bench {
    /// Scenarios to run, in this order (burn-down first: it starts the
    /// workers only once its tasks are queued).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "burn,e2e,e2e-batch,paced"
    )]
    pub scenario: Vec<Scenario>,
    /// Tasks of each scenario but `paced`.
    #[arg(long, default_value_t = 20_000)]
    pub tasks: usize,
    /// Worker processes, as `taskyard up --workers`.
    #[arg(long, default_value_t = 2)]
    pub workers: u32,
    /// Concurrent producers of `e2e` and `e2e-batch`, each awaiting its
    /// publish's ack before the next.
    #[arg(long, default_value_t = 16)]
    pub producers: usize,
    /// Tasks per publish in `e2e-batch` (and when enqueueing for `burn`).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Tasks per second of `paced`.
    #[arg(long, default_value_t = 100)]
    pub rate: u32,
    /// Seconds of `paced`.
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// How producers submit: `stream` publishes to the SUBMIT stream
    /// (`taskyard.submit`, acked by JetStream once stored), `request` asks
    /// the orchestrator on `taskyard.api.submit` (answered once the tasks
    /// are committed in Postgres). Paced and burn-down use it too.
    #[arg(long, value_enum, default_value = "stream")]
    pub submit_via: SubmitVia,
    /// Finished tasks (with four history rows each) put in the database
    /// before the scenarios run, to see whether a long history slows them.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub history: i64,
    /// Use this Postgres (a database `taskyard_bench` is made there)
    /// instead of starting one, so a seeded history can be kept between
    /// runs.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Let JetStream skip its fsync per write, to see what durability
    /// costs. Off by default: the benchmark measures what `up` ships.
    #[arg(long)]
    pub no_fsync: bool,
    /// Keep the stack's folder (data and logs) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
    /// Run on a three-server JetStream cluster on loopback, every stream
    /// replicated on all three, as `taskyard up --cluster`.
    #[arg(long)]
    pub cluster: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// N tasks queued with no worker running, then the workers start;
    /// rate = N / (last start − first start).
    Burn,
    /// Workers running; producers submit N tasks, one per publish; rate =
    /// N / (last start − first submit).
    E2e,
    /// As `e2e`, `--batch` tasks per publish.
    E2eBatch,
    /// `--rate` tasks a second for `--seconds` into an idle stack, one per
    /// publish; submit → start latency from the client's clock.
    Paced,
    /// The console's pages and the REST API's lists and filters, each
    /// fetched five times: median and slowest, on the history there is.
    Reads,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SubmitVia {
    Stream,
    Request,
}

/// Where and how submissions go: the stream's JetStream context, or the
/// plain client for requests.
#[derive(Clone)]
struct Submitter {
    js: async_nats::jetstream::Context,
    client: async_nats::Client,
    via: SubmitVia,
}

impl Submitter {
    async fn submit(&self, payload: Vec<u8>) -> anyhow::Result<()> {
        match self.via {
            SubmitVia::Stream => {
                let ack = self
                    .js
                    .publish(taskyard_wire::subjects::SUBMIT, payload.into())
                    .await
                    .context("publishing a submission")?;
                tokio::time::timeout(Duration::from_secs(30), ack)
                    .await
                    .context("no ack for a submission within 30 s")?
                    .context("the submission was not stored")?;
            }
            SubmitVia::Request => {
                let reply = tokio::time::timeout(
                    Duration::from_secs(30),
                    self.client
                        .request(taskyard_wire::subjects::API_SUBMIT, payload.into()),
                )
                .await
                .context("no answer to a submission within 30 s")?
                .context("asking the orchestrator")?;
                let reply: taskyard_wire::reply::SubmitReply =
                    serde_json::from_slice(&reply.payload)
                        .context("reading the orchestrator's answer")?;
                if let taskyard_wire::reply::SubmitReply::Refused { error } = reply {
                    anyhow::bail!("the submission was refused: {}", error.message);
                }
            }
        }
        Ok(())
    }
}

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::Burn => "burn-down",
            Scenario::E2e => "e2e",
            Scenario::E2eBatch => "e2e-batch",
            Scenario::Paced => "paced",
            Scenario::Reads => "reads",
        }
    }

    /// Each scenario of each run has a tenant of its own, so its figures
    /// are read from its rows alone, even in a database kept between runs.
    fn tenant(self, run: &str) -> String {
        format!("bench-{}-{run}", self.label())
    }
}

impl Bench {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        anyhow::ensure!(self.tasks > 0, "--tasks must be at least 1");
        anyhow::ensure!(self.producers > 0, "--producers must be at least 1");
        anyhow::ensure!(self.batch > 0, "--batch must be at least 1");
        anyhow::ensure!(
            self.rate > 0 && self.seconds > 0,
            "--rate and --seconds must be at least 1"
        );
        anyhow::ensure!(!self.scenario.is_empty(), "name at least one --scenario");
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
        let database_url = match &self.database_url {
            Some(url) => crate::stack::with_database(url, "taskyard_bench"),
            None => format!(
                "postgres://postgres@127.0.0.1:{}/taskyard",
                taskyard_devstack::free_port()?
            ),
        };
        println!(
            "starting a stack as `taskyard up` does, in {}",
            temp.path().display()
        );
        // Exactly what `up` passes, but for the ports and the folder.
        let mut stack = LocalStack::servers(&StackOptions {
            dir: temp.path().to_path_buf(),
            nats_url,
            cluster: self.cluster,
            cluster_ports,
            database_url,
            database_ca_file: None,
            fast_postgres: false,
            nats_sync_always: !self.no_fsync,
            nats_host: None,
            secure: None,
        })
        .await?;
        let outcome = self.measure(&mut stack).await;
        stack.stop().await;
        if self.keep {
            let kept = temp.keep();
            println!("kept {}", kept.display());
        }
        let lines = outcome?;
        println!();
        for line in lines {
            println!("{line}");
        }
        Ok(ExitCode::SUCCESS)
    }

    async fn measure(&self, stack: &mut LocalStack) -> anyhow::Result<Vec<String>> {
        let store = Store::connect(&stack.database_url, 2).await?;
        if self.history > 0 {
            let existing = store.seeded_history().await?;
            let wanted = self.history;
            if existing < wanted {
                println!(
                    "seeding {} finished tasks into the history…",
                    wanted - existing
                );
                let started = Instant::now();
                store
                    .seed_history(wanted - existing, |done| {
                        println!("  {done} ({:.0} s)", started.elapsed().as_secs_f64())
                    })
                    .await
                    .context("seeding the history")?;
            }
        }
        // A database kept from an earlier run still lists that run's
        // workers, alive until their heartbeats are missed: remove them, as
        // an operator would, so no task is placed on a node that is gone.
        for node in store.list_nodes().await? {
            store
                .remove_node(&node.id, "an earlier benchmark run's worker", Some("bench"))
                .await?;
        }
        // The same processes `up` starts, on any free metrics and HTTP port.
        let mut metrics = MetricsPorts::from(0);
        spawn_control_plane(stack, 1, &mut metrics)?;
        let http = std::net::SocketAddr::from(([127, 0, 0, 1], taskyard_devstack::free_port()?));
        spawn_api(stack, http, &mut metrics)?;
        let client = crate::bus::connect(&stack.nats_url, &stack.nats_security()).await?;
        wait_control_plane(&client).await?;
        let js = Submitter {
            js: async_nats::jetstream::new(client.clone()),
            client,
            via: self.submit_via,
        };
        let workers = self.workers.max(1);
        let mut workers_running = false;
        let mut lines = Vec::new();
        let run = format!("{:x}", (now_secs() * 1000.0) as u64);
        for &scenario in &self.scenario {
            // Burn-down queues its tasks before any worker runs; every
            // other scenario needs them running first.
            if scenario != Scenario::Burn && !workers_running {
                spawn_workers(stack, workers, &mut metrics)?;
                wait_workers(&store, workers as usize).await?;
                workers_running = true;
            }
            if scenario == Scenario::Reads {
                let timings = reads::measure(&format!("http://{http}")).await?;
                lines.push("| page | median ms | slowest ms | bytes |".to_owned());
                lines.push("|---|---:|---:|---:|".to_owned());
                for t in timings {
                    let line = format!(
                        "| `{}` | {:.1} | {:.1} | {} |",
                        t.page, t.median_ms, t.max_ms, t.bytes
                    );
                    println!("{line}");
                    lines.push(line);
                }
                continue;
            }
            let tenant = scenario.tenant(&run);
            let (n, first_submit) = match scenario {
                Scenario::Burn => {
                    anyhow::ensure!(
                        !workers_running,
                        "burn-down needs a stack without workers: run it first"
                    );
                    let first_submit = now_secs();
                    produce(&js, &tenant, self.tasks, self.batch, self.producers).await?;
                    wait_for(&store, &tenant, self.tasks, Count::Queued, stack).await?;
                    spawn_workers(stack, workers, &mut metrics)?;
                    workers_running = true;
                    (self.tasks, first_submit)
                }
                Scenario::E2e => {
                    let first_submit = now_secs();
                    produce(&js, &tenant, self.tasks, 1, self.producers).await?;
                    (self.tasks, first_submit)
                }
                Scenario::E2eBatch => {
                    let first_submit = now_secs();
                    produce(&js, &tenant, self.tasks, self.batch, self.producers).await?;
                    (self.tasks, first_submit)
                }
                Scenario::Paced => {
                    let first_submit = now_secs();
                    let n = paced(&js, &tenant, self.rate, self.seconds).await?;
                    (n, first_submit)
                }
                Scenario::Reads => continue,
            };
            wait_for(&store, &tenant, n, Count::Finished, stack).await?;
            let figures = store.run_figures(&tenant).await?;
            let line = peer_line(scenario, n, first_submit, &figures);
            println!("{line}");
            lines.push(line);
        }
        Ok(lines)
    }
}

/// One line as the peers' `report.py` prints it, so the rows read side by
/// side.
fn peer_line(scenario: Scenario, n: usize, first_submit: f64, figures: &RunFigures) -> String {
    let whole = (figures.last_start - first_submit).max(1e-9);
    let burn = (figures.last_start - figures.first_start).max(1e-9);
    let failed = if figures.succeeded as usize == n {
        String::new()
    } else {
        format!(" | only {} of {n} succeeded", figures.succeeded)
    };
    let hops = match scenario {
        Scenario::Paced => format!(
            " | hops p50 ms: submit->created {:.1}, created->placed {:.1}, placed->started {:.1}",
            figures.hops_p50_ms[0], figures.hops_p50_ms[1], figures.hops_p50_ms[2]
        ),
        _ => String::new(),
    };
    format!(
        "taskyard {}: n={n} first_submit->last_start {whole:.3}s = {:.0} jobs/s | \
         first_start->last_start {burn:.3}s = {:.0} jobs/s (burn-down) | \
         submit->start ms p50={:.1} p99={:.1} max={:.1}{failed}{hops}",
        scenario.label(),
        n as f64 / whole,
        n as f64 / burn,
        figures.p50_ms,
        figures.p99_ms,
        figures.max_ms,
    )
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// `n` noop tasks for `tenant`, one JSON object when `n` is 1, else an
/// array (an atomic batch). Each carries the client's clock at publish in
/// `labels.submitted_at_us`. No resources are asked for: like the peers'
/// no-op jobs, each takes only a worker slot.
fn submission(tenant: &str, n: usize) -> Vec<u8> {
    let now_us = (now_secs() * 1e6) as i64;
    let task = serde_json::json!({
        "kind": "noop",
        "tenant": tenant,
        "resources": {"cpu_millis": 0, "memory_mb": 0},
        "labels": {"submitted_at_us": now_us.to_string()},
    });
    if n == 1 {
        serde_json::to_vec(&task).unwrap_or_default()
    } else {
        serde_json::to_vec(&vec![task; n]).unwrap_or_default()
    }
}

/// `producers` concurrent producers publish `total` tasks, `batch` per
/// publish, each awaiting its ack before its next publish.
async fn produce(
    js: &Submitter,
    tenant: &str,
    total: usize,
    batch: usize,
    producers: usize,
) -> anyhow::Result<()> {
    let claimed = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(producers);
    for _ in 0..producers {
        let (js, tenant, claimed) = (js.clone(), tenant.to_owned(), claimed.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let from = claimed.fetch_add(batch, Ordering::SeqCst);
                if from >= total {
                    return anyhow::Ok(());
                }
                let n = batch.min(total - from);
                js.submit(submission(&tenant, n)).await?;
            }
        }));
    }
    for handle in handles {
        handle.await.context("a producer panicked")??;
    }
    Ok(())
}

/// `rate` tasks a second for `seconds`, each publish awaited; returns how
/// many were sent.
async fn paced(js: &Submitter, tenant: &str, rate: u32, seconds: u32) -> anyhow::Result<usize> {
    let n = (rate * seconds) as usize;
    let start = tokio::time::Instant::now();
    for i in 0..n {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due).await;
        js.submit(submission(tenant, 1)).await?;
    }
    Ok(n)
}

#[derive(Debug, Clone, Copy)]
enum Count {
    Queued,
    Finished,
}

/// Waits until `n` of `tenant`'s tasks are queued or finished, reading
/// Postgres twice a second (the figures come from the rows' timestamps, so
/// how often this looks changes none of them).
async fn wait_for(
    store: &Store,
    tenant: &str,
    n: usize,
    what: Count,
    stack: &LocalStack,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120) + Duration::from_millis(n as u64 * 2);
    loop {
        let (queued, finished) = store.queued_and_finished(tenant).await?;
        let count = match what {
            Count::Queued => queued,
            Count::Finished => finished,
        };
        if count as usize >= n {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {count} of {n} tasks of {tenant} were {what:?} in time; see the logs in {}",
            stack.log_dir().display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until the orchestrator and the scheduler answer on the bus.
async fn wait_control_plane(client: &async_nats::Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for service in [
        "taskyard-orchestrator",
        "taskyard-scheduler",
        "taskyard-pool-manager",
    ] {
        loop {
            let answered = tokio::time::timeout(
                Duration::from_millis(500),
                client.request(format!("$SRV.PING.{service}"), "".into()),
            )
            .await
            .map(|reply| reply.is_ok())
            .unwrap_or(false);
            if answered {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{service} did not answer within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Waits until `workers` nodes are alive.
async fn wait_workers(store: &Store, workers: usize) -> anyhow::Result<()> {
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
        if alive >= workers {
            // The scheduler learns of nodes from their events, just after.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{alive} of {workers} workers came up within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
