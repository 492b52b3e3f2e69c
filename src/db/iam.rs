//! Who holds what: the links between members, groups and policies, the live statements they
//! add up to, who the Owners are, and the lock IAM writes take. Every function takes the
//! organization id, and every id from a client is matched against it.

use sqlx::{PgExecutor, Postgres, Transaction};
use uuid::Uuid;

use crate::policy::Statement;

/// A member's live statements: every policy attached to them directly or through any of their
/// groups (the database's `member_statements`, which is `members_statements` for one member,
/// the one definition of them).
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

/// Whether a user is a member of an organization, and their live statements there as JSON text
/// (verification parses each distinct text once: `auth::intern`).
pub struct MemberPermissions {
    pub organization_id: Uuid,
    pub user_id: Uuid,
    pub is_member: bool,
    pub statements: String,
}

/// `MemberPermissions` of each distinct (organization, member) pair, in one round trip
/// (`members_statements`: each distinct set of policies is put together once).
pub async fn member_permissions(
    db: impl PgExecutor<'_>,
    organizations: &[Uuid],
    users: &[Uuid],
) -> sqlx::Result<Vec<MemberPermissions>> {
    sqlx::query_as!(
        MemberPermissions,
        r#"select s.organization_id as "organization_id!", s.user_id as "user_id!",
             exists(select 1 from memberships m
                     where m.organization_id = s.organization_id and m.user_id = s.user_id)
               as "is_member!",
             s.statements::text as "statements!"
           from members_statements($1::uuid[], $2::uuid[]) s"#,
        organizations,
        users
    )
    .fetch_all(db)
    .await
}

pub fn parse_statements(value: serde_json::Value) -> sqlx::Result<Vec<Statement>> {
    serde_json::from_value(value).map_err(|e| sqlx::Error::Decode(Box::new(e)))
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

/// The members who hold a policy, directly or through a group: whose live permissions an edit
/// of it changes.
pub async fn holders_of_policy(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    policy_id: Uuid,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        r#"select user_id as "user_id!" from member_policies
            where organization_id = $1 and policy_id = $2
           union
           select gm.user_id from group_members gm
             join group_policies gp on gp.group_id = gm.group_id
            where gm.organization_id = $1 and gp.policy_id = $2"#,
        organization_id,
        policy_id
    )
    .fetch_all(db)
    .await
}

/// A group's members: whose live permissions a change of the group's policies changes.
pub async fn group_members(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    group_id: Uuid,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "select user_id from group_members where organization_id = $1 and group_id = $2",
        organization_id,
        group_id
    )
    .fetch_all(db)
    .await
}
