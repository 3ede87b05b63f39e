//! The CLI's `--database-url` commands over TLS, against a Postgres serving
//! a local CA's certificate: `--database-ca-file` (or
//! `TASKYARD_DATABASE_CA_FILE`) is the CA `sslmode=require` verifies
//! against, a certificate it cannot verify is refused saying so, and a bad
//! CA file is named.

use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::Duration;

use taskyard_devstack::{Postgres, PostgresOptions, ensure_certificates};

async fn taskyard(args: &[&str], ca_env: Option<&str>) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskyard"));
    command
        .args(args)
        .env_remove("TASKYARD_DATABASE_URL")
        .env_remove("TASKYARD_DATABASE_CA_FILE")
        .kill_on_drop(true);
    if let Some(ca) = ca_env {
        command.env("TASKYARD_DATABASE_CA_FILE", ca);
    }
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("taskyard finishes within a minute")
        .expect("run taskyard")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn migrate_verifies_the_servers_certificate_against_the_given_ca() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // The postgres OS user runs the server when this runs as root.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 755");
    let files = ensure_certificates(&tmp.path().join("tls"), &[]).expect("certificates");
    let pg = tokio::time::timeout(
        Duration::from_secs(60),
        Postgres::start(PostgresOptions {
            dir: tmp.path().join("postgres"),
            port: None,
            fast_unsafe: true,
            tls: Some(files.clone()),
        }),
    )
    .await
    .expect("postgres starts in time")
    .expect("postgres starts");
    let url = pg
        .create_database("taskyard")
        .await
        .expect("create the database");
    let require = format!("{url}?sslmode=require");
    let ca = files.ca.to_string_lossy().into_owned();

    let out = taskyard(
        &[
            "migrate",
            "--database-url",
            &require,
            "--database-ca-file",
            &ca,
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("over TLS"),
        "{}",
        text(&out.stdout)
    );

    // The variable does what the flag does.
    let out = taskyard(&["migrate", "--database-url", &require], Some(&ca)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // No CA: the system's roots, which do not know the local CA.
    let out = taskyard(&["migrate", "--database-url", &require], None).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("certificate could not be verified")
            || text(&out.stderr).contains("no system root certificates"),
        "{}",
        text(&out.stderr)
    );

    let missing = tmp.path().join("no-such-ca.pem");
    let missing = missing.to_string_lossy();
    let out = taskyard(&["migrate", "--database-url", &require], Some(&missing)).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&format!("cannot read the Postgres CA file {missing}")),
        "{}",
        text(&out.stderr)
    );
    pg.stop().await;
}
