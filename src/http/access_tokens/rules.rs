//! Who may see and change which token (SPEC §5.2), decided on the server for every request.

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::tokens::{self, TokenRow, TokenView};
use crate::http::error::{ApiError, ApiResult};
use crate::policy::{Exceeds, Layers};

pub(super) const MANAGE_PERSONAL: &str = "ManagePersonalAccessTokens";
pub(super) const MANAGE_SERVICE: &str = "ManageServiceAccessTokens";
pub(super) const LIST: &str = "ListAccessTokens";
pub(super) const ALL_TOKENS: &str = "access-token/*";

fn token_rn(id: Uuid) -> String {
    format!("access-token/{id}")
}

/// Whether the caller may see this token: with `ListAccessTokens`, any; otherwise the tokens of
/// its own member, and a token itself.
pub(super) fn can_see(principal: &Principal, token: &TokenRow) -> bool {
    principal.allows(LIST, ALL_TOKENS)
        || principal.member_id() == Some(token.creator_id)
        || principal.token_id() == Some(token.id)
}

/// SPEC §5.2: who may rename, toggle, activate, deactivate, rotate or delete this token.
pub(super) fn authorize_manage(principal: &Principal, token: &TokenRow) -> ApiResult<()> {
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
pub(super) fn authorize_revoke(principal: &Principal, token: &TokenRow) -> ApiResult<()> {
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
pub(super) fn authorize_rotate(
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
pub(super) fn require(layers: &Layers, action: &str, rn: &str) -> ApiResult<()> {
    if layers.allows(action, rn) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

pub(super) fn exceeds_creator(pair: Exceeds) -> ApiError {
    ApiError::ForbiddenWith(vec![
        "PermissionExceedsCreator".to_owned(),
        pair.to_string(),
    ])
}

/// The token, locked, if it belongs to the caller's organization.
pub(super) async fn locked_token(
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
pub(super) async fn view(
    tx: &mut Transaction<'_, Postgres>,
    org: Uuid,
    id: Uuid,
) -> ApiResult<TokenView> {
    tokens::get(&mut **tx, org, id, false)
        .await?
        .map(TokenRow::view)
        .ok_or(ApiError::NotFound)
}
