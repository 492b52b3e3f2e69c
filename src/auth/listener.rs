//! `LISTEN` for other replicas' invalidations. While the connection is down the caches are
//! bypassed; when it is back they restart empty, since messages may have been missed.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;

use super::cache::{Caches, Invalidation};

/// A pool of one connection for the listener, kept apart from the request pool (and from
/// transaction-pooling proxies, which cannot carry `LISTEN`).
pub fn pool(database_url: &str) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(database_url)?)
}

/// Listens until the process ends.
pub async fn run(pool: PgPool, caches: Arc<Caches>) {
    let mut delay = Duration::from_millis(200);
    loop {
        match connect(&pool).await {
            Ok(mut listener) => {
                let connected_at = std::time::Instant::now();
                caches.set_enabled(true);
                tracing::info!("cache invalidation listener connected; caches enabled");
                delay = Duration::from_millis(200);
                // None: the connection was lost. Err: it failed. Either way, stop trusting
                // the caches until a new connection is listening.
                while let Ok(Some(notification)) = listener.try_recv().await {
                    caches.invalidate(Invalidation::parse(notification.payload()));
                }
                caches.set_enabled(false);
                tracing::warn!("cache invalidation listener lost its connection; caches bypassed");
                // Try again at once after a long-lived connection (the caches stay bypassed
                // until we are back); back off if connections keep dying young.
                if connected_at.elapsed() > Duration::from_secs(1) {
                    continue;
                }
            }
            Err(e) => {
                caches.set_enabled(false);
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64,
                    "cannot connect the cache invalidation listener; caches bypassed");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn connect(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    // We reconnect ourselves, so that the caches are known to be bypassed in between.
    listener.eager_reconnect(false);
    listener.listen(Invalidation::CHANNEL).await?;
    Ok(listener)
}
