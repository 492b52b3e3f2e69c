//! `lastUsedAt`, kept off the request path: verification notes the time in memory, and a
//! background task writes every pending value in one statement (SPEC §5.3: ≤ 60 s stale).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Default)]
pub struct LastUsed {
    pending: Mutex<HashMap<Uuid, DateTime<Utc>>>,
}

/// Bounds the memory a flood of distinct tokens can take between two flushes.
const MAX_PENDING: usize = 100_000;

impl LastUsed {
    pub fn touch(&self, token_id: Uuid) {
        if let Ok(mut pending) = self.pending.lock() {
            if pending.len() < MAX_PENDING || pending.contains_key(&token_id) {
                pending.insert(token_id, Utc::now());
            }
        }
    }

    /// Writes what is pending; on failure puts it back for the next attempt.
    pub async fn flush(&self, db: &PgPool) -> sqlx::Result<usize> {
        let batch: Vec<(Uuid, DateTime<Utc>)> = match self.pending.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(_) => return Ok(0),
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let (ids, at): (Vec<Uuid>, Vec<DateTime<Utc>>) = batch.iter().copied().unzip();
        match crate::db::verification::record_last_used(db, &ids, &at).await {
            Ok(()) => Ok(batch.len()),
            Err(e) => {
                if let Ok(mut pending) = self.pending.lock() {
                    for (id, at) in batch {
                        let slot = pending.entry(id).or_insert(at);
                        *slot = (*slot).max(at);
                    }
                }
                Err(e)
            }
        }
    }

    /// Flushes every `interval` until the process ends.
    pub async fn run(self: std::sync::Arc<Self>, db: PgPool, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = self.flush(&db).await {
                tracing::warn!(error = %e, "could not record lastUsedAt; will retry");
            }
        }
    }
}
