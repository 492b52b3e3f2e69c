//! Access-token verification (SPEC §5.3, §7): the digest finds the token in the cache or in one
//! database round trip, then its state and layers decide.

use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;

use super::cache::{CacheStats, CachedToken, LiveEntry, TokenLookup};
use super::principal::{Principal, PrincipalKind};
use super::refusal::Refusal;
use super::verifier::Verifier;
use crate::credential::{Credential, CredentialKind, Digest};
use crate::db::hash_keys;
use crate::db::tokens::{TokenKind, TokenStatus};
use crate::db::verification::VerifiedToken;
use crate::policy::{Layers, Statement};

/// The principal a personal or service token acts as, if it may act at all.
pub(super) async fn token_principal(
    verifier: &Verifier,
    credential: &Credential,
    requested_org: Option<Uuid>,
) -> Result<Principal, Refusal> {
    let digest = verifier.hash_key.digest(credential);
    let stats = &verifier.caches.stats;
    // On a miss, the owner's live permissions come with the token (one round trip), and are
    // used as read even when the caches are bypassed (listener down, or caching off).
    let (token, fresh_live) = match verifier.caches.token(&digest) {
        TokenLookup::Hit(token) => {
            CacheStats::count(&stats.token_hits);
            (token, None)
        }
        TokenLookup::KnownUnknown => {
            CacheStats::count(&stats.token_hits);
            return Err(Refusal::Unauthorized);
        }
        TokenLookup::Miss => {
            CacheStats::count(&stats.token_misses);
            load(
                verifier,
                credential,
                digest,
                credential.kind() == CredentialKind::PersonalToken,
            )
            .await?
        }
    };
    let now = Utc::now();
    // The prefix is part of the secret, so a mismatch means a corrupted row: refuse it.
    if credential.kind() != token.kind.credential()
        || token.grace_ends_at.is_some_and(|at| at <= now)
    {
        return Err(Refusal::Unauthorized);
    }
    if requested_org.is_some_and(|org| org != token.organization_id)
        || token.status != TokenStatus::Active
        || token.expires_at.is_some_and(|at| at <= now)
    {
        return Err(Refusal::Forbidden);
    }
    let live = if token.kind == TokenKind::Personal {
        let live = match fresh_live {
            Some(live) => live,
            None => {
                verifier
                    .live_permissions(token.organization_id, token.creator_id)
                    .await?
            }
        };
        if !live.is_member {
            return Err(Refusal::Forbidden);
        }
        Some(live.statements.clone())
    } else {
        None
    };
    let layers = Layers {
        live,
        frozen: token.frozen.to_vec(),
        scope: token.scope.clone(),
    };
    if layers.is_empty() {
        // A service token always has a scope; no layer would deny anyway, but say so.
        return Err(Refusal::Forbidden);
    }
    // Note the use at most once a second per token: no lock on the hot path otherwise.
    let second = now.timestamp();
    if token
        .last_noted
        .swap(second, std::sync::atomic::Ordering::Relaxed)
        != second
    {
        verifier.last_used.touch(token.id);
    }
    let kind = match token.kind {
        TokenKind::Personal => PrincipalKind::PersonalToken {
            token_id: token.id,
            owner_id: token.creator_id,
        },
        TokenKind::Service => PrincipalKind::ServiceToken {
            token_id: token.id,
            creator_id: token.creator_id,
        },
    };
    Ok(Principal {
        kind,
        organization_id: token.organization_id,
        layers,
        previous_secret: token.grace_ends_at.is_some(),
    })
}

/// One round trip for a token the cache does not know, remembered for the next request (an
/// unknown digest only briefly). For a personal token, also its owner's live permissions.
async fn load(
    verifier: &Verifier,
    credential: &Credential,
    digest: Digest,
    personal: bool,
) -> Result<(Arc<CachedToken>, Option<Arc<LiveEntry>>), Refusal> {
    let caches = &verifier.caches;
    let generation = caches.generation();
    CacheStats::count(&caches.stats.db_lookups);
    let row = verifier.token_reads.read(digest, personal).await?;
    let row = match row {
        Some(row) => Some(row),
        None if verifier.previous_keys.is_empty() => None,
        None => under_previous_key(verifier, credential, digest, personal).await?,
    };
    let Some(row) = row else {
        caches.insert_token(generation, digest, None);
        return Err(Refusal::Unauthorized);
    };
    let corrupt = |e: serde_json::Error| Refusal::Database(sqlx::Error::Decode(Box::new(e)));
    let statements = |text: &str| caches.statements.get(text, |t| serde_json::from_str(t));
    let frozen = caches
        .frozen_layers
        .get(&row.ceiling, |text| {
            let layers: Vec<Vec<Statement>> = serde_json::from_str(text)?;
            Ok(layers.into_iter().map(Arc::new).collect())
        })
        .map_err(corrupt)?;
    let scope = row
        .scope
        .as_deref()
        .map(statements)
        .transpose()
        .map_err(corrupt)?;
    let live = match (row.owner_is_member, &row.live_statements) {
        (Some(is_member), Some(text)) => {
            // The same round trip brought the owner's live permissions: remember them too.
            let live = Arc::new(LiveEntry {
                is_member,
                statements: statements(text).map_err(corrupt)?,
            });
            caches.insert_live(
                generation,
                row.organization_id,
                row.creator_id,
                live.clone(),
            );
            Some(live)
        }
        _ => None,
    };
    let token = Arc::new(CachedToken {
        id: row.id,
        organization_id: row.organization_id,
        kind: row.kind,
        status: row.status,
        expires_at: row.expires_at,
        grace_ends_at: row.grace_ends_at,
        creator_id: row.creator_id,
        frozen,
        scope,
        last_noted: std::sync::atomic::AtomicI64::new(0),
    });
    caches.insert_token(generation, digest, Some(token.clone()));
    Ok((token, live))
}

/// A token whose secret was digested before the hash key was rotated: tried under each previous
/// key only once the current key found nothing (so the usual lookup is unchanged), then moved to
/// the current key by one conditional UPDATE, so that its next use is an ordinary lookup.
async fn under_previous_key(
    verifier: &Verifier,
    credential: &Credential,
    current: Digest,
    personal: bool,
) -> sqlx::Result<Option<VerifiedToken>> {
    let found =
        hash_keys::find_token(&verifier.db, &verifier.previous_keys, credential, personal).await?;
    let Some((row, stored, old)) = found else {
        return Ok(None);
    };
    let key_id = verifier.hash_key.id();
    hash_keys::redigest(&verifier.db, stored, row.id, old, current, key_id).await?;
    tracing::debug!(token_id = %row.id, "token secret moved to the current hash key");
    Ok(Some(row))
}

/// The principal a token someone else presents acts as (RFC 7662 introspection): the same
/// verification as the token's own requests, without the caller's rate limits.
pub async fn presented_token(verifier: &Verifier, raw: &str) -> Result<Principal, Refusal> {
    let credential = Credential::parse(raw.trim()).map_err(|_| Refusal::Unauthorized)?;
    if credential.kind() == CredentialKind::WebSession {
        return Err(Refusal::Unauthorized);
    }
    token_principal(verifier, &credential, None).await
}
