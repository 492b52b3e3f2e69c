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
use crate::metrics::{self, CacheSnapshot, Snapshot};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

/// Prometheus metrics (OpenMetrics text): requests, verification decisions, token lifecycle
/// events, the caches, the listener, `lastUsedAt` and the pools.
#[utoipa::path(get, path = "/metrics", tag = "health", security(()), operation_id = "metrics",
    description = "Prometheus metrics in the OpenMetrics text format. Unauthenticated: keep it on \
                   an internal address.",
    responses((status = 200, description = "OpenMetrics text",
               content_type = "application/openmetrics-text")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let snapshot = Snapshot {
        cache: cache_snapshot(&state),
        listener_up: state.auth.caches.is_enabled(),
        last_used_flush_age: state.auth.last_used.since_flush(),
        last_used_pending: state.auth.last_used.pending() as u64,
        pool_connections: u64::from(state.db.size()),
        pool_idle: state.db.num_idle() as u64,
        pool_max: u64::from(state.db.options().get_max_connections()),
        readers_idle: state.auth.readers.num_idle() as u64,
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics::encode_text(&snapshot),
    )
}

/// Every read of the verification caches' state, in one place.
fn cache_snapshot(state: &AppState) -> CacheSnapshot {
    let caches = &state.auth.caches;
    let stats = &caches.stats;
    let sizes = caches.sizes();
    CacheSnapshot {
        // With no room for entries nothing is cached, whatever the listener does.
        enabled: caches.is_enabled() && state.cache_max_entries > 0,
        hits: stats.token_hits.load(Ordering::Relaxed),
        misses: stats.token_misses.load(Ordering::Relaxed),
        session_hits: stats.session_hits.load(Ordering::Relaxed),
        session_misses: stats.session_misses.load(Ordering::Relaxed),
        db_lookups: stats.db_lookups.load(Ordering::Relaxed),
        listener_losses: caches.listener_losses(),
        evictions: caches.evictions(),
        entries: [
            ("tokens", sizes.tokens),
            ("live", sizes.live),
            ("sessions", sizes.sessions),
        ],
    }
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
