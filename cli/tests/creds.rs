//! `taskyard creds create | list | revoke | render` against a real Postgres,
//! and the config it renders enforced by a real nats-server: a credential
//! connects, and once revoked it is refused at its next connect.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions};
use support::{stderr, stdout};
use taskyard_devstack::{NatsOptions, NatsServer};
use taskyard_store::Store;
use taskyard_testkit::{TestStack, wait_until};

/// A database to record credentials in, and a folder to run in: the
/// command's default paths (`.taskyard/...`) land there, not in the
/// checkout.
struct Env {
    stack: TestStack,
    store: Store,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Env {
        let stack = TestStack::start().await.expect("start the test stack");
        let store = Store::connect_and_migrate(&stack.database_url, 2)
            .await
            .expect("connect and migrate");
        let dir = tempfile::tempdir().expect("a folder to run in");
        Env { stack, store, dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    async fn taskyard(&self, args: &[&str]) -> Output {
        let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskyard"))
            .args(args)
            .current_dir(self.dir.path())
            .env("TASKYARD_DATABASE_URL", &self.stack.database_url)
            .env_remove("TASKYARD_NATS_NKEY_FILE")
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("taskyard finishes within a minute")
            .expect("run taskyard")
    }

    /// The names in the table, revoked ones too, and which are revoked.
    async fn rows(&self) -> Vec<(String, bool)> {
        self.store
            .list_credentials()
            .await
            .expect("list credentials")
            .into_iter()
            .map(|row| (row.name, row.revoked_at.is_some()))
            .collect()
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").mode() & 0o777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read")
}

#[tokio::test]
async fn credentials_are_created_listed_and_revoked_and_bad_input_changes_nothing() {
    let env = Env::start().await;
    let auth = env.path(".taskyard/creds/auth.conf");

    let created = env
        .taskyard(&[
            "creds", "create", "--name", "alice", "--kind", "operator", "--out", "alice.nk",
        ])
        .await;
    assert!(created.status.success(), "{}", stderr(&created));
    let seed_file = env.path("alice.nk");
    assert_eq!(mode(&seed_file), 0o600);
    let seed = read(&seed_file).trim().to_owned();
    assert!(seed.starts_with("SU"), "a user seed");
    assert!(!stdout(&created).contains(&seed), "the seed is not printed");
    assert!(!stderr(&created).contains(&seed), "the seed is not printed");
    // No stack runs in this folder: nothing to reload, and it says how.
    assert!(
        stdout(&created).contains("nats-server --signal reload="),
        "{}",
        stdout(&created)
    );
    assert_eq!(mode(&auth), 0o600, "the default auth file is private");
    let config = read(&auth);
    let alice_key = env.store.list_credentials().await.expect("list")[0]
        .public_key
        .clone();
    assert!(config.contains(&alice_key), "{config}");
    assert!(!config.contains(&seed));

    // Without --out, the seed is printed, once, and said to be.
    let printed = env
        .taskyard(&["creds", "create", "--name", "ci", "--kind", "submitter"])
        .await;
    assert!(printed.status.success(), "{}", stderr(&printed));
    let ci_seed = stdout(&printed)
        .lines()
        .find(|line| line.starts_with("SU"))
        .expect("the seed on stdout")
        .to_owned();
    assert!(
        stderr(&printed).contains("shown only this once"),
        "{}",
        stderr(&printed)
    );
    assert!(!read(&auth).contains(&ci_seed));

    let worker = env
        .taskyard(&[
            "creds",
            "create",
            "--name",
            "worker-n1",
            "--kind",
            "worker",
            "--node",
            "n1",
            "--task-subject",
            "pricing.>",
            "--out",
            "n1.nk",
        ])
        .await;
    assert!(worker.status.success(), "{}", stderr(&worker));

    let listed = env.taskyard(&["creds", "list"]).await;
    assert!(listed.status.success(), "{}", stderr(&listed));
    let text = stdout(&listed);
    for expected in [
        "NAME",
        "PUBLIC KEY",
        "REVOKED",
        "alice",
        "operator",
        &alice_key,
        "ci",
        "submitter",
        "worker-n1",
        "n1 (tasks: pricing.>)",
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
    assert!(!text.contains(&seed) && !text.contains(&ci_seed), "no seed");

    // Each bad input is named, and leaves the table and the files alone.
    let table = env.rows().await;
    let config = read(&auth);
    let bad: [(&[&str], &str); 8] = [
        (
            &["--name", "alice", "--kind", "admin", "--out", "dup.nk"],
            "a live credential named `alice` already exists",
        ),
        (
            &["--name", "w", "--kind", "wizard"],
            "`wizard` is not a kind of credential",
        ),
        (
            &["--name", "w", "--kind", "worker", "--out", "w.nk"],
            "a worker credential needs a node id",
        ),
        (
            &["--name", "w", "--kind", "worker", "--node", "a.b"],
            "`a.b` cannot be a node id",
        ),
        (
            &[
                "--name",
                "w",
                "--kind",
                "worker",
                "--node",
                "n2",
                "--task-subject",
                "taskyard.api.>",
            ],
            "`taskyard.api.>` is not a subject a task may be sent to",
        ),
        (
            &["--name", "s", "--kind", "service", "--service", "mailer"],
            "`mailer` is not a Taskyard service",
        ),
        (
            &["--name", "o", "--kind", "operator", "--node", "n1"],
            "--node is only for worker credentials",
        ),
        (
            &["--name", "bob", "--kind", "operator", "--out", "alice.nk"],
            "alice.nk already exists",
        ),
    ];
    for (args, message) in bad {
        let mut full = vec!["creds", "create"];
        full.extend_from_slice(args);
        let refused = env.taskyard(&full).await;
        assert!(!refused.status.success(), "{args:?} was accepted");
        assert!(
            stderr(&refused).contains(message),
            "{args:?}: expected `{message}` in\n{}",
            stderr(&refused)
        );
        assert_eq!(env.rows().await, table, "{args:?} changed the table");
        assert_eq!(read(&auth), config, "{args:?} changed the auth file");
    }
    assert!(
        !env.path("dup.nk").exists(),
        "a refused name leaves no file"
    );
    assert!(!env.path("w.nk").exists());
    assert_eq!(read(&seed_file).trim(), seed, "an existing seed is kept");

    let revoked = env.taskyard(&["creds", "revoke", "alice"]).await;
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(!read(&auth).contains(&alice_key), "alice left the config");
    assert!(
        env.rows().await.contains(&("alice".to_owned(), true)),
        "the row stays, revoked"
    );
    let twice = env.taskyard(&["creds", "revoke", "alice"]).await;
    assert!(!twice.status.success());
    assert!(
        stderr(&twice).contains("no live credential is named `alice`"),
        "{}",
        stderr(&twice)
    );
    // Once revoked, the name may be issued again, with a new key; the old
    // one stays out of the config.
    let again = env
        .taskyard(&[
            "creds",
            "create",
            "--name",
            "alice",
            "--kind",
            "operator",
            "--out",
            "alice2.nk",
        ])
        .await;
    assert!(again.status.success(), "{}", stderr(&again));
    let config = read(&auth);
    assert!(!config.contains(&alice_key), "the old key stays out");
    let rows = env.store.list_credentials().await.expect("list");
    let live_alice = rows
        .iter()
        .find(|row| row.name == "alice" && row.revoked_at.is_none())
        .expect("a live alice");
    assert!(config.contains(&live_alice.public_key), "{config}");
}

/// A connection to `url` as the holder of `seed`, or with no credential.
async fn connect(url: &str, seed: Option<&str>) -> anyhow::Result<async_nats::Client> {
    let options = match seed {
        Some(seed) => ConnectOptions::with_nkey(seed.to_owned()),
        None => ConnectOptions::new(),
    }
    .connection_timeout(Duration::from_secs(2));
    let client = tokio::time::timeout(Duration::from_secs(5), options.connect(url)).await??;
    Ok(client)
}

/// Waits until a connection to `url` (as `seed`) is refused for want of
/// authorization, and returns the error.
async fn refused(url: &str, seed: Option<&str>, what: &str) -> async_nats::ConnectError {
    wait_until(what, Duration::from_secs(15), || async {
        match tokio::time::timeout(Duration::from_secs(5), {
            let options = match seed {
                Some(seed) => ConnectOptions::with_nkey(seed.to_owned()),
                None => ConnectOptions::new(),
            };
            options
                .connection_timeout(Duration::from_secs(2))
                .connect(url)
        })
        .await
        {
            Ok(Err(err)) if err.kind() == ConnectErrorKind::AuthorizationViolation => Ok(Some(err)),
            Ok(Err(err)) => Err(err.into()),
            Ok(Ok(_)) => Ok(None),
            Err(elapsed) => Err(elapsed.into()),
        }
    })
    .await
    .expect(what)
}

#[tokio::test]
async fn a_revoked_credential_is_refused_at_its_next_connect() {
    let env = Env::start().await;
    // The server's config includes the rendered file; nats-server takes an
    // include relative to the config's folder only.
    let rendered = env
        .taskyard(&["creds", "render", "--auth-file", "creds/auth.conf"])
        .await;
    assert!(rendered.status.success(), "{}", stderr(&rendered));
    let server = NatsServer::start(NatsOptions {
        dir: env.path("nats"),
        extra_config: "include \"../creds/auth.conf\"\n".to_owned(),
        ..NatsOptions::default()
    })
    .await
    .expect("nats-server starts with the rendered config");
    let url = server.url();
    let pid_file = env.path("nats/nats.pid");
    assert!(pid_file.exists(), "the server writes its pid file");
    let pid_file = pid_file.to_string_lossy().into_owned();

    // With no credential in the table the config is still closed.
    refused(&url, None, "an unauthenticated connection refused").await;

    let created = env
        .taskyard(&[
            "creds",
            "create",
            "--name",
            "alice",
            "--kind",
            "operator",
            "--out",
            "alice.nk",
            "--auth-file",
            "creds/auth.conf",
            "--nats-pid-file",
            &pid_file,
        ])
        .await;
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(
        stdout(&created).contains(&format!("told nats-server {}", server.pid())),
        "{}",
        stdout(&created)
    );
    let seed = read(&env.path("alice.nk")).trim().to_owned();

    let client = wait_until(
        "alice to connect once the server reloaded",
        Duration::from_secs(15),
        || async { connect(&url, Some(&seed)).await.map(Some) },
    )
    .await
    .expect("alice connects");
    tokio::time::timeout(Duration::from_secs(5), client.flush())
        .await
        .expect("flush in time")
        .expect("the server answers alice");
    drop(client);

    let revoked = env
        .taskyard(&[
            "creds",
            "revoke",
            "alice",
            "--auth-file",
            "creds/auth.conf",
            "--nats-pid-file",
            &pid_file,
        ])
        .await;
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(
        stdout(&revoked).contains(&format!("told nats-server {}", server.pid())),
        "{}",
        stdout(&revoked)
    );

    refused(&url, Some(&seed), "alice refused after her revocation").await;
    refused(&url, None, "an unauthenticated connection still refused").await;
    assert!(
        !read(server.log_path()).contains(&seed),
        "the seed is in no log"
    );
}
