//! Names that look alike are one name (SPEC §9): invisible and reordering characters are refused,
//! uniqueness holds under NFKC + case folding, and built-in policy names are taken.

use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{Caller, TestApp, PASSWORD};

/// Names that render like `prod` (or hide what they say) but hold a character no name may.
const HIDDEN: [&str; 10] = [
    "pro\u{200b}d",         // zero-width space
    "pro\u{200d}d",         // zero-width joiner
    "pro\u{200c}d",         // zero-width non-joiner
    "\u{202e}dorp",         // right-to-left override: shows as "prod"
    "\u{2066}prod\u{2069}", // left-to-right isolate .. pop directional isolate
    "\u{feff}prod",         // byte-order mark
    "pro\u{ad}d",           // soft hyphen
    "pro\u{2060}d",         // word joiner
    "pro\u{2028}d",         // line separator
    "pro\u{7}d",            // a control character
];

fn personal(name: &str) -> Value {
    json!({ "name": name, "type": "Personal" })
}

fn policy(name: &str) -> Value {
    json!({ "name": name, "statements": [] })
}

async fn is_name_used(app: &TestApp, caller: &Caller, name: &str) -> crate::helpers::Resp {
    app.raw(
        Method::GET,
        "/api/v1/access-tokens/is-name-used",
        Some(caller),
        |r| r.query(&[("name", name)]),
    )
    .await
}

#[sqlx::test]
async fn token_names_with_invisible_or_reordering_characters_are_refused(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let (id, _) = app.token(&owner, personal("prod")).await;
    for name in HIDDEN {
        app.create_token(&owner, personal(name))
            .await
            .assert_error(400, "name_is_invalid");
        app.put(
            &format!("/api/v1/access-tokens/{id}"),
            &owner,
            Some(json!({ "name": name })),
        )
        .await
        .assert_error(400, "name_is_invalid");
        is_name_used(&app, &owner, name)
            .await
            .assert_error(400, "name_is_invalid");
    }
    assert_eq!(app.count("select count(*) from access_tokens").await, 1);
}

#[sqlx::test]
async fn token_names_are_unique_under_nfkc_and_case_folding(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    app.token(&owner, personal("prod")).await;
    for same in ["Prod", "PROD", "ｐｒｏｄ", "ＰＲＯＤ", "ｐrod"] {
        app.create_token(&owner, personal(same))
            .await
            .assert_error(409, "NameHasBeenUsed");
        assert_eq!(
            is_name_used(&app, &owner, same).await.assert(200).data(),
            &json!(true),
            "{same}"
        );
    }
    // Renaming into a look-alike of another token's name conflicts; into one's own does not.
    let (other, _) = app.token(&owner, personal("Straße")).await;
    let path = format!("/api/v1/access-tokens/{other}");
    app.put(&path, &owner, Some(json!({ "name": "ＰＲＯＤ" })))
        .await
        .assert_error(409, "NameHasBeenUsed");
    app.create_token(&owner, personal("STRASSE"))
        .await
        .assert_error(409, "NameHasBeenUsed");
    let renamed = app
        .put(&path, &owner, Some(json!({ "name": "strasse" })))
        .await;
    renamed.assert(200);
    assert_eq!(renamed.data()["name"], "strasse");
    // Names that differ keep working.
    app.token(&owner, personal("prod-2")).await;
    assert_eq!(
        is_name_used(&app, &owner, "staging").await.data(),
        &json!(false)
    );
}

#[sqlx::test]
async fn parallel_creates_of_look_alike_names_give_exactly_one_201(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let names = ["race", "RACE", "ｒａｃｅ", "Ｒace", "rAcE", "ＲＡＣＥ"];
    let responses = join_all(
        names
            .iter()
            .cycle()
            .take(18)
            .map(|name| app.create_token(&owner, personal(name))),
    )
    .await;
    let created = responses.iter().filter(|r| r.status == 201).count();
    let conflicts = responses
        .iter()
        .filter(|r| r.status == 409 && r.errors() == ["NameHasBeenUsed"])
        .count();
    assert_eq!((created, conflicts), (1, 17));
}

#[sqlx::test]
async fn policy_and_group_names_follow_the_same_rules(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    for name in HIDDEN {
        app.post("/api/v1/policies", &owner, policy(name))
            .await
            .assert_error(400, "name_is_invalid");
        app.post("/api/v1/groups", &owner, json!({ "name": name }))
            .await
            .assert_error(400, "name_is_invalid");
    }
    let flags = app
        .post("/api/v1/policies", &owner, policy("Flags"))
        .await
        .assert(201)
        .data()["id"]
        .clone();
    app.post("/api/v1/policies", &owner, policy("ＦＬＡＧＳ"))
        .await
        .assert_error(409, "NameHasBeenUsed");
    app.post("/api/v1/policies", &owner, policy("Segments"))
        .await
        .assert(201);
    app.put(
        &format!("/api/v1/policies/{}", flags.as_str().expect("id")),
        &owner,
        Some(json!({ "name": "ｓｅｇｍｅｎｔｓ" })),
    )
    .await
    .assert_error(409, "NameHasBeenUsed");
    app.post("/api/v1/groups", &owner, json!({ "name": "Team" }))
        .await
        .assert(201);
    app.post("/api/v1/groups", &owner, json!({ "name": "ｔｅａｍ" }))
        .await
        .assert_error(409, "NameHasBeenUsed");
}

#[sqlx::test]
async fn built_in_policy_names_are_taken(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    for name in [
        "Owner",
        "owner",
        "ADMINISTRATOR",
        "administrator",
        "Developer",
        "ＤＥＶＥＬＯＰＥＲ",
        " developer ",
    ] {
        app.post("/api/v1/policies", &owner, policy(name))
            .await
            .assert_error(409, "NameHasBeenUsed");
    }
    let custom = app
        .post("/api/v1/policies", &owner, policy("Release managers"))
        .await
        .assert(201)
        .data()["id"]
        .clone();
    app.put(
        &format!("/api/v1/policies/{}", custom.as_str().expect("id")),
        &owner,
        Some(json!({ "name": "ｏｗｎｅｒ" })),
    )
    .await
    .assert_error(409, "NameHasBeenUsed");
    let developers = app
        .get("/api/v1/policies?name=developer&pageSize=100", &owner)
        .await;
    assert_eq!(developers.data()["totalCount"], 1, "{:#}", developers.body);
    // Names that merely contain a built-in's name are free.
    app.post("/api/v1/policies", &owner, policy("Developer (read only)"))
        .await
        .assert(201);
}

#[sqlx::test]
async fn organization_and_member_names_refuse_invisible_characters(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    for name in HIDDEN {
        app.post("/api/v1/organizations", &owner, json!({ "name": name }))
            .await
            .assert_error(400, "name_is_invalid");
        app.post(
            "/api/v1/members",
            &owner,
            json!({ "email": "new@example.test", "name": name, "password": PASSWORD }),
        )
        .await
        .assert_error(400, "name_is_invalid");
    }
    assert_eq!(app.count("select count(*) from organizations").await, 1);
    assert_eq!(app.count("select count(*) from users").await, 1);
}

#[sqlx::test]
async fn names_written_before_keys_existed_are_keyed_at_start(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let (org, owner) = app.owner().await;
    let (plain, _) = app.token(&owner, personal("deploy")).await;
    let (wide, _) = app.token(&owner, personal("other")).await;
    let group = app
        .post("/api/v1/groups", &owner, json!({ "name": "Team" }))
        .await
        .assert(201)
        .data()["id"]
        .as_str()
        .expect("id")
        .parse::<Uuid>()
        .expect("uuid");
    // As an older version left them: no keys, and two look-alike names side by side.
    app.sql(&format!(
        "update access_tokens set name = 'ｄｅｐｌｏｙ', created_at = now() + interval '1 second'
           where id = '{wide}'"
    ))
    .await;
    app.sql("update access_tokens set name_key = null").await;
    app.sql(&format!(
        "update groups set name_key = null where id = '{group}'"
    ))
    .await;

    tokengate::db::migrate(&db).await.expect("migrate");

    let unkeyed = app
        .count(
            "select (select count(*) from access_tokens where name_key is null)
                  + (select count(*) from groups where name_key is null)
                  + (select count(*) from policies where name_key is null)",
        )
        .await;
    assert_eq!(unkeyed, 0);
    // Both old tokens stay as they were; the older one holds the name.
    let names: Vec<(Uuid, String)> = sqlx::query_as(
        "select id, name from access_tokens where organization_id = $1 order by created_at",
    )
    .bind(org)
    .fetch_all(&db)
    .await
    .expect("names");
    assert_eq!(
        names,
        [
            (plain, "deploy".to_owned()),
            (wide, "ｄｅｐｌｏｙ".to_owned())
        ]
    );
    for same in ["DEPLOY", "ｄｅｐｌｏｙ"] {
        app.create_token(&owner, personal(same))
            .await
            .assert_error(409, "NameHasBeenUsed");
    }
    app.post("/api/v1/groups", &owner, json!({ "name": "TEAM" }))
        .await
        .assert_error(409, "NameHasBeenUsed");
}
