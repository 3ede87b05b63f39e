//! Which attempts this worker is running, and a bounded memory of those it
//! finished, so that a redelivered dispatch never runs an attempt twice.
//!
//! NATS delivers a dispatch at least once: after an ack that got lost, after
//! an ack wait that ran out, or because the scheduler sent it again. The
//! attempt number is the fencing token, so `(task_id, attempt)` is the key.

use std::collections::{HashMap, HashSet, VecDeque};
use taskyard_wire::status::StatusReport;
use uuid::Uuid;

/// Finished attempts remembered unless told otherwise.
pub const DEFAULT_FINISHED_MEMORY: usize = 10_000;

/// One attempt of one task.
pub type AttemptKey = (Uuid, u32);

/// What the ledger knows of an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// Never seen (or forgotten): run it.
    New,
    /// Running here now: leave the redelivery alone.
    Running,
    /// Finished and reported: ack the redelivery.
    Finished,
    /// Finished, but its report could not be published: publish it now
    /// instead of running the attempt again.
    Unreported(StatusReport),
}

/// The running set and the finished memory.
#[derive(Debug)]
pub struct Ledger {
    running: HashSet<AttemptKey>,
    /// `Some` holds a finished report that is not durable yet.
    finished: HashMap<AttemptKey, Option<StatusReport>>,
    /// Finish order, oldest first, to forget the oldest.
    order: VecDeque<AttemptKey>,
    capacity: usize,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new(DEFAULT_FINISHED_MEMORY)
    }
}

impl Ledger {
    /// A ledger that remembers the last `capacity` finished attempts.
    pub fn new(capacity: usize) -> Ledger {
        Ledger {
            running: HashSet::new(),
            finished: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn seen(&self, key: &AttemptKey) -> Seen {
        if self.running.contains(key) {
            return Seen::Running;
        }
        match self.finished.get(key) {
            None => Seen::New,
            Some(None) => Seen::Finished,
            Some(Some(report)) => Seen::Unreported(report.clone()),
        }
    }

    /// Marks `key` as being handled here (run, or its report republished).
    pub fn start(&mut self, key: AttemptKey) {
        self.running.insert(key);
    }

    /// Moves `key` from running to finished; `unreported` is its report when
    /// publishing it failed.
    pub fn finish(&mut self, key: AttemptKey, unreported: Option<StatusReport>) {
        self.running.remove(&key);
        if self.finished.insert(key, unreported).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.finished.remove(&oldest);
            }
        }
    }

    /// Forgets a running attempt that ended without a verdict (its task
    /// panicked), so that a redelivery runs it again.
    pub fn abandon(&mut self, key: &AttemptKey) {
        self.running.remove(key);
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> AttemptKey {
        (Uuid::nil(), n)
    }

    #[test]
    fn an_attempt_goes_from_new_to_running_to_finished() {
        let mut ledger = Ledger::new(10);
        assert_eq!(ledger.seen(&key(1)), Seen::New);
        ledger.start(key(1));
        assert_eq!(ledger.seen(&key(1)), Seen::Running);
        assert_eq!(
            ledger.seen(&key(2)),
            Seen::New,
            "another attempt is another key"
        );
        ledger.finish(key(1), None);
        assert_eq!(ledger.seen(&key(1)), Seen::Finished);
        assert_eq!(ledger.running(), 0);
    }

    #[test]
    fn the_oldest_finished_attempts_are_forgotten() {
        let mut ledger = Ledger::new(3);
        for n in 0..5 {
            ledger.start(key(n));
            ledger.finish(key(n), None);
        }
        assert_eq!(ledger.seen(&key(0)), Seen::New);
        assert_eq!(ledger.seen(&key(1)), Seen::New);
        assert_eq!(ledger.seen(&key(2)), Seen::Finished);
        assert_eq!(ledger.seen(&key(4)), Seen::Finished);
    }

    #[test]
    fn an_unreported_finish_keeps_its_report_until_reported() {
        let mut ledger = Ledger::new(3);
        let report = StatusReport::Started {
            task_id: Uuid::nil(),
            attempt: 1,
            node_id: "n".to_owned(),
            at: taskyard_wire::now(),
        };
        ledger.start(key(1));
        ledger.finish(key(1), Some(report.clone()));
        assert_eq!(ledger.seen(&key(1)), Seen::Unreported(report));
        ledger.start(key(1));
        assert_eq!(ledger.seen(&key(1)), Seen::Running);
        ledger.finish(key(1), None);
        assert_eq!(ledger.seen(&key(1)), Seen::Finished);
        assert_eq!(ledger.order.len(), 1, "finishing twice is remembered once");
    }

    #[test]
    fn an_abandoned_attempt_can_run_again() {
        let mut ledger = Ledger::new(3);
        ledger.start(key(1));
        ledger.abandon(&key(1));
        assert_eq!(ledger.seen(&key(1)), Seen::New);
    }
}
