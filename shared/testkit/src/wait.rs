//! Polling until a condition holds.

use std::future::Future;
use std::time::{Duration, Instant};

const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Calls `f` every 50 ms until it returns `Ok(Some(value))`, and returns the value.
///
/// `Ok(None)` and `Err(_)` both mean "not yet"; after `timeout` the error says
/// what we waited for and, if `f` kept failing, its last error.
pub async fn wait_until<F, Fut, T>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last_error = match f().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if Instant::now() >= deadline {
            let secs = timeout.as_secs_f64();
            return Err(match last_error {
                Some(e) => e.context(format!(
                    "timed out after {secs}s waiting for {what}; last error"
                )),
                None => anyhow::anyhow!("timed out after {secs}s waiting for {what}"),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_found() {
        let mut calls = 0;
        let found = wait_until("third call", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move { Ok((n >= 3).then_some(n)) }
        })
        .await
        .expect("found");
        assert_eq!(found, 3);
    }

    #[tokio::test]
    async fn times_out_with_the_last_error() {
        let err = wait_until::<_, _, ()>("nothing", Duration::from_millis(120), || async {
            Err(anyhow::anyhow!("still broken"))
        })
        .await
        .expect_err("must time out");
        let text = format!("{err:#}");
        assert!(
            text.contains("timed out after 0.12s waiting for nothing"),
            "{text}"
        );
        assert!(text.contains("still broken"), "{text}");
    }
}
