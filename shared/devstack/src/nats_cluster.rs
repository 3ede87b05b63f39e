//! Three `nats-server`s on 127.0.0.1 that form one JetStream cluster.
//!
//! Each server is a [`NatsServer`] of its own (config, log and store in its
//! own folder) whose config adds a `server_name` and routes to the other two.
//! A cluster is ready when every server answers a JetStream API request,
//! which needs an elected meta leader that the server reaches over its
//! routes. One server can be killed (SIGKILL, as a crash would) and started
//! again on the same ports and store, to test what a failover does.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::DevstackError;
use crate::nats::{NatsOptions, NatsServer};
use crate::net::free_port;
use crate::proc;

/// Servers in a cluster: the smallest count that survives losing one.
pub const CLUSTER_SIZE: usize = 3;
/// The `cluster.name` every server is given.
pub const CLUSTER_NAME: &str = "taskyard";
/// How long a (re)started cluster may take to elect its meta leader.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: u32 = 3;
/// The longest one JetStream API request may take before it counts as refused.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The client and route ports of the three servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterPorts {
    /// Where clients connect, per server.
    pub client: [u16; CLUSTER_SIZE],
    /// Where the servers route to each other, per server.
    pub cluster: [u16; CLUSTER_SIZE],
}

impl ClusterPorts {
    /// Six distinct ports that were free a moment ago.
    pub fn free() -> Result<ClusterPorts, DevstackError> {
        let mut ports: Vec<u16> = Vec::with_capacity(2 * CLUSTER_SIZE);
        while ports.len() < 2 * CLUSTER_SIZE {
            // The OS may hand out a port again once its probe socket is closed.
            let port = free_port()?;
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        Ok(ClusterPorts {
            client: [ports[0], ports[1], ports[2]],
            cluster: [ports[3], ports[4], ports[5]],
        })
    }
}

/// How to start a [`NatsCluster`].
#[derive(Debug, Clone, Default)]
pub struct NatsClusterOptions {
    /// Holds one folder per server, named after it (`n1/`, `n2/`, `n3/`),
    /// each with the server's `nats.conf`, `nats.log` and `jetstream/` store.
    /// Reusing it keeps the streams.
    pub dir: PathBuf,
    /// `None` picks free ports (and retries on others if one was taken in
    /// the meantime).
    pub ports: Option<ClusterPorts>,
    /// fsync every JetStream write (`sync_interval: always`) on every server.
    pub sync_always: bool,
    /// Config that says who may connect (an `include` of the accounts
    /// rendered by `taskyard creds`), on every server; empty lets anyone in.
    pub authorization: String,
    /// Serve clients, and route between the servers, over TLS with these
    /// certificates (routes verify each other's).
    pub tls: Option<crate::TlsFiles>,
    /// The nkey seed file the cluster's own readiness and leader probes
    /// connect with, when `authorization` asks for credentials: an identity
    /// that may call the JetStream API (`$JS.API.INFO`, `STREAM.INFO`).
    pub probe_nkey: Option<PathBuf>,
}

/// How the cluster's own probes connect.
#[derive(Debug, Clone, Default)]
struct Probe {
    seed: Option<String>,
    ca: Option<PathBuf>,
}

impl Probe {
    fn of(opts: &NatsClusterOptions) -> Result<Probe, DevstackError> {
        let seed = match &opts.probe_nkey {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(DevstackError::io(format!("reading {}", path.display())))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        Ok(Probe {
            seed,
            ca: opts.tls.as_ref().map(|tls| tls.ca.clone()),
        })
    }

    fn options(&self) -> async_nats::ConnectOptions {
        crate::tls::install_provider();
        let mut options = async_nats::ConnectOptions::new()
            .name("taskyard-devstack")
            .connection_timeout(REQUEST_TIMEOUT);
        if let Some(seed) = &self.seed {
            options = options.nkey(seed.clone());
        }
        if let Some(ca) = &self.ca {
            options = options.require_tls(true).add_root_certificates(ca.clone());
        }
        options
    }
}

#[derive(Debug)]
struct Node {
    name: String,
    options: NatsOptions,
    server: Option<NatsServer>,
}

/// Three running `nats-server`s in one JetStream cluster; every one still
/// running is killed (SIGKILL) and reaped when this is dropped.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<Node>,
    ports: ClusterPorts,
    dir: PathBuf,
    probe: Probe,
    tls: bool,
}

impl NatsCluster {
    /// Starts the three servers and waits until every one of them serves
    /// the JetStream API.
    pub async fn start(opts: NatsClusterOptions) -> Result<NatsCluster, DevstackError> {
        let dir = proc::absolute(&opts.dir)?;
        proc::create_dir(&dir)?;
        let mut attempt = 1;
        loop {
            let ports = match opts.ports {
                Some(ports) => ports,
                None => ClusterPorts::free()?,
            };
            match start_once(&dir, ports, &opts).await {
                Err(e)
                    if opts.ports.is_none()
                        && attempt < PORT_ATTEMPTS
                        && e.early_exit_tail().is_some_and(proc::port_conflict) =>
                {
                    tracing::debug!("a nats cluster port was taken meanwhile; retrying on others");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// The client URLs of all three servers, comma-separated, as
    /// `TASKYARD_NATS_URL` takes them. Includes servers that are down: a
    /// client given the list finds the ones that are up.
    pub fn urls(&self) -> String {
        self.ports
            .client
            .iter()
            .map(|port| client_url(*port, self.tls))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client URL of server `index` (0, 1 or 2).
    pub fn url(&self, index: usize) -> Result<String, DevstackError> {
        self.node(index)?;
        Ok(client_url(self.ports.client[index], self.tls))
    }

    /// The ports the servers use.
    pub fn ports(&self) -> ClusterPorts {
        self.ports
    }

    /// The folder given in [`NatsClusterOptions::dir`], made absolute.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `server_name` of server `index`: `n1`, `n2` or `n3`.
    pub fn server_name(&self, index: usize) -> Result<&str, DevstackError> {
        Ok(&self.node(index)?.name)
    }

    /// The index of the server called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    /// The running process of server `index`; `None` while it is killed.
    pub fn server(&self, index: usize) -> Option<&NatsServer> {
        self.nodes.get(index).and_then(|node| node.server.as_ref())
    }

    /// Whether server `index` runs.
    pub fn is_running(&self, index: usize) -> bool {
        self.server(index).is_some()
    }

    /// The servers' log files, running or not.
    pub fn log_paths(&self) -> Vec<PathBuf> {
        self.nodes
            .iter()
            .map(|node| node.options.dir.join("nats.log"))
            .collect()
    }

    /// Kills server `index` with SIGKILL, as a crash would, and reaps it.
    /// Killing a server that is down already does nothing.
    pub fn kill(&mut self, index: usize) -> Result<(), DevstackError> {
        let node = self.node_mut(index)?;
        // Dropping a NatsServer SIGKILLs and reaps it.
        drop(node.server.take());
        tracing::debug!(server = %node.name, "nats server killed");
        Ok(())
    }

    /// Starts server `index` again, on its ports and store, and waits until
    /// it serves the JetStream API (which needs a majority of the cluster up).
    /// Restarting a running server does nothing.
    pub async fn restart(&mut self, index: usize) -> Result<(), DevstackError> {
        let node = self.node_mut(index)?;
        if node.server.is_some() {
            return Ok(());
        }
        node.server = Some(NatsServer::start(node.options.clone()).await?);
        let url = client_url(self.ports.client[index], self.tls);
        wait_serving(&[url], &self.probe, FORM_TIMEOUT, &self.log_paths()).await
    }

    /// The `server_name` of the server that leads `stream` now; `None` while
    /// the stream has no leader.
    pub async fn stream_leader(&self, stream: &str) -> Result<Option<String>, DevstackError> {
        let subject = format!("$JS.API.STREAM.INFO.{stream}");
        let info = js_request(&self.running_urls(), &self.probe, &subject).await?;
        Ok(info["cluster"]["leader"].as_str().map(str::to_owned))
    }

    /// Waits until every running server serves the JetStream API.
    pub async fn wait_formed(&self, timeout: Duration) -> Result<(), DevstackError> {
        wait_serving(
            &self.running_urls(),
            &self.probe,
            timeout,
            &self.log_paths(),
        )
        .await
    }

    /// Stops every running server gracefully (SIGTERM, then SIGKILL after 5 s).
    pub async fn stop(mut self) {
        for node in &mut self.nodes {
            if let Some(server) = node.server.take() {
                server.stop().await;
            }
        }
    }

    fn running_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .zip(self.ports.client)
            .filter(|(node, _)| node.server.is_some())
            .map(|(_, port)| client_url(port, self.tls))
            .collect()
    }

    fn node(&self, index: usize) -> Result<&Node, DevstackError> {
        let size = self.nodes.len();
        self.nodes
            .get(index)
            .ok_or(DevstackError::NoSuchServer { index, size })
    }

    fn node_mut(&mut self, index: usize) -> Result<&mut Node, DevstackError> {
        let size = self.nodes.len();
        self.nodes
            .get_mut(index)
            .ok_or(DevstackError::NoSuchServer { index, size })
    }
}

async fn start_once(
    dir: &Path,
    ports: ClusterPorts,
    opts: &NatsClusterOptions,
) -> Result<NatsCluster, DevstackError> {
    let mut cluster = NatsCluster {
        nodes: (0..CLUSTER_SIZE)
            .map(|index| {
                let name = format!("n{}", index + 1);
                Node {
                    options: NatsOptions {
                        dir: dir.join(&name),
                        port: Some(ports.client[index]),
                        sync_always: opts.sync_always,
                        tls: opts.tls.clone(),
                        authorization: opts.authorization.clone(),
                        extra_config: node_config(
                            &name,
                            ports.cluster[index],
                            &ports.cluster,
                            opts.tls.as_ref(),
                        ),
                        ..NatsOptions::default()
                    },
                    name,
                    server: None,
                }
            })
            .collect(),
        ports,
        dir: dir.to_path_buf(),
        probe: Probe::of(opts)?,
        tls: opts.tls.is_some(),
    };
    // One at a time: each waits only for its own client port, and the first
    // two already make the majority that elects the meta leader.
    for node in &mut cluster.nodes {
        // On an error, `cluster` drops and kills the servers started so far.
        node.server = Some(NatsServer::start(node.options.clone()).await?);
    }
    cluster.wait_formed(FORM_TIMEOUT).await?;
    tracing::debug!(urls = %cluster.urls(), "nats cluster formed");
    Ok(cluster)
}

fn node_config(
    name: &str,
    cluster_port: u16,
    all_cluster_ports: &[u16],
    tls: Option<&crate::TlsFiles>,
) -> String {
    // A route to itself is ignored by the server, so every node gets the same list.
    let routes: String = all_cluster_ports
        .iter()
        .map(|port| format!("    \"nats-route://127.0.0.1:{port}\"\n"))
        .collect();
    format!(
        "server_name: {name}\n\
         cluster {{\n  name: {CLUSTER_NAME}\n  listen: \"127.0.0.1:{cluster_port}\"\n  routes: [\n{routes}  ]\n{tls}}}\n",
        // Routes present the servers' certificate to each other and verify
        // the other's, so nothing unknown joins the cluster.
        tls = tls
            .map(|files| format!("  {}\n", files.nats_block(true)))
            .unwrap_or_default(),
    )
}

fn client_url(port: u16, tls: bool) -> String {
    let scheme = if tls { "tls" } else { "nats" };
    format!("{scheme}://127.0.0.1:{port}")
}

/// Waits until a JetStream API request through each of `urls` on its own is
/// answered without error.
async fn wait_serving(
    urls: &[String],
    probe: &Probe,
    timeout: Duration,
    logs: &[PathBuf],
) -> Result<(), DevstackError> {
    let deadline = Instant::now() + timeout;
    for url in urls {
        loop {
            let last = match js_request(std::slice::from_ref(url), probe, "$JS.API.INFO").await {
                Ok(_) => break,
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(DevstackError::ClusterNotFormed {
                    timeout,
                    last,
                    logs: logs.to_vec(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// One JetStream API request through any of `urls`; its JSON answer, or the
/// server's refusal as an error.
async fn js_request(
    urls: &[String],
    probe: &Probe,
    subject: &str,
) -> Result<serde_json::Value, DevstackError> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| DevstackError::Nats {
        context: format!("{subject} through {}", urls.join(",")),
        source,
    };
    if urls.is_empty() {
        return Err(failed("no server of the cluster is running".into()));
    }
    let addrs = urls
        .iter()
        .map(|url| url.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(e.into()))?;
    let client = probe
        .options()
        .connect(addrs)
        .await
        .map_err(|e| failed(e.into()))?;
    let reply = tokio::time::timeout(
        REQUEST_TIMEOUT,
        client.request(subject.to_owned(), "".into()),
    )
    .await
    .map_err(|_| failed(format!("no answer within {REQUEST_TIMEOUT:?}").into()))?
    .map_err(|e| failed(e.into()))?;
    let answer: serde_json::Value =
        serde_json::from_slice(&reply.payload).map_err(|e| failed(e.into()))?;
    if let Some(error) = answer.get("error") {
        let description = error["description"].as_str().unwrap_or("refused");
        return Err(failed(
            format!("{description} (code {})", error["code"]).into(),
        ));
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forms_survives_a_kill_and_takes_the_server_back() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut cluster = NatsCluster::start(NatsClusterOptions {
            dir: tmp.path().to_path_buf(),
            ..NatsClusterOptions::default()
        })
        .await
        .expect("the cluster forms");
        let urls = cluster.urls();
        assert_eq!(urls.split(',').count(), CLUSTER_SIZE, "{urls}");
        for index in 0..CLUSTER_SIZE {
            let conf =
                std::fs::read_to_string(tmp.path().join(format!("n{}/nats.conf", index + 1)))
                    .expect("config");
            assert!(
                conf.contains(&format!("server_name: n{}", index + 1)),
                "{conf}"
            );
            assert!(conf.contains("name: taskyard"), "{conf}");
        }

        let missing = cluster
            .stream_leader("NO_SUCH_STREAM")
            .await
            .expect_err("no such stream");
        assert!(missing.to_string().contains("not found"), "{missing}");

        let addrs: Vec<async_nats::ServerAddr> = urls
            .split(',')
            .map(|url| url.parse().expect("a server address"))
            .collect();
        let client = async_nats::connect(addrs).await.expect("connect");
        let js = async_nats::jetstream::new(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "R3".to_owned(),
            subjects: vec!["r3".to_owned()],
            num_replicas: CLUSTER_SIZE,
            ..Default::default()
        })
        .await
        .expect("an R3 stream");
        let leader = cluster
            .stream_leader("R3")
            .await
            .expect("stream info")
            .expect("a leader");
        let index = cluster.index_of(&leader).expect("a server of ours");

        cluster.kill(index).expect("the leader exists");
        assert!(!cluster.is_running(index));
        assert!(!crate::nats_reachable(&cluster.url(index).expect("url")).await);
        let deadline = Instant::now() + FORM_TIMEOUT;
        let successor = loop {
            if let Ok(Some(now)) = cluster.stream_leader("R3").await
                && now != leader
            {
                break now;
            }
            assert!(Instant::now() < deadline, "no new leader for R3");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_ne!(successor, leader);
        cluster
            .restart(index)
            .await
            .expect("the old leader comes back");
        assert!(cluster.is_running(index));
        assert!(matches!(
            cluster.kill(CLUSTER_SIZE),
            Err(DevstackError::NoSuchServer { .. })
        ));
    }
}
