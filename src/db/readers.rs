//! Connections of their own for verification reads, in a deadpool pool beside the sqlx one.
//!
//! sqlx's pool gives a connection back on a task of its own, and pings it there before anyone
//! can have it again; no option turns that off. For a cache miss that is a second round trip and
//! a second task on every lookup. Verification reads are short, read-only and never in a
//! transaction, so they run on a deadpool pool whose manager (`Manager`) pings a connection only
//! when it was last handed out `TOKENGATE_DB_PING_AFTER_IDLE` ago or more:
//!
//! - handed out last in, first out, so the connections in use stay warm;
//! - put back only after a read that succeeded: a connection whose read failed, or whose read
//!   was dropped half-way, is closed, never reused;
//! - replaced once idle for ten minutes or open for thirty (sqlx's pool defaults), so a
//!   replica's connections follow a database failover.
//!
//! A read whose connection turns out to have been lost (killed while idle, unseen) runs again on
//! another: [`Readers::read`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, PoolError, QueueMode, RecycleError};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::config::{DatabaseConfig, DEFAULT_PING_AFTER_IDLE_SECS, DEFAULT_VERIFY_CONNECTIONS};

const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// A read on a borrowed connection (boxed: the future borrows the connection).
pub type ReadFuture<'c, T> = Pin<Box<dyn Future<Output = sqlx::Result<T>> + Send + 'c>>;

#[derive(Debug, Clone, Copy)]
pub struct ReadersConfig {
    pub max_connections: usize,
    pub acquire_timeout: Duration,
    pub ping_after_idle: Duration,
}

impl ReadersConfig {
    /// The defaults, beside `pool` (whose acquire timeout they share).
    pub fn beside(pool: &sqlx::PgPool) -> Self {
        ReadersConfig {
            max_connections: DEFAULT_VERIFY_CONNECTIONS as usize,
            acquire_timeout: pool.options().get_acquire_timeout(),
            ping_after_idle: Duration::from_secs(DEFAULT_PING_AFTER_IDLE_SECS),
        }
    }

    pub fn from_database(config: &DatabaseConfig) -> Self {
        ReadersConfig {
            max_connections: config.db_verify_connections.max(1) as usize,
            acquire_timeout: config.acquire_timeout(),
            ping_after_idle: config.ping_after_idle(),
        }
    }
}

/// Opens verification connections, and checks one before it is handed out again.
pub struct Manager {
    options: PgConnectOptions,
    ping_after_idle: Duration,
}

impl managed::Manager for Manager {
    type Type = PgConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> sqlx::Result<PgConnection> {
        self.options.connect().await
    }

    /// `last_used` is when the connection was last handed out; reads are short, so that is
    /// when it went idle, near enough.
    async fn recycle(
        &self,
        conn: &mut PgConnection,
        metrics: &Metrics,
    ) -> managed::RecycleResult<sqlx::Error> {
        if metrics.created.elapsed() >= MAX_LIFETIME || metrics.last_used() >= IDLE_TIMEOUT {
            return Err(RecycleError::message("idle or open too long"));
        }
        if metrics.last_used() >= self.ping_after_idle {
            // A restarted server or a middlebox may have dropped it unseen.
            conn.ping().await?;
        }
        Ok(())
    }
}

/// The verification connections of one replica; cheap to clone.
#[derive(Clone)]
pub struct Readers(managed::Pool<Manager>);

impl Readers {
    /// Connects lazily, on the first read.
    pub fn new(options: PgConnectOptions, config: ReadersConfig) -> Self {
        let manager = Manager {
            options,
            ping_after_idle: config.ping_after_idle,
        };
        let timeout = Some(config.acquire_timeout);
        let pool = managed::Pool::builder(manager)
            .max_size(config.max_connections.max(1))
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .queue_mode(QueueMode::Lifo)
            .runtime(deadpool::Runtime::Tokio1)
            .build();
        match pool {
            Ok(pool) => Readers(pool),
            // Only a timeout without a runtime fails, and the runtime is given.
            Err(e) => unreachable!("the readers' pool: {e}"),
        }
    }

    /// Runs `read`, and again on another connection while its connection turns out to have been
    /// lost (one retry per connection that may be open, plus one on a fresh connection). Only
    /// for reads: a write may have committed before the loss was seen.
    pub async fn read<T>(
        &self,
        read: impl for<'c> Fn(&'c mut PgConnection) -> ReadFuture<'c, T>,
    ) -> sqlx::Result<T> {
        let mut retries = self.0.status().max_size + 1;
        loop {
            let mut lease = self.lease().await?;
            // A lease holds its connection until it is put back.
            let Some(conn) = lease.0.as_deref_mut() else {
                return Err(sqlx::Error::PoolClosed);
            };
            match read(conn).await {
                Ok(value) => {
                    lease.put_back();
                    return Ok(value);
                }
                // The lease is dropped and closes its connection: never reused after a failure.
                Err(e) if retries > 0 && super::connection_lost(&e) => {
                    tracing::info!(error = %e, "database connection lost; reading again");
                    retries -= 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// [`read`](Self::read) on a task of its own, detached from the caller: a request dropped
    /// mid-query (its client gone) must not take the connection down with it, which would churn
    /// reconnects under load. A read that panics answers `WorkerCrashed`.
    pub async fn read_detached<T: Send + 'static>(
        &self,
        read: impl for<'c> Fn(&'c mut PgConnection) -> ReadFuture<'c, T> + Send + 'static,
    ) -> sqlx::Result<T> {
        let readers = self.clone();
        tokio::spawn(async move { readers.read(read).await })
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "a verification read did not finish");
                Err(sqlx::Error::WorkerCrashed)
            })
    }

    /// Connections open and idle right now.
    pub fn num_idle(&self) -> usize {
        self.0.status().available
    }

    /// Closes the pool (at shutdown): idle connections are dropped, reads refused.
    pub async fn close(&self) {
        self.0.close();
    }

    async fn lease(&self) -> sqlx::Result<Lease> {
        match self.0.get().await {
            Ok(conn) => Ok(Lease(Some(conn))),
            Err(PoolError::Backend(e)) => Err(e),
            Err(PoolError::Closed) => Err(sqlx::Error::PoolClosed),
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }
}

/// A connection taken for one read. It goes back to the pool only through [`Lease::put_back`];
/// dropped otherwise (the read failed, or was dropped half-way), it is closed.
struct Lease(Option<Object<Manager>>);

impl Lease {
    fn put_back(mut self) {
        // Dropping the object hands it back to the pool.
        drop(self.0.take());
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(conn) = self.0.take() else { return };
        let conn = Object::take(conn);
        // Say goodbye to the server (a `Terminate` message, so its log shows no broken
        // connection) on a task of its own; outside a runtime the connection is simply dropped.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = conn.close().await;
            });
        }
    }
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.0.status();
        f.debug_struct("Readers")
            .field("max", &status.max_size)
            .field("idle", &status.available)
            .finish_non_exhaustive()
    }
}
