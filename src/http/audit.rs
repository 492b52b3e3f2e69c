//! Reading the audit log.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Data, Paged};
use super::extract::{cursor, page, ApiQuery};
use super::state::AppState;
use crate::auth::Principal;
use crate::db::audit::{self, AuditEventView, AuditFilter};
use crate::db::lists::planned_with_values;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// e.g. `access-token.created`, `member.removed`.
    pub action: Option<String>,
    pub target_id: Option<Uuid>,
    /// Who did it: a member's or a token's id.
    pub actor_id: Option<Uuid>,
    /// Events at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Events before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    pub page_index: Option<i64>,
    pub page_size: Option<i64>,
    /// The previous page's `nextCursor`: the page after it (then `pageIndex` must be 0).
    pub after: Option<String>,
}

/// Token and IAM events, newest first. Needs `ListAccessTokens` or `CanManageIAM`.
/// `totalCount` stops at 10,000 (`totalCountIsExact: false` beyond); deep pages: `after`.
#[utoipa::path(get, path = "/api/v1/audit-logs", tag = "audit", params(ListQuery),
    responses((status = 200, body = Paged<AuditEventView>)))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Data<Paged<AuditEventView>>> {
    if !principal.allows("ListAccessTokens", "access-token/*")
        && !principal.allows("CanManageIAM", "iam/*")
    {
        return Err(ApiError::Forbidden);
    }
    let page = page(query.page_index, query.page_size)?;
    let after = cursor(query.after.as_deref(), &page, true)?;
    let action = query.action.as_deref().filter(|a| !a.is_empty());
    if action.is_some_and(|a| a.len() > 128 || a.chars().any(char::is_control)) {
        return Err(ApiError::bad_request("action_is_invalid"));
    }
    let filter = AuditFilter {
        action,
        target_id: query.target_id,
        actor_id: query.actor_id,
        from: query.from,
        to: query.to,
    };
    let mut tx = planned_with_values(&state.db).await?;
    let (total, items, next) = audit::list(
        &mut tx,
        principal.organization_id,
        &filter,
        page,
        after.as_ref(),
    )
    .await?;
    tx.commit().await?;
    Ok(Data(Paged::new(total, items, next)))
}
