//! What verifying a credential needs, and nothing else: the extractors take a `Verifier` from
//! whatever state the application has (axum's `FromRef`), so authentication knows no HTTP state.

use std::sync::Arc;

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use super::cache::{CacheStats, CachedSession, Caches, LiveEntry, MemberKey};
use super::last_used::LastUsed;
use super::rate_limit::{ClientAddress, RateLimiter};
use super::refresh;
use super::token_reads::TokenReads;
use crate::credential::{Credential, Digest, HashKey};
use crate::db::hash_keys::{self, Stored};
use crate::db::iam;
use crate::db::identity::{self, SessionUser};
use crate::db::readers::Readers;

/// The verification side of one replica; cheap to clone (one reference count).
#[derive(Clone)]
pub struct Verifier(Arc<VerifierParts>);

pub struct VerifierParts {
    /// For web-session reads on a cache miss.
    pub db: PgPool,
    /// Connections of their own for token and live-permission reads (`db::readers`).
    pub readers: Readers,
    /// Token misses, read together when they arrive together (`auth::token_reads`).
    pub token_reads: TokenReads,
    pub hash_key: HashKey,
    /// Keys used before `hash_key`: tried only when it finds nothing (`db::hash_keys`).
    pub previous_keys: Vec<HashKey>,
    pub caches: Arc<Caches>,
    pub last_used: Arc<LastUsed>,
    /// Failed authentications per client address.
    pub auth_failures: RateLimiter<ClientAddress>,
}

impl Verifier {
    pub fn new(parts: VerifierParts) -> Self {
        Verifier(Arc::new(parts))
    }

    /// A member's live permissions in an organization, from the cache (once the batch that
    /// reads them again after a change is done, if one is under way) or one database round trip.
    pub async fn live_permissions(
        &self,
        organization_id: Uuid,
        user_id: Uuid,
    ) -> sqlx::Result<Arc<LiveEntry>> {
        if let Some(entry) = self.caches.live(organization_id, user_id) {
            return Ok(entry);
        }
        let deadline = tokio::time::Instant::now() + refresh::WAIT_AT_MOST;
        while let Some(mut batch) = self.caches.refreshes.awaited((organization_id, user_id)) {
            // Over when the batch is (it closes the channel), or at the deadline. A change
            // meanwhile may have queued the member again: then wait for that one.
            if tokio::time::timeout_at(deadline, batch.changed())
                .await
                .is_err()
            {
                break;
            }
            if let Some(entry) = self.caches.live(organization_id, user_id) {
                return Ok(entry);
            }
        }
        let generation = self.caches.generation();
        let entries = self.read_live(vec![(organization_id, user_id)]).await?;
        let Some((_, entry)) = entries.into_iter().next() else {
            return Err(sqlx::Error::RowNotFound);
        };
        self.caches
            .insert_live(generation, organization_id, user_id, entry.clone());
        Ok(entry)
    }

    /// Reads these members' live permissions in one round trip.
    async fn read_live(
        &self,
        members: Vec<MemberKey>,
    ) -> sqlx::Result<Vec<(MemberKey, Arc<LiveEntry>)>> {
        CacheStats::count(&self.caches.stats.db_lookups);
        let (organizations, users): (Vec<Uuid>, Vec<Uuid>) = members.into_iter().unzip();
        let rows = self
            .readers
            .read_detached(move |conn| {
                let (organizations, users) = (organizations.clone(), users.clone());
                Box::pin(async move { iam::member_permissions(conn, &organizations, &users).await })
            })
            .await?;
        rows.into_iter()
            .map(|row| {
                let statements = self
                    .caches
                    .statements
                    .get(&row.statements, |text| serde_json::from_str(text))
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                let entry = LiveEntry {
                    is_member: row.is_member,
                    statements,
                };
                Ok(((row.organization_id, row.user_id), Arc::new(entry)))
            })
            .collect()
    }

    /// Reads again, batch by batch, the live permissions that policy and group changes dropped
    /// (`auth::refresh`); runs until the process ends.
    pub async fn refresh_members(self) {
        let Some(mut inbox) = self.caches.refreshes.take_inbox() else {
            return;
        };
        while let Some(batch) = self.caches.refreshes.next(&mut inbox).await {
            // Requests may have read some members alone since the batch was queued.
            let members: Vec<MemberKey> = (batch.members.iter().copied())
                .filter(|(org, user)| self.caches.live(*org, *user).is_none())
                .collect();
            if !members.is_empty() {
                match self.read_live(members).await {
                    Ok(entries) => self.caches.insert_refreshed(&batch, entries),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read members' permissions again")
                    }
                }
            }
            self.caches.refreshes.finished(batch);
        }
    }

    /// The live web session this credential opened, if any, from the cache or two database
    /// reads (the session, and its person's organizations). One opened before the hash key was
    /// rotated is found under a previous key and moved to the current one.
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
        let Some(user) = self.stored_session(credential, digest).await? else {
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

    /// The session row under the current key's digest or, failing that, under a previous key's,
    /// which is then moved to the current key.
    async fn stored_session(
        &self,
        credential: &Credential,
        digest: Digest,
    ) -> sqlx::Result<Option<SessionUser>> {
        let found = identity::session_by_digest(&self.db, &digest).await?;
        if found.is_some() || self.previous_keys.is_empty() {
            return Ok(found);
        }
        for key in &self.previous_keys {
            let old = key.digest(credential);
            if let Some(session) = identity::session_by_digest(&self.db, &old).await? {
                let key_id = self.hash_key.id();
                let id = session.session_id;
                hash_keys::redigest(&self.db, Stored::Session, id, old, digest, key_id).await?;
                return Ok(Some(session));
            }
        }
        Ok(None)
    }
}

impl std::ops::Deref for Verifier {
    type Target = VerifierParts;
    fn deref(&self) -> &VerifierParts {
        &self.0
    }
}
