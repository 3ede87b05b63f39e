//! Leases: which replica of a service is the active one, and the epoch
//! that fences the others.
//!
//! A lease is a row of `leases` (migration V10): its holder, an epoch moved
//! on by every takeover, and an expiry that only Postgres's clock judges, so
//! replicas on hosts whose clocks disagree still agree on who holds it. The
//! holder renews it well inside its term; a replica that finds it expired
//! takes it with the next epoch. Statements only the active replica may run
//! pass a [`Fence`] and call `taskyard_fence(lease, epoch)`, which fails
//! with [`FENCED_SQLSTATE`] once the epoch has moved on: an ex-holder that
//! was paused past its term, and wakes believing it still holds the lease,
//! writes nothing.
//!
//! [`Leadership`] is the loop that takes and keeps a lease for a service
//! and tells it, through a watch channel, when it is active and when it
//! must stand by.

use crate::{Result, Store, StoreError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a lease lasts unrenewed, unless a service is told otherwise
/// (`TASKYARD_LEASE_TTL_MS`): a dead holder is replaced within this.
pub const DEFAULT_LEASE_TTL_MS: u64 = 5_000;

/// A holder name unique to this process: the service, the host and the
/// process id for people, and a fresh id so that a restarted process (the
/// same pid in a new container, say) never inherits its predecessor's term.
pub fn holder_id(service: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    let unique = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{service}@{host}:{}/{}",
        std::process::id(),
        &unique[unique.len() - 8..]
    )
}

/// The SQLSTATE `taskyard_fence` raises (class 55: not the statement's
/// fault, its sender's right to send it is gone).
pub const FENCED_SQLSTATE: &str = "55TY1";

/// The lease a statement is fenced by, and the epoch its sender holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub lease: &'static str,
    pub epoch: i64,
}

/// A lease as Postgres has it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRow {
    pub name: String,
    pub holder: String,
    pub epoch: i64,
    pub acquired_at: taskyard_wire::Timestamp,
    pub expires_at: taskyard_wire::Timestamp,
}

impl StoreError {
    /// Whether Postgres refused a fenced statement because another replica
    /// took the lease over.
    pub fn is_fenced(&self) -> bool {
        match self {
            StoreError::Db(err) => err
                .code()
                .is_some_and(|code| code.code() == FENCED_SQLSTATE),
            _ => false,
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Takes `lease` for `holder` for `ttl` if nobody holds it or its term
    /// has run out; returns the new epoch, or `None` while another holds it.
    pub async fn acquire_lease(
        &self,
        lease: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<i64>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "INSERT INTO leases (name, holder, epoch, expires_at) \
                 VALUES ($1, $2, 1, now() + $3::bigint * interval '1 millisecond') \
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, \
                     epoch = leases.epoch + 1, acquired_at = now(), \
                     expires_at = EXCLUDED.expires_at \
                 WHERE leases.expires_at <= now() \
                 RETURNING epoch",
                &[&lease, &holder, &millis(ttl)],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Extends the term of a lease `holder` still holds at `fence.epoch`;
    /// false if another replica has taken it since.
    pub async fn renew_lease(&self, fence: Fence, holder: &str, ttl: Duration) -> Result<bool> {
        let client = self.client().await?;
        let renewed = client
            .execute(
                "UPDATE leases SET expires_at = now() + $4::bigint * interval '1 millisecond' \
                 WHERE name = $1 AND holder = $2 AND epoch = $3",
                &[&fence.lease, &holder, &fence.epoch, &millis(ttl)],
            )
            .await?;
        Ok(renewed == 1)
    }

    /// Ends the term of a lease `holder` holds at `fence.epoch` now, so that
    /// a standby takes over at once instead of after the term.
    pub async fn release_lease(&self, fence: Fence, holder: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE leases SET expires_at = now() \
                 WHERE name = $1 AND holder = $2 AND epoch = $3",
                &[&fence.lease, &holder, &fence.epoch],
            )
            .await?;
        Ok(())
    }

    /// The lease named `lease`, if it was ever taken.
    pub async fn lease(&self, lease: &str) -> Result<Option<LeaseRow>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT name, holder, epoch, acquired_at, expires_at FROM leases WHERE name = $1",
                &[&lease],
            )
            .await?;
        row.map(|row| {
            Ok(LeaseRow {
                name: row.try_get(0)?,
                holder: row.try_get(1)?,
                epoch: row.try_get(2)?,
                acquired_at: row.try_get(3)?,
                expires_at: row.try_get(4)?,
            })
        })
        .transpose()
    }
}

/// Whether this replica holds the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Standby,
    Active(Fence),
}

impl Role {
    /// `active (epoch N)` or `standby`, as `taskyard services` shows it.
    pub fn describe(&self) -> String {
        match self {
            Role::Standby => "standby".to_owned(),
            Role::Active(fence) => format!("active (epoch {})", fence.epoch),
        }
    }
}

/// How long a term lasts, and how often the holder renews it.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTerms {
    /// How long a lease lasts unrenewed: a dead holder's lease is taken
    /// over this long after its last renewal, at most.
    pub ttl: Duration,
    /// How often the holder renews and a standby tries to take over.
    pub renew_every: Duration,
}

impl LeaseTerms {
    /// Renewals five times a term: a holder misses four in a row before
    /// it must stand by.
    pub fn with_ttl(ttl: Duration) -> LeaseTerms {
        LeaseTerms {
            ttl,
            renew_every: (ttl / 5).max(Duration::from_millis(50)),
        }
    }
}

/// Takes and keeps one lease for this process, in the background.
#[derive(Debug)]
pub struct Leadership {
    role: watch::Receiver<Role>,
    sender: watch::Sender<Role>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Leadership {
    /// Renewals stop with the owner: a service that ends without handing
    /// the lease on leaves it to run out, as a crash would.
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Leadership {
    /// Starts trying to take `lease` for `holder` (unique per process:
    /// a restarted process must not inherit its predecessor's term).
    pub fn start(store: Store, lease: &'static str, holder: String, terms: LeaseTerms) -> Self {
        let (sender, role) = watch::channel(Role::Standby);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(hold(store, lease, holder, terms, sender.clone(), stopped));
        Leadership {
            role,
            sender,
            stop: Some(stop),
            task,
        }
    }

    /// The role now.
    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    /// A receiver of every change of role.
    pub fn watch(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// Waits until this replica holds the lease; returns its fence.
    pub async fn active(&mut self) -> Fence {
        loop {
            if let Role::Active(fence) = *self.role.borrow_and_update() {
                return fence;
            }
            if self.role.changed().await.is_err() {
                // The holding loop is gone (it never ends on its own): wait
                // for shutdown rather than spin.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits until this replica no longer holds the lease at `fence.epoch`.
    pub async fn lost(&mut self, fence: Fence) {
        loop {
            if *self.role.borrow_and_update() != Role::Active(fence) {
                return;
            }
            if self.role.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stands by at once: a fenced statement showed that another replica
    /// has taken the lease over. The loop tries to take it again later.
    pub fn step_down(&self, fence: Fence) {
        self.sender.send_if_modified(|role| {
            let held = *role == Role::Active(fence);
            if held {
                *role = Role::Standby;
            }
            held
        });
    }

    /// Stops trying, and hands the lease on at once if it is held.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(err) = (&mut self.task).await {
            tracing::warn!(error = %err, "the lease task failed");
        }
    }
}

/// The holding loop: take the lease when it is free, renew it while held,
/// stand by when a renewal is refused or none succeeded within a term.
async fn hold(
    store: Store,
    lease: &'static str,
    holder: String,
    terms: LeaseTerms,
    role: watch::Sender<Role>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    // A renewal or takeover that has not answered by the next tick is given
    // up, so that a hung connection cannot keep this replica active.
    let patience = terms.renew_every;
    let mut last_renewed: Option<Instant> = None;
    let mut failing = false;
    let mut tick = tokio::time::interval(terms.renew_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        let current = *role.borrow();
        let sent = Instant::now();
        match current {
            Role::Standby => {
                match tokio::time::timeout(patience, store.acquire_lease(lease, &holder, terms.ttl))
                    .await
                {
                    Ok(Ok(Some(epoch))) => {
                        failing = false;
                        last_renewed = Some(sent);
                        tracing::info!(lease, epoch, holder = %holder, "took the lease: this replica is active");
                        role.send_replace(Role::Active(Fence { lease, epoch }));
                    }
                    Ok(Ok(None)) => failing = false,
                    Ok(Err(err)) => note_failure(&mut failing, lease, &err.to_string()),
                    Err(_) => note_failure(&mut failing, lease, "Postgres did not answer in time"),
                }
            }
            Role::Active(fence) => {
                match tokio::time::timeout(patience, store.renew_lease(fence, &holder, terms.ttl))
                    .await
                {
                    Ok(Ok(true)) => {
                        failing = false;
                        last_renewed = Some(sent);
                    }
                    Ok(Ok(false)) => {
                        tracing::warn!(
                            lease,
                            epoch = fence.epoch,
                            "the lease was taken over: this replica stands by"
                        );
                        role.send_replace(Role::Standby);
                    }
                    Ok(Err(err)) => note_failure(&mut failing, lease, &err.to_string()),
                    Err(_) => note_failure(&mut failing, lease, "Postgres did not answer in time"),
                }
                // Judged on this process's clock from when the last good
                // renewal was sent, which is no later than Postgres's own
                // start of that term: this replica stands by before its
                // term can have ended there.
                let expired = last_renewed.is_none_or(|at| at.elapsed() >= terms.ttl);
                if *role.borrow() == Role::Active(fence) && expired {
                    tracing::warn!(
                        lease,
                        epoch = fence.epoch,
                        "no renewal of the lease succeeded within its term: this replica stands by"
                    );
                    role.send_replace(Role::Standby);
                }
            }
        }
    }
    let last = *role.borrow();
    if let Role::Active(fence) = last {
        match tokio::time::timeout(patience, store.release_lease(fence, &holder)).await {
            Ok(Ok(())) => tracing::info!(lease, epoch = fence.epoch, "lease handed on"),
            Ok(Err(err)) => {
                tracing::warn!(lease, error = %err, "cannot hand the lease on; a standby takes it when its term ends")
            }
            Err(_) => tracing::warn!(
                lease,
                "Postgres did not answer in time; a standby takes the lease when its term ends"
            ),
        }
    }
    role.send_replace(Role::Standby);
}

/// Logs the first failure of a run of them, not every retry.
fn note_failure(failing: &mut bool, lease: &str, error: &str) {
    if !*failing {
        tracing::warn!(lease, error, "cannot reach the lease in Postgres; retrying");
        *failing = true;
    }
}
