//! Login, sessions, profile, password change and the `Organization` header rule.

use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{TestApp, OWNER_EMAIL, PASSWORD};

#[sqlx::test]
async fn login_returns_a_session_that_identifies_the_member(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (org, owner) = app.owner().await;
    assert!(owner.token.starts_with("tgw_"));
    let me = app.get("/api/v1/auth/whoami", &owner).await;
    me.assert(200);
    assert_eq!(me.data()["principal"]["kind"], "session");
    assert_eq!(me.data()["organizationId"], org.to_string());
    assert_eq!(me.data()["user"]["email"], OWNER_EMAIL);
    assert_eq!(me.data()["layers"][0][0]["resourceType"], "*");
}

#[sqlx::test]
async fn login_is_case_insensitive_on_email(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.owner().await;
    app.login(&OWNER_EMAIL.to_uppercase(), PASSWORD)
        .await
        .assert(200);
}

#[sqlx::test]
async fn wrong_password_and_unknown_email_get_the_same_401(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.owner().await;
    let wrong = app.login(OWNER_EMAIL, "not the password").await;
    let unknown = app.login("nobody@example.test", PASSWORD).await;
    wrong.assert_error(401, "EmailPasswordMismatch");
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.status, unknown.status);
}

#[sqlx::test]
async fn sessions_are_stored_only_as_digests(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("select secret_hash from sessions")
        .fetch_all(&app.db)
        .await
        .expect("sessions");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].len(), 32);
    assert!(!String::from_utf8_lossy(&stored[0]).contains(&owner.token[4..]));
}

#[sqlx::test]
async fn logout_ends_the_session(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    app.post("/api/v1/identity/logout", &owner, json!({}))
        .await
        .assert(200);
    app.get("/api/v1/user/profile", &owner)
        .await
        .assert_error(401, "Unauthorized");
}

#[sqlx::test]
async fn profile_lists_the_members_organizations(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (org, owner) = app.owner().await;
    let resp = app.get("/api/v1/user/profile", &owner).await;
    resp.assert(200);
    assert_eq!(resp.data()["email"], OWNER_EMAIL);
    assert_eq!(resp.data()["organizations"][0]["id"], org.to_string());
    assert!(resp.data().get("passwordHash").is_none());
}

#[sqlx::test]
async fn password_change_ends_other_sessions_but_not_this_one(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let other = app.session(OWNER_EMAIL).await;
    let new_password = "a brand new passphrase";
    app.put(
        "/api/v1/user/password",
        &owner,
        Some(json!({ "currentPassword": PASSWORD, "newPassword": new_password })),
    )
    .await
    .assert(200);
    app.get("/api/v1/user/profile", &other)
        .await
        .assert_error(401, "Unauthorized");
    app.get("/api/v1/user/profile", &owner).await.assert(200);
    app.login(OWNER_EMAIL, PASSWORD)
        .await
        .assert_error(401, "EmailPasswordMismatch");
    app.login(OWNER_EMAIL, new_password).await.assert(200);
}

#[sqlx::test]
async fn password_change_needs_the_current_password(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    app.put(
        "/api/v1/user/password",
        &owner,
        Some(json!({ "currentPassword": "wrong one", "newPassword": "another passphrase" })),
    )
    .await
    .assert_error(400, "currentPassword_is_invalid");
    app.put(
        "/api/v1/user/password",
        &owner,
        Some(json!({ "currentPassword": PASSWORD, "newPassword": "short" })),
    )
    .await
    .assert_error(400, "newPassword_is_invalid");
    app.login(OWNER_EMAIL, PASSWORD).await.assert(200);
}

#[sqlx::test]
async fn a_member_of_several_organizations_must_name_one(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (first, owner) = app.owner().await;
    let second = app
        .post("/api/v1/organizations", &owner, json!({ "name": "Second" }))
        .await;
    second.assert(201);
    let second: uuid::Uuid = second.data()["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    app.get("/api/v1/members", &owner)
        .await
        .assert_error(400, "organization_is_required");
    let in_second = app.get("/api/v1/auth/whoami", &owner.in_org(second)).await;
    in_second.assert(200);
    assert_eq!(in_second.data()["organizationId"], second.to_string());
    app.get("/api/v1/auth/whoami", &owner.in_org(first))
        .await
        .assert(200);
    let orgs = app.get("/api/v1/organizations", &owner).await;
    assert_eq!(orgs.data().as_array().map(Vec::len), Some(2));
}

#[sqlx::test]
async fn naming_an_organization_one_is_not_a_member_of_is_forbidden(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let stranger_org = uuid::Uuid::new_v4();
    app.get("/api/v1/members", &owner.in_org(stranger_org))
        .await
        .assert_error(403, "Forbidden");
    app.raw(Method::GET, "/api/v1/members", Some(&owner), |r| {
        r.header("Organization", "not-a-uuid")
    })
    .await
    .assert_error(400, "organization_is_invalid");
}

#[sqlx::test]
async fn an_expired_session_is_unauthorized(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    app.sql("update sessions set expires_at = now() - interval '1 second'")
        .await;
    app.get("/api/v1/auth/whoami", &owner)
        .await
        .assert_error(401, "Unauthorized");
}

#[sqlx::test]
async fn organization_names_are_validated(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let before = app.count("select count(*) from organizations").await;
    app.post("/api/v1/organizations", &owner, json!({ "name": "  " }))
        .await
        .assert_error(400, "name_is_required");
    app.post(
        "/api/v1/organizations",
        &owner,
        json!({ "name": "x".repeat(129) }),
    )
    .await
    .assert_error(400, "name_is_invalid");
    assert_eq!(
        app.count("select count(*) from organizations").await,
        before
    );
}
