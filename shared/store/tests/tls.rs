//! TLS to Postgres, against a real server serving a local CA's
//! certificate: `sslmode=require` verifies it against the CA it is given
//! and refuses anything else, `sslmode=disable` stays in the clear, and a
//! server without TLS is refused under `require`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use taskyard_devstack::{Postgres, PostgresOptions, TlsFiles, ensure_certificates};
use taskyard_store::tls::TlsError;
use taskyard_store::{DbTls, Store, StoreError};

/// Longer than anything below should take (Store's own connect timeout is
/// 5 s), so a hang fails the test instead of stalling the suite.
const WAIT: Duration = Duration::from_secs(30);

/// A folder the `postgres` OS user can enter when the test runs as root
/// (the devstack runs the server as that user then).
fn pg_tempdir() -> tempfile::TempDir {
    let tmp = tempfile::Builder::new()
        .prefix("taskyard-store-tls-")
        .tempdir()
        .expect("temp dir");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 755");
    tmp
}

async fn start(dir: &Path, tls: Option<TlsFiles>, port: Option<u16>) -> Postgres {
    tokio::time::timeout(
        WAIT,
        Postgres::start(PostgresOptions {
            dir: dir.join("postgres"),
            port,
            fast_unsafe: true,
            tls,
        }),
    )
    .await
    .expect("postgres starts in time")
    .expect("postgres starts")
}

async fn connect(url: &str, tls: &DbTls) -> Result<Store, StoreError> {
    tokio::time::timeout(WAIT, Store::connect_with(url, 1, tls))
        .await
        .expect("connect answers in time")
}

async fn encrypted(store: &Store) -> bool {
    tokio::time::timeout(WAIT, store.encrypted())
        .await
        .expect("pg_stat_ssl answers in time")
        .expect("pg_stat_ssl")
}

#[tokio::test]
async fn require_verifies_against_the_ca_and_disable_stays_in_the_clear() {
    let tmp = pg_tempdir();
    let files = ensure_certificates(&tmp.path().join("tls"), &[]).expect("certificates");
    // A CA that signed nothing this server presents.
    let other = ensure_certificates(&tmp.path().join("other-tls"), &[]).expect("other CA");
    let pg = start(tmp.path(), Some(files.clone()), None).await;
    let base = pg.url("postgres");
    let require = format!("{base}?sslmode=require");
    let trusted = DbTls::ca_file(&files.ca);

    let store = connect(&require, &trusted)
        .await
        .expect("require with the CA connects");
    assert!(encrypted(&store).await, "require: pg_stat_ssl says TLS");

    let store = connect(&format!("{base}?sslmode=disable"), &trusted)
        .await
        .expect("disable connects");
    assert!(!encrypted(&store).await, "disable: in the clear");

    // prefer (the URL says nothing): TLS since the server offers it, with
    // the CA verified, and without a CA too (see taskyard_store::tls).
    let store = connect(&base, &trusted).await.expect("prefer with the CA");
    assert!(encrypted(&store).await, "prefer: TLS when offered");
    let store = connect(&base, &DbTls::default())
        .await
        .expect("prefer without a CA");
    assert!(encrypted(&store).await, "prefer without a CA: still TLS");

    // Another CA: refused, and the error says so and names the file.
    let err = connect(&require, &DbTls::ca_file(&other.ca))
        .await
        .expect_err("require with another CA is refused");
    assert!(
        matches!(err, StoreError::Tls(TlsError::Unverified { .. })),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "the Postgres server's certificate could not be verified against the CA in {}",
            other.ca.display()
        )),
        "{text}"
    );
    // A CA file under prefer is verified too.
    assert!(
        connect(&base, &DbTls::ca_file(&other.ca)).await.is_err(),
        "prefer with another CA is refused"
    );

    // No CA: the system's roots, which do not know a local CA.
    let err = connect(&require, &DbTls::default())
        .await
        .expect_err("require without the CA is refused");
    match &err {
        StoreError::Tls(TlsError::Unverified { .. }) => assert!(
            err.to_string().starts_with(
                "the Postgres server's certificate could not be verified against the system's root certificates"
            ),
            "{err}"
        ),
        // A machine without a CA bundle refuses before connecting.
        StoreError::Tls(TlsError::NoSystemRoots { .. }) => {}
        other => panic!("unexpected error: {other:?}"),
    }

    // The same data started again without TLS: require is refused,
    // prefer falls back to the clear.
    let port = pg.port();
    pg.stop().await;
    let pg = start(tmp.path(), None, Some(port)).await;
    let err = connect(&require, &trusted)
        .await
        .expect_err("require without TLS on the server is refused");
    assert!(
        err.to_string()
            .contains("TLS with the Postgres server failed: server does not support TLS"),
        "{err}"
    );
    let store = connect(&base, &trusted)
        .await
        .expect("prefer, in the clear");
    assert!(!encrypted(&store).await);
    drop(store);
    pg.stop().await;
}
