//! The dispatch loop: pull dispatches, run each attempt on its own task, report
//! on it, and drain on shutdown.
//!
//! A dispatch message carries one attempt or a batch (one per node per
//! scheduling round). Per attempt: `Started` is reported, the driver runs
//! while the message's ack wait is kept alive with progress acks, `Finished`
//! is reported (retried with backoff), and the message is acked once its last
//! attempt is reported ([`Delivery`]). Reports are coalesced by the
//! [`Reporter`]. A worker that dies at any point leaves the message unacked, so
//! NATS hands it out again; the ledger makes sure a redelivered attempt that
//! already ran is not run again.
//!
//! On shutdown no more dispatches are pulled; those pulled but not started are
//! NAKed at once, running attempts get the drain timeout to finish, and those
//! still running then are killed and reported failed, so that the pool manager
//! can retry them on another node.
//!
//! An attempt whose kill switch was pulled (a `kill` control message, or the
//! worker fencing itself after a cut-off, see [`crate::fencing`]) never
//! reports success, even when its command exited 0 in the same instant: the
//! attempt may already run elsewhere, and its kill says so.

use crate::config::Settings;
use crate::drivers::{self, DriverEnv, End, Limits, Ran};
use crate::fencing::Fence;
use crate::heartbeat::NodeState;
use crate::ledger::{AttemptKey, Ledger, Seen};
use crate::reporter::{ReportError, Reporter};
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use taskyard_runtime::Shutdown;
use taskyard_runtime::batching::{self, Message};
use taskyard_runtime::health::{Dependency, health};
use taskyard_wire::dispatch::{Dispatch, DispatchMessage};
use taskyard_wire::status::{Outcome, StatusReport};
use taskyard_wire::task::Job;
use taskyard_wire::{Timestamp, codec, subjects};

/// How long a message handed back (some attempt must run or report again)
/// waits before NATS redelivers it.
const HAND_BACK_DELAY: Duration = Duration::from_secs(1);
use crate::kill_switch::KillSwitches;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Counter of finished attempts, by `kind` and `outcome`.
pub const METRIC_ATTEMPTS: &str = "taskyard_worker_attempts_total";
/// Gauge of attempts running now.
pub const METRIC_RUNNING: &str = "taskyard_worker_running";
/// Histogram of attempt run times in seconds, by `kind`.
pub const METRIC_ATTEMPT_SECONDS: &str = "taskyard_worker_attempt_seconds";

/// How often a status report is published before the worker gives up on it.
const PUBLISH_TRIES: u32 = 5;
/// Wait before the first retry of a report; doubles up to [`PUBLISH_RETRY_MAX`].
const PUBLISH_RETRY_FIRST: Duration = Duration::from_millis(200);
const PUBLISH_RETRY_MAX: Duration = Duration::from_secs(3);
/// After killing the attempts left at the drain timeout, how long they get to
/// report before the worker leaves without them. Covers the publish retries.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Backoff while the dispatch stream cannot be (re)opened.
const REOPEN_FIRST: Duration = Duration::from_millis(200);
const REOPEN_MAX: Duration = Duration::from_secs(5);

type Batches = BoxStream<'static, Vec<Message>>;

/// Everything the attempts of this node share.
pub struct Worker {
    settings: Arc<Settings>,
    state: Arc<NodeState>,
    ledger: Mutex<Ledger>,
    reporter: Reporter,
    env: DriverEnv,
    /// Cancelled when the drain timeout passes: running attempts stop.
    kill: CancellationToken,
    /// Each running attempt's own switch, for `kill` control messages.
    kills: Arc<KillSwitches>,
    /// Asked before each report whether the worker was cut off meanwhile.
    fence: Arc<Fence>,
}

impl Worker {
    /// `env` is what the drivers share: the node's HTTP client, its NATS
    /// connection, its cgroups. `fence` pulls `kills` when the worker was cut off.
    pub fn new(
        settings: Arc<Settings>,
        js: jetstream::Context,
        state: Arc<NodeState>,
        env: DriverEnv,
        kills: Arc<KillSwitches>,
        fence: Arc<Fence>,
    ) -> Worker {
        Worker {
            kills,
            fence,
            env,
            reporter: Reporter::start(js.clone(), subjects::status(&settings.node_id)),
            settings,
            state,
            ledger: Mutex::new(Ledger::default()),
            kill: CancellationToken::new(),
        }
    }

    /// Runs the dispatch loop until `shutdown`, then drains.
    pub async fn serve(self: Arc<Self>, consumer: &PullConsumer, shutdown: &Shutdown) {
        let slots = Arc::new(Semaphore::new(self.settings.capacity.slots as usize));
        let mut attempts = JoinSet::new();
        self.pull(consumer, shutdown, &slots, &mut attempts).await;
        self.drain(attempts).await;
    }

    async fn pull(
        self: &Arc<Self>,
        consumer: &PullConsumer,
        shutdown: &Shutdown,
        slots: &Arc<Semaphore>,
        attempts: &mut JoinSet<()>,
    ) {
        let max = self.settings.capacity.slots as usize;
        let Some(mut pulled) = open(consumer, max, shutdown).await else {
            return;
        };
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait() => break,
                Some(joined) = attempts.join_next() => log_join(joined),
                batch = pulled.next() => match batch {
                    Some(batch) => {
                        if self.admit(batch, slots, attempts, shutdown).await.is_break() {
                            break;
                        }
                    }
                    None => {
                        tracing::warn!("the dispatch stream ended; opening it again");
                        match open(consumer, max, shutdown).await {
                            Some(reopened) => pulled = reopened,
                            None => break,
                        }
                    }
                },
            }
        }
        // Handed back now rather than after the ack wait: another worker may
        // be placed on this node's subject long before that.
        while let Some(Some(batch)) = pulled.next().now_or_never() {
            for message in &batch {
                nak(message).await;
            }
        }
    }

    /// Starts the attempts of one batch. Breaks when shutdown came while it
    /// waited for a free slot; the rest of the batch is then NAKed.
    async fn admit(
        self: &Arc<Self>,
        batch: Vec<Message>,
        slots: &Arc<Semaphore>,
        attempts: &mut JoinSet<()>,
        shutdown: &Shutdown,
    ) -> ControlFlow<()> {
        let mut messages = batch.into_iter();
        while let Some(message) = messages.next() {
            let dispatches = match codec::decode::<DispatchMessage>(&message.payload) {
                Ok(read) => read.into_dispatches(),
                Err(err) => {
                    // Redelivering it would fail the same way, forever.
                    taskyard_runtime::warn_throttled!(subject = %message.subject, error = %err, "dropping a dispatch that cannot be read");
                    if let Err(err) = message.ack_with(AckKind::Term).await {
                        tracing::warn!(error = %err, "cannot terminate an unreadable dispatch");
                    }
                    continue;
                }
            };
            if dispatches.is_empty() {
                ack(&message).await;
                continue;
            }
            let delivery = Delivery::new(message, dispatches.len());
            let mut dispatches = dispatches.into_iter();
            while let Some(dispatch) = dispatches.next() {
                let key = (dispatch.task_id, dispatch.attempt);
                let span = tracing::info_span!(
                    "attempt",
                    task_id = %dispatch.task_id,
                    attempt = dispatch.attempt
                );
                let seen = self.ledger().seen(&key);
                match seen {
                    Seen::New => {}
                    Seen::Running => {
                        // The attempt belongs to an earlier delivery of this
                        // message; this copy comes back once it is done.
                        span.in_scope(|| {
                            tracing::debug!(
                                "redelivered dispatch of a running attempt; handed back later"
                            )
                        });
                        delivery.hand_back_later();
                        delivery.settle_one().await;
                        continue;
                    }
                    Seen::Finished => {
                        span.in_scope(|| {
                            tracing::debug!(
                                "redelivered dispatch of a finished attempt; not run again"
                            )
                        });
                        delivery.settle_one().await;
                        continue;
                    }
                    Seen::Unreported(report) => {
                        self.ledger().start(key);
                        attempts.spawn(
                            self.clone()
                                .republish(delivery.clone(), report)
                                .instrument(span),
                        );
                        continue;
                    }
                }
                let permit = tokio::select! {
                    biased;
                    _ = shutdown.wait() => None,
                    permit = slots.clone().acquire_owned() => permit.ok(),
                };
                let Some(permit) = permit else {
                    // Shutdown: what did not start goes back, with this message
                    // once its started attempts are reported.
                    delivery.hand_back_later();
                    delivery.settle_one().await;
                    for _ in dispatches {
                        delivery.settle_one().await;
                    }
                    for rest in messages {
                        nak(&rest).await;
                    }
                    return ControlFlow::Break(());
                };
                self.ledger().start(key);
                attempts.spawn(
                    self.clone()
                        .run_attempt(delivery.clone(), dispatch, permit)
                        .instrument(span),
                );
            }
        }
        ControlFlow::Continue(())
    }

    /// One attempt, from `Started` to the ack of its dispatch.
    async fn run_attempt(
        self: Arc<Self>,
        delivery: Arc<Delivery>,
        dispatch: Dispatch,
        _slot: OwnedSemaphorePermit,
    ) {
        let key = (dispatch.task_id, dispatch.attempt);
        let _running = Running::enter(&self, key);
        let (report, published) = keep_alive(&delivery.message, self.progress_every(), async {
            let started_at = taskyard_wire::now();
            let started = StatusReport::Started {
                task_id: dispatch.task_id,
                attempt: dispatch.attempt,
                node_id: self.settings.node_id.clone(),
                at: started_at,
            };
            // The Finished report is what counts; a missing Started only
            // hides the running state for a while.
            if let Err(err) = self.publish(&started).await {
                tracing::warn!(error = %err, "cannot report the start; running the attempt anyway");
            }
            tracing::debug!(kind = dispatch.kind.as_str(), "attempt started");
            let clock = Instant::now();
            let ran = match Job::parse(dispatch.kind, &dispatch.spec) {
                Ok(mut job) => {
                    // A command learns which task and attempt it is, so that
                    // its side effects can be keyed for idempotence
                    // (docs/guarantees.md); the spec's own env wins.
                    if let Job::Exec(exec) = &mut job {
                        exec.env
                            .entry("TASKYARD_TASK_ID".to_owned())
                            .or_insert_with(|| dispatch.task_id.to_string());
                        exec.env
                            .entry("TASKYARD_ATTEMPT".to_owned())
                            .or_insert_with(|| dispatch.attempt.to_string());
                    }
                    let limits = Limits {
                        timeout: dispatch.timeout_ms.map(Duration::from_millis),
                        kill: self.kills.arm(key, &self.kill),
                        memory_mb: Some(dispatch.resources.memory_mb),
                        attempt: Some(key),
                    };
                    let scratch = format!("{}-{}", dispatch.task_id, dispatch.attempt);
                    drivers::run(job, &scratch, &self.env, &limits).await
                }
                Err(rejection) => Ran::failed(format!("invalid spec: {rejection}")),
            };
            // A command that exited while the worker stood still (SIGSTOP)
            // is seen here before the clock watch's next tick notices the
            // freeze: looking now fences it instead of reporting a success.
            self.fence.check();
            let killed = self.kills.disarm(&key);
            let report = self.finished(&dispatch, ran, started_at, killed);
            record(&dispatch, &report, clock.elapsed());
            let published = self.publish(&report).await;
            (report, published)
        })
        .await;
        self.settle(key, &delivery, report, published).await;
    }

    /// Publishes the `Finished` report of an attempt that ran earlier, when
    /// its first publish failed and NATS brought the dispatch back.
    async fn republish(self: Arc<Self>, delivery: Arc<Delivery>, report: StatusReport) {
        let key = (report.task_id(), report.attempt());
        tracing::info!("publishing the report of an attempt that finished earlier");
        let published = keep_alive(
            &delivery.message,
            self.progress_every(),
            self.publish(&report),
        )
        .await;
        self.settle(key, &delivery, report, published).await;
    }

    /// Counts the attempt done on its message once its report is durable;
    /// otherwise keeps the report for the redelivery, which publishes it
    /// instead of running the attempt again.
    async fn settle(
        &self,
        key: AttemptKey,
        delivery: &Delivery,
        report: StatusReport,
        published: Result<(), ReportError>,
    ) {
        match published {
            Ok(()) => {
                // Remembered before the ack, so a redelivery racing the ack is
                // acked too rather than run.
                self.ledger().finish(key, None);
                delivery.settle_one().await;
            }
            Err(err) => {
                tracing::error!(
                    error = %err,
                    "cannot publish the attempt's report; the dispatch stays unacked and the report is published again on redelivery"
                );
                self.ledger().finish(key, Some(report));
                delivery.hand_back_later();
                delivery.settle_one().await;
            }
        }
    }

    fn finished(
        &self,
        dispatch: &Dispatch,
        ran: Ran,
        started_at: Timestamp,
        killed: Option<String>,
    ) -> StatusReport {
        let (outcome, error) = verdict(ran.end, killed.as_deref(), &self.settings.node_id);
        match &error {
            // Successes are the bulk of a busy worker's attempts: at INFO
            // they were most of its log. Failures stay at INFO.
            None => tracing::debug!("attempt succeeded"),
            Some(error) => {
                tracing::info!(outcome = outcome_label(outcome), %error, "attempt ended")
            }
        }
        StatusReport::Finished {
            task_id: dispatch.task_id,
            attempt: dispatch.attempt,
            node_id: self.settings.node_id.clone(),
            outcome,
            result: ran.result,
            error,
            started_at,
            finished_at: taskyard_wire::now(),
        }
    }

    /// Hands a report to the [`Reporter`], with retries: a report is only
    /// worth an ack once it is stored.
    ///
    /// While NATS is away, tries are not counted: the report waits for the
    /// connection to come back (its dispatch is kept in progress
    /// meanwhile), rather than giving up after a few seconds and leaving
    /// its dispatch to be redelivered after the ack wait.
    async fn publish(&self, report: &StatusReport) -> Result<(), ReportError> {
        let mut delay = PUBLISH_RETRY_FIRST;
        let mut tries = 1;
        loop {
            match self.reporter.send(report).await {
                Ok(()) => return Ok(()),
                Err(err) if !err.permanent && health().is_down(Dependency::Nats) => {
                    tracing::debug!(error = %err, "a report waits for NATS");
                    health().wait_up(Dependency::Nats).await;
                }
                Err(err) if tries >= PUBLISH_TRIES || err.permanent => return Err(err),
                Err(err) => {
                    taskyard_runtime::warn_throttled!(error = %err, tries, "publishing a report failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(PUBLISH_RETRY_MAX);
                    tries += 1;
                }
            }
        }
    }

    /// Lets running attempts finish within the drain timeout, then stops the rest.
    async fn drain(&self, mut attempts: JoinSet<()>) {
        self.state.start_draining();
        tracing::info!(
            running = self.state.running(),
            timeout_ms = self.settings.drain_timeout.as_millis(),
            "draining: no new attempts; waiting for the running ones"
        );
        if tokio::time::timeout(self.settings.drain_timeout, join_all(&mut attempts))
            .await
            .is_ok()
        {
            return;
        }
        tracing::warn!(
            running = self.state.running(),
            "drain timeout passed; stopping the attempts still running"
        );
        self.kill.cancel();
        if tokio::time::timeout(STOP_GRACE, join_all(&mut attempts))
            .await
            .is_err()
        {
            tracing::error!(
                left = attempts.len(),
                "attempts did not report in time; leaving them to NATS redelivery"
            );
            attempts.abort_all();
            join_all(&mut attempts).await;
        }
    }

    fn progress_every(&self) -> Duration {
        self.settings.ack_wait / 3
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // The ledger stays consistent even if a holder panicked: each method
        // is a few collection operations.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A dispatch message and how many of its attempts are still open. The
/// message is acked when the last one is reported, or handed back (NAK with
/// a delay) if any of them could not be finished here for good.
pub struct Delivery {
    message: Message,
    open: AtomicUsize,
    hand_back: AtomicBool,
}

impl Delivery {
    fn new(message: Message, attempts: usize) -> Arc<Delivery> {
        Arc::new(Delivery {
            message,
            open: AtomicUsize::new(attempts),
            hand_back: AtomicBool::new(false),
        })
    }

    fn hand_back_later(&self) {
        self.hand_back.store(true, Ordering::SeqCst);
    }

    /// One attempt of the message is done with.
    async fn settle_one(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        if self.hand_back.load(Ordering::SeqCst) {
            if let Err(err) = self
                .message
                .ack_with(AckKind::Nak(Some(HAND_BACK_DELAY)))
                .await
            {
                tracing::warn!(error = %err, "cannot hand a dispatch back; NATS redelivers it after the ack wait");
            }
        } else {
            ack(&self.message).await;
        }
    }
}

/// Counts one running attempt for as long as it lives, panics included.
struct Running<'a> {
    worker: &'a Worker,
    key: AttemptKey,
}

impl<'a> Running<'a> {
    fn enter(worker: &'a Worker, key: AttemptKey) -> Running<'a> {
        let running = worker.state.attempt_started();
        metrics::gauge!(METRIC_RUNNING).set(f64::from(running));
        Running { worker, key }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        // A no-op once the attempt finished; after a panic it lets a
        // redelivery run the attempt again.
        self.worker.ledger().abandon(&self.key);
        let running = self.worker.state.attempt_ended();
        metrics::gauge!(METRIC_RUNNING).set(f64::from(running));
    }
}

/// Runs `work` while sending a progress ack on `message` every `period`, so
/// that NATS does not hand the dispatch to someone else meanwhile.
async fn keep_alive<F: Future>(message: &Message, period: Duration, work: F) -> F::Output {
    tokio::pin!(work);
    let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            output = &mut work => return output,
            _ = ticks.tick() => {
                if let Err(err) = message.ack_with(AckKind::Progress).await {
                    taskyard_runtime::warn_throttled!(error = %err, "progress ack failed");
                }
            }
        }
    }
}

/// Opens the batched dispatch stream, retrying until it opens or shutdown.
async fn open(consumer: &PullConsumer, max: usize, shutdown: &Shutdown) -> Option<Batches> {
    let mut delay = REOPEN_FIRST;
    loop {
        match batching::batches(consumer, max).await {
            Ok(stream) => return Some(stream.boxed()),
            Err(err) => {
                taskyard_runtime::warn_throttled!(error = %err, "cannot pull dispatches; retrying")
            }
        }
        tokio::select! {
            _ = shutdown.wait() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(REOPEN_MAX);
    }
}

fn record(dispatch: &Dispatch, report: &StatusReport, elapsed: Duration) {
    let kind = dispatch.kind.as_str();
    if let StatusReport::Finished { outcome, .. } = report {
        metrics::counter!(METRIC_ATTEMPTS, "kind" => kind, "outcome" => outcome_label(*outcome))
            .increment(1);
    }
    metrics::histogram!(METRIC_ATTEMPT_SECONDS, "kind" => kind).record(elapsed.as_secs_f64());
}

/// The outcome and error an attempt reports. A pulled kill switch decides:
/// whatever the run did by the time the driver returned, the attempt was
/// asked to stop, maybe because it runs elsewhere now, so a command that
/// exited 0 as the kill came is not a success.
fn verdict(end: End, killed: Option<&str>, node: &str) -> (Outcome, Option<String>) {
    if let Some(reason) = killed {
        let error = match end {
            End::Stopped => format!("killed on node {node}: {reason}"),
            End::Succeeded => format!(
                "killed on node {node}: {reason} (its command succeeded as the kill came; \
                 that does not count)"
            ),
            End::Failed(why) => {
                format!("killed on node {node}: {reason} (its command had failed too: {why})")
            }
            End::TimedOut(timeout) => format!(
                "killed on node {node}: {reason} (it had timed out too, after {} ms)",
                timeout.as_millis()
            ),
        };
        return (Outcome::Failed, Some(error));
    }
    match end {
        End::Succeeded => (Outcome::Succeeded, None),
        End::Failed(error) => (Outcome::Failed, Some(error)),
        End::TimedOut(timeout) => (
            Outcome::TimedOut,
            Some(format!("timed out after {} ms", timeout.as_millis())),
        ),
        End::Stopped => (
            Outcome::Failed,
            Some(format!(
                "worker on node {node} stopped before the attempt finished"
            )),
        ),
    }
}

fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed => "failed",
        Outcome::TimedOut => "timed_out",
    }
}

async fn ack(message: &Message) {
    if let Err(err) = message.ack().await {
        tracing::warn!(error = %err, "ack failed; the dispatch will be redelivered and acked then");
    }
}

async fn nak(message: &Message) {
    if let Err(err) = message.ack_with(AckKind::Nak(None)).await {
        tracing::warn!(error = %err, "cannot hand a dispatch back; NATS redelivers it after the ack wait");
    }
}

async fn join_all(attempts: &mut JoinSet<()>) {
    while let Some(joined) = attempts.join_next().await {
        log_join(joined);
    }
}

fn log_join(joined: Result<(), JoinError>) {
    if let Err(err) = joined
        && err.is_panic()
    {
        tracing::error!(error = %err, "an attempt's task panicked; its dispatch will be redelivered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_exited_0_as_its_kill_came_is_killed_not_succeeded() {
        let (outcome, error) = verdict(End::Succeeded, Some("attempt 1 moved"), "n1");
        assert_eq!(outcome, Outcome::Failed);
        assert_eq!(
            error.as_deref(),
            Some(
                "killed on node n1: attempt 1 moved (its command succeeded as the kill came; \
                 that does not count)"
            )
        );
    }

    #[test]
    fn a_kill_decides_whatever_else_ended_the_run() {
        let reason = Some("the worker was cut off");
        assert_eq!(
            verdict(End::Stopped, reason, "n1"),
            (
                Outcome::Failed,
                Some("killed on node n1: the worker was cut off".to_owned())
            )
        );
        let (outcome, error) = verdict(End::Failed("exit code 3".to_owned()), reason, "n1");
        assert_eq!(outcome, Outcome::Failed);
        assert!(
            error
                .unwrap_or_default()
                .ends_with("(its command had failed too: exit code 3)")
        );
        let (outcome, _) = verdict(End::TimedOut(Duration::from_millis(300)), reason, "n1");
        assert_eq!(outcome, Outcome::Failed, "killed, not timed out");
    }

    #[test]
    fn without_a_kill_the_run_decides() {
        assert_eq!(
            verdict(End::Succeeded, None, "n1"),
            (Outcome::Succeeded, None)
        );
        assert_eq!(
            verdict(End::TimedOut(Duration::from_millis(300)), None, "n1"),
            (Outcome::TimedOut, Some("timed out after 300 ms".to_owned()))
        );
        assert_eq!(
            verdict(End::Stopped, None, "n1"),
            (
                Outcome::Failed,
                Some("worker on node n1 stopped before the attempt finished".to_owned())
            ),
            "a drain stop is the worker's own, not a kill"
        );
    }
}
