//! RFC 7662 introspection (SPEC §4.1): a service token holding `IntrospectAccessTokens` asks
//! about other tokens; everything not active is exactly `{"active":false}`.

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::{Caller, Resp, TestApp};
use tokengate::policy::DEVELOPER_POLICY_ID;

const PATH: &str = "/api/v1/auth/introspect";

async fn introspect(app: &TestApp, caller: &Caller, token: &str) -> Resp {
    app.raw(Method::POST, PATH, Some(caller), |r| {
        r.header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}&token_type_hint=access_token"))
    })
    .await
}

fn introspector_body(org_wide: bool) -> Value {
    let action = if org_wide {
        "IntrospectAccessTokens"
    } else {
        "ListAccessTokens"
    };
    json!({ "name": format!("gateway-{org_wide}"), "type": "Service", "permissions": [
        { "resourceType": "access-token", "effect": "allow", "actions": [action], "resources": ["access-token/*"] }
    ] })
}

#[sqlx::test]
async fn active_tokens_are_described_and_everything_else_is_active_false(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (org, owner) = app.owner().await;
    let (_, gateway) = app.token(&owner, introspector_body(true)).await;
    let dev = app
        .member(&owner, "dev@example.test", &[DEVELOPER_POLICY_ID])
        .await;
    let (pat_id, pat) = app
        .token(&dev, json!({ "name": "pat", "type": "Personal" }))
        .await;
    let (svc_id, svc) = app
        .token(
            &owner,
            json!({ "name": "svc", "type": "Service", "permissions": [
                { "resourceType": "flag", "effect": "allow", "actions": ["ToggleFlag", "CreateFlag"], "resources": ["project/*"] },
                { "resourceType": "flag", "effect": "allow", "actions": ["ToggleFlag"], "resources": ["env/*"] }
            ] }),
        )
        .await;

    let answer = introspect(&app, &gateway, &pat.token).await;
    answer.assert(200);
    let body = &answer.body;
    assert_eq!(body["active"], json!(true));
    assert_eq!(body["token_type"], json!("Bearer"));
    assert_eq!(body["kind"], json!("personal"));
    assert_eq!(body["sub"], json!(dev.user_id.to_string()));
    assert_eq!(body["jti"], json!(pat_id.to_string()));
    assert_eq!(body["organization"], json!(org.to_string()));
    assert!(body["iat"].as_i64().is_some());
    assert!(body.get("exp").is_none());
    assert!(body.get("success").is_none(), "RFC 7662, not the envelope");

    let answer = introspect(&app, &gateway, &svc.token).await;
    assert_eq!(answer.body["sub"], json!(svc_id.to_string()));
    assert_eq!(answer.body["scope"], json!("CreateFlag ToggleFlag"));

    let inactive = json!({ "active": false });
    // Unknown, malformed, a session, then deactivated, then deleted.
    for token in ["tgp_unknown", "garbage", &owner.token] {
        let answer = introspect(&app, &gateway, token).await;
        assert_eq!(
            (answer.status, answer.body),
            (200, inactive.clone()),
            "{token}"
        );
    }
    app.post(
        &format!("/api/v1/access-tokens/{pat_id}/deactivate"),
        &dev,
        json!({}),
    )
    .await
    .assert(200);
    assert_eq!(introspect(&app, &gateway, &pat.token).await.body, inactive);
    app.delete(&format!("/api/v1/access-tokens/{svc_id}"), &owner)
        .await
        .assert(200);
    assert_eq!(introspect(&app, &gateway, &svc.token).await.body, inactive);

    // Expired.
    let (expiring_id, expiring) = app
        .token(&dev, json!({ "name": "soon", "type": "Personal" }))
        .await;
    app.sql(&format!(
        "update access_tokens set expires_at = now() - interval '1 second' where id = '{expiring_id}'"
    ))
    .await;
    assert_eq!(
        introspect(&app, &gateway, &expiring.token).await.body,
        inactive
    );

    // Another organization's token.
    let other = app
        .post("/api/v1/organizations", &owner, json!({ "name": "Other" }))
        .await;
    other.assert(201);
    let other_org = other.data()["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let (_, foreign) = app
        .token(
            &owner.in_org(other_org),
            json!({ "name": "foreign", "type": "Personal" }),
        )
        .await;
    assert_eq!(
        introspect(&app, &gateway, &foreign.token).await.body,
        inactive
    );
}

#[sqlx::test]
async fn only_service_tokens_holding_the_action_may_introspect(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let (_, lister) = app.token(&owner, introspector_body(false)).await;
    let (_, gateway) = app.token(&owner, introspector_body(true)).await;
    let (_, personal) = app
        .token(&owner, json!({ "name": "mine", "type": "Personal" }))
        .await;
    introspect(&app, &lister, &personal.token)
        .await
        .assert_error(403, "Forbidden");
    // A personal token (even the Owner's, who holds every action) is no gateway.
    introspect(&app, &personal, &gateway.token)
        .await
        .assert_error(403, "Forbidden");
    app.raw(Method::POST, PATH, Some(&gateway), |r| {
        r.header("content-type", "application/json").body("{}")
    })
    .await
    .assert_error(415, "UnsupportedMediaType");
    app.raw(Method::POST, PATH, Some(&gateway), |r| {
        r.header("content-type", "application/x-www-form-urlencoded")
            .body("token_type_hint=access_token")
    })
    .await
    .assert_error(400, "token_is_required");
    // Failed callers are rate-limited like every failed authentication.
    let bad = Caller {
        token: "tgs_not-a-token".into(),
        ..gateway.clone()
    };
    let mut last = 0;
    for _ in 0..40 {
        let answer = introspect(&app, &bad, &personal.token).await;
        assert!(answer.status == 401 || answer.status == 429, "{answer:?}");
        if answer.status == 429 {
            assert!(answer.headers.get("retry-after").is_some());
        }
        last = answer.status;
    }
    assert_eq!(last, 429);
}
