//! Access-token verification.

use uuid::Uuid;

use super::Principal;
use crate::credential::Credential;
use crate::http::{ApiError, AppState};

pub async fn principal(
    _state: &AppState,
    _credential: &Credential,
    _requested_org: Option<Uuid>,
) -> Result<Principal, ApiError> {
    Err(ApiError::Unauthorized)
}
