//! Self-fencing: a worker cut off from NATS for longer than the resource
//! manager's lost threshold stops its running attempts itself.
//!
//! After that long without a heartbeat the resource manager declares the node
//! lost and the pool manager queues its attempts again, so they may already
//! run elsewhere. Attempt fencing keeps Postgres right whatever this worker
//! reports later, but only this worker can stop the old run, and the pool
//! manager's `kill` is core NATS: a partitioned worker never gets it, and a
//! frozen one gets it only on waking, racing its command's exit. So the worker
//! judges for itself, by one rule: it is cut off when its last proof of
//! contact is older than the threshold. Its proofs:
//!
//! - Its own clock. A tick that comes far later than due means the process
//!   stood still (SIGSTOP, a paused VM, a host starved of CPU): it sent
//!   nothing meanwhile, whatever the connection says.
//! - Heartbeat echoes. A core NATS publish has no ack, and `flush` in
//!   async-nats only hands the bytes to the socket, which the kernel takes
//!   even across a partition. So every heartbeat is followed by a message to
//!   the worker's own inbox ([`Echo`]): NATS keeps one connection's messages
//!   in order, so when the echo comes back, the heartbeat before it reached
//!   the server.
//! - The connection state names the cause only: a disconnected client gets
//!   no echoes either.
//!
//! When cut off, the worker pulls every running attempt's kill switch with a
//! reason that says why; their drivers stop the process groups, and the
//! attempts end as failed. The executor also asks right before it reports an
//! attempt, so that a command that exited during a freeze is fenced rather
//! than reported as a success before the next tick would have noticed.
//!
//! The decision is [`Watch`], pure and clock-free; [`Fence`] applies it.

use crate::kill_switch::KillSwitches;
use futures::StreamExt;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Counter of attempts this worker stopped because it was cut off.
pub const METRIC_FENCED: &str = "taskyard_worker_fenced_attempts_total";
/// The longest tick of the clock watch; shorter when the threshold is short,
/// so that a freeze is noticed within a fraction of it.
const MAX_TICK: Duration = Duration::from_secs(1);

/// What the worker saw that tells it it was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Its clock jumped between two ticks: the process stood still.
    Frozen,
    /// The NATS connection is down.
    Disconnected,
    /// Connected as far as the client knows, but no heartbeat came back.
    Unconfirmed,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Frozen => "frozen",
            Cause::Disconnected => "disconnected",
            Cause::Unconfirmed => "unconfirmed",
        }
    }

    fn explained(self) -> &'static str {
        match self {
            Cause::Frozen => "its process was frozen: its clock skipped ahead",
            Cause::Disconnected => "NATS was unreachable",
            Cause::Unconfirmed => "no heartbeat got through to NATS",
        }
    }
}

/// A cut-off longer than the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutOff {
    pub cause: Cause,
    /// How long the worker has had no proof of contact.
    pub lasted: Duration,
    pub threshold: Duration,
}

impl CutOff {
    /// Why a fenced attempt ended, as its report says.
    pub fn reason(&self) -> String {
        format!("{self}; the attempt was stopped, another node may run it")
    }
}

impl fmt::Display for CutOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the worker was cut off for {} ({}), longer than the lost threshold of {}",
            seconds(self.lasted),
            self.cause.explained(),
            seconds(self.threshold)
        )
    }
}

/// `41 s`, or `2.5 s` when the tenths matter.
fn seconds(duration: Duration) -> String {
    let tenths = duration.as_millis() / 100;
    if tenths.is_multiple_of(10) {
        format!("{} s", tenths / 10)
    } else {
        format!("{}.{} s", tenths / 10, tenths % 10)
    }
}

/// What one look at the clock and the echoes says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    InTouch,
    /// In touch again after a cut-off.
    Recovered,
    /// Cut off; `first` on the look that found it, false while it lasts.
    CutOff {
        cut: CutOff,
        first: bool,
    },
}

/// The fencing decision: when the worker last saw its own clock run and last
/// had proof of contact, and whether it is cut off now.
#[derive(Debug, Clone)]
pub struct Watch {
    threshold: Duration,
    last_look: Instant,
    last_contact: Instant,
    cut_off: bool,
}

impl Watch {
    /// A watch that counts from `now`, when the worker has just connected.
    pub fn new(threshold: Duration, now: Instant) -> Watch {
        Watch {
            threshold,
            last_look: now,
            last_contact: now,
            cut_off: false,
        }
    }

    /// A heartbeat sent at `sent_at` is known to have reached NATS. Echoes
    /// may come back out of order; an older one proves nothing new.
    pub fn confirmed(&mut self, sent_at: Instant) {
        self.last_contact = self.last_contact.max(sent_at);
    }

    /// Looks at the clock at `now`; `connected` is what the NATS client says.
    /// A cut-off strictly longer than the threshold counts: the resource
    /// manager waits out the whole threshold too.
    pub fn look(&mut self, now: Instant, connected: bool) -> Verdict {
        let gap = now.saturating_duration_since(self.last_look);
        self.last_look = self.last_look.max(now);
        let silence = now.saturating_duration_since(self.last_contact);
        let cut = if gap > self.threshold {
            // An echo that came back after waking says nothing about the
            // freeze; one from before it makes the silence the longer span.
            Some((Cause::Frozen, gap.max(silence)))
        } else if silence > self.threshold {
            let cause = if connected {
                Cause::Unconfirmed
            } else {
                Cause::Disconnected
            };
            Some((cause, silence))
        } else {
            None
        };
        match cut {
            Some((cause, lasted)) => {
                let first = !self.cut_off;
                self.cut_off = true;
                Verdict::CutOff {
                    cut: CutOff {
                        cause,
                        lasted,
                        threshold: self.threshold,
                    },
                    first,
                }
            }
            None if self.cut_off => {
                self.cut_off = false;
                Verdict::Recovered
            }
            None => Verdict::InTouch,
        }
    }
}

/// The node's fencing: the watch, and the kill switches it pulls.
#[derive(Debug)]
pub struct Fence {
    /// `None` when the operator turned fencing off.
    watch: Option<Mutex<Watch>>,
    kills: Arc<KillSwitches>,
    /// Asked for the connection state, which names the cause of a cut-off.
    nats: Option<async_nats::Client>,
}

impl Fence {
    /// Fences after `threshold` cut off (never when `None`), pulling `kills`.
    pub fn new(
        threshold: Option<Duration>,
        kills: Arc<KillSwitches>,
        nats: Option<async_nats::Client>,
    ) -> Fence {
        // Registered at zero, so that a dashboard shows a healthy node as 0
        // rather than as no data.
        metrics::counter!(METRIC_FENCED).increment(0);
        Fence {
            watch: threshold.map(|threshold| Mutex::new(Watch::new(threshold, Instant::now()))),
            kills,
            nats,
        }
    }

    /// The period of the clock watch; `None` when fencing is off.
    pub fn tick(&self) -> Option<Duration> {
        let threshold = self.lock()?.threshold;
        Some((threshold / 4).clamp(Duration::from_millis(10), MAX_TICK))
    }

    /// A heartbeat sent at `sent_at` reached NATS.
    pub fn contact(&self, sent_at: Instant) {
        if let Some(mut watch) = self.lock() {
            watch.confirmed(sent_at.min(Instant::now()));
        }
    }

    /// Looks now, and when the worker is cut off stops every attempt it runs.
    /// Returns the cut-off, if there is one.
    pub fn check(&self) -> Option<CutOff> {
        self.check_at(Instant::now())
    }

    /// [`Fence::check`] as of `now` (tests hand in a later instant rather
    /// than wait for one).
    fn check_at(&self, now: Instant) -> Option<CutOff> {
        let connected = self.nats.as_ref().is_none_or(|client| {
            client.connection_state() == async_nats::connection::State::Connected
        });
        // The lock is released before the switches are pulled and logged.
        let verdict = self.lock()?.look(now, connected);
        match verdict {
            Verdict::InTouch => None,
            Verdict::Recovered => {
                tracing::info!("in touch with NATS again after a cut-off; attempts run as usual");
                None
            }
            Verdict::CutOff { cut, first } => {
                let reason = cut.reason();
                let fenced = self.kills.fence(&reason);
                if first {
                    tracing::warn!(
                        cut_off_ms = cut.lasted.as_millis(),
                        threshold_ms = cut.threshold.as_millis(),
                        cause = cut.cause.as_str(),
                        attempts = fenced.len(),
                        "{cut}; stopping every attempt running here, since another node may run it"
                    );
                }
                for (task_id, attempt) in &fenced {
                    let span = tracing::warn_span!("attempt", %task_id, attempt);
                    span.in_scope(|| {
                        tracing::warn!(
                            cause = cut.cause.as_str(),
                            %reason,
                            "attempt fenced: its process group is stopped"
                        )
                    });
                }
                metrics::counter!(METRIC_FENCED).increment(fenced.len() as u64);
                Some(cut)
            }
        }
    }

    fn lock(&self) -> Option<std::sync::MutexGuard<'_, Watch>> {
        // The watch is a few fields set together; a panic cannot tear it.
        self.watch
            .as_ref()
            .map(|watch| watch.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Looks at the clock every tick until `stop`, fencing when cut off.
pub async fn monitor(fence: Arc<Fence>, stop: CancellationToken) {
    let Some(period) = fence.tick() else {
        tracing::info!(
            "self-fencing is off (fence_after_ms = 0): a worker cut off from NATS keeps running its attempts"
        );
        return;
    };
    let mut ticks = tokio::time::interval(period);
    // After a freeze one tick comes at once, not a burst of missed ones.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {
                fence.check();
            }
        }
    }
}

/// The heartbeat echo: a message to the worker's own inbox, sent right after
/// each heartbeat, whose return proves that the heartbeat reached NATS.
#[derive(Debug, Clone)]
pub struct Echo {
    client: async_nats::Client,
    inbox: String,
    /// Echoes carry their send time as microseconds since this instant.
    base: Instant,
}

impl Echo {
    /// Subscribes to a fresh inbox and hands each echo that comes back to
    /// `fence`, until `stop`.
    pub async fn start(
        client: &async_nats::Client,
        fence: Arc<Fence>,
        stop: CancellationToken,
    ) -> Result<Echo, async_nats::SubscribeError> {
        let inbox = client.new_inbox();
        let mut echoes = client.subscribe(inbox.clone()).await?;
        let base = Instant::now();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    echo = echoes.next() => match echo {
                        Some(echo) => match sent_at(base, &echo.payload) {
                            Some(at) => fence.contact(at),
                            None => tracing::debug!("ignoring an echo that cannot be read"),
                        },
                        None => {
                            // Only the client's end closes a subscription;
                            // without echoes the worker fences at the threshold.
                            tracing::warn!("the heartbeat echo subscription ended");
                            return;
                        }
                    },
                }
            }
        });
        Ok(Echo {
            client: client.clone(),
            inbox,
            base,
        })
    }

    /// Sends one echo; called right after a heartbeat, on the same connection.
    pub async fn send(&self) {
        let micros = self.base.elapsed().as_micros().to_string();
        if let Err(err) = self
            .client
            .publish(self.inbox.clone(), micros.into_bytes().into())
            .await
        {
            tracing::debug!(error = %err, "cannot send a heartbeat echo");
        }
    }
}

/// When an echo was sent, from its payload; `None` for anything else.
fn sent_at(base: Instant, payload: &[u8]) -> Option<Instant> {
    let micros: u64 = std::str::from_utf8(payload).ok()?.parse().ok()?;
    base.checked_add(Duration::from_micros(micros))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const THRESHOLD: Duration = Duration::from_secs(10);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A watch started at `t0`, and a way to name instants after it.
    fn watch() -> (Watch, impl Fn(u64) -> Instant) {
        let t0 = Instant::now();
        (Watch::new(THRESHOLD, t0), move |n| t0 + ms(n))
    }

    fn cut_off(verdict: Verdict) -> Option<(Cause, Duration, bool)> {
        match verdict {
            Verdict::CutOff { cut, first } => Some((cut.cause, cut.lasted, first)),
            _ => None,
        }
    }

    #[test]
    fn ticks_on_time_with_heartbeats_echoed_never_fence() {
        let (mut watch, at) = watch();
        for second in 1..=120 {
            watch.confirmed(at(second * 1000 - 300));
            assert_eq!(watch.look(at(second * 1000), true), Verdict::InTouch);
        }
    }

    #[test]
    fn a_tick_that_comes_past_the_threshold_means_the_process_was_frozen() {
        let (mut watch, at) = watch();
        watch.confirmed(at(900));
        assert_eq!(watch.look(at(1_000), true), Verdict::InTouch);
        // SIGSTOP for 41 s: the next tick comes 41 s late, and the
        // connection still looks fine.
        assert_eq!(
            cut_off(watch.look(at(42_000), true)),
            Some((Cause::Frozen, ms(41_100), true))
        );
    }

    #[test]
    fn a_freeze_is_found_even_when_an_echo_came_back_first() {
        let (mut watch, at) = watch();
        assert_eq!(watch.look(at(1_000), true), Verdict::InTouch);
        // Right after waking the heartbeat loop got an echo through before
        // the clock watch (or the executor) looked.
        watch.confirmed(at(31_000));
        assert_eq!(
            cut_off(watch.look(at(31_010), true)),
            Some((Cause::Frozen, ms(30_010), true))
        );
        assert_eq!(watch.look(at(32_000), true), Verdict::Recovered);
    }

    #[test]
    fn a_freeze_up_to_the_threshold_is_tolerated() {
        let (mut watch, at) = watch();
        watch.confirmed(at(1_000));
        assert_eq!(watch.look(at(1_000), true), Verdict::InTouch);
        assert_eq!(watch.look(at(11_000), true), Verdict::InTouch);
        assert!(cut_off(watch.look(at(21_001), true)).is_some());
    }

    #[test]
    fn no_echo_for_longer_than_the_threshold_fences_a_connected_worker() {
        let (mut watch, at) = watch();
        watch.confirmed(at(2_000));
        // The clock runs, but nothing comes back (a partition the client has
        // not noticed: its own pings are minutes apart).
        for n in 3..=12 {
            assert_eq!(watch.look(at(n * 1000), true), Verdict::InTouch);
        }
        assert_eq!(
            cut_off(watch.look(at(12_500), true)),
            Some((Cause::Unconfirmed, ms(10_500), true))
        );
    }

    #[test]
    fn a_disconnected_worker_says_so() {
        let (mut watch, at) = watch();
        for n in 1..=10 {
            assert_eq!(watch.look(at(n * 1000), false), Verdict::InTouch);
        }
        assert_eq!(
            cut_off(watch.look(at(11_000), false)),
            Some((Cause::Disconnected, ms(11_000), true))
        );
    }

    #[test]
    fn a_cut_off_is_one_event_until_contact_returns_then_a_new_one_counts_again() {
        let (mut watch, at) = watch();
        for n in 1..=10 {
            watch.look(at(n * 1000), false);
        }
        assert_eq!(
            cut_off(watch.look(at(11_000), false)),
            Some((Cause::Disconnected, ms(11_000), true))
        );
        assert_eq!(
            cut_off(watch.look(at(12_000), false)),
            Some((Cause::Disconnected, ms(12_000), false)),
            "the same cut-off, still going on"
        );
        watch.confirmed(at(12_500));
        assert_eq!(watch.look(at(13_000), true), Verdict::Recovered);
        assert_eq!(watch.look(at(14_000), true), Verdict::InTouch);
        // Frozen later: a new event.
        assert_eq!(
            cut_off(watch.look(at(30_000), true)),
            Some((Cause::Frozen, ms(17_500), true))
        );
    }

    #[test]
    fn an_old_echo_arriving_late_does_not_move_contact_back() {
        let (mut watch, at) = watch();
        watch.confirmed(at(9_000));
        watch.confirmed(at(1_000));
        for n in 1..=19 {
            assert_eq!(watch.look(at(n * 1000), true), Verdict::InTouch, "{n}");
        }
        assert!(cut_off(watch.look(at(19_001), true)).is_some());
    }

    #[test]
    fn the_reason_says_how_long_why_and_what_now() {
        let cut = CutOff {
            cause: Cause::Frozen,
            lasted: ms(41_020),
            threshold: ms(30_000),
        };
        assert_eq!(
            cut.reason(),
            "the worker was cut off for 41 s (its process was frozen: its clock skipped ahead), \
             longer than the lost threshold of 30 s; the attempt was stopped, another node may run it"
        );
        let cut = CutOff {
            cause: Cause::Unconfirmed,
            lasted: ms(2_560),
            threshold: ms(2_000),
        };
        assert_eq!(
            cut.to_string(),
            "the worker was cut off for 2.5 s (no heartbeat got through to NATS), \
             longer than the lost threshold of 2 s"
        );
    }

    #[test]
    fn an_echo_carries_its_send_time() {
        let base = Instant::now();
        assert_eq!(sent_at(base, b"1500000"), Some(base + ms(1_500)));
        assert_eq!(sent_at(base, b"not a time"), None);
        assert_eq!(sent_at(base, b""), None);
    }

    #[test]
    fn a_fence_stops_every_running_attempt_and_says_why() {
        let kills = Arc::new(KillSwitches::default());
        let drain = CancellationToken::new();
        let key = (Uuid::from_u128(7), 1);
        let token = kills.arm(key, &drain);
        let fence = Fence::new(Some(ms(50)), kills.clone(), None);
        assert_eq!(fence.check(), None, "just started: in touch");
        assert!(!token.is_cancelled());

        let cut = fence
            .check_at(Instant::now() + ms(80))
            .expect("80 ms without a tick or an echo");
        assert_eq!(cut.cause, Cause::Frozen);
        assert!(token.is_cancelled(), "the attempt's switch is pulled");
        let reason = kills.disarm(&key).expect("a pulled switch has a reason");
        assert!(
            reason.starts_with("the worker was cut off for "),
            "{reason}"
        );
        assert!(
            reason.ends_with("the attempt was stopped, another node may run it"),
            "{reason}"
        );
    }

    #[test]
    fn a_fence_that_is_off_never_pulls_a_switch() {
        let kills = Arc::new(KillSwitches::default());
        let token = kills.arm((Uuid::from_u128(8), 1), &CancellationToken::new());
        let fence = Fence::new(None, kills, None);
        fence.contact(Instant::now());
        assert_eq!(fence.check_at(Instant::now() + ms(20)), None);
        assert_eq!(fence.tick(), None);
        assert!(!token.is_cancelled());
    }
}
