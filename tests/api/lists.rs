//! Lists page by cursor (`after`, the previous page's `nextCursor`) as well as by `pageIndex`,
//! and stop counting at 10,000 (`totalCountIsExact: false`).

use std::collections::HashSet;

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{Caller, TestApp};

/// `n` service tokens of the owner, five to a creation time (ties are broken by id).
async fn seed_tokens(app: &TestApp, org: Uuid, owner: Uuid, n: i64) {
    app.sql(&format!(
        "insert into access_tokens (id, organization_id, name, name_key, type, status,
             creator_id, secret_hash, hint, scope, created_at)
         select gen_random_uuid(), '{org}', 'seeded ' || g, 'seeded-' || g,
                case when g % 10 = 0 then 'Personal' else 'Service' end, 'Active',
                '{owner}', sha256(g::text::bytea), 'tgs_x', '[]',
                now() - interval '1 second' * (g / 5)
           from generate_series(1, {n}) g"
    ))
    .await;
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Every id of a list, following `nextCursor` from the first page.
async fn walk(app: &TestApp, caller: &Caller, path: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut url = format!("{path}pageSize=10");
    for _ in 0..100 {
        let resp = app.get(&url, caller).await;
        resp.assert(200);
        all.extend(ids(resp.data()));
        match resp.data()["nextCursor"].as_str() {
            Some(next) => url = format!("{path}pageSize=10&after={next}"),
            None => return all,
        }
    }
    panic!("the cursor never ended");
}

#[sqlx::test]
async fn a_cursor_walks_every_token_once_in_page_order(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (org, owner) = app.owner().await;
    seed_tokens(&app, org, owner.user_id, 47).await;
    let walked = walk(&app, &owner, "/api/v1/access-tokens?").await;
    let mut by_index = Vec::new();
    for index in 0..5 {
        let resp = app
            .get(
                &format!("/api/v1/access-tokens?pageSize=10&pageIndex={index}"),
                &owner,
            )
            .await;
        by_index.extend(ids(resp.assert(200).data()));
    }
    assert_eq!(walked.len(), 47);
    assert_eq!(walked.iter().collect::<HashSet<_>>().len(), 47);
    assert_eq!(walked, by_index);
    // With a filter, the cursor stays within it.
    let personal = walk(&app, &owner, "/api/v1/access-tokens?type=Personal&").await;
    assert_eq!(personal.len(), 4);
}

#[sqlx::test]
async fn a_bad_cursor_is_400(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (org, owner) = app.owner().await;
    seed_tokens(&app, org, owner.user_id, 12).await;
    let next = app.get("/api/v1/access-tokens?pageSize=10", &owner).await;
    let cursor = next.data()["nextCursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    for path in [
        "/api/v1/access-tokens?after=not-a-cursor",
        "/api/v1/access-tokens?after=bm90IGEgY3Vyc29y",
        "/api/v1/audit-logs?after=%25%25",
        "/api/v1/members?after=***",
        "/api/v1/groups?after=x",
        "/api/v1/policies?after=x",
    ] {
        app.get(path, &owner)
            .await
            .assert_error(400, "after_is_invalid");
    }
    // A member-list cursor (a name, no time) does not fit a list sorted by time.
    let members = app.get("/api/v1/members?pageSize=1", &owner).await;
    let _ = members.assert(200);
    let named = tokengate::db::Cursor {
        id: owner.user_id,
        key: "Olivia".into(),
    };
    app.get(
        &format!("/api/v1/audit-logs?after={}", named.encode()),
        &owner,
    )
    .await
    .assert_error(400, "after_is_invalid");
    app.get(
        &format!("/api/v1/access-tokens?pageIndex=1&after={cursor}"),
        &owner,
    )
    .await
    .assert_error(400, "pageIndex_is_invalid");
    app.get(&format!("/api/v1/access-tokens?after={cursor}"), &owner)
        .await
        .assert(200);
}

#[sqlx::test]
async fn counts_stop_at_ten_thousand_and_say_so(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (org, owner) = app.owner().await;
    seed_tokens(&app, org, owner.user_id, 10_050).await;
    let all = app.get("/api/v1/access-tokens", &owner).await;
    assert_eq!(all.assert(200).data()["totalCount"], 10_000);
    assert_eq!(all.data()["totalCountIsExact"], false);
    let personal = app.get("/api/v1/access-tokens?type=Personal", &owner).await;
    assert_eq!(personal.assert(200).data()["totalCount"], 1_005);
    assert_eq!(personal.data()["totalCountIsExact"], true);
    let last = app
        .get(
            "/api/v1/access-tokens?type=Personal&pageSize=5&pageIndex=200",
            &owner,
        )
        .await;
    assert_eq!(ids(last.assert(200).data()).len(), 5);
    // A full page always offers a cursor; past the end, an empty page offers none.
    let next = last.data()["nextCursor"].as_str().expect("cursor");
    let end = app
        .get(
            &format!("/api/v1/access-tokens?type=Personal&pageSize=5&after={next}"),
            &owner,
        )
        .await;
    assert_eq!(ids(end.assert(200).data()).len(), 0);
    assert_eq!(end.data()["nextCursor"], Value::Null);
}

#[sqlx::test]
async fn audit_logs_filter_by_actor_and_time_and_page_by_cursor(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (org, owner) = app.owner().await;
    let stranger = Uuid::new_v4();
    app.sql(&format!(
        "insert into audit_events (id, organization_id, actor_kind, actor_id, action, target_id, at)
         select gen_random_uuid(), '{org}', 'user',
                case when g % 2 = 0 then '{stranger}'::uuid else '{}'::uuid end,
                'member.added', null, timestamptz '2026-01-01T00:00:00Z' + interval '1 hour' * g
           from generate_series(1, 30) g",
        owner.user_id
    ))
    .await;
    let path = format!("/api/v1/audit-logs?actorId={stranger}&");
    let walked = walk(&app, &owner, &path).await;
    assert_eq!(walked.len(), 15);
    let window = app
        .get(
            "/api/v1/audit-logs?from=2026-01-01T05:00:00Z&to=2026-01-01T10:00:00Z",
            &owner,
        )
        .await;
    assert_eq!(window.assert(200).data()["totalCount"], 5);
    let times: Vec<&str> = window.data()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["at"].as_str().expect("at"))
        .collect();
    assert!(times[0].starts_with("2026-01-01T09:00:00"), "{times:?}");
    assert!(times[4].starts_with("2026-01-01T05:00:00"), "{times:?}");
    app.get("/api/v1/audit-logs?from=yesterday", &owner)
        .await
        .assert(400);
}

#[sqlx::test]
async fn members_page_by_cursor_in_name_order(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (org, owner) = app.owner().await;
    app.sql(&format!(
        "with u as (
           insert into users (id, organization_id, email, email_canonical, name, password_hash)
           select gen_random_uuid(), '{org}', 'm' || g || '@example.test',
                  'm' || g || '@example.test', case when g % 3 = 0 then 'Same Name'
                  else 'Member ' || g end, 'x'
             from generate_series(1, 24) g
           returning id)
         insert into memberships (organization_id, user_id) select '{org}', id from u"
    ))
    .await;
    let walked = walk(&app, &owner, "/api/v1/members?").await;
    let by_index = ids(app
        .get("/api/v1/members?pageSize=100", &owner)
        .await
        .assert(200)
        .data());
    assert_eq!(walked.len(), 25);
    assert_eq!(walked, by_index);
}
