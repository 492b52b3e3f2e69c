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

/// A member of the first organization founds a second one and, as its Owner, adds `email`
/// with a password of their choosing: the pre-claiming attempt.
async fn preclaimed(app: &TestApp, email: &str, password: &str) -> (uuid::Uuid, uuid::Uuid) {
    let (_, owner) = app.owner().await;
    let attacker = app.member(&owner, "mallory@example.test", &[]).await;
    let evil = app
        .post(
            "/api/v1/organizations",
            &attacker,
            json!({ "name": "Evil" }),
        )
        .await;
    let evil: uuid::Uuid = evil.data()["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let planted = app
        .post(
            "/api/v1/members",
            &attacker.in_org(evil),
            json!({ "email": email, "name": "Planted by Mallory", "password": password,
                    "policyIds": [] }),
        )
        .await;
    planted.assert(201);
    let planted: uuid::Uuid = planted.data()["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    (evil, planted)
}

#[sqlx::test]
async fn an_account_another_organization_made_is_never_attached(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (evil, planted) = preclaimed(&app, "victim@example.test", "mallory's password").await;
    let owner = app.session(OWNER_EMAIL).await;
    let org = app.get("/api/v1/auth/whoami", &owner).await.data()["organizationId"]
        .as_str()
        .expect("org")
        .parse::<uuid::Uuid>()
        .expect("uuid");

    // The real organization adds the same email: a new account of its own, with its password.
    let added = app
        .post(
            "/api/v1/members",
            &owner,
            json!({ "email": "Victim@example.test", "name": "Victim", "password": PASSWORD,
                    "policyIds": [] }),
        )
        .await;
    added.assert(201);
    let real: uuid::Uuid = added.data()["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    assert_ne!(real, planted);
    // Nothing of the other organization's account shows.
    assert_eq!(added.data()["name"], "Victim");
    assert!(!added.body.to_string().contains("Mallory"));

    // Mallory's password opens Mallory's organization only.
    let mallory = app.login("victim@example.test", "mallory's password").await;
    mallory.assert(200);
    assert_eq!(mallory.data()["user"]["id"], planted.to_string());
    let session = crate::helpers::Caller {
        token: mallory.data()["token"].as_str().expect("token").to_owned(),
        org: None,
        user_id: planted,
    };
    app.get("/api/v1/members", &session.in_org(org))
        .await
        .assert_error(403, "Forbidden");
    app.get("/api/v1/members", &session.in_org(evil))
        .await
        .assert(200);
    app.call(
        Method::POST,
        "/api/v1/identity/login",
        None,
        Some(
            json!({ "email": "victim@example.test", "password": "mallory's password",
                     "organizationId": org }),
        ),
    )
    .await
    .assert_error(401, "EmailPasswordMismatch");

    // The victim's own password opens the real organization.
    let victim = app.login("victim@example.test", PASSWORD).await;
    victim.assert(200);
    assert_eq!(victim.data()["user"]["id"], real.to_string());
    let chosen = app
        .call(
            Method::POST,
            "/api/v1/identity/login",
            None,
            Some(
                json!({ "email": "victim@example.test", "password": PASSWORD,
                         "organizationId": org }),
            ),
        )
        .await;
    chosen.assert(200);
    assert_eq!(chosen.data()["user"]["id"], real.to_string());
}

#[sqlx::test]
async fn adding_an_email_says_nothing_about_other_organizations(db: PgPool) {
    let app = TestApp::spawn(db).await;
    preclaimed(&app, "taken@example.test", "mallory's password").await;
    let owner = app.session(OWNER_EMAIL).await;
    // Without a password, an email known elsewhere and one never seen answer alike.
    let known = app
        .post(
            "/api/v1/members",
            &owner,
            json!({ "email": "taken@example.test", "name": "T" }),
        )
        .await;
    let unknown = app
        .post(
            "/api/v1/members",
            &owner,
            json!({ "email": "fresh@example.test", "name": "F" }),
        )
        .await;
    known.assert_error(400, "password_is_required");
    assert_eq!(known.body, unknown.body);
}
