//! Extractors whose rejections speak the API's envelope with field-specific codes, instead of
//! axum's plain-text ones.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::ApiError;
use crate::db::{Cursor, Page};

/// Request bodies larger than this are refused with 413 (SPEC §9).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body. Wrong content type → 415, too large → 413, bad syntax → `InvalidJson`,
/// a missing field → `<field>_is_required`, a wrong type or unknown field → `<field>_is_invalid`.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A JSON request's body, for handlers that deserialize borrowing from it (`parse_json`);
/// the same rejections as `ApiJson`.
pub async fn json_body(req: Request) -> Result<Bytes, ApiError> {
    if !is_json(&req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    read_body(req, &()).await
}

/// An optional JSON body: an empty body is `None` (for `POST …/rotate` without options).
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(&req);
        let bytes = read_body(req, state).await?;
        // No body, or a JSON `null`, means "no options".
        if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null" {
            return Ok(OptionalJson(None));
        }
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

pub(super) async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::bad_request("InvalidBody")
        }
    })
}

/// Parses JSON with `ApiJson`'s field-specific errors; `T` may borrow from `bytes`.
pub fn parse_json<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, ApiError> {
    // The common case, fast; the slower path-tracking parse only runs to explain an error.
    // UTF-8 is checked once for the whole body rather than string by string.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(ApiError::bad_request("InvalidJson"));
    };
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    // Broken syntax is `InvalidJson` whatever the expected type: a typed parse of `[1,2` fails
    // on the first element's type before it ever reaches the missing bracket.
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        return Err(ApiError::bad_request("InvalidJson"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                ApiError::BadRequest(field_code(&path, &inner.to_string()))
            }
            _ => ApiError::bad_request("InvalidJson"),
        }
    })?;
    // Trailing garbage after the value is malformed JSON too.
    deserializer
        .end()
        .map_err(|_| ApiError::bad_request("InvalidJson"))?;
    Ok(value)
}

fn is_json(req: &Request) -> bool {
    let Some(value) = req.headers().get(CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    // Compared in place, case-insensitively: this runs on every JSON request.
    if value.eq_ignore_ascii_case("application/json") {
        return true;
    }
    let mime = value.split(';').next().unwrap_or("").trim();
    let has = |range: Option<&str>, expected: &str| {
        range.is_some_and(|part| part.eq_ignore_ascii_case(expected))
    };
    mime.eq_ignore_ascii_case("application/json")
        || (has(mime.get(..12), "application/")
            && has(
                mime.len().checked_sub(5).and_then(|at| mime.get(at..)),
                "+json",
            ))
}

/// `<field>_is_required` / `<field>_is_invalid` from serde's path and message.
fn field_code(path: &str, message: &str) -> String {
    let join = |field: &str| {
        if path == "." {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        }
    };
    if let Some(field) = backticked(message, "missing field `") {
        format!("{}_is_required", join(field))
    } else if let Some(field) = backticked(message, "unknown field `") {
        // serde_path_to_error's path already ends at the unknown field.
        if path == "." {
            format!("{field}_is_invalid")
        } else {
            format!("{path}_is_invalid")
        }
    } else if path == "." {
        "body_is_invalid".to_owned()
    } else {
        format!("{path}_is_invalid")
    }
}

fn backticked<'a>(message: &'a str, lead: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(lead)?;
    rest.split('`').next()
}

/// Path parameters; a value that does not parse (a non-UUID id) → 400 `<param>_is_invalid`.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => match e.kind() {
                ErrorKind::ParseErrorAtKey { key, .. }
                | ErrorKind::DeserializeError { key, .. } => {
                    Err(ApiError::BadRequest(format!("{key}_is_invalid")))
                }
                _ => Err(ApiError::bad_request("id_is_invalid")),
            },
            Err(_) => Err(ApiError::bad_request("id_is_invalid")),
        }
    }
}

/// Query parameters, with the same field-specific codes as bodies.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded_parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                ApiError::BadRequest(field_code(&path, &e.into_inner().to_string()))
            })
    }
}

fn form_urlencoded_parse(input: &[u8]) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(input)
}

/// Default page size when the client names none.
pub const DEFAULT_PAGE_SIZE: i64 = 10;
/// Larger requests are clamped to this.
pub const MAX_PAGE_SIZE: i64 = 100;

/// `pageIndex` (0-based) and `pageSize` (1..=100, clamped) → a page.
pub fn page(index: Option<i64>, size: Option<i64>) -> Result<Page, ApiError> {
    let index = index.unwrap_or(0);
    if index < 0 {
        return Err(ApiError::bad_request("pageIndex_is_invalid"));
    }
    let size = size.unwrap_or(DEFAULT_PAGE_SIZE);
    if size < 1 {
        return Err(ApiError::bad_request("pageSize_is_invalid"));
    }
    Ok(Page {
        index,
        size: size.min(MAX_PAGE_SIZE),
    })
}

/// `after` (a cursor from a previous page's `nextCursor`) → where the page starts; 400 for
/// anything else, or beside a `pageIndex` other than 0. `by_time`: the list is sorted by time,
/// so the cursor must carry one.
pub fn cursor(after: Option<&str>, page: &Page, by_time: bool) -> Result<Option<Cursor>, ApiError> {
    let Some(text) = after.filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    if page.index != 0 {
        return Err(ApiError::bad_request("pageIndex_is_invalid"));
    }
    Cursor::decode(text)
        .filter(|c| !by_time || c.time().is_some())
        .map(Some)
        .ok_or_else(|| ApiError::bad_request("after_is_invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised_in_any_case() {
        let with = |content_type: &str| {
            let request = Request::builder()
                .header(CONTENT_TYPE, content_type)
                .body(axum::body::Body::empty())
                .expect("request");
            is_json(&request)
        };
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/json ",
            "application/merge-patch+json",
            "APPLICATION/VND.API+JSON;v=1",
        ] {
            assert!(with(yes), "{yes}");
        }
        for no in [
            "",
            "text/plain",
            "application/jsonx",
            "text/json",
            "+json",
            "application/",
            "application/xml",
            "text/x+json",
        ] {
            assert!(!with(no), "{no}");
        }
        let bare = Request::new(axum::body::Body::empty());
        assert!(!is_json(&bare));
    }

    #[test]
    fn field_codes_name_the_field() {
        assert_eq!(field_code(".", "missing field `name`"), "name_is_required");
        assert_eq!(
            field_code(
                "creatorId",
                "unknown field `creatorId`, expected one of ..."
            ),
            "creatorId_is_invalid"
        );
        assert_eq!(
            field_code("statements[0]", "missing field `effect`"),
            "statements[0].effect_is_required"
        );
        assert_eq!(
            field_code("name", "invalid type: integer `1`, expected a string"),
            "name_is_invalid"
        );
        assert_eq!(field_code(".", "invalid type: sequence"), "body_is_invalid");
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Named {
        name: String,
    }

    #[test]
    fn broken_syntax_is_invalid_json_whatever_the_type() {
        let code = |body: &str| match parse_json::<Named>(body.as_bytes()) {
            Err(ApiError::BadRequest(code)) => code,
            other => panic!("{body}: {other:?}"),
        };
        for broken in [
            "[1,2",
            "{\"name\": 1",
            "{\"name\":\"x\"} trailing",
            "",
            "nul",
        ] {
            assert_eq!(code(broken), "InvalidJson", "{broken}");
        }
        assert_ne!(code("[1,2]"), "InvalidJson");
        assert_eq!(code("{\"name\": 1}"), "name_is_invalid");
        assert_eq!(code("{}"), "name_is_required");
    }

    #[test]
    fn pages_are_bounded() {
        assert!(page(Some(-1), None).is_err());
        assert!(page(None, Some(0)).is_err());
        let p = page(None, Some(1000)).expect("clamped");
        assert_eq!((p.index, p.size), (0, MAX_PAGE_SIZE));
        let p = page(None, None).expect("default");
        assert_eq!(p.size, DEFAULT_PAGE_SIZE);
    }
}
