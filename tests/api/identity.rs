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

/// The login limit and the account lookup use one canonical form of the email
/// (`credential::canonical_email`): no spelling gets a limit of its own for an account it can
/// open.
#[sqlx::test]
async fn a_dotted_capital_i_neither_gets_a_fresh_limit_for_admin_nor_opens_it(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    app.member(&owner, "admin@example.test", &[]).await;
    for _ in 0..10 {
        app.login("admin@example.test", "wrong password")
            .await
            .assert_error(401, "EmailPasswordMismatch");
    }
    // Spellings of the same account share its limit...
    for spelling in [
        "admin@example.test",
        "Admin@Example.TEST",
        "ＡＤＭＩＮ@example.test",
    ] {
        app.login(spelling, PASSWORD)
            .await
            .assert_error(429, "TooManyRequests");
    }
    // ...and a dotted capital I spells another account (unknown here), never admin's.
    app.login("admİn@example.test", PASSWORD)
        .await
        .assert_error(401, "EmailPasswordMismatch");
}

#[sqlx::test]
async fn an_email_logs_in_whatever_its_case_width_or_accent_encoding(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let emile = app.member(&owner, "Émile.Zola@Example.test", &[]).await;
    for spelling in [
        "éMILE.zola@example.TEST",
        "E\u{301}mile.Zola@Example.test",
        "  émile.zola@example.test ",
    ] {
        let resp = app.login(spelling, PASSWORD).await;
        resp.assert(200);
        assert_eq!(resp.data()["user"]["id"], emile.user_id.to_string());
        // The email is shown as it was given.
        assert_eq!(resp.data()["user"]["email"], "Émile.Zola@Example.test");
    }
    let fullwidth = app.login("ｏｗｎｅｒ@example.test", PASSWORD).await;
    fullwidth.assert(200);
    assert_eq!(fullwidth.data()["user"]["id"], owner.user_id.to_string());
}

#[sqlx::test]
async fn adding_an_email_whose_canonical_form_exists_finds_that_account(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (org, owner) = app.owner().await;
    let member = app.member(&owner, "member@example.test", &[]).await;
    let users = app.count("select count(*) from users").await;
    app.post(
        "/api/v1/members",
        &owner,
        json!({ "email": "ＭＥＭＢＥＲ@Example.test", "name": "Twin", "password": PASSWORD }),
    )
    .await
    .assert_error(409, "MemberAlreadyExists");
    assert_eq!(app.count("select count(*) from users").await, users);
    let found =
        tokengate::db::identity::account_in_organization(&app.db, org, " Member@EXAMPLE.test ")
            .await
            .expect("lookup")
            .expect("the account");
    assert_eq!(found, member.user_id);
}

/// A database as it was before `email_canonical`, holding accounts with these emails.
async fn accounts_from_before_canonical_emails(db: &PgPool, emails: &[&str]) {
    const CANONICAL_EMAIL_MIGRATION: i64 = 20261130100000;
    let all = sqlx::migrate!("./migrations");
    let before = sqlx::migrate::Migrator {
        migrations: all
            .migrations
            .iter()
            .filter(|m| m.version < CANONICAL_EMAIL_MIGRATION)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before.run(db).await.expect("earlier migrations");
    for email in emails {
        sqlx::query(
            "insert into users (id, email, name, password_hash)
             values (gen_random_uuid(), $1, 'n', 'x')",
        )
        .bind(email)
        .execute(db)
        .await
        .expect("an account made before the migration");
    }
}

/// The migration that introduced `email_canonical` computes it in SQL; for emails beyond ASCII,
/// where PostgreSQL's lower case is not Rust's (a final sigma here), migrating recomputes it with
/// the one Rust function.
#[sqlx::test(migrations = false)]
async fn existing_accounts_get_the_canonical_email_of_the_rust_function_when_migrating(db: PgPool) {
    use tokengate::credential::canonical_email;
    let emails = [
        " Owner@Example.TEST",
        "ΣΟΦΟΣ@example.test",
        "ｗｉｄｅ@example.test",
    ];
    accounts_from_before_canonical_emails(&db, &emails).await;
    tokengate::db::migrate(&db).await.expect("migrate");
    for email in emails {
        let stored: String =
            sqlx::query_scalar("select email_canonical from users where email = $1")
                .bind(email)
                .fetch_one(&db)
                .await
                .expect("row");
        assert_eq!(stored, canonical_email(email), "{email}");
    }
    assert_eq!(canonical_email("ΣΟΦΟΣ@example.test"), "σοφος@example.test");
}

#[sqlx::test(migrations = false)]
async fn the_migration_names_accounts_whose_emails_would_become_one(db: PgPool) {
    accounts_from_before_canonical_emails(&db, &["twin@example.test", "ｔｗｉｎ@example.test"])
        .await;
    let error = tokengate::db::migrate(&db).await.expect_err("a clash");
    let message = format!("{error:#}");
    assert!(message.contains("ｔｗｉｎ@example.test"), "{message}");
    assert!(
        message.contains("differ only in case or width"),
        "{message}"
    );
}
