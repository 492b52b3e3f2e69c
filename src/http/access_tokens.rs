//! API access tokens (SPEC §5): list and read here; creation in `create`, everything that
//! changes a token in `manage`, and the rules all of them check in `rules`. Every query is
//! scoped by organization; every rule is checked here, on the server.

mod create;
mod manage;
mod rules;

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Data, Paged};
use super::extract::{cursor, page, ApiPath, ApiQuery};
use super::state::AppState;
use super::validate::{valid_filter, valid_name};
use crate::auth::Principal;
use crate::db::lists::planned_with_values;
use crate::db::tokens::{self, ListFilter, TokenKind, TokenRow, TokenStatus, TokenView};
use rules::{can_see, ALL_TOKENS, LIST};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create::create))
        .routes(routes!(is_name_used))
        .routes(routes!(get_token, manage::rename, manage::delete))
        .routes(routes!(manage::toggle))
        .routes(routes!(manage::activate))
        .routes(routes!(manage::deactivate))
        .routes(routes!(manage::rotate))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Part of the name.
    pub name: Option<String>,
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<TokenKind>)]
    pub kind: Option<TokenKind>,
    #[param(value_type = Option<String>)]
    pub status: Option<TokenStatus>,
    pub creator_id: Option<Uuid>,
    pub page_index: Option<i64>,
    pub page_size: Option<i64>,
    /// The previous page's `nextCursor`: the page after it (then `pageIndex` must be 0).
    pub after: Option<String>,
}

/// Tokens of the organization, newest first. Without `ListAccessTokens`, only the caller's own.
/// `totalCount` stops at 10,000 (`totalCountIsExact: false` beyond); deep pages: `after`.
#[utoipa::path(get, path = "/api/v1/access-tokens", tag = "access-tokens", params(ListQuery),
    responses((status = 200, body = Paged<TokenView>)))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Data<Paged<TokenView>>> {
    let page = page(query.page_index, query.page_size)?;
    let after = cursor(query.after.as_deref(), &page, true)?;
    let like = valid_filter("name", query.name.as_deref())?;
    // Without `ListAccessTokens`: a member's own tokens; a service token, itself only.
    let (creator_id, only_id) = if principal.allows(LIST, ALL_TOKENS) {
        (query.creator_id, None)
    } else {
        match principal.member_id() {
            Some(member) if query.creator_id.map_or(true, |c| c == member) => (Some(member), None),
            None if query.creator_id.is_none() => (None, principal.token_id()),
            // Asking for someone else's tokens without the right to: an empty page, not an error.
            _ => return Ok(Data(Paged::empty())),
        }
    };
    let filter = ListFilter {
        id: only_id,
        name_like: like.as_deref(),
        kind: query.kind,
        status: query.status,
        creator_id,
    };
    let mut tx = planned_with_values(&state.db).await?;
    let (total, rows, next) = tokens::list(
        &mut tx,
        principal.organization_id,
        &filter,
        page,
        after.as_ref(),
    )
    .await?;
    tx.commit().await?;
    let items = rows.into_iter().map(TokenRow::view).collect();
    Ok(Data(Paged::new(total, items, next)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NameQuery {
    pub name: String,
}

/// Whether a token of the organization already has this name (case-insensitive).
#[utoipa::path(get, path = "/api/v1/access-tokens/is-name-used", tag = "access-tokens",
    params(NameQuery), responses((status = 200, body = bool)))]
async fn is_name_used(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<NameQuery>,
) -> ApiResult<Data<bool>> {
    let name = valid_name("name", &query.name)?;
    Ok(Data(
        tokens::is_name_used(&state.db, principal.organization_id, &name).await?,
    ))
}

/// One token (never its secret).
#[utoipa::path(get, path = "/api/v1/access-tokens/{id}", tag = "access-tokens",
    params(("id" = Uuid, Path)), responses((status = 200, body = TokenView), (status = 404)))]
async fn get_token(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Data<TokenView>> {
    let token = tokens::get(&state.db, principal.organization_id, id, false)
        .await?
        .filter(|t| can_see(&principal, t))
        .ok_or(ApiError::NotFound)?;
    Ok(Data(token.view()))
}
