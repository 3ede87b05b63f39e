//! What the orchestrator knows of pools and nodes, to refuse at submission a
//! task that could never run: its pool does not exist, or no member node is
//! large enough. Loaded from Postgres at start and kept current from pool and
//! node events (a core subscription made before the load, so nothing falls
//! between the two).

use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use taskyard_policy::{Fleet, Rules, Verdict};
use taskyard_store::{Store, StoreError};
use taskyard_wire::event::{NodeEvent, NodeEventKind};
use taskyard_wire::pool::{PoolEvent, PoolSpec};
use taskyard_wire::task::NewTask;
use taskyard_wire::{Rejection, RejectionCode, codec, subjects};

/// Pools and the nodes' sizes and labels.
#[derive(Debug, Default)]
pub struct PoolView {
    pools: HashMap<String, PoolSpec>,
    fleet: Fleet,
}

/// Shared between the submission paths and the follower task.
pub type SharedView = Arc<RwLock<PoolView>>;

impl PoolView {
    /// A view with only the `default` pool and no nodes (tests, or before
    /// anything is known).
    pub fn with_default_pool() -> PoolView {
        let default = PoolSpec::default_pool();
        PoolView {
            pools: HashMap::from([(default.name.clone(), default)]),
            ..PoolView::default()
        }
    }

    /// Admits a task into its pool, filling in the pool's default timeout, or
    /// says why it could never run there.
    pub fn admit(&self, task: &mut NewTask) -> Result<(), Rejection> {
        let Some(pool) = self.pools.get(&task.pool) else {
            return Err(Rejection::unknown_pool(
                "pool",
                format!("no pool named `{}`", task.pool),
            ));
        };
        if task.timeout_ms.is_none() {
            task.timeout_ms = pool.default_timeout_ms;
        }
        // A task larger than its pool's quota could never be placed either.
        for (field, asked, quota, unit) in [
            (
                "resources.cpu_millis",
                task.resources.cpu_millis,
                pool.max_cpu_millis,
                "m cpu",
            ),
            (
                "resources.memory_mb",
                task.resources.memory_mb,
                pool.max_memory_mb,
                " MiB",
            ),
        ] {
            if let Some(quota) = quota
                && asked > quota
            {
                return Err(Rejection::new(
                    field,
                    format!(
                        "asks for {asked}{unit}, more than pool {}'s quota of {quota}{unit}",
                        task.pool
                    ),
                ));
            }
        }
        let rules = Rules {
            pool_selector: &pool.node_selector,
            task_selector: &task.node_selector,
            strategy: pool.placement,
            overcommit: pool.overcommit,
        };
        match self.fleet.could_ever_fit(&task.resources, &rules) {
            // No member yet: the task waits for one, with that reason.
            Verdict::Fits | Verdict::NoMembers => Ok(()),
            Verdict::TooBig {
                cpu_millis,
                memory_mb,
            } => Err(Rejection::new(
                "resources",
                format!(
                    "no node of pool {} could ever run it: it asks for {}m cpu and {} MiB; the largest has {cpu_millis}m cpu and {memory_mb} MiB",
                    task.pool, task.resources.cpu_millis, task.resources.memory_mb
                ),
            )),
        }
    }

    fn apply_pool(&mut self, event: PoolEvent) {
        if event.deleted {
            self.pools.remove(&event.pool.name);
        } else {
            self.pools.insert(event.pool.name.clone(), event.pool);
        }
    }

    fn apply_node(&mut self, event: NodeEvent) {
        match event.kind {
            NodeEventKind::Removed => self.fleet.remove(&event.node_id),
            // Health does not matter here: a lost node may come back, and a
            // task that fits it should wait rather than be refused.
            _ => self
                .fleet
                .upsert_labelled(&event.node_id, event.capacity, event.labels, true),
        }
    }
}

/// Subscribes to pool and node events, loads the view, and keeps it current.
pub async fn follow(client: &async_nats::Client, store: &Store) -> anyhow::Result<SharedView> {
    let mut pools = client
        .subscribe(subjects::POOL_EVENTS_ALL)
        .await
        .map_err(|err| anyhow::anyhow!("cannot follow pool events: {err}"))?;
    let mut nodes = client
        .subscribe(subjects::NODE_EVENTS_ALL)
        .await
        .map_err(|err| anyhow::anyhow!("cannot follow node events: {err}"))?;
    let view = Arc::new(RwLock::new(load(store).await?));
    let shared = view.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(message) = pools.next() => match codec::decode::<PoolEvent>(&message.payload) {
                    Ok(event) => write(&shared).apply_pool(event),
                    Err(err) => tracing::warn!(error = %err, "skipping pool event"),
                },
                Some(message) = nodes.next() => match codec::decode::<NodeEvent>(&message.payload) {
                    Ok(event) => write(&shared).apply_node(event),
                    Err(err) => tracing::warn!(error = %err, "skipping node event"),
                },
                else => break,
            }
        }
    });
    Ok(view)
}

async fn load(store: &Store) -> Result<PoolView, StoreError> {
    let mut view = PoolView::default();
    for pool in store.list_pools().await? {
        view.pools.insert(pool.name.clone(), pool);
    }
    for node in store.list_nodes().await? {
        view.fleet
            .upsert_labelled(&node.id, node.capacity, node.labels.clone(), true);
    }
    Ok(view)
}

fn write(view: &SharedView) -> std::sync::RwLockWriteGuard<'_, PoolView> {
    // The view is a cache of events; a panic mid-update leaves it no worse
    // than a missed event.
    view.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether `refusal` is for a pool this view does not know: by its code,
/// which survives the field being nested (`tasks[2].pool`), where the
/// message's wording is no contract.
pub fn is_unknown_pool(refusal: Option<&Rejection>) -> bool {
    refusal.is_some_and(|r| r.code == RejectionCode::UnknownPool)
}

/// Reloads the pools from Postgres. A pool created a moment ago may not have
/// reached this view as an event yet; a submission refused for an unknown
/// pool is planned again after this, so a client can create a pool and use
/// it at once.
pub async fn catch_up(view: &SharedView, store: &Store) {
    match store.list_pools().await {
        Ok(pools) => {
            write(view).pools = pools.into_iter().map(|p| (p.name.clone(), p)).collect();
        }
        Err(err) => tracing::warn!(error = %err, "cannot reload pools"),
    }
}

/// Reads the view.
pub fn read(view: &SharedView) -> std::sync::RwLockReadGuard<'_, PoolView> {
    view.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskyard_wire::task::{Limits, validate_task};

    #[test]
    fn a_task_over_its_pool_s_quota_is_refused_with_the_quota() {
        let mut view = PoolView::with_default_pool();
        view.apply_pool(PoolEvent {
            pool: PoolSpec {
                name: "small".to_owned(),
                max_memory_mb: Some(512),
                ..PoolSpec::default_pool()
            },
            deleted: false,
            at: taskyard_wire::now(),
        });
        let task = |memory: u32| {
            validate_task(
                &serde_json::json!({"kind": "noop", "pool": "small", "resources": {"memory_mb": memory}}),
                &Limits::default(),
            )
            .expect("a valid task")
        };
        let refusal = view.admit(&mut task(1024)).expect_err("over the quota");
        assert_eq!(refusal.field, "resources.memory_mb");
        assert_eq!(
            refusal.message,
            "asks for 1024 MiB, more than pool small's quota of 512 MiB"
        );
        // Within the quota, it waits for a node like any other.
        assert!(view.admit(&mut task(512)).is_ok());
    }
}
