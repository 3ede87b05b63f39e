//! Coalesces status reports: every report that becomes ready while the
//! previous publish awaits its ack goes out in the next message. Under load a
//! message carries hundreds of reports; when idle a report leaves at once.
//! Each caller learns whether its own report is stored.

use async_nats::jetstream;
use taskyard_runtime::batching::{self, Outgoing};
use taskyard_wire::codec;
use taskyard_wire::status::StatusReport;
use tokio::sync::{mpsc, oneshot};

/// Most reports in one message.
pub const MAX_REPORTS_PER_MESSAGE: usize = 1000;
/// A message stops growing past this size (a report holds up to twice the
/// output limit of an `exec` attempt).
pub const MAX_MESSAGE_BYTES: usize = 512 * 1024;
/// Reports waiting for their turn before callers wait for room.
const QUEUE: usize = 4096;

/// Why a report was not stored.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ReportError {
    pub message: String,
    /// Sending the same bytes again would fail the same way.
    pub permanent: bool,
}

type Pending = (Vec<u8>, oneshot::Sender<Result<(), ReportError>>);

/// The sending side; cheap to clone. The publishing task ends when every
/// clone is dropped.
#[derive(Debug, Clone)]
pub struct Reporter {
    queue: mpsc::Sender<Pending>,
}

impl Reporter {
    /// Starts publishing on `subject` (this node's status subject).
    pub fn start(js: jetstream::Context, subject: String) -> Reporter {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(publish_loop(js, subject, receiver));
        Reporter { queue }
    }

    /// Publishes `report` with the next message and waits until it is stored.
    pub async fn send(&self, report: &StatusReport) -> Result<(), ReportError> {
        let (done, result) = oneshot::channel();
        let stopped = || ReportError {
            message: "the reporter stopped".to_owned(),
            permanent: true,
        };
        self.queue
            .send((codec::encode(report), done))
            .await
            .map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

async fn publish_loop(
    js: jetstream::Context,
    subject: String,
    mut receiver: mpsc::Receiver<Pending>,
) {
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(first) => first,
            None => match receiver.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut bytes = first.0.len();
        let mut batch = vec![first];
        while batch.len() < MAX_REPORTS_PER_MESSAGE {
            match receiver.try_recv() {
                Ok(next) if bytes + next.0.len() > MAX_MESSAGE_BYTES => {
                    carried = Some(next);
                    break;
                }
                Ok(next) => {
                    bytes += next.0.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let payload = batch_payload(batch.iter().map(|(report, _)| report.as_slice()));
        let result = batching::publish_all(&js, vec![Outgoing::new(subject.clone(), payload)])
            .await
            .map_err(|err| ReportError {
                permanent: batching::is_permanent(&err),
                message: err.to_string(),
            });
        metrics::histogram!("taskyard_worker_reports_per_message").record(batch.len() as f64);
        for (_, done) in batch {
            let _ = done.send(result.clone());
        }
    }
}

/// `{"reports":[...]}` from already encoded reports (a `StatusBatch`),
/// without encoding them twice.
fn batch_payload<'a>(reports: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut payload = b"{\"reports\":[".to_vec();
    for (index, report) in reports.enumerate() {
        if index > 0 {
            payload.push(b',');
        }
        payload.extend_from_slice(report);
    }
    payload.extend_from_slice(b"]}");
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskyard_wire::status::StatusMessage;
    use uuid::Uuid;

    #[test]
    fn the_payload_is_a_status_batch() {
        let report = StatusReport::Started {
            task_id: Uuid::from_u128(1),
            attempt: 2,
            node_id: "n".to_owned(),
            at: taskyard_wire::now(),
        };
        let encoded = [codec::encode(&report), codec::encode(&report)];
        let payload = batch_payload(encoded.iter().map(Vec::as_slice));
        let read: StatusMessage = codec::decode(&payload).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.into_reports(), vec![report.clone(), report]);
    }
}
