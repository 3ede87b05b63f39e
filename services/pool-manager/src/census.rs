//! Tasks by pool and state as a metric (`taskyard_tasks`), counted in
//! Postgres now and then: the one number every dashboard starts from, and
//! one no single service could count from its own events alone.

use std::collections::HashSet;
use std::time::Duration;
use taskyard_runtime::shutdown::Shutdown;
use taskyard_store::Store;

/// Counts every `every` until shutdown. A (pool, state) seen once and now
/// empty reads 0 rather than keeping its last count.
pub fn spawn(store: Store, every: Duration, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen: HashSet<(String, String)> = HashSet::new();
        loop {
            match store.pool_state_counts().await {
                Ok(counts) => {
                    let now: HashSet<(String, String)> = counts
                        .iter()
                        .map(|(pool, state, _)| (pool.clone(), state.clone()))
                        .collect();
                    for (pool, state) in seen.difference(&now) {
                        metrics::gauge!("taskyard_tasks", "pool" => pool.clone(), "state" => state.clone())
                            .set(0.0);
                    }
                    for (pool, state, n) in counts {
                        metrics::gauge!("taskyard_tasks", "pool" => pool, "state" => state)
                            .set(n as f64);
                    }
                    seen.extend(now);
                }
                Err(err) => {
                    taskyard_runtime::warn_throttled!(error = %err, "counting tasks by pool and state failed")
                }
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    })
}
