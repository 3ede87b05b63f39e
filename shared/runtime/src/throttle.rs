//! A warning that repeats is logged once an interval, with a count.
//!
//! A consumer that meets the same trouble on every message (Postgres away,
//! a server refusing an ack) would otherwise write thousands of identical
//! lines a second and fill the disk. [`warn_throttled!`] and
//! [`error_throttled!`] log the first occurrence at once, then at most one
//! line per [`DEFAULT_INTERVAL`] for that call site, carrying how many were
//! held back since the last line (`suppressed`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[doc(hidden)]
pub use tracing as __tracing;

/// How often a repeating warning is logged at most.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The state of one call site: when it last logged, and how many it has
/// held back since.
#[derive(Debug)]
pub struct Throttle {
    interval_ms: u64,
    /// Milliseconds since [`epoch`] of the last line, plus one (0: never).
    last: AtomicU64,
    held_back: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Throttle {
    pub const fn new(interval: Duration) -> Throttle {
        Throttle {
            interval_ms: interval.as_millis() as u64,
            last: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(held back since the last line)` when a line may be logged now;
    /// `None` (and one more held back) when it is too soon.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(epoch().elapsed().as_millis() as u64 + 1)
    }

    fn admit_at(&self, now: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= self.interval_ms;
        if due
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held_back.swap(0, Ordering::Relaxed));
        }
        self.held_back.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// `tracing::warn!`, at most once per [`DEFAULT_INTERVAL`] for this call
/// site, with a `suppressed` field counting the lines held back.
#[macro_export]
macro_rules! warn_throttled {
    ($($arg:tt)+) => {{
        static THROTTLE: $crate::throttle::Throttle =
            $crate::throttle::Throttle::new($crate::throttle::DEFAULT_INTERVAL);
        if let Some(suppressed) = THROTTLE.admit() {
            $crate::throttle::__tracing::warn!(suppressed, $($arg)+);
        }
    }};
}

/// `tracing::error!`, throttled like [`warn_throttled!`].
#[macro_export]
macro_rules! error_throttled {
    ($($arg:tt)+) => {{
        static THROTTLE: $crate::throttle::Throttle =
            $crate::throttle::Throttle::new($crate::throttle::DEFAULT_INTERVAL);
        if let Some(suppressed) = THROTTLE.admit() {
            $crate::throttle::__tracing::error!(suppressed, $($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_goes_out_and_repeats_wait_for_the_interval() {
        let throttle = Throttle::new(Duration::from_millis(1000));
        assert_eq!(throttle.admit_at(1), Some(0));
        for now in 2..500 {
            assert_eq!(throttle.admit_at(now), None);
        }
        // 498 held back, told in the next line.
        assert_eq!(throttle.admit_at(1001), Some(498));
        assert_eq!(throttle.admit_at(1002), None);
        assert_eq!(throttle.admit_at(2001), Some(1));
    }

    #[test]
    fn each_call_site_logs_once_per_interval() {
        let text = crate::log_capture::logged(|| {
            for _ in 0..100 {
                crate::warn_throttled!(attempt = 1, "first site");
                crate::error_throttled!(error = %"boom", "second site");
            }
        });
        assert_eq!(text.matches("first site").count(), 1, "{text}");
        assert_eq!(text.matches("second site").count(), 1, "{text}");
        assert!(text.contains("suppressed=0"), "{text}");
    }
}
