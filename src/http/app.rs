//! The application without its listener: every route, and the middleware around them. Tests
//! and `serve` share it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa_axum::router::OpenApiRouter;

use super::error::{status_response, ApiError};
use super::extract::MAX_BODY_BYTES;
use super::state::AppState;
use super::{
    access_tokens, audit, auth, drain, forward, groups, headers, health, identity, introspect,
    members, openapi, organizations, panic, permissions, policies, retry, secret_scanning, ui,
};
use crate::auth::ORGANIZATION_HEADER;

/// All request headers together (SPEC §4.2): more is refused with 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// What `app` needs from the configuration besides the state.
#[derive(Debug, Clone)]
pub struct AppOptions {
    pub request_timeout: Duration,
    pub cors_origins: Vec<String>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
        }
    }
}

/// Everything under `/api/v1`, with its OpenAPI paths. The handlers' paths carry the prefix
/// themselves: a nested router would rewrite every request's URI on the hot path.
fn api() -> OpenApiRouter<AppState> {
    // Writes that take locks are retried when they lose a race; the verification routes
    // (`auth`) write nothing and stay off this path.
    let management = OpenApiRouter::new()
        .merge(identity::router())
        .merge(organizations::router())
        .merge(members::router())
        .merge(policies::router())
        .merge(groups::router())
        .merge(permissions::router())
        .merge(access_tokens::router())
        .merge(audit::router())
        .merge(secret_scanning::router())
        .layer(middleware::from_fn(retry::retry_lost_races));
    management
        .merge(auth::router())
        .merge(forward::router())
        .merge(introspect::router())
}

/// The whole application: routes, the envelope for every refusal, limits, timeouts, request
/// ids and spans, CORS and the headers every response carries.
pub fn app(state: AppState, options: &AppOptions) -> Router {
    let (api_router, openapi) = OpenApiRouter::with_openapi(openapi::base())
        .merge(api())
        .merge(health::router())
        .split_for_parts();
    let openapi = Arc::new(openapi);

    let request_id = HeaderName::from_static("x-request-id");
    #[cfg(feature = "bench")]
    let api_router = api_router.merge(super::bench::router());
    let mut router = api_router
        .merge(openapi::router(openapi))
        .merge(ui::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(limit_header_size))
        .layer(middleware::from_fn(finish_responses))
        .layer(panic::catch_panic())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            options.request_timeout,
        ))
        // The timeout answers outside `finish_responses`: its 408 gets the envelope here.
        .layer(middleware::map_response(envelope_timeouts))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    // Method, matched route and path: never the query string or a header value.
                    let route = request
                        .extensions()
                        .get::<MatchedPath>()
                        .map(MatchedPath::as_str)
                        .unwrap_or("-");
                    let request_id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!(
                        "request",
                        request_id,
                        method = %request.method(),
                        route,
                        path = request.uri().path(),
                    )
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(middleware::from_fn(count_request))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid));
    if !options.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = options
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
            .collect();
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods(tower_http::cors::Any)
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    ORGANIZATION_HEADER,
                ]),
        );
    }
    // Outermost, so that every response gets them, CORS answers and timeouts included.
    router
        .layer(headers::no_store())
        .layer(headers::nosniff())
        .with_state(state)
}

/// Counts and times every request by its matched route (`/metrics`); unmatched requests share
/// one label, so a scan of random paths cannot grow the series.
async fn count_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    crate::metrics::request(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> Response {
    status_response(StatusCode::METHOD_NOT_ALLOWED)
}

async fn limit_header_size(request: Request, next: Next) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > MAX_HEADER_BYTES {
        return status_response(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    next.run(request).await
}

/// What every response gets on its way out: the envelope for rejections produced outside our
/// handlers; and the request body a handler did not read is discarded (`drain`), so the
/// connection stays usable.
async fn finish_responses(mut request: Request, next: Next) -> Response {
    drain::discard_what_is_left_unread(request.body_mut());
    envelope_framework_errors(next.run(request).await)
}

async fn envelope_timeouts(response: Response) -> Response {
    envelope_framework_errors(response)
}

/// Rejections produced outside our handlers (timeouts, body limits, ...) still get the envelope.
fn envelope_framework_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let mut replaced = status_response(status);
    for name in [header::RETRY_AFTER, header::WWW_AUTHENTICATE, header::ALLOW] {
        if let Some(v) = response.headers().get(&name) {
            replaced.headers_mut().insert(name, v.clone());
        }
    }
    replaced
}
