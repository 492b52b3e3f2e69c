//! Authentication is an extractor; authorization is an explicit `principal.require(..)` call in
//! each handler.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::cache::LiveEntry;
use crate::credential::{Credential, CredentialKind};
use crate::db::audit::Actor;
use crate::db::iam;
use crate::db::identity::{self, SessionUser, UserView};
use crate::http::{client_ip, ApiError, AppState};
use crate::policy::Layers;

/// FeatBit's name for the header a member session uses to pick an organization.
pub const ORGANIZATION_HEADER: HeaderName = HeaderName::from_static("organization");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum PrincipalKind {
    /// A member logged in to the web UI.
    #[serde(rename_all = "camelCase")]
    Session { session_id: Uuid, user_id: Uuid },
    /// A token acting for its owner, a member of the organization.
    #[serde(rename_all = "camelCase")]
    PersonalToken { token_id: Uuid, owner_id: Uuid },
    /// A token of the organization's own. It is no member: its creator is provenance only.
    #[serde(rename_all = "camelCase")]
    ServiceToken { token_id: Uuid, creator_id: Uuid },
}

/// An authenticated caller, bound to one organization, with the layers its permission is made of.
#[derive(Debug, Clone)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub organization_id: Uuid,
    /// Every layer must allow an action (SPEC §2.3).
    pub layers: Layers,
    /// The credential is a token's previous secret, still in the grace period of a rotation: it
    /// may be used and may revoke its token, but never obtains a new secret.
    pub previous_secret: bool,
}

impl Principal {
    pub fn allows(&self, action: &str, rn: &str) -> bool {
        self.layers.allows(action, rn)
    }

    /// 403 `Forbidden` unless every layer allows `action` on `rn`.
    pub fn require(&self, action: &str, rn: &str) -> Result<(), ApiError> {
        if self.allows(action, rn) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// The member acting: a session's user or a personal token's owner. A service token is not
    /// a member (SPEC §5.2), so "own" tokens and "own" permissions never apply to it.
    pub fn member_id(&self) -> Option<Uuid> {
        match self.kind {
            PrincipalKind::Session { user_id, .. } => Some(user_id),
            PrincipalKind::PersonalToken { owner_id, .. } => Some(owner_id),
            PrincipalKind::ServiceToken { .. } => None,
        }
    }

    /// The person answerable for what this principal does, recorded as the creator of tokens it
    /// makes: the member, or the user who created the service token.
    pub fn accountable_user_id(&self) -> Uuid {
        match self.kind {
            PrincipalKind::Session { user_id, .. } => user_id,
            PrincipalKind::PersonalToken { owner_id, .. } => owner_id,
            PrincipalKind::ServiceToken { creator_id, .. } => creator_id,
        }
    }

    /// The token calling, if a token is.
    pub fn token_id(&self) -> Option<Uuid> {
        match self.kind {
            PrincipalKind::Session { .. } => None,
            PrincipalKind::PersonalToken { token_id, .. }
            | PrincipalKind::ServiceToken { token_id, .. } => Some(token_id),
        }
    }

    pub fn actor(&self) -> Actor {
        match self.kind {
            PrincipalKind::Session { user_id, .. } => Actor::user(user_id),
            PrincipalKind::PersonalToken { token_id, .. } => Actor {
                kind: "personal-token",
                id: token_id,
            },
            PrincipalKind::ServiceToken { token_id, .. } => Actor {
                kind: "service-token",
                id: token_id,
            },
        }
    }
}

/// The credential in `Authorization: Bearer <credential>`, or the bare `Authorization:
/// <credential>` FeatBit clients send. Missing or malformed → 401 without any database work.
pub fn bearer_credential(headers: &HeaderMap) -> Result<Credential, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized)?
        .trim();
    let raw = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return Err(ApiError::Unauthorized),
        None => value,
    };
    Credential::parse(raw).map_err(|_| ApiError::Unauthorized)
}

/// A logged-in web session, not bound to an organization (profile, organizations, logout).
#[derive(Debug, Clone)]
pub struct CurrentSession {
    pub session_id: Uuid,
    pub user: UserView,
}

/// A failed authentication takes from the client's bucket; once it is empty, failures answer
/// 429 with `Retry-After` instead of 401. Successful requests never count.
fn limit_failures<T>(
    state: &AppState,
    parts: &Parts,
    result: Result<T, ApiError>,
) -> Result<T, ApiError> {
    match result {
        Err(ApiError::Unauthorized) => match state.auth_failures.fail(client_ip(parts).into()) {
            Ok(()) => Err(ApiError::Unauthorized),
            Err(retry_after_secs) => Err(ApiError::TooManyRequests { retry_after_secs }),
        },
        other => other,
    }
}

impl FromRequestParts<AppState> for CurrentSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let result = Self::authenticate(parts, state).await;
        limit_failures(state, parts, result)
    }
}

impl CurrentSession {
    async fn authenticate(parts: &Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential = bearer_credential(&parts.headers)?;
        if credential.kind() != CredentialKind::WebSession {
            // Tokens act inside one organization; these routes belong to the person.
            return Err(ApiError::Forbidden);
        }
        let session = session(state, &credential).await?;
        Ok(CurrentSession {
            session_id: session.session_id,
            user: UserView {
                id: session.user_id,
                email: session.email,
                name: session.name,
            },
        })
    }
}

async fn session(state: &AppState, credential: &Credential) -> Result<SessionUser, ApiError> {
    let digest = state.hash_key.digest(credential);
    identity::session_by_digest(&state.db, &digest)
        .await?
        .ok_or(ApiError::Unauthorized)
}

/// The `Organization` header, if any. A value that is not a UUID → 400.
fn organization_header(headers: &HeaderMap) -> Result<Option<Uuid>, ApiError> {
    match headers.get(&ORGANIZATION_HEADER) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| Uuid::parse_str(v.trim()).ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("organization_is_invalid")),
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let result = Self::authenticate(parts, state).await;
        limit_failures(state, parts, result)
    }
}

impl Principal {
    async fn authenticate(parts: &Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential = bearer_credential(&parts.headers)?;
        let requested_org = organization_header(&parts.headers)?;
        match credential.kind() {
            CredentialKind::WebSession => {
                let session = session(state, &credential).await?;
                let organization_id = match requested_org {
                    Some(org) => org,
                    None => {
                        let orgs = identity::organizations_of(&state.db, session.user_id).await?;
                        match orgs.as_slice() {
                            [only] => only.id,
                            [] => return Err(ApiError::Forbidden),
                            _ => return Err(ApiError::bad_request("organization_is_required")),
                        }
                    }
                };
                let live = live_permissions(state, organization_id, session.user_id).await?;
                if !live.is_member {
                    return Err(ApiError::Forbidden);
                }
                Ok(Principal {
                    kind: PrincipalKind::Session {
                        session_id: session.session_id,
                        user_id: session.user_id,
                    },
                    organization_id,
                    layers: Layers::member(live.statements.clone()),
                    previous_secret: false,
                })
            }
            CredentialKind::PersonalToken | CredentialKind::ServiceToken => {
                crate::auth::tokens::principal(state, &credential, requested_org).await
            }
        }
    }
}

/// A member's live permissions in an organization, from the cache or one database round trip.
pub async fn live_permissions(
    state: &AppState,
    organization_id: Uuid,
    user_id: Uuid,
) -> Result<Arc<LiveEntry>, ApiError> {
    if let Some(entry) = state.caches.live(organization_id, user_id) {
        return Ok(entry);
    }
    let generation = state.caches.generation();
    crate::auth::cache::CacheStats::count(&state.caches.stats.db_lookups);
    let (is_member, statements) = state
        .readers
        .read_detached(move |conn| {
            Box::pin(iam::member_permissions(conn, organization_id, user_id))
        })
        .await?;
    let entry = Arc::new(LiveEntry {
        is_member,
        statements: Arc::new(statements),
    });
    state
        .caches
        .insert_live(generation, organization_id, user_id, entry.clone());
    Ok(entry)
}
