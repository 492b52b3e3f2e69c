//! `LISTEN` for other replicas' invalidations. While the connection is down the caches are
//! bypassed; when it is back they restart empty, since messages may have been missed.
//!
//! A connection can also die without saying so: a frozen proxy, a NAT entry dropped, a peer gone
//! without FIN or RST (half-open TCP). Nothing then arrives, which looks exactly like a quiet
//! system. So the listener asks its own connection a question every `PROBE_EVERY`; no answer
//! within `PROBE_TIMEOUT` counts as a drop (SPEC §7: detected within 5 s). The same probe
//! refuses a server in recovery (a standby after a failover, which never sees the primary's
//! NOTIFYs).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::PgPool;

use super::cache::{Caches, Invalidation};

/// How often the listener checks that its connection still answers.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
/// How long an answer may take before the connection counts as dropped.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Listens until the process ends, on connections of its own made from `options` (kept apart
/// from the request pool, and from transaction-pooling proxies, which cannot carry `LISTEN`).
pub async fn run(options: PgConnectOptions, caches: Arc<Caches>) {
    let mut delay = Duration::from_millis(200);
    loop {
        // A pool per connection: a connection given up as silent is dropped, and sqlx's
        // goodbye on it (UNLISTEN) may hang as long as the link does; it must not hold the
        // slot the next connection needs.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options.clone());
        match connect(&pool).await {
            Ok(mut listener) => {
                let connected_at = std::time::Instant::now();
                caches.set_enabled(true);
                tracing::info!("cache invalidation listener connected; caches enabled");
                delay = Duration::from_millis(200);
                let why = listen(&mut listener, &caches).await;
                caches.set_enabled(false);
                tracing::warn!(
                    reason = why,
                    "cache invalidation listener lost; caches bypassed"
                );
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

/// Applies notifications until the connection is lost, fails, or stops answering its probe;
/// returns which.
async fn listen(listener: &mut PgListener, caches: &Caches) -> &'static str {
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    probe.tick().await;
    loop {
        // `try_recv` is cancel-safe, so the timer may interrupt it.
        tokio::select! {
            received = listener.try_recv() => match received {
                Ok(Some(notification)) => {
                    caches.invalidate(Invalidation::parse(notification.payload()));
                }
                Ok(None) => return "connection lost",
                Err(_) => return "connection failed",
            },
            _ = probe.tick() => {
                match tokio::time::timeout(PROBE_TIMEOUT, in_recovery(listener)).await {
                    Ok(Ok(false)) => {}
                    Ok(Ok(true)) => return "the server is a standby in recovery",
                    Ok(Err(_)) => return "probe failed",
                    Err(_) => return "probe unanswered (connection silent)",
                }
                // Notifications that came in while the probe ran were buffered.
                while let Some(notification) = listener.next_buffered() {
                    caches.invalidate(Invalidation::parse(notification.payload()));
                }
            }
        }
    }
}

async fn in_recovery(listener: &mut PgListener) -> sqlx::Result<bool> {
    sqlx::query_scalar!(r#"select pg_is_in_recovery() as "in_recovery!""#)
        .fetch_one(listener)
        .await
}

async fn connect(pool: &PgPool) -> anyhow::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    // We reconnect ourselves, so that the caches are known to be bypassed in between.
    listener.eager_reconnect(false);
    if in_recovery(&mut listener).await? {
        anyhow::bail!("the server is a standby in recovery: its NOTIFYs are not the primary's");
    }
    listener.listen(Invalidation::CHANNEL).await?;
    Ok(listener)
}
