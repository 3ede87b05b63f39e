//! The `taskyard-api` binary as a process: config from the environment,
//! serving, and a clean exit on SIGTERM.

use std::time::Duration;
use taskyard_testkit::{Signal, TestStack, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A bare HTTP/1.0 GET, enough for a smoke test without an HTTP client.
async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

#[tokio::test]
async fn the_binary_serves_until_sigterm() {
    let mut stack = TestStack::start().await.expect("start the test stack");
    let api = stack
        .spawn(
            env!("CARGO_BIN_EXE_taskyard-api"),
            "api",
            &[("TASKYARD_HTTP_ADDR", "127.0.0.1:0")],
        )
        .await
        .expect("spawn the api");
    let addr = wait_until("the api to listen", Duration::from_secs(30), || {
        let log = api.log();
        async move {
            Ok(log
                .split("web console at http://")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .map(str::to_owned))
        }
    })
    .await
    .expect("the api listens");

    let answer = http_get(&addr, "/healthz").await.expect("GET /healthz");
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.contains(r#""database":"ok""#), "{answer}");

    api.signal(Signal::SIGTERM).expect("send SIGTERM");
    let status = api
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the api exits on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", api.log());
}
