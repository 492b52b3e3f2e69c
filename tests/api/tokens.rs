//! Access tokens end to end: SPEC §2.3, §5 and every FeatBit defect of §12.

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{forbidden_body, Caller, TestApp};
use tokengate::policy::{ADMINISTRATOR_POLICY_ID, DEVELOPER_POLICY_ID};

const FLAG: &str = "project/web:env/prod:flag/dark-mode";

fn flag_scope() -> Value {
    json!([{ "resourceType": "flag", "effect": "allow",
             "actions": ["ManageFeatureFlag"], "resources": ["project/*:env/*:flag/*"] }])
}

fn service(name: &str) -> Value {
    json!({ "name": name, "type": "Service", "permissions": flag_scope() })
}

fn personal(name: &str) -> Value {
    json!({ "name": name, "type": "Personal" })
}

async fn owner_and_developer(app: &TestApp) -> (Uuid, Caller, Caller) {
    let (org, owner) = app.owner().await;
    let dev = app
        .member(&owner, "dev@example.test", &[DEVELOPER_POLICY_ID])
        .await;
    (org, owner, dev)
}

async fn token_count(app: &TestApp) -> i64 {
    app.count("select count(*) from access_tokens").await
}

#[sqlx::test]
async fn the_secret_is_shown_once_and_only_its_digest_is_stored(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, _, dev) = owner_and_developer(&app).await;
    let created = app.create_token(&dev, personal("ci")).await;
    created.assert(201);
    let secret = created.data()["token"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("tgp_"));
    assert_eq!(created.data()["hint"], format!("{}…", &secret[..8]));
    assert_eq!(created.data()["permissions"], Value::Null);
    assert_eq!(created.data()["creator"]["email"], "dev@example.test");
    let id = created.data()["id"].as_str().expect("id");

    let one = app.get(&format!("/api/v1/access-tokens/{id}"), &dev).await;
    let list = app.get("/api/v1/access-tokens", &dev).await;
    for body in [&one.body, &list.body] {
        assert!(
            !body.to_string().contains(&secret[4..]),
            "secret leaked: {body}"
        );
        assert!(
            !body.to_string().contains("\"token\""),
            "secret field present: {body}"
        );
    }
    let stored: Vec<u8> = sqlx::query_scalar("select secret_hash from access_tokens")
        .fetch_one(&app.db)
        .await
        .expect("row");
    assert_eq!(stored.len(), 32);
    let row = sqlx::query_scalar::<_, String>("select row_to_json(t)::text from access_tokens t")
        .fetch_one(&app.db)
        .await
        .expect("row");
    assert!(!row.contains(&secret[4..]));
}

#[sqlx::test]
async fn personal_token_loses_permission_when_owner_does(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner, dev) = owner_and_developer(&app).await;
    let (_, token) = app.token(&dev, personal("mine")).await;
    app.forward(&token, "ManageFeatureFlag", FLAG)
        .await
        .assert(200);

    app.delete(
        &format!(
            "/api/v1/members/{}/policies/{DEVELOPER_POLICY_ID}",
            dev.user_id
        ),
        &owner,
    )
    .await
    .assert(200);
    let denied = app.forward(&token, "ManageFeatureFlag", FLAG).await;
    denied.assert(403);
    assert_eq!(denied.body, forbidden_body());
    let check = app
        .post(
            "/api/v1/auth/check",
            &token,
            json!({ "checks": [{ "action": "ManageFeatureFlag", "resource": FLAG }] }),
        )
        .await;
    check.assert(200);
    assert_eq!(check.data()["allowed"], false);
}

#[sqlx::test]
async fn personal_token_follows_policy_edits_and_group_membership(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner, dev) = owner_and_developer(&app).await;
    let policy = app
        .post(
            "/api/v1/policies",
            &owner,
            json!({ "name": "Segments", "statements": [{ "resourceType": "segment", "effect": "allow",
                    "actions": ["*"], "resources": ["project/*:env/*:segment/*"] }] }),
        )
        .await;
    let policy_id = policy.data()["id"].as_str().expect("id").to_owned();
    let group = app
        .post("/api/v1/groups", &owner, json!({ "name": "Team" }))
        .await;
    let group_id = group.data()["id"].as_str().expect("id").to_owned();
    app.put(
        &format!("/api/v1/groups/{group_id}/policies/{policy_id}"),
        &owner,
        None,
    )
    .await
    .assert(200);
    app.put(
        &format!("/api/v1/groups/{group_id}/members/{}", dev.user_id),
        &owner,
        None,
    )
    .await
    .assert(200);
    let (_, token) = app.token(&dev, personal("mine")).await;
    // From here on the group's policy is the developer's only source of segment rights.
    app.delete(
        &format!(
            "/api/v1/members/{}/policies/{DEVELOPER_POLICY_ID}",
            dev.user_id
        ),
        &owner,
    )
    .await
    .assert(200);
    let segment = "project/web:env/prod:segment/beta";
    app.forward(&token, "UpdateSegment", segment)
        .await
        .assert(200);

    // The policy is edited: the token loses what the edit removed, on the very next request.
    app.put(
        &format!("/api/v1/policies/{policy_id}/statements"),
        &owner,
        Some(json!([{ "resourceType": "segment", "effect": "allow",
                      "actions": ["*"], "resources": ["project/*:env/dev:segment/*"] }])),
    )
    .await
    .assert(200);
    app.forward(&token, "UpdateSegment", segment)
        .await
        .assert(403);
    let dev_segment = "project/web:env/dev:segment/beta";
    app.forward(&token, "UpdateSegment", dev_segment)
        .await
        .assert(200);

    // The member leaves the group: the group's policy no longer reaches the token.
    app.delete(
        &format!("/api/v1/groups/{group_id}/members/{}", dev.user_id),
        &owner,
    )
    .await
    .assert(200);
    let denied = app.forward(&token, "UpdateSegment", dev_segment).await;
    assert_eq!(denied.body, forbidden_body());
}

#[sqlx::test]
async fn service_token_keeps_permissions_after_creator_loses_them_or_leaves(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner, dev) = owner_and_developer(&app).await;
    let (_, svc) = app.token(&dev, service("deploy")).await;
    assert!(svc.token.starts_with("tgs_"));
    app.delete(
        &format!(
            "/api/v1/members/{}/policies/{DEVELOPER_POLICY_ID}",
            dev.user_id
        ),
        &owner,
    )
    .await
    .assert(200);
    app.forward(&svc, "ManageFeatureFlag", FLAG)
        .await
        .assert(200);
    app.delete(&format!("/api/v1/members/{}", dev.user_id), &owner)
        .await
        .assert(200);
    app.forward(&svc, "ManageFeatureFlag", FLAG)
        .await
        .assert(200);
    // Frozen means frozen both ways: nothing beyond its scope.
    app.forward(&svc, "UpdateSegment", "project/web:env/prod:segment/x")
        .await
        .assert(403);
}

#[sqlx::test]
async fn service_token_does_not_gain_when_creator_gains(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner, dev) = owner_and_developer(&app).await;
    // A developer cannot hand out `*` on `*`: that is more than they hold.
    app.create_token(
        &dev,
        json!({ "name": "all", "type": "Service", "permissions": [{
            "resourceType": "*", "effect": "allow", "actions": ["*"], "resources": ["*"] }] }),
    )
    .await
    .assert_error(403, "PermissionExceedsCreator");
    let (_, svc) = app.token(&dev, service("flags")).await;
    app.put(
        &format!(
            "/api/v1/members/{}/policies/{ADMINISTRATOR_POLICY_ID}",
            dev.user_id
        ),
        &owner,
        None,
    )
    .await
    .assert(200);
    // The developer is now an administrator; the token they made earlier is not.
    app.forward(&dev, "CanManageIAM", "iam/*").await.assert(200);
    app.forward(&svc, "CanManageIAM", "iam/*").await.assert(403);
}

#[sqlx::test]
async fn asking_for_more_than_the_creator_has_is_403_and_writes_nothing(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, _, dev) = owner_and_developer(&app).await;
    let resp = app
        .create_token(
            &dev,
            json!({ "name": "too-much", "type": "Service", "permissions": [
                { "resourceType": "flag", "effect": "allow", "actions": ["ManageFeatureFlag"],
                  "resources": ["project/*:env/*:flag/*"] },
                { "resourceType": "iam", "effect": "allow", "actions": ["CanManageIAM"],
                  "resources": ["iam/*"] }] }),
        )
        .await;
    resp.assert(403);
    assert_eq!(
        resp.body,
        json!({ "success": false, "errors": ["PermissionExceedsCreator", "CanManageIAM on iam/*"], "data": null })
    );
    // A wildcard the creator does not hold is refused too.
    app.create_token(
        &dev,
        json!({ "name": "wild", "type": "Personal", "permissions": [{
            "resourceType": "flag", "effect": "allow", "actions": ["*"], "resources": ["project/*"] }] }),
    )
    .await
    .assert_error(403, "PermissionExceedsCreator");
    assert_eq!(token_count(&app).await, 0);
    assert_eq!(
        app.count("select count(*) from audit_events where action like 'access-token.%'")
            .await,
        0
    );
}

#[sqlx::test]
async fn service_tokens_need_permissions(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, _, dev) = owner_and_developer(&app).await;
    app.create_token(&dev, json!({ "name": "s", "type": "Service" }))
        .await
        .assert_error(400, "permissions_is_required");
    app.create_token(
        &dev,
        json!({ "name": "s", "type": "Service", "permissions": [] }),
    )
    .await
    .assert_error(400, "permissions_is_required");
    assert_eq!(token_count(&app).await, 0);
}

#[sqlx::test]
async fn tokens_that_create_tokens_never_escalate(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, _, dev) = owner_and_developer(&app).await;
    let manage = json!({ "resourceType": "access-token", "effect": "allow",
        "actions": ["ManagePersonalAccessTokens", "ManageServiceAccessTokens"], "resources": ["access-token/*"] });
    let flags = flag_scope()[0].clone();

    // A scoped personal token cannot mint an unscoped one.
    let (_, scoped) = app
        .token(
            &dev,
            json!({ "name": "scoped", "type": "Personal", "permissions": [manage, flags] }),
        )
        .await;
    app.create_token(&scoped, personal("unscoped"))
        .await
        .assert_error(403, "PermissionExceedsCreator");
    // ...nor one scoped beyond itself.
    app.create_token(
        &scoped,
        json!({ "name": "segments", "type": "Service", "permissions": [{ "resourceType": "segment",
            "effect": "allow", "actions": ["*"], "resources": ["project/*:env/*:segment/*"] }] }),
    )
    .await
    .assert_error(403, "PermissionExceedsCreator");
    // Within itself it may, and the child carries the parent's bounds.
    let (_, child) = app
        .token(
            &scoped,
            json!({ "name": "child", "type": "Personal", "permissions": flag_scope() }),
        )
        .await;
    let me = app.get("/api/v1/auth/whoami", &child).await;
    me.assert(200);
    assert_eq!(me.data()["principal"]["kind"], "personalToken");
    // live(owner) + the parent's scope (frozen) + its own scope.
    assert_eq!(me.data()["layers"].as_array().map(Vec::len), Some(3));
    app.forward(&child, "ManageFeatureFlag", FLAG)
        .await
        .assert(200);

    // A service token cannot create personal tokens, nor a service token beyond itself.
    let (_, svc) = app
        .token(
            &dev,
            json!({ "name": "svc", "type": "Service", "permissions": [manage, flags] }),
        )
        .await;
    app.create_token(&svc, personal("p"))
        .await
        .assert_error(403, "Forbidden");
    app.create_token(
        &svc,
        json!({ "name": "bigger", "type": "Service", "permissions": [{ "resourceType": "project",
            "effect": "allow", "actions": ["CanAccessProject"], "resources": ["project/*"] }] }),
    )
    .await
    .assert_error(403, "PermissionExceedsCreator");
    app.token(&svc, service("smaller")).await;
}

#[sqlx::test]
async fn another_organizations_token_cannot_be_touched_by_id(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner, dev) = owner_and_developer(&app).await;
    let (id, _) = app.token(&dev, service("theirs")).await;
    // A stranger with full rights in their own organization.
    let stranger = app.member(&owner, "stranger@example.test", &[]).await;
    let org = app
        .post(
            "/api/v1/organizations",
            &stranger,
            json!({ "name": "Elsewhere" }),
        )
        .await;
    let stranger = stranger.in_org(
        org.data()["id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("uuid"),
    );
    let base = format!("/api/v1/access-tokens/{id}");
    for resp in [
        app.put(&format!("{base}/toggle"), &stranger, None).await,
        app.post(&format!("{base}/deactivate"), &stranger, json!({}))
            .await,
        app.post(&format!("{base}/rotate"), &stranger, json!({}))
            .await,
        app.put(&base, &stranger, Some(json!({ "name": "mine now" })))
            .await,
        app.get(&base, &stranger).await,
        app.delete(&base, &stranger).await,
    ] {
        resp.assert_error(404, "ResourceNotFound");
    }
    let token = app.get(&base, &owner).await;
    assert_eq!(token.data()["status"], "Active");
    assert_eq!(token.data()["name"], "theirs");
}

#[sqlx::test]
async fn twenty_parallel_creates_with_one_name_give_exactly_one_201(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, _, dev) = owner_and_developer(&app).await;
    let requests = (0..20).map(|i| {
        // Same name, different case: uniqueness is case-insensitive.
        let name = if i % 2 == 0 { "Deploy" } else { "deploy" };
        app.create_token(&dev, service(name))
    });
    let responses = futures::future::join_all(requests).await;
    let created = responses.iter().filter(|r| r.status == 201).count();
    let conflicts = responses
        .iter()
        .filter(|r| r.status == 409 && r.errors() == ["NameHasBeenUsed"])
        .count();
    assert_eq!((created, conflicts), (1, 19));
    assert_eq!(token_count(&app).await, 1);
}

#[sqlx::test]
async fn a_deleted_token_is_401_on_the_next_request(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, _, dev) = owner_and_developer(&app).await;
    let (id, token) = app.token(&dev, personal("short-lived")).await;
    app.get("/api/v1/auth/whoami", &token).await.assert(200);
    app.delete(&format!("/api/v1/access-tokens/{id}"), &dev)
        .await
        .assert(200);
    app.get("/api/v1/auth/whoami", &token)
        .await
        .assert_error(401, "Unauthorized");
    // A retried delete (its first answer lost, say) finds nothing: 404, and no second event.
    app.delete(&format!("/api/v1/access-tokens/{id}"), &dev)
        .await
        .assert_error(404, "ResourceNotFound");
    let log = app
        .get(
            &format!("/api/v1/audit-logs?targetId={id}&action=access-token.deleted"),
            &dev,
        )
        .await;
    assert_eq!(log.data()["totalCount"], 1);
}

#[sqlx::test]
async fn deactivate_forbids_and_activate_restores_idempotently(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, _, dev) = owner_and_developer(&app).await;
    let (id, token) = app.token(&dev, personal("mine")).await;
    let base = format!("/api/v1/access-tokens/{id}");
    for _ in 0..2 {
        let resp = app
            .post(&format!("{base}/deactivate"), &dev, json!({}))
            .await;
        resp.assert(200);
        assert_eq!(resp.data()["status"], "Inactive");
    }
    let denied = app.get("/api/v1/access-tokens", &token).await;
    denied.assert(403);
    assert_eq!(denied.body, forbidden_body());
    for _ in 0..2 {
        app.post(&format!("{base}/activate"), &dev, json!({}))
            .await
            .assert(200);
    }
    app.get("/api/v1/access-tokens", &token).await.assert(200);
    let toggled = app.put(&format!("{base}/toggle"), &dev, None).await;
    assert_eq!(toggled.data()["status"], "Inactive");
    let toggled = app.put(&format!("{base}/toggle"), &dev, None).await;
    assert_eq!(toggled.data()["status"], "Active");
    // Idempotent calls record nothing: two real changes each way.
    let events = app
        .count("select count(*) from audit_events where action in ('access-token.activated', 'access-token.deactivated')")
        .await;
    assert_eq!(events, 4);
}

#[sqlx::test]
async fn removing_a_member_deactivates_their_personal_tokens_only(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner, dev) = owner_and_developer(&app).await;
    let (personal_id, personal_token) = app.token(&dev, personal("mine")).await;
    let (_, svc) = app.token(&dev, service("deploy")).await;
    app.delete(&format!("/api/v1/members/{}", dev.user_id), &owner)
        .await
        .assert(200);
    let token = app
        .get(&format!("/api/v1/access-tokens/{personal_id}"), &owner)
        .await;
    assert_eq!(token.data()["status"], "Inactive");
    assert_eq!(
        app.forward(&personal_token, "ManageFeatureFlag", FLAG)
            .await
            .body,
        forbidden_body()
    );
    app.forward(&svc, "ManageFeatureFlag", FLAG)
        .await
        .assert(200);
    let log = app
        .get(
            &format!("/api/v1/audit-logs?action=access-token.owner-removed&targetId={personal_id}"),
            &owner,
        )
        .await;
    assert_eq!(log.data()["totalCount"], 1);
    app.post(
        &format!("/api/v1/access-tokens/{personal_id}/activate"),
        &owner,
        json!({}),
    )
    .await
    .assert_error(400, "OwnerIsNotAMember");
    let token = app
        .get(&format!("/api/v1/access-tokens/{personal_id}"), &owner)
        .await;
    assert_eq!(token.data()["status"], "Inactive");
}

#[sqlx::test]
async fn expired_tokens_are_forbidden_and_past_expiry_is_refused(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, _, dev) = owner_and_developer(&app).await;
    app.create_token(
        &dev,
        json!({ "name": "past", "type": "Personal", "expiresAt": "2000-01-01T00:00:00Z" }),
    )
    .await
    .assert_error(400, "expiresAt_is_invalid");
    let (id, token) = app
        .token(
            &dev,
            json!({ "name": "soon", "type": "Personal", "expiresAt": "2999-01-01T00:00:00Z" }),
        )
        .await;
    app.get("/api/v1/auth/whoami", &token).await.assert(200);
    app.sql(&format!(
        "update access_tokens set expires_at = now() - interval '1 second' where id = '{id}'"
    ))
    .await;
    assert_eq!(
        app.get("/api/v1/auth/whoami", &token).await.body,
        forbidden_body()
    );
}

#[sqlx::test]
async fn rotation_kills_the_old_secret_unless_a_grace_is_asked(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, _, dev) = owner_and_developer(&app).await;
    let (id, old) = app.token(&dev, personal("rotating")).await;
    let rotate = format!("/api/v1/access-tokens/{id}/rotate");
    // No body at all is the default: no grace.
    let rotated = app.call(Method::POST, &rotate, Some(&dev), None).await;
    rotated.assert(200);
    let new = Caller {
        token: rotated.data()["token"].as_str().expect("secret").to_owned(),
        ..old.clone()
    };
    assert_ne!(new.token, old.token);
    app.get("/api/v1/auth/whoami", &old)
        .await
        .assert_error(401, "Unauthorized");
    app.get("/api/v1/auth/whoami", &new).await.assert(200);

    let graced = app
        .post(&rotate, &dev, json!({ "oldTokenExpiresInSeconds": 3600 }))
        .await;
    graced.assert(200);
    let newest = Caller {
        token: graced.data()["token"].as_str().expect("secret").to_owned(),
        ..old.clone()
    };
    app.get("/api/v1/auth/whoami", &new).await.assert(200);
    app.get("/api/v1/auth/whoami", &newest).await.assert(200);
    app.sql("update access_tokens set previous_secret_expires_at = now() - interval '1 second'")
        .await;
    app.get("/api/v1/auth/whoami", &new)
        .await
        .assert_error(401, "Unauthorized");
    app.get("/api/v1/auth/whoami", &newest).await.assert(200);

    app.post(&rotate, &dev, json!({ "oldTokenExpiresInSeconds": 86401 }))
        .await
        .assert_error(400, "oldTokenExpiresInSeconds_is_invalid");
}

/// A previous secret is found by a lookup of its own, which does not bring the owner's live
/// permissions the way the current secret's does: they are read apart, and still decide.
#[sqlx::test]
async fn a_personal_tokens_previous_secret_answers_to_its_owners_live_permissions(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, _, dev) = owner_and_developer(&app).await;
    let (id, old) = app.token(&dev, personal("rotating")).await;
    app.post(
        &format!("/api/v1/access-tokens/{id}/rotate"),
        &dev,
        json!({ "oldTokenExpiresInSeconds": 3600 }),
    )
    .await
    .assert(200);
    // Nothing cached: the lookup by the previous secret, then the owner's live permissions.
    app.sql("select 1").await;
    app.forward(&old, "ManageFeatureFlag", FLAG)
        .await
        .assert(200);
    app.sql("delete from member_policies").await;
    app.forward(&old, "ManageFeatureFlag", FLAG)
        .await
        .assert_error(403, "Forbidden");
}

/// Service credentials are looked up without the owner's live permissions (a narrower query):
/// the previous secret during a rotation's grace, and `whoami`'s creator, must still hold.
#[sqlx::test]
async fn a_rotated_service_token_keeps_its_grace_and_whoami_names_its_creator(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, _, dev) = owner_and_developer(&app).await;
    let (id, old) = app.token(&dev, service("deploy")).await;
    let me = app.get("/api/v1/auth/whoami", &old).await;
    me.assert(200);
    assert_eq!(me.data()["principal"]["kind"], "serviceToken");
    // A service token is no member: its creator is provenance, shown with the token.
    assert_eq!(me.data()["user"], serde_json::Value::Null);
    assert_eq!(me.data()["principal"]["creatorId"], dev.user_id.to_string());
    assert_eq!(me.data()["token"]["creator"]["email"], "dev@example.test");
    assert_eq!(me.data()["token"]["id"], id.to_string());

    let rotated = app
        .post(
            &format!("/api/v1/access-tokens/{id}/rotate"),
            &dev,
            json!({ "oldTokenExpiresInSeconds": 3600 }),
        )
        .await;
    rotated.assert(200);
    let new = Caller {
        token: rotated.data()["token"].as_str().expect("secret").to_owned(),
        ..old.clone()
    };
    for caller in [&old, &new] {
        app.forward(caller, "ManageFeatureFlag", FLAG)
            .await
            .assert(200);
        app.forward(caller, "ManageSegment", FLAG)
            .await
            .assert_error(403, "Forbidden");
    }
    app.sql("update access_tokens set previous_secret_expires_at = now() - interval '1 second'")
        .await;
    app.forward(&old, "ManageFeatureFlag", FLAG)
        .await
        .assert_error(401, "Unauthorized");
    app.forward(&new, "ManageFeatureFlag", FLAG)
        .await
        .assert(200);
}

#[sqlx::test]
async fn rename_keeps_permissions_immutable_and_names_unique(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, _, dev) = owner_and_developer(&app).await;
    let (id, _) = app.token(&dev, service("one")).await;
    app.token(&dev, service("two")).await;
    let path = format!("/api/v1/access-tokens/{id}");
    app.put(
        &path,
        &dev,
        Some(json!({ "name": "renamed", "permissions": [] })),
    )
    .await
    .assert_error(400, "PermissionsAreImmutable");
    app.put(
        &path,
        &dev,
        Some(json!({ "name": "renamed", "type": "Personal" })),
    )
    .await
    .assert_error(400, "PermissionsAreImmutable");
    app.put(&path, &dev, Some(json!({ "name": "TWO" })))
        .await
        .assert_error(409, "NameHasBeenUsed");
    let renamed = app
        .put(&path, &dev, Some(json!({ "name": "renamed" })))
        .await;
    renamed.assert(200);
    assert_eq!(renamed.data()["name"], "renamed");
    assert_eq!(
        renamed.data()["permissions"],
        flag_scope_with_ids(&renamed.data()["permissions"])
    );
    let used = app
        .get("/api/v1/access-tokens/is-name-used?name=RENAMED", &dev)
        .await;
    assert_eq!(used.data(), &json!(true));
    let unused = app
        .get("/api/v1/access-tokens/is-name-used?name=one", &dev)
        .await;
    assert_eq!(unused.data(), &json!(false));
}

/// The scope as stored: the requested statements with server-assigned ids.
fn flag_scope_with_ids(stored: &Value) -> Value {
    let mut expected = flag_scope();
    expected[0]["id"] = stored[0]["id"].clone();
    expected
}

#[sqlx::test]
async fn managing_other_members_personal_tokens_needs_iam(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner, dev) = owner_and_developer(&app).await;
    let (owner_token_id, _) = app.token(&owner, personal("owner's")).await;
    let (dev_token_id, dev_token) = app.token(&dev, personal("dev's")).await;
    let (owner_svc_id, _) = app.token(&owner, service("owner's service")).await;

    // A developer lacks CanManageIAM: another member's personal token is off limits.
    app.put(
        &format!("/api/v1/access-tokens/{owner_token_id}/toggle"),
        &dev,
        None,
    )
    .await
    .assert_error(403, "Forbidden");
    app.delete(&format!("/api/v1/access-tokens/{owner_token_id}"), &dev)
        .await
        .assert_error(403, "Forbidden");
    // Service tokens need only ManageServiceAccessTokens.
    app.post(
        &format!("/api/v1/access-tokens/{owner_svc_id}/deactivate"),
        &dev,
        json!({}),
    )
    .await
    .assert(200);
    // The owner may delete the developer's token, and never sees its secret.
    let seen = app
        .get(&format!("/api/v1/access-tokens/{dev_token_id}"), &owner)
        .await;
    assert!(!seen.body.to_string().contains(&dev_token.token[4..]));
    app.delete(&format!("/api/v1/access-tokens/{dev_token_id}"), &owner)
        .await
        .assert(200);
    app.get("/api/v1/auth/whoami", &dev_token).await.assert(401);
}

#[sqlx::test]
async fn a_token_may_always_revoke_itself(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, _, dev) = owner_and_developer(&app).await;
    // Scoped to flags only: no token-management permission at all.
    let (id, token) = app
        .token(
            &dev,
            json!({ "name": "leaked", "type": "Personal", "permissions": flag_scope() }),
        )
        .await;
    let base = format!("/api/v1/access-tokens/{id}");
    app.put(&base, &token, Some(json!({ "name": "x" })))
        .await
        .assert_error(403, "Forbidden");
    let rotated = app.post(&format!("{base}/rotate"), &token, json!({})).await;
    rotated.assert(200);
    let token = Caller {
        token: rotated.data()["token"].as_str().expect("secret").to_owned(),
        ..token
    };
    app.post(&format!("{base}/deactivate"), &token, json!({}))
        .await
        .assert(200);
    // Inactive now: it can no longer act at all, which includes deleting itself.
    app.delete(&base, &token)
        .await
        .assert_error(403, "Forbidden");
    app.post(&format!("{base}/activate"), &dev, json!({}))
        .await
        .assert(200);
    app.delete(&base, &token).await.assert(200);
    app.get("/api/v1/auth/whoami", &token).await.assert(401);
}

#[sqlx::test]
async fn listing_shows_own_tokens_without_list_permission(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner, _) = owner_and_developer(&app).await;
    let policy = app
        .post(
            "/api/v1/policies",
            &owner,
            json!({ "name": "Own tokens", "statements": [{ "resourceType": "access-token", "effect": "allow",
                    "actions": ["ManagePersonalAccessTokens", "ManageServiceAccessTokens"], "resources": ["access-token/*"] },
                    flag_scope()[0]] }),
        )
        .await;
    let policy_id: Uuid = policy.data()["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let limited = app
        .member(&owner, "limited@example.test", &[policy_id])
        .await;
    app.token(&owner, service("owner-svc")).await;
    app.token(&owner, personal("owner-personal")).await;
    let (mine, _) = app.token(&limited, personal("limited-personal")).await;
    app.token(&limited, service("limited-svc")).await;

    let own = app.get("/api/v1/access-tokens", &limited).await;
    assert_eq!(own.data()["totalCount"], 2);
    let others = app
        .get(
            &format!("/api/v1/access-tokens?creatorId={}", owner.user_id),
            &limited,
        )
        .await;
    assert_eq!(others.data()["totalCount"], 0);
    let all = app.get("/api/v1/access-tokens", &owner).await;
    assert_eq!(all.data()["totalCount"], 4);
    // Newest first.
    assert_eq!(all.data()["items"][0]["name"], "limited-svc");
    let filtered = app
        .get(
            "/api/v1/access-tokens?type=Personal&status=Active&name=personal",
            &owner,
        )
        .await;
    assert_eq!(filtered.data()["totalCount"], 2);
    let by_creator = app
        .get(
            &format!(
                "/api/v1/access-tokens?creatorId={}&pageSize=1",
                limited.user_id
            ),
            &owner,
        )
        .await;
    assert_eq!(by_creator.data()["totalCount"], 2);
    assert_eq!(by_creator.data()["items"].as_array().map(Vec::len), Some(1));
    app.get("/api/v1/access-tokens?type=Admin", &owner)
        .await
        .assert_error(400, "type_is_invalid");
    // Another member's token is invisible without ListAccessTokens.
    let owner_tokens = app.get("/api/v1/access-tokens?type=Service", &owner).await;
    let owner_svc = owner_tokens.data()["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|t| t["name"] == "owner-svc")
        .expect("owner-svc")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.get(&format!("/api/v1/access-tokens/{owner_svc}"), &limited)
        .await
        .assert_error(404, "ResourceNotFound");
    app.get(&format!("/api/v1/access-tokens/{mine}"), &limited)
        .await
        .assert(200);
}

#[sqlx::test]
async fn creation_takes_no_mass_assignment(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (org, owner, dev) = owner_and_developer(&app).await;
    for (field, value) in [
        ("creatorId", json!(owner.user_id)),
        ("organizationId", json!(org)),
        ("status", json!("Active")),
        ("token", json!("tgp_chosen")),
        ("secretHash", json!("00")),
    ] {
        let mut body = personal("sneaky");
        body[field] = value;
        app.create_token(&dev, body)
            .await
            .assert_error(400, &format!("{field}_is_invalid"));
    }
    for (body, code) in [
        (json!({ "type": "Personal" }), "name_is_required"),
        (
            json!({ "name": "", "type": "Personal" }),
            "name_is_required",
        ),
        (
            json!({ "name": "n".repeat(129), "type": "Personal" }),
            "name_is_invalid",
        ),
        (json!({ "name": "x", "type": "Root" }), "type_is_invalid"),
        (json!({ "name": "x" }), "type_is_required"),
        (
            json!({ "name": "x", "type": "Personal", "expiresAt": "tomorrow" }),
            "expiresAt_is_invalid",
        ),
        (
            json!({ "name": "x", "type": "Service", "permissions": [{ "resourceType": "flag", "effect": "allow",
            "actions": ["NoSuchAction"], "resources": ["project/*"] }] }),
            "permissions[0].actions_is_invalid",
        ),
    ] {
        app.create_token(&dev, body).await.assert_error(400, code);
    }
    assert_eq!(token_count(&app).await, 0);
}

#[sqlx::test]
async fn bearer_forms_and_organization_header(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (org, owner, dev) = owner_and_developer(&app).await;
    let (_, token) = app.token(&dev, personal("mine")).await;
    // The bare `Authorization: <token>` FeatBit clients send.
    app.raw(Method::GET, "/api/v1/auth/whoami", None, |r| {
        r.header("Authorization", token.token.clone())
    })
    .await
    .assert(200);
    app.get("/api/v1/auth/whoami", &token.in_org(org))
        .await
        .assert(200);
    let elsewhere = app
        .post(
            "/api/v1/organizations",
            &owner.in_org(org),
            json!({ "name": "Elsewhere" }),
        )
        .await;
    let elsewhere: Uuid = elsewhere.data()["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    assert_eq!(
        app.get("/api/v1/auth/whoami", &token.in_org(elsewhere))
            .await
            .body,
        forbidden_body()
    );
    // Never from a query string.
    app.call(
        Method::GET,
        &format!("/api/v1/auth/whoami?token={}", token.token),
        None,
        None,
    )
    .await
    .assert_error(401, "Unauthorized");
    // A well-formed but unknown credential, and one with a broken checksum.
    let mut unknown = token.token.clone().into_bytes();
    let last = unknown.len() - 8;
    unknown[last] = if unknown[last] == b'A' { b'B' } else { b'A' };
    let broken = Caller {
        token: String::from_utf8(unknown).expect("ascii"),
        ..token.clone()
    };
    app.get("/api/v1/auth/whoami", &broken)
        .await
        .assert_error(401, "Unauthorized");
}

#[sqlx::test]
async fn last_used_at_is_recorded(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, _, dev) = owner_and_developer(&app).await;
    let (id, token) = app.token(&dev, personal("used")).await;
    let path = format!("/api/v1/access-tokens/{id}");
    assert_eq!(app.get(&path, &dev).await.data()["lastUsedAt"], Value::Null);
    app.get("/api/v1/auth/whoami", &token).await.assert(200);
    let written = app
        .state
        .auth
        .last_used
        .flush(&app.db)
        .await
        .expect("flush");
    assert_eq!(written, 1);
    assert!(app.get(&path, &dev).await.data()["lastUsedAt"].is_string());
}

#[sqlx::test]
async fn check_and_forward_answer_for_integrations(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (org, _, dev) = owner_and_developer(&app).await;
    let (id, svc) = app.token(&dev, service("gateway")).await;
    let check = app
        .post(
            "/api/v1/auth/check",
            &svc,
            json!({ "checks": [
                { "action": "ManageFeatureFlag", "resource": FLAG },
                { "action": "CanManageIAM", "resource": "iam/*" }] }),
        )
        .await;
    check.assert(200);
    assert_eq!(check.data()["allowed"], false);
    assert_eq!(check.data()["results"][0]["allowed"], true);
    assert_eq!(check.data()["results"][1]["allowed"], false);
    let too_many = json!({ "checks": vec![json!({ "action": "A", "resource": "r" }); 101] });
    app.post("/api/v1/auth/check", &svc, too_many)
        .await
        .assert_error(400, "checks_is_invalid");

    let allowed = app.forward(&svc, "ManageFeatureFlag", FLAG).await;
    allowed.assert(200);
    assert_eq!(allowed.headers["x-auth-principal"], "service-token");
    assert_eq!(allowed.headers["x-auth-token-id"], id.to_string().as_str());
    assert_eq!(
        allowed.headers["x-auth-organization"],
        org.to_string().as_str()
    );
    let denied = app.forward(&svc, "DeleteProject", "project/web").await;
    assert_eq!(
        (denied.status, denied.body.clone()),
        (403, forbidden_body())
    );
    app.call(Method::GET, "/api/v1/auth/forward", Some(&svc), None)
        .await
        .assert_error(400, "action_is_required");
    app.forward(
        &Caller {
            token: "garbage".into(),
            ..svc
        },
        "ManageFeatureFlag",
        FLAG,
    )
    .await
    .assert_error(401, "Unauthorized");
}

#[sqlx::test]
async fn audit_log_needs_list_or_iam_and_records_the_lifecycle(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner, dev) = owner_and_developer(&app).await;
    let (id, _) = app.token(&dev, personal("audited")).await;
    let base = format!("/api/v1/access-tokens/{id}");
    app.put(&base, &dev, Some(json!({ "name": "audited-2" })))
        .await
        .assert(200);
    app.post(&format!("{base}/deactivate"), &dev, json!({}))
        .await
        .assert(200);
    app.post(&format!("{base}/activate"), &dev, json!({}))
        .await
        .assert(200);
    app.post(&format!("{base}/rotate"), &dev, json!({}))
        .await
        .assert(200);
    app.delete(&base, &dev).await.assert(200);
    let log = app
        .get(
            &format!("/api/v1/audit-logs?targetId={id}&pageSize=100"),
            &owner,
        )
        .await;
    log.assert(200);
    let mut actions: Vec<&str> = log.data()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "access-token.activated",
            "access-token.created",
            "access-token.deactivated",
            "access-token.deleted",
            "access-token.renamed",
            "access-token.rotated"
        ]
    );
    let no_rights = app.member(&owner, "nobody@example.test", &[]).await;
    app.get("/api/v1/audit-logs", &no_rights)
        .await
        .assert_error(403, "Forbidden");
}

#[sqlx::test]
async fn rotation_takes_no_body_an_empty_object_or_null(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, _, dev) = owner_and_developer(&app).await;
    let (id, _) = app.token(&dev, personal("r")).await;
    let path = format!("/api/v1/access-tokens/{id}/rotate");
    app.post(&path, &dev, json!({})).await.assert(200);
    app.post(&path, &dev, Value::Null).await.assert(200);
    app.call(Method::POST, &path, Some(&dev), None)
        .await
        .assert(200);
}
