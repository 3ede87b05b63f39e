//! `taskyard submit`: send a task or a batch to the orchestrator, and
//! optionally follow it to the end.
//!
//! The submission is a NATS request on `taskyard.api.submit`; the reply holds
//! the ids or the refusal naming the field. With `--wait`, the command
//! subscribes to task events *before* submitting (so no early event is
//! missed) and counts its tasks into terminal states. Events are core NATS and
//! may be missed (a slow consumer, a reconnect), so whenever none of ours
//! arrives for [`RECONCILE_AFTER`], it asks the API for the unfinished ones.

use crate::GlobalOptions;
use crate::api::ApiClient;
use crate::labels::{parse_label, to_map};
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;
use taskyard_client::{ClientError, Submitted};
use taskyard_wire::event::TaskEventBatch;
use taskyard_wire::reply::SubmitReply;
use taskyard_wire::{TaskState, codec, subjects};
use tokio::time::Instant;
use uuid::Uuid;

/// How long without news of our tasks before asking the API.
pub const RECONCILE_AFTER: Duration = Duration::from_secs(2);
/// Most tasks looked up in one reconciliation round.
pub const RECONCILE_BATCH: usize = 200;
/// Lookups in flight at once during reconciliation.
const RECONCILE_CONCURRENCY: usize = 16;
/// Failed tasks listed one by one at the end; the rest are counted.
const FAILURES_SHOWN: usize = 20;
/// Exit code when every task finished but some did not succeed.
pub const EXIT_SOME_FAILED: u8 = 2;
/// Exit code when `--wait-timeout` ran out first.
pub const EXIT_WAIT_TIMED_OUT: u8 = 3;

#[derive(Debug, Args)]
pub struct Submit {
    /// A JSON file holding a task object or an array of tasks (an atomic
    /// batch); `-` reads standard input. Without it, the task is built from
    /// the flags below.
    #[arg(value_name = "FILE")]
    pub file: Option<String>,
    #[command(flatten)]
    pub task: TaskFlags,
    /// Wait until every task has finished, with a progress bar.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds (exit code 3).
    #[arg(long, value_name = "SECS", requires = "wait")]
    pub wait_timeout: Option<u64>,
    /// Print the orchestrator's reply as JSON instead of one id per line.
    #[arg(long)]
    pub json: bool,
}

/// A task described by flags. Only what is given is sent; the orchestrator
/// fills in its defaults for the rest.
#[derive(Debug, Clone, Default, Args)]
#[group(id = "task-flags", multiple = true, conflicts_with = "file")]
pub struct TaskFlags {
    /// The driver: exec, noop, echo, sleep, fail.
    #[arg(long, value_name = "KIND", required_unless_present = "file")]
    pub kind: Option<String>,
    /// The driver's input, as JSON (e.g. '{"ms": 500}' for sleep).
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    pub spec: Option<Value>,
    /// The pool that runs it.
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,
    /// Who it belongs to, for fair sharing.
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// CPU to reserve, in millicores.
    #[arg(long, value_name = "MILLICORES")]
    pub cpu: Option<u32>,
    /// Memory to reserve, in MiB.
    #[arg(long, value_name = "MIB")]
    pub memory: Option<u32>,
    /// Higher runs earlier where the pool's policy honours priorities.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Deadline of one attempt, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Attempts before the task fails for good (1 = no retry).
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
    /// Makes a resubmission a no-op. With --count, copy i gets `KEY-i`.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// A label the node must carry, as KEY=VALUE (repeatable): the task runs
    /// only where every one matches, on top of its pool's selector.
    #[arg(long = "selector", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub selector: Vec<(String, String)>,
    /// Submit an atomic batch of N copies of the task.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub count: Option<u32>,
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|err| format!("not valid JSON: {err}"))
}

/// The submission the flags describe: one task object, or with `--count N` an
/// array of N copies (an atomic batch).
pub fn build_submission(flags: &TaskFlags) -> anyhow::Result<Value> {
    let Some(kind) = &flags.kind else {
        bail!("--kind is required when no FILE is given");
    };
    let mut task = Map::new();
    task.insert("kind".into(), json!(kind));
    if let Some(spec) = &flags.spec {
        task.insert("spec".into(), spec.clone());
    }
    if let Some(pool) = &flags.pool {
        task.insert("pool".into(), json!(pool));
    }
    if let Some(tenant) = &flags.tenant {
        task.insert("tenant".into(), json!(tenant));
    }
    if flags.cpu.is_some() || flags.memory.is_some() {
        let mut resources = Map::new();
        if let Some(cpu) = flags.cpu {
            resources.insert("cpu_millis".into(), json!(cpu));
        }
        if let Some(memory) = flags.memory {
            resources.insert("memory_mb".into(), json!(memory));
        }
        task.insert("resources".into(), Value::Object(resources));
    }
    if let Some(priority) = flags.priority {
        task.insert("priority".into(), json!(priority));
    }
    if let Some(timeout) = flags.timeout_ms {
        task.insert("timeout_ms".into(), json!(timeout));
    }
    if let Some(attempts) = flags.max_attempts {
        task.insert("max_attempts".into(), json!(attempts));
    }
    if !flags.selector.is_empty() {
        task.insert("node_selector".into(), json!(to_map(&flags.selector)));
    }
    let Some(count) = flags.count else {
        if let Some(key) = &flags.idempotency_key {
            task.insert("idempotency_key".into(), json!(key));
        }
        return Ok(Value::Object(task));
    };
    // One key for every copy would make the batch refuse itself.
    let copies = (0..count)
        .map(|index| {
            let mut copy = task.clone();
            if let Some(key) = &flags.idempotency_key {
                copy.insert("idempotency_key".into(), json!(format!("{key}-{index}")));
            }
            Value::Object(copy)
        })
        .collect();
    Ok(Value::Array(copies))
}

impl Submit {
    /// The bytes to send: the file as it is (checked to be JSON), or the
    /// task built from the flags.
    pub fn payload(&self) -> anyhow::Result<Bytes> {
        let Some(file) = &self.file else {
            return Ok(Bytes::from(serde_json::to_vec(&build_submission(
                &self.task,
            )?)?));
        };
        let bytes = if file == "-" {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading the submission from standard input")?;
            bytes
        } else {
            std::fs::read(file).with_context(|| format!("reading {file}"))?
        };
        let source = if file == "-" {
            "standard input"
        } else {
            file.as_str()
        };
        serde_json::from_slice::<Value>(&bytes)
            .with_context(|| format!("{source} is not valid JSON"))?;
        Ok(Bytes::from(bytes))
    }

    pub async fn run(self, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
        let payload = self.payload()?;
        let client = crate::bus::connect(&global.nats_url, &global.nats_security()).await?;
        // Subscribed before the request leaves, on the same connection, so the
        // server has our subscription before the orchestrator can publish.
        let events = if self.wait {
            Some(
                client
                    .subscribe(subjects::TASK_EVENTS_ALL)
                    .await
                    .context("subscribing to task events")?,
            )
        } else {
            None
        };
        let requests = taskyard_client::Client::new(client.clone());
        let ids = match requests.submit(payload).await {
            Ok(Submitted { ids, workflow_id }) => {
                if self.json {
                    // The orchestrator's reply, as the contract writes it.
                    let reply = SubmitReply::Accepted {
                        ids: ids.clone(),
                        workflow_id,
                    };
                    println!("{}", String::from_utf8_lossy(&codec::encode(&reply)));
                } else if let Some(workflow) = workflow_id {
                    // On stderr: stdout stays one task id per line.
                    eprintln!("workflow {workflow} (see `taskyard workflow {workflow}`)");
                }
                ids
            }
            Err(ClientError::Refused(error)) => {
                if self.json {
                    let reply = SubmitReply::Refused {
                        error: error.clone(),
                    };
                    println!("{}", String::from_utf8_lossy(&codec::encode(&reply)));
                }
                crate::commands::print_refusal(&error);
                return Ok(ExitCode::FAILURE);
            }
            Err(err) => return Err(err.into()),
        };
        if !self.json {
            for id in &ids {
                println!("{id}");
            }
        }
        let Some(events) = events else {
            return Ok(ExitCode::SUCCESS);
        };
        let timeout = self.wait_timeout.map(Duration::from_secs);
        let api = global.api();
        wait_for(ids, events, &api, timeout).await
    }
}

/// A task that ended in a state other than `succeeded`.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub id: Uuid,
    pub state: TaskState,
    pub reason: Option<String>,
}

/// Our tasks and how they ended; duplicate and foreign reports change nothing.
#[derive(Debug, Default)]
pub struct Tally {
    pending: BTreeSet<Uuid>,
    succeeded: u64,
    failed: Vec<Failure>,
}

impl Tally {
    pub fn new(ids: impl IntoIterator<Item = Uuid>) -> Tally {
        Tally {
            pending: ids.into_iter().collect(),
            ..Tally::default()
        }
    }

    /// Records that `id` is in `state`; returns whether this finished one of
    /// our unfinished tasks.
    pub fn observe(&mut self, id: Uuid, state: TaskState, reason: Option<String>) -> bool {
        if !state.is_terminal() || !self.pending.remove(&id) {
            return false;
        }
        if state == TaskState::Succeeded {
            self.succeeded += 1;
        } else {
            self.failed.push(Failure { id, state, reason });
        }
        true
    }

    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn succeeded(&self) -> u64 {
        self.succeeded
    }

    pub fn failed(&self) -> &[Failure] {
        &self.failed
    }

    pub fn unfinished(&self) -> usize {
        self.pending.len()
    }

    /// Up to `max` unfinished ids after `cursor`, wrapping around, so that
    /// successive rounds cover every unfinished task.
    pub fn next_round(&self, cursor: Option<Uuid>, max: usize) -> Vec<Uuid> {
        let after = cursor
            .map(|c| {
                self.pending
                    .range((std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded))
            })
            .into_iter()
            .flatten();
        let before = self.pending.iter();
        let mut round: Vec<Uuid> = Vec::with_capacity(max.min(self.pending.len()));
        for id in after.chain(before) {
            if round.len() >= max || round.first() == Some(id) {
                break;
            }
            round.push(*id);
        }
        round
    }

    /// The line printed at the end.
    pub fn summary(&self, total: usize, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        if self.is_done() && self.failed.is_empty() {
            format!("{total} succeeded in {secs:.1} s")
        } else if self.is_done() {
            format!(
                "{} succeeded, {} failed of {total} in {secs:.1} s",
                self.succeeded,
                self.failed.len()
            )
        } else {
            format!(
                "timed out after {secs:.1} s: {} succeeded, {} failed, {} unfinished of {total}",
                self.succeeded,
                self.failed.len(),
                self.pending.len()
            )
        }
    }
}

/// Follows `ids` to terminal states; the exit code says how they ended.
async fn wait_for(
    ids: Vec<Uuid>,
    mut events: async_nats::Subscriber,
    api: &ApiClient,
    timeout: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    let total = ids.len();
    let mut tally = Tally::new(ids);
    let started = Instant::now();
    let deadline = timeout.map(|t| started + t);
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40.cyan/blue} {pos}/{len} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let show = |tally: &Tally| {
        bar.set_position(tally.succeeded() + tally.failed().len() as u64);
        bar.set_message(format!(
            "succeeded:{} failed:{}",
            tally.succeeded(),
            tally.failed().len()
        ));
    };
    show(&tally);
    let mut last_news = Instant::now();
    let mut cursor = None;
    let mut warned_api = false;
    let mut timed_out = false;
    while !tally.is_done() {
        let mut wake = last_news + RECONCILE_AFTER;
        if let Some(deadline) = deadline {
            if Instant::now() >= deadline {
                timed_out = true;
                break;
            }
            wake = wake.min(deadline);
        }
        tokio::select! {
            message = events.next() => {
                let Some(message) = message else {
                    bail!("the NATS subscription to task events ended");
                };
                let Ok(batch) = codec::decode::<TaskEventBatch>(&message.payload) else {
                    continue;
                };
                let mut news = false;
                for event in batch.events {
                    news |= tally.observe(event.task_id, event.state, event.reason);
                }
                if news {
                    last_news = Instant::now();
                    show(&tally);
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    continue;
                }
                let round = tally.next_round(cursor, RECONCILE_BATCH);
                cursor = round.last().copied();
                match reconcile(api, &round, &mut tally).await {
                    Ok(()) => show(&tally),
                    Err(err) if !warned_api => {
                        warned_api = true;
                        bar.println(format!("warning: {err:#}; following events only"));
                    }
                    Err(_) => {}
                }
                last_news = Instant::now();
            }
        }
    }
    bar.finish_and_clear();
    let failures = tally.failed();
    for failure in failures.iter().take(FAILURES_SHOWN) {
        let reason = failure.reason.as_deref().unwrap_or("");
        eprintln!("{}  {}  {reason}", failure.id, failure.state);
    }
    if failures.len() > FAILURES_SHOWN {
        eprintln!("... and {} more", failures.len() - FAILURES_SHOWN);
    }
    eprintln!("{}", tally.summary(total, started.elapsed()));
    Ok(if timed_out {
        ExitCode::from(EXIT_WAIT_TIMED_OUT)
    } else if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_SOME_FAILED)
    })
}

/// Asks the API about `ids` and records those that finished. Fails only when
/// the API cannot be reached at all.
async fn reconcile(api: &ApiClient, ids: &[Uuid], tally: &mut Tally) -> anyhow::Result<()> {
    let mut lookups = futures::stream::iter(ids.iter().copied())
        .map(|id| async move { (id, api.task(&id.to_string()).await) })
        .buffer_unordered(RECONCILE_CONCURRENCY);
    while let Some((id, answer)) = lookups.next().await {
        match answer {
            Ok((task, _)) => {
                tally.observe(id, task.state, task.error);
            }
            Err(err @ crate::api::ApiError::Unreachable { .. }) => return Err(err.into()),
            // A task the API does not know yet (or a hiccup): the next round
            // or an event will tell.
            Err(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u128) -> Vec<Uuid> {
        (1..=n).map(Uuid::from_u128).collect()
    }

    #[test]
    fn only_first_terminal_reports_of_our_tasks_count() {
        let ours = ids(3);
        let mut tally = Tally::new(ours.clone());
        assert!(!tally.observe(ours[0], TaskState::Running, None));
        assert!(tally.observe(ours[0], TaskState::Succeeded, None));
        assert!(
            !tally.observe(ours[0], TaskState::Succeeded, None),
            "a duplicate"
        );
        assert!(
            !tally.observe(Uuid::from_u128(99), TaskState::Failed, None),
            "not ours"
        );
        assert!(tally.observe(ours[1], TaskState::TimedOut, Some("slow".into())));
        assert_eq!(tally.succeeded(), 1);
        assert_eq!(tally.failed().len(), 1);
        assert_eq!(tally.unfinished(), 1);
        assert!(!tally.is_done());
        assert!(tally.observe(ours[2], TaskState::Rejected, None));
        assert!(tally.is_done());
        assert_eq!(
            tally.summary(3, Duration::from_millis(1500)),
            "1 succeeded, 2 failed of 3 in 1.5 s"
        );
    }

    #[test]
    fn reconciliation_rounds_cover_every_task() {
        let tally = Tally::new(ids(5));
        let first = tally.next_round(None, 2);
        assert_eq!(first, ids(2));
        let second = tally.next_round(first.last().copied(), 2);
        assert_eq!(second, ids(4)[2..].to_vec());
        let third = tally.next_round(second.last().copied(), 2);
        assert_eq!(third, vec![Uuid::from_u128(5), Uuid::from_u128(1)]);
        assert_eq!(tally.next_round(None, 10), ids(5), "no id twice in a round");
    }
}
