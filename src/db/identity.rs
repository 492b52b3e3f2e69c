//! Users, web sessions and organizations.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

use super::audit::{self, Actor};
use crate::credential::{canonical_email, Digest};
use crate::policy::OWNER_POLICY_ID;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationView {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

pub struct UserCredentials {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
}

/// The account whose email has the same canonical form as `email` (`canonical_email`).
pub async fn user_by_email(
    db: impl PgExecutor<'_>,
    email: &str,
) -> sqlx::Result<Option<UserCredentials>> {
    sqlx::query_as!(
        UserCredentials,
        "select id, email, name, password_hash from users where email_canonical = $1",
        canonical_email(email)
    )
    .fetch_optional(db)
    .await
}

pub async fn password_hash(db: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("select password_hash from users where id = $1", user_id)
        .fetch_optional(db)
        .await
}

pub async fn create_user(
    db: impl PgExecutor<'_>,
    email: &str,
    name: &str,
    password_hash: &str,
) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query!(
        "insert into users (id, email, email_canonical, name, password_hash)
         values ($1, $2, $3, $4, $5)",
        id,
        email,
        canonical_email(email),
        name,
        password_hash
    )
    .execute(db)
    .await?;
    Ok(id)
}

pub async fn set_password(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    password_hash: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update users set password_hash = $2, updated_at = now() where id = $1",
        user_id,
        password_hash
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn create_session(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    digest: &Digest,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query!(
        "insert into sessions (id, user_id, secret_hash, expires_at) values ($1, $2, $3, $4)",
        id,
        user_id,
        digest.as_bytes(),
        expires_at
    )
    .execute(db)
    .await?;
    Ok(id)
}

/// A user's public view, for `whoami`.
pub async fn user_by_id(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<UserView>> {
    sqlx::query_as!(
        UserView,
        "select id, email, name from users where id = $1",
        id
    )
    .fetch_optional(db)
    .await
}

pub struct SessionUser {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
}

/// The live session with this digest, if it has not expired.
pub async fn session_by_digest(
    db: impl PgExecutor<'_>,
    digest: &Digest,
) -> sqlx::Result<Option<SessionUser>> {
    sqlx::query_as!(
        SessionUser,
        "select s.id as session_id, u.id as user_id, u.email, u.name
         from sessions s join users u on u.id = s.user_id
         where s.secret_hash = $1 and s.expires_at > now()",
        digest.as_bytes()
    )
    .fetch_optional(db)
    .await
}

pub async fn delete_session(db: impl PgExecutor<'_>, session_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("delete from sessions where id = $1", session_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Ends every session of the user but `keep` (after a password change).
pub async fn delete_other_sessions(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    keep: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "delete from sessions where user_id = $1 and id <> $2",
        user_id,
        keep
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn organizations_of(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> sqlx::Result<Vec<OrganizationView>> {
    sqlx::query_as!(
        OrganizationView,
        "select o.id, o.name, o.created_at from organizations o
         join memberships m on m.organization_id = o.id
         where m.user_id = $1 order by o.created_at, o.id",
        user_id
    )
    .fetch_all(db)
    .await
}

pub async fn is_member(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists(select 1 from memberships where organization_id = $1 and user_id = $2) as "e!""#,
        organization_id,
        user_id
    )
    .fetch_one(db)
    .await
}

/// Creates an organization whose creator becomes its Owner.
pub async fn create_organization(
    tx: &mut Transaction<'_, Postgres>,
    name: &str,
    owner_id: Uuid,
) -> sqlx::Result<OrganizationView> {
    let org = sqlx::query_as!(
        OrganizationView,
        "insert into organizations (id, name) values ($1, $2) returning id, name, created_at",
        Uuid::new_v4(),
        name
    )
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query!(
        "insert into memberships (organization_id, user_id) values ($1, $2)",
        org.id,
        owner_id
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "insert into member_policies (organization_id, user_id, policy_id) values ($1, $2, $3)",
        org.id,
        owner_id,
        OWNER_POLICY_ID
    )
    .execute(&mut **tx)
    .await?;
    audit::record(
        &mut **tx,
        org.id,
        Actor::user(owner_id),
        "organization.created",
        Some(org.id),
        serde_json::json!({ "name": name }),
    )
    .await?;
    Ok(org)
}

/// `tokengate bootstrap`: the first organization and its Owner. `None` if any organization exists.
pub async fn bootstrap(
    pool: &PgPool,
    org_name: &str,
    email: &str,
    name: &str,
    password_hash: &str,
) -> sqlx::Result<Option<Uuid>> {
    let mut tx = pool.begin().await?;
    // Serialises concurrent bootstraps so exactly one creates the first organization.
    sqlx::query!("lock table organizations in share row exclusive mode")
        .execute(&mut *tx)
        .await?;
    let exists = sqlx::query_scalar!(r#"select exists(select 1 from organizations) as "e!""#)
        .fetch_one(&mut *tx)
        .await?;
    if exists {
        return Ok(None);
    }
    let user_id = match user_by_email(&mut *tx, email).await? {
        Some(user) => user.id,
        None => create_user(&mut *tx, email, name, password_hash).await?,
    };
    let org = create_organization(&mut tx, org_name, user_id).await?;
    tx.commit().await?;
    Ok(Some(org.id))
}

/// Recomputes `email_canonical` with `canonical_email` where the migration that introduced it
/// could only approximate it in SQL: emails with characters beyond ASCII.
pub async fn recompute_canonical_emails(pool: &PgPool) -> sqlx::Result<()> {
    let rows = sqlx::query!(
        "select id, email, email_canonical from users where octet_length(email) <> length(email)"
    )
    .fetch_all(pool)
    .await?;
    for row in rows {
        let canonical = canonical_email(&row.email);
        if canonical != row.email_canonical {
            sqlx::query!(
                "update users set email_canonical = $2 where id = $1",
                row.id,
                canonical
            )
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}
