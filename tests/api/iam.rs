//! Members, policies and groups over HTTP: `CanManageIAM` on writes, organization scoping,
//! read-only built-ins, live permissions and the audit trail.

use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{Caller, TestApp, PASSWORD};
use tokengate::policy::{builtin_policies, Statement, DEVELOPER_POLICY_ID, OWNER_POLICY_ID};

const DEV_EMAIL: &str = "dev@example.test";

fn id(value: &Value) -> Uuid {
    value["id"].as_str().expect("id").parse().expect("uuid")
}

fn flag_policy(name: &str) -> Value {
    json!({
        "name": name,
        "description": "manage flags in prod",
        "statements": [{
            "resourceType": "flag", "effect": "allow",
            "actions": ["ManageFeatureFlag"], "resources": ["project/*:env/prod:flag/*"]
        }]
    })
}

#[sqlx::test]
async fn owner_adds_a_developer_who_sees_their_own_permissions(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let added = app
        .post(
            "/api/v1/members",
            &owner,
            json!({ "email": DEV_EMAIL, "name": "Dev", "password": PASSWORD,
                    "policyIds": [DEVELOPER_POLICY_ID] }),
        )
        .await;
    added.assert(201);
    assert_eq!(added.data()["policies"][0]["name"], "Developer");
    let dev = app.session(DEV_EMAIL).await;
    let perms = app
        .get(
            &format!("/api/v1/members/{}/permissions", dev.user_id),
            &dev,
        )
        .await;
    perms.assert(200);
    let statements: Vec<Statement> =
        serde_json::from_value(perms.data().clone()).expect("statements");
    let developer = builtin_policies()
        .into_iter()
        .find(|p| p.id == DEVELOPER_POLICY_ID)
        .expect("developer");
    assert_eq!(statements, developer.statements);
}

#[sqlx::test]
async fn a_new_member_without_policy_ids_gets_the_developer_policy(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let added = app
        .post(
            "/api/v1/members",
            &owner,
            json!({ "email": DEV_EMAIL, "name": "Dev", "password": PASSWORD }),
        )
        .await;
    added.assert(201);
    assert_eq!(
        added.data()["policies"][0]["id"],
        DEVELOPER_POLICY_ID.to_string()
    );
}

#[sqlx::test]
async fn a_developer_cannot_manage_iam(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let dev = app.member(&owner, DEV_EMAIL, &[DEVELOPER_POLICY_ID]).await;
    let before = app.count("select count(*) from memberships").await;
    let body = app
        .post(
            "/api/v1/members",
            &dev,
            json!({ "email": "x@example.test", "name": "X", "password": PASSWORD }),
        )
        .await;
    body.assert(403);
    assert_eq!(
        body.body,
        json!({"success": false, "errors": ["Forbidden"], "data": null})
    );
    app.post("/api/v1/policies", &dev, flag_policy("p"))
        .await
        .assert_error(403, "Forbidden");
    app.post("/api/v1/groups", &dev, json!({ "name": "g" }))
        .await
        .assert_error(403, "Forbidden");
    app.put(
        &format!("/api/v1/members/{}/policies/{OWNER_POLICY_ID}", dev.user_id),
        &dev,
        None,
    )
    .await
    .assert_error(403, "Forbidden");
    // Reading another member's permissions needs CanManageIAM too.
    app.get(
        &format!("/api/v1/members/{}/permissions", owner.user_id),
        &dev,
    )
    .await
    .assert_error(403, "Forbidden");
    assert_eq!(app.count("select count(*) from memberships").await, before);
}

#[sqlx::test]
async fn adding_an_existing_member_is_a_conflict(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    app.member(&owner, DEV_EMAIL, &[]).await;
    app.post(
        "/api/v1/members",
        &owner,
        json!({ "email": "DEV@example.test", "name": "Dev", "password": PASSWORD }),
    )
    .await
    .assert_error(409, "MemberAlreadyExists");
}

#[sqlx::test]
async fn adding_a_member_validates_input_and_writes_nothing_on_error(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let users = app.count("select count(*) from users").await;
    for (body, code) in [
        (
            json!({ "email": "", "name": "N", "password": PASSWORD }),
            "email_is_required",
        ),
        (
            json!({ "email": "no-at-sign", "name": "N", "password": PASSWORD }),
            "email_is_invalid",
        ),
        (
            json!({ "email": "a@b.c", "name": "", "password": PASSWORD }),
            "name_is_required",
        ),
        (
            json!({ "email": "a@b.c", "name": "n".repeat(129), "password": PASSWORD }),
            "name_is_invalid",
        ),
        (
            json!({ "email": "a@b.c", "name": "N" }),
            "password_is_required",
        ),
        (
            json!({ "email": "a@b.c", "name": "N", "password": "short" }),
            "password_is_invalid",
        ),
        (
            json!({ "email": "a@b.c", "name": "N", "password": PASSWORD, "policyIds": [Uuid::new_v4()] }),
            "policyIds_is_invalid",
        ),
        (
            json!({ "email": "a@b.c", "name": "N", "password": PASSWORD, "policyIds": ["nope"] }),
            "policyIds[0]_is_invalid",
        ),
        (
            json!({ "email": "a@b.c", "name": "N", "password": PASSWORD, "organizationId": Uuid::new_v4() }),
            "organizationId_is_invalid",
        ),
    ] {
        app.post("/api/v1/members", &owner, body)
            .await
            .assert_error(400, code);
    }
    assert_eq!(app.count("select count(*) from users").await, users);
}

#[sqlx::test]
async fn non_uuid_ids_are_400_naming_the_parameter(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    app.get("/api/v1/members/not-a-uuid", &owner)
        .await
        .assert_error(400, "userId_is_invalid");
    app.get("/api/v1/policies/123", &owner)
        .await
        .assert_error(400, "id_is_invalid");
}

/// Two organizations: the second's owner is a stranger to the first.
async fn two_organizations(app: &TestApp) -> (Caller, Caller) {
    let (_, owner) = app.owner().await;
    let other = app.member(&owner, "other@example.test", &[]).await;
    // `other` founds their own organization and leaves the first.
    let org = app
        .post(
            "/api/v1/organizations",
            &other,
            json!({ "name": "Other Inc" }),
        )
        .await;
    org.assert(201);
    let other_org = id(org.data());
    app.delete(&format!("/api/v1/members/{}", other.user_id), &owner)
        .await
        .assert(200);
    (owner, other.in_org(other_org))
}

#[sqlx::test]
async fn ids_from_another_organization_are_not_found(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (owner, stranger) = two_organizations(&app).await;
    let policy = app
        .post("/api/v1/policies", &owner, flag_policy("Flags"))
        .await;
    policy.assert(201);
    let policy_id = id(policy.data());
    let group = app
        .post("/api/v1/groups", &owner, json!({ "name": "Team" }))
        .await;
    group.assert(201);
    let group_id = id(group.data());

    for path in [
        format!("/api/v1/policies/{policy_id}"),
        format!("/api/v1/groups/{group_id}"),
        format!("/api/v1/members/{}", owner.user_id),
        format!("/api/v1/members/{}/permissions", owner.user_id),
    ] {
        app.get(&path, &stranger)
            .await
            .assert_error(404, "ResourceNotFound");
    }
    app.put(
        &format!("/api/v1/policies/{policy_id}/statements"),
        &stranger,
        Some(json!([])),
    )
    .await
    .assert_error(404, "ResourceNotFound");
    app.delete(&format!("/api/v1/policies/{policy_id}"), &stranger)
        .await
        .assert_error(404, "ResourceNotFound");
    app.delete(&format!("/api/v1/groups/{group_id}"), &stranger)
        .await
        .assert_error(404, "ResourceNotFound");
    app.put(
        &format!("/api/v1/members/{}/policies/{policy_id}", stranger.user_id),
        &stranger,
        None,
    )
    .await
    .assert_error(404, "ResourceNotFound");
    app.put(
        &format!("/api/v1/groups/{group_id}/members/{}", stranger.user_id),
        &stranger,
        None,
    )
    .await
    .assert_error(404, "ResourceNotFound");
    // From inside: another organization's member or policy in one's own group is not found.
    app.delete(
        &format!("/api/v1/groups/{group_id}/members/{}", stranger.user_id),
        &owner,
    )
    .await
    .assert_error(404, "ResourceNotFound");
    let foreign = app
        .post("/api/v1/policies", &stranger, flag_policy("Theirs"))
        .await;
    foreign.assert(201);
    app.delete(
        &format!("/api/v1/groups/{group_id}/policies/{}", id(foreign.data())),
        &owner,
    )
    .await
    .assert_error(404, "ResourceNotFound");
    app.sql("delete from policies where name = 'Theirs'").await;
    // Lists show only the caller's organization.
    let policies = app.get("/api/v1/policies?pageSize=100", &stranger).await;
    assert!(policies.data()["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|p| p["id"] != policy_id.to_string()));
    // Nothing changed.
    assert_eq!(
        app.count("select count(*) from policies where type = 'Custom'")
            .await,
        1
    );
    assert_eq!(app.count("select count(*) from groups").await, 1);
}

#[sqlx::test]
async fn built_in_policies_are_read_only(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    for id in [OWNER_POLICY_ID, DEVELOPER_POLICY_ID] {
        app.put(
            &format!("/api/v1/policies/{id}"),
            &owner,
            Some(json!({ "name": "Mine" })),
        )
        .await
        .assert_error(400, "CannotModifySysManagedPolicy");
        app.put(
            &format!("/api/v1/policies/{id}/statements"),
            &owner,
            Some(json!([])),
        )
        .await
        .assert_error(400, "CannotModifySysManagedPolicy");
        app.delete(&format!("/api/v1/policies/{id}"), &owner)
            .await
            .assert_error(400, "CannotModifySysManagedPolicy");
    }
}

#[sqlx::test]
async fn built_in_policies_in_the_database_match_the_policy_engine(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    for builtin in builtin_policies() {
        let resp = app
            .get(&format!("/api/v1/policies/{}", builtin.id), &owner)
            .await;
        resp.assert(200);
        assert_eq!(resp.data()["name"], builtin.name);
        assert_eq!(resp.data()["type"], "SysManaged");
        let statements: Vec<Statement> =
            serde_json::from_value(resp.data()["statements"].clone()).expect("statements");
        assert_eq!(statements, builtin.statements, "{}", builtin.name);
    }
}

#[sqlx::test]
async fn unknown_actions_and_oversized_statement_lists_are_rejected(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let typo = json!({ "name": "Typo", "statements": [{
        "resourceType": "flag", "effect": "allow",
        "actions": ["ManageFeatureFlags"], "resources": ["project/*"] }] });
    app.post("/api/v1/policies", &owner, typo)
        .await
        .assert_error(400, "statements[0].actions_is_invalid");
    let bad_effect = json!({ "name": "Bad", "statements": [{
        "resourceType": "flag", "effect": "maybe",
        "actions": ["*"], "resources": ["project/*"] }] });
    app.post("/api/v1/policies", &owner, bad_effect)
        .await
        .assert_error(400, "statements[0].effect_is_invalid");
    let statement = json!({ "resourceType": "flag", "effect": "allow",
        "actions": ["*"], "resources": ["p/*"] });
    let many = json!({ "name": "Many", "statements": vec![statement.clone(); 101] });
    app.post("/api/v1/policies", &owner, many)
        .await
        .assert_error(400, "statements_is_invalid");
    let huge = json!({ "name": "Huge", "statements": vec![statement; 10_000] });
    app.post("/api/v1/policies", &owner, huge)
        .await
        .assert_error(413, "PayloadTooLarge");
    assert_eq!(
        app.count("select count(*) from policies where type = 'Custom'")
            .await,
        0
    );
}

#[sqlx::test]
async fn duplicate_policy_and_group_names_conflict(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    app.post("/api/v1/policies", &owner, flag_policy("Flags"))
        .await
        .assert(201);
    app.post("/api/v1/policies", &owner, flag_policy("FLAGS"))
        .await
        .assert_error(409, "NameHasBeenUsed");
    app.post("/api/v1/groups", &owner, json!({ "name": "Team" }))
        .await
        .assert(201);
    app.post("/api/v1/groups", &owner, json!({ "name": "team" }))
        .await
        .assert_error(409, "NameHasBeenUsed");
}

#[sqlx::test]
async fn policy_edits_change_live_permissions_at_once(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let policy = app
        .post("/api/v1/policies", &owner, flag_policy("Flags"))
        .await;
    let policy_id = id(policy.data());
    let dev = app.member(&owner, DEV_EMAIL, &[policy_id]).await;
    let path = format!("/api/v1/members/{}/permissions", dev.user_id);
    let perms = app.get(&path, &dev).await;
    assert_eq!(perms.data()[0]["actions"][0], "ManageFeatureFlag");

    app.put(
        &format!("/api/v1/policies/{policy_id}/statements"),
        &owner,
        Some(json!([{ "resourceType": "segment", "effect": "allow",
                      "actions": ["*"], "resources": ["project/*:env/*:segment/*"] }])),
    )
    .await
    .assert(200);
    let perms = app.get(&path, &dev).await;
    assert_eq!(perms.data()[0]["resourceType"], "segment");
    assert_eq!(perms.data().as_array().map(Vec::len), Some(1));

    app.delete(
        &format!("/api/v1/members/{}/policies/{policy_id}", dev.user_id),
        &owner,
    )
    .await
    .assert(200);
    assert_eq!(app.get(&path, &dev).await.data(), &json!([]));
}

#[sqlx::test]
async fn group_policies_reach_group_members_until_they_leave(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let dev = app.member(&owner, DEV_EMAIL, &[]).await;
    let policy_id = id(app
        .post("/api/v1/policies", &owner, flag_policy("Flags"))
        .await
        .data());
    let group_id = id(app
        .post("/api/v1/groups", &owner, json!({ "name": "Team" }))
        .await
        .data());
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
    let path = format!("/api/v1/members/{}/permissions", dev.user_id);
    assert_eq!(
        app.get(&path, &dev).await.data()[0]["actions"][0],
        "ManageFeatureFlag"
    );
    let group = app.get(&format!("/api/v1/groups/{group_id}"), &owner).await;
    assert_eq!(group.data()["members"][0]["id"], dev.user_id.to_string());
    assert_eq!(group.data()["policies"][0]["id"], policy_id.to_string());

    app.delete(
        &format!("/api/v1/groups/{group_id}/members/{}", dev.user_id),
        &owner,
    )
    .await
    .assert(200);
    assert_eq!(app.get(&path, &dev).await.data(), &json!([]));
}

#[sqlx::test]
async fn removing_a_member_ends_their_access_and_links(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let dev = app.member(&owner, DEV_EMAIL, &[DEVELOPER_POLICY_ID]).await;
    let group_id = id(app
        .post("/api/v1/groups", &owner, json!({ "name": "Team" }))
        .await
        .data());
    app.put(
        &format!("/api/v1/groups/{group_id}/members/{}", dev.user_id),
        &owner,
        None,
    )
    .await
    .assert(200);
    app.delete(&format!("/api/v1/members/{}", dev.user_id), &owner)
        .await
        .assert(200);
    // The session still exists but names no organization the user belongs to.
    app.get("/api/v1/members", &dev)
        .await
        .assert_error(403, "Forbidden");
    assert_eq!(app.count("select count(*) from member_policies mp join users u on u.id = mp.user_id where u.email = 'dev@example.test'").await, 0);
    assert_eq!(app.count("select count(*) from group_members").await, 0);
    app.delete(&format!("/api/v1/members/{}", dev.user_id), &owner)
        .await
        .assert_error(404, "ResourceNotFound");
}

#[sqlx::test]
async fn the_last_owner_cannot_be_removed_or_demoted(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    app.delete(&format!("/api/v1/members/{}", owner.user_id), &owner)
        .await
        .assert_error(400, "CannotRemoveLastOwner");
    app.delete(
        &format!(
            "/api/v1/members/{}/policies/{OWNER_POLICY_ID}",
            owner.user_id
        ),
        &owner,
    )
    .await
    .assert_error(400, "CannotRemoveLastOwner");
}

#[sqlx::test]
async fn members_list_is_paged_and_filtered(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    for i in 0..3 {
        app.member(&owner, &format!("m{i}@example.test"), &[]).await;
    }
    let page = app
        .get("/api/v1/members?pageIndex=0&pageSize=2", &owner)
        .await;
    page.assert(200);
    assert_eq!(page.data()["totalCount"], 4);
    assert_eq!(page.data()["items"].as_array().map(Vec::len), Some(2));
    let filtered = app.get("/api/v1/members?name=m1%40", &owner).await;
    assert_eq!(filtered.data()["totalCount"], 1);
    app.get("/api/v1/members?pageIndex=-1", &owner)
        .await
        .assert_error(400, "pageIndex_is_invalid");
    app.get("/api/v1/members?pageSize=abc", &owner)
        .await
        .assert_error(400, "pageSize_is_invalid");
    let clamped = app.get("/api/v1/members?pageSize=100000", &owner).await;
    clamped.assert(200);
}

#[sqlx::test]
async fn every_iam_change_is_audited(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let dev = app.member(&owner, DEV_EMAIL, &[]).await;
    let policy_id = id(app
        .post("/api/v1/policies", &owner, flag_policy("Flags"))
        .await
        .data());
    app.put(
        &format!("/api/v1/policies/{policy_id}"),
        &owner,
        Some(json!({ "name": "Flags 2" })),
    )
    .await
    .assert(200);
    app.put(
        &format!("/api/v1/members/{}/policies/{policy_id}", dev.user_id),
        &owner,
        None,
    )
    .await
    .assert(200);
    let group_id = id(app
        .post("/api/v1/groups", &owner, json!({ "name": "Team" }))
        .await
        .data());
    app.delete(&format!("/api/v1/groups/{group_id}"), &owner)
        .await
        .assert(200);
    app.delete(&format!("/api/v1/policies/{policy_id}"), &owner)
        .await
        .assert(200);
    app.delete(&format!("/api/v1/members/{}", dev.user_id), &owner)
        .await
        .assert(200);

    let log = app.get("/api/v1/audit-logs?pageSize=100", &owner).await;
    log.assert(200);
    let actions: Vec<&str> = log.data()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for expected in [
        "organization.created",
        "member.added",
        "policy.created",
        "policy.updated",
        "member.policy-attached",
        "group.created",
        "group.deleted",
        "policy.deleted",
        "member.removed",
    ] {
        assert!(actions.contains(&expected), "{expected} not in {actions:?}");
    }
    let renamed = app
        .get(
            &format!("/api/v1/audit-logs?action=policy.updated&targetId={policy_id}"),
            &owner,
        )
        .await;
    assert_eq!(renamed.data()["totalCount"], 1);
    assert_eq!(
        renamed.data()["items"][0]["details"]["name"]["after"],
        "Flags 2"
    );
    assert_eq!(
        renamed.data()["items"][0]["actorId"],
        owner.user_id.to_string()
    );
}

#[sqlx::test]
async fn the_catalogue_lists_every_action_the_built_ins_use(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let resp = app.get("/api/v1/permissions", &owner).await;
    resp.assert(200);
    let names: Vec<&str> = resp
        .data()
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    for action in [
        "ManageFeatureFlag",
        "CanManageIAM",
        "ManagePersonalAccessTokens",
        "ManageServiceAccessTokens",
        "ListAccessTokens",
        "UpdateOrgName",
        "UpdateOrgDefaultUserPermissions",
        "CreateOrg",
        "ManageRelayProxies",
        "ListRelayProxies",
    ] {
        assert!(names.contains(&action), "{action} missing");
    }
}
