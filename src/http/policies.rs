//! Policies: the three read-only built-ins and the organization's own.

use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Created, Data, Paged};
use super::extract::{cursor, page, ApiJson, ApiPath, ApiQuery};
use super::grants::{ensure_an_owner_remains, Granter};
use super::members::require_iam;
use super::state::AppState;
use super::validate::{valid_filter, valid_policy_name, valid_text};
use crate::auth::Principal;
use crate::auth::{commit_invalidating, Invalidation};
use crate::db::lists::planned_with_values;
use crate::db::policies::{self, PolicyView};
use crate::db::{audit, iam};
use crate::policy::{validate_statements, Statement};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_policy, update, delete))
        .routes(routes!(replace_statements))
}

/// Descriptions are free text, but bounded.
const MAX_DESCRIPTION_LEN: usize = 1024;

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

/// Built-in policies first, then the organization's own, by name.
#[utoipa::path(get, path = "/api/v1/policies", tag = "policies", params(ListQuery),
    responses((status = 200, body = Paged<PolicyView>)))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Data<Paged<PolicyView>>> {
    let page = page(query.page_index, query.page_size)?;
    let after = cursor(query.after.as_deref(), &page, false)?;
    let like = valid_filter("name", query.name.as_deref())?;
    let org = principal.organization_id;
    let mut tx = planned_with_values(&state.db).await?;
    let total = policies::count(&mut *tx, org, like.as_deref()).await?;
    let items = policies::list(&mut *tx, org, like.as_deref(), page, after.as_ref()).await?;
    tx.commit().await?;
    let next = match items.last() {
        Some(p) if items.len() as i64 == page.size => Some(policies::cursor_after(p)),
        _ => None,
    };
    Ok(Data(Paged::new(total, items, next)))
}

#[utoipa::path(get, path = "/api/v1/policies/{id}", tag = "policies", params(("id" = Uuid, Path)),
    responses((status = 200, body = PolicyView), (status = 404)))]
async fn get_policy(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Data<PolicyView>> {
    policies::get(&state.db, principal.organization_id, id)
        .await?
        .map(Data)
        .ok_or(ApiError::NotFound)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePolicy {
    pub name: String,
    pub description: Option<String>,
    pub statements: Option<Vec<Statement>>,
}

fn valid_description(description: Option<&str>) -> ApiResult<Option<String>> {
    if let Some(d) = description {
        valid_text("description", d, MAX_DESCRIPTION_LEN)?;
    }
    Ok(description.map(|d| d.trim().to_owned()))
}

/// Validates client statements against the catalogue and the limits; fills in missing ids.
/// Returns them and their JSON.
fn valid_statements(
    state: &AppState,
    mut statements: Vec<Statement>,
) -> ApiResult<(Vec<Statement>, serde_json::Value)> {
    validate_statements("statements", &statements, |a| state.catalogue.contains(a))
        .map_err(ApiError::BadRequest)?;
    for statement in &mut statements {
        if statement.id.trim().is_empty() {
            statement.id = Uuid::new_v4().to_string();
        }
    }
    let json = serde_json::to_value(&statements).map_err(|e| ApiError::Internal(e.into()))?;
    Ok((statements, json))
}

/// Create a custom policy. Needs `CanManageIAM`.
#[utoipa::path(post, path = "/api/v1/policies", tag = "policies", request_body = CreatePolicy,
    responses((status = 201, body = PolicyView), (status = 409, description = "NameHasBeenUsed")))]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<CreatePolicy>,
) -> ApiResult<Created<PolicyView>> {
    require_iam(&principal)?;
    let name = valid_policy_name("name", &body.name)?;
    let description = valid_description(body.description.as_deref())?.unwrap_or_default();
    let (given, statements) = valid_statements(&state, body.statements.unwrap_or_default())?;
    let org = principal.organization_id;
    let mut tx = state.db.begin().await?;
    iam::lock_for_write(&mut tx, org).await?;
    // A policy attached to nobody gives nothing yet, but whoever writes one must hold it: so
    // a policy never exists that its author could not have granted.
    Granter::of(&mut tx, &principal).await?.may_give(&given)?;
    let policy = policies::create(&mut *tx, org, &name, &description, &statements).await?;
    audit::record(
        &mut *tx,
        org,
        principal.actor(),
        "policy.created",
        Some(policy.id),
        json!({ "name": name, "statements": statements }),
    )
    .await?;
    commit_invalidating(
        &state.auth.caches,
        tx,
        Invalidation::members(org, Vec::new()),
    )
    .await?;
    Ok(Created(policy))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePolicy {
    pub name: Option<String>,
    pub description: Option<String>,
}

/// 404 for an unknown or foreign id; 400 `CannotModifySysManagedPolicy` for a built-in.
async fn custom_policy(state: &AppState, org: Uuid, id: Uuid) -> ApiResult<PolicyView> {
    let policy = policies::get(&state.db, org, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if policy.is_sys_managed() {
        return Err(ApiError::bad_request("CannotModifySysManagedPolicy"));
    }
    Ok(policy)
}

/// Rename a custom policy or change its description. Needs `CanManageIAM`.
#[utoipa::path(put, path = "/api/v1/policies/{id}", tag = "policies", params(("id" = Uuid, Path)),
    request_body = UpdatePolicy, responses((status = 200, body = PolicyView)))]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdatePolicy>,
) -> ApiResult<Data<PolicyView>> {
    require_iam(&principal)?;
    let org = principal.organization_id;
    let before = custom_policy(&state, org, id).await?;
    let name = body
        .name
        .as_deref()
        .map(|n| valid_policy_name("name", n))
        .transpose()?;
    let description = valid_description(body.description.as_deref())?;
    let mut tx = state.db.begin().await?;
    iam::lock_for_write(&mut tx, org).await?;
    let policy = policies::update(
        &mut *tx,
        org,
        id,
        name.as_deref(),
        description.as_deref(),
        None,
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    audit::record(
        &mut *tx,
        org,
        principal.actor(),
        "policy.updated",
        Some(id),
        json!({
            "name": { "before": before.name, "after": policy.name },
            "description": { "before": before.description, "after": policy.description },
        }),
    )
    .await?;
    commit_invalidating(
        &state.auth.caches,
        tx,
        Invalidation::members(org, Vec::new()),
    )
    .await?;
    Ok(Data(policy))
}

/// Replace a custom policy's statements (FeatBit's shape: the body is the array). Takes effect
/// on the next request of every member and personal token that holds the policy.
#[utoipa::path(put, path = "/api/v1/policies/{id}/statements", tag = "policies",
    params(("id" = Uuid, Path)), request_body = Vec<Statement>,
    responses((status = 200, body = PolicyView)))]
async fn replace_statements(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(statements): ApiJson<Vec<Statement>>,
) -> ApiResult<Data<PolicyView>> {
    require_iam(&principal)?;
    let org = principal.organization_id;
    let before = custom_policy(&state, org, id).await?;
    let (after, statements) = valid_statements(&state, statements)?;
    let mut tx = state.db.begin().await?;
    iam::lock_for_write(&mut tx, org).await?;
    let current = policies::statements(&mut *tx, org, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let granter = Granter::of(&mut tx, &principal).await?;
    granter.may_replace(&current, &after)?;
    if iam::policy_reaches_an_owner(&mut *tx, org, id).await? {
        granter.must_be_owner()?;
    }
    let affected = iam::holders_of_policy(&mut *tx, org, id).await?;
    let policy = policies::update(&mut *tx, org, id, None, None, Some(&statements))
        .await?
        .ok_or(ApiError::NotFound)?;
    ensure_an_owner_remains(&mut tx, org).await?;
    audit::record(
        &mut *tx,
        org,
        principal.actor(),
        "policy.updated",
        Some(id),
        json!({ "statements": { "before": before.statements, "after": statements } }),
    )
    .await?;
    commit_invalidating(&state.auth.caches, tx, Invalidation::members(org, affected)).await?;
    Ok(Data(policy))
}

/// Delete a custom policy; it is detached from every member and group. Needs `CanManageIAM`.
#[utoipa::path(delete, path = "/api/v1/policies/{id}", tag = "policies", params(("id" = Uuid, Path)),
    responses((status = 200, body = bool)))]
async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Data<bool>> {
    require_iam(&principal)?;
    let org = principal.organization_id;
    let before = custom_policy(&state, org, id).await?;
    let mut tx = state.db.begin().await?;
    iam::lock_for_write(&mut tx, org).await?;
    let current = policies::statements(&mut *tx, org, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let granter = Granter::of(&mut tx, &principal).await?;
    granter.may_take(&current)?;
    if iam::policy_reaches_an_owner(&mut *tx, org, id).await? {
        granter.must_be_owner()?;
    }
    let affected = iam::holders_of_policy(&mut *tx, org, id).await?;
    if !policies::delete(&mut *tx, org, id).await? {
        return Err(ApiError::NotFound);
    }
    ensure_an_owner_remains(&mut tx, org).await?;
    audit::record(
        &mut *tx,
        org,
        principal.actor(),
        "policy.deleted",
        Some(id),
        json!({ "name": before.name, "statements": before.statements }),
    )
    .await?;
    commit_invalidating(&state.auth.caches, tx, Invalidation::members(org, affected)).await?;
    Ok(Data(true))
}
