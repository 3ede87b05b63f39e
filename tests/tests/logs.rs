//! Task logs end to end: an `exec` task's stdout and stderr lines go from the
//! worker over NATS to Postgres, and a user reads them from the REST API,
//! follows them live over server-sent events, and with `taskyard logs -f`.

use anyhow::Context;
use serde_json::{Value, json};
use taskyard_testkit::wait_until;
use taskyard_tests::{Cluster, WAIT, WorkerSpec};
use uuid::Uuid;

/// One server-sent event: `(event, id, data)`.
type SseEvent = (String, Option<String>, String);

/// Reads the live log stream of `id` until its `end` event (or `WAIT`),
/// calling `on_line` as each line arrives.
async fn follow(
    base: &str,
    id: Uuid,
    last_event_id: Option<&str>,
    mut on_line: impl AsyncFnMut(&Value),
) -> anyhow::Result<Vec<SseEvent>> {
    let http = reqwest::Client::new();
    let mut request = http.get(format!("{base}/api/v1/tasks/{id}/logs/stream"));
    if let Some(last) = last_event_id {
        request = request.header("Last-Event-ID", last);
    }
    let mut response = request.send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "stream answered {}",
        response.status()
    );
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let read = async {
        let mut buffer = String::new();
        let mut events = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (None, None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                let Some(event) = event else { continue };
                if event == "line" {
                    on_line(&serde_json::from_str(&data)?).await;
                }
                let end = event == "end";
                events.push((event, id, data));
                if end {
                    return Ok(events);
                }
            }
        }
        anyhow::bail!("the stream closed without an end event: {events:?}")
    };
    tokio::time::timeout(WAIT, read)
        .await
        .context("no end event in time")?
}

async fn get_json(url: &str) -> anyhow::Result<(u16, Value)> {
    let response = reqwest::get(url).await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

fn lines_of(page: &Value) -> Vec<(u64, u64, String, String)> {
    page["lines"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .map(|l| {
                    (
                        l["attempt"].as_u64().unwrap_or(0),
                        l["seq"].as_u64().unwrap_or(0),
                        l["stream"].as_str().unwrap_or_default().to_owned(),
                        l["line"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn an_exec_tasks_lines_are_followed_live_then_served_in_order() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let base = cluster.start_api().await?;
    let script = "echo out-1; sleep 0.3; echo err-1 >&2; sleep 2; \
                  echo out-2; sleep 0.3; echo err-2 >&2; sleep 0.3; echo out-3";
    let ids = cluster
        .submit_ok(&json!({"kind": "exec", "spec": {"command": "sh", "args": ["-c", script]}}))
        .await?;
    let id = ids[0];

    // Followed live: the first line is there while the task still runs.
    let mut states_at_lines = Vec::new();
    let events = follow(&base, id, None, async |_line: &Value| {
        states_at_lines.push(cluster.state(id).await.ok().flatten());
    })
    .await?;
    assert_eq!(
        states_at_lines.first().cloned().flatten().as_deref(),
        Some("running"),
        "the first line arrived before the task ended: {states_at_lines:?}"
    );
    assert_eq!(cluster.wait_final(id).await?, "succeeded");
    let streamed: Vec<(String, String)> = events
        .iter()
        .filter(|(event, _, _)| event == "line")
        .map(|(_, _, data)| {
            let line: Value = serde_json::from_str(data).unwrap_or_default();
            (
                line["stream"].as_str().unwrap_or_default().to_owned(),
                line["line"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("stdout", "out-1"),
        ("stderr", "err-1"),
        ("stdout", "out-2"),
        ("stderr", "err-2"),
        ("stdout", "out-3"),
    ]
    .iter()
    .map(|(s, l)| ((*s).to_owned(), (*l).to_owned()))
    .collect();
    assert_eq!(streamed, expected);
    let (last_event, _, end) = events.last().cloned().unwrap_or_default();
    assert_eq!(last_event, "end");
    assert!(end.contains("succeeded"), "{end}");

    // After it ended, the page has every line in order, with its stream.
    let (status, page) = get_json(&format!("{base}/api/v1/tasks/{id}/logs")).await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["finished"], true);
    let lines = lines_of(&page);
    let want: Vec<(u64, u64, String, String)> = expected
        .iter()
        .enumerate()
        .map(|(i, (s, l))| (1, i as u64 + 1, s.clone(), l.clone()))
        .collect();
    assert_eq!(lines, want);
    assert!(
        page["lines"][0]["at"]
            .as_str()
            .is_some_and(|at| at.contains('T'))
    );
    let next = page["next_after"].as_str().unwrap_or_default().to_owned();
    assert!(!next.is_empty(), "{page}");

    // Paging: two at a time, then nothing after the last.
    let (_, first) = get_json(&format!("{base}/api/v1/tasks/{id}/logs?limit=2")).await?;
    assert_eq!(lines_of(&first), want[..2].to_vec());
    let after = first["next_after"].as_str().unwrap_or_default();
    let (_, second) = get_json(&format!(
        "{base}/api/v1/tasks/{id}/logs?limit=2&after={after}"
    ))
    .await?;
    assert_eq!(lines_of(&second), want[2..4].to_vec());
    let (_, empty) = get_json(&format!("{base}/api/v1/tasks/{id}/logs?after={next}")).await?;
    assert!(lines_of(&empty).is_empty(), "{empty}");
    assert_eq!(empty["next_after"], next.as_str());

    // A reconnecting client (Last-Event-ID) gets the lines after it only.
    let second_id = events
        .iter()
        .filter(|(event, _, _)| event == "line")
        .nth(1)
        .and_then(|(_, id, _)| id.clone())
        .context("line events carry ids")?;
    let resumed = follow(&base, id, Some(&second_id), async |_: &Value| {}).await?;
    let resumed_lines = resumed.iter().filter(|(e, _, _)| e == "line").count();
    assert_eq!(resumed_lines, 3, "{resumed:?}");

    // Errors name what is wrong.
    let (status, body) = get_json(&format!("{base}/api/v1/tasks/{}/logs", Uuid::now_v7())).await?;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = get_json(&format!("{base}/api/v1/tasks/{id}/logs?limit=0")).await?;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("limit"))
    );
    let (status, body) = get_json(&format!("{base}/api/v1/tasks/{id}/logs?after=nope")).await?;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("after"))
    );

    // The CLI: stdout lines on stdout, exit 0 for a task that succeeded.
    let id_text = id.to_string();
    let (code, out) = cluster
        .taskyard(&["--api-url", &base, "logs", "-f", &id_text])
        .await?;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "out-1\nout-2\nout-3\n");
    let (code, out) = cluster
        .taskyard(&["--api-url", &base, "logs", &id_text, "--stream", "stdout"])
        .await?;
    assert_eq!((code, out.as_str()), (0, "out-1\nout-2\nout-3\n"));
    Ok(())
}

#[tokio::test]
async fn past_the_line_limit_a_marker_says_how_many_lines_were_dropped() -> anyhow::Result<()> {
    let mut cluster =
        Cluster::start(&[WorkerSpec::new("capped").env("TASKYARD_LOG_MAX_LINES", "5")]).await?;
    let base = cluster.start_api().await?;
    let script = "for i in $(seq 1 20); do echo line-$i; done; exit 3";
    let ids = cluster
        .submit_ok(&json!({"kind": "exec", "spec": {"command": "sh", "args": ["-c", script]}}))
        .await?;
    let id = ids[0];
    let id_text = id.to_string();

    // Followed from the start by the CLI: it prints the kept lines and
    // exits 1, since the task failed.
    let (code, out) = cluster
        .taskyard(&["--api-url", &base, "logs", "--follow", &id_text])
        .await?;
    assert_eq!(code, 1, "{out}");
    assert_eq!(out, "line-1\nline-2\nline-3\nline-4\nline-5\n");
    assert_eq!(cluster.wait_final(id).await?, "failed");

    let page = wait_until("six stored lines", WAIT, || async {
        let (_, page) = get_json(&format!("{base}/api/v1/tasks/{id}/logs")).await?;
        Ok((lines_of(&page).len() >= 6).then_some(page))
    })
    .await?;
    let lines = lines_of(&page);
    assert_eq!(lines.len(), 6, "{page}");
    for (i, (attempt, seq, stream, line)) in lines.iter().take(5).enumerate() {
        assert_eq!(
            (*attempt, *seq, stream.as_str(), line.clone()),
            (1, i as u64 + 1, "stdout", format!("line-{}", i + 1))
        );
    }
    let (_, seq, _, marker) = &lines[5];
    assert_eq!(*seq, 6);
    assert!(
        marker.contains("15 more lines dropped") && marker.contains("limit of 5 lines"),
        "{marker}"
    );
    // The result's bounded capture is not cut by the log limit.
    let task = cluster.task_json(id).await?;
    let stdout = task["result"]["stdout"].as_str().unwrap_or_default();
    assert!(stdout.contains("line-20"), "{task}");

    // A batch delivered again is stored once: lines 1 and 2 again (other
    // text, another message id, so JetStream does not drop it) with one new
    // line, which tells when the batch was handled.
    let at = taskyard_wire::now();
    let line = |seq: u64, text: &str| taskyard_wire::logs::LogLine {
        seq,
        stream: taskyard_wire::logs::LogStream::Stdout,
        line: text.to_owned(),
        at,
    };
    let again = taskyard_wire::logs::LogBatch {
        task_id: id,
        attempt: 1,
        node_id: "capped".to_owned(),
        lines: vec![line(1, "replayed"), line(2, "replayed"), line(100, "late")],
        truncated: false,
    };
    let js = async_nats::jetstream::new(cluster.nats.clone());
    js.publish(
        taskyard_wire::subjects::logs("capped"),
        serde_json::to_vec(&again)?.into(),
    )
    .await?
    .await
    .context("the LOGS stream did not ack")?;
    let page = wait_until("the late line to be stored", WAIT, || async {
        let (_, page) = get_json(&format!("{base}/api/v1/tasks/{id}/logs")).await?;
        Ok((lines_of(&page).len() >= 7).then_some(page))
    })
    .await?;
    let lines = lines_of(&page);
    assert_eq!(lines.len(), 7, "{page}");
    assert_eq!(lines[0].3, "line-1");
    assert_eq!(lines[1].3, "line-2");
    assert_eq!((lines[6].1, lines[6].3.as_str()), (100, "late"));
    Ok(())
}
