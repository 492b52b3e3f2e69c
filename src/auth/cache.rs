//! Per-process verification caches (SPEC §7): digest → token, (organization, member) → live
//! permissions, and digest → web session. Revocation stays immediate because every write that
//! can change a verdict drops the entries it affects before its response is sent
//! (`auth::invalidation` says which, here and on the other replicas); while the `LISTEN`
//! connection is down the caches are bypassed.
//!
//! Storage is `moka` (SPEC §7 item 6): each cache is bounded and evicts single entries by its
//! TinyLFU policy, and every entry expires after the TTL. An invalidation drops only what it
//! names: single keys, or a predicate moka applies to the older entries without blocking reads.
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
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::notification::RemovalCause;
use moka::sync::Cache;
use smallvec::SmallVec;
use uuid::Uuid;

use crate::credential::Digest;
use crate::db::identity::SessionUser;
use crate::db::tokens::{TokenKind, TokenStatus};
use crate::policy::Layer;

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
    /// Frozen at creation (SPEC §2.3).
    pub frozen: Vec<Layer>,
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

/// (organization, member).
type MemberKey = (Uuid, Uuid);

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
    tokens: Cache<Digest, Arc<CachedToken>>,
    /// Well-formed digests that matched no token, remembered briefly (a cache of its own, so a
    /// flood of unknown digests never evicts a real token).
    unknown: Cache<Digest, ()>,
    live: Cache<MemberKey, Arc<LiveEntry>>,
    sessions: Cache<Digest, Arc<CachedSession>>,
    /// The digests each cached token is under, so that a token write drops its entries by key:
    /// a predicate (`drop_where`) would stay pending, and be tried on every read, until moka
    /// had scanned the whole cache. Written with the entry, under its lock; digests that moka
    /// evicted meanwhile are forgotten when it grows past twice the cache.
    index: Mutex<HashMap<Uuid, SmallVec<[Digest; 1]>>>,
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

/// Entries held now, per cache (moka counts lazily: close, not exact).
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheSizes {
    pub tokens: u64,
    pub live: u64,
    pub sessions: u64,
}

fn build<K, V>(capacity: usize, ttl: Duration, stats: &Arc<CacheStats>) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let stats = stats.clone();
    Cache::builder()
        .max_capacity(capacity.max(1) as u64)
        .time_to_live(ttl)
        .support_invalidation_closures()
        .eviction_listener(move |_, _, cause| {
            if cause == RemovalCause::Size {
                CacheStats::count(&stats.evictions);
            }
        })
        .build()
}

/// Drops the entries `doomed` picks; moka applies it to every entry older than this call (reads
/// never return one) and removes them in the background of later calls.
fn drop_where<K, V>(cache: &Cache<K, V>, doomed: impl Fn(&K, &V) -> bool + Send + Sync + 'static)
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    if cache.invalidate_entries_if(doomed).is_err() {
        // Only if closures were not enabled at build time; never lose an invalidation.
        cache.invalidate_all();
    }
}

impl Caches {
    pub fn new(config: CacheConfig) -> Self {
        let stats = Arc::new(CacheStats::default());
        let (n, ttl) = (config.max_entries, config.ttl);
        Caches {
            config,
            tokens: build(n, ttl, &stats),
            unknown: build(n, config.negative_ttl, &stats),
            live: build(n, ttl, &stats),
            sessions: build(n, ttl, &stats),
            index: Mutex::new(HashMap::new()),
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
        if self.unknown.contains_key(digest) {
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
                digests.retain(|d| self.tokens.contains_key(d));
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
                    self.tokens.invalidate(&digest);
                }
            }
            Err(_) => self.tokens.invalidate_all(),
        }
        self.unknown.invalidate_all();
    }

    /// Drops an organization's tokens and live permissions.
    pub fn drop_organization(&self, org: Uuid) {
        self.fence();
        drop_where(&self.tokens, move |_, t| t.organization_id == org);
        drop_where(&self.live, move |(o, _), _| *o == org);
    }

    /// Drops these members' live permissions in one organization (a policy or group change),
    /// key by key: nobody else's entries, and no token entry (their layers are frozen).
    pub fn drop_members(&self, org: Uuid, users: &[Uuid]) {
        self.fence();
        for user in users {
            self.live.invalidate(&(org, *user));
        }
    }

    /// A membership began or ended: the member's live permissions and their sessions (which
    /// know their organizations). The personal tokens a removal deactivates are dropped as
    /// tokens, by key.
    pub fn drop_membership(&self, org: Uuid, user: Uuid) {
        self.fence();
        self.live.invalidate(&(org, user));
        drop_where(&self.sessions, move |_, s| s.user.user_id == user);
    }

    /// Drops a person's sessions (logout, password change).
    pub fn drop_sessions(&self, user: Uuid) {
        self.fence();
        drop_where(&self.sessions, move |_, s| s.user.user_id == user);
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.fence();
        self.tokens.invalidate_all();
        if let Ok(mut index) = self.index.lock() {
            index.clear();
        }
        self.unknown.invalidate_all();
        self.live.invalidate_all();
        self.sessions.invalidate_all();
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
        // moka counts as it housekeeps; bring the counts (and evictions) up to date.
        self.tokens.run_pending_tasks();
        self.live.run_pending_tasks();
        self.sessions.run_pending_tasks();
        CacheSizes {
            tokens: self.tokens.entry_count(),
            live: self.live.entry_count(),
            sessions: self.sessions.entry_count(),
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
