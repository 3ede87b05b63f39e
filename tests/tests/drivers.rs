//! The runtime drives real work in other services: an HTTP endpoint and a
//! NATS microservice that the test itself runs.

use futures::StreamExt;
use serde_json::json;
use taskyard_tests::{Cluster, WorkerSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A one-route HTTP server: `POST /charge` answers 201 with a JSON body that
/// echoes the request body; anything else 503.
async fn http_server() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                let mut read = 0;
                // Enough of the request to see its line, headers and small body.
                while let Ok(n) = socket.read(&mut buffer[read..]).await {
                    if n == 0 {
                        break;
                    }
                    read += n;
                    let text = String::from_utf8_lossy(&buffer[..read]);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| {
                                l.to_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if read >= end + 4 + length {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&buffer[..read]).to_string();
                let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
                let (status, reply) = if text.starts_with("POST /charge ") {
                    ("201 Created", format!("{{\"charged\":{body}}}"))
                } else {
                    ("503 Service Unavailable", "{\"error\":\"down\"}".to_owned())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(format!("http://{addr}"))
}

#[tokio::test]
async fn http_and_nats_tasks_call_services_the_test_runs() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[]).await?;
    // A worker's credential names the subjects its `nats` tasks may call
    // (`taskyard creds create --kind worker --task-subject ...`).
    cluster
        .stack
        .grant_task_subjects(&["pricing.>", "nobody.>"]);
    cluster.start_worker(&WorkerSpec::new("w1")).await?;
    let base = http_server().await?;
    // A NATS microservice in "another language": here, the test itself.
    let mut requests = cluster.nats.subscribe("pricing.quote").await?;
    let responder = cluster.nats.clone();
    tokio::spawn(async move {
        while let Some(message) = requests.next().await {
            let asked: serde_json::Value =
                serde_json::from_slice(&message.payload).unwrap_or_default();
            let quote = json!({"sku": asked["sku"], "price": 42});
            if let Some(reply) = message.reply {
                let _ = responder
                    .publish(reply, serde_json::to_vec(&quote).unwrap_or_default().into())
                    .await;
            }
        }
    });

    let ids = cluster
        .submit_ok(&json!([
            {"kind": "http", "spec": {"method": "POST", "url": format!("{base}/charge"), "body": "{\"amount\":5}",
                                      "headers": {"content-type": "application/json"}}},
            {"kind": "http", "spec": {"url": format!("{base}/health")}},
            {"kind": "nats", "spec": {"subject": "pricing.quote", "payload": {"sku": "A-1"}, "timeout_ms": 2000}},
            {"kind": "nats", "spec": {"subject": "nobody.home", "timeout_ms": 1000}}
        ]))
        .await?;
    assert_eq!(cluster.wait_final(ids[0]).await?, "succeeded");
    let charged = cluster.task_json(ids[0]).await?;
    assert_eq!(charged["result"]["status"], 201);
    assert_eq!(charged["result"]["body"], "{\"charged\":{\"amount\":5}}");

    assert_eq!(cluster.wait_final(ids[1]).await?, "failed");
    let down = cluster.task_json(ids[1]).await?;
    assert_eq!(down["result"]["status"], 503);
    assert_eq!(down["error"], "HTTP status 503 (expected 2xx)");

    assert_eq!(cluster.wait_final(ids[2]).await?, "succeeded");
    let quoted = cluster.task_json(ids[2]).await?;
    assert_eq!(
        quoted["result"]["reply"],
        json!({"sku": "A-1", "price": 42})
    );

    assert_eq!(cluster.wait_final(ids[3]).await?, "failed");
    let nobody = cluster.task_json(ids[3]).await?;
    assert_eq!(nobody["error"], "no service answers on nobody.home");
    Ok(())
}
