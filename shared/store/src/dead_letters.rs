//! Messages that could never be handled, kept with their payload and why.

use crate::{Result, Store};
use serde::Serialize;
use taskyard_wire::Timestamp;
use taskyard_wire::origin::Origin;

/// A message to keep, and why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub origin: Origin,
    pub reason: String,
}

/// A kept message, as the API shows it (the payload as text when it is
/// UTF-8, which every Taskyard message is).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetterRow {
    pub id: i64,
    pub stream: String,
    pub consumer: String,
    pub stream_seq: i64,
    pub subject: String,
    pub payload: String,
    pub deliveries: i32,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

impl Store {
    /// Keeps a message; the same stream sequence twice is kept once.
    /// Returns whether it was new.
    pub async fn record_dead_letter(&self, letter: &DeadLetter) -> Result<bool> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO dead_letters (stream, consumer, stream_seq, subject, payload, \
                                           deliveries, reason) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .await?;
        let seq = i64::try_from(letter.origin.stream_seq).unwrap_or(i64::MAX);
        let deliveries = i32::try_from(letter.origin.deliveries).unwrap_or(i32::MAX);
        let inserted = client
            .execute(
                &statement,
                &[
                    &letter.origin.stream,
                    &letter.origin.consumer,
                    &seq,
                    &letter.origin.subject,
                    &letter.origin.payload,
                    &deliveries,
                    &letter.reason,
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    /// The newest dead letters first.
    pub async fn list_dead_letters(&self, limit: u32) -> Result<Vec<DeadLetterRow>> {
        self.list_dead_letters_before(limit, None).await
    }

    /// The newest dead letters first, older than the id `before` when given
    /// (cursor pagination).
    pub async fn list_dead_letters_before(
        &self,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<DeadLetterRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, stream, consumer, stream_seq, subject, \
                        payload, deliveries, reason, at \
                 FROM dead_letters WHERE ($2::bigint IS NULL OR id < $2) \
                 ORDER BY id DESC LIMIT $1",
                &[&i64::from(limit), &before],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(DeadLetterRow {
                    id: row.try_get("id")?,
                    stream: row.try_get("stream")?,
                    consumer: row.try_get("consumer")?,
                    stream_seq: row.try_get("stream_seq")?,
                    subject: row.try_get("subject")?,
                    payload: String::from_utf8_lossy(row.try_get::<_, &[u8]>("payload")?)
                        .into_owned(),
                    deliveries: row.try_get("deliveries")?,
                    reason: row.try_get("reason")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }
}
