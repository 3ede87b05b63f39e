//! Setting durable timers: scheduled messages on the TIMERS stream.
//!
//! A timer for task T of kind K is published on
//! `taskyard.timers.sched.K.T` with `Nats-Schedule: @at <time>` and
//! `Nats-Schedule-Target: taskyard.timers.fire.K.T`; the server delivers it
//! on the target subject at that second, where the pool manager consumes it.
//! Setting the same timer again replaces it, so every caller may set a timer
//! as often as it likes (after a redelivery, say) without it firing twice.

use crate::batching::{BatchError, Outgoing, publish_all};
use async_nats::jetstream;
use taskyard_wire::timer::Timer;
use taskyard_wire::{Timestamp, codec, subjects};
use time::format_description::well_known::Rfc3339;

/// The message that sets `timer`.
pub fn schedule(timer: &Timer) -> Outgoing {
    let kind = timer.kind.as_str();
    Outgoing::new(
        subjects::timer_schedule(kind, &timer.task_id),
        codec::encode(timer),
    )
    .with_header(
        "Nats-Schedule",
        format!("@at {}", whole_second_after(timer.due_at)),
    )
    .with_header(
        "Nats-Schedule-Target",
        subjects::timer_fire(kind, &timer.task_id),
    )
}

/// Sets every timer; they are durable when this returns `Ok`.
pub async fn set_all(js: &jetstream::Context, timers: &[Timer]) -> Result<(), BatchError> {
    if timers.is_empty() {
        return Ok(());
    }
    publish_all(js, timers.iter().map(schedule).collect()).await
}

/// Schedules fire on whole seconds: round up, so that a timer never fires
/// before it is due (the consumer waits out any rest anyway).
fn whole_second_after(at: Timestamp) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let rounded = if at.nanosecond() == 0 {
        at
    } else {
        at.replace_nanosecond(0).unwrap_or(at) + time::Duration::SECOND
    };
    rounded
        .format(&Rfc3339)
        .unwrap_or_else(|_| rounded.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskyard_wire::timer::TimerKind;

    #[test]
    fn a_timer_fires_on_the_next_whole_second_in_utc() {
        let due = time::OffsetDateTime::parse("2026-11-24T10:00:00.25+01:00", &Rfc3339)
            .expect("a valid time");
        let timer = Timer {
            kind: TimerKind::Retry,
            task_id: Default::default(),
            attempt: 1,
            due_at: due,
        };
        let message = schedule(&timer);
        assert_eq!(
            message.subject,
            "taskyard.timers.sched.retry.00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(
            message.headers[0],
            ("Nats-Schedule", "@at 2026-11-24T09:00:01Z".to_owned())
        );
        assert_eq!(
            message.headers[1].1,
            "taskyard.timers.fire.retry.00000000-0000-0000-0000-000000000000"
        );
    }
}
