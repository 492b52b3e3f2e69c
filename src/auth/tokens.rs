//! Access-token verification (SPEC §5.3, §7): the digest finds the token in one round trip,
//! then its state and layers decide.

use chrono::Utc;
use uuid::Uuid;

use super::{Principal, PrincipalKind};
use crate::credential::{Credential, CredentialKind};
use crate::db::iam::parse_statements;
use crate::db::identity::UserView;
use crate::db::tokens;
use crate::http::{ApiError, AppState};
use crate::policy::Statement;

pub async fn principal(
    state: &AppState,
    credential: &Credential,
    requested_org: Option<Uuid>,
) -> Result<Principal, ApiError> {
    let digest = state.hash_key.digest(credential);
    let token = tokens::by_digest(&state.db, &digest)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let personal = token.kind == "Personal";
    // The prefix is part of the secret, so a mismatch means a corrupted row, not a client error.
    let expected_kind = if personal {
        CredentialKind::PersonalToken
    } else {
        CredentialKind::ServiceToken
    };
    if credential.kind() != expected_kind {
        return Err(ApiError::Unauthorized);
    }
    if requested_org.is_some_and(|org| org != token.organization_id) {
        return Err(ApiError::Forbidden);
    }
    if token.status != "Active"
        || token.expires_at.is_some_and(|at| at <= Utc::now())
        || (personal && !token.owner_is_member)
    {
        return Err(ApiError::Forbidden);
    }
    state.last_used.touch(token.id);

    let frozen: Vec<Vec<Statement>> = serde_json::from_value(token.ceiling)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("corrupt token ceiling: {e}")))?;
    let scope = token.scope.map(parse_statements).transpose()?;
    let mut layers = Vec::with_capacity(frozen.len() + 2);
    if personal {
        layers.push(parse_statements(token.live_statements)?);
    }
    layers.extend(frozen);
    layers.extend(scope);
    if layers.is_empty() {
        // A service token always has a scope; an empty list would deny anyway, but say so.
        return Err(ApiError::Forbidden);
    }
    let kind = if personal {
        PrincipalKind::PersonalToken { token_id: token.id }
    } else {
        PrincipalKind::ServiceToken { token_id: token.id }
    };
    Ok(Principal {
        kind,
        organization_id: token.organization_id,
        user: UserView {
            id: token.creator_id,
            name: token.creator_name,
            email: token.creator_email,
        },
        layers,
    })
}
