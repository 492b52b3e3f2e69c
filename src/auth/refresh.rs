//! After a policy or group change, the live permissions of the affected members that were
//! cached are read again in batches, instead of each member's next request reading its own. A
//! policy on 10,000 members, edited under load, would otherwise send 10,000 single reads to
//! the database at once and stall every one of those members' requests behind them.
//!
//! The invalidation still drops the entries first (a refused permission is refused at once).
//! A request that then misses a member whose batch is already reading waits for it (a batch
//! is small, so that is a few milliseconds), and reads alone if the batch did not bring its
//! entry; one whose batch is still queued reads alone at once, so that no request waits
//! behind the whole queue. The batches read what requests do not get to first, and skip
//! members already cached by the time they start.
//!
//! A batch is guarded per member, not by the caches' generation (any write anywhere moves
//! that, and a batch takes long enough to be refused by most of them): each member queued has
//! a ticket naming their batch, and the batch inserts a member's entry only while it still
//! holds the ticket, under the lock every invalidation of live permissions takes to drop
//! tickets and entries. An invalidation that finds a member's batch already reading takes the
//! ticket away (what it read may predate the change) and queues the member again; one that
//! finds the batch still queued leaves it, since it will read after the change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::cache::MemberKey;

/// Members read per round trip: small, so that a request waiting for one waits briefly.
pub const BATCH: usize = 100;
/// Batches waiting to be read; beyond this, members are left to their own next request.
const QUEUED_AT_MOST: usize = 1_000;
/// How long a request waits for its member's batch before reading alone.
pub const WAIT_AT_MOST: Duration = Duration::from_millis(250);

/// One batch, as its members' tickets name it.
pub struct Ticket {
    /// Set (under the lock) just before the batch reads.
    started: AtomicBool,
    /// Closed when the batch is over, read or not.
    done: watch::Receiver<()>,
}

/// Members of one organization to read again.
pub struct Batch {
    pub organization_id: Uuid,
    pub users: Vec<Uuid>,
    ticket: Arc<Ticket>,
    /// Dropped with the batch, which wakes whoever waits for it.
    _done: watch::Sender<()>,
}

/// The members whose batch is queued or reading, by ticket.
pub type Tickets = HashMap<MemberKey, Arc<Ticket>>;

pub struct Refreshes {
    tickets: Mutex<Tickets>,
    queue: mpsc::Sender<Batch>,
    /// Taken by the one task that reads the batches.
    inbox: Mutex<Option<mpsc::Receiver<Batch>>>,
}

impl Default for Refreshes {
    fn default() -> Self {
        let (queue, inbox) = mpsc::channel(QUEUED_AT_MOST);
        Refreshes {
            tickets: Mutex::default(),
            queue,
            inbox: Mutex::new(Some(inbox)),
        }
    }
}

impl Refreshes {
    /// The tickets, locked: every drop of live permissions happens under this lock, together
    /// with the tickets it takes away, and so does every insert a batch makes.
    pub fn lock(&self) -> Option<MutexGuard<'_, Tickets>> {
        self.tickets.lock().ok()
    }

    /// Queues these members of `organization_id` for reading, in batches, with new tickets.
    pub fn queue(&self, tickets: &mut Tickets, organization_id: Uuid, users: &[Uuid]) {
        for part in users.chunks(BATCH) {
            let (done, waiting) = watch::channel(());
            let ticket = Arc::new(Ticket {
                started: AtomicBool::new(false),
                done: waiting,
            });
            let batch = Batch {
                organization_id,
                users: part.to_vec(),
                ticket: ticket.clone(),
                _done: done,
            };
            // No room (or no reader): the members read alone, as without batches.
            if self.queue.try_send(batch).is_ok() {
                for user in part {
                    tickets.insert((organization_id, *user), ticket.clone());
                }
            }
        }
    }

    /// Whether the member must be queued again after a change: their batch is already reading
    /// (and may have read before the change), so its ticket is taken away.
    pub fn stale(tickets: &mut Tickets, key: MemberKey) -> bool {
        let reading = tickets
            .get(&key)
            .is_some_and(|t| t.started.load(Ordering::Acquire));
        if reading {
            tickets.remove(&key);
        }
        reading
    }

    /// The batch is about to read: from now on a change to its members takes their tickets.
    pub fn start(&self, batch: &Batch) {
        if let Some(_tickets) = self.lock() {
            batch.ticket.started.store(true, Ordering::Release);
        }
    }

    /// Runs `insert` for each member of the batch that still holds its ticket, under the lock.
    pub fn insert_current(&self, batch: &Batch, mut insert: impl FnMut(Uuid)) {
        let Some(tickets) = self.lock() else {
            return;
        };
        for user in &batch.users {
            let key = (batch.organization_id, *user);
            if tickets
                .get(&key)
                .is_some_and(|t| Arc::ptr_eq(t, &batch.ticket))
            {
                insert(*user);
            }
        }
    }

    /// The batch is over: its members' tickets go.
    pub fn finished(&self, batch: Batch) {
        if let Some(mut tickets) = self.lock() {
            for user in &batch.users {
                let key = (batch.organization_id, *user);
                if tickets
                    .get(&key)
                    .is_some_and(|t| Arc::ptr_eq(t, &batch.ticket))
                {
                    tickets.remove(&key);
                }
            }
        }
    }

    /// What to wait on for this member's entry, if a batch is reading for them now.
    pub fn awaited(&self, key: MemberKey) -> Option<watch::Receiver<()>> {
        let tickets = self.lock()?;
        let ticket = tickets.get(&key)?;
        ticket
            .started
            .load(Ordering::Acquire)
            .then(|| ticket.done.clone())
    }

    /// The queue's receiving end, once: for the task that reads batches.
    pub fn take_inbox(&self) -> Option<mpsc::Receiver<Batch>> {
        self.inbox.lock().ok()?.take()
    }
}
