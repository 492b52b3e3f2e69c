//! The HTTP layer: state, router, middleware and one module per resource.

mod access_tokens;
mod audit;
mod auth;
#[cfg(feature = "bench")]
mod bench;
mod drain;
mod error;
mod extract;
mod grants;
mod groups;
mod headers;
mod health;
mod identity;
mod members;
mod openapi;
mod organizations;
mod panic;
mod permissions;
mod policies;
mod repoll;
mod retry;
pub mod server;
mod ui;
mod validate;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use sqlx::PgPool;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa_axum::router::OpenApiRouter;

pub use error::{
    error_response, json_response, status_response, ApiError, ApiResult, Created, Data, Envelope,
};
pub use extract::{client_ip, page, ApiJson, ApiPath, ApiQuery, OptionalJson};
pub use validate::{valid_filter, valid_name, valid_policy_name, valid_text};

use crate::auth::rate_limit::{ClientAddress, LoginLimiter, RateLimiter};
use crate::auth::{listener, CacheConfig, Caches, Invalidation, LastUsed};
use crate::config::ServeConfig;
use crate::credential::{HashKey, PasswordHasher};
use crate::db::readers::{Readers, ReadersConfig};
use crate::policy::{parse_extra_actions, Catalogue};

/// One page of a list: `data = {totalCount, items}` (SPEC §4).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Paged<T> {
    /// Items matching the filters, on all pages.
    pub total_count: i64,
    pub items: Vec<T>,
}

/// Request bodies larger than this are refused with 413 (SPEC §9).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// All request headers together (SPEC §4.2): more is refused with 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Names of tokens, policies, groups, organizations and members.
pub const MAX_NAME_LEN: usize = 128;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: PgPool,
    /// Connections of their own for verification reads (`db::readers`).
    pub readers: Readers,
    pub hash_key: HashKey,
    pub hasher: PasswordHasher,
    pub catalogue: Catalogue,
    pub session_ttl: Duration,
    /// False until `serve` has applied migrations (readiness).
    pub migrated: AtomicBool,
    pub last_used: Arc<LastUsed>,
    pub caches: Arc<Caches>,
    /// Failed authentications per client address.
    pub auth_failures: RateLimiter<ClientAddress>,
    /// Failed logins per account and client address, and per client address.
    pub login_failures: LoginLimiter,
    /// Organization-wide maximum token lifetime, if configured.
    pub max_token_lifetime: Option<Duration>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        db: PgPool,
        hash_key: HashKey,
        hasher: PasswordHasher,
        catalogue: Catalogue,
        session_ttl: Duration,
        cache: CacheConfig,
    ) -> Self {
        let readers = Readers::new((*db.connect_options()).clone(), ReadersConfig::beside(&db));
        AppState(Arc::new(Inner {
            db,
            readers,
            hash_key,
            hasher,
            catalogue,
            session_ttl,
            migrated: AtomicBool::new(true),
            last_used: Arc::new(LastUsed::default()),
            caches: Arc::new(Caches::new(cache)),
            auth_failures: Limits::default().auth_failures(),
            login_failures: Limits::default().login_failures(),
            max_token_lifetime: None,
        }))
    }
}

/// How often `lastUsedAt` values are written (SPEC §5.3 allows 60 s of staleness).
const LAST_USED_FLUSH_INTERVAL: Duration = Duration::from_secs(15);

/// Rate limits on failures (SPEC §4.2 defaults).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub auth_failures_per_minute: u32,
    pub auth_failure_burst: u32,
    pub login_failures_per_15_minutes: u32,
    /// Failed logins from one client address, whatever the accounts (password spraying).
    pub address_login_failures_per_15_minutes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            auth_failures_per_minute: 60,
            auth_failure_burst: 30,
            login_failures_per_15_minutes: 10,
            address_login_failures_per_15_minutes: 50,
        }
    }
}

impl Limits {
    fn auth_failures(&self) -> RateLimiter<ClientAddress> {
        RateLimiter::new(
            self.auth_failures_per_minute,
            Duration::from_secs(60),
            self.auth_failure_burst,
        )
    }

    fn login_failures(&self) -> LoginLimiter {
        let per = Duration::from_secs(15 * 60);
        let account = self.login_failures_per_15_minutes;
        let address = self.address_login_failures_per_15_minutes;
        LoginLimiter::new(
            RateLimiter::new(account, per, account),
            RateLimiter::new(address, per, address),
        )
    }
}

impl AppState {
    /// Sets the failure rate limits. Only before the state is shared.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.auth_failures = limits.auth_failures();
            inner.login_failures = limits.login_failures();
        }
        self
    }

    /// Sets how verification reads connect. Only before the state is shared.
    pub fn with_readers(mut self, config: ReadersConfig) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.readers = Readers::new((*inner.db.connect_options()).clone(), config);
        }
        self
    }

    /// Sets the organization-wide maximum token lifetime. Only before the state is shared.
    pub fn with_max_token_lifetime(mut self, max: Option<Duration>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.max_token_lifetime = max;
        }
        self
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
        .layer(middleware::from_fn(retry::retry_lost_races));
    management.merge(auth::router())
}

/// The whole application, without the listener: tests and `serve` share it.
pub fn app(state: AppState, options: &AppOptions) -> Router {
    let (api_router, openapi) = OpenApiRouter::with_openapi(openapi::base())
        .merge(api())
        .merge(health::router())
        .split_for_parts();
    let openapi = Arc::new(openapi);

    let request_id = HeaderName::from_static("x-request-id");
    #[cfg(feature = "bench")]
    let api_router = api_router.merge(bench::router());
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
                    HeaderName::from_static("organization"),
                ]),
        );
    }
    // Outermost, so that every response gets them, CORS answers and timeouts included.
    router
        .layer(headers::no_store())
        .layer(headers::nosniff())
        .with_state(state)
}

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

/// Serves until SIGTERM or ctrl-c, then lets in-flight requests finish.
pub async fn serve(config: ServeConfig, hash_key: HashKey) -> anyhow::Result<()> {
    let db = crate::db::pool(&config.database)?;
    let hasher = PasswordHasher::new(config.max_concurrent_hashes(), config.max_queued_hashes)?;
    let extra_actions = parse_extra_actions(&config.extra_actions).map_err(anyhow::Error::msg)?;
    let catalogue = Catalogue::builtin().with_extra(extra_actions);
    let state = AppState::new(
        db.clone(),
        hash_key,
        hasher,
        catalogue,
        config.session_ttl(),
        config.cache(),
    )
    .with_readers(ReadersConfig::from_database(&config.database))
    .with_max_token_lifetime(config.max_token_lifetime())
    .with_limits(config.limits());
    let readers = state.readers.clone();
    let caches = state.caches.clone();
    state
        .hasher
        .pace(f64::from(config.hash_share_under_load) / 100.0, move || {
            caches.stats.verifications()
        });
    let options = AppOptions {
        request_timeout: config.request_timeout(),
        cors_origins: config.cors_origins.clone(),
    };

    let tcp = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(address = %config.listen, "listening");
    // Background work: the cache-invalidation listener, lastUsedAt batches, and migrations —
    // applied in the background so that while the database is unreachable the service answers,
    // reports not-ready and keeps retrying instead of crash-looping.
    let listen_url = config
        .listen_database_url
        .as_ref()
        .unwrap_or(&config.database.database_url);
    let listen_options: sqlx::postgres::PgConnectOptions = listen_url
        .expose()
        .parse()
        .map_err(|e| anyhow::anyhow!("the listener's database URL: {e}"))?;
    tokio::spawn(listener::run(listen_options, state.caches.clone()));
    let last_used = state.last_used.clone();
    tokio::spawn(last_used.clone().run(db.clone(), LAST_USED_FLUSH_INTERVAL));
    state.migrated.store(false, Ordering::SeqCst);
    tokio::spawn(migrate_until_done(state.clone()));

    let app = app(state, &options);
    server::run(tcp, app, config.server_options(), shutdown_signal()).await;
    if let Err(e) = last_used.flush(&db).await {
        tracing::warn!(error = %e, "could not record lastUsedAt at shutdown");
    }
    readers.close().await;
    tracing::info!("shut down");
    Ok(())
}

async fn migrate_until_done(state: AppState) {
    let mut delay = Duration::from_millis(500);
    loop {
        match crate::db::migrate(&state.db).await {
            Ok(()) => {
                tracing::info!("database ready, migrations applied");
                state.migrated.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64,
                    "database not ready; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

/// Commits `tx` after queuing a NOTIFY for the other replicas, then drops this process's cache
/// entries, all before the handler answers: the next request sees the change.
pub async fn commit_invalidating(
    state: &AppState,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    what: Invalidation,
) -> ApiResult<()> {
    crate::db::notify(&mut tx, what).await?;
    tx.commit().await?;
    state.caches.invalidate(what);
    Ok(())
}
