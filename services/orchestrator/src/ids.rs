//! Task ids for submissions that name none.
//!
//! A submission taken from the stream may be delivered again (the orchestrator
//! crashed after writing, before acking). Its tasks must then get the same ids,
//! so that the second write is a no-op. The id is therefore a UUIDv7 whose
//! time is the message's stream time stamp and whose "random" bits are a
//! fixed mix of its stream sequence, time and position in the batch.

use uuid::Uuid;

/// Where a task came from in the SUBMIT stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOrigin {
    pub sequence: u64,
    /// The message's stream time stamp, Unix nanoseconds.
    pub published_nanos: i128,
}

/// The id of task `index` of the message at `origin`.
pub fn derived_id(origin: StreamOrigin, index: usize) -> Uuid {
    let millis = u64::try_from(origin.published_nanos / 1_000_000).unwrap_or(0);
    let message = splitmix64(origin.sequence ^ splitmix64(origin.published_nanos as u64));
    // Every random byte depends on the index: tasks of one batch share the
    // message's sequence and time, and must still never share an id.
    // splitmix64 is a bijection, so distinct indexes give distinct `high`.
    let high = splitmix64(message ^ (index as u64));
    let low = splitmix64(high ^ 0xA5A5_A5A5_A5A5_A5A5);
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&high.to_be_bytes());
    random[8..].copy_from_slice(&low.to_be_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// The position given to a workflow in [`derived_id`]: beyond any task's
/// index (at most `MAX_BATCH_TASKS`), so it never shares a task's id.
pub const WORKFLOW_INDEX: usize = usize::MAX;

/// What [`derived_from`] derives from a step: its compensation task.
pub const COMPENSATION: u64 = 0xC0AA_E45A_7E00_0001;

/// An id derived from another one: the same `parent` and `salt` always give
/// the same id, so a compensation created again after a redelivered event is
/// the same task. It keeps the parent's time, so it sorts with it.
pub fn derived_from(parent: Uuid, salt: u64) -> Uuid {
    let millis = parent
        .get_timestamp()
        .map(|ts| {
            let (seconds, nanos) = ts.to_unix();
            seconds.saturating_mul(1000) + u64::from(nanos / 1_000_000)
        })
        .unwrap_or(0);
    let (high, low) = parent.as_u64_pair();
    let mixed = splitmix64(high ^ splitmix64(low ^ splitmix64(salt)));
    let tail = splitmix64(mixed ^ 0x5A5A_5A5A_5A5A_5A5A);
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&mixed.to_be_bytes());
    random[8..].copy_from_slice(&tail.to_be_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// A fresh id for a request/reply submission (a retry there is the client's
/// to make idempotent, with `id` or `idempotency_key`).
pub fn fresh_id() -> Uuid {
    Uuid::now_v7()
}

/// SplitMix64: a fixed, well-mixing 64-bit permutation; stable across builds,
/// unlike the standard library's hasher.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_message_gives_the_same_ids() {
        let origin = StreamOrigin {
            sequence: 42,
            published_nanos: 1_764_000_000_123_456_789,
        };
        assert_eq!(derived_id(origin, 0), derived_id(origin, 0));
        assert_ne!(derived_id(origin, 0), derived_id(origin, 1));
        let next = StreamOrigin {
            sequence: 43,
            ..origin
        };
        assert_ne!(derived_id(origin, 0), derived_id(next, 0));
        assert_eq!(derived_id(origin, 0).get_version_num(), 7);
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let step = Uuid::now_v7();
        let undo = derived_from(step, COMPENSATION);
        assert_eq!(undo, derived_from(step, COMPENSATION));
        assert_ne!(undo, step);
        assert_ne!(undo, derived_from(Uuid::now_v7(), COMPENSATION));
        assert_eq!(undo.get_version_num(), 7);
        assert_eq!(
            undo.get_timestamp().map(|t| t.to_unix().0),
            step.get_timestamp().map(|t| t.to_unix().0)
        );
        let origin = StreamOrigin {
            sequence: 1,
            published_nanos: 1_764_000_000_000_000_000,
        };
        assert_ne!(derived_id(origin, WORKFLOW_INDEX), derived_id(origin, 0));
    }

    #[test]
    fn tasks_of_one_large_batch_never_share_an_id() {
        let origin = StreamOrigin {
            sequence: 7,
            published_nanos: 1_764_000_000_000_000_000,
        };
        let ids: std::collections::HashSet<Uuid> = (0..taskyard_wire::task::MAX_BATCH_TASKS)
            .map(|i| derived_id(origin, i))
            .collect();
        assert_eq!(ids.len(), taskyard_wire::task::MAX_BATCH_TASKS);
    }
}
