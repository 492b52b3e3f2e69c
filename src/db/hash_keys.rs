//! Hash-key rotation (`TOKENGATE_PREVIOUS_HASH_KEYS`): which key made each stored digest, moving
//! a digest to the current key when its credential is used, and what still depends on which
//! key (`tokengate key-status`).

use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::verification::{self, VerifiedToken};
use crate::credential::{Credential, Digest, HashKey, KeyId};

/// Which stored digest a credential found under a previous key matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A token's current secret.
    TokenSecret,
    /// A token's previous secret, in its grace period after a rotation.
    GraceSecret,
    /// A web session.
    Session,
}

/// The token a secret is, as its current secret or as a previous one in grace, under the first
/// of `keys` whose digest of it is stored; with which digest matched, and where.
pub async fn find_token<'k>(
    db: &PgPool,
    keys: impl IntoIterator<Item = &'k HashKey>,
    credential: &Credential,
    personal: bool,
) -> sqlx::Result<Option<(VerifiedToken, Stored, Digest)>> {
    for key in keys {
        let digest = key.digest(credential);
        if let Some(row) = verification::by_digest(db, digest, personal).await? {
            return Ok(Some((row, Stored::TokenSecret, digest)));
        }
        if let Some(row) = verification::by_previous_digest(db, digest).await? {
            return Ok(Some((row, Stored::GraceSecret, digest)));
        }
    }
    Ok(None)
}

/// Replaces `old` (made with a previous key) by `new` (the same credential under the current
/// key) on row `id`. Only if the row still holds `old`: a concurrent use of the same credential,
/// or a rotation or logout meanwhile, wins, and this changes nothing.
pub async fn redigest(
    db: impl PgExecutor<'_>,
    stored: Stored,
    id: Uuid,
    old: Digest,
    new: Digest,
    key: KeyId,
) -> sqlx::Result<bool> {
    let key = key.to_string();
    let (old, new) = (old.as_bytes(), new.as_bytes());
    let done = match stored {
        Stored::TokenSecret => sqlx::query!(
            "update access_tokens set secret_hash = $3, secret_key_id = $4
              where id = $1 and secret_hash = $2",
            id,
            old,
            new,
            key
        )
        .execute(db)
        .await?
        .rows_affected(),
        Stored::GraceSecret => sqlx::query!(
            "update access_tokens set previous_secret_hash = $3, previous_secret_key_id = $4
              where id = $1 and previous_secret_hash = $2",
            id,
            old,
            new,
            key
        )
        .execute(db)
        .await?
        .rows_affected(),
        Stored::Session => sqlx::query!(
            "update sessions set secret_hash = $3, key_id = $4 where id = $1 and secret_hash = $2",
            id,
            old,
            new,
            key
        )
        .execute(db)
        .await?
        .rows_affected(),
    };
    Ok(done == 1)
}

/// Credentials that can still be used, by the key that made their digest (`None`: made before
/// key ids were recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    pub key_id: Option<String>,
    /// Tokens not expired, active or not (an inactive token can be activated again).
    pub tokens: i64,
    /// Previous secrets of rotated tokens whose grace period has not ended.
    pub grace_secrets: i64,
    /// Web sessions not expired.
    pub sessions: i64,
}

pub async fn usage(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<KeyUsage>> {
    sqlx::query_as!(
        KeyUsage,
        r#"select key_id,
                  count(*) filter (where what = 't') as "tokens!",
                  count(*) filter (where what = 'g') as "grace_secrets!",
                  count(*) filter (where what = 's') as "sessions!"
             from (select secret_key_id as key_id, 't' as what from access_tokens
                    where expires_at is null or expires_at > now()
                   union all
                   select previous_secret_key_id, 'g' from access_tokens
                    where previous_secret_hash is not null and previous_secret_expires_at > now()
                      and (expires_at is null or expires_at > now())
                   union all
                   select key_id, 's' from sessions where expires_at > now()) as used
            group by key_id
            order by key_id nulls first"#
    )
    .fetch_all(db)
    .await
}

/// Gives digests made before key ids were recorded the current key's id. Only right when no
/// previous key is configured: then the current key is the only one that can verify anything,
/// and a digest it did not make is dead anyway.
pub async fn label_unlabelled(db: &sqlx::PgPool, key: KeyId) -> sqlx::Result<u64> {
    let key = key.to_string();
    let mut tx = db.begin().await?;
    let mut labelled = sqlx::query!(
        "update access_tokens set secret_key_id = $1 where secret_key_id is null",
        key
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    labelled += sqlx::query!(
        "update access_tokens set previous_secret_key_id = $1
          where previous_secret_key_id is null and previous_secret_hash is not null",
        key
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    labelled += sqlx::query!("update sessions set key_id = $1 where key_id is null", key)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(labelled)
}
