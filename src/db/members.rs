//! The members of an organization. Every function takes the organization id, and every id from a
//! client is matched against it: an id of another organization is "not found".

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

use super::lists::{Cursor, NamedRef, Page, Total, COUNT_CAP};

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// The member's user id.
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub joined_at: DateTime<Utc>,
    /// Policies attached directly.
    #[schema(value_type = Vec<NamedRef>)]
    pub policies: serde_json::Value,
    #[schema(value_type = Vec<NamedRef>)]
    pub groups: serde_json::Value,
}

pub async fn count(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    name_like: Option<&str>,
) -> sqlx::Result<Total> {
    // Without a filter, the count walks the memberships key alone (no join to users).
    let counted = sqlx::query_scalar!(
        r#"select count(*) as "n!" from (
             select 1 from memberships m
              where m.organization_id = $1
                and ($2::text is null or exists (
                      select 1 from users u
                       where u.id = m.user_id and (u.name ilike $2 or u.email ilike $2)))
              order by m.user_id
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
    member_id: Option<Uuid>,
    page: Page,
    after: Option<&Cursor>,
) -> sqlx::Result<Vec<MemberView>> {
    // A cursor holds the last member's name and id: `(lower(name), id) >` it is one range of
    // `users_lower_name_idx`.
    sqlx::query_as!(
        MemberView,
        r#"select u.id, u.name, u.email, m.created_at as joined_at,
             coalesce((select jsonb_agg(jsonb_build_object('id', p.id, 'name', p.name) order by p.name)
                       from member_policies mp join policies p on p.id = mp.policy_id
                       where mp.organization_id = m.organization_id and mp.user_id = m.user_id),
                      '[]') as "policies!",
             coalesce((select jsonb_agg(jsonb_build_object('id', g.id, 'name', g.name) order by g.name)
                       from group_members gm join groups g on g.id = gm.group_id
                       where gm.organization_id = m.organization_id and gm.user_id = m.user_id),
                      '[]') as "groups!"
           from memberships m join users u on u.id = m.user_id
           where m.organization_id = $1
             and ($2::text is null or u.name ilike $2 or u.email ilike $2)
             and ($3::uuid is null or u.id = $3)
             and ($6::text is null or (lower(u.name), u.id) > (lower($6), $7))
           order by lower(u.name), u.id
           limit $4 offset $5"#,
        organization_id,
        name_like,
        member_id,
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
    user_id: Uuid,
) -> sqlx::Result<Option<MemberView>> {
    let page = Page { index: 0, size: 1 };
    Ok(list(db, organization_id, None, Some(user_id), page, None)
        .await?
        .into_iter()
        .next())
}

/// Adds the membership; false if the user already is a member.
pub async fn add(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<bool> {
    let added = sqlx::query!(
        "insert into memberships (organization_id, user_id) values ($1, $2) on conflict do nothing",
        organization_id,
        user_id
    )
    .execute(db)
    .await?;
    Ok(added.rows_affected() == 1)
}

/// Removes the membership (its policy and group links go with it). False if it did not exist.
pub async fn remove(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<bool> {
    let removed = sqlx::query!(
        "delete from memberships where organization_id = $1 and user_id = $2",
        organization_id,
        user_id
    )
    .execute(db)
    .await?;
    Ok(removed.rows_affected() == 1)
}

/// Sets every active personal token the user owns in the organization to Inactive; returns their ids.
pub async fn deactivate_personal_tokens_of(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "update access_tokens set status = 'Inactive', updated_at = now()
         where organization_id = $1 and creator_id = $2 and type = 'Personal' and status = 'Active'
         returning id",
        organization_id,
        user_id
    )
    .fetch_all(db)
    .await
}
