//! `taskyard up`: the whole stack on this machine.

use crate::GlobalOptions;
use crate::stack::{CONTROL_PLANE, LocalStack, SecureOptions, StackOptions};
use anyhow::Context;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use taskyard_runtime::access::Kind;

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
    /// Run the bus with credentials and TLS: a local CA and the servers'
    /// certificate in DIR/tls, one nkey per service, per worker and one for
    /// you in DIR/creds (kept across restarts). On loopback the bus runs
    /// open unless this is set; off loopback it is always on.
    #[arg(long)]
    pub secure: bool,
    /// Where the nats-server started here listens (e.g. 0.0.0.0 to serve
    /// workers on other hosts); anything but loopback turns --secure on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub nats_listen: String,
    /// First port of the services' Prometheus endpoints on 127.0.0.1, one
    /// per process from here up; 0 lets each take any free port.
    #[arg(long, value_name = "PORT", default_value_t = FIRST_METRICS_PORT)]
    pub metrics_port: u16,
}

impl Up {
    pub async fn run(self, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let dir = std::fs::canonicalize(&self.dir)?;
        let replicas = self.replicas.unwrap_or(if self.cluster { 2 } else { 1 });
        let workers = self.workers.max(1);
        let off_loopback = !taskyard_devstack::nats::is_loopback(&self.nats_listen);
        let secure = (self.secure || off_loopback).then(|| SecureOptions {
            hosts: certificate_hosts(&self.nats_listen),
            identities: identities(workers),
        });
        if off_loopback && !self.secure {
            println!(
                "NATS listens on {}, off loopback: running it with credentials and TLS",
                self.nats_listen
            );
        }
        let mut stack = LocalStack::servers(&StackOptions {
            dir,
            nats_url: global.nats_url.clone(),
            cluster: self.cluster,
            cluster_ports: None,
            database_url: self.database_url.clone(),
            database_ca_file: self.database_ca_file.clone(),
            fast_postgres: false,
            nats_sync_always: true,
            nats_host: Some(self.nats_listen.clone()),
            secure,
        })
        .await?;

        let mut metrics = MetricsPorts::from(self.metrics_port);
        spawn_control_plane(&mut stack, replicas, &mut metrics)?;
        spawn_api(&mut stack, self.http_addr, &mut metrics)?;
        spawn_workers(&mut stack, workers, &mut metrics)?;

        let console = format!("http://{}/", self.http_addr);
        wait_healthy(&console).await;
        println!();
        println!("Taskyard is up.");
        println!("  console:  {console}");
        println!("  REST API: {console}api/v1/tasks");
        println!("  NATS:     {}", stack.nats_url);
        match stack.secure_bus() {
            Some(secure) => {
                let security = stack.nats_security();
                println!(
                    "  bus:      credentials and TLS; each service and worker has its own nkey \
                     in {}",
                    secure.creds_dir().display()
                );
                println!(
                    "  as you:   export TASKYARD_NATS_NKEY_FILE={} TASKYARD_NATS_CA_FILE={}",
                    security
                        .nkey_file
                        .as_deref()
                        .unwrap_or(secure.creds_dir())
                        .display(),
                    secure.tls().ca.display()
                );
            }
            None => println!(
                "  bus:      open (no credentials, no TLS): loopback only, for development; \
                 `taskyard up --secure` turns both on"
            ),
        }
        if replicas > 1 {
            println!(
                "  replicas: {replicas} of each control-plane service; `taskyard services` shows \
                 which scheduler and resource manager are active"
            );
        }
        if api_auth(self.http_addr) == "off" {
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
        if self.metrics_port != 0 {
            println!(
                "  metrics:  http://127.0.0.1:{}/metrics ... :{}",
                self.metrics_port,
                metrics.last()
            );
        }
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

/// The services' Prometheus ports, handed out one per process from a first
/// port up (0: each process takes any free port).
pub struct MetricsPorts {
    next: u16,
}

impl From<u16> for MetricsPorts {
    fn from(first: u16) -> MetricsPorts {
        MetricsPorts { next: first }
    }
}

impl MetricsPorts {
    fn take(&mut self) -> (&'static str, String) {
        let addr = format!("127.0.0.1:{}", self.next);
        if self.next != 0 {
            self.next += 1;
        }
        ("TASKYARD_METRICS_ADDR", addr)
    }

    /// The last port handed out.
    fn last(&self) -> u16 {
        self.next.saturating_sub(1)
    }
}

/// Starts `replicas` processes of each control-plane service, as `up` does.
pub fn spawn_control_plane(
    stack: &mut LocalStack,
    replicas: u32,
    metrics: &mut MetricsPorts,
) -> anyhow::Result<()> {
    for service in CONTROL_PLANE {
        for replica in 1..=replicas {
            // The first keeps the plain name, so logs of a one-replica
            // stack read as they always did.
            let name = match replica {
                1 => service.to_owned(),
                n => format!("{service}-{n}"),
            };
            stack.spawn(service, &name, &[metrics.take()])?;
        }
    }
    Ok(())
}

/// Starts the api, open on loopback and requiring tokens anywhere else.
pub fn spawn_api(
    stack: &mut LocalStack,
    http_addr: SocketAddr,
    metrics: &mut MetricsPorts,
) -> anyhow::Result<()> {
    stack.spawn(
        "api",
        "api",
        &[
            metrics.take(),
            ("TASKYARD_HTTP_ADDR", http_addr.to_string()),
            ("TASKYARD_AUTH", api_auth(http_addr).to_owned()),
        ],
    )
}

/// Starts `workers` workers, nodes `local-1` … `local-<workers>`, each with
/// its share of this host and the worker's default slots.
pub fn spawn_workers(
    stack: &mut LocalStack,
    workers: u32,
    metrics: &mut MetricsPorts,
) -> anyhow::Result<()> {
    let share = HostShare::of_this_host(workers);
    for index in 1..=workers {
        let mut env = vec![
            metrics.take(),
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
    Ok(())
}

/// Every identity a stack of `workers` workers connects as: each service's
/// (replicas share it), each worker node's, and the operator's.
pub fn identities(workers: u32) -> Vec<(String, Kind)> {
    let mut identities: Vec<(String, Kind)> = taskyard_runtime::access::SERVICES
        .iter()
        .map(|service| {
            (
                (*service).to_owned(),
                Kind::Service {
                    service: (*service).to_owned(),
                },
            )
        })
        .collect();
    for index in 1..=workers {
        let node = format!("local-{index}");
        identities.push((
            taskyard_runtime::access::worker_identity(&node),
            Kind::Worker {
                node,
                task_subjects: Vec::new(),
            },
        ));
    }
    identities.push((crate::secure_bus::OPERATOR.to_owned(), Kind::Operator));
    identities
}

/// The names the servers' certificate is for: the listen address when it
/// is one, and this host's name, so that clients elsewhere can verify it.
fn certificate_hosts(listen: &str) -> Vec<String> {
    let mut hosts = Vec::new();
    if !matches!(listen, "0.0.0.0" | "::" | "[::]") {
        hosts.push(
            listen
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        );
    }
    if let Ok(name) = nix::unistd::gethostname()
        && let Some(name) = name.to_str()
        && !name.is_empty()
    {
        hosts.push(name.to_owned());
    }
    hosts
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
