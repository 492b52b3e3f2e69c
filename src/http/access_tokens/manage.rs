//! Changing a token: rename, activate or deactivate, rotate its secret, delete it (SPEC §5.2).
//! Every change invalidates the caches before it answers.

use std::sync::Arc;

use axum::extract::State;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use sqlx::{Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

use super::create::CreatedToken;
use super::rules::{authorize_manage, authorize_revoke, authorize_rotate, locked_token, view};
use crate::auth::Principal;
use crate::auth::{commit_invalidating, Invalidation};
use crate::credential::Credential;
use crate::db::tokens::{self, TokenRow, TokenStatus, TokenView};
use crate::db::{audit, iam, identity};
use crate::http::error::{ApiError, ApiResult, Data};
use crate::http::extract::{ApiJson, ApiPath, OptionalJson};
use crate::http::grants::layers_now;
use crate::http::state::AppState;
use crate::http::validate::valid_name;
use crate::policy::Layers;

/// Longest grace period for the old secret after a rotation.
const MAX_ROTATION_GRACE_SECS: i64 = 86_400;

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
pub(super) async fn rename(
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
pub(super) async fn toggle(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Data<TokenView>> {
    change_status(&state, &principal, id, |t| !t.is_active()).await
}

/// Activate (idempotent). A personal token whose owner left → 400 `OwnerIsNotAMember`.
#[utoipa::path(post, path = "/api/v1/access-tokens/{id}/activate", tag = "access-tokens",
    params(("id" = Uuid, Path)), responses((status = 200, body = TokenView)))]
pub(super) async fn activate(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Data<TokenView>> {
    change_status(&state, &principal, id, |_| true).await
}

/// Deactivate (idempotent). A token may always deactivate itself.
#[utoipa::path(post, path = "/api/v1/access-tokens/{id}/deactivate", tag = "access-tokens",
    params(("id" = Uuid, Path)), responses((status = 200, body = TokenView)))]
pub(super) async fn deactivate(
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
pub(super) async fn rotate(
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
        state.auth.hash_key.id(),
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
pub(super) async fn delete(
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
