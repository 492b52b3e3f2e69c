//! Abuse limits: failed-authentication and failed-login rate limits, header size, page size.

use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{Caller, TestApp, OWNER_EMAIL, PASSWORD};

#[sqlx::test]
async fn failed_authentications_from_one_address_get_429_and_valid_traffic_keeps_working(
    db: PgPool,
) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let (_, token) = app
        .token(&owner, json!({ "name": "good", "type": "Personal" }))
        .await;
    let bad = Caller {
        token: format!("tgp_{}", "A".repeat(49)),
        ..token.clone()
    };
    // The default burst is 30 failures.
    for _ in 0..30 {
        app.get("/api/v1/auth/whoami", &bad)
            .await
            .assert_error(401, "Unauthorized");
    }
    let limited = app.get("/api/v1/auth/whoami", &bad).await;
    limited.assert_error(429, "TooManyRequests");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry));
    // A valid credential from the same address is unaffected.
    app.get("/api/v1/auth/whoami", &token).await.assert(200);
    app.get("/api/v1/members", &owner).await.assert(200);
}

#[sqlx::test]
async fn failed_logins_per_account_get_429_before_any_password_check(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    app.member(&owner, "other@example.test", &[]).await;
    for _ in 0..10 {
        app.login(OWNER_EMAIL, "wrong password")
            .await
            .assert_error(401, "EmailPasswordMismatch");
    }
    let limited = app.login(OWNER_EMAIL, "wrong password").await;
    limited.assert_error(429, "TooManyRequests");
    assert!(limited.headers.contains_key("retry-after"));
    // Even the right password waits now: the limit is what stops guessing.
    app.login(OWNER_EMAIL, PASSWORD)
        .await
        .assert_error(429, "TooManyRequests");
    // Another account from the same address is unaffected, and so is an existing session.
    app.login("other@example.test", PASSWORD).await.assert(200);
    app.get("/api/v1/user/profile", &owner).await.assert(200);
}

#[sqlx::test]
async fn oversized_headers_are_431_in_the_envelope(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.raw(Method::GET, "/health/live", None, |r| {
        r.header("X-Padding", "x".repeat(20 * 1024))
    })
    .await
    .assert_error(431, "RequestHeaderFieldsTooLarge");
}

#[sqlx::test]
async fn rn_and_action_lengths_are_bounded(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let long_rn = format!("project/{}", "x".repeat(1100));
    app.post(
        "/api/v1/auth/check",
        &owner,
        json!({ "checks": [{ "action": "ManageFeatureFlag", "resource": long_rn }] }),
    )
    .await
    .assert_error(400, "checks[0].resource_is_invalid");
    app.post(
        "/api/v1/policies",
        &owner,
        json!({ "name": "Long", "statements": [{ "resourceType": "flag", "effect": "allow",
            "actions": ["*"], "resources": [long_rn] }] }),
    )
    .await
    .assert_error(400, "statements[0].resources_is_invalid");
    let actions = vec!["ManageFeatureFlag"; 101];
    app.post(
        "/api/v1/policies",
        &owner,
        json!({ "name": "Many", "statements": [{ "resourceType": "flag", "effect": "allow",
            "actions": actions, "resources": ["project/*"] }] }),
    )
    .await
    .assert_error(400, "statements[0].actions_is_invalid");
}

/// Found by schemathesis: PostgreSQL cannot store a NUL character, which once surfaced as 500.
#[sqlx::test]
async fn nul_characters_are_refused_with_400_never_500(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    app.get("/api/v1/members?name=%00x", &owner)
        .await
        .assert_error(400, "name_is_invalid");
    app.get("/api/v1/groups?name=a%00", &owner)
        .await
        .assert_error(400, "name_is_invalid");
    app.login("a\u{0}@example.test", PASSWORD)
        .await
        .assert_error(400, "email_is_invalid");
    app.post(
        "/api/v1/policies",
        &owner,
        json!({ "name": "p", "description": "bad\u{0}" }),
    )
    .await
    .assert_error(400, "description_is_invalid");
    app.post(
        "/api/v1/groups",
        &owner,
        json!({ "name": "g", "description": "bad\u{0}" }),
    )
    .await
    .assert_error(400, "description_is_invalid");
    app.post(
        "/api/v1/members",
        &owner,
        json!({ "email": "x\u{0}@example.test", "name": "X", "password": PASSWORD }),
    )
    .await
    .assert_error(400, "email_is_invalid");
    app.post(
        "/api/v1/policies",
        &owner,
        json!({ "name": "q", "statements": [{ "id": "a\u{0}", "resourceType": "flag",
            "effect": "allow", "actions": ["*"], "resources": ["project/*"] }] }),
    )
    .await
    .assert_error(400, "statements[0].id_is_invalid");
    app.get("/api/v1/audit-logs?action=a%00b", &owner)
        .await
        .assert_error(400, "action_is_invalid");
    app.get("/api/v1/access-tokens?name=a%00b", &owner)
        .await
        .assert_error(400, "name_is_invalid");
}
