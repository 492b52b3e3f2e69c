//! For integrations: who am I, and may I?

use std::borrow::Cow;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{json_response, ApiError, ApiResult, Data};
use super::extract::{json_body, parse_json};
use super::state::AppState;
use crate::auth::{Principal, PrincipalKind};
use crate::db::identity::{self, UserView};
use crate::db::tokens::{self, TokenRow, TokenView};
use crate::metrics;
use crate::policy::{Statement, MAX_RN_LEN};
use axum::extract::State;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(whoami))
        .routes(routes!(check))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    pub principal: PrincipalKind,
    pub organization_id: Uuid,
    /// The member behind the call; none for a service token, which is no member (its creator
    /// is in `token`).
    pub user: Option<UserView>,
    /// The token itself, when the caller is one.
    pub token: Option<TokenView>,
    /// Every layer must allow an action: the member's live permissions (sessions and personal
    /// tokens), then the layers frozen at the token's creation, then its scope.
    #[schema(value_type = Vec<Vec<Statement>>)]
    pub layers: Vec<std::sync::Arc<Vec<Statement>>>,
}

/// The calling principal and its effective permission layers.
#[utoipa::path(get, path = "/api/v1/auth/whoami", tag = "auth",
    responses((status = 200, body = WhoAmI), (status = 401)))]
async fn whoami(State(state): State<AppState>, principal: Principal) -> ApiResult<Data<WhoAmI>> {
    let token = match principal.token_id() {
        Some(token_id) => tokens::get(&state.db, principal.organization_id, token_id, false)
            .await?
            .map(TokenRow::view),
        None => None,
    };
    // Only whoami shows the name and email, so verification does not load them.
    let user = match principal.member_id() {
        Some(member) => Some(
            identity::user_by_id(&state.db, member)
                .await?
                .ok_or(ApiError::Unauthorized)?,
        ),
        None => None,
    };
    Ok(Data(WhoAmI {
        token,
        principal: principal.kind,
        organization_id: principal.organization_id,
        user,
        layers: principal.layers.iter().cloned().collect(),
    }))
}

/// Most checks one `/auth/check` call may ask.
const MAX_CHECKS: usize = 100;
/// Action names are identifiers; anything longer is not one.
const MAX_ACTION_LEN: usize = 128;

// The strings borrow from the request body (`Cow`: owned only when the JSON escapes them), so a
// check allocates nothing for its action and resource, on the way in or out.

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckRequest<'a> {
    #[serde(borrow)]
    pub checks: Vec<Check<'a>>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Check<'a> {
    #[serde(borrow)]
    #[schema(value_type = String)]
    pub action: Cow<'a, str>,
    #[serde(borrow)]
    #[schema(value_type = String)]
    pub resource: Cow<'a, str>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult<'a> {
    #[schema(value_type = String)]
    pub action: Cow<'a, str>,
    #[schema(value_type = String)]
    pub resource: Cow<'a, str>,
    pub allowed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResponse<'a> {
    /// Every check is allowed.
    pub allowed: bool,
    pub results: Vec<CheckResult<'a>>,
}

/// What is wrong with a check, as the error code's last part; `None` when it is well-formed.
/// The caller formats the field path only when there is an error (this runs on every call).
pub(super) fn check_problem(action: &str, resource: &str) -> Option<&'static str> {
    if action.is_empty() {
        Some("action_is_required")
    } else if action.len() > MAX_ACTION_LEN {
        Some("action_is_invalid")
    } else if resource.is_empty() {
        Some("resource_is_required")
    } else if resource.len() > MAX_RN_LEN && resource.chars().count() > MAX_RN_LEN {
        Some("resource_is_invalid")
    } else {
        None
    }
}

/// May the bearer do each of these? For services that protect their own API.
#[utoipa::path(post, path = "/api/v1/auth/check", tag = "auth", request_body = CheckRequest,
    responses((status = 200, body = CheckResponse), (status = 401), (status = 403)))]
async fn check(principal: Principal, request: Request) -> ApiResult<Response> {
    let bytes = json_body(request).await?;
    let body: CheckRequest = parse_json(&bytes)?;
    if body.checks.is_empty() {
        return Err(ApiError::bad_request("checks_is_required"));
    }
    if body.checks.len() > MAX_CHECKS {
        return Err(ApiError::bad_request("checks_is_invalid"));
    }
    for (i, c) in body.checks.iter().enumerate() {
        if let Some(problem) = check_problem(&c.action, &c.resource) {
            return Err(ApiError::BadRequest(format!("checks[{i}].{problem}")));
        }
    }
    let results: Vec<CheckResult> = body
        .checks
        .into_iter()
        .map(|c| {
            let allowed = principal.allows(&c.action, &c.resource);
            let outcome = if allowed {
                metrics::ALLOWED
            } else {
                metrics::FORBIDDEN
            };
            metrics::decision(principal.kind_label(), outcome);
            CheckResult {
                allowed,
                action: c.action,
                resource: c.resource,
            }
        })
        .collect();
    Ok(json_response(StatusCode::OK, check_body(&results)))
}

/// The 200 envelope around a `CheckResponse`, written directly: the bytes `Data(CheckResponse)`
/// serialises to (a property test holds it to that), without serde_json's byte-at-a-time
/// escaping of strings that need none: this runs on every check.
fn check_body(results: &[CheckResult]) -> Vec<u8> {
    let bool_json = |b: bool| if b { &b"true"[..] } else { &b"false"[..] };
    let mut out = Vec::with_capacity(64 + results.len() * 128);
    out.extend_from_slice(br#"{"success":true,"errors":[],"data":{"allowed":"#);
    out.extend_from_slice(bool_json(results.iter().all(|r| r.allowed)));
    out.extend_from_slice(br#","results":["#);
    for (i, result) in results.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"action":"#);
        json_string(&mut out, &result.action);
        out.extend_from_slice(br#","resource":"#);
        json_string(&mut out, &result.resource);
        out.extend_from_slice(br#","allowed":"#);
        out.extend_from_slice(bool_json(result.allowed));
        out.push(b'}');
    }
    out.extend_from_slice(b"]}}");
    out
}

/// `s` as a JSON string. serde_json escapes exactly control characters, `"` and `\`; a string
/// without them is copied as it is, anything else is left to serde_json.
fn json_string(out: &mut Vec<u8>, s: &str) {
    // A fold rather than `any`: no early exit, so the compiler checks many bytes at a time.
    let needs_escape = s.bytes().fold(false, |seen, b| {
        seen | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if needs_escape {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json writes for the same answer.
    fn serde_check_body(results: Vec<CheckResult>) -> Vec<u8> {
        let envelope = super::super::Envelope {
            success: true,
            errors: Vec::new(),
            data: Some(CheckResponse {
                allowed: results.iter().all(|r| r.allowed),
                results,
            }),
        };
        serde_json::to_vec(&envelope).expect("json")
    }

    fn result<'a>(action: &'a str, resource: &'a str, allowed: bool) -> CheckResult<'a> {
        CheckResult {
            action: Cow::Borrowed(action),
            resource: Cow::Borrowed(resource),
            allowed,
        }
    }

    #[test]
    fn the_check_body_is_what_serde_json_writes() {
        let cases = [
            vec![result(
                "ManageFeatureFlag",
                "project/web:env/prod:flag/x",
                true,
            )],
            vec![
                result("A", "r\"quoted\"", true),
                result("B", "tab\there\u{1}", false),
                result("é✓", "back\\slash/ünïcode", true),
            ],
            vec![],
        ];
        for results in cases {
            let expected = serde_check_body(results.clone());
            assert_eq!(
                String::from_utf8(check_body(&results)).expect("utf8"),
                String::from_utf8(expected).expect("utf8")
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_check_body_is_what_serde_json_writes(
            checks in proptest::collection::vec((".{0,40}", "\\PC{0,40}", proptest::bool::ANY), 0..4)
        ) {
            let results: Vec<CheckResult> = checks
                .iter()
                .map(|(a, r, allowed)| result(a, r, *allowed))
                .collect();
            proptest::prop_assert_eq!(check_body(&results), serde_check_body(results.clone()));
        }
    }
}
