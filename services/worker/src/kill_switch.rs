//! One kill switch per running attempt, for `kill` control messages.
//!
//! The pool manager sends `kill` when an attempt timed out by its own
//! deadline, was cancelled, or was handed to another node while this one
//! was away (frozen, partitioned). The attempt's driver watches its switch
//! like the drain's: the process group is killed and the attempt ends.

use crate::ledger::AttemptKey;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
pub struct KillSwitches {
    armed: Mutex<HashMap<AttemptKey, Switch>>,
}

#[derive(Debug)]
struct Switch {
    token: CancellationToken,
    /// Why it was pulled, once it was.
    reason: Option<String>,
}

impl KillSwitches {
    /// A switch for `key` that also trips when `parent` (the drain's) does.
    pub fn arm(&self, key: AttemptKey, parent: &CancellationToken) -> CancellationToken {
        let token = parent.child_token();
        self.lock().insert(
            key,
            Switch {
                token: token.clone(),
                reason: None,
            },
        );
        token
    }

    /// Forgets `key`'s switch; returns why it was pulled, if it was.
    pub fn disarm(&self, key: &AttemptKey) -> Option<String> {
        self.lock().remove(key).and_then(|switch| switch.reason)
    }

    /// Kills the attempt `key`, if this node runs it. Returns whether it did.
    pub fn pull(&self, key: &AttemptKey, reason: &str) -> bool {
        match self.lock().get_mut(key) {
            Some(switch) => {
                switch.reason.get_or_insert_with(|| reason.to_owned());
                switch.token.cancel();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<AttemptKey, Switch>> {
        // A panic elsewhere while holding the lock leaves the map usable.
        self.armed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_pulled_switch_trips_its_attempt_only_and_says_why() {
        let switches = KillSwitches::default();
        let drain = CancellationToken::new();
        let one = (Uuid::from_u128(1), 1);
        let two = (Uuid::from_u128(1), 2);
        let first = switches.arm(one, &drain);
        let second = switches.arm(two, &drain);
        assert!(switches.pull(&one, "cancelled"));
        assert!(first.is_cancelled());
        assert!(!second.is_cancelled());
        assert_eq!(switches.disarm(&one).as_deref(), Some("cancelled"));
        assert_eq!(switches.disarm(&two), None);
        assert!(
            !switches.pull(&one, "again"),
            "a finished attempt has no switch"
        );
    }

    #[test]
    fn the_drain_trips_every_switch() {
        let switches = KillSwitches::default();
        let drain = CancellationToken::new();
        let token = switches.arm((Uuid::from_u128(2), 1), &drain);
        drain.cancel();
        assert!(token.is_cancelled());
    }
}
