//! The verification caches keep what a write did not touch: a policy edit drops the entries of
//! the members holding the policy, nobody else's; sessions are cached and revoked at once, here
//! and on another replica. Observed through `/metrics`, as an operator would.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{Caller, TestApp, OWNER_EMAIL};
use crate::replicas::settles;

const FLAG: &str = "project/web:env/prod:flag/dark-mode";

/// One counter of `/metrics`.
async fn metric(app: &TestApp, name: &str) -> u64 {
    let text = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

async fn lookups(app: &TestApp) -> u64 {
    metric(app, "tokengate_verification_db_lookups_total").await
}

/// A custom policy allowing personal tokens and the flag; its id.
async fn policy(app: &TestApp, owner: &Caller, name: &str) -> Uuid {
    let created = app
        .post(
            "/api/v1/policies",
            owner,
            json!({ "name": name, "statements": [
                { "resourceType": "access-token", "effect": "allow",
                  "actions": ["ManagePersonalAccessTokens"], "resources": ["access-token/*"] },
                { "resourceType": "flag", "effect": "allow",
                  "actions": ["ManageFeatureFlag"], "resources": ["project/*:env/*:flag/*"] }] }),
        )
        .await;
    created.assert(201);
    created.data()["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid")
}

/// GETs `path` as `caller` until `done` holds for the status, for at most five seconds;
/// returns the last status. Propagation takes milliseconds; the bound only keeps a failure
/// from hanging.
async fn get_until(app: &TestApp, path: &str, caller: &Caller, done: impl Fn(u16) -> bool) -> u16 {
    let mut status = app.get(path, caller).await.status;
    for _ in 0..100 {
        if done(status) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = app.get(path, caller).await.status;
    }
    status
}

#[sqlx::test]
async fn a_policy_edit_keeps_the_cached_entries_of_members_without_it(db: PgPool) {
    let a = TestApp::spawn(db).await;
    let b = a.replica().await;
    let (_, owner) = a.owner().await;
    let (edited, kept) = (
        policy(&a, &owner, "Edited").await,
        policy(&a, &owner, "Kept").await,
    );
    let alice = a.member(&owner, "alice@example.test", &[edited]).await;
    let bob = a.member(&owner, "bob@example.test", &[kept]).await;
    let (_, alice_token) = a
        .token(&alice, json!({ "name": "a", "type": "Personal" }))
        .await;
    let (_, bob_token) = a
        .token(&bob, json!({ "name": "b", "type": "Personal" }))
        .await;
    for app in [&a, &b] {
        for token in [&alice_token, &bob_token] {
            app.forward(token, "ManageFeatureFlag", FLAG)
                .await
                .assert(200);
        }
    }
    a.put(
        &format!("/api/v1/policies/{edited}/statements"),
        &owner,
        Some(json!([{ "resourceType": "flag", "effect": "deny",
                      "actions": ["*"], "resources": ["project/*:env/prod:flag/*"] }])),
    )
    .await
    .assert(200);
    assert_eq!(settles(&b, &alice_token, 403).await.status, 403);
    for app in [&a, &b] {
        // Bob's token and live permissions are still cached: no database read, a hit.
        let (before, hits) = (
            lookups(app).await,
            metric(app, "tokengate_token_cache_hits_total").await,
        );
        app.forward(&bob_token, "ManageFeatureFlag", FLAG)
            .await
            .assert(200);
        assert_eq!(lookups(app).await, before, "bob's entries were dropped");
        assert_eq!(
            metric(app, "tokengate_token_cache_hits_total").await,
            hits + 1
        );
    }
    // Alice's live permissions were read again by the batch that follows the edit, not by her
    // next request (her token entry was kept): it reads nothing, and is refused.
    let before = quiet_lookups(&a).await;
    a.forward(&alice_token, "ManageFeatureFlag", FLAG)
        .await
        .assert(403);
    assert_eq!(
        lookups(&a).await,
        before,
        "alice's entry was not read again"
    );
}

/// The lookup count once it has stopped moving (background reads done), for at most 5 s.
async fn quiet_lookups(app: &TestApp) -> u64 {
    let mut last = lookups(app).await;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = lookups(app).await;
        if now == last {
            break;
        }
        last = now;
    }
    last
}

/// The lookup count once a read after `before` has happened and the reads have stopped.
async fn lookups_after_reading(app: &TestApp, before: u64) -> u64 {
    for _ in 0..100 {
        if lookups(app).await > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    quiet_lookups(app).await
}

#[sqlx::test]
async fn members_whose_policy_changed_are_read_again_in_batches(db: PgPool) {
    let a = TestApp::spawn(db).await;
    let b = a.replica().await;
    let (_, owner) = a.owner().await;
    let edited = policy(&a, &owner, "Edited").await;
    let mut tokens = Vec::new();
    for i in 0..5 {
        let member = a
            .member(&owner, &format!("m{i}@example.test"), &[edited])
            .await;
        let (_, token) = a
            .token(
                &member,
                json!({ "name": format!("t{i}"), "type": "Personal" }),
            )
            .await;
        tokens.push(token);
    }
    for app in [&a, &b] {
        for token in &tokens {
            app.forward(token, "ManageFeatureFlag", FLAG)
                .await
                .assert(200);
        }
    }
    let before = [quiet_lookups(&a).await, quiet_lookups(&b).await];
    a.put(
        &format!("/api/v1/policies/{edited}/statements"),
        &owner,
        Some(json!([{ "resourceType": "access-token", "effect": "allow",
                      "actions": ["ManagePersonalAccessTokens"], "resources": ["access-token/*"] }])),
    )
    .await
    .assert(200);
    for (app, before) in [&a, &b].into_iter().zip(before) {
        // Every member refused from the cache, after a read or two for all five: a batch per
        // invalidation, not a read per member. The writing replica applies its change, then
        // hears it again through LISTEN like the others: that second one reads again if the
        // first batch had already begun (it cannot tell its own echo from a later change).
        let after = lookups_after_reading(app, before).await;
        assert!(
            (before + 1..=before + 2).contains(&after),
            "{} reads for 5 members on {}",
            after - before,
            app.base
        );
        for token in &tokens {
            app.forward(token, "ManageFeatureFlag", FLAG)
                .await
                .assert(403);
        }
        assert_eq!(lookups(app).await, after);
    }
}

#[sqlx::test]
async fn members_read_again_together_each_get_their_own_permissions(db: PgPool) {
    let a = TestApp::spawn(db).await;
    // B hears the edit once, through LISTEN (A also applies its own change before that).
    let b = a.replica().await;
    let (_, owner) = a.owner().await;
    let (edited, kept) = (
        policy(&a, &owner, "Edited").await,
        policy(&a, &owner, "Kept").await,
    );
    let group: Uuid = a
        .post("/api/v1/groups", &owner, json!({ "name": "Team" }))
        .await
        .data()["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    a.put(
        &format!("/api/v1/groups/{group}/policies/{edited}"),
        &owner,
        None,
    )
    .await
    .assert(200);
    struct Member {
        policies: Vec<Uuid>,
        in_group: bool,
        /// Once the edit takes the flag from `edited`.
        keeps_the_flag: bool,
    }
    fn member(policies: Vec<Uuid>, in_group: bool, keeps_the_flag: bool) -> Member {
        Member {
            policies,
            in_group,
            keeps_the_flag,
        }
    }
    let members = [
        member(vec![edited], false, false),
        member(vec![edited], false, false),
        member(vec![], true, false),
        member(vec![edited, kept], false, true),
        member(vec![kept], true, true),
        member(vec![edited], true, false),
    ];
    let mut tokens = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let member = a
            .member(&owner, &format!("m{i}@example.test"), &m.policies)
            .await;
        if m.in_group {
            a.put(
                &format!("/api/v1/groups/{group}/members/{}", member.user_id),
                &owner,
                None,
            )
            .await
            .assert(200);
        }
        let (_, token) = a
            .token(
                &member,
                json!({ "name": format!("t{i}"), "type": "Personal" }),
            )
            .await;
        tokens.push(token);
    }
    // Every entry cached on B, after B has heard every earlier change: a pass that reads
    // nothing.
    let mut before = quiet_lookups(&b).await;
    for _ in 0..20 {
        for token in &tokens {
            b.forward(token, "ManageFeatureFlag", FLAG)
                .await
                .assert(200);
        }
        let now = quiet_lookups(&b).await;
        if now == before {
            break;
        }
        before = now;
    }
    a.put(
        &format!("/api/v1/policies/{edited}/statements"),
        &owner,
        Some(json!([{ "resourceType": "access-token", "effect": "allow",
                      "actions": ["ManagePersonalAccessTokens"], "resources": ["access-token/*"] }])),
    )
    .await
    .assert(200);
    // The six are read again together (members of one set share its statements there), and
    // each answer is their own.
    let after = lookups_after_reading(&b, before).await;
    assert_eq!(after, before + 1, "one read for the six members");
    for (m, token) in members.iter().zip(&tokens) {
        b.forward(token, "ManageFeatureFlag", FLAG)
            .await
            .assert(if m.keeps_the_flag { 200 } else { 403 });
    }
    assert_eq!(lookups(&b).await, after, "a member was read alone");
}

#[sqlx::test]
async fn sessions_are_cached_and_logout_ends_them_here_and_on_another_replica(db: PgPool) {
    let a = TestApp::spawn(db).await;
    let b = a.replica().await;
    let (_, owner) = a.owner().await;
    let kept = a.session(OWNER_EMAIL).await;
    for app in [&a, &b] {
        for session in [&owner, &kept] {
            app.get("/api/v1/user/profile", session).await.assert(200);
        }
        let (hits, misses) = (
            metric(app, "tokengate_session_cache_hits_total").await,
            metric(app, "tokengate_session_cache_misses_total").await,
        );
        app.get("/api/v1/user/profile", &owner).await.assert(200);
        assert_eq!(
            metric(app, "tokengate_session_cache_hits_total").await,
            hits + 1
        );
        assert_eq!(
            metric(app, "tokengate_session_cache_misses_total").await,
            misses
        );
    }
    a.post("/api/v1/identity/logout", &owner, json!({}))
        .await
        .assert(200);
    // The same replica: the very next request.
    a.get("/api/v1/user/profile", &owner)
        .await
        .assert_error(401, "Unauthorized");
    // Another replica: as soon as the NOTIFY arrives.
    let status = get_until(&b, "/api/v1/user/profile", &owner, |s| s == 401).await;
    assert_eq!(status, 401);
    // The person's other session is untouched, on both.
    a.get("/api/v1/user/profile", &kept).await.assert(200);
    b.get("/api/v1/user/profile", &kept).await.assert(200);
}

#[sqlx::test]
async fn a_password_change_ends_the_other_cached_sessions_here_and_on_another_replica(db: PgPool) {
    let a = TestApp::spawn(db).await;
    let b = a.replica().await;
    let (_, owner) = a.owner().await;
    let other = a.session(OWNER_EMAIL).await;
    for app in [&a, &b] {
        for session in [&owner, &other] {
            app.get("/api/v1/user/profile", session).await.assert(200);
        }
    }
    a.put(
        "/api/v1/user/password",
        &owner,
        Some(json!({ "currentPassword": crate::helpers::PASSWORD,
                     "newPassword": "a brand new passphrase" })),
    )
    .await
    .assert(200);
    a.get("/api/v1/user/profile", &other)
        .await
        .assert_error(401, "Unauthorized");
    let status = get_until(&b, "/api/v1/user/profile", &other, |s| s == 401).await;
    assert_eq!(status, 401);
    a.get("/api/v1/user/profile", &owner).await.assert(200);
    b.get("/api/v1/user/profile", &owner).await.assert(200);
}

#[sqlx::test]
async fn a_removed_member_s_session_loses_the_organization_at_once(db: PgPool) {
    let a = TestApp::spawn(db).await;
    let b = a.replica().await;
    let (org, owner) = a.owner().await;
    let dev = a
        .member(
            &owner,
            "dev@example.test",
            &[tokengate::policy::DEVELOPER_POLICY_ID],
        )
        .await;
    for app in [&a, &b] {
        app.get("/api/v1/access-tokens", &dev).await.assert(200);
    }
    a.delete(&format!("/api/v1/members/{}", dev.user_id), &owner)
        .await
        .assert(200);
    let refused = a.get("/api/v1/access-tokens", &dev).await.status;
    assert!(refused == 403 || refused == 401, "{refused}");
    let status = get_until(&b, "/api/v1/access-tokens", &dev.in_org(org), |s| s != 200).await;
    assert_ne!(status, 200);
}

#[sqlx::test]
async fn a_removed_member_s_cached_token_stays_refused_when_they_are_added_back(db: PgPool) {
    let a = TestApp::spawn(db).await;
    let b = a.replica().await;
    let (_, owner) = a.owner().await;
    let dev = a
        .member(
            &owner,
            "dev@example.test",
            &[tokengate::policy::DEVELOPER_POLICY_ID],
        )
        .await;
    let (_, personal) = a
        .token(&dev, json!({ "name": "p", "type": "Personal" }))
        .await;
    for app in [&a, &b] {
        app.forward(&personal, "ManageFeatureFlag", FLAG)
            .await
            .assert(200);
    }
    a.delete(&format!("/api/v1/members/{}", dev.user_id), &owner)
        .await
        .assert(200);
    assert_eq!(settles(&b, &personal, 403).await.status, 403);
    // Back as a member: the token the removal deactivated stays Inactive, on both replicas.
    a.member(
        &owner,
        "dev@example.test",
        &[tokengate::policy::DEVELOPER_POLICY_ID],
    )
    .await;
    a.forward(&personal, "ManageFeatureFlag", FLAG)
        .await
        .assert(403);
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.forward(&personal, "ManageFeatureFlag", FLAG)
        .await
        .assert(403);
}

/// Token misses that arrive together are read together (`auth::token_reads`). Each request
/// still gets its own token's answer, whatever else its batch held: service and personal
/// tokens, a previous secret in its grace period and the secret that replaced it, a token out
/// of scope, a deactivated one and a deleted one, each asked three times at once.
#[sqlx::test]
async fn misses_read_together_each_get_their_own_answer(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let flags = policy(&app, &owner, "flags").await;
    let dev = app.member(&owner, "dev@example.test", &[flags]).await;
    let scoped = |name: String, flag: &str| {
        json!({ "name": name, "type": "Service", "permissions": [{ "resourceType": "flag",
            "effect": "allow", "actions": ["ManageFeatureFlag"], "resources": [flag] }] })
    };
    let personal = |name: String| {
        json!({ "name": name, "type": "Personal", "permissions": [{ "resourceType": "flag",
            "effect": "allow", "actions": ["ManageFeatureFlag"], "resources": [FLAG] }] })
    };
    // (credential, expected status, the token id an allowed answer names)
    let mut cases: Vec<(Caller, u16, Option<Uuid>)> = Vec::new();
    for n in 0..6 {
        let (id, token) = app.token(&owner, scoped(format!("svc-{n}"), FLAG)).await;
        cases.push((token, 200, Some(id)));
        let (id, token) = app.token(&dev, personal(format!("dev-{n}"))).await;
        cases.push((token, 200, Some(id)));
    }
    let (_, elsewhere) = app
        .token(
            &owner,
            scoped("elsewhere".into(), "project/web:env/dev:flag/other"),
        )
        .await;
    cases.push((elsewhere, 403, None));
    let (rotated, old) = app.token(&dev, personal("rotated".into())).await;
    let new = app
        .post(
            &format!("/api/v1/access-tokens/{rotated}/rotate"),
            &dev,
            json!({ "oldTokenExpiresInSeconds": 3600 }),
        )
        .await;
    new.assert(200);
    let new = Caller {
        token: new.data()["token"].as_str().expect("secret").to_owned(),
        ..old.clone()
    };
    cases.push((old, 200, Some(rotated)));
    cases.push((new, 200, Some(rotated)));
    let (off, inactive) = app.token(&owner, scoped("off".into(), FLAG)).await;
    app.post(
        &format!("/api/v1/access-tokens/{off}/deactivate"),
        &owner,
        json!({}),
    )
    .await
    .assert(200);
    cases.push((inactive, 403, None));
    let (gone, deleted) = app.token(&owner, scoped("gone".into(), FLAG)).await;
    app.delete(&format!("/api/v1/access-tokens/{gone}"), &owner)
        .await
        .assert(200);
    cases.push((deleted, 401, None));

    app.state.auth.caches.clear();
    let before = lookups(&app).await;
    let asked: Vec<_> = cases.iter().chain(&cases).chain(&cases).collect();
    let answers = futures::future::join_all(
        asked
            .iter()
            .map(|(caller, _, _)| app.forward(caller, "ManageFeatureFlag", FLAG)),
    )
    .await;
    for (answer, (_, status, id)) in answers.iter().zip(&asked) {
        assert_eq!(answer.status, *status, "{answer:?}");
        if let Some(id) = id {
            assert_eq!(answer.headers["x-auth-token-id"], id.to_string().as_str());
        }
    }
    // Every request before the first answer for its token was a miss; some were read twice.
    let misses = lookups(&app).await - before;
    assert!(misses >= cases.len() as u64, "{misses} lookups");
}
