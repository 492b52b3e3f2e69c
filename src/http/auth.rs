//! For integrations: who am I, and may I?

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{ApiError, ApiJson, ApiResult, AppState, Data};
use crate::auth::{Principal, PrincipalKind};
use crate::db::identity::UserView;
use crate::db::tokens::{self, TokenRow, TokenView};
use crate::policy::{Statement, MAX_RN_LEN};
use axum::extract::State;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(whoami))
        .routes(routes!(check))
        .routes(routes!(forward))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    pub principal: PrincipalKind,
    pub organization_id: Uuid,
    /// The member behind the call.
    pub user: UserView,
    /// The token itself, when the caller is one.
    pub token: Option<TokenView>,
    /// Every layer must allow an action.
    #[schema(value_type = Vec<Vec<Statement>>)]
    pub layers: Vec<std::sync::Arc<Vec<Statement>>>,
}

/// The calling principal and its effective permission layers.
#[utoipa::path(get, path = "/auth/whoami", tag = "auth",
    responses((status = 200, body = WhoAmI), (status = 401)))]
async fn whoami(State(state): State<AppState>, principal: Principal) -> ApiResult<Data<WhoAmI>> {
    let token = match principal.kind {
        PrincipalKind::PersonalToken { token_id } | PrincipalKind::ServiceToken { token_id } => {
            tokens::get(&state.db, principal.organization_id, token_id, false)
                .await?
                .map(TokenRow::view)
        }
        PrincipalKind::Session { .. } => None,
    };
    Ok(Data(WhoAmI {
        token,
        principal: principal.kind,
        organization_id: principal.organization_id,
        user: (*principal.user).clone(),
        layers: principal.layers,
    }))
}

/// Most checks one `/auth/check` call may ask.
const MAX_CHECKS: usize = 100;
/// Action names are identifiers; anything longer is not one.
const MAX_ACTION_LEN: usize = 128;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckRequest {
    pub checks: Vec<Check>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Check {
    pub action: String,
    pub resource: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub action: String,
    pub resource: String,
    pub allowed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResponse {
    /// Every check is allowed.
    pub allowed: bool,
    pub results: Vec<CheckResult>,
}

fn valid_check(action: &str, resource: &str, field: &str) -> ApiResult<()> {
    if action.is_empty() {
        return Err(ApiError::BadRequest(format!("{field}action_is_required")));
    }
    if action.len() > MAX_ACTION_LEN {
        return Err(ApiError::BadRequest(format!("{field}action_is_invalid")));
    }
    if resource.is_empty() {
        return Err(ApiError::BadRequest(format!("{field}resource_is_required")));
    }
    if resource.chars().count() > MAX_RN_LEN {
        return Err(ApiError::BadRequest(format!("{field}resource_is_invalid")));
    }
    Ok(())
}

/// May the bearer do each of these? For services that protect their own API.
#[utoipa::path(post, path = "/auth/check", tag = "auth", request_body = CheckRequest,
    responses((status = 200, body = CheckResponse), (status = 401), (status = 403)))]
async fn check(
    principal: Principal,
    ApiJson(body): ApiJson<CheckRequest>,
) -> ApiResult<Data<CheckResponse>> {
    if body.checks.is_empty() {
        return Err(ApiError::bad_request("checks_is_required"));
    }
    if body.checks.len() > MAX_CHECKS {
        return Err(ApiError::bad_request("checks_is_invalid"));
    }
    for (i, c) in body.checks.iter().enumerate() {
        valid_check(&c.action, &c.resource, &format!("checks[{i}]."))?;
    }
    let results: Vec<CheckResult> = body
        .checks
        .into_iter()
        .map(|c| CheckResult {
            allowed: principal.allows(&c.action, &c.resource),
            action: c.action,
            resource: c.resource,
        })
        .collect();
    Ok(Data(CheckResponse {
        allowed: results.iter().all(|r| r.allowed),
        results,
    }))
}

const ACTION_HEADER: &str = "x-auth-action";
const RESOURCE_HEADER: &str = "x-auth-resource";

fn header<'a>(headers: &'a HeaderMap, name: &str, field: &str) -> ApiResult<&'a str> {
    match headers.get(name).map(|v| v.to_str()) {
        None => Err(ApiError::BadRequest(format!("{field}_is_required"))),
        Some(Err(_)) => Err(ApiError::BadRequest(format!("{field}_is_invalid"))),
        Some(Ok(v)) => Ok(v.trim()),
    }
}

/// The gateway contract (nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz, Caddy
/// forward_auth): the client's `Authorization` plus `X-Auth-Action` / `X-Auth-Resource` set by
/// the gateway. 200 with `X-Auth-*` identity headers, else 401 / 403.
#[utoipa::path(get, path = "/auth/forward", tag = "auth",
    params(("X-Auth-Action" = String, Header), ("X-Auth-Resource" = String, Header)),
    responses((status = 200, description = "allowed; X-Auth-Principal, X-Auth-Token-Id, X-Auth-Organization set"),
              (status = 401), (status = 403)))]
async fn forward(principal: Principal, headers: HeaderMap) -> ApiResult<Response> {
    let action = header(&headers, ACTION_HEADER, "action")?;
    let resource = header(&headers, RESOURCE_HEADER, "resource")?;
    valid_check(action, resource, "")?;
    principal.require(action, resource)?;
    let (kind, token_id) = match principal.kind {
        PrincipalKind::Session { .. } => ("session", None),
        PrincipalKind::PersonalToken { token_id } => ("personal-token", Some(token_id)),
        PrincipalKind::ServiceToken { token_id } => ("service-token", Some(token_id)),
    };
    let mut response = Data(true).into_response();
    let out = response.headers_mut();
    out.insert(
        HeaderName::from_static("x-auth-principal"),
        HeaderValue::from_static(kind),
    );
    if let Some(id) = token_id {
        out.insert(HeaderName::from_static("x-auth-token-id"), uuid_header(id));
    }
    out.insert(
        HeaderName::from_static("x-auth-organization"),
        uuid_header(principal.organization_id),
    );
    out.insert(
        HeaderName::from_static("x-auth-user-id"),
        uuid_header(principal.user.id),
    );
    Ok(response)
}

fn uuid_header(id: Uuid) -> HeaderValue {
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_str(&id.to_string()).unwrap_or_else(|_| HeaderValue::from_static("-"))
}
