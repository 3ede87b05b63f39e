//! Whether this process can reach what it depends on, said once per outage.
//!
//! A service rides out a NATS restart or failover and a Postgres restart
//! without being restarted itself: the clients reconnect, the consume loops
//! wait, and nothing is lost. Meanwhile it should say so, and say it once:
//! a line when a dependency is lost and one when it is back (with how long
//! it was away), never one per failed attempt. The same state answers
//! `/healthz` on the metrics port ([`crate::telemetry`]), the `data` of the
//! micro service's `$SRV.STATS` ([`crate::micro`]), and the
//! `taskyard_dependency_up` gauge.
//!
//! NATS is judged by the client's own connection events ([`crate::nats`]);
//! Postgres by a probe ([`spawn_probe`]), since a pool only finds out about
//! a restart when a statement fails on one of its connections.
//!
//! The state is the process's: one service is one process, and the NATS
//! event callback and the probes have nothing else to hand it to.

use crate::Shutdown;
use serde::Serialize;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Gauge: 1 while a dependency is reachable, 0 while it is not.
pub const METRIC_UP: &str = "taskyard_dependency_up";
/// Counter: outages of a dependency, counted when each begins.
pub const METRIC_OUTAGES: &str = "taskyard_dependency_outages_total";
/// Counter: seconds spent without a dependency, added when each outage ends.
pub const METRIC_OUTAGE_SECONDS: &str = "taskyard_dependency_outage_seconds_total";

/// How often the Postgres probe asks.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long one probe may take before it counts as a failure.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a service may depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dependency {
    Nats,
    Postgres,
}

impl Dependency {
    const ALL: [Dependency; 2] = [Dependency::Nats, Dependency::Postgres];

    /// Its name in reports and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Dependency::Nats => "nats",
            Dependency::Postgres => "postgres",
        }
    }

    fn index(self) -> usize {
        match self {
            Dependency::Nats => 0,
            Dependency::Postgres => 1,
        }
    }

    fn lost(self) -> &'static str {
        match self {
            Dependency::Nats => "NATS connection lost",
            Dependency::Postgres => "Postgres unreachable",
        }
    }

    fn back(self) -> &'static str {
        match self {
            Dependency::Nats => "NATS connection restored",
            Dependency::Postgres => "Postgres reachable again",
        }
    }
}

/// One dependency as this process last saw it.
#[derive(Debug, Clone)]
struct Seen {
    /// `Some` while it is away: since when, and why.
    down: Option<(Instant, String)>,
}

/// The health of this process: which of its dependencies it reaches now.
#[derive(Debug)]
pub struct Health {
    /// `None` for a dependency this process does not use (a worker has no
    /// Postgres): it is left out of reports.
    seen: Mutex<[Option<Seen>; 2]>,
    /// Which dependencies are away now, by [`Dependency::index`]: what
    /// waiters watch. A copy of `seen`, so that a waiter never needs its
    /// lock.
    down: tokio::sync::watch::Sender<[bool; 2]>,
}

/// This process's [`Health`].
pub fn health() -> &'static Health {
    static HEALTH: OnceLock<Health> = OnceLock::new();
    HEALTH.get_or_init(|| Health {
        seen: Mutex::new([None, None]),
        down: tokio::sync::watch::Sender::new([false; 2]),
    })
}

/// One dependency in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DependencyReport {
    /// `nats` or `postgres`.
    pub name: &'static str,
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// Why it is unavailable, as the client or the probe said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For how long, in whole seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_for_s: Option<u64>,
}

/// What `/healthz` answers: `{"status": "ok" | "unavailable", "dependencies": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub status: &'static str,
    pub dependencies: Vec<DependencyReport>,
}

impl Report {
    pub fn is_healthy(&self) -> bool {
        self.status == "ok"
    }
}

impl Health {
    fn seen(&self) -> MutexGuard<'_, [Option<Seen>; 2]> {
        // Every update leaves the array whole; a panic elsewhere cannot
        // have torn it.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `dependency` answers. The first time after an outage, logs that it
    /// is back and after how long.
    pub fn up(&self, dependency: Dependency) {
        let ended = {
            let mut seen = self.seen();
            let slot = &mut seen[dependency.index()];
            let ended = slot
                .as_ref()
                .and_then(|s| s.down.as_ref())
                .map(|(since, _)| since.elapsed());
            *slot = Some(Seen { down: None });
            self.publish(&seen);
            ended
        };
        let name = dependency.as_str();
        metrics::gauge!(METRIC_UP, "dependency" => name).set(1.0);
        if let Some(outage) = ended {
            metrics::counter!(METRIC_OUTAGE_SECONDS, "dependency" => name)
                .increment(outage.as_secs());
            tracing::info!(
                dependency = name,
                after_s = format!("{:.1}", outage.as_secs_f64()),
                "{} (after {:.1} s)",
                dependency.back(),
                outage.as_secs_f64()
            );
        }
    }

    /// `dependency` does not answer, for `reason`. Logs only when an
    /// outage begins; while it lasts, only the reason is kept.
    pub fn down(&self, dependency: Dependency, reason: impl std::fmt::Display) {
        let reason = reason.to_string();
        let began = {
            let mut seen = self.seen();
            let slot = &mut seen[dependency.index()];
            let began = slot.as_ref().is_none_or(|s| s.down.is_none());
            let since = slot
                .as_ref()
                .and_then(|s| s.down.as_ref())
                .map_or_else(Instant::now, |(since, _)| *since);
            *slot = Some(Seen {
                down: Some((since, reason.clone())),
            });
            self.publish(&seen);
            began
        };
        let name = dependency.as_str();
        metrics::gauge!(METRIC_UP, "dependency" => name).set(0.0);
        if began {
            metrics::counter!(METRIC_OUTAGES, "dependency" => name).increment(1);
            tracing::warn!(
                dependency = name,
                %reason,
                "{}; retrying with backoff, reported unhealthy until it is back",
                dependency.lost()
            );
        }
    }

    fn publish(&self, seen: &[Option<Seen>; 2]) {
        let down = [0, 1].map(|i| seen[i].as_ref().is_some_and(|s| s.down.is_some()));
        self.down.send_if_modified(|was| {
            let changed = *was != down;
            *was = down;
            changed
        });
    }

    /// Every dependency in use, as it stands.
    pub fn report(&self) -> Report {
        let seen = self.seen();
        let dependencies: Vec<DependencyReport> = Dependency::ALL
            .iter()
            .filter_map(|&dependency| {
                let s = seen[dependency.index()].as_ref()?;
                Some(match &s.down {
                    None => DependencyReport {
                        name: dependency.as_str(),
                        status: "ok",
                        reason: None,
                        down_for_s: None,
                    },
                    Some((since, reason)) => DependencyReport {
                        name: dependency.as_str(),
                        status: "unavailable",
                        reason: Some(reason.clone()),
                        down_for_s: Some(since.elapsed().as_secs()),
                    },
                })
            })
            .collect();
        let healthy = dependencies.iter().all(|d| d.status == "ok");
        Report {
            status: if healthy { "ok" } else { "unavailable" },
            dependencies,
        }
    }

    /// Whether every dependency in use is reachable now.
    pub fn is_healthy(&self) -> bool {
        !self.down.borrow().iter().any(|down| *down)
    }

    /// Whether `dependency` is known to be away now.
    pub fn is_down(&self, dependency: Dependency) -> bool {
        self.down.borrow()[dependency.index()]
    }

    /// Completes once every dependency in use is reachable (at once if it
    /// is now).
    pub async fn wait_healthy(&self) {
        let mut down = self.down.subscribe();
        // The sender outlives every receiver, so this never fails.
        let _ = down.wait_for(|down| !down.iter().any(|d| *d)).await;
    }

    /// Completes once `dependency` is reachable (at once if it is now).
    pub async fn wait_up(&self, dependency: Dependency) {
        let mut down = self.down.subscribe();
        let _ = down.wait_for(|down| !down[dependency.index()]).await;
    }
}

/// Asks `probe` every [`PROBE_EVERY`] (at most [`PROBE_TIMEOUT`] each)
/// until `shutdown`, and records in [`health`] whether `dependency`
/// answers. The first answer is taken at once, so that a service that
/// starts records its dependency before its first request.
pub fn spawn_probe<F, Fut, E>(
    dependency: Dependency,
    shutdown: Shutdown,
    mut probe: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PROBE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = ticks.tick() => {}
            }
            match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                Ok(Ok(())) => health().up(dependency),
                Ok(Err(err)) => health().down(dependency, err),
                Err(_) => health().down(
                    dependency,
                    format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
                ),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Health {
        Health {
            seen: Mutex::new([None, None]),
            down: tokio::sync::watch::Sender::new([false; 2]),
        }
    }

    #[test]
    fn a_dependency_not_in_use_is_left_out() {
        let health = fresh();
        health.up(Dependency::Nats);
        let report = health.report();
        assert!(report.is_healthy());
        assert_eq!(report.dependencies.len(), 1);
        assert_eq!(report.dependencies[0].name, "nats");
    }

    #[test]
    fn an_outage_is_unhealthy_until_it_ends_and_keeps_its_start() {
        let health = fresh();
        health.up(Dependency::Nats);
        health.up(Dependency::Postgres);
        health.down(Dependency::Postgres, "connection refused");
        health.down(Dependency::Postgres, "the database system is starting up");
        assert!(!health.is_healthy());
        assert!(health.is_down(Dependency::Postgres));
        assert!(!health.is_down(Dependency::Nats));
        let report = health.report();
        assert_eq!(report.status, "unavailable");
        let postgres = &report.dependencies[1];
        assert_eq!(postgres.status, "unavailable");
        assert_eq!(
            postgres.reason.as_deref(),
            Some("the database system is starting up"),
            "the latest reason"
        );
        health.up(Dependency::Postgres);
        assert!(health.is_healthy());
        assert!(health.report().is_healthy());
    }

    #[test]
    fn an_outage_is_logged_once_when_it_begins_and_once_when_it_ends() {
        let health = fresh();
        let text = crate::log_capture::logged(|| {
            health.up(Dependency::Nats);
            for _ in 0..50 {
                health.down(Dependency::Nats, "disconnected");
            }
            health.up(Dependency::Nats);
            health.up(Dependency::Nats);
        });
        assert_eq!(text.matches("NATS connection lost").count(), 1, "{text}");
        assert_eq!(
            text.matches("NATS connection restored (after").count(),
            1,
            "{text}"
        );
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[tokio::test]
    async fn waiting_for_health_ends_when_the_outage_does() {
        let health: &'static Health = Box::leak(Box::new(fresh()));
        health.up(Dependency::Postgres);
        health.down(Dependency::Postgres, "connection refused");
        let waiter = tokio::spawn(health.wait_healthy());
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        health.up(Dependency::Postgres);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("not panicked");
    }
}
