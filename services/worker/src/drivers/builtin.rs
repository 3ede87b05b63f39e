//! The built-in drivers, for demos and benchmarks: they run inside the worker.

use super::{Limits, Ran};
use serde_json::{Value, json};
use std::time::Duration;
use taskyard_wire::task::{FailSpec, SleepSpec};

/// The error of a `fail` task that gives no message.
pub const DEFAULT_FAIL_MESSAGE: &str = "failed on purpose";

/// Does nothing and succeeds.
pub fn noop() -> Ran {
    Ran::succeeded(Value::Null)
}

/// Succeeds with its spec as the result.
pub fn echo(spec: Value) -> Ran {
    Ran::succeeded(spec)
}

/// Fails with the spec's message.
pub fn fail(spec: FailSpec) -> Ran {
    Ran::failed(
        spec.message
            .unwrap_or_else(|| DEFAULT_FAIL_MESSAGE.to_owned()),
    )
}

/// Sleeps `spec.ms`, unless the attempt's timeout or the worker's stop comes first.
pub async fn sleep(spec: SleepSpec, limits: &Limits) -> Ran {
    let clock = limits.start();
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(spec.ms)) => {
            Ran::succeeded(json!({ "slept_ms": spec.ms }))
        }
        interrupt = clock.interrupted() => Ran {
            end: interrupt.into(),
            result: Value::Null,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::End;

    #[test]
    fn noop_echo_and_fail() {
        assert_eq!(noop(), Ran::succeeded(Value::Null));
        assert_eq!(echo(json!({"a": 1})).result, json!({"a": 1}));
        assert_eq!(
            fail(FailSpec::default()).end,
            End::Failed(DEFAULT_FAIL_MESSAGE.to_owned())
        );
        let told = fail(FailSpec {
            message: Some("boom".to_owned()),
        });
        assert_eq!(told.end, End::Failed("boom".to_owned()));
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_sleeps_then_succeeds() {
        let ran = sleep(SleepSpec { ms: 5_000 }, &Limits::default()).await;
        assert_eq!(ran, Ran::succeeded(json!({"slept_ms": 5_000})));
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_respects_the_timeout() {
        let limits = Limits {
            timeout: Some(Duration::from_millis(100)),
            ..Limits::default()
        };
        let before = tokio::time::Instant::now();
        let ran = sleep(SleepSpec { ms: 60_000 }, &limits).await;
        assert_eq!(ran.end, End::TimedOut(Duration::from_millis(100)));
        assert_eq!(before.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_stops_when_the_worker_kills_it() {
        let limits = Limits::default();
        limits.kill.cancel();
        let ran = sleep(SleepSpec { ms: 60_000 }, &limits).await;
        assert_eq!(ran.end, End::Stopped);
    }
}
