//! Headers every response carries, whatever produced it: a handler, a rejection, the fallback,
//! a timeout or CORS (SPEC §9).

use axum::http::{header, HeaderValue};
use tower_http::set_header::SetResponseHeaderLayer;

/// Browsers must not guess a type other than the one sent (a JSON error echoing input is never
/// run as script or styled as HTML).
pub(super) fn nosniff() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    )
}

/// Nothing is kept by browsers or shared caches: API answers carry secrets (login, token
/// creation, rotation) and permissions that change at once. A route that may be cached (static
/// files of the web page) says so itself, and that wins; no `/api/v1` route does.
pub(super) fn no_store() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    )
}
