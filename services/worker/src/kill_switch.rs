//! One kill switch per running attempt, for `kill` control messages.
//!
//! The pool manager sends `kill` when an attempt timed out by its own
//! deadline, was cancelled, or was handed to another node while this one
//! was away (frozen, partitioned). The attempt's driver watches its switch
//! like the drain's: the process group is killed and the attempt ends.
//!
//! The worker pulls them itself when it fences ([`crate::fencing`]): cut
//! off longer than the lost threshold, it stops every attempt it runs, since
//! the pool manager's `kill` may never reach it.

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
    /// Whether a fencing pulled it (or found it pulled): each attempt is
    /// counted and logged as fenced once, however long the cut-off lasts.
    fenced: bool,
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
                fenced: false,
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

    /// Kills every attempt this node runs because the worker fenced itself;
    /// returns those not fenced before. An attempt whose switch was already
    /// pulled (a `kill` that came first) keeps that reason, but still counts
    /// as fenced: it was running while the worker was cut off.
    pub fn fence(&self, reason: &str) -> Vec<AttemptKey> {
        let mut armed = self.lock();
        let mut fenced = Vec::new();
        for (key, switch) in armed.iter_mut() {
            switch.reason.get_or_insert_with(|| reason.to_owned());
            switch.token.cancel();
            if !switch.fenced {
                switch.fenced = true;
                fenced.push(*key);
            }
        }
        fenced
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
    fn a_fencing_trips_every_switch_once_and_keeps_an_earlier_kill_s_reason() {
        let switches = KillSwitches::default();
        let drain = CancellationToken::new();
        let killed = (Uuid::from_u128(3), 1);
        let running = (Uuid::from_u128(4), 2);
        let first = switches.arm(killed, &drain);
        let second = switches.arm(running, &drain);
        assert!(switches.pull(&killed, "moved to another node"));

        let mut fenced = switches.fence("cut off");
        fenced.sort();
        assert_eq!(fenced, vec![killed, running]);
        assert!(first.is_cancelled() && second.is_cancelled());
        assert!(
            switches.fence("cut off again").is_empty(),
            "an attempt is fenced once"
        );

        let later = (Uuid::from_u128(5), 1);
        switches.arm(later, &drain);
        assert_eq!(
            switches.fence("still cut off"),
            vec![later],
            "an attempt started during the cut-off is fenced too"
        );
        assert_eq!(
            switches.disarm(&killed).as_deref(),
            Some("moved to another node")
        );
        assert_eq!(switches.disarm(&running).as_deref(), Some("cut off"));
        assert!(!drain.is_cancelled(), "fencing is not a drain");
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
