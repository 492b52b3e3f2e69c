//! Access tokens. Secrets are never stored: only HMAC digests, looked up by equality on a unique
//! column.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgExecutor, Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::credential::{CredentialKind, Digest, KeyId};
use crate::db::identity::UserView;
use crate::names::unique_key;
use crate::policy::Statement;

/// A token's type: it acts for its owner, a member, or for the organization itself.
// Stored as its name in `access_tokens.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "text")]
pub enum TokenKind {
    Personal,
    Service,
}

impl TokenKind {
    /// The credential prefix a token of this type carries.
    pub fn credential(self) -> CredentialKind {
        match self {
            TokenKind::Personal => CredentialKind::PersonalToken,
            TokenKind::Service => CredentialKind::ServiceToken,
        }
    }
}

/// Whether a token may be used (it may still have expired).
// Stored as its name in `access_tokens.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "text")]
pub enum TokenStatus {
    Active,
    Inactive,
}

/// A token as stored, minus its digests.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub kind: TokenKind,
    pub status: TokenStatus,
    pub creator_id: Uuid,
    pub creator_name: String,
    pub creator_email: String,
    pub hint: String,
    pub scope: Option<serde_json::Value>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TokenRow {
    pub fn is_personal(&self) -> bool {
        self.kind == TokenKind::Personal
    }

    pub fn is_active(&self) -> bool {
        self.status == TokenStatus::Active
    }

    pub fn view(self) -> TokenView {
        TokenView {
            id: self.id,
            name: self.name,
            kind: self.kind,
            status: self.status,
            hint: self.hint,
            permissions: self.scope,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            creator: UserView {
                id: self.creator_id,
                name: self.creator_name,
                email: self.creator_email,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// What clients see of a token: never the secret, the digest or the frozen layers.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    pub id: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: TokenKind,
    pub status: TokenStatus,
    /// The prefix and first characters of the secret, for recognising it (`tgs_Ab3x…`).
    pub hint: String,
    /// The token's own scope; `null` for an unscoped personal token.
    #[schema(value_type = Option<Vec<Statement>>)]
    pub permissions: Option<serde_json::Value>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub creator: UserView,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct NewToken<'a> {
    pub organization_id: Uuid,
    pub name: &'a str,
    pub kind: TokenKind,
    pub creator_id: Uuid,
    pub created_by_token_id: Option<Uuid>,
    pub digest: &'a Digest,
    /// The key that made `digest`.
    pub key: KeyId,
    pub hint: &'a str,
    pub scope: Option<&'a serde_json::Value>,
    pub ceiling: &'a serde_json::Value,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn insert(tx: &mut Transaction<'_, Postgres>, new: NewToken<'_>) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query!(
        "insert into access_tokens (id, organization_id, name, name_key, type, status,
             creator_id, created_by_token_id, secret_hash, hint, scope, ceiling, expires_at,
             secret_key_id)
         values ($1, $2, $3, $4, $5, 'Active', $6, $7, $8, $9, $10, $11, $12, $13)",
        id,
        new.organization_id,
        new.name,
        unique_key(new.name),
        new.kind as TokenKind,
        new.creator_id,
        new.created_by_token_id,
        new.digest.as_bytes(),
        new.hint,
        new.scope,
        new.ceiling,
        new.expires_at,
        new.key.to_string(),
    )
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// One token of the organization (`for_update` locks it for the transaction).
pub async fn get(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    id: Uuid,
    for_update: bool,
) -> sqlx::Result<Option<TokenRow>> {
    // Two statements rather than string-built SQL, so both stay compile-time checked.
    if for_update {
        sqlx::query_as!(
            TokenRow,
            r#"select t.id, t.organization_id, t.name, t.type as "kind: TokenKind",
                 t.status as "status: TokenStatus", t.creator_id, u.name as creator_name,
                 u.email as creator_email, t.hint, t.scope,
                 t.expires_at, t.last_used_at, t.created_at, t.updated_at
               from access_tokens t join users u on u.id = t.creator_id
               where t.organization_id = $1 and t.id = $2
               for update of t"#,
            organization_id,
            id
        )
        .fetch_optional(db)
        .await
    } else {
        sqlx::query_as!(
            TokenRow,
            r#"select t.id, t.organization_id, t.name, t.type as "kind: TokenKind",
                 t.status as "status: TokenStatus", t.creator_id, u.name as creator_name,
                 u.email as creator_email, t.hint, t.scope,
                 t.expires_at, t.last_used_at, t.created_at, t.updated_at
               from access_tokens t join users u on u.id = t.creator_id
               where t.organization_id = $1 and t.id = $2"#,
            organization_id,
            id
        )
        .fetch_optional(db)
        .await
    }
}

pub use super::token_list::{list, ListFilter};

/// A token's frozen layers and scope (SPEC §2.3): what it may do besides its owner's live
/// permissions.
pub async fn frozen_layers(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<(Vec<Vec<Statement>>, Option<Vec<Statement>>)>> {
    let Some(row) = sqlx::query!(
        r#"select ceiling as "ceiling!", scope from access_tokens
           where organization_id = $1 and id = $2"#,
        organization_id,
        id
    )
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    let decode = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
    let ceiling = serde_json::from_value(row.ceiling).map_err(decode)?;
    let scope = row
        .scope
        .map(serde_json::from_value)
        .transpose()
        .map_err(decode)?;
    Ok(Some((ceiling, scope)))
}

/// Whether the token may still act: it exists, is Active and has not expired. Takes a share
/// lock, so a concurrent deactivation or deletion either came first or waits for the caller.
pub async fn is_usable(
    tx: impl PgExecutor<'_>,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"select status = 'Active' and (expires_at is null or expires_at > now()) as "usable!"
           from access_tokens where organization_id = $1 and id = $2 for share"#,
        organization_id,
        id
    )
    .fetch_optional(tx)
    .await?
    .unwrap_or(false))
}

pub async fn is_name_used(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    name: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists(select 1 from access_tokens
             where organization_id = $1 and name_key = $2) as "e!""#,
        organization_id,
        unique_key(name)
    )
    .fetch_one(db)
    .await
}

pub async fn rename(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    id: Uuid,
    name: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update access_tokens set name = $3, name_key = $4, updated_at = now()
         where organization_id = $1 and id = $2",
        organization_id,
        id,
        name,
        unique_key(name)
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn set_status(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    id: Uuid,
    status: TokenStatus,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update access_tokens set status = $3, updated_at = now() where organization_id = $1 and id = $2",
        organization_id,
        id,
        status as TokenStatus
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A new secret; the old one keeps working until `old_expires_at` (none: dead now).
pub async fn rotate(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    id: Uuid,
    digest: &Digest,
    key: KeyId,
    hint: &str,
    old_expires_at: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update access_tokens set
             previous_secret_hash = case when $5::timestamptz is null then null else secret_hash end,
             previous_secret_key_id =
                 case when $5::timestamptz is null then null else secret_key_id end,
             previous_secret_expires_at = $5,
             secret_hash = $3, secret_key_id = $6, hint = $4, updated_at = now()
         where organization_id = $1 and id = $2",
        organization_id,
        id,
        digest.as_bytes(),
        hint,
        old_expires_at,
        key.to_string()
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn delete(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from access_tokens where organization_id = $1 and id = $2",
        organization_id,
        id
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}
