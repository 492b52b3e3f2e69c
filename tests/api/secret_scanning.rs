//! GitHub secret scanning (SPEC §4.1): signed reports deactivate our leaked tokens.

use std::sync::Arc;

use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokengate::gateway::secret_scanning::ScanningKeys;
use tokengate::gateway::GatewayConfig;

use crate::helpers::{Resp, Setup, TestApp};

const PATH: &str = "/api/v1/secret-scanning/github";

/// A key of the test's own, named `k1` in GitHub's `public_keys` format.
fn github_key() -> (SigningKey, ScanningKeys) {
    let signing = SigningKey::random(&mut rand::rngs::OsRng);
    let pem = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("pem");
    let file = json!({ "public_keys": [
        { "key_identifier": "k1", "key": pem, "is_current": true }
    ] });
    (
        signing,
        ScanningKeys::parse(&file.to_string()).expect("keys"),
    )
}

fn sign(key: &SigningKey, body: &[u8]) -> String {
    let signature: Signature = key.sign(body);
    base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
}

async fn report(app: &TestApp, key_id: &str, signature: &str, body: &str) -> Resp {
    let (key_id, signature, body) = (key_id.to_owned(), signature.to_owned(), body.to_owned());
    app.raw(Method::POST, PATH, None, move |r| {
        r.header("content-type", "application/json")
            .header("Github-Public-Key-Identifier", key_id)
            .header("Github-Public-Key-Signature", signature)
            .body(body)
    })
    .await
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[sqlx::test]
async fn a_signed_report_deactivates_and_audits_the_leaked_token(db: PgPool) {
    let (signing, keys) = github_key();
    let app = TestApp::spawn_with(
        db,
        Setup {
            gateway: GatewayConfig {
                scanning_keys: Some(Arc::new(keys)),
                ..GatewayConfig::default()
            },
            ..Setup::default()
        },
    )
    .await;
    let (_, owner) = app.owner().await;
    let (id, leaked) = app
        .token(&owner, json!({ "name": "leaked", "type": "Personal" }))
        .await;
    let (_, kept) = app
        .token(&owner, json!({ "name": "kept", "type": "Personal" }))
        .await;
    app.get("/api/v1/auth/whoami", &leaked).await.assert(200);
    let url = "https://github.com/someone/repo/blob/main/.env";
    let body = json!([
        { "token": leaked.token, "type": "tokengate_personal_token", "url": url, "source": "content" },
        { "token": "tgp_not-ours", "type": "tokengate_personal_token", "url": url, "source": "content" }
    ])
    .to_string();

    // Unsigned, wrongly signed or signed by an unknown key: 401, nothing changes.
    report(&app, "k1", "", &body)
        .await
        .assert_error(401, "Unauthorized");
    report(&app, "k1", &sign(&signing, b"[]"), &body)
        .await
        .assert_error(401, "Unauthorized");
    report(&app, "k2", &sign(&signing, body.as_bytes()), &body)
        .await
        .assert_error(401, "Unauthorized");
    app.get("/api/v1/auth/whoami", &leaked).await.assert(200);

    let answer = report(&app, "k1", &sign(&signing, body.as_bytes()), &body).await;
    answer.assert(200);
    assert_eq!(
        answer.body,
        json!([
            { "token_hash": sha256_hex(&leaked.token), "token_type": "tokengate_personal_token", "label": "true_positive" },
            { "token_hash": sha256_hex("tgp_not-ours"), "token_type": "tokengate_personal_token", "label": "false_positive" }
        ])
    );
    let text = answer.body.to_string();
    assert!(!text.contains(&leaked.token), "the answer echoes a secret");
    // Deactivated, not deleted: 403 now, and the owner still sees it.
    app.get("/api/v1/auth/whoami", &leaked).await.assert(403);
    app.get("/api/v1/auth/whoami", &kept).await.assert(200);
    let view = app
        .get(&format!("/api/v1/access-tokens/{id}"), &owner)
        .await;
    assert_eq!(view.data()["status"], json!("Inactive"));
    let audit = app
        .get("/api/v1/audit-logs?action=access-token.leaked", &owner)
        .await;
    audit.assert(200);
    let items: &Vec<Value> = audit.data()["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{:#}", audit.body);
    assert_eq!(items[0]["targetId"], json!(id.to_string()));
    assert_eq!(items[0]["details"]["url"], json!(url));
}

#[sqlx::test]
async fn without_configured_keys_reports_are_refused(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (signing, _) = github_key();
    let body = "[]";
    report(&app, "k1", &sign(&signing, body.as_bytes()), body)
        .await
        .assert_error(503, "ServiceUnavailable");
}

#[sqlx::test]
async fn a_token_stored_under_a_previous_hash_key_is_found_and_deactivated(db: PgPool) {
    let (signing, keys) = github_key();
    let (a, b) = (
        tokengate::credential::HashKey::generate_base64(),
        tokengate::credential::HashKey::generate_base64(),
    );
    // Made under key A and not used since the key was rotated to B.
    let before = TestApp::spawn_with(
        db.clone(),
        Setup {
            key: Some(a.clone()),
            ..Setup::default()
        },
    )
    .await;
    let (_, owner) = before.owner().await;
    let (id, leaked) = before
        .token(&owner, json!({ "name": "old-key", "type": "Personal" }))
        .await;
    let after = TestApp::spawn_with(
        db,
        Setup {
            key: Some(b),
            previous_keys: vec![a],
            gateway: GatewayConfig {
                scanning_keys: Some(Arc::new(keys)),
                ..GatewayConfig::default()
            },
            ..Setup::default()
        },
    )
    .await;
    let body = json!([{ "token": leaked.token, "type": "tokengate_personal_token",
        "url": "https://github.com/someone/repo", "source": "content" }])
    .to_string();
    let answer = report(&after, "k1", &sign(&signing, body.as_bytes()), &body).await;
    answer.assert(200);
    assert_eq!(
        answer.body[0]["label"],
        json!("true_positive"),
        "{:#}",
        answer.body
    );
    after.get("/api/v1/auth/whoami", &leaked).await.assert(403);
    let view = after
        .get(&format!("/api/v1/access-tokens/{id}"), &owner)
        .await;
    assert_eq!(view.data()["status"], json!("Inactive"));
}
