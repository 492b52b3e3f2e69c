//! What token verification reads and writes: one round trip for a token the cache does not
//! know, and `lastUsedAt` in batches. Secrets are never stored: only HMAC digests, looked up by
//! equality on a unique column.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::tokens::{TokenKind, TokenStatus};
use crate::credential::Digest;

/// Everything verification needs, in one round trip: the token and, for personal tokens,
/// whether the owner is still a member and the owner's live statements.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The digest that found the token: its current secret's, or its previous secret's.
    pub digest: Vec<u8>,
    pub id: Uuid,
    pub organization_id: Uuid,
    pub kind: TokenKind,
    pub status: TokenStatus,
    pub creator_id: Uuid,
    /// JSON text, parsed by the caller.
    pub scope: Option<String>,
    pub ceiling: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// Set when the digest is the previous secret of a rotation: the end of its grace period.
    pub grace_ends_at: Option<DateTime<Utc>>,
    /// For personal tokens: whether the owner is a member, and the owner's live statements as
    /// JSON text. `None` for service tokens, whose power is frozen.
    pub owner_is_member: Option<bool>,
    pub live_statements: Option<String>,
}

/// The token whose current secret has this digest; [`by_digests`] for one.
pub async fn by_digest(
    db: impl PgExecutor<'_>,
    digest: Digest,
    personal: bool,
) -> sqlx::Result<Option<VerifiedToken>> {
    Ok(by_digests(db, &[digest], personal).await?.pop())
}

/// The tokens whose current secrets have these digests, in one statement. The credentials'
/// prefix says which kind they claim to be, and only personal tokens pay for the owner's live
/// permissions: even unexecuted, those subqueries make PostgreSQL's work per lookup markedly
/// larger. One unique-index lookup a digest; previous secrets are [`by_previous_digests`]'.
pub async fn by_digests(
    db: impl PgExecutor<'_>,
    digests: &[Digest],
    personal: bool,
) -> sqlx::Result<Vec<VerifiedToken>> {
    let digests: Vec<&[u8]> = digests.iter().map(Digest::as_bytes).collect();
    if !personal {
        return sqlx::query_as!(
            VerifiedToken,
            r#"select secret_hash as digest, id, organization_id, type as "kind: TokenKind",
                      status as "status: TokenStatus", creator_id, scope::text as scope,
                      ceiling::text as "ceiling!", expires_at,
                      null::timestamptz as grace_ends_at,
                      null::bool as "owner_is_member?", null::text as "live_statements?"
                 from access_tokens where secret_hash = any($1)"#,
            &digests as &[&[u8]]
        )
        .fetch_all(db)
        .await;
    }
    sqlx::query_as!(
        VerifiedToken,
        r#"select t.secret_hash as digest, t.id, t.organization_id,
             t.type as "kind: TokenKind", t.status as "status: TokenStatus", t.creator_id,
             t.scope::text as scope, t.ceiling::text as "ceiling!", t.expires_at,
             null::timestamptz as grace_ends_at,
             exists(select 1 from memberships m
                    where m.organization_id = t.organization_id and m.user_id = t.creator_id)
               as "owner_is_member?",
             (select statements from member_statements(t.organization_id, t.creator_id))::text
               as "live_statements?"
           from access_tokens t where t.secret_hash = any($1)"#,
        &digests as &[&[u8]]
    )
    .fetch_all(db)
    .await
}

/// The token whose previous secret has this digest; [`by_previous_digests`] for one.
pub async fn by_previous_digest(
    db: impl PgExecutor<'_>,
    digest: Digest,
) -> sqlx::Result<Option<VerifiedToken>> {
    Ok(by_previous_digests(db, &[digest]).await?.pop())
}

/// The tokens whose previous secrets have these digests, while the grace period after their
/// rotation lasts (`grace_ends_at`). Asked only for the digests [`by_digests`] did not find: a
/// second branch in the same statement would cost every lookup, and old secrets are rare and
/// soon cached. The owners' live permissions are not read here (the caller reads them as it
/// does for a cached token).
pub async fn by_previous_digests(
    db: impl PgExecutor<'_>,
    digests: &[Digest],
) -> sqlx::Result<Vec<VerifiedToken>> {
    let digests: Vec<&[u8]> = digests.iter().map(Digest::as_bytes).collect();
    sqlx::query_as!(
        VerifiedToken,
        r#"select previous_secret_hash as "digest!", id, organization_id,
                  type as "kind: TokenKind", status as "status: TokenStatus", creator_id,
                  scope::text as scope, ceiling::text as "ceiling!", expires_at,
                  previous_secret_expires_at as grace_ends_at,
                  null::bool as "owner_is_member?", null::text as "live_statements?"
             from access_tokens
            where previous_secret_hash = any($1) and previous_secret_expires_at > now()"#,
        &digests as &[&[u8]]
    )
    .fetch_all(db)
    .await
}

/// Writes a batch of `lastUsedAt` values in one statement; never moves a value backwards
/// (another replica may have written a later one).
pub async fn record_last_used(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
    at: &[DateTime<Utc>],
) -> sqlx::Result<()> {
    sqlx::query!(
        "update access_tokens t set last_used_at = greatest(t.last_used_at, v.at)
         from unnest($1::uuid[], $2::timestamptz[]) as v(id, at)
         where t.id = v.id",
        ids,
        at
    )
    .execute(db)
    .await?;
    Ok(())
}
