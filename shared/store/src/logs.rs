//! Output lines of `exec` attempts: stored in batches (one statement per
//! batch, duplicates ignored) and read in pages after a cursor.

use crate::{Result, Store};
use serde::Serialize;
use taskyard_wire::Timestamp;
use uuid::Uuid;

/// One line to store.
#[derive(Debug, Clone)]
pub struct NewLogLine {
    pub task_id: Uuid,
    pub attempt: u32,
    pub seq: u64,
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    pub line: String,
    pub at: Timestamp,
}

/// A stored line, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLineRow {
    pub attempt: u32,
    pub seq: u64,
    pub stream: String,
    pub line: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
}

/// Where a page of lines starts: after this attempt's line `seq`. Lines are
/// ordered by attempt, then seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogCursor {
    pub attempt: u32,
    pub seq: u64,
}

impl LogCursor {
    /// The cursor just after `row`.
    pub fn after(row: &LogLineRow) -> LogCursor {
        LogCursor {
            attempt: row.attempt,
            seq: row.seq,
        }
    }
}

impl Store {
    /// Stores lines; a line already stored (same task, attempt and seq) and a
    /// line of a task that does not exist are skipped. Returns how many were
    /// new.
    pub async fn insert_log_lines(&self, lines: &[NewLogLine]) -> Result<u64> {
        if lines.is_empty() {
            return Ok(0);
        }
        let mut task_ids = Vec::with_capacity(lines.len());
        let mut attempts = Vec::with_capacity(lines.len());
        let mut seqs = Vec::with_capacity(lines.len());
        let mut streams = Vec::with_capacity(lines.len());
        let mut texts = Vec::with_capacity(lines.len());
        let mut ats = Vec::with_capacity(lines.len());
        for line in lines {
            task_ids.push(line.task_id);
            attempts.push(crate::to_i32(line.attempt));
            seqs.push(crate::to_i64(line.seq));
            streams.push(line.stream);
            // Postgres text cannot hold NUL.
            texts.push(line.line.replace('\0', "\u{FFFD}"));
            ats.push(line.at);
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO task_logs (task_id, attempt, seq, stream, line, at) \
                 SELECT l.task_id, l.attempt, l.seq, l.stream, l.line, l.at \
                 FROM unnest($1::uuid[], $2::int[], $3::bigint[], $4::text[], $5::text[], \
                             $6::timestamptz[]) AS l(task_id, attempt, seq, stream, line, at) \
                 JOIN tasks t ON t.id = l.task_id \
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        let inserted = client
            .execute(
                &statement,
                &[&task_ids, &attempts, &seqs, &streams, &texts, &ats],
            )
            .await?;
        Ok(inserted)
    }

    /// Up to `limit` lines of a task after `after` (from the first when
    /// `None`), in order: attempt, then seq.
    pub async fn read_log_lines(
        &self,
        task_id: Uuid,
        after: Option<LogCursor>,
        limit: u32,
    ) -> Result<Vec<LogLineRow>> {
        let after = after.unwrap_or_default();
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT attempt, seq, stream, line, at FROM task_logs \
                 WHERE task_id = $1 AND (attempt, seq) > ($2, $3) \
                 ORDER BY attempt, seq LIMIT $4",
            )
            .await?;
        let rows = client
            .query(
                &statement,
                &[
                    &task_id,
                    &crate::to_i32(after.attempt),
                    &crate::to_i64(after.seq),
                    &i64::from(limit),
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(LogLineRow {
                    attempt: crate::to_u32(row.try_get("attempt")?),
                    seq: u64::try_from(row.try_get::<_, i64>("seq")?).unwrap_or(0),
                    stream: row.try_get("stream")?,
                    line: row.try_get("line")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }
}
