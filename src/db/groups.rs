//! Groups of members, whose members share the group's policies.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

use super::iam::parse_statements;
use super::lists::{Cursor, NamedRef, Page, Total, COUNT_CAP};
use crate::names::unique_key;
use crate::policy::Statement;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    #[schema(value_type = Vec<NamedRef>)]
    pub members: serde_json::Value,
    #[schema(value_type = Vec<NamedRef>)]
    pub policies: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn count(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    name_like: Option<&str>,
) -> sqlx::Result<Total> {
    let counted = sqlx::query_scalar!(
        r#"select count(*) as "n!" from (
             select 1 from groups
              where organization_id = $1 and ($2::text is null or name ilike $2)
              limit $3) capped"#,
        organization_id,
        name_like,
        COUNT_CAP + 1
    )
    .fetch_one(db)
    .await?;
    Ok(Total::capped(counted))
}

pub async fn list(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    name_like: Option<&str>,
    group_id: Option<Uuid>,
    page: Page,
    after: Option<&Cursor>,
) -> sqlx::Result<Vec<GroupView>> {
    sqlx::query_as!(
        GroupView,
        r#"select g.id, g.name, g.description, g.created_at, g.updated_at,
             coalesce((select jsonb_agg(jsonb_build_object('id', u.id, 'name', u.name) order by u.name)
                       from group_members gm join users u on u.id = gm.user_id
                       where gm.group_id = g.id), '[]') as "members!",
             coalesce((select jsonb_agg(jsonb_build_object('id', p.id, 'name', p.name) order by p.name)
                       from group_policies gp join policies p on p.id = gp.policy_id
                       where gp.group_id = g.id), '[]') as "policies!"
           from groups g
           where g.organization_id = $1
             and ($2::text is null or g.name ilike $2)
             and ($3::uuid is null or g.id = $3)
             and ($6::text is null or (lower(g.name), g.id) > (lower($6), $7))
           order by lower(g.name), g.id
           limit $4 offset $5"#,
        organization_id,
        name_like,
        group_id,
        page.size,
        page.offset(after.is_some()),
        after.map(|c| c.key.as_str()),
        after.map(|c| c.id),
    )
    .fetch_all(db)
    .await
}

pub async fn get(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<GroupView>> {
    let page = Page { index: 0, size: 1 };
    Ok(list(db, organization_id, None, Some(id), page, None)
        .await?
        .into_iter()
        .next())
}

pub async fn create(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    name: &str,
    description: &str,
) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query!(
        "insert into groups (id, organization_id, name, name_key, description)
         values ($1, $2, $3, $4, $5)",
        id,
        organization_id,
        name,
        unique_key(name),
        description
    )
    .execute(db)
    .await?;
    Ok(id)
}

pub async fn delete(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from groups where id = $2 and organization_id = $1",
        organization_id,
        id
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the group belongs to the organization (locks it for the rest of the transaction).
pub async fn lock(
    tx: &mut Transaction<'_, Postgres>,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<bool> {
    Ok(sqlx::query_scalar!(
        "select id from groups where id = $2 and organization_id = $1 for update",
        organization_id,
        id
    )
    .fetch_optional(&mut **tx)
    .await?
    .is_some())
}

/// The statements of every policy attached to the group.
pub async fn statements(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    group_id: Uuid,
) -> sqlx::Result<Vec<Statement>> {
    let value = sqlx::query_scalar!(
        r#"select coalesce(jsonb_agg(s), '[]'::jsonb) as "statements!"
           from group_policies gp join groups g on g.id = gp.group_id
           join policies p on p.id = gp.policy_id
           cross join lateral jsonb_array_elements(p.statements) s
           where g.organization_id = $1 and g.id = $2"#,
        organization_id,
        group_id
    )
    .fetch_one(db)
    .await?;
    parse_statements(value)
}
