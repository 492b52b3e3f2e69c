//! Creating a token (SPEC §5.1): never more than the creator holds, the secret shown once.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::rules::{exceeds_creator, require, view, ALL_TOKENS, MANAGE_PERSONAL, MANAGE_SERVICE};
use crate::auth::Principal;
use crate::auth::{commit_invalidating, Invalidation};
use crate::credential::{Credential, CredentialKind};
use crate::db::tokens::{self, NewToken, TokenKind, TokenView};
use crate::db::{audit, iam};
use crate::http::error::{ApiError, ApiResult, Created};
use crate::http::extract::ApiJson;
use crate::http::grants::layers_now;
use crate::http::state::AppState;
use crate::http::validate::valid_name;
use crate::policy::{validate_statements, Exceeds, Statement};

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
pub(super) async fn create(
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
            key: state.auth.hash_key.id(),
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
