//! RFC 7662 token introspection for gateways that speak it (Kong, APISIX, oauth2-proxy-style):
//! a service token holding `IntrospectAccessTokens` asks about another token. The answer is
//! RFC 7662's JSON, not the envelope; anything but an active token of the caller's own
//! organization is exactly `{"active":false}`.

use std::collections::BTreeSet;

use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{json_response, ApiError, ApiResult};
use super::extract::read_body;
use super::state::AppState;
use crate::auth::{presented_token, Principal, PrincipalKind, Refusal};
use crate::db::tokens::{self, TokenKind};

/// The action a caller needs, on `access-token/*`.
pub const INTROSPECT_ACTION: &str = "IntrospectAccessTokens";
const INTROSPECT_RESOURCE: &str = "access-token/*";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(introspect))
}

/// The form RFC 7662 §2.1 posts.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IntrospectionRequest {
    /// The token asked about.
    pub token: Option<String>,
    /// Ignored: every token tokengate issues is an access token.
    #[allow(dead_code)]
    pub token_type_hint: Option<String>,
}

/// RFC 7662 §2.2. Every field but `active` is absent for an inactive token.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Introspection {
    pub active: bool,
    /// `Bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// `personal` or `service`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub kind: Option<&'static str>,
    /// The member a personal token acts for; a service token's own id (it acts for no member).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<Uuid>,
    /// Expiry, seconds since the epoch; absent for a token that never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Creation, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The token's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<Uuid>,
    /// The actions the token's own scope allows, space-separated; absent for an unscoped
    /// personal token (it has its member's permissions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

const INACTIVE_BODY: &str = r#"{"active":false}"#;

fn is_form(request: &Request) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Whether an RFC 7662 token is active, and what it is.
#[utoipa::path(post, path = "/api/v1/auth/introspect", tag = "auth", operation_id = "introspect",
    description = "RFC 7662 token introspection. The caller is a service token holding \
                   `IntrospectAccessTokens` on `access-token/*`. The answer is RFC 7662's JSON, \
                   not the envelope: exactly `{\"active\":false}` for an unknown, inactive, \
                   expired or deleted token, or one of another organization.",
    request_body(content = IntrospectionRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = Introspection, description = "RFC 7662 answer"),
              (status = 400, description = "token_is_required"),
              (status = 401, description = "Unauthorized: the caller's credential"),
              (status = 403, description = "Forbidden: not a service token holding IntrospectAccessTokens"),
              (status = 413, description = "PayloadTooLarge"),
              (status = 415, description = "UnsupportedMediaType: not a form"),
              (status = 429, description = "TooManyRequests"),
              (status = 503, description = "ServiceUnavailable")))]
async fn introspect(
    State(state): State<AppState>,
    caller: Principal,
    request: Request,
) -> ApiResult<Response> {
    if !matches!(caller.kind, PrincipalKind::ServiceToken { .. }) {
        return Err(ApiError::Forbidden);
    }
    caller.require(INTROSPECT_ACTION, INTROSPECT_RESOURCE)?;
    if !is_form(&request) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = read_body(request, &()).await?;
    let form: IntrospectionRequest = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ApiError::bad_request("body_is_invalid"))?;
    let Some(token) = form.token.filter(|t| !t.trim().is_empty()) else {
        return Err(ApiError::bad_request("token_is_required"));
    };
    let inactive = || Ok(json_response(StatusCode::OK, INACTIVE_BODY));
    let subject = match presented_token(&state.auth, &token).await {
        Ok(subject) => subject,
        Err(Refusal::Database(e)) => return Err(e.into()),
        Err(_) => return inactive(),
    };
    let Some(token_id) = subject.token_id() else {
        return inactive();
    };
    if subject.organization_id != caller.organization_id {
        return inactive();
    }
    let Some(row) = tokens::get(&state.db, subject.organization_id, token_id, false).await? else {
        return inactive();
    };
    let personal = row.kind == TokenKind::Personal;
    let answer = Introspection {
        active: true,
        token_type: Some("Bearer"),
        kind: Some(if personal { "personal" } else { "service" }),
        sub: Some(subject.member_id().unwrap_or(token_id)),
        exp: row.expires_at.map(|at| at.timestamp()),
        iat: Some(row.created_at.timestamp()),
        jti: Some(token_id),
        organization: Some(row.organization_id),
        scope: row.scope.as_ref().map(scope_summary),
    };
    let body = serde_json::to_vec(&answer).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(json_response(StatusCode::OK, body))
}

/// The actions a scope's allow statements name, space-separated (RFC 7662's `scope`).
fn scope_summary(scope: &serde_json::Value) -> String {
    let actions: BTreeSet<&str> = scope
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["effect"].as_str() == Some("allow"))
        .filter_map(|s| s["actions"].as_array())
        .flatten()
        .filter_map(|a| a.as_str())
        .collect();
    actions.into_iter().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inactive_answer_is_exactly_active_false() {
        assert_eq!(
            serde_json::to_string(&Introspection::default()).expect("json"),
            INACTIVE_BODY
        );
    }

    #[test]
    fn the_scope_summary_lists_allowed_actions_once() {
        let scope = serde_json::json!([
            {"effect": "allow", "actions": ["B", "A"], "resources": ["x"]},
            {"effect": "deny", "actions": ["C"], "resources": ["x"]},
            {"effect": "allow", "actions": ["A"], "resources": ["y"]}
        ]);
        assert_eq!(scope_summary(&scope), "A B");
    }
}
