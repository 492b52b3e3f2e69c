//! Members, policies, groups and the links between them. Every function takes the organization
//! id, and every id from a client is matched against it: an id of another organization is "not found".

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Page;
use crate::names::unique_key;
use crate::policy::Statement;

/// A member's live statements: every policy attached to them directly or through any of their
/// groups (the database's `member_statements`, the one definition of them).
pub async fn live_statements(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<Vec<Statement>> {
    let statements = sqlx::query_scalar!(
        r#"select statements as "statements!" from member_statements($1, $2)"#,
        organization_id,
        user_id
    )
    .fetch_one(db)
    .await?;
    parse_statements(statements)
}

/// Whether the user is a member, and their live statements, in one round trip.
pub async fn member_permissions(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<(bool, Vec<Statement>)> {
    let row = sqlx::query!(
        r#"select
             exists(select 1 from memberships where organization_id = $1 and user_id = $2)
               as "is_member!",
             (select statements from member_statements($1, $2)) as "statements!""#,
        organization_id,
        user_id
    )
    .fetch_one(db)
    .await?;
    Ok((row.is_member, parse_statements(row.statements)?))
}

pub fn parse_statements(value: serde_json::Value) -> sqlx::Result<Vec<Statement>> {
    serde_json::from_value(value).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamedRef {
    pub id: Uuid,
    pub name: String,
}

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

pub async fn count_members(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    name_like: Option<&str>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "n!" from memberships m join users u on u.id = m.user_id
           where m.organization_id = $1
             and ($2::text is null or u.name ilike $2 or u.email ilike $2)"#,
        organization_id,
        name_like
    )
    .fetch_one(db)
    .await
}

pub async fn list_members(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    name_like: Option<&str>,
    member_id: Option<Uuid>,
    page: Page,
) -> sqlx::Result<Vec<MemberView>> {
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
           order by lower(u.name), u.id
           limit $4 offset $5"#,
        organization_id,
        name_like,
        member_id,
        page.size,
        page.offset()
    )
    .fetch_all(db)
    .await
}

pub async fn member(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<Option<MemberView>> {
    let page = Page { index: 0, size: 1 };
    Ok(list_members(db, organization_id, None, Some(user_id), page)
        .await?
        .into_iter()
        .next())
}

/// Adds the membership; false if the user already is a member.
pub async fn add_membership(
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
pub async fn remove_membership(
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

/// Members holding the Owner policy, directly or through a group.
pub async fn owners(db: impl PgExecutor<'_>, organization_id: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        r#"select user_id as "user_id!" from member_policies
            where organization_id = $1 and policy_id = $2
           union
           select gm.user_id from group_members gm
             join group_policies gp on gp.group_id = gm.group_id
            where gm.organization_id = $1 and gp.policy_id = $2
           order by 1"#,
        organization_id,
        crate::policy::OWNER_POLICY_ID
    )
    .fetch_all(db)
    .await
}

/// Whether the member holds the Owner policy, directly or through a group.
pub async fn is_owner(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists(
             select 1 from member_policies
              where organization_id = $1 and user_id = $2 and policy_id = $3
             union all
             select 1 from group_members gm
               join group_policies gp on gp.group_id = gm.group_id
              where gm.organization_id = $1 and gm.user_id = $2 and gp.policy_id = $3) as "e!""#,
        organization_id,
        user_id,
        crate::policy::OWNER_POLICY_ID
    )
    .fetch_one(db)
    .await
}

/// Whether an Owner holds this policy, directly or through a group.
pub async fn policy_reaches_an_owner(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    policy_id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"with owners as (
             select user_id from member_policies where organization_id = $1 and policy_id = $3
             union
             select gm.user_id from group_members gm
               join group_policies gp on gp.group_id = gm.group_id
              where gm.organization_id = $1 and gp.policy_id = $3)
           select exists(
             select 1 from member_policies mp join owners o on o.user_id = mp.user_id
              where mp.organization_id = $1 and mp.policy_id = $2
             union all
             select 1 from group_members gm join owners o on o.user_id = gm.user_id
               join group_policies gp on gp.group_id = gm.group_id
              where gm.organization_id = $1 and gp.policy_id = $2) as "e!""#,
        organization_id,
        policy_id,
        crate::policy::OWNER_POLICY_ID
    )
    .fetch_one(db)
    .await
}

/// Whether an Owner is a member of the group.
pub async fn group_has_an_owner(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    group_id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists(
             select 1 from group_members g
              where g.group_id = $2 and g.organization_id = $1
                and (exists(select 1 from member_policies mp
                             where mp.organization_id = $1 and mp.user_id = g.user_id
                               and mp.policy_id = $3)
                     or exists(select 1 from group_members gm
                                 join group_policies gp on gp.group_id = gm.group_id
                                where gm.organization_id = $1 and gm.user_id = g.user_id
                                  and gp.policy_id = $3))) as "e!""#,
        organization_id,
        group_id,
        crate::policy::OWNER_POLICY_ID
    )
    .fetch_one(db)
    .await
}

/// The statements of one policy (a built-in or the organization's own).
pub async fn policy_statements(
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

/// The statements of every policy attached to the group.
pub async fn group_statements(
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

// ---- policies ----

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

pub async fn count_policies(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    name_like: Option<&str>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "n!" from policies
           where (organization_id = $1 or organization_id is null)
             and ($2::text is null or name ilike $2)"#,
        organization_id,
        name_like
    )
    .fetch_one(db)
    .await
}

pub async fn list_policies(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    name_like: Option<&str>,
    page: Page,
) -> sqlx::Result<Vec<PolicyView>> {
    sqlx::query_as!(
        PolicyView,
        r#"select id, name, description, type as kind, statements, created_at, updated_at
           from policies
           where (organization_id = $1 or organization_id is null)
             and ($2::text is null or name ilike $2)
           order by (organization_id is not null), lower(name), id
           limit $3 offset $4"#,
        organization_id,
        name_like,
        page.size,
        page.offset()
    )
    .fetch_all(db)
    .await
}

/// A built-in policy or one of this organization's.
pub async fn policy(
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

pub async fn create_policy(
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
pub async fn update_policy(
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

pub async fn delete_policy(
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

pub async fn attach_member_policy(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    user_id: Uuid,
    policy_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "insert into member_policies (organization_id, user_id, policy_id) values ($1, $2, $3)
         on conflict do nothing",
        organization_id,
        user_id,
        policy_id
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn detach_member_policy(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    user_id: Uuid,
    policy_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from member_policies where organization_id = $1 and user_id = $2 and policy_id = $3",
        organization_id,
        user_id,
        policy_id
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

// ---- groups ----

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

pub async fn count_groups(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    name_like: Option<&str>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "n!" from groups
           where organization_id = $1 and ($2::text is null or name ilike $2)"#,
        organization_id,
        name_like
    )
    .fetch_one(db)
    .await
}

pub async fn list_groups(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    name_like: Option<&str>,
    group_id: Option<Uuid>,
    page: Page,
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
           order by lower(g.name), g.id
           limit $4 offset $5"#,
        organization_id,
        name_like,
        group_id,
        page.size,
        page.offset()
    )
    .fetch_all(db)
    .await
}

pub async fn group(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<GroupView>> {
    let page = Page { index: 0, size: 1 };
    Ok(list_groups(db, organization_id, None, Some(id), page)
        .await?
        .into_iter()
        .next())
}

pub async fn create_group(
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

pub async fn delete_group(
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
pub async fn lock_group(
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

pub async fn add_group_member(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    group_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "insert into group_members (group_id, organization_id, user_id) values ($1, $2, $3)
         on conflict do nothing",
        group_id,
        organization_id,
        user_id
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn remove_group_member(
    db: impl PgExecutor<'_>,
    group_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from group_members where group_id = $1 and user_id = $2",
        group_id,
        user_id
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn attach_group_policy(
    db: impl PgExecutor<'_>,
    group_id: Uuid,
    policy_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "insert into group_policies (group_id, policy_id) values ($1, $2) on conflict do nothing",
        group_id,
        policy_id
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn detach_group_policy(
    db: impl PgExecutor<'_>,
    group_id: Uuid,
    policy_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from group_policies where group_id = $1 and policy_id = $2",
        group_id,
        policy_id
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// IAM writes of one organization take this lock exclusively; token creation takes it shared
/// and re-reads the creator's live permissions under it, so a token created while its creator
/// is losing a permission never ends up holding it.
pub async fn lock_for_write(
    tx: &mut Transaction<'_, Postgres>,
    organization_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended('tokengate.iam:' || $1::text, 0))",
        organization_id.to_string()
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn lock_for_read(
    tx: &mut Transaction<'_, Postgres>,
    organization_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "select pg_advisory_xact_lock_shared(hashtextextended('tokengate.iam:' || $1::text, 0))",
        organization_id.to_string()
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
