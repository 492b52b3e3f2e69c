//! Why authentication or a permission check turned a request away, in authentication's own
//! words. The HTTP layer decides how each is answered (`http::ApiError` from a `Refusal`).

/// A request that may not go on.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No credential, a malformed one, or one that matches nothing (SPEC §4.2: 401).
    #[error("unauthorized")]
    Unauthorized,
    /// A known caller that may not do this, or not any more (403).
    #[error("forbidden")]
    Forbidden,
    /// This client address failed to authenticate too often (429 with `Retry-After`).
    #[error("too many failed authentications")]
    TooManyFailures { retry_after_secs: u64 },
    /// A header that is present but not what it must be (400 with this code).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The database did not answer a verification read: down, busy, or a row that does not
    /// decode. Answered as any failed query is.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}
