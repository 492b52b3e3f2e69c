//! `lastUsedAt`, kept off the request path: verification notes the time in memory, and a
//! background task writes every pending value in one statement (SPEC §5.3: ≤ 60 s stale).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug)]
pub struct LastUsed {
    pending: Mutex<HashMap<Uuid, DateTime<Utc>>>,
    /// When the pending values were last all written (or there were none), for metrics.
    last_flush: Mutex<Instant>,
}

impl Default for LastUsed {
    fn default() -> Self {
        LastUsed {
            pending: Mutex::default(),
            last_flush: Mutex::new(Instant::now()),
        }
    }
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
            self.flushed();
            return Ok(0);
        }
        let (ids, at): (Vec<Uuid>, Vec<DateTime<Utc>>) = batch.iter().copied().unzip();
        match crate::db::verification::record_last_used(db, &ids, &at).await {
            Ok(()) => {
                self.flushed();
                Ok(batch.len())
            }
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

    fn flushed(&self) {
        if let Ok(mut at) = self.last_flush.lock() {
            *at = Instant::now();
        }
    }

    /// Since everything pending was last written: how stale `lastUsedAt` may be in the database.
    pub fn since_flush(&self) -> Duration {
        self.last_flush
            .lock()
            .map(|at| at.elapsed())
            .unwrap_or_default()
    }

    /// Tokens whose use is noted but not yet written.
    pub fn pending(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
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
