//! API access tokens: create, list, read, rename, toggle/activate/deactivate, rotate, delete
//! (SPEC §5). Every query is scoped by organization; every rule is checked here, on the server.

use std::sync::Arc;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Postgres, Transaction};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Created, Data, Paged};
use super::extract::{page, ApiJson, ApiPath, ApiQuery, OptionalJson};
use super::grants::layers_now;
use super::state::AppState;
use super::validate::{valid_filter, valid_name};
use crate::auth::Principal;
use crate::auth::{commit_invalidating, Invalidation};
use crate::credential::{Credential, CredentialKind};
use crate::db::tokens::{self, ListFilter, NewToken, TokenKind, TokenRow, TokenStatus, TokenView};
use crate::db::{audit, iam, identity};
use crate::policy::{validate_statements, Exceeds, Layers, Statement};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(is_name_used))
        .routes(routes!(get_token, rename, delete))
        .routes(routes!(toggle))
        .routes(routes!(activate))
        .routes(routes!(deactivate))
        .routes(routes!(rotate))
}

const MANAGE_PERSONAL: &str = "ManagePersonalAccessTokens";
const MANAGE_SERVICE: &str = "ManageServiceAccessTokens";
const LIST: &str = "ListAccessTokens";
const ALL_TOKENS: &str = "access-token/*";
/// Longest grace period for the old secret after a rotation.
const MAX_ROTATION_GRACE_SECS: i64 = 86_400;

fn token_rn(id: Uuid) -> String {
    format!("access-token/{id}")
}

/// Whether the caller may see this token: with `ListAccessTokens`, any; otherwise the tokens of
/// its own member, and a token itself.
fn can_see(principal: &Principal, token: &TokenRow) -> bool {
    principal.allows(LIST, ALL_TOKENS)
        || principal.member_id() == Some(token.creator_id)
        || principal.token_id() == Some(token.id)
}

/// SPEC §5.2: who may rename, toggle, activate, deactivate, rotate or delete this token.
fn authorize_manage(principal: &Principal, token: &TokenRow) -> ApiResult<()> {
    let rn = token_rn(token.id);
    if token.is_personal() {
        principal.require(MANAGE_PERSONAL, &rn)?;
        if principal.member_id() != Some(token.creator_id) {
            principal.require("CanManageIAM", "iam/*")?;
        }
        Ok(())
    } else {
        Ok(principal.require(MANAGE_SERVICE, &rn)?)
    }
}

/// Self-revocation after a leak: a token may always deactivate or delete itself, also with the
/// previous secret of a rotation while its grace lasts.
fn authorize_revoke(principal: &Principal, token: &TokenRow) -> ApiResult<()> {
    if principal.token_id() == Some(token.id) {
        Ok(())
    } else {
        authorize_manage(principal, token)
    }
}

/// Rotation hands out a secret, so it is a read of the token (SPEC §5.2): besides the manage
/// rule, only the token's own member (never another member's personal token, whatever the
/// caller's rights), never with a previous secret, and only a caller who can already do
/// everything the token can (`Layers::covers_layers`).
fn authorize_rotate(
    caller: &Layers,
    principal: &Principal,
    token: &TokenRow,
    target: &Layers,
) -> ApiResult<()> {
    if principal.previous_secret {
        return Err(ApiError::Forbidden);
    }
    if principal.token_id() != Some(token.id) {
        authorize_manage(principal, token)?;
    }
    if token.is_personal() && principal.member_id() != Some(token.creator_id) {
        return Err(ApiError::Forbidden);
    }
    caller.covers_layers(target).map_err(exceeds_creator)
}

/// `Principal::require` over layers read again inside a transaction.
fn require(layers: &Layers, action: &str, rn: &str) -> ApiResult<()> {
    if layers.allows(action, rn) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

fn exceeds_creator(pair: Exceeds) -> ApiError {
    ApiError::ForbiddenWith(vec![
        "PermissionExceedsCreator".to_owned(),
        pair.to_string(),
    ])
}

/// The token, locked, if it belongs to the caller's organization.
async fn locked_token(
    tx: &mut Transaction<'_, Postgres>,
    principal: &Principal,
    id: Uuid,
) -> ApiResult<TokenRow> {
    tokens::get(&mut **tx, principal.organization_id, id, true)
        .await?
        .ok_or(ApiError::NotFound)
}

/// The token as this transaction leaves it: read before commit, so a concurrent delete cannot
/// turn a write that happened into a 404.
async fn view(tx: &mut Transaction<'_, Postgres>, org: Uuid, id: Uuid) -> ApiResult<TokenView> {
    tokens::get(&mut **tx, org, id, false)
        .await?
        .map(TokenRow::view)
        .ok_or(ApiError::NotFound)
}

// ---- list and read ----

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
}

/// Tokens of the organization, newest first. Without `ListAccessTokens`, only the caller's own.
#[utoipa::path(get, path = "/api/v1/access-tokens", tag = "access-tokens", params(ListQuery),
    responses((status = 200, body = Paged<TokenView>)))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Data<Paged<TokenView>>> {
    let page = page(query.page_index, query.page_size)?;
    let like = valid_filter("name", query.name.as_deref())?;
    // Without `ListAccessTokens`: a member's own tokens; a service token, itself only.
    let (creator_id, only_id) = if principal.allows(LIST, ALL_TOKENS) {
        (query.creator_id, None)
    } else {
        match principal.member_id() {
            Some(member) if query.creator_id.map_or(true, |c| c == member) => (Some(member), None),
            None if query.creator_id.is_none() => (None, principal.token_id()),
            // Asking for someone else's tokens without the right to: an empty page, not an error.
            _ => {
                return Ok(Data(Paged {
                    total_count: 0,
                    items: Vec::new(),
                }))
            }
        }
    };
    let filter = ListFilter {
        id: only_id,
        name_like: like.as_deref(),
        kind: query.kind,
        status: query.status,
        creator_id,
    };
    let (total_count, rows) =
        tokens::list(&state.db, principal.organization_id, &filter, page).await?;
    Ok(Data(Paged {
        total_count,
        items: rows.into_iter().map(TokenRow::view).collect(),
    }))
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

// ---- create ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: TokenKind,
    /// The token's scope. Optional for personal tokens (absent: all of the owner's live
    /// permissions); required and non-empty for service tokens.
    pub permissions: Option<Vec<Statement>>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    #[serde(flatten)]
    pub view: TokenView,
    /// The secret. Shown in this response only: it cannot be read again.
    pub token: String,
}

/// Create a token; the secret is in this response and never again.
#[utoipa::path(post, path = "/api/v1/access-tokens", tag = "access-tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken),
              (status = 403, description = "Forbidden, or PermissionExceedsCreator naming the first offending pair"),
              (status = 409, description = "NameHasBeenUsed")))]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<Created<CreatedToken>> {
    let name = valid_name("name", &body.name)?;
    let scope = match (body.kind, body.permissions) {
        (TokenKind::Service, None) => return Err(ApiError::bad_request("permissions_is_required")),
        (TokenKind::Service, Some(p)) if p.is_empty() => {
            return Err(ApiError::bad_request("permissions_is_required"))
        }
        (_, permissions) => permissions,
    };
    if let Some(scope) = &scope {
        validate_statements("permissions", scope, |a| state.catalogue.contains(a))
            .map_err(ApiError::BadRequest)?;
    }
    let now = Utc::now();
    if body.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::bad_request("expiresAt_is_invalid"));
    }
    let expires_at = match state.max_token_lifetime {
        None => body.expires_at,
        Some(max) => {
            // A maximum past the calendar's end is no maximum (`serve` refuses one at start).
            let latest = chrono::Duration::from_std(max)
                .ok()
                .and_then(|max| now.checked_add_signed(max))
                .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
            match body.expires_at {
                Some(at) if at > latest => {
                    return Err(ApiError::bad_request("expiresAt_is_invalid"))
                }
                Some(at) => Some(at),
                None => Some(latest),
            }
        }
    };
    let org = principal.organization_id;
    if principal.previous_secret {
        // A secret on its way out never mints a new one.
        return Err(ApiError::Forbidden);
    }

    let mut tx = state.db.begin().await?;
    iam::lock_for_read(&mut tx, org).await?;
    let layers = layers_now(&mut tx, &principal).await?;
    let (credential_kind, frozen) = match body.kind {
        TokenKind::Personal => {
            if principal.member_id().is_none() {
                // A service token belongs to no member, so it cannot act for one.
                return Err(ApiError::Forbidden);
            }
            require(&layers, MANAGE_PERSONAL, ALL_TOKENS)?;
            (
                CredentialKind::PersonalToken,
                layers.frozen_for_personal_token(),
            )
        }
        TokenKind::Service => {
            require(&layers, MANAGE_SERVICE, ALL_TOKENS)?;
            (
                CredentialKind::ServiceToken,
                layers.frozen_for_service_token(),
            )
        }
    };
    match &scope {
        Some(scope) => layers.covers(scope).map_err(exceeds_creator)?,
        // An unscoped token made by a scoped or frozen token would look unbounded but is not:
        // refuse it rather than mislead (its permissions must be spelt out).
        None if layers.scope.is_some() || !layers.frozen.is_empty() => {
            return Err(exceeds_creator(Exceeds {
                action: "*".to_owned(),
                resource: "*".to_owned(),
            }))
        }
        None => {}
    }

    let scope_json = scope
        .map(|mut statements| {
            for s in &mut statements {
                if s.id.trim().is_empty() {
                    s.id = Uuid::new_v4().to_string();
                }
            }
            serde_json::to_value(statements)
        })
        .transpose()
        .map_err(|e| ApiError::Internal(e.into()))?;
    let ceiling = serde_json::to_value(frozen).map_err(|e| ApiError::Internal(e.into()))?;
    let credential = Credential::generate(credential_kind);
    let id = tokens::insert(
        &mut tx,
        NewToken {
            organization_id: org,
            name: &name,
            kind: body.kind,
            creator_id: principal.accountable_user_id(),
            created_by_token_id: principal.token_id(),
            digest: &state.auth.hash_key.digest(&credential),
            hint: &credential.hint(),
            scope: scope_json.as_ref(),
            ceiling: &ceiling,
            expires_at,
        },
    )
    .await?;
    audit::record(
        &mut *tx,
        org,
        principal.actor(),
        "access-token.created",
        Some(id),
        json!({ "name": name, "type": body.kind, "permissions": scope_json, "expiresAt": expires_at }),
    )
    .await?;
    let view = view(&mut tx, org, id).await?;
    commit_invalidating(&state.auth.caches, tx, Invalidation::Token(id)).await?;
    Ok(Created(CreatedToken {
        view,
        token: credential.expose().to_owned(),
    }))
}

// ---- manage ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenameToken {
    pub name: String,
    /// Not allowed: a token's permissions never change after creation.
    #[schema(value_type = Option<Object>)]
    pub permissions: Option<serde_json::Value>,
    /// Not allowed: a token's type never changes.
    #[serde(rename = "type")]
    #[schema(value_type = Option<String>)]
    pub kind: Option<serde_json::Value>,
}

/// Rename a token. Its permissions and type are immutable (`PermissionsAreImmutable`).
#[utoipa::path(put, path = "/api/v1/access-tokens/{id}", tag = "access-tokens",
    params(("id" = Uuid, Path)), request_body = RenameToken,
    responses((status = 200, body = TokenView), (status = 409, description = "NameHasBeenUsed")))]
async fn rename(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RenameToken>,
) -> ApiResult<Data<TokenView>> {
    if body.permissions.is_some() || body.kind.is_some() {
        return Err(ApiError::bad_request("PermissionsAreImmutable"));
    }
    let name = valid_name("name", &body.name)?;
    let org = principal.organization_id;
    let mut tx = state.db.begin().await?;
    iam::lock_for_read(&mut tx, org).await?;
    let token = locked_token(&mut tx, &principal, id).await?;
    authorize_manage(&principal, &token)?;
    if token.name != name {
        tokens::rename(&mut *tx, org, id, &name).await?;
        audit::record(
            &mut *tx,
            org,
            principal.actor(),
            "access-token.renamed",
            Some(id),
            json!({ "name": { "before": token.name, "after": name } }),
        )
        .await?;
    }
    let view = view(&mut tx, org, id).await?;
    commit_invalidating(&state.auth.caches, tx, Invalidation::Token(id)).await?;
    Ok(Data(view))
}

/// Sets the status inside the transaction, with the audit event; no-op if already there.
async fn set_status(
    tx: &mut Transaction<'_, Postgres>,
    principal: &Principal,
    token: &TokenRow,
    active: bool,
) -> ApiResult<()> {
    if token.is_active() == active {
        return Ok(());
    }
    let org = principal.organization_id;
    if active
        && token.is_personal()
        && !identity::is_member(&mut **tx, org, token.creator_id).await?
    {
        return Err(ApiError::bad_request("OwnerIsNotAMember"));
    }
    let (status, action) = if active {
        (TokenStatus::Active, "access-token.activated")
    } else {
        (TokenStatus::Inactive, "access-token.deactivated")
    };
    tokens::set_status(&mut **tx, org, token.id, status).await?;
    audit::record(
        &mut **tx,
        org,
        principal.actor(),
        action,
        Some(token.id),
        json!({ "status": { "before": token.status, "after": status } }),
    )
    .await?;
    Ok(())
}

async fn change_status(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    wanted: impl FnOnce(&TokenRow) -> bool,
) -> ApiResult<Data<TokenView>> {
    let mut tx = state.db.begin().await?;
    // The IAM lock first (as every token write takes it): member removal holds it exclusively,
    // so an activation can neither slip between its membership check and the removal nor
    // leave a removed member's token Active.
    iam::lock_for_read(&mut tx, principal.organization_id).await?;
    let token = locked_token(&mut tx, principal, id).await?;
    let active = wanted(&token);
    if active {
        authorize_manage(principal, &token)?;
    } else {
        authorize_revoke(principal, &token)?;
    }
    set_status(&mut tx, principal, &token, active).await?;
    let view = view(&mut tx, principal.organization_id, id).await?;
    commit_invalidating(&state.auth.caches, tx, Invalidation::Token(id)).await?;
    Ok(Data(view))
}

/// FeatBit's toggle: Active ↔ Inactive. Returns the new view.
#[utoipa::path(put, path = "/api/v1/access-tokens/{id}/toggle", tag = "access-tokens",
    params(("id" = Uuid, Path)), responses((status = 200, body = TokenView)))]
async fn toggle(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Data<TokenView>> {
    change_status(&state, &principal, id, |t| !t.is_active()).await
}

/// Activate (idempotent). A personal token whose owner left → 400 `OwnerIsNotAMember`.
#[utoipa::path(post, path = "/api/v1/access-tokens/{id}/activate", tag = "access-tokens",
    params(("id" = Uuid, Path)), responses((status = 200, body = TokenView)))]
async fn activate(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Data<TokenView>> {
    change_status(&state, &principal, id, |_| true).await
}

/// Deactivate (idempotent). A token may always deactivate itself.
#[utoipa::path(post, path = "/api/v1/access-tokens/{id}/deactivate", tag = "access-tokens",
    params(("id" = Uuid, Path)), responses((status = 200, body = TokenView)))]
async fn deactivate(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Data<TokenView>> {
    change_status(&state, &principal, id, |_| false).await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateToken {
    /// How long the old secret keeps working, 0..=86400 seconds (default 0: dead now).
    pub old_token_expires_in_seconds: Option<i64>,
}

/// A new secret, shown once. The old one works until its grace period ends.
#[utoipa::path(post, path = "/api/v1/access-tokens/{id}/rotate", tag = "access-tokens",
    params(("id" = Uuid, Path)), request_body(content = Option<RotateToken>),
    responses((status = 200, body = CreatedToken)))]
async fn rotate(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    OptionalJson(body): OptionalJson<RotateToken>,
) -> ApiResult<Data<CreatedToken>> {
    let grace = body
        .unwrap_or_default()
        .old_token_expires_in_seconds
        .unwrap_or(0);
    if !(0..=MAX_ROTATION_GRACE_SECS).contains(&grace) {
        return Err(ApiError::bad_request("oldTokenExpiresInSeconds_is_invalid"));
    }
    let org = principal.organization_id;
    let mut tx = state.db.begin().await?;
    iam::lock_for_read(&mut tx, org).await?;
    let caller = layers_now(&mut tx, &principal).await?;
    let token = locked_token(&mut tx, &principal, id).await?;
    let (frozen, scope) = tokens::frozen_layers(&mut *tx, org, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let target = Layers {
        // Only the token's own member may rotate a personal token, so its live layer is theirs.
        live: token.is_personal().then(|| caller.live.clone()).flatten(),
        frozen: frozen.into_iter().map(Arc::new).collect(),
        scope: scope.map(Arc::new),
    };
    authorize_rotate(&caller, &principal, &token, &target)?;
    let credential = Credential::generate(token.kind.credential());
    let old_expires_at = (grace > 0).then(|| Utc::now() + chrono::Duration::seconds(grace));
    tokens::rotate(
        &mut *tx,
        org,
        id,
        &state.auth.hash_key.digest(&credential),
        &credential.hint(),
        old_expires_at,
    )
    .await?;
    audit::record(
        &mut *tx,
        org,
        principal.actor(),
        "access-token.rotated",
        Some(id),
        json!({ "oldTokenExpiresAt": old_expires_at, "hint": { "before": token.hint, "after": credential.hint() } }),
    )
    .await?;
    let view = view(&mut tx, org, id).await?;
    commit_invalidating(&state.auth.caches, tx, Invalidation::Token(id)).await?;
    Ok(Data(CreatedToken {
        view,
        token: credential.expose().to_owned(),
    }))
}

/// Delete a token for good; its credential is dead before this response is sent.
#[utoipa::path(delete, path = "/api/v1/access-tokens/{id}", tag = "access-tokens",
    params(("id" = Uuid, Path)), responses((status = 200, body = bool)))]
async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Data<bool>> {
    let org = principal.organization_id;
    let mut tx = state.db.begin().await?;
    iam::lock_for_read(&mut tx, org).await?;
    let token = locked_token(&mut tx, &principal, id).await?;
    authorize_revoke(&principal, &token)?;
    tokens::delete(&mut *tx, org, id).await?;
    audit::record(
        &mut *tx,
        org,
        principal.actor(),
        "access-token.deleted",
        Some(id),
        json!({ "name": token.name, "type": token.kind, "hint": token.hint }),
    )
    .await?;
    commit_invalidating(&state.auth.caches, tx, Invalidation::Token(id)).await?;
    Ok(Data(true))
}
