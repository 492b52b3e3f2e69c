//! Connections of their own for verification reads, beside the sqlx pool.
//!
//! sqlx's pool gives a connection back on a task of its own, and pings it there (a `Sync` round
//! trip) before anyone can have it again; no option turns that off. For a cache miss that is a
//! second round trip and a second task on every lookup. Verification reads are short, read-only
//! and never in a transaction, so they run on a few connections kept here instead:
//!
//! - taken and put back by the reading task itself, last in first out;
//! - pinged only when idle for `TOKENGATE_DB_PING_AFTER_IDLE` (as the pool's are);
//! - put back only after a read that succeeded: a connection whose read failed, or whose read
//!   was dropped half-way, is closed, never reused;
//! - closed once idle for ten minutes or open for thirty (sqlx's pool defaults), so a replica's
//!   connections follow a database failover.
//!
//! A read whose connection turns out to have been lost (killed while idle, unseen) runs again on
//! another: [`Readers::read`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{DatabaseConfig, DEFAULT_PING_AFTER_IDLE_SECS, DEFAULT_VERIFY_CONNECTIONS};

const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// A read on a borrowed connection (boxed: the future borrows the connection).
pub type ReadFuture<'c, T> = Pin<Box<dyn Future<Output = sqlx::Result<T>> + Send + 'c>>;

/// The verification connections of one replica; cheap to clone.
#[derive(Clone)]
pub struct Readers(Arc<Inner>);

struct Inner {
    options: PgConnectOptions,
    max: usize,
    /// One permit per connection that may be open and in use.
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<Idle>>,
    acquire_timeout: Duration,
    ping_after_idle: Duration,
}

struct Idle {
    conn: PgConnection,
    opened: Instant,
    since: Instant,
}

/// A connection taken for one read; it goes back only through [`Lease::put_back`], and is
/// closed when the lease is dropped without it.
struct Lease {
    readers: Arc<Inner>,
    conn: Option<PgConnection>,
    opened: Instant,
    _slot: OwnedSemaphorePermit,
}

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

impl Readers {
    /// Connects lazily, on the first read.
    pub fn new(options: PgConnectOptions, config: ReadersConfig) -> Self {
        let max = config.max_connections.max(1);
        Readers(Arc::new(Inner {
            options,
            max,
            slots: Arc::new(Semaphore::new(max)),
            idle: Mutex::new(Vec::with_capacity(max)),
            acquire_timeout: config.acquire_timeout,
            ping_after_idle: config.ping_after_idle,
        }))
    }

    /// Runs `read`, and again on another connection while its connection turns out to have been
    /// lost (one retry per connection that may be open, plus one on a fresh connection). Only
    /// for reads: a write may have committed before the loss was seen.
    pub async fn read<T>(
        &self,
        read: impl for<'c> Fn(&'c mut PgConnection) -> ReadFuture<'c, T>,
    ) -> sqlx::Result<T> {
        let mut retries = self.0.max + 1;
        loop {
            let mut lease = self.lease().await?;
            // A lease holds its connection until it is put back.
            let Some(conn) = lease.conn.as_mut() else {
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
        self.0.idle().len()
    }

    /// Closes the idle connections (at shutdown), telling the server goodbye.
    pub async fn close(&self) {
        let idle = std::mem::take(&mut *self.0.idle());
        for Idle { conn, .. } in idle {
            // A connection that is gone already has nothing to say goodbye to.
            let _ = conn.close().await;
        }
    }

    async fn lease(&self) -> sqlx::Result<Lease> {
        let inner = &self.0;
        let deadline = tokio::time::Instant::now() + inner.acquire_timeout;
        let slot = tokio::time::timeout_at(deadline, inner.slots.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        while let Some(Idle {
            mut conn,
            opened,
            since,
        }) = inner.take_idle()
        {
            let idle_for = since.elapsed();
            if idle_for >= inner.ping_after_idle {
                // A restarted server or a middlebox may have dropped it unseen.
                let ping = tokio::time::timeout_at(deadline, conn.ping()).await;
                if !matches!(ping, Ok(Ok(()))) {
                    continue;
                }
            }
            return Ok(Lease {
                readers: inner.clone(),
                conn: Some(conn),
                opened,
                _slot: slot,
            });
        }
        let conn = tokio::time::timeout_at(deadline, inner.options.connect())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        Ok(Lease {
            readers: inner.clone(),
            conn: Some(conn),
            opened: Instant::now(),
            _slot: slot,
        })
    }
}

impl Inner {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // Nothing panics while holding it; a poisoned list is still a list.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used connection, after closing any idle for too long (the oldest are at
    /// the bottom of the stack).
    fn take_idle(&self) -> Option<Idle> {
        let (stale, next) = {
            let mut idle = self.idle();
            let stale = idle
                .iter()
                .take_while(|c| c.since.elapsed() >= IDLE_TIMEOUT)
                .count();
            let stale: Vec<Idle> = idle.drain(..stale).collect();
            (stale, idle.pop())
        };
        close_in_background(stale.into_iter().map(|idle| idle.conn));
        next
    }
}

/// Says goodbye to the server (a `Terminate` message, so its log shows no broken connection)
/// on a task of its own; outside a runtime the connections are simply dropped.
fn close_in_background(conns: impl IntoIterator<Item = PgConnection>) {
    let conns: Vec<PgConnection> = conns.into_iter().collect();
    if conns.is_empty() {
        return;
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            for conn in conns {
                let _ = conn.close().await;
            }
        });
    }
}

impl Lease {
    fn put_back(mut self) {
        if self.opened.elapsed() >= MAX_LIFETIME {
            return; // closed by the drop
        }
        if let Some(conn) = self.conn.take() {
            self.readers.idle().push(Idle {
                conn,
                opened: self.opened,
                since: Instant::now(),
            });
        }
        // The slot is released after the push, so whoever takes it finds the connection.
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        close_in_background(self.conn.take());
    }
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("max", &self.0.max)
            .field("idle", &self.num_idle())
            .finish_non_exhaustive()
    }
}
