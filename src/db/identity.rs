//! Users, web sessions and organizations.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

use super::audit::{self, Actor};
use crate::credential::{canonical_email, Digest, KeyId};
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

/// Accounts a login with this email (in its canonical form, `canonical_email`) may mean, most
/// recently used first (at most
/// [`MAX_LOGIN_CANDIDATES`]): one per organization that created an account for the email. With
/// `organization_id`, only accounts that are members there.
pub async fn login_candidates(
    db: impl PgExecutor<'_>,
    email: &str,
    organization_id: Option<Uuid>,
) -> sqlx::Result<Vec<UserCredentials>> {
    sqlx::query_as!(
        UserCredentials,
        "select id, email, name, password_hash from users u
          where email_canonical = $1
            and ($2::uuid is null or exists(
                   select 1 from memberships m where m.user_id = u.id and m.organization_id = $2))
          order by last_login_at desc nulls last, created_at, id
          limit $3",
        canonical_email(email),
        organization_id,
        MAX_LOGIN_CANDIDATES
    )
    .fetch_all(db)
    .await
}

/// Most accounts one login tries (each costs a password hash).
pub const MAX_LOGIN_CANDIDATES: i64 = 3;

/// The account for this email as the organization knows it: one of its members, or one it
/// created (a member it removed). Never an account of another organization.
pub async fn account_in_organization(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    email: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "select u.id from users u
          where u.email_canonical = $2
            and (u.organization_id = $1 or exists(
                   select 1 from memberships m where m.user_id = u.id and m.organization_id = $1))
          order by exists(select 1 from memberships m
                           where m.user_id = u.id and m.organization_id = $1) desc, u.id
          limit 1",
        organization_id,
        canonical_email(email)
    )
    .fetch_optional(db)
    .await
}

/// Remembered so that a login by email alone tries the account last used first.
pub async fn note_login(db: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "update users set last_login_at = now() where id = $1",
        user_id
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn password_hash(db: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("select password_hash from users where id = $1", user_id)
        .fetch_optional(db)
        .await
}

/// A new account, belonging to the organization that creates it.
pub async fn create_user(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    email: &str,
    name: &str,
    password_hash: &str,
) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query!(
        "insert into users (id, organization_id, email, email_canonical, name, password_hash)
         values ($1, $2, $3, $4, $5, $6)",
        id,
        organization_id,
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
    key: KeyId,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query!(
        "insert into sessions (id, user_id, secret_hash, expires_at, key_id)
         values ($1, $2, $3, $4, $5)",
        id,
        user_id,
        digest.as_bytes(),
        expires_at,
        key.to_string()
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

#[derive(Debug)]
pub struct SessionUser {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub expires_at: DateTime<Utc>,
}

/// The live session with this digest, if it has not expired.
pub async fn session_by_digest(
    db: impl PgExecutor<'_>,
    digest: &Digest,
) -> sqlx::Result<Option<SessionUser>> {
    sqlx::query_as!(
        SessionUser,
        "select s.id as session_id, u.id as user_id, u.email, u.name, s.expires_at
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
    let org = insert_organization(tx, name).await?;
    make_owner(tx, &org, owner_id).await?;
    Ok(org)
}

async fn insert_organization(
    tx: &mut Transaction<'_, Postgres>,
    name: &str,
) -> sqlx::Result<OrganizationView> {
    sqlx::query_as!(
        OrganizationView,
        "insert into organizations (id, name) values ($1, $2) returning id, name, created_at",
        Uuid::new_v4(),
        name
    )
    .fetch_one(&mut **tx)
    .await
}

/// The founder's membership and Owner policy, audited.
async fn make_owner(
    tx: &mut Transaction<'_, Postgres>,
    org: &OrganizationView,
    owner_id: Uuid,
) -> sqlx::Result<()> {
    let name = &org.name;
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
    Ok(())
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
    let org = insert_organization(&mut tx, org_name).await?;
    let user_id = create_user(&mut *tx, org.id, email, name, password_hash).await?;
    make_owner(&mut tx, &org, user_id).await?;
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
