//! The test kit against real servers.

use std::time::Duration;

use taskyard_testkit::{Signal, TestStack, wait_until};

#[tokio::test]
async fn stack_serves_sql_and_stops_on_drop() -> anyhow::Result<()> {
    let stack = TestStack::start().await?;
    assert!(stack.database_name.starts_with("taskyard_"));
    assert_eq!(stack.database_name.len(), "taskyard_".len() + 8);
    let db = stack.db().await?;
    let one: i32 = db.query_one("SELECT 1", &[]).await?.get(0);
    assert_eq!(one, 1);
    let current: String = db.query_one("SELECT current_database()", &[]).await?.get(0);
    assert_eq!(current, stack.database_name);
    assert!(taskyard_devstack::nats_reachable(&stack.nats_url).await);

    let nats_port = stack.nats.port();
    let dir = stack.dir().to_path_buf();
    drop(db);
    drop(stack);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], nats_port));
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "nats port still open after drop"
    );
    assert!(!dir.exists(), "test folder not removed");
    Ok(())
}

#[tokio::test]
async fn services_get_env_logs_and_signals() -> anyhow::Result<()> {
    let mut stack = TestStack::start().await?;
    let svc = stack
        .spawn_with_args(
            "/bin/sh",
            "echoer",
            &[
                "-c",
                "echo nats=$TASKYARD_NATS_URL extra=$EXTRA; exec sleep 30",
            ],
            &[("EXTRA", "yes")],
        )
        .await?;
    let expected = format!("nats={} extra=yes", stack.nats_url);
    wait_until("echoer output", Duration::from_secs(10), || {
        let log = svc.log();
        let found = log.contains(&expected);
        async move { Ok(found.then_some(())) }
    })
    .await?;
    assert!(stack.dir().join("echoer.log").is_file());
    assert_eq!(stack.service("echoer").map(|s| s.pid()), Some(svc.pid()));

    svc.signal(Signal::SIGSTOP)?;
    svc.signal(Signal::SIGCONT)?;
    assert!(svc.wait_exit(Duration::from_millis(100)).await.is_none());
    svc.signal(Signal::SIGTERM)?;
    let status = svc
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("exits on SIGTERM");
    assert!(!status.success());
    assert!(
        svc.signal(Signal::SIGTERM).is_err(),
        "signalling an exited service must fail"
    );

    // A still-running service is killed when the stack drops.
    let sleeper = stack
        .spawn_with_args("/bin/sleep", "sleeper", &["30"], &[])
        .await?;
    drop(stack);
    assert!(sleeper.try_status().is_some(), "service survived the stack");
    Ok(())
}
