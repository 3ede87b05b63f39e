//! Every SQL statement Taskyard runs lives in this crate.
//!
//! Postgres is the source of truth: NATS carries work and news, but a task's
//! state is what its row says. Every state change is one guarded statement
//! (`... WHERE state = ANY(allowed) AND attempt = $n`) that also appends the
//! transition to `task_events` in the same statement, so a redelivered or stale
//! message changes nothing and history never misses a step. Hot-path writes take
//! whole batches as arrays (`unnest`) — one statement per batch, never one per
//! task.
//!
//! # Layout
//! - [`migrate`]: applies `migrations/` under an advisory lock, so services that
//!   start together do not race.
//! - [`transitions`]: the transition table (every statement that writes
//!   `tasks.state`, with the states it moves from and to, the source of its
//!   guard), the kit those statements are built from, and [`transitions::Transition`].
//! - [`tasks`]: task creation ([`tasks::insert`]), an attempt's placement,
//!   start and finish ([`tasks::attempts`]), the scheduler's rebuild
//!   ([`tasks::rebuild`]) and task reads ([`tasks::reads`]).
//! - [`leases`]: which replica of a service is active, the epoch that
//!   fences the others, and [`leases::Leadership`], the loop that keeps one.
//! - [`nodes`]: the node registry written from heartbeats, and node reads.
//! - [`pools`]: pool definitions.
//! - [`timers`]: what happens when a task's time is up (deadline, backoff,
//!   delayed start, placement deadline), and the overdue list.
//! - [`interventions`]: cancels, and the loss of a node with work on it.
//! - [`dead_letters`]: messages that could never be handled.
//! - [`logs`]: output lines of `exec` attempts, stored in batches and read in pages.
//! - [`workflows`]: dependency release and failure propagation, workflows
//!   and their compensation, and the workflow page.
//! - [`tokens`]: the REST API's bearer tokens, kept hashed.
//! - [`credentials`]: the bus's NATS identities (public keys only), for
//!   `taskyard creds` and for naming who sent a request.
//! - [`actors`]: the `actor` history rows keep, named from who sent a request.
//! - [`console`]: the web console's reads: filtered task pages, throughput and latency per minute, pool loads, node history, workflows.
//! - [`stats`]: aggregate questions (latency percentiles) for benchmarks and dashboards.
//! - [`tls`]: TLS to Postgres by the URL's `sslmode`, and [`tls::DbTls`],
//!   whom to trust for the server's certificate.

pub mod actors;
pub mod console;
pub mod credentials;
pub mod dead_letters;
pub mod interventions;
pub mod leases;
pub mod logs;
pub mod migrate;
pub mod nodes;
pub mod pools;
pub mod seed;
pub mod tasks;
pub mod timers;
pub mod tls;
pub mod tokens;
pub mod transitions;
pub mod workflows;

use deadpool_postgres::{Config, ManagerConfig, Pool, RecyclingMethod, Runtime};

pub use tls::DbTls;

/// What went wrong talking to Postgres.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("postgres error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("no postgres connection available: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("cannot set up the postgres pool: {0}")]
    Setup(String),
    /// TLS could not be set up, or the server or its certificate was
    /// refused.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("applying migrations failed: {0}")]
    Migrate(String),
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    /// A caller named a state that the statement's row in the transition
    /// table does not allow (an insert in `running`, a finish report whose
    /// outcome is `cancelled`); nothing was written.
    #[error("{statement} may not leave a task `{state}` (see taskyard_store::transitions::table)")]
    Disallowed {
        statement: &'static str,
        state: taskyard_wire::TaskState,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Whether Postgres refused the statement for what it was given (a
    /// value it cannot store, a constraint it breaks, a row too large)
    /// rather than for the state of the world (no connection, a timeout, a
    /// deadlock): see `is_poison_code`; or the store refused it before
    /// sending it, for a state the transition table does not allow
    /// ([`StoreError::Disallowed`]).
    /// Sent again unchanged, such a statement fails again: the batch holds
    /// poison, and the caller should find and set aside the message that
    /// carries it (`taskyard_runtime::poison`).
    pub fn is_poison(&self) -> bool {
        match self {
            StoreError::Db(err) => err.code().is_some_and(|code| is_poison_code(code.code())),
            StoreError::Disallowed { .. } => true,
            _ => false,
        }
    }

    /// The server's own words, when Postgres refused the statement: what a
    /// rejected task or a dead letter records as its reason.
    pub fn refusal(&self) -> String {
        match self {
            StoreError::Db(err) => match err.as_db_error() {
                Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
                None => err.to_string(),
            },
            other => other.to_string(),
        }
    }
}

/// Whether a statement Postgres answered with `code` would fail the same way
/// if sent again unchanged. Only a few classes speak of the moment rather
/// than the statement: 08 connection, 40 rollback (serialization failure,
/// deadlock), 53 insufficient resources, 55 object not in prerequisite state
/// (a lock not available), 57 operator intervention (shutdown, cancel), 58
/// system error. Every other refusal (22 a value it cannot store, 23 a
/// constraint, 54 a row too large, P0 a trigger's exception, even 42 a
/// statement of ours that is wrong) is about what was sent, and a batch
/// holding it is split to find the message that carries it. Errors without
/// a code (a connection lost, a pool timeout) are never poison.
fn is_poison_code(code: &str) -> bool {
    const TRANSIENT: [&str; 6] = ["08", "40", "53", "55", "57", "58"];
    !TRANSIENT.iter().any(|class| code.starts_with(class))
}

/// [`StoreError::is_poison`] for an error that may wrap a store error
/// (anyhow's context chains, say).
pub fn blames_input(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(store) = err.downcast_ref::<StoreError>() {
            return store.is_poison();
        }
        if let Some(db) = err.downcast_ref::<tokio_postgres::Error>() {
            return db.code().is_some_and(|code| is_poison_code(code.code()));
        }
        next = err.source();
    }
    false
}

/// Default size of a service's connection pool.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// A handle on the database: a connection pool, cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// Names of NATS credentials by public key, as found (see
    /// [`Store::actor`]): a key's name never changes, so a request from a
    /// known client costs no query.
    credential_names: std::sync::Arc<std::sync::RwLock<std::collections::HashMap<String, String>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// How long opening one connection may take. Without it a Postgres host
/// that drops packets (not one that refuses) would hold a statement for
/// the kernel's TCP timeout, minutes.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl Store {
    /// Builds a pool for `url` (a `postgres://` URL) and checks one connection.
    ///
    /// The pool outlives a Postgres restart: the server closes every
    /// connection, each one's client sees it closed, and the pool drops it
    /// when it is next taken (`RecyclingMethod::Fast` checks exactly that)
    /// and opens a new one. A statement that was running on one fails
    /// with a connection error, which is never poison ([`StoreError::is_poison`]),
    /// so its message is retried.
    ///
    /// TLS follows the URL's `sslmode` (see [`tls`]), trusting the system's
    /// root certificates; [`Store::connect_with`] names a CA.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Store> {
        Store::connect_with(url, pool_size, &DbTls::default()).await
    }

    /// [`Store::connect`], trusting whom `tls` says for the server's
    /// certificate. A TLS failure on this first connection comes back as
    /// [`StoreError::Tls`], which says why (a certificate that could not be
    /// verified, a server without TLS under `sslmode=require`).
    pub async fn connect_with(url: &str, pool_size: usize, tls: &DbTls) -> Result<Store> {
        let connector = tls.connector_for(url)?;
        let mut config = Config::new();
        config.url = Some(url.to_owned());
        // Plan every statement for the table as it is now. A generic plan,
        // cached after five runs, is frozen with the statistics of that
        // moment: on a new database `tasks` looks empty until autovacuum
        // first analyzes it (a minute or more), and placements planned as
        // a hash join over a scan of the whole table took 13 ms each, ten
        // times their cost, until then. Planning each batch's statement
        // costs far less than that.
        config.options = Some("-c plan_cache_mode=force_custom_plan".to_owned());
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        config.manager = Some(ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        });
        let mut pool = deadpool_postgres::PoolConfig::new(pool_size.max(1));
        // Creation is bounded, waiting for a free connection is not: under
        // load every connection may be busy for a while, and that is no
        // error.
        pool.timeouts.create = Some(CONNECT_TIMEOUT);
        pool.timeouts.recycle = Some(CONNECT_TIMEOUT);
        config.pool = Some(pool);
        let pool = config
            .create_pool(Some(Runtime::Tokio1), connector)
            .map_err(|err| StoreError::Setup(err.to_string()))?;
        let store = Store {
            pool,
            credential_names: Default::default(),
        };
        let checked = match store.client().await {
            Ok(client) => client
                .simple_query("SELECT 1")
                .await
                .map_err(StoreError::from),
            Err(err) => Err(err),
        };
        if let Err(err) = checked {
            return Err(tls.explain(&err).map_or(err, StoreError::Tls));
        }
        Ok(store)
    }

    /// Connects and applies pending migrations.
    pub async fn connect_and_migrate(url: &str, pool_size: usize) -> Result<Store> {
        Store::connect_and_migrate_with(url, pool_size, &DbTls::default()).await
    }

    /// [`Store::connect_with`], then applies pending migrations.
    pub async fn connect_and_migrate_with(
        url: &str,
        pool_size: usize,
        tls: &DbTls,
    ) -> Result<Store> {
        let store = Store::connect_with(url, pool_size, tls).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    /// Whether the database answers (for health checks).
    pub async fn ping(&self) -> Result<()> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// Whether a connection of this store talks to Postgres over TLS, as
    /// the server sees it: under `sslmode=prefer` that depends on the
    /// server, so a program can say which it got.
    pub async fn encrypted(&self) -> Result<bool> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await?;
        Ok(row.try_get(0)?)
    }
}

/// Converts a count or size from the wire (unsigned) to a Postgres integer.
pub(crate) fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Converts a duration in milliseconds from the wire to a Postgres bigint.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The reverse of [`to_i32`]: negative values never come out of our CHECKs.
pub(crate) fn to_u32(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

pub mod stats;

#[cfg(test)]
mod tests {
    use super::is_poison_code;

    #[test]
    fn refusals_of_what_was_sent_are_poison_and_outages_are_not() {
        for poison in [
            "22P05", "22021", "23514", "23505", "54000", "P0001", "42703",
        ] {
            assert!(is_poison_code(poison), "{poison}");
        }
        for outage in [
            "08006", "40001", "40P01", "53300", "55P03", "57P01", "58030",
        ] {
            assert!(!is_poison_code(outage), "{outage}");
        }
    }
}
