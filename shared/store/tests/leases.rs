//! The lease against Postgres: who may take it and when, what its epoch
//! fences, and the loop that keeps it handing it on.

mod support;

use std::time::Duration;
use taskyard_store::Store;
use taskyard_store::leases::{Fence, Leadership, LeaseTerms, Role};
use taskyard_store::tasks::Placement;

const LEASE: &str = "scheduler";

async fn store(pg: &support::Postgres) -> Store {
    Store::connect_and_migrate(&pg.url(), 2)
        .await
        .expect("connect and migrate")
}

fn placement() -> Placement {
    Placement {
        task_id: uuid::Uuid::now_v7(),
        attempt: 0,
        node_id: "n1".to_owned(),
        reason: "test".to_owned(),
    }
}

#[tokio::test]
async fn one_holder_at_a_time_and_a_stale_epoch_is_fenced() {
    let pg = support::Postgres::start();
    let store = store(&pg).await;
    let ttl = Duration::from_millis(300);

    let first = store.acquire_lease(LEASE, "a", ttl).await.expect("acquire");
    assert_eq!(first, Some(1), "a free lease is taken at epoch 1");
    assert_eq!(
        store.acquire_lease(LEASE, "b", ttl).await.expect("acquire"),
        None,
        "a held lease is not taken"
    );
    let a = Fence {
        lease: LEASE,
        epoch: 1,
    };
    assert!(store.renew_lease(a, "a", ttl).await.expect("renew"));
    // The holder's statements go through (none of these tasks exist, so
    // nothing is placed, but nothing is refused either).
    let placed = store
        .mark_scheduled(&[placement()], Some(a))
        .await
        .expect("the holder's round is allowed");
    assert!(placed.is_empty());

    // Unrenewed, the term ends; the next taker moves the epoch on.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let second = loop {
        let taken = store.acquire_lease(LEASE, "b", ttl).await.expect("acquire");
        if taken.is_some() || std::time::Instant::now() > deadline {
            break taken;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(second, Some(2), "taken once the term ran out");
    assert!(
        !store.renew_lease(a, "a", ttl).await.expect("renew"),
        "the ex-holder cannot renew"
    );
    let refused = store
        .mark_scheduled(&[placement()], Some(a))
        .await
        .expect_err("the ex-holder's round is fenced");
    assert!(refused.is_fenced(), "{refused}");
    assert!(
        !refused.is_poison(),
        "a fenced round is not the round's fault"
    );
    assert!(
        refused
            .refusal()
            .contains("the scheduler lease is at epoch 2, not 1"),
        "{}",
        refused.refusal()
    );
    let refused = store
        .set_health(&[], Some(a))
        .await
        .map(|()| "nothing to write is never refused");
    assert!(refused.is_ok());

    // Handed on, it is free at once.
    let b = Fence {
        lease: LEASE,
        epoch: 2,
    };
    store.release_lease(b, "b").await.expect("release");
    assert_eq!(
        store.acquire_lease(LEASE, "a", ttl).await.expect("acquire"),
        Some(3)
    );
    let row = store.lease(LEASE).await.expect("read").expect("a row");
    assert_eq!((row.holder.as_str(), row.epoch), ("a", 3));
}

#[tokio::test]
async fn a_standby_takes_over_when_the_holder_hands_on_or_dies() {
    let pg = support::Postgres::start();
    let store = store(&pg).await;
    let terms = LeaseTerms::with_ttl(Duration::from_millis(500));

    let mut one = Leadership::start(store.clone(), LEASE, "one".to_owned(), terms);
    let fence = tokio::time::timeout(Duration::from_secs(5), one.active())
        .await
        .expect("the first replica becomes active");
    let mut two = Leadership::start(store.clone(), LEASE, "two".to_owned(), terms);
    // Two whole terms without a change of role: the holder keeps renewing,
    // the standby stays one.
    let mut one_changes = one.watch();
    let mut two_changes = two.watch();
    let changed = tokio::time::timeout(terms.ttl * 2, async {
        tokio::select! {
            _ = one_changes.changed() => "the holder",
            _ = two_changes.changed() => "the standby",
        }
    })
    .await;
    assert!(changed.is_err(), "{:?} changed role", changed.ok());
    assert_eq!(one.role(), Role::Active(fence));
    assert_eq!(two.role(), Role::Standby);

    let started = std::time::Instant::now();
    one.release().await;
    let next = tokio::time::timeout(Duration::from_secs(5), two.active())
        .await
        .expect("the standby takes over");
    assert_eq!(next.epoch, fence.epoch + 1);
    assert!(
        started.elapsed() < terms.ttl,
        "a handed-on lease is taken within a renewal, not a term ({:?})",
        started.elapsed()
    );

    // A holder that dies (its loop aborted, as a kill would) is replaced
    // once its term has run out.
    let mut three = Leadership::start(store.clone(), LEASE, "three".to_owned(), terms);
    let died = std::time::Instant::now();
    drop(two);
    let taken = tokio::time::timeout(Duration::from_secs(5), three.active())
        .await
        .expect("a standby replaces a dead holder");
    assert_eq!(taken.epoch, next.epoch + 1);
    let waited = died.elapsed();
    assert!(
        waited < terms.ttl * 2 + terms.renew_every * 2,
        "taken over {waited:?} after the holder died"
    );
    three.release().await;
}
