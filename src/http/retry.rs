//! A write whose transaction lost a race inside PostgreSQL (a deadlock or a serialization
//! failure) wrote nothing, and the same request usually succeeds at once: it is run again, a
//! bounded number of times, before the client sees the 503 (SPEC §9).

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::LostRace;
use super::extract::read_body;

/// Runs in all: the first attempt and two more.
const ATTEMPTS: u32 = 3;

/// For the management API's writes. The body (bounded by the body limit) is read first so that it
/// can be given to each attempt; reads are never retried (they take no locks).
pub async fn retry_lost_races(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let body = match read_body(Request::from_parts(parts.clone(), body), &()).await {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };
    let mut attempt = 1;
    loop {
        let request = Request::from_parts(parts.clone(), Body::from(body.clone()));
        let response = next.clone().run(request).await;
        if response.extensions().get::<LostRace>().is_none() || attempt == ATTEMPTS {
            return response;
        }
        tracing::info!(attempt, "retrying a write that lost a race");
        // Let the winner finish; a little longer each time.
        tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt))).await;
        attempt += 1;
    }
}
