//! A [`TestStack`] whose services run on a three-server JetStream cluster
//! on loopback, the shape production runs in, so that a test can kill the
//! server a stream leads on and watch the rest carry on.

use anyhow::Context;
use taskyard_devstack::nats_cluster::CLUSTER_SIZE;
use taskyard_devstack::{NatsCluster, NatsClusterOptions};

use crate::TestStack;

/// `TASKYARD_STREAM_REPLICAS` for services on the cluster: every stream on
/// every server, so any one may go.
pub(crate) fn replicas_env() -> (String, String) {
    (
        "TASKYARD_STREAM_REPLICAS".to_owned(),
        CLUSTER_SIZE.to_string(),
    )
}

impl TestStack {
    /// Like [`TestStack::start`], but the services get a three-server
    /// cluster: `nats_url` lists its three servers (comma-separated) and
    /// [`Self::service_env`] asks for streams replicated on all three.
    ///
    /// The servers keep their folders in the test folder (`n1/`, `n2/`,
    /// `n3/`), so their logs are dumped with the others'. Every write is
    /// fsynced (`sync_interval: always`), as in production.
    pub async fn start_cluster() -> anyhow::Result<TestStack> {
        let mut stack = TestStack::start().await?;
        let cluster = NatsCluster::start(NatsClusterOptions {
            dir: stack.dir().to_path_buf(),
            ports: None,
            sync_always: true,
            authorization: stack.auth_include(),
            tls: stack.tls().cloned(),
            probe_nkey: stack.nats_security().nkey_file,
        })
        .await
        .context("starting a three-server NATS cluster")?;
        stack.nats_url = cluster.urls();
        stack.nats_cluster = Some(cluster);
        Ok(stack)
    }

    /// The cluster of a stack started with [`Self::start_cluster`].
    pub fn cluster(&self) -> anyhow::Result<&NatsCluster> {
        self.nats_cluster
            .as_ref()
            .context("this stack runs on one NATS server, not a cluster")
    }

    /// The cluster of a stack started with [`Self::start_cluster`], to kill
    /// and restart its servers.
    pub fn cluster_mut(&mut self) -> anyhow::Result<&mut NatsCluster> {
        self.nats_cluster
            .as_mut()
            .context("this stack runs on one NATS server, not a cluster")
    }
}
