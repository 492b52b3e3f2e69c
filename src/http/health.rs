//! Liveness and readiness, outside `/api/v1` and unauthenticated.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiResult, AppState, Data};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "alive")))]
async fn live() -> Data<&'static str> {
    Data("live")
}

/// The database answers and migrations are applied.
#[utoipa::path(get, path = "/health/ready", tag = "health",
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
