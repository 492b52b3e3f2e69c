//! Benchmark-only routes, compiled with `--features bench` and never in a production build:
//! the baselines `bench/` measures tokengate against.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;

use super::error::{ApiError, ApiResult, Data};
use super::state::AppState;
use crate::auth::bearer_credential;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/bench/select", get(select))
        .route("/bench/select-readers", get(select_on_readers))
}

/// The cost floor of a cache miss: parse + HMAC the bearer, then one indexed one-row SELECT
/// through sqlx, awaited in the request as a plain handler would.
async fn select(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Data<bool>> {
    let credential = bearer_credential(&headers)?;
    let digest = state.auth.hash_key.digest(&credential);
    let found = sqlx::query_scalar!(
        "select id from access_tokens where secret_hash = $1",
        digest.as_bytes()
    )
    .fetch_optional(&state.db)
    .await?;
    found.map(|_| Data(true)).ok_or(ApiError::Unauthorized)
}

/// The same SELECT on the connections verification reads use (`db::readers`), spawned as
/// verification spawns it: what a miss costs beyond its round trip, with the round trip alike.
async fn select_on_readers(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Data<bool>> {
    let credential = bearer_credential(&headers)?;
    let digest = state.auth.hash_key.digest(&credential);
    let found = state
        .auth
        .readers
        .read_detached(move |conn| {
            Box::pin(
                sqlx::query_scalar!(
                    "select id from access_tokens where secret_hash = $1",
                    digest.as_bytes()
                )
                .fetch_optional(conn),
            )
        })
        .await?;
    found.map(|_| Data(true)).ok_or(ApiError::Unauthorized)
}
