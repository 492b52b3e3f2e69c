//! After a policy or group change, the live permissions of the affected members that were
//! cached are read again in batches, instead of each member's next request reading its own. A
//! policy on 10,000 members, edited under load, would otherwise send 10,000 single reads to
//! the database at once, each paying a round trip's overhead, and stall every one of those
//! members' requests behind them.
//!
//! The invalidation still drops the entries first (a refused permission is refused at once).
//! A request that then misses a member whose batch is reading waits for that batch; one whose
//! batch is still queued asks for the member to be read next: the reader takes the members
//! requests wait for before any queued batch, and fills that round trip up from the queue.
//! So a request waits for about two short round trips, never behind the whole queue, and a
//! stampede of misses costs a few batched reads. A request still reads alone if no batch brought its
//! entry within `WAIT_AT_MOST`.
//!
//! A batch is guarded per member, not by the caches' generation (any write anywhere moves
//! that, and a batch takes long enough to be refused by most of them): each member queued has
//! a ticket naming their batch, and the batch inserts a member's entry only while it still
//! holds the ticket, under the lock every invalidation of live permissions takes to drop
//! tickets and entries. An invalidation that finds a member's batch already reading takes the
//! ticket away (what it read may predate the change) and queues the member again; one that
//! finds the batch still queued leaves it, since it will read after the change.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use uuid::Uuid;

/// (organization, member).
pub type MemberKey = (Uuid, Uuid);

/// Members per queued batch, and per round trip when no request waits.
pub const BATCH: usize = 100;
/// Members read per round trip when requests wait: the round trip with their members is
/// filled up from the queue, to five times as many, up to this. A stampede is then read in
/// few round trips, while a lone request waits for a short one.
const READ_AT_MOST: usize = 300;
/// Batches waiting to be read; beyond this, members are left to their own next request.
const QUEUED_AT_MOST: usize = 1_000;
/// How long a request waits for its member's batch before reading alone.
pub const WAIT_AT_MOST: Duration = Duration::from_millis(250);

/// One batch, as its members' tickets name it.
pub struct Ticket {
    /// Set (under the lock) before the batch reads.
    started: AtomicBool,
    /// Closed when the batch is over, read or not.
    done: watch::Receiver<()>,
}

/// Members to read again.
pub struct Batch {
    pub members: Vec<MemberKey>,
    ticket: Arc<Ticket>,
    /// Dropped with the batch, which wakes whoever waits for it.
    _done: watch::Sender<()>,
}

impl Batch {
    /// A batch to queue (not reading yet).
    fn queued(members: Vec<MemberKey>) -> Batch {
        let (done, waiting) = watch::channel(());
        Batch::with(members, false, done, waiting)
    }

    fn with(
        members: Vec<MemberKey>,
        started: bool,
        done: watch::Sender<()>,
        waiting: watch::Receiver<()>,
    ) -> Batch {
        let ticket = Arc::new(Ticket {
            started: AtomicBool::new(started),
            done: waiting,
        });
        Batch {
            members,
            ticket,
            _done: done,
        }
    }

    fn holds(&self, tickets: &Tickets, key: &MemberKey) -> bool {
        tickets
            .get(key)
            .is_some_and(|t| Arc::ptr_eq(t, &self.ticket))
    }
}

/// The members whose batch is queued or reading, by ticket.
pub type Tickets = HashMap<MemberKey, Arc<Ticket>>;

/// Members requests wait for, to be read before any queued batch.
#[derive(Default)]
struct Wanted {
    members: HashSet<MemberKey>,
    /// Closed when the batch that reads them is over.
    done: Option<(watch::Sender<()>, watch::Receiver<()>)>,
}

pub struct Refreshes {
    tickets: Mutex<Tickets>,
    /// Locked only with `tickets` held, after it.
    wanted: Mutex<Wanted>,
    /// Wakes the reader for `wanted`.
    wake: Notify,
    queue: mpsc::Sender<Batch>,
    /// Taken by the one task that reads the batches.
    inbox: Mutex<Option<mpsc::Receiver<Batch>>>,
}

impl Default for Refreshes {
    fn default() -> Self {
        let (queue, inbox) = mpsc::channel(QUEUED_AT_MOST);
        Refreshes {
            tickets: Mutex::default(),
            wanted: Mutex::default(),
            wake: Notify::new(),
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

    /// Queues these members for reading, in batches, with new tickets.
    pub fn queue(&self, tickets: &mut Tickets, members: Vec<MemberKey>) {
        for part in members.chunks(BATCH) {
            let batch = Batch::queued(part.to_vec());
            let ticket = batch.ticket.clone();
            // No room (or no reader): the members read alone, as without batches.
            if self.queue.try_send(batch).is_ok() {
                for key in part {
                    tickets.insert(*key, ticket.clone());
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

    /// What a request that missed this member waits on: the batch reading them, or, when
    /// their batch is only queued, the next read of the members requests wait for. `None`
    /// when no batch is due to bring their entry.
    pub fn awaited(&self, key: MemberKey) -> Option<watch::Receiver<()>> {
        let tickets = self.lock()?;
        let ticket = tickets.get(&key)?;
        if ticket.started.load(Ordering::Acquire) {
            return Some(ticket.done.clone());
        }
        let mut wanted = self.wanted.lock().ok()?;
        wanted.members.insert(key);
        let (_, waiting) = wanted.done.get_or_insert_with(|| watch::channel(()));
        let waiting = waiting.clone();
        self.wake.notify_one();
        Some(waiting)
    }

    /// The members requests wait for, as a batch already reading (their tickets now name
    /// it), if there are any.
    fn take_wanted(&self) -> Option<Batch> {
        let mut tickets = self.lock()?;
        let mut wanted = self.wanted.lock().ok()?;
        let (done, waiting) = wanted.done.take()?;
        let members = std::mem::take(&mut wanted.members);
        // Those whose ticket went meanwhile (a change, a removal) are the change's to queue.
        let members: Vec<MemberKey> = members
            .into_iter()
            .filter(|key| tickets.contains_key(key))
            .collect();
        let batch = Batch::with(members, true, done, waiting);
        for key in &batch.members {
            tickets.insert(*key, batch.ticket.clone());
        }
        Some(batch)
    }

    /// The next round trip's members, as one batch already reading: those requests wait for,
    /// filled up from the queue; else the next queued batch. `None` once the queue is closed.
    pub async fn next(&self, inbox: &mut mpsc::Receiver<Batch>) -> Option<Batch> {
        loop {
            if let Some(mut batch) = self.take_wanted() {
                let fill = (batch.members.len() * 5).clamp(BATCH, READ_AT_MOST);
                while batch.members.len() < fill {
                    let Ok(queued) = inbox.try_recv() else {
                        break;
                    };
                    self.absorb(&mut batch, queued);
                }
                return Some(batch);
            }
            tokio::select! {
                biased;
                () = self.wake.notified() => continue,
                batch = inbox.recv() => {
                    let batch = batch?;
                    if let Some(_tickets) = self.lock() {
                        batch.ticket.started.store(true, Ordering::Release);
                    }
                    return Some(batch);
                }
            }
        }
    }

    /// Moves a queued batch's members (those still holding its ticket) into `batch`, which is
    /// reading: nobody waits on a queued batch, so it is dropped.
    fn absorb(&self, batch: &mut Batch, queued: Batch) {
        let Some(mut tickets) = self.lock() else {
            return;
        };
        for key in queued.members.iter().copied() {
            if queued.holds(&tickets, &key) {
                tickets.insert(key, batch.ticket.clone());
                batch.members.push(key);
            }
        }
    }

    /// Runs `insert` for each member of the batch that still holds its ticket, under the lock.
    pub fn insert_current(&self, batch: &Batch, mut insert: impl FnMut(MemberKey)) {
        let Some(tickets) = self.lock() else {
            return;
        };
        for key in &batch.members {
            if batch.holds(&tickets, key) {
                insert(*key);
            }
        }
    }

    /// The batch is over: its members' tickets go, and whoever waits for it wakes.
    pub fn finished(&self, batch: Batch) {
        if let Some(mut tickets) = self.lock() {
            for key in &batch.members {
                if batch.holds(&tickets, key) {
                    tickets.remove(key);
                }
            }
        }
    }

    /// The queue's receiving end, once: for the task that reads batches.
    pub fn take_inbox(&self) -> Option<mpsc::Receiver<Batch>> {
        self.inbox.lock().ok()?.take()
    }
}
