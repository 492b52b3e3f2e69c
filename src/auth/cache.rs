//! Per-process verification caches (SPEC §7): digest → token, and (organization, member) → live
//! permissions. Revocation stays immediate because every write that can change a verdict drops
//! the entries it affects before its response is sent (`auth::invalidation` says which, here and
//! on the other replicas); while the `LISTEN` connection is down the caches are bypassed.
//!
//! A read that misses records the invalidation generation before it queries, and only inserts
//! what it read if no invalidation happened meanwhile: a slow read can never put back a verdict
//! that a concurrent write has already revoked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::credential::Digest;
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

#[derive(Debug, Clone)]
enum TokenSlot {
    Known(Arc<CachedToken>),
    /// A well-formed digest that matched no token, remembered briefly.
    Unknown,
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

#[derive(Debug)]
pub struct Caches {
    config: CacheConfig,
    tokens: RwLock<HashMap<Digest, (Instant, TokenSlot)>>,
    live: RwLock<HashMap<MemberKey, (Instant, Arc<LiveEntry>)>>,
    generation: AtomicU64,
    /// False until the listener is connected, and whenever it is not.
    enabled: AtomicBool,
    /// How many times the listener lost its connection (for tests and metrics).
    listener_losses: AtomicU64,
    pub stats: CacheStats,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub token_hits: AtomicU64,
    pub token_misses: AtomicU64,
    /// Database round trips made by verification (token and live-permission lookups).
    pub db_lookups: AtomicU64,
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

impl Caches {
    pub fn new(config: CacheConfig) -> Self {
        Caches {
            config,
            tokens: RwLock::new(HashMap::new()),
            live: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            enabled: AtomicBool::new(false),
            listener_losses: AtomicU64::new(0),
            stats: CacheStats::default(),
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
        let Ok(tokens) = self.tokens.read() else {
            return TokenLookup::Miss;
        };
        match tokens.get(digest) {
            Some((at, TokenSlot::Known(token))) if at.elapsed() < self.config.ttl => {
                TokenLookup::Hit(token.clone())
            }
            Some((at, TokenSlot::Unknown)) if at.elapsed() < self.config.negative_ttl => {
                TokenLookup::KnownUnknown
            }
            _ => TokenLookup::Miss,
        }
    }

    pub fn live(&self, organization_id: Uuid, user_id: Uuid) -> Option<Arc<LiveEntry>> {
        if !self.active() {
            return None;
        }
        let live = self.live.read().ok()?;
        match live.get(&(organization_id, user_id)) {
            Some((at, entry)) if at.elapsed() < self.config.ttl => Some(entry.clone()),
            _ => None,
        }
    }

    pub fn insert_token(&self, generation: u64, digest: Digest, token: Option<Arc<CachedToken>>) {
        let slot = match token {
            Some(token) => TokenSlot::Known(token),
            None => TokenSlot::Unknown,
        };
        self.insert(&self.tokens, generation, digest, slot);
    }

    pub fn insert_live(
        &self,
        generation: u64,
        organization_id: Uuid,
        user_id: Uuid,
        entry: Arc<LiveEntry>,
    ) {
        self.insert(&self.live, generation, (organization_id, user_id), entry);
    }

    fn insert<K: Eq + std::hash::Hash, V>(
        &self,
        map: &RwLock<HashMap<K, (Instant, V)>>,
        generation: u64,
        key: K,
        value: V,
    ) {
        if !self.active() {
            return;
        }
        let Ok(mut map) = map.write() else {
            return;
        };
        // Checked under the write lock: invalidations bump the generation before they take it.
        if self.generation() != generation {
            return;
        }
        if map.len() >= self.config.max_entries && !map.contains_key(&key) {
            let ttl = self.config.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= self.config.max_entries {
                map.clear();
            }
        }
        map.insert(key, (Instant::now(), value));
    }

    /// Drops a token's entries, and every remembered unknown digest: a creation or rotation
    /// makes a new digest known.
    pub fn drop_token(&self, id: Uuid) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut tokens) = self.tokens.write() {
            tokens.retain(|_, (_, slot)| match slot {
                TokenSlot::Known(t) => t.id != id,
                TokenSlot::Unknown => false,
            });
        }
    }

    /// Drops an organization's tokens and live permissions.
    pub fn drop_organization(&self, org: Uuid) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut tokens) = self.tokens.write() {
            tokens.retain(|_, (_, slot)| match slot {
                TokenSlot::Known(t) => t.organization_id != org,
                TokenSlot::Unknown => true,
            });
        }
        if let Ok(mut live) = self.live.write() {
            live.retain(|(o, _), _| *o != org);
        }
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut tokens) = self.tokens.write() {
            tokens.clear();
        }
        if let Ok(mut live) = self.live.write() {
            live.clear();
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: Uuid, org: Uuid) -> Arc<CachedToken> {
        Arc::new(CachedToken {
            id,
            organization_id: org,
            kind: TokenKind::Service,
            status: TokenStatus::Active,
            expires_at: None,
            grace_ends_at: None,
            creator_id: Uuid::nil(),
            frozen: Vec::new(),
            scope: None,
            last_noted: AtomicI64::new(0),
        })
    }

    fn enabled() -> Caches {
        let caches = Caches::new(CacheConfig::default());
        caches.set_enabled(true);
        caches
    }

    #[test]
    fn nothing_is_cached_while_the_listener_is_down() {
        let caches = Caches::new(CacheConfig::default());
        let g = caches.generation();
        caches.insert_token(
            g,
            Digest([1; 32]),
            Some(token(Uuid::new_v4(), Uuid::new_v4())),
        );
        assert!(matches!(caches.token(&Digest([1; 32])), TokenLookup::Miss));
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_inserted() {
        let caches = enabled();
        let id = Uuid::new_v4();
        let g = caches.generation();
        caches.drop_token(id);
        caches.insert_token(g, Digest([2; 32]), Some(token(id, Uuid::new_v4())));
        assert!(matches!(caches.token(&Digest([2; 32])), TokenLookup::Miss));
    }

    #[test]
    fn invalidation_drops_the_token_and_forgets_unknown_digests() {
        let caches = enabled();
        let (id, org) = (Uuid::new_v4(), Uuid::new_v4());
        let g = caches.generation();
        caches.insert_token(g, Digest([3; 32]), Some(token(id, org)));
        caches.insert_token(g, Digest([4; 32]), None);
        assert!(matches!(
            caches.token(&Digest([3; 32])),
            TokenLookup::Hit(_)
        ));
        assert!(matches!(
            caches.token(&Digest([4; 32])),
            TokenLookup::KnownUnknown
        ));
        caches.drop_token(id);
        assert!(matches!(caches.token(&Digest([3; 32])), TokenLookup::Miss));
        assert!(matches!(caches.token(&Digest([4; 32])), TokenLookup::Miss));
    }

    #[test]
    fn organization_invalidation_drops_its_tokens_and_live_permissions_only() {
        let caches = enabled();
        let (org, other) = (Uuid::new_v4(), Uuid::new_v4());
        let user = Uuid::new_v4();
        let g = caches.generation();
        caches.insert_token(g, Digest([5; 32]), Some(token(Uuid::new_v4(), org)));
        caches.insert_token(g, Digest([6; 32]), Some(token(Uuid::new_v4(), other)));
        let entry = Arc::new(LiveEntry {
            is_member: true,
            statements: Arc::new(Vec::new()),
        });
        caches.insert_live(g, org, user, entry.clone());
        caches.insert_live(g, other, user, entry);
        caches.drop_organization(org);
        assert!(matches!(caches.token(&Digest([5; 32])), TokenLookup::Miss));
        assert!(matches!(
            caches.token(&Digest([6; 32])),
            TokenLookup::Hit(_)
        ));
        assert!(caches.live(org, user).is_none());
        assert!(caches.live(other, user).is_some());
    }

    #[test]
    fn entries_are_bounded() {
        let caches = Caches::new(CacheConfig {
            max_entries: 2,
            ..CacheConfig::default()
        });
        caches.set_enabled(true);
        let g = caches.generation();
        for i in 0..5u8 {
            caches.insert_token(g, Digest([i; 32]), None);
        }
        let len = caches.tokens.read().map(|t| t.len()).unwrap_or(usize::MAX);
        assert!(len <= 2);
    }
}
