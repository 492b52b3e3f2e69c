//! Nobody grants more than they hold (issue 15, SPEC §9): IAM changes are bounded by the
//! granter as tokens are by their creator, and only Owners change what an Owner may do.

use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{Caller, Resp, TestApp, PASSWORD};
use tokengate::policy::{ADMINISTRATOR_POLICY_ID, DEVELOPER_POLICY_ID, OWNER_POLICY_ID};

const FLAG: &str = "project/web:env/prod:flag/dark-mode";

fn allow(resource_type: &str, actions: &[&str], resource: &str) -> Value {
    json!({ "resourceType": resource_type, "effect": "allow", "actions": actions,
            "resources": [resource] })
}

fn deny(resource_type: &str, actions: &[&str], resource: &str) -> Value {
    json!({ "resourceType": resource_type, "effect": "deny", "actions": actions,
            "resources": [resource] })
}

fn iam_only() -> Value {
    allow("iam", &["CanManageIAM"], "iam/*")
}

fn flags() -> Value {
    allow("flag", &["ManageFeatureFlag"], "project/*:env/*:flag/*")
}

#[track_caller]
fn assert_exceeds(resp: &Resp, pair: &str) {
    resp.assert_error(403, "PermissionExceedsGranter");
    assert_eq!(resp.errors()[1], pair, "{:#}", resp.body);
}

async fn policy(app: &TestApp, caller: &Caller, name: &str, statements: Value) -> Uuid {
    let created = app
        .post(
            "/api/v1/policies",
            caller,
            json!({ "name": name, "statements": statements }),
        )
        .await;
    created.assert(201);
    created.data()["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid")
}

fn member_policy(user: Uuid, policy: Uuid) -> String {
    format!("/api/v1/members/{user}/policies/{policy}")
}

#[sqlx::test]
async fn an_administrator_cannot_take_the_owners_place(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let admin = app
        .member(&owner, "admin@example.test", &[ADMINISTRATOR_POLICY_ID])
        .await;
    // Attach the Owner policy to themselves...
    let resp = app
        .put(&member_policy(admin.user_id, OWNER_POLICY_ID), &admin, None)
        .await;
    assert_exceeds(&resp, "* on *");
    // ...take it from the Owner, or remove the Owner.
    let resp = app
        .delete(&member_policy(owner.user_id, OWNER_POLICY_ID), &admin)
        .await;
    assert_exceeds(&resp, "* on *");
    let resp = app
        .delete(&format!("/api/v1/members/{}", owner.user_id), &admin)
        .await;
    assert_exceeds(&resp, "* on *");
    // An administrator may still manage members within their own power.
    app.member(&admin, "dev@example.test", &[DEVELOPER_POLICY_ID])
        .await;
    assert_eq!(
        app.count("select count(*) from member_policies where policy_id = '98881f6a-5c6c-4277-bcf7-fda94c538785'")
            .await,
        1
    );
}

#[sqlx::test]
async fn an_administrator_cannot_lock_the_owner_out(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let admin = app
        .member(&owner, "admin@example.test", &[ADMINISTRATOR_POLICY_ID])
        .await;
    let deny_all = policy(&app, &owner, "deny all", json!([deny("*", &["*"], "*")])).await;
    let resp = app
        .put(&member_policy(owner.user_id, deny_all), &admin, None)
        .await;
    assert_exceeds(&resp, "* on *");
    // Not even the last Owner may lock the organization out of its own IAM.
    app.put(&member_policy(owner.user_id, deny_all), &owner, None)
        .await
        .assert_error(400, "CannotRemoveLastOwner");
    app.get("/api/v1/members", &owner).await.assert(200);
    app.put(
        &format!(
            "/api/v1/members/{}/policies/{ADMINISTRATOR_POLICY_ID}",
            admin.user_id
        ),
        &owner,
        None,
    )
    .await
    .assert(200);
}

#[sqlx::test]
async fn an_iam_only_member_grants_nothing_it_lacks(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let iam_policy = policy(&app, &owner, "iam only", json!([iam_only()])).await;
    let flag_policy = policy(&app, &owner, "flags", json!([flags()])).await;
    let manager = app.member(&owner, "iam@example.test", &[iam_policy]).await;
    let dev = app.member(&owner, "dev@example.test", &[]).await;

    for target in [manager.user_id, dev.user_id] {
        let resp = app
            .put(&member_policy(target, flag_policy), &manager, None)
            .await;
        assert_exceeds(&resp, "ManageFeatureFlag on project/*:env/*:flag/*");
    }
    // Nor through a policy of its own, an edit, a new member or a group.
    let resp = app
        .post(
            "/api/v1/policies",
            &manager,
            json!({ "name": "mine", "statements": [flags()] }),
        )
        .await;
    assert_exceeds(&resp, "ManageFeatureFlag on project/*:env/*:flag/*");
    let resp = app
        .put(
            &format!("/api/v1/policies/{iam_policy}/statements"),
            &manager,
            Some(json!([iam_only(), flags()])),
        )
        .await;
    assert_exceeds(&resp, "ManageFeatureFlag on project/*:env/*:flag/*");
    let resp = app
        .post(
            "/api/v1/members",
            &manager,
            json!({ "email": "new@example.test", "name": "New", "password": PASSWORD,
                    "policyIds": [flag_policy] }),
        )
        .await;
    assert_exceeds(&resp, "ManageFeatureFlag on project/*:env/*:flag/*");
    // The Developer policy by default is a grant too.
    let resp = app
        .post(
            "/api/v1/members",
            &manager,
            json!({ "email": "new@example.test", "name": "New", "password": PASSWORD }),
        )
        .await;
    resp.assert_error(403, "PermissionExceedsGranter");
    let group = app
        .post("/api/v1/groups", &owner, json!({ "name": "flaggers" }))
        .await;
    let group = group.data()["id"].as_str().expect("id").to_owned();
    app.put(
        &format!("/api/v1/groups/{group}/policies/{flag_policy}"),
        &owner,
        None,
    )
    .await
    .assert(200);
    let resp = app
        .put(
            &format!("/api/v1/groups/{group}/members/{}", manager.user_id),
            &manager,
            None,
        )
        .await;
    assert_exceeds(&resp, "ManageFeatureFlag on project/*:env/*:flag/*");
    // What it holds, it may give: a member with no policies at all.
    app.post(
        "/api/v1/members",
        &manager,
        json!({ "email": "plain@example.test", "name": "Plain", "password": PASSWORD,
                "policyIds": [] }),
    )
    .await
    .assert(201);
    // Nothing of the refused writes happened.
    app.forward(&manager, "ManageFeatureFlag", FLAG)
        .await
        .assert_error(403, "Forbidden");
}

#[sqlx::test]
async fn an_iam_scoped_token_cannot_create_an_owner(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let (_, token) = app
        .token(
            &owner,
            json!({ "name": "iam bot", "type": "Service", "permissions": [iam_only()] }),
        )
        .await;
    let resp = app
        .post(
            "/api/v1/members",
            &token,
            json!({ "email": "mallory@example.test", "name": "Mallory", "password": PASSWORD,
                    "policyIds": [OWNER_POLICY_ID] }),
        )
        .await;
    assert_exceeds(&resp, "* on *");
    assert_eq!(
        app.count("select count(*) from users where email = 'mallory@example.test'")
            .await,
        0
    );
}

#[sqlx::test]
async fn lifting_a_deny_needs_what_it_denied(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let iam_policy = policy(&app, &owner, "iam only", json!([iam_only()])).await;
    let no_flags = policy(
        &app,
        &owner,
        "no flags",
        json!([deny("flag", &["*"], "project/*:env/*:flag/*")]),
    )
    .await;
    let manager = app.member(&owner, "iam@example.test", &[iam_policy]).await;
    let dev = app
        .member(&owner, "dev@example.test", &[DEVELOPER_POLICY_ID, no_flags])
        .await;
    app.forward(&dev, "ManageFeatureFlag", FLAG)
        .await
        .assert_error(403, "Forbidden");
    // Detaching the deny would give the developer flags the manager does not hold.
    let resp = app
        .delete(&member_policy(dev.user_id, no_flags), &manager)
        .await;
    assert_exceeds(&resp, "* on project/*:env/*:flag/*");
    let resp = app
        .delete(&format!("/api/v1/policies/{no_flags}"), &manager)
        .await;
    assert_exceeds(&resp, "* on project/*:env/*:flag/*");
    let resp = app
        .put(
            &format!("/api/v1/policies/{no_flags}/statements"),
            &manager,
            Some(json!([])),
        )
        .await;
    assert_exceeds(&resp, "* on project/*:env/*:flag/*");
    app.forward(&dev, "ManageFeatureFlag", FLAG)
        .await
        .assert_error(403, "Forbidden");
    // Adding a deny takes power away: anyone with CanManageIAM may.
    let no_segments = policy(
        &app,
        &owner,
        "no segments",
        json!([deny("segment", &["*"], "project/*:env/*:segment/*")]),
    )
    .await;
    app.put(&member_policy(dev.user_id, no_segments), &manager, None)
        .await
        .assert(200);
    // The Owner holds what the deny denied, so the Owner may lift it.
    app.delete(&member_policy(dev.user_id, no_flags), &owner)
        .await
        .assert(200);
    app.forward(&dev, "ManageFeatureFlag", FLAG)
        .await
        .assert(200);
}

#[sqlx::test]
async fn what_an_owner_holds_is_for_owners_to_change(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let admin = app
        .member(&owner, "admin@example.test", &[ADMINISTRATOR_POLICY_ID])
        .await;
    let shared = policy(&app, &owner, "shared", json!([flags()])).await;
    app.put(&member_policy(owner.user_id, shared), &owner, None)
        .await
        .assert(200);
    // The policy reaches the Owner: editing it changes what an Owner may do.
    let resp = app
        .put(
            &format!("/api/v1/policies/{shared}/statements"),
            &admin,
            Some(json!([flags(), deny("*", &["*"], "*")])),
        )
        .await;
    assert_exceeds(&resp, "* on *");
    // Putting the Owner in a group is attaching its policies to an Owner.
    let group = app
        .post("/api/v1/groups", &admin, json!({ "name": "team" }))
        .await;
    let group = group.data()["id"].as_str().expect("id").to_owned();
    let resp = app
        .put(
            &format!("/api/v1/groups/{group}/members/{}", owner.user_id),
            &admin,
            None,
        )
        .await;
    assert_exceeds(&resp, "* on *");
    app.put(
        &format!("/api/v1/groups/{group}/members/{}", owner.user_id),
        &owner,
        None,
    )
    .await
    .assert(200);
    let resp = app
        .put(
            &format!("/api/v1/groups/{group}/policies/{shared}"),
            &admin,
            None,
        )
        .await;
    assert_exceeds(&resp, "* on *");
}
