//! Concurrent writes: never a 500, always a consistent end state, and no token that outlives
//! the permission its creator was losing.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{Resp, TestApp};
use tokengate::db::iam;

fn service(name: &str) -> serde_json::Value {
    json!({ "name": name, "type": "Service", "permissions": [{ "resourceType": "flag",
        "effect": "allow", "actions": ["*"], "resources": ["project/*:env/*:flag/*"] }] })
}

#[sqlx::test]
async fn parallel_toggles_and_deletes_never_fail_and_end_consistent(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let (id, _) = app.token(&owner, service("contested")).await;
    let base = format!("/api/v1/access-tokens/{id}");
    let toggle = format!("{base}/toggle");
    let toggles = (0..20).map(|_| app.put(&toggle, &owner, None));
    let deletes = (0..5).map(|_| app.delete(&base, &owner));
    let (toggled, deleted) = futures::future::join(
        futures::future::join_all(toggles),
        futures::future::join_all(deletes),
    )
    .await;
    let statuses = |rs: &[Resp]| rs.iter().map(|r| r.status).collect::<Vec<_>>();
    assert!(
        toggled.iter().all(|r| r.status == 200 || r.status == 404),
        "{:?}",
        statuses(&toggled)
    );
    assert_eq!(
        deleted.iter().filter(|r| r.status == 200).count(),
        1,
        "{:?}",
        statuses(&deleted)
    );
    assert!(deleted.iter().all(|r| r.status == 200 || r.status == 404));
    app.get(&base, &owner)
        .await
        .assert_error(404, "ResourceNotFound");
    // Every successful toggle left exactly one audit event, and the deletion one.
    let toggles_ok = toggled.iter().filter(|r| r.status == 200).count() as i64;
    let events = app
        .count(&format!(
            "select count(*) from audit_events where target_id = '{id}'
             and action in ('access-token.activated', 'access-token.deactivated')"
        ))
        .await;
    assert_eq!(events, toggles_ok);
    assert_eq!(
        app.count(&format!("select count(*) from audit_events where target_id = '{id}' and action = 'access-token.deleted'")).await,
        1
    );
}

#[sqlx::test]
async fn parallel_rotations_leave_exactly_one_working_secret(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let (id, _) = app.token(&owner, service("rotating")).await;
    let path = format!("/api/v1/access-tokens/{id}/rotate");
    let rotations =
        futures::future::join_all((0..10).map(|_| app.post(&path, &owner, json!({})))).await;
    assert!(rotations.iter().all(|r| r.status == 200));
    let mut working = 0;
    for r in &rotations {
        let caller = crate::helpers::Caller {
            token: r.data()["token"].as_str().expect("secret").to_owned(),
            org: None,
            user_id: owner.user_id,
        };
        if app.get("/api/v1/auth/whoami", &caller).await.status == 200 {
            working += 1;
        }
    }
    assert_eq!(working, 1);
}

#[sqlx::test]
async fn a_token_created_while_its_creator_loses_the_permission_does_not_get_it(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (org, owner) = app.owner().await;
    let policy = app
        .post(
            "/api/v1/policies",
            &owner,
            json!({ "name": "Flags", "statements": [
                { "resourceType": "access-token", "effect": "allow",
                  "actions": ["ManageServiceAccessTokens"], "resources": ["access-token/*"] },
                { "resourceType": "flag", "effect": "allow",
                  "actions": ["*"], "resources": ["project/*:env/*:flag/*"] }] }),
        )
        .await;
    let policy_id: Uuid = policy.data()["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let dev = app.member(&owner, "dev@example.test", &[policy_id]).await;

    // An IAM change is in progress: it holds the organization's IAM lock and has removed the
    // policy, but has not committed yet.
    let mut change = app.db.begin().await.expect("begin");
    iam::lock_for_write(&mut change, org).await.expect("lock");
    iam::detach_member_policy(&mut *change, org, dev.user_id, policy_id)
        .await
        .expect("detach");

    // Meanwhile the developer (authenticated with the permission still visible) creates a
    // service token holding it.
    let create = app.create_token(&dev, service("racing"));
    let commit = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        change.commit().await.expect("commit");
    };
    let (created, ()) = futures::future::join(create, commit).await;
    // The creation waited for the change and saw its result: no token carries the permission.
    assert_eq!(created.status, 403, "{:#}", created.body);
    assert_eq!(app.count("select count(*) from access_tokens").await, 0);
}

#[sqlx::test]
async fn a_write_that_deadlocks_is_run_again_and_succeeds(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (org, owner) = app.owner().await;
    let (id, _) = app.token(&owner, service("contended")).await;
    // Another transaction holds the token's row...
    let mut other = app.db.begin().await.expect("begin");
    // ...and is never the one PostgreSQL picks to break the deadlock.
    sqlx::query("set local deadlock_timeout = '60s'")
        .execute(&mut *other)
        .await
        .expect("timeout");
    sqlx::query("select 1 from access_tokens where id = $1 for update")
        .bind(id)
        .execute(&mut *other)
        .await
        .expect("row lock");
    // The deactivation takes the organization's IAM lock (shared), then waits for the row.
    let deactivation = {
        let path = format!("/api/v1/access-tokens/{id}/deactivate");
        let client = app.client.clone();
        let url = format!("{}{path}", app.base);
        let token = owner.token.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        })
    };
    for _ in 0..100 {
        let waiting = app
            .count("select count(*) from pg_locks where not granted and locktype = 'transactionid'")
            .await;
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Now this transaction wants the IAM lock exclusively: a cycle. That this lock is granted at
    // all proves PostgreSQL aborted the deactivation's transaction (this one would otherwise
    // wait a minute and fail). The service runs the request again, which then waits for this
    // transaction to end and succeeds.
    sqlx::query("select pg_advisory_xact_lock(hashtextextended('tokengate.iam:' || $1::text, 0))")
        .bind(org.to_string())
        .execute(&mut *other)
        .await
        .expect("advisory lock");
    other.commit().await.expect("commit");

    assert_eq!(deactivation.await.expect("join"), 200);
    let status: String = sqlx::query_scalar("select status from access_tokens where id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .expect("status");
    assert_eq!(status, "Inactive");
}
