//! Policies: the built-ins (no organization, read-only) and each organization's own.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

use super::iam::parse_statements;
use super::lists::{Cursor, Page, Total, COUNT_CAP};
use crate::names::unique_key;
use crate::policy::Statement;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// `SysManaged` (built-in, read-only) or `Custom`.
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = Vec<Statement>)]
    pub statements: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PolicyView {
    pub fn is_sys_managed(&self) -> bool {
        self.kind == "SysManaged"
    }
}

pub async fn count(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    name_like: Option<&str>,
) -> sqlx::Result<Total> {
    let counted = sqlx::query_scalar!(
        r#"select count(*) as "n!" from (
             select 1 from policies
              where (organization_id = $1 or organization_id is null)
                and ($2::text is null or name ilike $2)
              limit $3) capped"#,
        organization_id,
        name_like,
        COUNT_CAP + 1
    )
    .fetch_one(db)
    .await?;
    Ok(Total::capped(counted))
}

/// The cursor after a policy of the list: built-ins sort first, so its kind is part of the key.
pub fn cursor_after(policy: &PolicyView) -> Cursor {
    let kind = if policy.is_sys_managed() { 'S' } else { 'C' };
    Cursor {
        id: policy.id,
        key: format!("{kind}{}", policy.name),
    }
}

pub async fn list(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    name_like: Option<&str>,
    page: Page,
    after: Option<&Cursor>,
) -> sqlx::Result<Vec<PolicyView>> {
    // `cursor_after`'s key: the kind's letter, then the name.
    let after_custom = after.map(|c| c.key.starts_with('C'));
    let after_name = after.map(|c| c.key.get(1..).unwrap_or_default());
    sqlx::query_as!(
        PolicyView,
        r#"select id, name, description, type as kind, statements, created_at, updated_at
           from policies
           where (organization_id = $1 or organization_id is null)
             and ($2::text is null or name ilike $2)
             and ($5::bool is null
                  or ((organization_id is not null), lower(name), id) > ($5, lower($6), $7))
           order by (organization_id is not null), lower(name), id
           limit $3 offset $4"#,
        organization_id,
        name_like,
        page.size,
        page.offset(after.is_some()),
        after_custom,
        after_name,
        after.map(|c| c.id),
    )
    .fetch_all(db)
    .await
}

/// A built-in policy or one of this organization's.
pub async fn get(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<PolicyView>> {
    sqlx::query_as!(
        PolicyView,
        r#"select id, name, description, type as kind, statements, created_at, updated_at
           from policies where id = $2 and (organization_id = $1 or organization_id is null)"#,
        organization_id,
        id
    )
    .fetch_optional(db)
    .await
}

pub async fn create(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    name: &str,
    description: &str,
    statements: &serde_json::Value,
) -> sqlx::Result<PolicyView> {
    sqlx::query_as!(
        PolicyView,
        r#"insert into policies (id, organization_id, name, name_key, description, type, statements)
           values ($1, $2, $3, $4, $5, 'Custom', $6)
           returning id, name, description, type as kind, statements, created_at, updated_at"#,
        Uuid::new_v4(),
        organization_id,
        name,
        unique_key(name),
        description,
        statements
    )
    .fetch_one(db)
    .await
}

/// Updates a custom policy of this organization (built-ins never match).
pub async fn update(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    id: Uuid,
    name: Option<&str>,
    description: Option<&str>,
    statements: Option<&serde_json::Value>,
) -> sqlx::Result<Option<PolicyView>> {
    sqlx::query_as!(
        PolicyView,
        r#"update policies set
             name = coalesce($3, name),
             name_key = coalesce($4, name_key),
             description = coalesce($5, description),
             statements = coalesce($6, statements),
             updated_at = now()
           where id = $2 and organization_id = $1 and type = 'Custom'
           returning id, name, description, type as kind, statements, created_at, updated_at"#,
        organization_id,
        id,
        name,
        name.map(unique_key),
        description,
        statements
    )
    .fetch_optional(db)
    .await
}

pub async fn delete(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<bool> {
    let deleted = sqlx::query!(
        "delete from policies where id = $2 and organization_id = $1 and type = 'Custom'",
        organization_id,
        id
    )
    .execute(db)
    .await?;
    Ok(deleted.rows_affected() == 1)
}

/// The statements of one policy (a built-in or the organization's own).
pub async fn statements(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    policy_id: Uuid,
) -> sqlx::Result<Option<Vec<Statement>>> {
    sqlx::query_scalar!(
        r#"select statements as "statements!" from policies
           where id = $2 and (organization_id = $1 or organization_id is null)"#,
        organization_id,
        policy_id
    )
    .fetch_optional(db)
    .await?
    .map(parse_statements)
    .transpose()
}
