//! `POST /api/v1/secret-scanning/github`: GitHub's secret-scanning partner programme reports
//! secrets found in public code. A report is believed only with a valid signature by one of the
//! configured keys (`gateway::secret_scanning`); every reported token of ours is deactivated (not
//! deleted: its owner can see what happened and reactivate it after rotating) and audited as
//! `access-token.leaked` with the URL. The answer labels each report without echoing a secret.

use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{json_response, ApiError, ApiResult};
use super::extract::{json_body, parse_json};
use super::state::AppState;
use crate::auth::{commit_invalidating, Invalidation};
use crate::credential::{Credential, CredentialKind, HashKey};
use crate::db::audit::{self, Actor};
use crate::db::tokens::{self, TokenStatus};
use crate::db::{hash_keys, iam};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(github))
}

const KEY_ID: HeaderName = HeaderName::from_static("github-public-key-identifier");
const SIGNATURE: HeaderName = HeaderName::from_static("github-public-key-signature");
/// Most secrets one report may carry.
const MAX_REPORTED: usize = 1000;

/// One secret GitHub found.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReportedSecret {
    pub token: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Where it was found.
    pub url: Option<String>,
    pub source: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    TruePositive,
    FalsePositive,
}

/// GitHub's answer format: never the secret, only its SHA-256.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportLabel {
    /// SHA-256 of the reported secret, hex.
    pub token_hash: String,
    pub token_type: String,
    pub label: Label,
}

/// Who deactivates a leaked token, in the audit log.
const SCANNING_ACTOR: Actor = Actor {
    kind: "secret-scanning",
    id: Uuid::nil(),
};

/// GitHub reports secrets it found in public code; ours are deactivated.
#[utoipa::path(post, path = "/api/v1/secret-scanning/github", tag = "integrations",
    operation_id = "githubSecretScanning", security(()),
    description = "GitHub's secret-scanning partner format: a JSON array of `{token, type, url, \
                   source}` signed with ECDSA P-256 / SHA-256 over the raw body \
                   (`Github-Public-Key-Identifier`, `Github-Public-Key-Signature`), verified \
                   with the keys in `TOKENGATE_SECRET_SCANNING_KEYS_FILE`. Matching tokens are \
                   deactivated and audited as `access-token.leaked`. The answer is GitHub's \
                   array, not the envelope.",
    request_body = Vec<ReportedSecret>,
    params(("Github-Public-Key-Identifier" = String, Header),
           ("Github-Public-Key-Signature" = String, Header, description = "base64 DER ECDSA signature")),
    responses((status = 200, body = Vec<ReportLabel>, description = "one label per reported secret"),
              (status = 400, description = "InvalidJson or body_is_invalid"),
              (status = 401, description = "Unauthorized: missing or bad signature"),
              (status = 413, description = "PayloadTooLarge"),
              (status = 415, description = "UnsupportedMediaType"),
              (status = 503, description = "ServiceUnavailable: no keys configured, or the database")))]
async fn github(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let Some(keys) = state.gateway.scanning_keys.clone() else {
        tracing::warn!(
            "a secret-scanning report arrived but TOKENGATE_SECRET_SCANNING_KEYS_FILE is not set"
        );
        return Err(ApiError::ServiceUnavailable);
    };
    let headers = request.headers();
    let header = |name: &HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (key_id, signature) = (header(&KEY_ID), header(&SIGNATURE));
    let (Some(key_id), Some(signature)) = (key_id, signature) else {
        return Err(ApiError::Unauthorized);
    };
    let body = json_body(request).await?;
    if let Err(why) = keys.verify(&key_id, &signature, &body) {
        tracing::warn!(
            ?why,
            key_id,
            "secret-scanning report refused: bad signature"
        );
        return Err(ApiError::Unauthorized);
    }
    let reported: Vec<ReportedSecret> = parse_json(&body)?;
    if reported.len() > MAX_REPORTED {
        return Err(ApiError::bad_request("body_is_invalid"));
    }
    let mut labels = Vec::with_capacity(reported.len());
    for secret in &reported {
        let leaked = revoke(&state, secret).await?;
        labels.push(ReportLabel {
            token_hash: hex_sha256(&secret.token),
            token_type: secret.kind.clone(),
            label: if leaked {
                Label::TruePositive
            } else {
                Label::FalsePositive
            },
        });
    }
    let body = serde_json::to_vec(&labels).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(json_response(StatusCode::OK, body))
}

/// Deactivates the token this secret is (current or previous secret of a rotation) and audits
/// it; false when it is none of ours. Reporting the same secret again audits it again (GitHub
/// reports each new public occurrence) and leaves the token inactive.
async fn revoke(state: &AppState, secret: &ReportedSecret) -> ApiResult<bool> {
    let Ok(credential) = Credential::parse(secret.token.trim()) else {
        return Ok(false);
    };
    if credential.kind() == CredentialKind::WebSession {
        return Ok(false);
    }
    // Under the current hash key, then each previous one: a token not used since the key was
    // rotated is still stored under the key that made it.
    let keys: Vec<&HashKey> = std::iter::once(&state.auth.hash_key)
        .chain(&state.auth.previous_keys)
        .collect();
    let found = hash_keys::find_token(&state.db, keys, &credential, false)
        .await?
        .map(|(found, _, _)| found);
    let Some(found) = found else {
        return Ok(false);
    };
    let mut tx = state.db.begin().await?;
    iam::lock_for_read(&mut tx, found.organization_id).await?;
    let Some(token) = tokens::get(&mut *tx, found.organization_id, found.id, true).await? else {
        return Ok(false);
    };
    tokens::set_status(
        &mut *tx,
        token.organization_id,
        token.id,
        TokenStatus::Inactive,
    )
    .await?;
    audit::record(
        &mut *tx,
        token.organization_id,
        SCANNING_ACTOR,
        "access-token.leaked",
        Some(token.id),
        json!({
            "url": secret.url,
            "source": secret.source,
            "status": { "before": token.status, "after": TokenStatus::Inactive },
        }),
    )
    .await?;
    commit_invalidating(&state.auth.caches, tx, Invalidation::Token(token.id)).await?;
    tracing::warn!(token_id = %token.id, "access token reported leaked; deactivated");
    Ok(true)
}

fn hex_sha256(text: &str) -> String {
    use std::fmt::Write;
    Sha256::digest(text.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_hash_is_sha256_hex() {
        assert_eq!(
            hex_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
