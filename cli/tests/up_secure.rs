//! `taskyard up --secure`, run as a person would: the whole stack comes up
//! with its bus on credentials and TLS and its own Postgres on TLS, a task
//! submitted with the printed credential and CA runs, a client without them
//! is turned away, and SIGTERM stops it all.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use taskyard_testkit::wait_until;

/// How long the stack may take to come up (a debug build on 2 cores).
const UP: Duration = Duration::from_secs(120);

/// Stops `taskyard up` as ctrl-c would (SIGTERM: it stops its services
/// and servers) when the test ends, however it ends: a SIGKILL would leave
/// its children running.
struct Stop(i32);

impl Drop for Stop {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0);
        if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_err() {
            return;
        }
        // Gone, or a zombie (its reaper is a task of the runtime that is
        // ending): either way its children are stopped.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            match std::fs::read_to_string(format!("/proc/{}/stat", self.0)) {
                Ok(stat) if !stat.contains(") Z ") => {}
                _ => return,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

async fn taskyard(nats_url: &str, env: &[(&str, &Path)], args: &[&str]) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskyard"));
    command
        .args(["--nats-url", nats_url])
        .args(args)
        .env_remove("TASKYARD_NATS_NKEY_FILE")
        .env_remove("TASKYARD_NATS_CA_FILE")
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the CLI finishes within a minute")
        .expect("the CLI runs")
}

#[tokio::test]
async fn up_secure_runs_every_process_with_its_own_credential_over_tls() {
    // Everything is `up`'s own: nothing answers on these ports yet.
    let dir = tempfile::tempdir().expect("a folder for the stack");
    // Postgres runs as the `postgres` user, which must reach its folder.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("open the folder to the postgres user");
    let printed = || std::fs::read_to_string(dir.path().join("up.out")).unwrap_or_default();
    // The ports were free a moment ago; another test may take one before
    // `up` binds it (up then exits), or start its server there first (up
    // then says it uses it). Only that is worth another try, on other ports.
    let mut attempt = 1;
    let (database_url, nats_url, pid, exited, _stop) = loop {
        let database_url = format!("postgres://postgres@127.0.0.1:{}/taskyard", free_port());
        let nats_url = format!("nats://127.0.0.1:{}", free_port());
        let http = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("up.out")).expect("up's output file");
        let mut up = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskyard"))
            .args(["--nats-url", &nats_url, "up", "--secure", "--workers", "1"])
            .args(["--metrics-port", "0", "--http-addr", &http])
            .arg("--dir")
            .arg(dir.path())
            .args(["--database-url", &database_url])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a second handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("taskyard up starts");
        let pid = up.id().expect("up's pid") as i32;
        let stop = Stop(pid);
        // One task owns the child and reports its exit, whenever it comes.
        let mut exited = tokio::spawn(async move { up.wait().await });
        tokio::select! {
            ready = wait_until("`taskyard up --secure` to say it is up", UP, || async {
                Ok(printed().contains("Taskyard is up.").then_some(()))
            }) => match ready {
                Ok(())
                    if attempt < 3
                        && (printed().contains("using Postgres at")
                            || printed().contains("using NATS at")) =>
                {
                    // Someone else's server on a port picked for up's own.
                    drop(stop);
                    attempt += 1;
                }
                Ok(()) => break (database_url, nats_url, pid, exited, stop),
                Err(err) => panic!("{err:#}:\n{}", printed()),
            },
            status = &mut exited => {
                let out = printed();
                assert!(
                    attempt < 3 && out.contains("already in use"),
                    "up exited early ({status:?}):\n{out}"
                );
                attempt += 1;
            }
        }
    };

    let out = printed();
    let (nkey, ca) = (
        dir.path().join("creds/cli.nk"),
        dir.path().join("tls/ca.pem"),
    );
    assert!(out.contains("bus:      credentials and TLS"), "{out}");
    assert!(
        out.contains(&format!(
            "export TASKYARD_NATS_NKEY_FILE={} TASKYARD_NATS_CA_FILE={}",
            nkey.display(),
            ca.display()
        )),
        "{out}"
    );
    let conf = std::fs::read_to_string(dir.path().join("nats/nats.conf")).expect("nats.conf");
    assert!(conf.contains("tls {"), "{conf}");
    assert!(conf.contains("include \"../creds/auth.conf\""), "{conf}");
    for file in [
        "creds/cli.nk",
        "creds/orchestrator.nk",
        "creds/worker-local-1.nk",
    ] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap_or_else(|err| panic!("{file}: {err}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    // As the person at the keyboard, with what `up` printed.
    let env = [
        ("TASKYARD_NATS_NKEY_FILE", nkey.as_path()),
        ("TASKYARD_NATS_CA_FILE", ca.as_path()),
    ];
    let submitted = taskyard(&nats_url, &env, &["submit", "--kind", "noop", "--wait"]).await;
    assert_eq!(
        submitted.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}\nup: {}",
        String::from_utf8_lossy(&submitted.stdout),
        String::from_utf8_lossy(&submitted.stderr),
        printed()
    );
    let id = String::from_utf8_lossy(&submitted.stdout).trim().to_owned();
    assert_eq!(id.len(), 36, "one task id: {id}");

    // Without the CA the server's certificate is not trusted; without a
    // credential the server does not let it in.
    let untrusting = taskyard(
        &nats_url,
        &[("TASKYARD_NATS_NKEY_FILE", nkey.as_path())],
        &["submit", "--kind", "noop"],
    )
    .await;
    assert_eq!(untrusting.status.code(), Some(1));
    let anonymous = taskyard(
        &nats_url,
        &[("TASKYARD_NATS_CA_FILE", ca.as_path())],
        &["submit", "--kind", "noop"],
    )
    .await;
    assert_eq!(anonymous.status.code(), Some(1));
    let err = String::from_utf8_lossy(&anonymous.stderr).to_lowercase();
    assert!(err.contains("authorization violation"), "{err}");
    let (db, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .expect("the stack's database, from this machine");
    tokio::spawn(connection);
    let tasks: i64 = db
        .query_one("SELECT count(*) FROM tasks", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(tasks, 1, "only the credentialed submission made a task");
    let live: i64 = db
        .query_one(
            "SELECT count(*) FROM nats_credentials WHERE revoked_at IS NULL",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    // Five services, one worker, one operator.
    assert_eq!(live, 7);
    // Every service talks to the Postgres `up` started over TLS.
    let sessions = db
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = 'taskyard' AND a.pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("sessions");
    let (encrypted, clear): (i64, i64) = (sessions.get(0), sessions.get(1));
    assert!(encrypted >= 5, "{encrypted} sessions over TLS");
    assert_eq!(clear, 0, "a service reached Postgres in the clear");
    assert!(out.contains("sslmode=require"), "{out}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM to up");
    let status = tokio::time::timeout(Duration::from_secs(60), exited)
        .await
        .expect("up stops within a minute")
        .expect("the waiting task")
        .expect("up's exit status");
    assert!(status.success(), "{status}:\n{}", printed());
}
