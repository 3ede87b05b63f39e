//! `taskyard up`: the whole stack on this machine.

use crate::GlobalOptions;
use crate::stack::{CONTROL_PLANE, LocalStack, StackOptions};
use anyhow::Context;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// First port of the services' Prometheus endpoints (orchestrator, scheduler,
/// pool-manager, resource-manager, api, then workers).
pub const FIRST_METRICS_PORT: u16 = 9101;

/// Start NATS and Postgres (unless reachable), apply migrations, and run
/// every service as its own process until ctrl-c.
#[derive(Debug, Args)]
pub struct Up {
    /// Folder for NATS and Postgres data and the services' logs.
    #[arg(long, default_value = ".taskyard", value_name = "DIR")]
    pub dir: PathBuf,
    /// Postgres database (started under --dir when nothing answers there).
    #[arg(
        long,
        env = "TASKYARD_DATABASE_URL",
        default_value = taskyard_runtime::config::DEFAULT_DATABASE_URL,
        value_name = "URL"
    )]
    pub database_url: String,
    /// The CA to verify that Postgres's certificate against (passed on to
    /// the services); TLS itself follows the URL's sslmode
    /// (docs/security.md#postgres-over-tls).
    #[arg(long, env = "TASKYARD_DATABASE_CA_FILE", value_name = "FILE")]
    pub database_ca_file: Option<PathBuf>,
    /// Where the web console and REST API listen.
    #[arg(long, env = "TASKYARD_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Worker processes; this host's CPU and memory are split between them.
    #[arg(long, default_value_t = 2)]
    pub workers: u32,
    /// Keep submitting a mixed demo workload.
    #[arg(long)]
    pub demo: bool,
    /// Run NATS as a three-server JetStream cluster on this machine (client
    /// ports from --nats-url: its port and the next two, or the three URLs it
    /// lists), every stream replicated on all three, so that any one server
    /// can be killed while work goes on.
    #[arg(long)]
    pub cluster: bool,
    /// Processes of each control-plane service (orchestrator, scheduler,
    /// pool-manager, resource-manager): one scheduler and one resource
    /// manager are active, the others stand by to take over. Defaults to 2
    /// with --cluster, else 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=9))]
    pub replicas: Option<u32>,
}

impl Up {
    pub async fn run(self, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let dir = std::fs::canonicalize(&self.dir)?;
        let mut stack = LocalStack::servers(&StackOptions {
            dir,
            nats_url: global.nats_url.clone(),
            cluster: self.cluster,
            cluster_ports: None,
            database_url: self.database_url.clone(),
            database_ca_file: self.database_ca_file.clone(),
            fast_postgres: false,
            nats_sync_always: true,
        })
        .await?;

        let mut metrics_port = FIRST_METRICS_PORT;
        let mut next_metrics = || {
            let addr = format!("127.0.0.1:{metrics_port}");
            metrics_port += 1;
            ("TASKYARD_METRICS_ADDR", addr)
        };
        let replicas = self.replicas.unwrap_or(if self.cluster { 2 } else { 1 });
        for service in CONTROL_PLANE {
            for replica in 1..=replicas {
                // The first keeps the plain name, so logs of a one-replica
                // stack read as they always did.
                let name = match replica {
                    1 => service.to_owned(),
                    n => format!("{service}-{n}"),
                };
                stack.spawn(service, &name, &[next_metrics()])?;
            }
        }
        // On loopback the API runs open, as a development stack; anywhere
        // else it needs tokens (and would refuse to start open).
        let auth = api_auth(self.http_addr);
        stack.spawn(
            "api",
            "api",
            &[
                next_metrics(),
                ("TASKYARD_HTTP_ADDR", self.http_addr.to_string()),
                ("TASKYARD_AUTH", auth.to_owned()),
            ],
        )?;
        let workers = self.workers.max(1);
        let share = HostShare::of_this_host(workers);
        for index in 1..=workers {
            let mut env = vec![
                next_metrics(),
                ("TASKYARD_NODE_ID", format!("local-{index}")),
            ];
            if let Some(cpu) = share.cpu_millis {
                env.push(("TASKYARD_CPU_MILLIS", cpu.to_string()));
            }
            if let Some(memory) = share.memory_mb {
                env.push(("TASKYARD_MEMORY_MB", memory.to_string()));
            }
            stack.spawn("worker", &format!("worker-{index}"), &env)?;
        }

        let console = format!("http://{}/", self.http_addr);
        wait_healthy(&console).await;
        println!();
        println!("Taskyard is up.");
        println!("  console:  {console}");
        println!("  REST API: {console}api/v1/tasks");
        println!("  NATS:     {}", stack.nats_url);
        if replicas > 1 {
            println!(
                "  replicas: {replicas} of each control-plane service; `taskyard services` shows \
                 which scheduler and resource manager are active"
            );
        }
        if auth == "off" {
            println!(
                "  auth:     off (TASKYARD_AUTH=off: the API listens on loopback only, and \
                 anyone on this machine can use it)"
            );
        } else {
            println!(
                "  auth:     required; create a token with `taskyard token create --name me \
                 --role admin` and pass it as --token or TASKYARD_TOKEN"
            );
        }
        println!("  submit:   taskyard submit --kind sleep --spec '{{\"ms\": 500}}' --wait");
        println!("  logs:     {}", stack.log_dir().display());
        println!(
            "  metrics:  http://127.0.0.1:{FIRST_METRICS_PORT}/metrics ... :{}",
            metrics_port - 1
        );
        println!("Press ctrl-c to stop.");

        let demo = if self.demo {
            let nats = crate::bus::connect(&stack.nats_url, &stack.nats_security())
                .await
                .context("connecting for the demo")?;
            println!(
                "Demo workload: a mixed batch every {:?}.",
                crate::demo::INTERVAL
            );
            Some(tokio::spawn(crate::demo::run(nats)))
        } else {
            None
        };

        let code = tokio::select! {
            _ = stop_signal() => {
                println!("\nstopping…");
                ExitCode::SUCCESS
            }
            (name, status) = stack.any_exit() => {
                eprintln!("{name} exited ({status}); see {}/{name}.log. Stopping.", stack.log_dir().display());
                ExitCode::FAILURE
            }
        };
        if let Some(demo) = demo {
            demo.abort();
        }
        stack.stop().await;
        Ok(code)
    }
}

/// `TASKYARD_AUTH` of the api `up` starts: `off` on loopback, else `required`.
pub fn api_auth(http_addr: SocketAddr) -> &'static str {
    if http_addr.ip().is_loopback() {
        "off"
    } else {
        "required"
    }
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn wait_healthy(console: &str) {
    let url = format!("{console}healthz");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let client = reqwest::Client::new();
    while tokio::time::Instant::now() < deadline {
        if let Ok(response) = client.get(&url).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("the API did not report healthy within 60 s; see the logs");
}

/// One worker's part of this host, so that several workers on one machine
/// do not each claim all of it.
struct HostShare {
    cpu_millis: Option<u32>,
    memory_mb: Option<u32>,
}

impl HostShare {
    fn of_this_host(workers: u32) -> HostShare {
        if workers <= 1 {
            return HostShare {
                cpu_millis: None,
                memory_mb: None,
            };
        }
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .ok();
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|line| line.starts_with("MemTotal:"))
                    .and_then(|line| line.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
                    .map(|kb| (kb / 1024) as u32)
            });
        HostShare {
            cpu_millis: cpus.map(|n| n * 1000 / workers),
            memory_mb: memory.map(|mb| mb / workers),
        }
    }
}
