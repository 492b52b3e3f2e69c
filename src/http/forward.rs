//! Forward auth for gateways (SPEC §4.1): nginx `auth_request`, Traefik ForwardAuth, Caddy
//! `forward_auth` and Envoy's HTTP ext_authz. Every method is accepted (Envoy keeps the
//! client's), on `/auth/forward` and on `/auth/forward/{*path}` (Envoy appends the client's
//! path). The question — which action on which resource — comes, in this order, from the auth
//! URL's query, from the `X-Auth-Action` / `X-Auth-Resource` headers the gateway sets, or from
//! the route rules (`TOKENGATE_ROUTE_RULES`) matched against the client's method and URI.

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::any;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use super::auth::check_problem;
use super::error::{error_response, ApiError, ApiResult};
use super::state::AppState;
use crate::auth::{Principal, PrincipalKind};
use crate::metrics;

pub const FORWARD: &str = "/api/v1/auth/forward";
pub const FORWARD_PATH: &str = "/api/v1/auth/forward/{*path}";

pub fn router() -> OpenApiRouter<AppState> {
    // Every method: no `routes!` (one operation per method); the document describes both paths
    // through `forward_doc` and `forward_path_doc` (openapi.rs).
    OpenApiRouter::new()
        .route(FORWARD, any(forward))
        .route(FORWARD_PATH, any(forward))
}

const ACTION_HEADER: HeaderName = HeaderName::from_static("x-auth-action");
const RESOURCE_HEADER: HeaderName = HeaderName::from_static("x-auth-resource");
const FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");

/// Where the question came from; only for the misconfiguration message.
enum Question<'a> {
    Asked {
        action: Cow<'a, str>,
        resource: Cow<'a, str>,
    },
    /// No rule matches the client's request: refused.
    NoRule,
}

/// The gateway asked something unanswerable: no action or resource anywhere, or a malformed one;
/// the code says what is missing.
struct Misconfigured(String);

fn misconfigured(code: &str) -> Misconfigured {
    Misconfigured(code.to_owned())
}

/// Said in the body (`GatewayMisconfigured` and what is missing) and in the log, since only the
/// gateway's operator can fix it.
fn misconfigured_response(Misconfigured(code): Misconfigured) -> Response {
    tracing::warn!(
        problem = code.as_str(),
        "gateway misconfiguration: /auth/forward got no usable action and resource \
         (auth URL query, X-Auth-Action/X-Auth-Resource headers, or a route rule)"
    );
    error_response(
        StatusCode::BAD_REQUEST,
        vec!["GatewayMisconfigured".to_owned(), code],
    )
}

fn header_text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, ()> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| ()),
    }
}

/// `action` and `resource` from the auth URL's query (the gateway's config writes them there).
fn from_query(query: &str) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
    let (mut action, mut resource) = (None, None);
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "action" if action.is_none() => action = Some(value),
            "resource" if resource.is_none() => resource = Some(value),
            _ => {}
        }
    }
    (action, resource)
}

/// The question this request asks, or the misconfiguration response.
fn question<'a>(state: &AppState, request: &'a Request) -> Result<Question<'a>, Misconfigured> {
    let headers = request.headers();
    let uri = request.uri();
    let appended = uri.path().strip_prefix(FORWARD).filter(|p| !p.is_empty());
    // On the appended-path route (Envoy) the query is the client's own: never read from it.
    let (mut action, mut resource) = match (appended, uri.query()) {
        (None, Some(query)) => from_query(query),
        _ => (None, None),
    };
    let bad_header = |field: &str| misconfigured(&format!("{field}_is_invalid"));
    if action.is_none() {
        action = header_text(headers, &ACTION_HEADER)
            .map_err(|()| bad_header("action"))?
            .map(Cow::Borrowed);
    }
    if resource.is_none() {
        resource = header_text(headers, &RESOURCE_HEADER)
            .map_err(|()| bad_header("resource"))?
            .map(Cow::Borrowed);
    }
    match (action, resource) {
        (Some(action), Some(resource)) => {
            if let Some(problem) = check_problem(&action, &resource) {
                return Err(misconfigured(problem));
            }
            Ok(Question::Asked { action, resource })
        }
        (Some(_), None) => Err(misconfigured("resource_is_required")),
        (None, Some(_)) => Err(misconfigured("action_is_required")),
        (None, None) => from_rules(state, request, appended),
    }
}

/// The route rules' answer for the client's method and URI, as the gateway reports them.
fn from_rules<'a>(
    state: &AppState,
    request: &'a Request,
    appended: Option<&'a str>,
) -> Result<Question<'a>, Misconfigured> {
    let Some(rules) = state.gateway.route_rules.as_deref() else {
        return Err(misconfigured("action_is_required"));
    };
    let headers = request.headers();
    let reported = |method: &HeaderName, uri: &HeaderName| {
        let method = header_text(headers, method).ok().flatten();
        let uri = header_text(headers, uri).ok().flatten();
        uri.map(|uri| (method, Cow::Borrowed(uri)))
    };
    let (method, uri) = match appended {
        // Envoy: the client's method is this request's, its path is what follows /forward.
        Some(path) => {
            let uri = match request.uri().query() {
                Some(query) => Cow::Owned(format!("{path}?{query}")),
                None => Cow::Borrowed(path),
            };
            (Some(request.method().as_str()), uri)
        }
        None => match reported(&FORWARDED_METHOD, &FORWARDED_URI)
            .or_else(|| reported(&ORIGINAL_METHOD, &ORIGINAL_URI))
        {
            Some(found) => found,
            None => return Err(misconfigured("uri_is_required")),
        },
    };
    // nginx's `$request_method` is always set; a gateway that reports no method is checked
    // as a GET, the method it uses for the auth request itself.
    let method = method.unwrap_or("GET");
    match rules.check_for(method, &uri) {
        Some(check) => Ok(Question::Asked {
            action: Cow::Owned(check.action),
            resource: Cow::Owned(check.resource),
        }),
        None => Ok(Question::NoRule),
    }
}

/// The gateway's question, answered for the client's `Authorization`. 200 with `X-Auth-*`
/// identity headers, else 401 / 403 (429 / 503 with `Retry-After`).
async fn forward(
    State(state): State<AppState>,
    principal: Principal,
    request: Request,
) -> ApiResult<Response> {
    let (action, resource) = match question(&state, &request) {
        Ok(Question::Asked { action, resource }) => (action, resource),
        Ok(Question::NoRule) => {
            metrics::decision(principal.kind_label(), metrics::FORBIDDEN);
            return Err(ApiError::Forbidden);
        }
        Err(problem) => return Ok(misconfigured_response(problem)),
    };
    let verdict = principal.require(&action, &resource);
    metrics::decision(
        principal.kind_label(),
        if verdict.is_ok() {
            metrics::ALLOWED
        } else {
            metrics::FORBIDDEN
        },
    );
    verdict?;
    Ok(allowed(&principal))
}

fn allowed(principal: &Principal) -> Response {
    let kind = match principal.kind {
        PrincipalKind::Session { .. } => "session",
        PrincipalKind::PersonalToken { .. } => "personal-token",
        PrincipalKind::ServiceToken { .. } => "service-token",
    };
    let mut response = Response::new(Body::from(ALLOWED_BODY));
    // Room for these five and the request id, so the map never grows. Built by hand rather
    // than with `json_response`: reserving after its first insert would reallocate.
    let out = response.headers_mut();
    out.reserve(8);
    out.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    out.insert(X_AUTH_PRINCIPAL, HeaderValue::from_static(kind));
    if let Some(id) = principal.token_id() {
        out.insert(X_AUTH_TOKEN_ID, uuid_header(id));
    }
    out.insert(X_AUTH_ORGANIZATION, uuid_header(principal.organization_id));
    // A service token acts for no member: upstreams must not take its creator for the caller.
    if let Some(member) = principal.member_id() {
        out.insert(X_AUTH_USER_ID, uuid_header(member));
    }
    response
}

// Built at compile time, not parsed on every allowed request.
const X_AUTH_PRINCIPAL: HeaderName = HeaderName::from_static("x-auth-principal");
const X_AUTH_TOKEN_ID: HeaderName = HeaderName::from_static("x-auth-token-id");
const X_AUTH_ORGANIZATION: HeaderName = HeaderName::from_static("x-auth-organization");
const X_AUTH_USER_ID: HeaderName = HeaderName::from_static("x-auth-user-id");

/// `Data(true)`, written once: the gateway path answers it on every allowed request.
pub(super) const ALLOWED_BODY: &str = r#"{"success":true,"errors":[],"data":true}"#;

fn uuid_header(id: Uuid) -> HeaderValue {
    let mut buffer = [0u8; uuid::fmt::Hyphenated::LENGTH];
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_bytes(id.hyphenated().encode_lower(&mut buffer).as_bytes())
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Documentation only (the route is `any`): the gateway contract on `/auth/forward`.
#[utoipa::path(get, path = "/api/v1/auth/forward", tag = "auth", operation_id = "authForward",
    description = "Forward auth for gateways. Every method is accepted. The action and resource \
                   come from this URL's query (`?action=&resource=`), else the `X-Auth-Action` / \
                   `X-Auth-Resource` headers, else the route rules matched against \
                   `X-Forwarded-Method`/`X-Forwarded-Uri` or `X-Original-Method`/`X-Original-URI`.",
    params(("action" = Option<String>, Query), ("resource" = Option<String>, Query),
           ("X-Auth-Action" = Option<String>, Header), ("X-Auth-Resource" = Option<String>, Header),
           ("X-Forwarded-Method" = Option<String>, Header), ("X-Forwarded-Uri" = Option<String>, Header),
           ("X-Original-Method" = Option<String>, Header), ("X-Original-URI" = Option<String>, Header)),
    responses((status = 200, description = "allowed; X-Auth-Principal, X-Auth-Token-Id, X-Auth-Organization, X-Auth-User-Id set"),
              (status = 400, description = "GatewayMisconfigured: no usable action and resource"),
              (status = 401, description = "Unauthorized"), (status = 403, description = "Forbidden"),
              (status = 429, description = "TooManyRequests"), (status = 503, description = "ServiceUnavailable")))]
#[allow(dead_code)]
pub(super) async fn forward_doc() {}

/// Documentation only (the route is `any`): Envoy's ext_authz shape, the client's path appended.
#[utoipa::path(get, path = "/api/v1/auth/forward/{path}", tag = "auth", operation_id = "authForwardPath",
    description = "Forward auth with the client's path appended (Envoy's HTTP ext_authz). Every \
                   method is accepted and taken as the client's. The action and resource come from \
                   the `X-Auth-*` headers, else the route rules matched against this method and \
                   the appended path; this URL's query is the client's and is never read for them.",
    params(("path" = String, Path, description = "the client's path")),
    responses((status = 200, description = "allowed; X-Auth-* identity headers set"),
              (status = 400, description = "GatewayMisconfigured"),
              (status = 401, description = "Unauthorized"), (status = 403, description = "Forbidden"),
              (status = 429, description = "TooManyRequests"), (status = 503, description = "ServiceUnavailable")))]
#[allow(dead_code)]
pub(super) async fn forward_path_doc() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowed_body_is_the_envelope_of_true() {
        let envelope = super::super::Envelope {
            success: true,
            errors: Vec::new(),
            data: Some(true),
        };
        assert_eq!(
            serde_json::to_string(&envelope).expect("json"),
            ALLOWED_BODY
        );
    }

    #[test]
    fn uuid_headers_are_hyphenated_lower_case() {
        let id = Uuid::new_v4();
        assert_eq!(uuid_header(id).to_str().ok(), Some(id.to_string().as_str()));
    }

    #[test]
    fn the_query_names_action_and_resource_decoded_first_one_wins() {
        let (a, r) =
            from_query("action=ManageFeatureFlag&resource=project%2Fweb%3Aenv%2F*&action=X");
        assert_eq!(a.as_deref(), Some("ManageFeatureFlag"));
        assert_eq!(r.as_deref(), Some("project/web:env/*"));
        assert_eq!(from_query("other=1"), (None, None));
    }
}
