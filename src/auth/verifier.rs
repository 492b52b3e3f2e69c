//! What verifying a credential needs, and nothing else: the extractors take a `Verifier` from
//! whatever state the application has (axum's `FromRef`), so authentication knows no HTTP state.

use std::sync::Arc;

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use super::cache::{CacheStats, CachedSession, Caches, LiveEntry};
use super::last_used::LastUsed;
use super::rate_limit::{ClientAddress, RateLimiter};
use crate::credential::{Credential, HashKey};
use crate::db::iam;
use crate::db::identity;
use crate::db::readers::Readers;

/// The verification side of one replica; cheap to clone (one reference count).
#[derive(Clone)]
pub struct Verifier(Arc<VerifierParts>);

pub struct VerifierParts {
    /// For web-session reads on a cache miss.
    pub db: PgPool,
    /// Connections of their own for token and live-permission reads (`db::readers`).
    pub readers: Readers,
    pub hash_key: HashKey,
    pub caches: Arc<Caches>,
    pub last_used: Arc<LastUsed>,
    /// Failed authentications per client address.
    pub auth_failures: RateLimiter<ClientAddress>,
}

impl Verifier {
    pub fn new(parts: VerifierParts) -> Self {
        Verifier(Arc::new(parts))
    }

    /// A member's live permissions in an organization, from the cache or one database round trip.
    pub async fn live_permissions(
        &self,
        organization_id: Uuid,
        user_id: Uuid,
    ) -> sqlx::Result<Arc<LiveEntry>> {
        if let Some(entry) = self.caches.live(organization_id, user_id) {
            return Ok(entry);
        }
        let generation = self.caches.generation();
        CacheStats::count(&self.caches.stats.db_lookups);
        let (is_member, statements) = self
            .readers
            .read_detached(move |conn| {
                Box::pin(iam::member_permissions(conn, organization_id, user_id))
            })
            .await?;
        let entry = Arc::new(LiveEntry {
            is_member,
            statements: Arc::new(statements),
        });
        self.caches
            .insert_live(generation, organization_id, user_id, entry.clone());
        Ok(entry)
    }

    /// The live web session this credential opened, if any, from the cache or two database
    /// reads (the session, and its person's organizations).
    pub(super) async fn session(
        &self,
        credential: &Credential,
    ) -> sqlx::Result<Option<Arc<CachedSession>>> {
        let digest = self.hash_key.digest(credential);
        let stats = &self.caches.stats;
        if let Some(session) = self.caches.session(&digest) {
            CacheStats::count(&stats.session_hits);
            // The cache may outlive the session by less than its TTL: the expiry still holds.
            return Ok((session.user.expires_at > Utc::now()).then_some(session));
        }
        CacheStats::count(&stats.session_misses);
        let generation = self.caches.generation();
        let Some(user) = identity::session_by_digest(&self.db, &digest).await? else {
            return Ok(None);
        };
        let organizations = identity::organizations_of(&self.db, user.user_id)
            .await?
            .into_iter()
            .map(|o| o.id)
            .collect();
        let session = Arc::new(CachedSession {
            user,
            organizations,
        });
        self.caches
            .insert_session(generation, digest, session.clone());
        Ok(Some(session))
    }
}

impl std::ops::Deref for Verifier {
    type Target = VerifierParts;
    fn deref(&self) -> &VerifierParts {
        &self.0
    }
}
