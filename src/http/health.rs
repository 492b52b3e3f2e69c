//! Liveness and readiness, outside `/api/v1` and unauthenticated.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Data};
use super::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

/// Prometheus text: verification cache and database pool counters.
#[utoipa::path(get, path = "/metrics", tag = "health", security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    use std::fmt::Write;
    let stats = &state.auth.caches.stats;
    let mut out = String::with_capacity(1024);
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        );
    };
    counter(
        "tokengate_token_cache_hits_total",
        "Token verifications answered from the cache.",
        stats.token_hits.load(Ordering::Relaxed),
    );
    counter(
        "tokengate_token_cache_misses_total",
        "Token verifications that missed the cache.",
        stats.token_misses.load(Ordering::Relaxed),
    );
    counter(
        "tokengate_verification_db_lookups_total",
        "Database round trips made by verification.",
        stats.db_lookups.load(Ordering::Relaxed),
    );
    counter(
        "tokengate_session_cache_hits_total",
        "Web-session verifications answered from the cache.",
        stats.session_hits.load(Ordering::Relaxed),
    );
    counter(
        "tokengate_session_cache_misses_total",
        "Web-session verifications that read the database.",
        stats.session_misses.load(Ordering::Relaxed),
    );
    counter(
        "tokengate_cache_evictions_total",
        "Cache entries evicted at the size bound (not expiries or invalidations).",
        state.auth.caches.evictions(),
    );
    counter(
        "tokengate_listener_losses_total",
        "Times the cache-invalidation listener lost its connection.",
        state.auth.caches.listener_losses(),
    );
    let _ = write!(
        out,
        "# HELP tokengate_cache_enabled Whether the verification caches are in use.\n\
         # TYPE tokengate_cache_enabled gauge\ntokengate_cache_enabled {}\n\
         # HELP tokengate_db_pool_connections Open database connections.\n\
         # TYPE tokengate_db_pool_connections gauge\ntokengate_db_pool_connections {}\n",
        u8::from(state.auth.caches.is_enabled()),
        state.db.size(),
    );
    let sizes = state.auth.caches.sizes();
    let _ = write!(
        out,
        "# HELP tokengate_cache_entries Entries held, per verification cache.\n\
         # TYPE tokengate_cache_entries gauge\n\
         tokengate_cache_entries{{cache=\"tokens\"}} {}\n\
         tokengate_cache_entries{{cache=\"live\"}} {}\n\
         tokengate_cache_entries{{cache=\"sessions\"}} {}\n",
        sizes.tokens, sizes.live, sizes.sessions,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health", security(()),
    responses((status = 200, description = "alive")))]
async fn live() -> Data<&'static str> {
    Data("live")
}

/// The database answers and migrations are applied.
#[utoipa::path(get, path = "/health/ready", tag = "health", security(()),
    responses((status = 200, description = "ready"), (status = 503, description = "not ready")))]
async fn ready(State(state): State<AppState>) -> ApiResult<Data<&'static str>> {
    if !state.migrated.load(Ordering::SeqCst) {
        return Err(ApiError::ServiceUnavailable);
    }
    let ping = sqlx::query_scalar!("select 1 as one").fetch_one(&state.db);
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(_)) => Ok(Data("ready")),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::ServiceUnavailable)
        }
        Err(_) => Err(ApiError::ServiceUnavailable),
    }
}
