//! Worker → pool-manager: the lines an `exec` attempt writes on stdout and
//! stderr, in batches, on `taskyard.logs.<node>`.
//!
//! Lines are numbered per attempt from 1 (`seq`), so a batch delivered twice
//! is stored once: `(task_id, attempt, seq)` is the key in Postgres. An
//! attempt keeps at most the worker's `log_max_lines` lines; past it the
//! batch says `truncated` and one last line (one more `seq`) says how many
//! lines were dropped.

use crate::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }

    /// The inverse of [`LogStream::as_str`].
    pub fn parse(text: &str) -> Option<LogStream> {
        match text {
            "stdout" => Some(LogStream::Stdout),
            "stderr" => Some(LogStream::Stderr),
            _ => None,
        }
    }
}

/// One line of output, without its line end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogLine {
    /// Position in the attempt's output, from 1, over both streams.
    pub seq: u64,
    pub stream: LogStream,
    /// The line as UTF-8 (invalid bytes replaced); a line longer than the
    /// worker's `log_max_line_bytes` is cut and ends with a marker saying so.
    pub line: String,
    /// When the worker read it.
    #[serde(with = "crate::rfc3339")]
    #[schemars(with = "String")]
    pub at: Timestamp,
}

/// Published on `taskyard.logs.<node>` (the LOGS stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogBatch {
    pub task_id: Uuid,
    pub attempt: u32,
    pub node_id: String,
    pub lines: Vec<LogLine>,
    /// The attempt reached its line limit: lines after it were dropped, and
    /// the last line of this batch says how many.
    #[serde(default)]
    pub truncated: bool,
}

impl LogBatch {
    /// The `Nats-Msg-Id`: the same batch published twice is kept once.
    pub fn msg_id(&self) -> String {
        let first = self.lines.first().map(|l| l.seq).unwrap_or(0);
        let last = self.lines.last().map(|l| l.seq).unwrap_or(0);
        format!("{}:{}:logs:{first}-{last}", self.task_id, self.attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_back_with_snake_case_streams() {
        let batch = LogBatch {
            task_id: Uuid::from_u128(7),
            attempt: 1,
            node_id: "n1".to_owned(),
            lines: vec![LogLine {
                seq: 1,
                stream: LogStream::Stderr,
                line: "oops".to_owned(),
                at: crate::now(),
            }],
            truncated: false,
        };
        let bytes = crate::codec::encode(&batch);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("\"stream\":\"stderr\""), "{text}");
        let read: LogBatch = crate::codec::decode(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read, batch);
        assert_eq!(LogStream::parse("stdout"), Some(LogStream::Stdout));
        assert_eq!(LogStream::parse("other"), None);
    }
}
