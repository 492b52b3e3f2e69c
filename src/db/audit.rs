//! The append-only audit log.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

use super::lists::Page;

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

pub async fn list(
    db: impl PgExecutor<'_> + Copy,
    organization_id: Uuid,
    action: Option<&str>,
    target_id: Option<Uuid>,
    page: Page,
) -> sqlx::Result<(i64, Vec<AuditEventView>)> {
    let total = sqlx::query_scalar!(
        r#"select count(*) as "n!" from audit_events
           where organization_id = $1 and ($2::text is null or action = $2)
             and ($3::uuid is null or target_id = $3)"#,
        organization_id,
        action,
        target_id,
    )
    .fetch_one(db)
    .await?;
    let items = sqlx::query_as!(
        AuditEventView,
        "select id, actor_kind, actor_id, action, target_id, details, at from audit_events
         where organization_id = $1 and ($2::text is null or action = $2)
           and ($3::uuid is null or target_id = $3)
         order by at desc, id limit $4 offset $5",
        organization_id,
        action,
        target_id,
        page.size,
        page.offset(),
    )
    .fetch_all(db)
    .await?;
    Ok((total, items))
}
