//! Consumer lag as metrics: how far each durable consumer a service reads is
//! behind its stream. A growing `taskyard_consumer_pending` is the first sign
//! of a service that cannot keep up.

use crate::shutdown::Shutdown;
use async_nats::jetstream;
use std::time::Duration;

/// How often consumer lag is read.
pub const LAG_EVERY: Duration = Duration::from_secs(10);

/// Reads `(stream, consumer)` info every [`LAG_EVERY`] until shutdown and
/// sets `taskyard_consumer_pending` (messages not yet delivered) and
/// `taskyard_consumer_ack_pending` (delivered, not yet acknowledged).
pub fn spawn_lag_watch(
    js: jetstream::Context,
    consumers: &[(&str, &str)],
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    let consumers: Vec<(String, String)> = consumers
        .iter()
        .map(|(stream, consumer)| ((*stream).to_owned(), (*consumer).to_owned()))
        .collect();
    tokio::spawn(async move {
        loop {
            for (stream, consumer) in &consumers {
                match read_lag(&js, stream, consumer).await {
                    Ok((pending, ack_pending)) => {
                        let labels = [("stream", stream.clone()), ("consumer", consumer.clone())];
                        metrics::gauge!("taskyard_consumer_pending", &labels).set(pending as f64);
                        metrics::gauge!("taskyard_consumer_ack_pending", &labels)
                            .set(ack_pending as f64);
                    }
                    Err(err) => {
                        tracing::debug!(stream, consumer, error = %err, "reading consumer lag failed");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(LAG_EVERY) => {}
            }
        }
    })
}

async fn read_lag(
    js: &jetstream::Context,
    stream: &str,
    consumer: &str,
) -> anyhow::Result<(u64, usize)> {
    let stream = js.get_stream(stream).await?;
    let info = stream.consumer_info(consumer).await?;
    Ok((info.num_pending, info.num_ack_pending))
}
