//! `taskyard logs ID [-f] [--stream stdout|stderr]`: a task's output lines
//! (task logs), as stored from its `exec` attempts. With `-f` it follows the
//! task live over server-sent events (`/api/v1/tasks/{id}/logs/stream`) until
//! the task ends, and exits 0 when it succeeded, 1 otherwise.
//!
//! Lines of stdout go to stdout and lines of stderr to stderr; when a task
//! ran more than once, a `--- attempt N ---` line (on stderr) marks where
//! each later attempt starts.

use crate::GlobalOptions;
use crate::api::{ApiClient, LogLineView};
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Lines per page when not following.
const PAGE: u32 = 5000;
/// Pause before the live stream is opened again after it broke.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// Consecutive failed (re)connections before giving up.
const MAX_RECONNECTS: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StreamFilter {
    Stdout,
    Stderr,
}

#[derive(Debug, Args)]
pub struct Logs {
    /// The task's id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Follow the task: print lines as they come until it ends; exit 0 when
    /// it succeeded, 1 otherwise.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the lines of this stream.
    #[arg(long, value_enum, value_name = "STREAM")]
    pub stream: Option<StreamFilter>,
}

impl Logs {
    pub async fn run(self, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
        let api = global.api();
        let mut printer = Printer::new(self.stream);
        if !self.follow {
            let mut after: Option<String> = None;
            loop {
                let page = api.task_logs(&self.id, after.as_deref(), PAGE).await?;
                let done = page.lines.len() < PAGE as usize;
                for line in &page.lines {
                    printer.print(line)?;
                }
                after = page.next_after;
                if done {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
        let state = follow(&api, &self.id, &mut printer).await?;
        Ok(if state.as_deref() == Some("succeeded") {
            ExitCode::SUCCESS
        } else {
            if let Some(state) = state {
                eprintln!("task {} ended {state}", self.id);
            }
            ExitCode::from(1)
        })
    }
}

/// Prints lines to the stream they came from.
struct Printer {
    filter: Option<StreamFilter>,
    attempt: Option<u32>,
}

impl Printer {
    fn new(filter: Option<StreamFilter>) -> Printer {
        Printer {
            filter,
            attempt: None,
        }
    }

    fn print(&mut self, line: &LogLineView) -> std::io::Result<()> {
        if self.attempt.is_some_and(|a| a != line.attempt) {
            eprintln!("--- attempt {} ---", line.attempt);
        }
        self.attempt = Some(line.attempt);
        let stderr = line.stream == "stderr";
        match (self.filter, stderr) {
            (Some(StreamFilter::Stdout), true) | (Some(StreamFilter::Stderr), false) => Ok(()),
            (_, false) => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", line.line)?;
                out.flush()
            }
            (_, true) => {
                let mut out = std::io::stderr().lock();
                writeln!(out, "{}", line.line)
            }
        }
    }
}

/// Follows the live stream until its `end` event; returns the task's final
/// state. Reconnects (from the last line seen) when the stream breaks.
async fn follow(
    api: &ApiClient,
    id: &str,
    printer: &mut Printer,
) -> anyhow::Result<Option<String>> {
    // No overall timeout: the stream lasts as long as the task.
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("building the HTTP client")?;
    let url = format!("{}/api/v1/tasks/{id}/logs/stream", api.base());
    let mut cursor: Option<String> = None;
    let mut failures = 0;
    loop {
        let mut request = api.authorize(http.get(&url).header("accept", "text/event-stream"));
        if let Some(cursor) = &cursor {
            request = request.header("last-event-id", cursor.as_str());
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                let mut response = response;
                let mut parser = SseParser::default();
                loop {
                    match response.chunk().await {
                        Ok(Some(bytes)) => {
                            for event in parser.push(&bytes) {
                                match event.event.as_str() {
                                    "line" => {
                                        let line: LogLineView = serde_json::from_str(&event.data)
                                            .with_context(|| {
                                            format!(
                                                "unexpected log line from {url}: {}",
                                                event.data
                                            )
                                        })?;
                                        printer.print(&line)?;
                                        failures = 0;
                                        if let Some(id) = event.id {
                                            cursor = Some(id);
                                        }
                                    }
                                    "end" => {
                                        let end: serde_json::Value =
                                            serde_json::from_str(&event.data).unwrap_or_default();
                                        return Ok(end["state"].as_str().map(str::to_owned));
                                    }
                                    _ => {}
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(err) => {
                            note_reconnect(&format!("the log stream broke: {err}"));
                            break;
                        }
                    }
                }
            }
            Ok(response) => {
                // The API's error JSON, through the regular client (a 404
                // for an unknown task).
                let status = response.status();
                api.task_logs(id, None, 1).await?;
                anyhow::bail!("{url} answered {status}");
            }
            Err(err) if failures + 1 >= MAX_RECONNECTS => {
                return Err(anyhow::Error::new(err)
                    .context(format!("cannot reach the API at {}", api.base())));
            }
            Err(_) => {}
        }
        failures += 1;
        if failures >= MAX_RECONNECTS {
            anyhow::bail!("the log stream of task {id} kept breaking; giving up");
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

fn note_reconnect(message: &str) {
    eprintln!("note: {message}; reconnecting");
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

/// Reads server-sent events from chunks of bytes.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
}

impl SseParser {
    /// The events `bytes` completes.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some((end, len)) = block_end(&self.buffer) {
            let block: Vec<u8> = self.buffer.drain(..end + len).collect();
            let text = String::from_utf8_lossy(&block[..end]);
            let mut event = SseEvent {
                event: "message".to_owned(),
                ..SseEvent::default()
            };
            let mut data: Vec<&str> = Vec::new();
            let mut any = false;
            for line in text.lines() {
                if line.starts_with(':') || line.is_empty() {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                any = true;
                match field {
                    "event" => event.event = value.to_owned(),
                    "data" => data.push(value),
                    "id" => event.id = Some(value.to_owned()),
                    _ => {}
                }
            }
            if any {
                event.data = data.join("\n");
                events.push(event);
            }
        }
        events
    }
}

/// Where the first event block ends (a blank line), and the separator's length.
fn block_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|at| (at, 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_across_chunks() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"event: line\nid: 1-1\nda").is_empty());
        let events = parser.push(b"ta: {\"a\":1}\n\n: keep-alive\n\nevent: end\ndata: {}\n\n");
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: "line".to_owned(),
                    data: "{\"a\":1}".to_owned(),
                    id: Some("1-1".to_owned()),
                },
                SseEvent {
                    event: "end".to_owned(),
                    data: "{}".to_owned(),
                    id: None,
                },
            ]
        );
    }
}
