//! Listing an organization's tokens, newest first: a page by index or after a cursor, and a
//! count capped at `COUNT_CAP` (migration `20261130140000_list_indexes` has an index for each
//! filter, in this order).

use sqlx::PgConnection;
use uuid::Uuid;

use super::lists::{Cursor, Page, Total, COUNT_CAP};
use super::tokens::{TokenKind, TokenRow, TokenStatus};

#[derive(Debug, Default)]
pub struct ListFilter<'a> {
    /// Only this token (a service token without `ListAccessTokens` sees itself alone).
    pub id: Option<Uuid>,
    pub name_like: Option<&'a str>,
    pub kind: Option<TokenKind>,
    pub status: Option<TokenStatus>,
    pub creator_id: Option<Uuid>,
}

/// One page (`after` a cursor, or at `page`'s offset), the capped count, and the cursor of the
/// next page when this one is full.
pub async fn list(
    db: &mut PgConnection,
    organization_id: Uuid,
    filter: &ListFilter<'_>,
    page: Page,
    after: Option<&Cursor>,
) -> sqlx::Result<(Total, Vec<TokenRow>, Option<Cursor>)> {
    let (after_at, after_id) = match after {
        Some(cursor) => (cursor.time(), Some(cursor.id)),
        None => (None, None),
    };
    // `(created_at, id) < cursor` is one range of the (organization, [filter,] created_at desc,
    // id desc) indexes; PostgreSQL folds the null tests away when it plans with the values.
    let rows = sqlx::query_as!(
        TokenRow,
        r#"select t.id, t.organization_id, t.name, t.type as "kind: TokenKind",
             t.status as "status: TokenStatus", t.creator_id, u.name as creator_name,
             u.email as creator_email, t.hint, t.scope,
             t.expires_at, t.last_used_at, t.created_at, t.updated_at
           from access_tokens t join users u on u.id = t.creator_id
           where t.organization_id = $1
             and ($2::text is null or t.name ilike $2)
             and ($3::text is null or t.type = $3)
             and ($4::text is null or t.status = $4)
             and ($5::uuid is null or t.creator_id = $5)
             and ($6::uuid is null or t.id = $6)
             and ($9::timestamptz is null or (t.created_at, t.id) < ($9, $10))
           order by t.created_at desc, t.id desc
           limit $7 offset $8"#,
        organization_id,
        filter.name_like,
        filter.kind as Option<TokenKind>,
        filter.status as Option<TokenStatus>,
        filter.creator_id,
        filter.id,
        page.size,
        page.offset(after.is_some()),
        after_at,
        after_id,
    )
    .fetch_all(&mut *db)
    .await?;
    let next = match rows.last() {
        Some(last) if rows.len() as i64 == page.size => Some(Cursor::at(last.created_at, last.id)),
        _ => None,
    };
    if let Some(total) = page.total_from_rows(after.is_some(), rows.len()) {
        return Ok((total, rows, next));
    }
    // Counted in the list's order, so that the count walks the list's index (never the table).
    let counted = sqlx::query_scalar!(
        r#"select count(*) as "n!" from (
             select 1 from access_tokens t
              where t.organization_id = $1
                and ($2::text is null or t.name ilike $2)
                and ($3::text is null or t.type = $3)
                and ($4::text is null or t.status = $4)
                and ($5::uuid is null or t.creator_id = $5)
                and ($6::uuid is null or t.id = $6)
              order by t.created_at desc, t.id desc
              limit $7) capped"#,
        organization_id,
        filter.name_like,
        filter.kind as Option<TokenKind>,
        filter.status as Option<TokenStatus>,
        filter.creator_id,
        filter.id,
        COUNT_CAP + 1,
    )
    .fetch_one(&mut *db)
    .await?;
    Ok((Total::capped(counted), rows, next))
}
