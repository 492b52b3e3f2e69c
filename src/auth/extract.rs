//! Authentication is an extractor: a handler that takes a `Principal` (or a `CurrentSession`)
//! runs only for a caller the `Authorization` header proves. Any application state works that
//! can hand out a `Verifier` (`FromRef`); a refusal is a `Refusal` for the HTTP layer to answer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName};
use uuid::Uuid;

use super::principal::{CurrentSession, Principal, PrincipalKind};
use super::refusal::Refusal;
use super::tokens::token_principal;
use super::verifier::Verifier;
use crate::credential::{Credential, CredentialKind};
use crate::db::identity::UserView;
use crate::metrics;
use crate::policy::Layers;

/// FeatBit's name for the header a member session uses to pick an organization.
pub const ORGANIZATION_HEADER: HeaderName = HeaderName::from_static("organization");

/// The credential in `Authorization: Bearer <credential>`, or the bare `Authorization:
/// <credential>` FeatBit clients send. Missing or malformed → 401 without any database work.
pub fn bearer_credential(headers: &HeaderMap) -> Result<Credential, Refusal> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(Refusal::Unauthorized)?
        .trim();
    let raw = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return Err(Refusal::Unauthorized),
        None => value,
    };
    Credential::parse(raw).map_err(|_| Refusal::Unauthorized)
}

/// The peer address of the connection. (Behind a proxy this is the proxy: rate limits then
/// apply to it as a whole; put the limits in the proxy or keep them generous.)
pub fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// A failed authentication takes from the client's bucket; once it is empty, failures are
/// refused as too many (429 with `Retry-After`) instead of unauthorized. Successful requests
/// never count.
fn limit_failures<T>(
    verifier: &Verifier,
    parts: &Parts,
    result: Result<T, Refusal>,
) -> Result<T, Refusal> {
    let result = match result {
        Err(Refusal::Unauthorized) => match verifier.auth_failures.fail(client_ip(parts).into()) {
            Ok(()) => Err(Refusal::Unauthorized),
            Err(retry_after_secs) => Err(Refusal::TooManyFailures { retry_after_secs }),
        },
        other => other,
    };
    if let Err(refusal) = &result {
        let outcome = match refusal {
            Refusal::Unauthorized => metrics::UNAUTHORIZED,
            Refusal::TooManyFailures { .. } => metrics::RATE_LIMITED,
            Refusal::Forbidden => metrics::FORBIDDEN,
            Refusal::BadRequest(_) | Refusal::Database(_) => return result,
        };
        metrics::decision(claimed_kind(&parts.headers), outcome);
    }
    result
}

/// The kind of credential a refused request presented, for metrics: its prefix says.
fn claimed_kind(headers: &HeaderMap) -> &'static str {
    match bearer_credential(headers).map(|c| c.kind()) {
        Ok(CredentialKind::WebSession) => "session",
        Ok(CredentialKind::PersonalToken) => "personal_token",
        Ok(CredentialKind::ServiceToken) => "service_token",
        Err(_) => "unknown",
    }
}

impl<S> FromRequestParts<S> for CurrentSession
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refusal> {
        let verifier = Verifier::from_ref(state);
        let result = session(parts, &verifier).await;
        limit_failures(&verifier, parts, result)
    }
}

async fn session(parts: &Parts, verifier: &Verifier) -> Result<CurrentSession, Refusal> {
    let credential = bearer_credential(&parts.headers)?;
    if credential.kind() != CredentialKind::WebSession {
        // Tokens act inside one organization; these routes belong to the person.
        return Err(Refusal::Forbidden);
    }
    let session = verifier
        .session(&credential)
        .await?
        .ok_or(Refusal::Unauthorized)?;
    let user = &session.user;
    Ok(CurrentSession {
        session_id: user.session_id,
        user: UserView {
            id: user.user_id,
            email: user.email.clone(),
            name: user.name.clone(),
        },
    })
}

/// The `Organization` header, if any. A value that is not a UUID → 400.
fn organization_header(headers: &HeaderMap) -> Result<Option<Uuid>, Refusal> {
    match headers.get(&ORGANIZATION_HEADER) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| Uuid::parse_str(v.trim()).ok())
            .map(Some)
            .ok_or(Refusal::BadRequest("organization_is_invalid")),
    }
}

impl<S> FromRequestParts<S> for Principal
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refusal> {
        let verifier = Verifier::from_ref(state);
        let result = principal(parts, &verifier).await;
        limit_failures(&verifier, parts, result)
    }
}

async fn principal(parts: &Parts, verifier: &Verifier) -> Result<Principal, Refusal> {
    let credential = bearer_credential(&parts.headers)?;
    let requested_org = organization_header(&parts.headers)?;
    match credential.kind() {
        CredentialKind::WebSession => {
            let session = verifier
                .session(&credential)
                .await?
                .ok_or(Refusal::Unauthorized)?;
            let organization_id = match requested_org {
                Some(org) => org,
                None => match session.organizations.as_slice() {
                    [only] => *only,
                    [] => return Err(Refusal::Forbidden),
                    _ => return Err(Refusal::BadRequest("organization_is_required")),
                },
            };
            let live = verifier
                .live_permissions(organization_id, session.user.user_id)
                .await?;
            if !live.is_member {
                return Err(Refusal::Forbidden);
            }
            Ok(Principal {
                kind: PrincipalKind::Session {
                    session_id: session.user.session_id,
                    user_id: session.user.user_id,
                },
                organization_id,
                layers: Layers::member(live.statements.clone()),
                previous_secret: false,
            })
        }
        CredentialKind::PersonalToken | CredentialKind::ServiceToken => {
            token_principal(verifier, &credential, requested_org).await
        }
    }
}
