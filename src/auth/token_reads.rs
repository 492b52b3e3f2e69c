//! Token misses that arrive together share a round trip. A miss joins a queue; at most
//! `READING` reads run at once, and each takes every miss queued when it starts (up to `BATCH`).
//! Alone, a miss is read at once, as it always was; under load, one statement answers many
//! digests, which costs PostgreSQL, and the wake-ups of both processes, far less than a
//! statement each (docs/benchmarks.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use sqlx::PgConnection;
use tokio::sync::oneshot;

use crate::credential::Digest;
use crate::db::readers::Readers;
use crate::db::verification::{self, VerifiedToken};

/// Reads under way at once. Misses that arrive meanwhile wait for the next one.
const READING: usize = 2;
/// Digests in one read at most.
const BATCH: usize = 300;

#[derive(Clone)]
pub struct TokenReads(Arc<Shared>);

struct Shared {
    readers: Readers,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    queued: Vec<Miss>,
    reading: usize,
}

struct Miss {
    digest: Digest,
    personal: bool,
    answer: oneshot::Sender<Answer>,
}

/// What a read found for one digest, or how it failed (said once, in the log, by the read).
type Answer = Result<Option<VerifiedToken>, Failure>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The database could not be reached: answered as any unavailable database is (503).
    Unavailable,
    /// Anything else, a row that does not decode for one (500).
    Fault,
}

impl TokenReads {
    pub fn new(readers: Readers) -> Self {
        TokenReads(Arc::new(Shared {
            readers,
            state: Mutex::new(State::default()),
        }))
    }

    /// The token whose current secret, or previous secret in its grace period, has `digest`;
    /// for a personal token with its owner's live permissions.
    pub async fn read(
        &self,
        digest: Digest,
        personal: bool,
    ) -> sqlx::Result<Option<VerifiedToken>> {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut state = self.state();
            state.queued.push(Miss {
                digest,
                personal,
                answer,
            });
            let start = state.reading < READING;
            if start {
                state.reading += 1;
            }
            start
        };
        if start {
            // A task of its own: a request dropped mid-read (its client gone) must not take the
            // connection, or the other misses of its batch, down with it.
            tokio::spawn(
                Reader {
                    reads: self.clone(),
                    done: false,
                }
                .run(),
            );
        }
        match answered.await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(Failure::Unavailable)) => Err(sqlx::Error::PoolTimedOut),
            // The reader is gone without answering: it panicked.
            Ok(Err(Failure::Fault)) | Err(_) => Err(sqlx::Error::WorkerCrashed),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock: a poisoned one still holds a consistent state.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One of the `READING` reads: it takes batches from the queue until the queue is empty.
struct Reader {
    reads: TokenReads,
    /// Set when the queue was found empty and the reader's place given back.
    done: bool,
}

impl Reader {
    async fn run(mut self) {
        loop {
            let batch: Vec<Miss> = {
                let mut state = self.reads.state();
                if state.queued.is_empty() {
                    // Under the lock that queues: a miss queued from now on starts a reader.
                    state.reading -= 1;
                    drop(state);
                    self.done = true;
                    return;
                }
                let n = state.queued.len().min(BATCH);
                state.queued.drain(..n).collect()
            };
            self.answer(batch).await;
        }
    }

    async fn answer(&self, batch: Vec<Miss>) {
        let service: Arc<[Digest]> = (batch.iter().filter(|m| !m.personal))
            .map(|m| m.digest)
            .collect();
        let personal: Arc<[Digest]> = (batch.iter().filter(|m| m.personal))
            .map(|m| m.digest)
            .collect();
        let found = (self.reads.0.readers)
            .read(move |conn| {
                let (service, personal) = (service.clone(), personal.clone());
                Box::pin(async move { find(conn, &service, &personal).await })
            })
            .await;
        match found {
            Ok(found) => {
                for miss in batch {
                    let token = found.get(&miss.digest).cloned();
                    let _ = miss.answer.send(Ok(token));
                }
            }
            Err(e) => {
                let failure = if crate::db::unavailable(&e) {
                    Failure::Unavailable
                } else {
                    Failure::Fault
                };
                tracing::warn!(error = %e, misses = batch.len(), "a verification read failed");
                for miss in batch {
                    let _ = miss.answer.send(Err(failure));
                }
            }
        }
    }
}

impl Drop for Reader {
    /// A reader that did not end by finding the queue empty panicked: give its place back, so
    /// that the next miss starts another.
    fn drop(&mut self) {
        if !self.done {
            self.reads.state().reading -= 1;
        }
    }
}

/// The tokens the digests find: current secrets first (service and personal tokens apart, as
/// only personal ones pay for their owner's live permissions), then previous secrets for the
/// digests still unknown. One round trip for the usual batch.
async fn find(
    conn: &mut PgConnection,
    service: &[Digest],
    personal: &[Digest],
) -> sqlx::Result<HashMap<Digest, VerifiedToken>> {
    let mut found = HashMap::with_capacity(service.len() + personal.len());
    for (digests, personal) in [(service, false), (personal, true)] {
        if !digests.is_empty() {
            for row in verification::by_digests(&mut *conn, digests, personal).await? {
                insert(&mut found, row);
            }
        }
    }
    let unknown: Vec<Digest> = (service.iter().chain(personal))
        .filter(|d| !found.contains_key(*d))
        .copied()
        .collect();
    if !unknown.is_empty() {
        for row in verification::by_previous_digests(&mut *conn, &unknown).await? {
            insert(&mut found, row);
        }
    }
    Ok(found)
}

fn insert(found: &mut HashMap<Digest, VerifiedToken>, row: VerifiedToken) {
    if let Ok(bytes) = <[u8; 32]>::try_from(row.digest.as_slice()) {
        found.insert(Digest(bytes), row);
    }
}
