//! Groups: members share the policies attached to the group.

use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Created, Data, Paged};
use super::extract::{cursor, page, ApiJson, ApiPath, ApiQuery};
use super::grants::{ensure_an_owner_remains, guard_owner, Granter};
use super::members::require_iam;
use super::state::AppState;
use super::validate::{valid_filter, valid_name, valid_text};
use crate::auth::Principal;
use crate::auth::{commit_invalidating, Invalidation};
use crate::db::groups::{self, GroupView};
use crate::db::lists::planned_with_values;
use crate::db::{audit, iam, identity, policies, Cursor};
use crate::policy::OWNER_POLICY_ID;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_group, delete))
        .routes(routes!(add_member, remove_member))
        .routes(routes!(attach_policy, detach_policy))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub name: Option<String>,
    pub page_index: Option<i64>,
    pub page_size: Option<i64>,
    /// The previous page's `nextCursor`: the page after it (then `pageIndex` must be 0).
    pub after: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/groups", tag = "groups", params(ListQuery),
    responses((status = 200, body = Paged<GroupView>)))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Data<Paged<GroupView>>> {
    let page = page(query.page_index, query.page_size)?;
    let after = cursor(query.after.as_deref(), &page, false)?;
    let like = valid_filter("name", query.name.as_deref())?;
    let org = principal.organization_id;
    let mut tx = planned_with_values(&state.db).await?;
    let total = groups::count(&mut *tx, org, like.as_deref()).await?;
    let items = groups::list(&mut *tx, org, like.as_deref(), None, page, after.as_ref()).await?;
    tx.commit().await?;
    let next = match items.last() {
        Some(g) if items.len() as i64 == page.size => Some(Cursor {
            id: g.id,
            key: g.name.clone(),
        }),
        _ => None,
    };
    Ok(Data(Paged::new(total, items, next)))
}

#[utoipa::path(get, path = "/api/v1/groups/{id}", tag = "groups", params(("id" = Uuid, Path)),
    responses((status = 200, body = GroupView), (status = 404)))]
async fn get_group(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Data<GroupView>> {
    groups::get(&state.db, principal.organization_id, id)
        .await?
        .map(Data)
        .ok_or(ApiError::NotFound)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGroup {
    pub name: String,
    pub description: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/groups", tag = "groups", request_body = CreateGroup,
    responses((status = 201, body = GroupView), (status = 409, description = "NameHasBeenUsed")))]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateGroup>,
) -> ApiResult<Created<GroupView>> {
    require_iam(&principal)?;
    let name = valid_name("name", &body.name)?;
    let description = body.description.unwrap_or_default();
    valid_text("description", &description, 1024)?;
    let org = principal.organization_id;
    let mut tx = state.db.begin().await?;
    iam::lock_for_write(&mut tx, org).await?;
    let id = groups::create(&mut *tx, org, &name, description.trim()).await?;
    audit::record(
        &mut *tx,
        org,
        principal.actor(),
        "group.created",
        Some(id),
        json!({ "name": name }),
    )
    .await?;
    let group = groups::get(&mut *tx, org, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    commit_invalidating(
        &state.auth.caches,
        tx,
        Invalidation::members(org, Vec::new()),
    )
    .await?;
    Ok(Created(group))
}

#[utoipa::path(delete, path = "/api/v1/groups/{id}", tag = "groups", params(("id" = Uuid, Path)),
    responses((status = 200, body = bool)))]
async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Data<bool>> {
    require_iam(&principal)?;
    let org = principal.organization_id;
    let mut tx = state.db.begin().await?;
    iam::lock_for_write(&mut tx, org).await?;
    if !groups::lock(&mut tx, org, id).await? {
        return Err(ApiError::NotFound);
    }
    // Its members lose its policies: a lifted deny gives back what it denied.
    let granter = Granter::of(&mut tx, &principal).await?;
    granter.may_take(&groups::statements(&mut *tx, org, id).await?)?;
    if iam::group_has_an_owner(&mut *tx, org, id).await? {
        granter.must_be_owner()?;
    }
    let affected = iam::group_members(&mut *tx, org, id).await?;
    if !groups::delete(&mut *tx, org, id).await? {
        return Err(ApiError::NotFound);
    }
    audit::record(
        &mut *tx,
        org,
        principal.actor(),
        "group.deleted",
        Some(id),
        json!({}),
    )
    .await?;
    ensure_an_owner_remains(&mut tx, org).await?;
    commit_invalidating(&state.auth.caches, tx, Invalidation::members(org, affected)).await?;
    Ok(Data(true))
}

/// Add a member of the organization to the group (idempotent).
#[utoipa::path(put, path = "/api/v1/groups/{id}/members/{userId}", tag = "groups",
    params(("id" = Uuid, Path), ("userId" = Uuid, Path)),
    responses((status = 200, body = bool)))]
async fn add_member(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Data<bool>> {
    require_iam(&principal)?;
    let org = principal.organization_id;
    let mut tx = state.db.begin().await?;
    iam::lock_for_write(&mut tx, org).await?;
    if !groups::lock(&mut tx, org, id).await?
        || !identity::is_member(&mut *tx, org, user_id).await?
    {
        return Err(ApiError::NotFound);
    }
    let granter = Granter::of(&mut tx, &principal).await?;
    granter.may_give(&groups::statements(&mut *tx, org, id).await?)?;
    guard_owner(&mut tx, &granter, org, user_id).await?;
    if iam::add_group_member(&mut *tx, org, id, user_id).await? {
        audit::record(
            &mut *tx,
            org,
            principal.actor(),
            "group.member-added",
            Some(id),
            json!({ "userId": user_id }),
        )
        .await?;
    }
    ensure_an_owner_remains(&mut tx, org).await?;
    commit_invalidating(
        &state.auth.caches,
        tx,
        Invalidation::members(org, vec![user_id]),
    )
    .await?;
    Ok(Data(true))
}

#[utoipa::path(delete, path = "/api/v1/groups/{id}/members/{userId}", tag = "groups",
    params(("id" = Uuid, Path), ("userId" = Uuid, Path)),
    responses((status = 200, body = bool)))]
async fn remove_member(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Data<bool>> {
    require_iam(&principal)?;
    let org = principal.organization_id;
    let mut tx = state.db.begin().await?;
    iam::lock_for_write(&mut tx, org).await?;
    // An id of another organization (or of nobody) is not found, as everywhere.
    if !groups::lock(&mut tx, org, id).await?
        || !identity::is_member(&mut *tx, org, user_id).await?
    {
        return Err(ApiError::NotFound);
    }
    let granter = Granter::of(&mut tx, &principal).await?;
    granter.may_take(&groups::statements(&mut *tx, org, id).await?)?;
    guard_owner(&mut tx, &granter, org, user_id).await?;
    if iam::remove_group_member(&mut *tx, id, user_id).await? {
        audit::record(
            &mut *tx,
            org,
            principal.actor(),
            "group.member-removed",
            Some(id),
            json!({ "userId": user_id }),
        )
        .await?;
    }
    ensure_an_owner_remains(&mut tx, org).await?;
    commit_invalidating(
        &state.auth.caches,
        tx,
        Invalidation::members(org, vec![user_id]),
    )
    .await?;
    Ok(Data(true))
}

#[utoipa::path(put, path = "/api/v1/groups/{id}/policies/{policyId}", tag = "groups",
    params(("id" = Uuid, Path), ("policyId" = Uuid, Path)),
    responses((status = 200, body = bool)))]
async fn attach_policy(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, policy_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Data<bool>> {
    require_iam(&principal)?;
    let org = principal.organization_id;
    let mut tx = state.db.begin().await?;
    iam::lock_for_write(&mut tx, org).await?;
    let statements = policies::statements(&mut *tx, org, policy_id).await?;
    let (true, Some(statements)) = (groups::lock(&mut tx, org, id).await?, statements) else {
        return Err(ApiError::NotFound);
    };
    let granter = Granter::of(&mut tx, &principal).await?;
    granter.may_give(&statements)?;
    if iam::group_has_an_owner(&mut *tx, org, id).await? {
        granter.must_be_owner()?;
    }
    let affected = iam::group_members(&mut *tx, org, id).await?;
    if iam::attach_group_policy(&mut *tx, id, policy_id).await? {
        audit::record(
            &mut *tx,
            org,
            principal.actor(),
            "group.policy-attached",
            Some(id),
            json!({ "policyId": policy_id }),
        )
        .await?;
    }
    ensure_an_owner_remains(&mut tx, org).await?;
    commit_invalidating(&state.auth.caches, tx, Invalidation::members(org, affected)).await?;
    Ok(Data(true))
}

#[utoipa::path(delete, path = "/api/v1/groups/{id}/policies/{policyId}", tag = "groups",
    params(("id" = Uuid, Path), ("policyId" = Uuid, Path)),
    responses((status = 200, body = bool)))]
async fn detach_policy(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, policy_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Data<bool>> {
    require_iam(&principal)?;
    let org = principal.organization_id;
    let mut tx = state.db.begin().await?;
    iam::lock_for_write(&mut tx, org).await?;
    let statements = policies::statements(&mut *tx, org, policy_id).await?;
    let (true, Some(statements)) = (groups::lock(&mut tx, org, id).await?, statements) else {
        return Err(ApiError::NotFound);
    };
    let granter = Granter::of(&mut tx, &principal).await?;
    granter.may_take(&statements)?;
    if policy_id == OWNER_POLICY_ID || iam::group_has_an_owner(&mut *tx, org, id).await? {
        granter.must_be_owner()?;
    }
    let affected = iam::group_members(&mut *tx, org, id).await?;
    if iam::detach_group_policy(&mut *tx, id, policy_id).await? {
        audit::record(
            &mut *tx,
            org,
            principal.actor(),
            "group.policy-detached",
            Some(id),
            json!({ "policyId": policy_id }),
        )
        .await?;
    }
    ensure_an_owner_remains(&mut tx, org).await?;
    commit_invalidating(&state.auth.caches, tx, Invalidation::members(org, affected)).await?;
    Ok(Data(true))
}
