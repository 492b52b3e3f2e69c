//! Members of the organization and the policies attached to them.

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
use super::state::AppState;
use super::validate::{valid_filter, valid_name};
use crate::auth::invalidation::commit_invalidating_all;
use crate::auth::Principal;
use crate::auth::{commit_invalidating, Invalidation};
use crate::credential::{canonical_email, PasswordHasher, PasswordPolicyError};
use crate::db::lists::planned_with_values;
use crate::db::members::{self, MemberView};
use crate::db::{audit, iam, identity, policies, Cursor};
use crate::policy::{Statement, DEVELOPER_POLICY_ID, OWNER_POLICY_ID};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(get_member, remove))
        .routes(routes!(permissions))
        .routes(routes!(attach_policy, detach_policy))
}

/// The IAM check every write here makes.
pub fn require_iam(principal: &Principal) -> ApiResult<()> {
    Ok(principal.require("CanManageIAM", "iam/*")?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Part of the name or email.
    pub name: Option<String>,
    pub page_index: Option<i64>,
    pub page_size: Option<i64>,
    /// The previous page's `nextCursor`: the page after it (then `pageIndex` must be 0).
    pub after: Option<String>,
}

/// Members of the organization, by name.
#[utoipa::path(get, path = "/api/v1/members", tag = "members", params(ListQuery),
    responses((status = 200, body = Paged<MemberView>)))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Data<Paged<MemberView>>> {
    let page = page(query.page_index, query.page_size)?;
    let after = cursor(query.after.as_deref(), &page, false)?;
    let like = valid_filter("name", query.name.as_deref())?;
    let org = principal.organization_id;
    let mut tx = planned_with_values(&state.db).await?;
    let total = members::count(&mut *tx, org, like.as_deref()).await?;
    let items = members::list(&mut *tx, org, like.as_deref(), None, page, after.as_ref()).await?;
    tx.commit().await?;
    let next = match items.last() {
        Some(m) if items.len() as i64 == page.size => Some(Cursor {
            id: m.id,
            key: m.name.clone(),
        }),
        _ => None,
    };
    Ok(Data(Paged::new(total, items, next)))
}

/// One member.
#[utoipa::path(get, path = "/api/v1/members/{userId}", tag = "members",
    params(("userId" = Uuid, Path)),
    responses((status = 200, body = MemberView), (status = 404)))]
async fn get_member(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(user_id): ApiPath<Uuid>,
) -> ApiResult<Data<MemberView>> {
    let member = members::get(&state.db, principal.organization_id, user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Data(member))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddMember {
    pub email: String,
    /// Used when the user is new.
    pub name: String,
    /// The initial password of a new account. Required unless the email is already an account
    /// of this organization (a member removed earlier), whose password it never changes.
    pub password: Option<String>,
    /// Policies to attach. Absent: the Developer policy (FeatBit's default). `[]`: none.
    pub policy_ids: Option<Vec<Uuid>>,
}

/// Add a member. Accounts belong to the organization that made them: an email this
/// organization has no account for gets a new one here, whatever other organizations have.
/// Needs `CanManageIAM`, and the policies given must be within the caller's own power.
#[utoipa::path(post, path = "/api/v1/members", tag = "members", request_body = AddMember,
    responses((status = 201, body = MemberView), (status = 409, description = "MemberAlreadyExists")))]
async fn add(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<AddMember>,
) -> ApiResult<Created<MemberView>> {
    require_iam(&principal)?;
    let org = principal.organization_id;
    let email = body.email.trim();
    if email.is_empty() {
        return Err(ApiError::bad_request("email_is_required"));
    }
    // The canonical form is bounded too: login refuses longer ones, so the account could not.
    if email.chars().any(char::is_control)
        || email.len() > 254
        || canonical_email(email).len() > 254
        || !is_plausible_email(email)
    {
        return Err(ApiError::bad_request("email_is_invalid"));
    }
    let name = valid_name("name", &body.name)?;
    let policy_ids = body.policy_ids.unwrap_or_else(|| vec![DEVELOPER_POLICY_ID]);
    if policy_ids.len() > 100 {
        return Err(ApiError::bad_request("policyIds_is_invalid"));
    }
    for id in &policy_ids {
        if policies::get(&state.db, org, *id).await?.is_none() {
            return Err(ApiError::bad_request("policyIds_is_invalid"));
        }
    }

    // Only this organization's own accounts count: one another organization created is never
    // attached (its password was set there), nor is anything about it revealed.
    let existing = identity::account_in_organization(&state.db, org, email).await?;
    // Hash before the transaction: argon2 must not hold a connection.
    let new_hash = match (&existing, body.password) {
        (Some(_), _) => None,
        (None, None) => return Err(ApiError::bad_request("password_is_required")),
        (None, Some(password)) => match PasswordHasher::check_policy(&password) {
            Ok(()) => Some(state.hasher.hash(password).await?),
            Err(PasswordPolicyError::TooShort | PasswordPolicyError::TooLong) => {
                return Err(ApiError::bad_request("password_is_invalid"))
            }
        },
    };

    let mut tx = state.db.begin().await?;
    iam::lock_for_write(&mut tx, org).await?;
    let granter = Granter::of(&mut tx, &principal).await?;
    for id in &policy_ids {
        let statements = policies::statements(&mut *tx, org, *id)
            .await?
            .ok_or_else(|| ApiError::bad_request("policyIds_is_invalid"))?;
        granter.may_give(&statements)?;
    }
    // Looked up again under the lock: a concurrent add of the same new email may have made
    // the account since (then this is that member again: 409, never a unique violation).
    let user_id = match (
        identity::account_in_organization(&mut *tx, org, email).await?,
        new_hash,
    ) {
        (Some(user), _) => user,
        (None, Some(hash)) => identity::create_user(&mut *tx, org, email, &name, &hash).await?,
        (None, None) => return Err(ApiError::bad_request("password_is_required")),
    };
    if !members::add(&mut *tx, org, user_id).await? {
        return Err(ApiError::Conflict("MemberAlreadyExists"));
    }
    for id in &policy_ids {
        iam::attach_member_policy(&mut *tx, org, user_id, *id).await?;
    }
    audit::record(
        &mut *tx,
        org,
        principal.actor(),
        "member.added",
        Some(user_id),
        json!({ "email": email, "policyIds": policy_ids }),
    )
    .await?;
    let member = members::get(&mut *tx, org, user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    commit_invalidating(
        &state.auth.caches,
        tx,
        Invalidation::Membership(org, user_id),
    )
    .await?;
    Ok(Created(member))
}

fn is_plausible_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// Remove a member: their policy and group links go, and every personal token they own here
/// becomes Inactive in the same transaction (SPEC §5.4). Service tokens they made keep working.
#[utoipa::path(delete, path = "/api/v1/members/{userId}", tag = "members",
    params(("userId" = Uuid, Path)),
    responses((status = 200, body = bool), (status = 400, description = "CannotRemoveLastOwner")))]
async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(user_id): ApiPath<Uuid>,
) -> ApiResult<Data<bool>> {
    require_iam(&principal)?;
    let org = principal.organization_id;
    let mut tx = state.db.begin().await?;
    iam::lock_for_write(&mut tx, org).await?;
    let granter = Granter::of(&mut tx, &principal).await?;
    guard_owner(&mut tx, &granter, org, user_id).await?;
    if !members::remove(&mut *tx, org, user_id).await? {
        return Err(ApiError::NotFound);
    }
    ensure_an_owner_remains(&mut tx, org).await?;
    let tokens = members::deactivate_personal_tokens_of(&mut *tx, org, user_id).await?;
    for token_id in &tokens {
        audit::record(
            &mut *tx,
            org,
            principal.actor(),
            "access-token.owner-removed",
            Some(*token_id),
            json!({ "ownerId": user_id, "status": { "before": "Active", "after": "Inactive" } }),
        )
        .await?;
    }
    audit::record(
        &mut *tx,
        org,
        principal.actor(),
        "member.removed",
        Some(user_id),
        json!({ "deactivatedTokens": tokens.len() }),
    )
    .await?;
    let mut changes = vec![Invalidation::Membership(org, user_id)];
    changes.extend(tokens.iter().copied().map(Invalidation::Token));
    commit_invalidating_all(&state.auth.caches, tx, changes).await?;
    Ok(Data(true))
}

/// A member's effective live statements (all their policies, direct and through groups).
/// The member themself, or `CanManageIAM`.
#[utoipa::path(get, path = "/api/v1/members/{userId}/permissions", tag = "members",
    params(("userId" = Uuid, Path)),
    responses((status = 200, body = Vec<Statement>)))]
async fn permissions(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(user_id): ApiPath<Uuid>,
) -> ApiResult<Data<Vec<Statement>>> {
    let org = principal.organization_id;
    // A service token is no member: its creator's permissions are not its own to read.
    if principal.member_id() != Some(user_id) {
        require_iam(&principal)?;
    }
    if !identity::is_member(&state.db, org, user_id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(Data(iam::live_statements(&state.db, org, user_id).await?))
}

/// Attach a policy to a member (idempotent).
#[utoipa::path(put, path = "/api/v1/members/{userId}/policies/{policyId}", tag = "members",
    params(("userId" = Uuid, Path), ("policyId" = Uuid, Path)),
    responses((status = 200, body = bool)))]
async fn attach_policy(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((user_id, policy_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Data<bool>> {
    require_iam(&principal)?;
    let org = principal.organization_id;
    let mut tx = state.db.begin().await?;
    iam::lock_for_write(&mut tx, org).await?;
    let statements = policies::statements(&mut *tx, org, policy_id).await?;
    let Some(statements) = statements else {
        return Err(ApiError::NotFound);
    };
    if !identity::is_member(&mut *tx, org, user_id).await? {
        return Err(ApiError::NotFound);
    }
    let granter = Granter::of(&mut tx, &principal).await?;
    granter.may_give(&statements)?;
    guard_owner(&mut tx, &granter, org, user_id).await?;
    if iam::attach_member_policy(&mut *tx, org, user_id, policy_id).await? {
        audit::record(
            &mut *tx,
            org,
            principal.actor(),
            "member.policy-attached",
            Some(user_id),
            json!({ "policyId": policy_id }),
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

/// Detach a policy from a member (idempotent). The last Owner keeps the Owner policy.
#[utoipa::path(delete, path = "/api/v1/members/{userId}/policies/{policyId}", tag = "members",
    params(("userId" = Uuid, Path), ("policyId" = Uuid, Path)),
    responses((status = 200, body = bool)))]
async fn detach_policy(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((user_id, policy_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Data<bool>> {
    require_iam(&principal)?;
    let org = principal.organization_id;
    let mut tx = state.db.begin().await?;
    iam::lock_for_write(&mut tx, org).await?;
    let statements = policies::statements(&mut *tx, org, policy_id).await?;
    let Some(statements) = statements else {
        return Err(ApiError::NotFound);
    };
    if !identity::is_member(&mut *tx, org, user_id).await? {
        return Err(ApiError::NotFound);
    }
    let granter = Granter::of(&mut tx, &principal).await?;
    granter.may_take(&statements)?;
    if policy_id == OWNER_POLICY_ID {
        granter.must_be_owner()?;
    }
    guard_owner(&mut tx, &granter, org, user_id).await?;
    if iam::detach_member_policy(&mut *tx, org, user_id, policy_id).await? {
        audit::record(
            &mut *tx,
            org,
            principal.actor(),
            "member.policy-detached",
            Some(user_id),
            json!({ "policyId": policy_id }),
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
