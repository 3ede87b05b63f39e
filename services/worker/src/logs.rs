//! Task logs: the lines an `exec` attempt writes on stdout and stderr,
//! streamed on `taskyard.logs.<node>` while it runs.
//!
//! Each output pipe feeds a [`LineWriter`], which splits its bytes into
//! lines (a line longer than `log_max_line_bytes` is cut and says so). Lines
//! are numbered per attempt from 1 across both streams and gathered by the
//! attempt's [`AttemptLog`], whose flusher publishes a [`LogBatch`] every
//! `log_flush_interval_ms` or as soon as `log_flush_lines` are waiting. An
//! attempt keeps at most `log_max_lines` lines; the rest are counted, and one
//! last line says how many were dropped.
//!
//! Logs never hold up or fail a task: the pipes are read by the capture of
//! the `exec` driver whatever happens here, a batch that cannot be published
//! is dropped and counted, and lines that pile up behind a slow publish are
//! dropped past a bound. When the attempt ends, [`AttemptLog::finish`]
//! publishes what is left (within [`FINAL_FLUSH_TIMEOUT`]) before the
//! attempt's report goes out, so the stored log is complete when the task's
//! state is final, but for what was dropped.

use async_nats::jetstream;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use taskyard_runtime::batching::{self, Outgoing};
use taskyard_wire::codec;
use taskyard_wire::logs::{LogBatch, LogLine, LogStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tracing::Instrument;
use uuid::Uuid;

/// Counter of lines published, by nothing.
pub const METRIC_LINES: &str = "taskyard_worker_log_lines_total";
/// Counter of lines not published, by `reason`: `limit` (past the attempt's
/// line limit), `publish` (NATS refused or did not answer), `backlog` (too
/// many lines waiting behind a slow publish).
pub const METRIC_DROPPED: &str = "taskyard_worker_log_lines_dropped_total";

/// How long the last publish of an attempt may hold up its report.
pub const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one publish may take before its lines count as dropped.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// Batches' worth of lines that may wait for a slow publish.
const BACKLOG_BATCHES: usize = 20;

/// The log settings of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// Lines kept per attempt; 0 turns task logs off.
    pub max_lines: u64,
    /// Bytes of one line kept; the rest of the line is dropped and the line
    /// ends with [`cut_marker`].
    pub max_line_bytes: usize,
    /// Longest a line waits before it is published.
    pub flush_interval: Duration,
    /// Lines that make a batch go out at once.
    pub flush_lines: usize,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            max_lines: crate::config::DEFAULT_LOG_MAX_LINES,
            max_line_bytes: crate::config::DEFAULT_LOG_MAX_LINE_BYTES,
            flush_interval: Duration::from_millis(crate::config::DEFAULT_LOG_FLUSH_INTERVAL_MS),
            flush_lines: crate::config::DEFAULT_LOG_FLUSH_LINES,
        }
    }
}

/// What ends a line that was cut at `max` bytes.
pub fn cut_marker(max: usize) -> String {
    format!(" [taskyard: line cut at {max} bytes]")
}

/// The last line of an attempt that reached its limit.
pub fn dropped_marker(dropped: u64, max_lines: u64) -> String {
    format!(
        "[taskyard: {dropped} more lines dropped: the limit of {max_lines} lines per attempt was reached]"
    )
}

/// Where batches go.
#[derive(Debug, Clone)]
enum Sink {
    JetStream {
        js: Box<jetstream::Context>,
        subject: String,
    },
    /// Batches handed over as they are (tests).
    Channel(mpsc::UnboundedSender<LogBatch>),
}

/// The node's log publisher; cheap to clone.
#[derive(Debug, Clone)]
pub struct LogPublisher {
    sink: Sink,
    node_id: String,
    settings: LogSettings,
}

impl LogPublisher {
    /// Publishes on this node's log subject through JetStream.
    pub fn new(js: jetstream::Context, node_id: &str, settings: LogSettings) -> LogPublisher {
        LogPublisher {
            sink: Sink::JetStream {
                js: Box::new(js),
                subject: taskyard_wire::subjects::logs(node_id),
            },
            node_id: node_id.to_owned(),
            settings,
        }
    }

    /// Hands each batch to `sender` instead of NATS (for tests).
    pub fn to_channel(
        sender: mpsc::UnboundedSender<LogBatch>,
        node_id: &str,
        settings: LogSettings,
    ) -> LogPublisher {
        LogPublisher {
            sink: Sink::Channel(sender),
            node_id: node_id.to_owned(),
            settings,
        }
    }

    pub fn settings(&self) -> &LogSettings {
        &self.settings
    }

    /// Starts the log of one attempt; `None` when logs are off.
    pub fn start(&self, task_id: Uuid, attempt: u32) -> Option<AttemptLog> {
        if self.settings.max_lines == 0 {
            return None;
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                next_seq: 1,
                ..State::default()
            }),
            wake: Notify::new(),
            settings: self.settings,
        });
        let flusher = tokio::spawn(
            flush_loop(
                shared.clone(),
                self.clone(),
                Attempt {
                    task_id,
                    attempt,
                    node_id: self.node_id.clone(),
                },
            )
            .in_current_span(),
        );
        Some(AttemptLog { shared, flusher })
    }

    async fn publish(&self, batches: Vec<LogBatch>) -> Result<(), String> {
        match &self.sink {
            Sink::Channel(sender) => {
                for batch in batches {
                    sender
                        .send(batch)
                        .map_err(|_| "the log receiver is gone".to_owned())?;
                }
                Ok(())
            }
            Sink::JetStream { js, subject } => {
                let messages = batches
                    .iter()
                    .map(|batch| {
                        Outgoing::new(subject.clone(), codec::encode(batch))
                            .with_msg_id(batch.msg_id())
                    })
                    .collect();
                match tokio::time::timeout(PUBLISH_TIMEOUT, batching::publish_all(js, messages))
                    .await
                {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(err)) => Err(err.to_string()),
                    Err(_) => Err(format!("no ack within {} ms", PUBLISH_TIMEOUT.as_millis())),
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Attempt {
    task_id: Uuid,
    attempt: u32,
    node_id: String,
}

#[derive(Debug, Default)]
struct State {
    /// The seq of the next line kept.
    next_seq: u64,
    /// Lines not yet published.
    pending: Vec<LogLine>,
    /// Lines past the limit.
    over_limit: u64,
    /// Both pipes are done: publish the rest and stop.
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Notify,
    settings: LogSettings,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, stream: LogStream, line: String) {
        let settings = &self.settings;
        let mut state = self.state();
        if state.next_seq > settings.max_lines {
            state.over_limit += 1;
            metrics::counter!(METRIC_DROPPED, "reason" => "limit").increment(1);
            return;
        }
        if state.pending.len() >= settings.flush_lines.max(1) * BACKLOG_BATCHES {
            metrics::counter!(METRIC_DROPPED, "reason" => "backlog").increment(1);
            return;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.pending.push(LogLine {
            seq,
            stream,
            line,
            at: taskyard_wire::now(),
        });
        let full = state.pending.len() >= settings.flush_lines.max(1);
        drop(state);
        if full {
            self.wake.notify_one();
        }
    }
}

/// The log of one running attempt.
#[derive(Debug)]
pub struct AttemptLog {
    shared: Arc<Shared>,
    flusher: JoinHandle<()>,
}

impl AttemptLog {
    /// The line splitter of one output stream.
    pub fn writer(&self, stream: LogStream) -> LineWriter {
        LineWriter {
            splitter: LineSplitter::new(self.shared.settings.max_line_bytes),
            stream,
            shared: self.shared.clone(),
            lines: Vec::new(),
        }
    }

    /// Publishes what is left (with the dropped-lines marker if the limit
    /// was reached) and stops, waiting at most [`FINAL_FLUSH_TIMEOUT`].
    pub async fn finish(self) {
        self.shared.state().closed = true;
        self.shared.wake.notify_one();
        let mut flusher = self.flusher;
        if tokio::time::timeout(FINAL_FLUSH_TIMEOUT, &mut flusher)
            .await
            .is_err()
        {
            tracing::warn!("the last task log lines were not published in time; dropped");
            flusher.abort();
        }
    }
}

async fn flush_loop(shared: Arc<Shared>, publisher: LogPublisher, attempt: Attempt) {
    let settings = shared.settings;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(settings.flush_interval) => {}
            _ = shared.wake.notified() => {}
        }
        let (mut lines, closed, over_limit, next_seq) = {
            let mut state = shared.state();
            (
                std::mem::take(&mut state.pending),
                state.closed,
                state.over_limit,
                state.next_seq,
            )
        };
        let truncated = closed && over_limit > 0;
        if truncated {
            lines.push(LogLine {
                seq: next_seq,
                stream: LogStream::Stderr,
                line: dropped_marker(over_limit, settings.max_lines),
                at: taskyard_wire::now(),
            });
        }
        if !lines.is_empty() {
            publish(&publisher, &attempt, lines, truncated).await;
        }
        if closed {
            return;
        }
    }
}

async fn publish(
    publisher: &LogPublisher,
    attempt: &Attempt,
    lines: Vec<LogLine>,
    truncated: bool,
) {
    let count = lines.len() as u64;
    let chunk = publisher.settings.flush_lines.max(1);
    let mut batches: Vec<LogBatch> = Vec::with_capacity(lines.len().div_ceil(chunk));
    let mut lines = lines.into_iter().peekable();
    while lines.peek().is_some() {
        batches.push(LogBatch {
            task_id: attempt.task_id,
            attempt: attempt.attempt,
            node_id: attempt.node_id.clone(),
            lines: lines.by_ref().take(chunk).collect(),
            truncated: false,
        });
    }
    if let Some(last) = batches.last_mut() {
        last.truncated = truncated;
    }
    match publisher.publish(batches).await {
        Ok(()) => metrics::counter!(METRIC_LINES).increment(count),
        Err(err) => {
            metrics::counter!(METRIC_DROPPED, "reason" => "publish").increment(count);
            taskyard_runtime::warn_throttled!(error = %err, lines = count, "cannot publish task log lines; dropped");
        }
    }
}

/// Splits one output stream into lines and hands them to its attempt's log.
#[derive(Debug)]
pub struct LineWriter {
    splitter: LineSplitter,
    stream: LogStream,
    shared: Arc<Shared>,
    lines: Vec<String>,
}

impl LineWriter {
    /// Takes the next bytes the pipe gave; never waits.
    pub fn write(&mut self, bytes: &[u8]) {
        self.splitter.push(bytes, &mut self.lines);
        for line in self.lines.drain(..) {
            self.shared.push(self.stream, line);
        }
    }

    /// The pipe ended: a last line without a line end still counts.
    pub fn close(mut self) {
        if let Some(line) = self.splitter.finish() {
            self.shared.push(self.stream, line);
        }
    }
}

/// Cuts bytes into lines at `\n` (a `\r` before it is dropped too), keeping
/// at most `max` bytes of each line.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    current: Vec<u8>,
    /// The current line went past `max`.
    cut: bool,
}

impl LineSplitter {
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            max: max.max(1),
            current: Vec::new(),
            cut: false,
        }
    }

    /// Appends the lines `bytes` completes to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<String>) {
        while !bytes.is_empty() {
            let (part, ended) = match bytes.iter().position(|b| *b == b'\n') {
                Some(end) => (&bytes[..end], true),
                None => (bytes, false),
            };
            let room = self.max.saturating_sub(self.current.len());
            if part.len() > room {
                self.cut = true;
            }
            self.current
                .extend_from_slice(&part[..part.len().min(room)]);
            if ended {
                out.push(self.take());
                bytes = &bytes[part.len() + 1..];
            } else {
                bytes = &[];
            }
        }
    }

    /// What is left once the stream ended, if anything.
    pub fn finish(&mut self) -> Option<String> {
        (!self.current.is_empty() || self.cut).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let mut bytes = std::mem::take(&mut self.current);
        let cut = std::mem::replace(&mut self.cut, false);
        if !cut && bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        if cut {
            // Never end on half a character.
            if let Err(err) = std::str::from_utf8(&bytes)
                && err.error_len().is_none()
            {
                bytes.truncate(err.valid_up_to());
            }
            let mut line = String::from_utf8_lossy(&bytes).into_owned();
            line.push_str(&cut_marker(self.max));
            line
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = LineSplitter::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, &mut out);
        }
        out.extend(splitter.finish());
        out
    }

    #[test]
    fn lines_are_split_across_chunks() {
        assert_eq!(
            split(100, &[b"hel", b"lo\nwor", b"ld\r\n\nlast"]),
            vec!["hello", "world", "", "last"]
        );
        assert_eq!(split(100, &[b"a\n"]), vec!["a"]);
        assert!(split(100, &[b""]).is_empty());
    }

    #[test]
    fn a_long_line_is_cut_and_marked_and_the_next_is_whole() {
        let lines = split(4, &[b"abcdefgh", b"ij\nshort\n"]);
        assert_eq!(
            lines,
            vec![
                format!("abcd{}", cut_marker(4)),
                "shor".to_owned() + &cut_marker(4)
            ]
        );
        let lines = split(5, &[b"abcdefgh\nok\n"]);
        assert_eq!(
            lines,
            vec![format!("abcde{}", cut_marker(5)), "ok".to_owned()]
        );
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        // "é" is two bytes: a cut after 3 bytes keeps "aé" and not half of the next.
        let lines = split(4, &["aéé\n".as_bytes()]);
        assert_eq!(lines, vec![format!("aé{}", cut_marker(4))]);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(split(100, &[b"a\xffb\n"]), vec!["a\u{FFFD}b"]);
    }

    fn settings(max_lines: u64) -> LogSettings {
        LogSettings {
            max_lines,
            max_line_bytes: 64,
            flush_interval: Duration::from_millis(50),
            flush_lines: 3,
        }
    }

    async fn collect(mut receiver: mpsc::UnboundedReceiver<LogBatch>) -> Vec<LogBatch> {
        let mut batches = Vec::new();
        while let Ok(batch) = receiver.try_recv() {
            batches.push(batch);
        }
        batches
    }

    #[tokio::test]
    async fn lines_are_numbered_across_streams_and_batched() {
        let (sender, receiver) = mpsc::unbounded_channel();
        let publisher = LogPublisher::to_channel(sender, "n1", settings(100));
        let log = publisher
            .start(Uuid::from_u128(1), 2)
            .unwrap_or_else(|| panic!("logs are on"));
        let mut out = log.writer(LogStream::Stdout);
        let mut err = log.writer(LogStream::Stderr);
        out.write(b"one\ntwo\n");
        err.write(b"oops\n");
        out.write(b"three\nfour");
        out.close();
        err.close();
        log.finish().await;
        let batches = collect(receiver).await;
        assert!(batches.iter().all(|b| b.lines.len() <= 3), "{batches:?}");
        assert!(batches.iter().all(|b| !b.truncated && b.attempt == 2));
        let lines: Vec<(u64, LogStream, String)> = batches
            .into_iter()
            .flat_map(|b| b.lines)
            .map(|l| (l.seq, l.stream, l.line))
            .collect();
        let expected = [
            (1, LogStream::Stdout, "one"),
            (2, LogStream::Stdout, "two"),
            (3, LogStream::Stderr, "oops"),
            (4, LogStream::Stdout, "three"),
            (5, LogStream::Stdout, "four"),
        ];
        let expected: Vec<_> = expected
            .into_iter()
            .map(|(s, st, l)| (s, st, l.to_owned()))
            .collect();
        assert_eq!(lines, expected);
    }

    #[tokio::test]
    async fn past_the_limit_one_last_line_says_how_many_were_dropped() {
        let (sender, receiver) = mpsc::unbounded_channel();
        let publisher = LogPublisher::to_channel(sender, "n1", settings(4));
        let log = publisher
            .start(Uuid::from_u128(1), 1)
            .unwrap_or_else(|| panic!("logs are on"));
        let mut out = log.writer(LogStream::Stdout);
        for i in 0..10 {
            out.write(format!("line {i}\n").as_bytes());
        }
        out.close();
        log.finish().await;
        let batches = collect(receiver).await;
        assert!(batches.last().is_some_and(|b| b.truncated), "{batches:?}");
        let lines: Vec<LogLine> = batches.into_iter().flat_map(|b| b.lines).collect();
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert_eq!(lines[3].line, "line 3");
        assert_eq!(lines[4].seq, 5);
        assert_eq!(lines[4].line, dropped_marker(6, 4));
    }

    #[tokio::test]
    async fn zero_lines_turns_logs_off() {
        let (sender, _receiver) = mpsc::unbounded_channel();
        let publisher = LogPublisher::to_channel(sender, "n1", settings(0));
        assert!(publisher.start(Uuid::from_u128(1), 1).is_none());
    }

    #[tokio::test]
    async fn a_failing_sink_drops_lines_without_blocking() {
        let (sender, receiver) = mpsc::unbounded_channel();
        drop(receiver);
        let publisher = LogPublisher::to_channel(sender, "n1", settings(100));
        let log = publisher
            .start(Uuid::from_u128(1), 1)
            .unwrap_or_else(|| panic!("logs are on"));
        let mut out = log.writer(LogStream::Stdout);
        out.write(b"lost\n");
        out.close();
        let finished = tokio::time::timeout(Duration::from_secs(5), log.finish()).await;
        assert!(finished.is_ok(), "finish waited on a broken sink");
    }
}
