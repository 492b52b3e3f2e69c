//! The append-only audit log.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use utoipa::ToSchema;
use uuid::Uuid;

use super::lists::{Cursor, Page, Total, COUNT_CAP};

/// Who did it: a member through a web session, or a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub kind: &'static str,
    pub id: Uuid,
}

impl Actor {
    pub fn user(id: Uuid) -> Self {
        Actor { kind: "user", id }
    }
}

pub async fn record(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    actor: Actor,
    action: &str,
    target_id: Option<Uuid>,
    details: serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into audit_events (id, organization_id, actor_kind, actor_id, action, target_id, details)
         values ($1, $2, $3, $4, $5, $6, $7)",
        Uuid::new_v4(),
        organization_id,
        actor.kind,
        actor.id,
        action,
        target_id,
        details,
    )
    .execute(db)
    .await?;
    if let Some(event) = action.strip_prefix("access-token.") {
        crate::metrics::token_event(event);
    }
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventView {
    pub id: Uuid,
    pub actor_kind: String,
    pub actor_id: Uuid,
    pub action: String,
    pub target_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub at: DateTime<Utc>,
}

/// What the audit list may be narrowed to.
#[derive(Debug, Default)]
pub struct AuditFilter<'a> {
    pub action: Option<&'a str>,
    pub target_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
}

/// One page, newest first (`after` a cursor, or at `page`'s offset), the capped count, and the
/// cursor of the next page when this one is full. Each filter has an (organization, filter,
/// at desc, id desc) index (migration `20261130140000_list_indexes`).
pub async fn list(
    db: &mut PgConnection,
    organization_id: Uuid,
    filter: &AuditFilter<'_>,
    page: Page,
    after: Option<&Cursor>,
) -> sqlx::Result<(Total, Vec<AuditEventView>, Option<Cursor>)> {
    // Counted in the list's order, so that the count walks the list's index (never the table).
    let counted = sqlx::query_scalar!(
        r#"select count(*) as "n!" from (
             select 1 from audit_events
              where organization_id = $1 and ($2::text is null or action = $2)
                and ($3::uuid is null or target_id = $3)
                and ($4::uuid is null or actor_id = $4)
                and ($5::timestamptz is null or at >= $5)
                and ($6::timestamptz is null or at < $6)
              order by at desc, id desc
              limit $7) capped"#,
        organization_id,
        filter.action,
        filter.target_id,
        filter.actor_id,
        filter.from,
        filter.to,
        COUNT_CAP + 1,
    )
    .fetch_one(&mut *db)
    .await?;
    let items = sqlx::query_as!(
        AuditEventView,
        "select id, actor_kind, actor_id, action, target_id, details, at from audit_events
         where organization_id = $1 and ($2::text is null or action = $2)
           and ($3::uuid is null or target_id = $3)
           and ($4::uuid is null or actor_id = $4)
           and ($5::timestamptz is null or at >= $5)
           and ($6::timestamptz is null or at < $6)
           and ($9::timestamptz is null or (at, id) < ($9, $10))
         order by at desc, id desc limit $7 offset $8",
        organization_id,
        filter.action,
        filter.target_id,
        filter.actor_id,
        filter.from,
        filter.to,
        page.size,
        page.offset(after.is_some()),
        after.and_then(Cursor::time),
        after.map(|c| c.id),
    )
    .fetch_all(&mut *db)
    .await?;
    let next = match items.last() {
        Some(last) if items.len() as i64 == page.size => Some(Cursor::at(last.at, last.id)),
        _ => None,
    };
    Ok((Total::capped(counted), items, next))
}
