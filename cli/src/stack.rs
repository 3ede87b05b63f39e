//! A whole Taskyard on this machine: nats-server and Postgres (reused when
//! already reachable, else started with their data in a folder), migrations,
//! and every service as its own child process. Used by `taskyard up` and
//! `taskyard bench`.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use taskyard_devstack::nats_cluster::CLUSTER_SIZE;
use taskyard_devstack::{
    ClusterPorts, NatsCluster, NatsClusterOptions, NatsOptions, NatsServer, Postgres,
    PostgresOptions,
};
use taskyard_store::DbTls;
use tokio::process::{Child, Command};

use crate::secure_bus::SecureBus;
use taskyard_devstack::{TlsFiles, ensure_certificates};

/// How long services get to stop on SIGTERM before they are killed.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// The control-plane services, in start order.
pub const CONTROL_PLANE: [&str; 4] = [
    "orchestrator",
    "scheduler",
    "pool-manager",
    "resource-manager",
];

/// Where the servers are, or should be.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Data and logs: `<dir>/nats` (or `<dir>/nats-cluster/n1` … `n3`),
    /// `<dir>/postgres`, `<dir>/logs`.
    pub dir: PathBuf,
    /// One URL, or the comma-separated URLs of a cluster's servers.
    pub nats_url: String,
    /// Run on a three-server JetStream cluster (started on loopback when
    /// nothing answers at `nats_url`), every stream replicated three times.
    pub cluster: bool,
    /// The cluster's ports, when it is started here; `None` takes them
    /// from `nats_url` (see [`cluster_ports`]).
    pub cluster_ports: Option<ClusterPorts>,
    pub database_url: String,
    /// The CA of the Postgres at `database_url`, when it serves TLS
    /// (`TASKYARD_DATABASE_CA_FILE`, passed on to every service); TLS itself
    /// follows the URL's `sslmode`.
    pub database_ca_file: Option<PathBuf>,
    /// Trade durability for speed in a throwaway Postgres (benchmarks of the
    /// pipeline itself keep it off).
    pub fast_postgres: bool,
    /// fsync every JetStream write (`sync_interval: always`), as in
    /// `nats/dev.conf`. Off only to measure what it costs.
    pub nats_sync_always: bool,
    /// Where a nats-server started here listens (`None`: 127.0.0.1).
    pub nats_host: Option<String>,
    /// Run the bus with credentials and TLS (see [`crate::secure_bus`]).
    pub secure: Option<SecureOptions>,
}

/// What a secure stack's bus needs made before it starts.
#[derive(Debug, Clone, Default)]
pub struct SecureOptions {
    /// Names and addresses the servers' certificate is for, besides
    /// `localhost` and 127.0.0.1.
    pub hosts: Vec<String>,
    /// Every identity a process of the stack connects as: each service's,
    /// each worker node's (`worker-<node>`) and [`crate::secure_bus::OPERATOR`].
    pub identities: Vec<(String, taskyard_runtime::access::Kind)>,
}

/// A running stack; dropping it kills the children and stops the servers it
/// started.
pub struct LocalStack {
    pub nats_url: String,
    pub database_url: String,
    database_ca_file: Option<PathBuf>,
    /// Replicas of every stream the services declare.
    stream_replicas: usize,
    log_dir: PathBuf,
    secure: Option<SecureBus>,
    children: Vec<(String, Child)>,
    // Declared last so they stop after the services.
    nats: Option<NatsServer>,
    nats_cluster: Option<NatsCluster>,
    postgres: Option<Postgres>,
}

impl LocalStack {
    /// Reaches or starts NATS and Postgres, creates the database, applies
    /// migrations.
    pub async fn servers(options: &StackOptions) -> anyhow::Result<LocalStack> {
        let log_dir = options.dir.join("logs");
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        // A secure stack's certificates serve Postgres and NATS alike.
        let certificates = match &options.secure {
            Some(secure) => Some(
                ensure_certificates(&options.dir.join("tls"), &secure.hosts)
                    .context("making the stack's certificates")?,
            ),
            None => None,
        };
        // Postgres next: a secure bus's credentials are rows there, and the
        // servers start with their authorization config already written.
        let (postgres, database_url, database_ca_file) =
            self::postgres(options, certificates.as_ref()).await?;
        let store = taskyard_store::Store::connect_and_migrate_with(
            &database_url,
            1,
            &DbTls::from_ca_file(database_ca_file.clone()),
        )
        .await
        .context("applying migrations")?;
        let secure = match (&options.secure, certificates) {
            (Some(secure), Some(certificates)) => Some(
                SecureBus::prepare(&options.dir, &store, certificates, &secure.identities).await?,
            ),
            _ => None,
        };
        let (nats, nats_cluster, nats_url) = if options.cluster {
            let (cluster, url) = nats_cluster(options, secure.as_ref()).await?;
            (None, cluster, url)
        } else {
            let (server, url) = nats(options, secure.as_ref()).await?;
            (server, None, url)
        };
        Ok(LocalStack {
            nats_url,
            database_url,
            database_ca_file,
            stream_replicas: if options.cluster { CLUSTER_SIZE } else { 1 },
            log_dir,
            secure,
            children: Vec::new(),
            nats,
            nats_cluster,
            postgres,
        })
    }

    /// Starts `taskyard-<service>` (found beside this executable) with the
    /// stack's URLs and `env`; its output goes to `logs/<name>.log`.
    pub fn spawn(
        &mut self,
        service: &str,
        name: &str,
        env: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let binary = sibling_binary(&format!("taskyard-{service}"))?;
        let log_path = self.log_dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let err_log = log.try_clone()?;
        let mut command = Command::new(&binary);
        command
            .env("TASKYARD_NATS_URL", &self.nats_url)
            .env("TASKYARD_DATABASE_URL", &self.database_url)
            .env("TASKYARD_STREAM_REPLICAS", self.stream_replicas.to_string())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .kill_on_drop(true);
        if let Some(ca) = &self.database_ca_file {
            command.env("TASKYARD_DATABASE_CA_FILE", ca);
        }
        if let Some(secure) = &self.secure {
            // Each process connects as itself: a service as its service
            // (replicas share it), a worker as its node.
            let identity = match service {
                "worker" => {
                    let node = env
                        .iter()
                        .find(|(key, _)| *key == "TASKYARD_NODE_ID")
                        .map(|(_, value)| value.as_str())
                        .with_context(|| format!("{name} has no TASKYARD_NODE_ID"))?;
                    taskyard_runtime::access::worker_identity(node)
                }
                other => other.to_owned(),
            };
            command
                .env("TASKYARD_NATS_NKEY_FILE", secure.seed(&identity)?)
                .env("TASKYARD_NATS_CA_FILE", &secure.tls().ca);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    /// How the stack's own clients (the demo, the benchmark) connect to its
    /// NATS: as the operator when it runs with credentials.
    pub fn nats_security(&self) -> taskyard_runtime::nats::NatsSecurity {
        match &self.secure {
            Some(secure) => taskyard_runtime::nats::NatsSecurity {
                nkey_file: secure
                    .seed(crate::secure_bus::OPERATOR)
                    .ok()
                    .map(Path::to_path_buf),
                ca_file: Some(secure.tls().ca.clone()),
                ..Default::default()
            },
            None => taskyard_runtime::nats::NatsSecurity::default(),
        }
    }

    /// The secure bus's certificates and seed files, when it has them.
    pub fn secure_bus(&self) -> Option<&SecureBus> {
        self.secure.as_ref()
    }

    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// Completes when a child exits, with its name and status: a service
    /// that dies on its own is news.
    pub async fn any_exit(&mut self) -> (String, String) {
        loop {
            for (name, child) in &mut self.children {
                if let Ok(Some(status)) = child.try_wait() {
                    return (name.clone(), status.to_string());
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// SIGTERM to every service (workers drain, others stop taking work),
    /// then SIGKILL to those still running after [`STOP_GRACE`].
    pub async fn stop_services(&mut self) {
        for (_, child) in &self.children {
            if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        for (name, child) in &mut self.children {
            match tokio::time::timeout_at(deadline, child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    eprintln!("{name} did not stop in time; killing it");
                    let _ = child.kill().await;
                }
            }
        }
        self.children.clear();
    }

    /// Stops the services, then the servers this stack started.
    pub async fn stop(mut self) {
        self.stop_services().await;
        if let Some(nats) = self.nats.take() {
            nats.stop().await;
        }
        if let Some(cluster) = self.nats_cluster.take() {
            cluster.stop().await;
        }
        if let Some(postgres) = self.postgres.take() {
            postgres.stop().await;
        }
    }
}

async fn nats(
    options: &StackOptions,
    secure: Option<&SecureBus>,
) -> anyhow::Result<(Option<NatsServer>, String)> {
    if taskyard_devstack::nats_reachable(&options.nats_url).await {
        println!("using NATS at {}", options.nats_url);
        return Ok((None, options.nats_url.clone()));
    }
    let port = local_port(&options.nats_url, "nats://", 4222)?;
    let server = NatsServer::start(NatsOptions {
        dir: options.dir.join("nats"),
        port: Some(port),
        sync_always: options.nats_sync_always,
        host: options.nats_host.clone(),
        tls: secure.map(|secure| secure.tls().clone()),
        // The config is `<dir>/nats/nats.conf`, one folder down.
        authorization: secure
            .map(|secure| secure.authorization(1))
            .unwrap_or_default(),
        ..NatsOptions::default()
    })
    .await
    .context("starting nats-server")?;
    println!(
        "started nats-server at {} (data in {})",
        server.url(),
        server.dir().display()
    );
    let url = server.url();
    Ok((Some(server), url))
}

async fn nats_cluster(
    options: &StackOptions,
    secure: Option<&SecureBus>,
) -> anyhow::Result<(Option<NatsCluster>, String)> {
    if options
        .nats_host
        .as_deref()
        .is_some_and(|host| !taskyard_devstack::nats::is_loopback(host))
    {
        bail!(
            "a --cluster stack runs its three servers on this machine's loopback; to serve other \
             hosts, run the servers of nats/cluster/ on their own hosts"
        );
    }
    if taskyard_devstack::nats_reachable(&options.nats_url).await {
        println!("using the NATS cluster at {}", options.nats_url);
        return Ok((None, options.nats_url.clone()));
    }
    let ports = match options.cluster_ports {
        Some(ports) => ports,
        None => cluster_ports(&options.nats_url)?,
    };
    let dir = options.dir.join("nats-cluster");
    let cluster = NatsCluster::start(NatsClusterOptions {
        dir: dir.clone(),
        ports: Some(ports),
        sync_always: options.nats_sync_always,
        tls: secure.map(|secure| secure.tls().clone()),
        // Configs are `<dir>/nats-cluster/nN/nats.conf`, two folders down.
        authorization: secure
            .map(|secure| secure.authorization(2))
            .unwrap_or_default(),
        // The cluster's readiness probe asks `$JS.API.INFO`, which the
        // orchestrator's identity may.
        probe_nkey: secure
            .and_then(|secure| secure.seed("orchestrator").ok())
            .map(Path::to_path_buf),
    })
    .await
    .context("starting a three-server NATS cluster")?;
    println!(
        "started a {CLUSTER_SIZE}-server NATS cluster (JetStream, streams replicated {CLUSTER_SIZE} times{}), data in {}:",
        if options.nats_sync_always {
            ", sync_interval: always"
        } else {
            ""
        },
        dir.display()
    );
    for index in 0..CLUSTER_SIZE {
        println!(
            "  {}  {}  (routes on 127.0.0.1:{})",
            cluster.server_name(index)?,
            cluster.url(index)?,
            ports.cluster[index]
        );
    }
    let url = cluster.urls();
    Ok((Some(cluster), url))
}

/// The ports of a cluster to start on this machine for `url`: the three
/// URLs' ports when it lists three, else its port and the next two; each
/// server routes on its client port + 2000 (4222 → 6222, as nats/cluster/).
pub fn cluster_ports(url: &str) -> anyhow::Result<ClusterPorts> {
    let urls: Vec<&str> = url.split(',').map(str::trim).collect();
    let client: [u16; CLUSTER_SIZE] = match urls.as_slice() {
        [one] => {
            let port = local_port(one, "nats://", 4222)?;
            let last = port
                .checked_add(2)
                .with_context(|| format!("port {port} is too high for three servers"))?;
            [port, port + 1, last]
        }
        [a, b, c] => [
            local_port(a, "nats://", 4222)?,
            local_port(b, "nats://", 4222)?,
            local_port(c, "nats://", 4222)?,
        ],
        _ => bail!(
            "a cluster on this machine has {CLUSTER_SIZE} servers; {url} lists {}",
            urls.len()
        ),
    };
    let mut cluster = [0; CLUSTER_SIZE];
    for (route, port) in cluster.iter_mut().zip(client) {
        *route = port
            .checked_add(2000)
            .with_context(|| format!("no route port for client port {port}"))?;
    }
    Ok(ClusterPorts { client, cluster })
}

/// The Postgres of the stack, its URL and the CA its certificate is
/// checked against. One started here on a secure stack serves TLS with the
/// stack's certificate, and is asked for it (`sslmode=require`).
async fn postgres(
    options: &StackOptions,
    certificates: Option<&TlsFiles>,
) -> anyhow::Result<(Option<Postgres>, String, Option<PathBuf>)> {
    let url = &options.database_url;
    let ca = options.database_ca_file.clone();
    // A Postgres elsewhere may insist on TLS (or the URL may): ask as the
    // services will, by the URL's sslmode and with the same CA.
    let tls = DbTls::from_ca_file(options.database_ca_file.clone()).connector_for(url)?;
    if taskyard_devstack::postgres_reachable_with(url, tls.clone()).await {
        println!("using Postgres at {}", redact(url));
        return Ok((None, url.clone(), ca));
    }
    let config: tokio_postgres::Config = url.parse().context("reading the database URL")?;
    let database = config.get_dbname().unwrap_or("taskyard").to_owned();
    let admin_url = with_database(url, "postgres");
    if taskyard_devstack::postgres_reachable_with(&admin_url, tls.clone()).await {
        taskyard_devstack::create_database_at_with(&admin_url, &database, tls).await?;
        println!(
            "created database {database} on the Postgres at {}",
            redact(url)
        );
        return Ok((None, url.clone(), ca));
    }
    let port = local_port(url, "postgres://", 5432)?;
    let server = Postgres::start(PostgresOptions {
        dir: options.dir.join("postgres"),
        port: Some(port),
        fast_unsafe: options.fast_postgres,
        tls: certificates.cloned(),
    })
    .await
    .context("starting Postgres")?;
    let url = server.create_database(&database).await?;
    let (url, ca) = match certificates {
        Some(certificates) => (with_sslmode_require(&url), Some(certificates.ca.clone())),
        None => (url, ca),
    };
    println!(
        "started Postgres at {url} (data in {}{})",
        server.data_dir().display(),
        if certificates.is_some() {
            ", TLS with the stack's certificate"
        } else {
            ""
        }
    );
    Ok((Some(server), url, ca))
}

/// `url` asking for TLS, verified (see `taskyard_store::DbTls`).
fn with_sslmode_require(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}sslmode=require")
}

/// The port of a URL on this machine; a server elsewhere that does not answer
/// is an error, not something to start here.
fn local_port(url: &str, scheme: &str, default: u16) -> anyhow::Result<u16> {
    let rest = url.strip_prefix(scheme).unwrap_or(url);
    let rest = rest.split(',').next().unwrap_or(rest);
    let host_port = rest.rsplit('@').next().unwrap_or(rest);
    let host_port = host_port.split('/').next().unwrap_or(host_port);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse().with_context(|| format!("bad port in {url}"))?,
        ),
        None => (host_port, default),
    };
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        bail!(
            "cannot reach {} and it is not on this machine, so it cannot be started here",
            redact(url)
        );
    }
    Ok(port)
}

pub fn with_database(url: &str, database: &str) -> String {
    match url.rsplit_once('/') {
        Some((base, tail)) if !base.ends_with('/') => {
            let query = tail
                .split_once('?')
                .map(|(_, q)| format!("?{q}"))
                .unwrap_or_default();
            format!("{base}/{database}{query}")
        }
        _ => format!("{url}/{database}"),
    }
}

/// A URL without its password, for printing.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A workspace binary next to the running `taskyard`.
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the taskyard executable")?;
    let dir = exe
        .parent()
        .context("the taskyard executable has no folder")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} is missing; build every service with `cargo build --release --bins` (or `make up`)",
            path.display()
        );
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_databases_come_from_urls() {
        assert_eq!(
            local_port("nats://127.0.0.1:4333", "nats://", 4222).ok(),
            Some(4333)
        );
        assert_eq!(
            local_port("nats://localhost", "nats://", 4222).ok(),
            Some(4222)
        );
        assert!(local_port("nats://nats.example.com:4222", "nats://", 4222).is_err());
        let defaults = cluster_ports("nats://127.0.0.1:4222").expect("three ports");
        assert_eq!(defaults.client, [4222, 4223, 4224]);
        assert_eq!(defaults.cluster, [6222, 6223, 6224]);
        let listed =
            cluster_ports("nats://127.0.0.1:5000,nats://localhost:5010, nats://127.0.0.1:5020")
                .expect("three ports");
        assert_eq!(listed.client, [5000, 5010, 5020]);
        assert!(cluster_ports("nats://127.0.0.1:1,nats://127.0.0.1:2").is_err());
        assert!(cluster_ports("nats://nats.example.com:4222").is_err());
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/taskyard", "postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
        assert_eq!(
            redact("postgres://me:secret@127.0.0.1/db"),
            "postgres://me:***@127.0.0.1/db"
        );
    }
}
