//! Per-process verification caches (SPEC §7): digest → token, (organization, member) → live
//! permissions, and digest → web session. Revocation stays immediate because every write that
//! can change a verdict drops the entries it affects before its response is sent
//! (`auth::invalidation` says which, here and on the other replicas); while the `LISTEN`
//! connection is down the caches are bypassed.
//!
//! Storage is `quick_cache` (SPEC §7 item 6): each cache is bounded and evicts single entries by
//! its CLOCK-PRO-like policy (a new key is admitted cold, and only keys used again stay), and
//! every entry expires after the TTL, checked when it is read. An invalidation drops only what it
//! names: single keys, or, for the rare wide ones, the entries a predicate picks. Its
//! per-entry overhead is a fraction of moka's (docs/benchmarks.md, memory per cached token).
//!
//! A read that misses records the invalidation generation before it queries, and only inserts
//! what it read if no invalidation happened meanwhile: a slow read can never put back a verdict
//! that a concurrent write has already revoked. Inserts hold `gate` shared while they check the
//! generation and insert; an invalidation bumps the generation, then takes `gate` exclusively
//! once (waiting out the inserts already past their check) before it drops entries, so an entry
//! is either refused or older than the invalidation that must remove it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use smallvec::SmallVec;
use uuid::Uuid;

use crate::credential::Digest;
use crate::db::identity::SessionUser;
use crate::db::tokens::{TokenKind, TokenStatus};
use crate::policy::{Layer, Statement};

use super::intern::Interner;
use super::refresh::{Batch, Refreshes, Tickets};

/// What evaluation needs of a token, parsed once.
#[derive(Debug)]
pub struct CachedToken {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub kind: TokenKind,
    pub status: TokenStatus,
    pub expires_at: Option<DateTime<Utc>>,
    /// When the digest is a rotated-out secret: the end of its grace period.
    pub grace_ends_at: Option<DateTime<Utc>>,
    /// A personal token's owner; a service token's creator.
    pub creator_id: Uuid,
    /// Frozen at creation (SPEC §2.3); shared by every token with the same layers.
    pub frozen: Arc<Vec<Layer>>,
    pub scope: Option<Layer>,
    /// Unix second of the last `lastUsedAt` note, so a busy token is noted once a second.
    pub last_noted: AtomicI64,
}

/// A member's live permissions in one organization.
#[derive(Debug)]
pub struct LiveEntry {
    pub is_member: bool,
    pub statements: Layer,
}

/// A live web session, and the organizations its person belongs to.
#[derive(Debug)]
pub struct CachedSession {
    pub user: SessionUser,
    pub organizations: Vec<Uuid>,
}

pub use super::refresh::MemberKey;

#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Safety net for missed notifications.
    pub ttl: Duration,
    /// How long an unknown digest is remembered.
    pub negative_ttl: Duration,
    /// Entries per cache; 0 disables caching.
    pub max_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(2),
            max_entries: 100_000,
        }
    }
}

pub struct Caches {
    config: CacheConfig,
    tokens: Store<Digest, Arc<CachedToken>>,
    /// Well-formed digests that matched no token, remembered briefly (a cache of its own, so a
    /// flood of unknown digests never evicts a real token).
    unknown: Store<Digest, ()>,
    live: Store<MemberKey, Arc<LiveEntry>>,
    sessions: Store<Digest, Arc<CachedSession>>,
    /// The digests each cached token is under, so that a token write drops its entries by key:
    /// a predicate (`drop_where`) would scan the whole cache for each token written. Written
    /// with the entry, under its lock; digests evicted meanwhile are forgotten when it grows
    /// past twice the cache.
    index: Mutex<HashMap<Uuid, SmallVec<[Digest; 1]>>>,
    /// One parsed copy of each distinct statement list (live permissions, scopes) and of each
    /// distinct set of frozen layers, however many entries hold it.
    pub statements: Interner<Vec<Statement>>,
    pub frozen_layers: Interner<Vec<Layer>>,
    /// Members whose dropped live permissions are being read again (`auth::refresh`).
    pub refreshes: Refreshes,
    generation: AtomicU64,
    gate: RwLock<()>,
    /// False until the listener is connected, and whenever it is not.
    enabled: AtomicBool,
    /// How many times the listener lost its connection (for tests and metrics).
    listener_losses: AtomicU64,
    pub stats: Arc<CacheStats>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub token_hits: AtomicU64,
    pub token_misses: AtomicU64,
    pub session_hits: AtomicU64,
    pub session_misses: AtomicU64,
    /// Database round trips made by verification (token and live-permission lookups; a session
    /// miss counts in `session_misses`).
    pub db_lookups: AtomicU64,
    /// Entries evicted to stay within `max_entries` (not expiries, not invalidations).
    pub evictions: AtomicU64,
}

impl CacheStats {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Token verifications so far, hits and misses.
    pub fn verifications(&self) -> u64 {
        self.token_hits.load(Ordering::Relaxed) + self.token_misses.load(Ordering::Relaxed)
    }
}

/// A token lookup's outcome.
pub enum TokenLookup {
    Hit(Arc<CachedToken>),
    KnownUnknown,
    Miss,
}

/// Entries held now, per cache (expired ones count until they are read or evicted).
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheSizes {
    pub tokens: u64,
    pub live: u64,
    pub sessions: u64,
}

/// One bounded cache whose entries expire `ttl` after they were inserted.
struct Store<K, V> {
    entries: quick_cache::sync::Cache<
        K,
        Stamped<V>,
        quick_cache::UnitWeighter,
        quick_cache::DefaultHashBuilder,
        CountEvictions,
    >,
    ttl: Duration,
    /// Expiries are milliseconds since this instant.
    epoch: Instant,
}

/// A value and when it expires.
#[derive(Clone)]
struct Stamped<V> {
    value: V,
    expires_ms: u64,
}

/// Counts evictions at the size bound (removals and replacements are not evictions).
#[derive(Clone)]
struct CountEvictions(Arc<CacheStats>);

impl<K, V> quick_cache::Lifecycle<K, V> for CountEvictions {
    type RequestState = ();

    fn begin_request(&self) {}

    fn on_evict(&self, _: &mut (), _: K, _: V) {
        CacheStats::count(&self.0.evictions);
    }
}

impl<K: std::hash::Hash + Eq, V: Clone> Store<K, V> {
    fn new(capacity: usize, ttl: Duration, epoch: Instant, stats: &Arc<CacheStats>) -> Self {
        let capacity = capacity.max(1);
        Store {
            entries: quick_cache::sync::Cache::with(
                capacity,
                capacity as u64,
                quick_cache::UnitWeighter,
                quick_cache::DefaultHashBuilder::default(),
                CountEvictions(stats.clone()),
            ),
            ttl,
            epoch,
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn get(&self, key: &K) -> Option<V> {
        let stamped = self.entries.get(key)?;
        let now = self.now_ms();
        if stamped.expires_ms > now {
            return Some(stamped.value);
        }
        self.entries.remove_if(key, |s| s.expires_ms <= now);
        None
    }

    fn insert(&self, key: K, value: V) {
        let expires_ms = self.now_ms() + self.ttl.as_millis() as u64;
        self.entries.insert(key, Stamped { value, expires_ms });
    }

    fn remove(&self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|(_, stamped)| stamped.value)
    }

    /// Drops the entries `doomed` picks, shard by shard (each briefly locked): for the rare
    /// invalidations too wide to name their keys.
    fn drop_where(&self, doomed: impl Fn(&K, &V) -> bool) {
        self.entries
            .retain(|key, stamped| !doomed(key, &stamped.value));
    }

    fn clear(&self) {
        self.entries.clear();
    }

    fn len(&self) -> u64 {
        self.entries.len() as u64
    }
}

impl Caches {
    pub fn new(config: CacheConfig) -> Self {
        let stats = Arc::new(CacheStats::default());
        let (n, ttl, epoch) = (config.max_entries, config.ttl, Instant::now());
        Caches {
            config,
            tokens: Store::new(n, ttl, epoch, &stats),
            unknown: Store::new(n, config.negative_ttl, epoch, &stats),
            live: Store::new(n, ttl, epoch, &stats),
            sessions: Store::new(n, ttl, epoch, &stats),
            index: Mutex::new(HashMap::new()),
            statements: Interner::default(),
            frozen_layers: Interner::default(),
            refreshes: Refreshes::default(),
            generation: AtomicU64::new(0),
            gate: RwLock::new(()),
            enabled: AtomicBool::new(false),
            listener_losses: AtomicU64::new(0),
            stats,
        }
    }

    fn active(&self) -> bool {
        self.config.max_entries > 0 && self.enabled.load(Ordering::Acquire)
    }

    /// Read before querying; pass to `insert_*` afterwards.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn token(&self, digest: &Digest) -> TokenLookup {
        if !self.active() {
            return TokenLookup::Miss;
        }
        if let Some(token) = self.tokens.get(digest) {
            return TokenLookup::Hit(token);
        }
        if self.unknown.get(digest).is_some() {
            return TokenLookup::KnownUnknown;
        }
        TokenLookup::Miss
    }

    pub fn live(&self, organization_id: Uuid, user_id: Uuid) -> Option<Arc<LiveEntry>> {
        if !self.active() {
            return None;
        }
        self.live.get(&(organization_id, user_id))
    }

    pub fn session(&self, digest: &Digest) -> Option<Arc<CachedSession>> {
        if !self.active() {
            return None;
        }
        self.sessions.get(digest)
    }

    pub fn insert_token(&self, generation: u64, digest: Digest, token: Option<Arc<CachedToken>>) {
        self.admit(generation, || match token {
            Some(token) => self.insert_known(digest, token),
            None => self.unknown.insert(digest, ()),
        });
    }

    fn insert_known(&self, digest: Digest, token: Arc<CachedToken>) {
        let Ok(mut index) = self.index.lock() else {
            return;
        };
        let id = token.id;
        self.tokens.insert(digest, token);
        let digests = index.entry(id).or_default();
        if !digests.contains(&digest) {
            digests.push(digest);
        }
        if index.len() > self.config.max_entries.saturating_mul(2) {
            index.retain(|_, digests| {
                digests.retain(|d| self.tokens.entries.contains_key(d));
                !digests.is_empty()
            });
        }
    }

    pub fn insert_live(
        &self,
        generation: u64,
        organization_id: Uuid,
        user_id: Uuid,
        entry: Arc<LiveEntry>,
    ) {
        self.admit(generation, || {
            self.live.insert((organization_id, user_id), entry)
        });
    }

    pub fn insert_session(&self, generation: u64, digest: Digest, session: Arc<CachedSession>) {
        self.admit(generation, || self.sessions.insert(digest, session));
    }

    /// Runs `insert` unless the caches are bypassed or an invalidation came after `generation`.
    fn admit(&self, generation: u64, insert: impl FnOnce()) {
        if !self.active() {
            return;
        }
        let Ok(_shared) = self.gate.read() else {
            return;
        };
        if self.generation() == generation {
            insert();
        }
    }

    /// Refuses the inserts of every read begun before now, and waits out those already admitted.
    fn fence(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        drop(self.gate.write());
    }

    /// Drops a token's entries, and every remembered unknown digest: a creation or rotation
    /// makes a new digest known.
    pub fn drop_token(&self, id: Uuid) {
        self.fence();
        match self.index.lock() {
            Ok(mut index) => {
                for digest in index.remove(&id).into_iter().flatten() {
                    self.tokens.remove(&digest);
                }
            }
            Err(_) => self.tokens.clear(),
        }
        self.unknown.clear();
    }

    /// Drops an organization's tokens and live permissions.
    pub fn drop_organization(&self, org: Uuid) {
        self.fence();
        self.tokens.drop_where(|_, t| t.organization_id == org);
        self.drop_live(|tickets| {
            tickets.retain(|(o, _), _| *o != org);
            self.live.drop_where(|(o, _), _| *o == org);
        });
    }

    /// Drops live permissions under the refresh tickets' lock (`auth::refresh`): `drop` takes
    /// away the tickets it must and removes the entries. Without the lock, everything goes.
    fn drop_live(&self, drop: impl FnOnce(&mut Tickets)) {
        match self.refreshes.lock() {
            Some(mut tickets) => drop(&mut tickets),
            None => self.live.clear(),
        }
    }

    /// Drops these members' live permissions in one organization (a policy or group change),
    /// key by key: nobody else's entries, and no token entry (their layers are frozen). Those
    /// that were cached, or whose batch was already reading, are queued to be read again
    /// (`auth::refresh`).
    pub fn drop_members(&self, org: Uuid, users: &[Uuid]) {
        self.fence();
        self.drop_live(|tickets| {
            let mut again = Vec::new();
            for user in users {
                let key = (org, *user);
                let cached = self.live.remove(&key).is_some();
                if Refreshes::stale(tickets, key) || cached {
                    again.push(key);
                }
            }
            if !again.is_empty() && self.active() {
                self.refreshes.queue(tickets, again);
            }
        });
    }

    /// Inserts what a batch read, for the members that still hold its ticket.
    pub fn insert_refreshed(&self, batch: &Batch, entries: Vec<(MemberKey, Arc<LiveEntry>)>) {
        if !self.active() {
            return;
        }
        let entries: HashMap<MemberKey, Arc<LiveEntry>> = entries.into_iter().collect();
        self.refreshes.insert_current(batch, |key| {
            if let Some(entry) = entries.get(&key) {
                self.live.insert(key, entry.clone());
            }
        });
    }

    /// A membership began or ended: the member's live permissions and their sessions (which
    /// know their organizations). The personal tokens a removal deactivates are dropped as
    /// tokens, by key.
    pub fn drop_membership(&self, org: Uuid, user: Uuid) {
        self.fence();
        self.drop_live(|tickets| {
            tickets.remove(&(org, user));
            self.live.remove(&(org, user));
        });
        self.sessions.drop_where(|_, s| s.user.user_id == user);
    }

    /// Drops a person's sessions (logout, password change).
    pub fn drop_sessions(&self, user: Uuid) {
        self.fence();
        self.sessions.drop_where(|_, s| s.user.user_id == user);
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.fence();
        self.tokens.clear();
        if let Ok(mut index) = self.index.lock() {
            index.clear();
        }
        self.unknown.clear();
        self.drop_live(|tickets| {
            tickets.clear();
            self.live.clear();
        });
        self.sessions.clear();
    }

    /// The listener is up (true) or down (false); either way, start from empty caches.
    pub fn set_enabled(&self, enabled: bool) {
        if !enabled && self.enabled.swap(false, Ordering::AcqRel) {
            self.listener_losses.fetch_add(1, Ordering::AcqRel);
        }
        self.clear();
        if enabled {
            self.enabled.store(true, Ordering::Release);
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// How many times a connected listener lost its connection.
    pub fn listener_losses(&self) -> u64 {
        self.listener_losses.load(Ordering::Acquire)
    }

    /// Entries held now, per cache.
    pub fn sizes(&self) -> CacheSizes {
        CacheSizes {
            tokens: self.tokens.len(),
            live: self.live.len(),
            sessions: self.sessions.len(),
        }
    }

    /// Entries evicted at the size bound so far.
    pub fn evictions(&self) -> u64 {
        self.stats.evictions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
