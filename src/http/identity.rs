//! Member login, logout, profile and password change.

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Data};
use super::extract::ApiJson;
use super::state::AppState;
use crate::auth::{commit_invalidating, CurrentSession, Invalidation};
use crate::credential::{
    canonical_email, Credential, CredentialKind, PasswordHasher, PasswordPolicyError,
};
use crate::db::identity::{self, OrganizationView, UserView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(profile))
        .routes(routes!(change_password))
}

/// Emails are at most 254 characters (RFC 5321).
const MAX_EMAIL_LEN: usize = 254;

/// Runs `check`, a password check, as a login attempt of the account `email` from `peer`
/// (SPEC §9): refused with 429 before it runs once the account's or the address's failures are
/// spent. It counts as a failure while it runs, so a burst of guesses cannot outrun the limit;
/// a wrong password (`Ok(None)`) stays counted, a right one or a check that decided nothing
/// (a full hashing queue, the database away) is given back.
async fn counted_attempt<T>(
    state: &AppState,
    email: &str,
    peer: SocketAddr,
    check: impl Future<Output = ApiResult<Option<T>>>,
) -> ApiResult<Option<T>> {
    let attempt = state
        .login_failures
        .attempt(canonical_email(email), peer.ip().into())
        .map_err(|retry_after_secs| ApiError::TooManyRequests { retry_after_secs })?;
    let outcome = check.await;
    if !matches!(outcome, Ok(None)) {
        attempt.refund();
    }
    outcome
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// Which organization's account: the same email may have an account in several
    /// organizations (each organization makes its own). Without it, the password decides.
    pub organization_id: Option<uuid::Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// The web session credential (`tgw_…`): send it as `Authorization: Bearer …`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserView,
}

/// Log in with email and password; returns a web session.
#[utoipa::path(post, path = "/api/v1/identity/login", tag = "identity", security(()),
    request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, description = "EmailPasswordMismatch"),
        (status = 429, description = "TooManyRequests"),
        (status = 503, description = "ServiceUnavailable: too many logins waiting to be checked")))]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Data<LoginResponse>> {
    let email = body.email.trim();
    if email.is_empty() {
        return Err(ApiError::bad_request("email_is_required"));
    }
    // The canonical form is bounded too: it keys the login limits held in memory.
    if email.chars().any(char::is_control)
        || email.len() > MAX_EMAIL_LEN
        || canonical_email(email).len() > MAX_EMAIL_LEN
    {
        return Err(ApiError::bad_request("email_is_invalid"));
    }
    if body.password.is_empty() {
        return Err(ApiError::bad_request("password_is_required"));
    }
    if PasswordHasher::check_policy(&body.password) == Err(PasswordPolicyError::TooLong) {
        return Err(ApiError::bad_request("password_is_invalid"));
    }
    let user = counted_attempt(&state, email, peer, async {
        let candidates = identity::login_candidates(&state.db, email, body.organization_id).await?;
        // An unknown email is verified against a dummy hash: same cost, same answer.
        if candidates.is_empty() {
            state.hasher.verify(body.password, None).await?;
            return Ok(None);
        }
        // The same email may have an account in several organizations: the password decides.
        for candidate in candidates {
            let phc = Some(candidate.password_hash.clone());
            if state.hasher.verify(body.password.clone(), phc).await? {
                return Ok(Some(candidate));
            }
        }
        Ok(None)
    })
    .await?;
    let Some(user) = user else {
        return Err(ApiError::UnauthorizedWith("EmailPasswordMismatch"));
    };
    let credential = Credential::generate(CredentialKind::WebSession);
    let ttl =
        chrono::Duration::from_std(state.session_ttl).map_err(|e| ApiError::Internal(e.into()))?;
    let expires_at = Utc::now() + ttl;
    identity::create_session(
        &state.db,
        user.id,
        &state.auth.hash_key.digest(&credential),
        state.auth.hash_key.id(),
        expires_at,
    )
    .await?;
    identity::note_login(&state.db, user.id).await?;
    tracing::info!(user_id = %user.id, "member logged in");
    Ok(Data(LoginResponse {
        token: credential.expose().to_owned(),
        expires_at,
        user: UserView {
            id: user.id,
            email: user.email,
            name: user.name,
        },
    }))
}

/// End this web session.
#[utoipa::path(post, path = "/api/v1/identity/logout", tag = "identity",
    responses((status = 200, body = bool)))]
async fn logout(State(state): State<AppState>, session: CurrentSession) -> ApiResult<Data<bool>> {
    let mut tx = state.db.begin().await?;
    identity::delete_session(&mut *tx, session.session_id).await?;
    let what = Invalidation::Sessions(session.user.id);
    commit_invalidating(&state.auth.caches, tx, what).await?;
    Ok(Data(true))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    #[serde(flatten)]
    pub user: UserView,
    pub organizations: Vec<OrganizationView>,
}

/// The logged-in member's profile and organizations.
#[utoipa::path(get, path = "/api/v1/user/profile", tag = "identity",
    responses((status = 200, body = Profile)))]
async fn profile(
    State(state): State<AppState>,
    session: CurrentSession,
) -> ApiResult<Data<Profile>> {
    let organizations = identity::organizations_of(&state.db, session.user.id).await?;
    Ok(Data(Profile {
        user: session.user,
        organizations,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

/// Change the password; every other session of the user ends. A wrong `currentPassword` counts
/// as a failed login.
#[utoipa::path(put, path = "/api/v1/user/password", tag = "identity",
    request_body = ChangePassword,
    responses((status = 200, body = bool), (status = 400, description = "currentPassword_is_invalid"),
        (status = 429, description = "TooManyRequests")))]
async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: CurrentSession,
    ApiJson(body): ApiJson<ChangePassword>,
) -> ApiResult<Data<bool>> {
    match PasswordHasher::check_policy(&body.new_password) {
        Ok(()) => {}
        Err(_) if body.new_password.is_empty() => {
            return Err(ApiError::bad_request("newPassword_is_required"))
        }
        Err(_) => return Err(ApiError::bad_request("newPassword_is_invalid")),
    }
    if body.current_password.chars().count() > crate::credential::MAX_PASSWORD_LEN {
        return Err(ApiError::bad_request("currentPassword_is_invalid"));
    }
    let verified = counted_attempt(&state, &session.user.email, peer, async {
        let phc = identity::password_hash(&state.db, session.user.id).await?;
        let verified = state.hasher.verify(body.current_password, phc).await?;
        Ok(verified.then_some(()))
    })
    .await?;
    if verified.is_none() {
        return Err(ApiError::bad_request("currentPassword_is_invalid"));
    }
    let hash = state.hasher.hash(body.new_password).await?;
    let mut tx = state.db.begin().await?;
    identity::set_password(&mut *tx, session.user.id, &hash).await?;
    identity::delete_other_sessions(&mut *tx, session.user.id, session.session_id).await?;
    let what = Invalidation::Sessions(session.user.id);
    commit_invalidating(&state.auth.caches, tx, what).await?;
    Ok(Data(true))
}
