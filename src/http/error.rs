//! FeatBit's envelope `{success, errors, data}`, the one error type every handler returns, and
//! the one table of which code goes with which status.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Refusal;
use crate::credential::HashingError;
use crate::db::{unavailable, Cursor, Total};

/// Every response body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    pub success: bool,
    pub errors: Vec<String>,
    pub data: Option<T>,
}

/// One page of a list: `data = {totalCount, items}` (SPEC §4), and how to go on.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Paged<T> {
    /// Items matching the filters, on all pages, counted up to 10,000.
    pub total_count: i64,
    /// False when more than `totalCount` (10,000) items match: counting stops there.
    pub total_count_is_exact: bool,
    pub items: Vec<T>,
    /// Pass as `after` for the next page; `null` when this page is not full.
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    pub fn new(total: Total, items: Vec<T>, next: Option<Cursor>) -> Self {
        Paged {
            total_count: total.count,
            total_count_is_exact: total.exact,
            items,
            next_cursor: next.as_ref().map(Cursor::encode),
        }
    }

    pub fn empty() -> Self {
        Paged::new(Total::capped(0), Vec::new(), None)
    }
}

/// 200 with `data`.
pub struct Data<T>(pub T);
/// 201 with `data`.
pub struct Created<T>(pub T);

impl<T: Serialize> IntoResponse for Data<T> {
    fn into_response(self) -> Response {
        envelope_ok(StatusCode::OK, self.0)
    }
}

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        envelope_ok(StatusCode::CREATED, self.0)
    }
}

fn envelope_ok<T: Serialize>(status: StatusCode, data: T) -> Response {
    let envelope = Envelope {
        success: true,
        errors: Vec::new(),
        data: Some(data),
    };
    // Sized for the common small answers (`/auth/check`'s among them), so the buffer does not
    // grow while serialising, and handed to the body without a copy.
    let mut body = Vec::with_capacity(256);
    if let Err(e) = serde_json::to_writer(&mut body, &envelope) {
        return ApiError::Internal(e.into()).into_response();
    }
    json_response(status, body)
}

/// A response whose body is already serialised JSON (built per request, or written once).
pub fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.into(),
    )
        .into_response()
}

pub type ApiResult<T> = Result<T, ApiError>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A client mistake, with a code such as `name_is_required`.
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unauthorized")]
    Unauthorized,
    /// 401 with a code of its own (e.g. `EmailPasswordMismatch`).
    #[error("unauthorized: {0}")]
    UnauthorizedWith(&'static str),
    #[error("forbidden")]
    Forbidden,
    /// 403 with a code of its own (e.g. `PermissionExceedsCreator` and the offending pair).
    #[error("forbidden: {0:?}")]
    ForbiddenWith(Vec<String>),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("service unavailable")]
    ServiceUnavailable,
    /// A deadlock or serialization failure: nothing was written, and the same request may
    /// succeed at once. `retry::retry_lost_races` runs it again before the client sees 503.
    #[error("transaction lost a race")]
    LostRace,
    /// 503 `ServiceUnavailable` with `Retry-After`: refused at once because a bounded queue is
    /// full, nothing done.
    #[error("busy")]
    Busy { retry_after_secs: u64 },
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(code: impl Into<String>) -> Self {
        ApiError::BadRequest(code.into())
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::UnauthorizedWith(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::ForbiddenWith(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ServiceUnavailable | ApiError::LostRace | ApiError::Busy { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn codes(&self) -> Vec<String> {
        let code = match self {
            ApiError::BadRequest(code) => code.as_str(),
            ApiError::UnauthorizedWith(code) | ApiError::Conflict(code) => code,
            ApiError::ForbiddenWith(codes) => return codes.clone(),
            _ => status_code(self.status()),
        };
        vec![code.to_owned()]
    }
}

/// The code an error status carries when nothing more precise is said: for `ApiError`s without
/// a code of their own, and for refusals made outside the handlers (timeouts, limits, ...).
pub fn status_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::NOT_FOUND => "ResourceNotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::REQUEST_TIMEOUT => "RequestTimeout",
        StatusCode::CONFLICT => "Conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLarge",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "RequestHeaderFieldsTooLarge",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        s if s.is_server_error() => "InternalServerError",
        _ => "BadRequest",
    }
}

/// The envelope for an error status with its code (`status_code`).
pub fn status_response(status: StatusCode) -> Response {
    error_response(status, vec![status_code(status).to_owned()])
}

/// The envelope for an error status with the given codes.
pub fn error_response(status: StatusCode, errors: Vec<String>) -> Response {
    let body: Envelope<()> = Envelope {
        success: false,
        errors,
        data: None,
    };
    (status, Json(body)).into_response()
}

const UNAUTHORIZED_BODY: &str = r#"{"success":false,"errors":["Unauthorized"],"data":null}"#;
const FORBIDDEN_BODY: &str = r#"{"success":false,"errors":["Forbidden"],"data":null}"#;
const TOO_MANY_REQUESTS_BODY: &str =
    r#"{"success":false,"errors":["TooManyRequests"],"data":null}"#;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            // Internals go to the log, never to the client.
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
        let mut response = match &self {
            // The hot refusals: bodies written once, not serialised per request.
            ApiError::Unauthorized => json_response(StatusCode::UNAUTHORIZED, UNAUTHORIZED_BODY),
            ApiError::Forbidden => json_response(StatusCode::FORBIDDEN, FORBIDDEN_BODY),
            ApiError::TooManyRequests { .. } => {
                json_response(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_REQUESTS_BODY)
            }
            _ => error_response(self.status(), self.codes()),
        };
        match self {
            ApiError::Unauthorized | ApiError::UnauthorizedWith(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests { retry_after_secs }
            | ApiError::Busy { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            ApiError::ServiceUnavailable => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::LostRace => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response.extensions_mut().insert(LostRace);
            }
            _ => {}
        }
        response
    }
}

/// Set on a response by `ApiError::LostRace`, for `retry::retry_lost_races`.
#[derive(Debug, Clone, Copy)]
pub struct LostRace;

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unauthorized => ApiError::Unauthorized,
            Refusal::Forbidden => ApiError::Forbidden,
            Refusal::TooManyFailures { retry_after_secs } => {
                ApiError::TooManyRequests { retry_after_secs }
            }
            Refusal::BadRequest(code) => ApiError::bad_request(code),
            Refusal::Database(e) => e.into(),
        }
    }
}

/// The answer to a request authentication turned away (the extractors' rejection).
impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

impl From<HashingError> for ApiError {
    fn from(e: HashingError) -> Self {
        match e {
            // The queue holds only what the hashing threads get through quickly.
            HashingError::Busy => ApiError::Busy {
                retry_after_secs: 1,
            },
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                // Name uniqueness is enforced by unique indexes named `<table>_name_key`.
                if db.constraint().is_some_and(|c| c.ends_with("_name_key")) {
                    return ApiError::Conflict("NameHasBeenUsed");
                }
                // Another request made the same row first: a race the client lost, not a fault.
                tracing::info!(error = %e, "unique violation answered 409");
                ApiError::Conflict("Conflict")
            }
            // A row this write refers to was deleted meanwhile.
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                tracing::info!(error = %e, "foreign key violation answered 404");
                ApiError::NotFound
            }
            // 40001 serialization failure, 40P01 deadlock: nothing was written; try again.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| c == "40001" || c == "40P01") =>
            {
                tracing::warn!(error = %e, "transaction lost a race");
                ApiError::LostRace
            }
            e if unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::ServiceUnavailable
            }
            // Class 22 "data exception" (a NUL byte in text, a value out of range): input that
            // slipped past validation is still the client's mistake, never a 500.
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("22")) => {
                tracing::warn!(error = %e, "input rejected by the database");
                ApiError::bad_request("InvalidInput")
            }
            _ => ApiError::Internal(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_bodies_match_the_envelope() {
        for (error, body) in [
            (ApiError::Unauthorized, UNAUTHORIZED_BODY),
            (ApiError::Forbidden, FORBIDDEN_BODY),
            (
                ApiError::TooManyRequests {
                    retry_after_secs: 1,
                },
                TOO_MANY_REQUESTS_BODY,
            ),
        ] {
            let envelope: Envelope<()> = Envelope {
                success: false,
                errors: error.codes(),
                data: None,
            };
            assert_eq!(serde_json::to_string(&envelope).expect("json"), body);
        }
    }
}
