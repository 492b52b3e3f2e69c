//! Small, named query functions over PostgreSQL. The HTTP layer calls these and knows no SQL.

pub mod audit;
pub mod groups;
pub mod hash_keys;
pub mod iam;
pub mod identity;
pub mod lists;
pub mod members;
pub mod names;
pub mod policies;
pub mod readers;
pub mod token_list;
pub mod tokens;
pub mod verification;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgPool};

use crate::config::DatabaseConfig;

pub use lists::{contains_pattern, Cursor, NamedRef, Page, Total};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A pool that connects lazily: the service starts (and reports not-ready) while the database is
/// down, and recovers by itself when it comes back.
///
/// sqlx pings every connection it hands out by default: a second round trip per query. Only a
/// connection idle for `TOKENGATE_DB_PING_AFTER_IDLE` (where a restarted server or a middlebox
/// may have dropped it unseen) is pinged; one that fails the ping is replaced before the query
/// runs. A connection in steady use is not: had it broken, its last query would have failed and
/// sqlx would have closed it.
pub fn pool(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    let ping_after_idle = config.ping_after_idle();
    Ok(PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(config.acquire_timeout())
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= ping_after_idle {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_lazy(config.database_url.expose())?)
}

/// Whether `e` says the connection a query ran on was lost (its backend killed or shut down,
/// the link dropped while it sat idle, the server not accepting connections) rather than
/// anything about the query. A database that is down shows up as a pool timeout instead, which
/// this does not count.
pub fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            // 57Pxx operator intervention (admin or crash shutdown, cannot connect now, ...),
            // 08xxx connection exceptions.
            .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")),
        _ => false,
    }
}

/// Whether `e` says the database could not be reached (no connection to be had, or the one a
/// query ran on lost), rather than anything about the query: answered 503, never 500.
pub fn unavailable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) || connection_lost(e)
}

/// A pool whose first connection has been made, for one-shot commands.
pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    let pool = pool(config)?;
    pool.acquire()
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the database at DATABASE_URL: {e}"))?;
    Ok(pool)
}

/// Applies pending migrations, then keys the names and emails written before keys existed.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await?;
    let keyed = names::key_unkeyed_rows(pool).await?;
    if keyed > 0 {
        tracing::info!(rows = keyed, "unique name keys written");
    }
    identity::recompute_canonical_emails(pool)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "recomputing canonical emails (two accounts of one organization whose emails \
                 differ only in case or width must be told apart by changing one): {e}"
            )
        })?;
    Ok(())
}
