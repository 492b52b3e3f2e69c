//! Reading the audit log.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Data, Paged};
use super::extract::{page, ApiQuery};
use super::state::AppState;
use crate::auth::Principal;
use crate::db::audit::{self, AuditEventView};

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
    pub page_index: Option<i64>,
    pub page_size: Option<i64>,
}

/// Token and IAM events, newest first. Needs `ListAccessTokens` or `CanManageIAM`.
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
    let action = query.action.as_deref().filter(|a| !a.is_empty());
    if action.is_some_and(|a| a.len() > 128 || a.chars().any(char::is_control)) {
        return Err(ApiError::bad_request("action_is_invalid"));
    }
    let (total_count, items) = audit::list(
        &state.db,
        principal.organization_id,
        action,
        query.target_id,
        page,
    )
    .await?;
    Ok(Data(Paged { total_count, items }))
}
