//! The server configs shipped in `nats/cluster/` run as they are, with
//! only their host-specific paths and ports swapped for a test folder's:
//! three servers form one JetStream cluster over TLS routes, admit a
//! credential from the rendered accounts with the CA, and refuse a client
//! without a credential or without the CA.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use taskyard_runtime::access::{self, Kind};
use taskyard_testkit::wait_until;

/// The three shipped configs.
const CONFIGS: [&str; 3] = [
    include_str!("../../nats/cluster/n1.conf"),
    include_str!("../../nats/cluster/n2.conf"),
    include_str!("../../nats/cluster/n3.conf"),
];

/// Kills the servers when the test ends, however it ends.
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::test]
async fn the_shipped_cluster_configs_run_with_credentials_and_tls() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let tls = taskyard_devstack::ensure_certificates(&dir.path().join("tls"), &[])?;
    let admin = access::generate("ops", Kind::Admin)?;
    let accounts = access::render_accounts(std::slice::from_ref(&admin.identity));
    let seed = dir.path().join("ops.nk");
    std::fs::write(&seed, &admin.seed)?;

    // Every port the configs name, mapped to a free one.
    let mut ports = Vec::new();
    for port in [4222, 4223, 4224, 6222, 6223, 6224, 8222, 8223, 8224] {
        ports.push((port, free_port()?));
    }
    let binary = taskyard_devstack::nats_server_binary()?;
    let mut servers = Servers(Vec::new());
    for (index, shipped) in CONFIGS.iter().enumerate() {
        assert!(shipped.contains("include \"auth.conf\""), "{shipped}");
        assert!(shipped.contains("verify: true"), "{shipped}");
        let folder = dir.path().join(format!("n{}", index + 1));
        std::fs::create_dir_all(&folder)?;
        let mut conf = shipped
            .replace(
                "/etc/taskyard/tls",
                &tls.ca.parent().unwrap_or(Path::new("/")).to_string_lossy(),
            )
            .replace("/var/lib/taskyard", &dir.path().to_string_lossy());
        for (shipped_port, port) in &ports {
            conf = conf.replace(&format!(":{shipped_port}"), &format!(":{port}"));
        }
        std::fs::write(folder.join("nats.conf"), conf)?;
        std::fs::write(folder.join("auth.conf"), &accounts)?;
        let log = std::fs::File::create(folder.join("nats.log"))?;
        servers.0.push(
            Command::new(&binary)
                .arg("-c")
                .arg(folder.join("nats.conf"))
                .current_dir(&folder)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?,
        );
    }
    let urls: Vec<String> = ports[..3]
        .iter()
        .map(|(_, port)| format!("nats://127.0.0.1:{port}"))
        .collect();
    let security = taskyard_runtime::nats::NatsSecurity {
        nkey_file: Some(seed.clone()),
        ca_file: Some(tls.ca.clone()),
        ..Default::default()
    };

    // The cluster is formed when JetStream answers through each server.
    let logs = || -> String {
        (1..=3)
            .map(|n| {
                std::fs::read_to_string(dir.path().join(format!("n{n}/nats.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    for one in &urls {
        let formed = wait_until(
            "JetStream through each server",
            Duration::from_secs(60),
            || async {
                let (addrs, options) = security.connect_options(one)?;
                let Ok(client) = options.connect(addrs).await else {
                    return Ok(None);
                };
                let answer = tokio::time::timeout(
                    Duration::from_secs(2),
                    client.request("$JS.API.INFO", "".into()),
                )
                .await;
                Ok(match answer {
                    Ok(Ok(reply)) => {
                        let info: serde_json::Value = serde_json::from_slice(&reply.payload)?;
                        info.get("error").is_none().then_some(())
                    }
                    _ => None,
                })
            },
        )
        .await;
        if let Err(err) = formed {
            panic!("{err:#}\n{}", logs());
        }
    }
    let log = logs();
    assert!(!log.contains("TLS route handshake error"), "{log}");

    // No credential: refused, CA or not. No CA: the certificate is not trusted.
    let anonymous = taskyard_runtime::nats::NatsSecurity {
        ca_file: Some(tls.ca.clone()),
        ..Default::default()
    };
    let (addrs, options) = anonymous.connect_options(&urls[0])?;
    let err = options
        .connect(addrs)
        .await
        .expect_err("a client without a credential got in");
    assert!(
        err.to_string()
            .to_lowercase()
            .contains("authorization violation"),
        "{err}"
    );
    let untrusting = tokio::time::timeout(
        Duration::from_secs(10),
        async_nats::ConnectOptions::with_nkey(admin.seed.clone()).connect(urls[0].as_str()),
    )
    .await?;
    assert!(untrusting.is_err(), "a client without the CA got in");
    Ok(())
}
