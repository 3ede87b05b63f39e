//! `GET /console/events`: the event stream as server-sent events.
//!
//! The first browser that connects starts one core NATS subscription to
//! `taskyard.events.>`; every event message (a batch of task transitions, a
//! node or pool change) becomes one compact SSE event (`subject`, and for
//! task batches how many and the first few task ids and states) on a bounded
//! broadcast channel that every connected browser reads. A browser that
//! falls behind loses the oldest events and is told `lagged` (it then simply
//! reloads its live regions); nothing ever waits for a slow client. A
//! comment line every 15 s keeps proxies from closing an idle stream.

use crate::AppState;
use axum::extract::{Extension, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::StreamExt;
use futures::stream::Stream;
use serde::Serialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use taskyard_wire::TaskState;
use tokio::sync::{OnceCell, broadcast};
use uuid::Uuid;

/// Events buffered per browser before it lags.
pub const CAPACITY: usize = 256;
/// Task ids sent with one event at most (a batch may hold a thousand).
pub const TASKS_PER_EVENT: usize = 20;
/// Between keep-alive comments.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a browser is told of one event message.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LiveEvent {
    pub subject: String,
    /// Transitions in the message (task events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// The first few of them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<LiveTask>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LiveTask {
    pub id: Uuid,
    pub state: TaskState,
}

/// The console's fan-out: one NATS subscription, started on first use.
#[derive(Debug, Clone, Default)]
pub struct Hub {
    sender: Arc<OnceCell<broadcast::Sender<Arc<str>>>>,
}

impl Hub {
    /// A receiver of the event stream, subscribing to NATS the first time.
    pub async fn subscribe(
        &self,
        nats: &async_nats::Client,
    ) -> Result<broadcast::Receiver<Arc<str>>, async_nats::SubscribeError> {
        let sender = self
            .sender
            .get_or_try_init(|| async {
                let subscription = nats
                    .subscribe(format!("{}.>", taskyard_wire::subjects::EVENTS_PREFIX))
                    .await?;
                let (sender, _) = broadcast::channel(CAPACITY);
                tokio::spawn(forward(subscription, sender.clone()));
                Ok::<_, async_nats::SubscribeError>(sender)
            })
            .await?;
        Ok(sender.subscribe())
    }
}

/// Turns NATS messages into compact JSON on the channel, until the
/// subscription ends.
async fn forward(mut subscription: async_nats::Subscriber, sender: broadcast::Sender<Arc<str>>) {
    while let Some(message) = subscription.next().await {
        let event = summarize(&message.subject, &message.payload);
        if let Ok(json) = serde_json::to_string(&event) {
            // No receivers is fine: nobody is watching.
            let _ = sender.send(Arc::from(json));
        }
    }
}

/// The compact form of one event message.
pub fn summarize(subject: &str, payload: &[u8]) -> LiveEvent {
    #[derive(serde::Deserialize)]
    struct Batch {
        events: Vec<Transition>,
    }
    #[derive(serde::Deserialize)]
    struct Transition {
        task_id: Uuid,
        state: TaskState,
    }
    let mut event = LiveEvent {
        subject: subject.to_owned(),
        count: None,
        tasks: Vec::new(),
    };
    if subject.starts_with("taskyard.events.task.")
        && let Ok(batch) = serde_json::from_slice::<Batch>(payload)
    {
        event.count = Some(batch.events.len());
        event.tasks = batch
            .events
            .into_iter()
            .take(TASKS_PER_EVENT)
            .map(|t| LiveTask {
                id: t.task_id,
                state: t.state,
            })
            .collect();
    }
    event
}

/// `GET /console/events`: `event: change` per event message, `event:
/// lagged` when this browser fell behind.
pub async fn events(
    State(state): State<AppState>,
    Extension(hub): Extension<Hub>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, super::PageError> {
    let receiver = hub.subscribe(&state.nats).await.map_err(|err| {
        crate::ApiError::Unavailable(format!("cannot subscribe to the event stream: {err}"))
    })?;
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(json) => Event::default().event("change").data(&*json),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                Event::default().event("lagged").data(n.to_string())
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    });
    let hello = futures::stream::once(async { Ok(Event::default().event("hello").data("{}")) });
    Ok(Sse::new(hello.chain(stream)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_batches_are_summarized() {
        let id = Uuid::now_v7();
        let payload = serde_json::json!({"events": [
            {"task_id": id, "pool": "default", "attempt": 1, "state": "running", "at": "2026-01-01T00:00:00Z"}
        ]});
        let event = summarize(
            "taskyard.events.task.running",
            &serde_json::to_vec(&payload).expect("json"),
        );
        assert_eq!(event.count, Some(1));
        assert_eq!(event.tasks[0].id, id);
        assert_eq!(event.tasks[0].state, TaskState::Running);
        let event = summarize("taskyard.events.node.lost", b"{}");
        assert_eq!(event.count, None);
        assert!(event.tasks.is_empty());
    }
}
