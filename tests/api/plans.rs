//! Lists stay fast as an organization grows (SPEC §8 scale rows): with enough rows seeded
//! straight through SQL and the statistics fresh, every important list query — first page,
//! cursor page, each filter, the capped count — is planned without a sequential scan of a big
//! table. The queries are those of `db::token_list`, `db::audit` and `db::members`, planned as
//! the service plans them (`db::lists::planned_with_values`); keep them in step.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::TestApp;

const TOKENS: i64 = 30_000;
const MEMBERS: i64 = 20_000;
const AUDIT_ROWS: i64 = 60_000;
const BIG_TABLES: [&str; 4] = ["access_tokens", "audit_events", "users", "memberships"];

const TOKEN_COUNT: &str = r#"select count(*) from (
     select 1 from access_tokens t
      where t.organization_id = $1::uuid
        and ($2::text is null or t.name ilike $2::text)
        and ($3::text is null or t.type = $3::text)
        and ($4::text is null or t.status = $4::text)
        and ($5::uuid is null or t.creator_id = $5::uuid)
        and ($6::uuid is null or t.id = $6::uuid)
      order by t.created_at desc, t.id desc
      limit 10001) capped"#;

const TOKEN_PAGE: &str = r#"select t.id, t.name, u.name, u.email
   from access_tokens t join users u on u.id = t.creator_id
   where t.organization_id = $1::uuid
     and ($2::text is null or t.name ilike $2::text)
     and ($3::text is null or t.type = $3::text)
     and ($4::text is null or t.status = $4::text)
     and ($5::uuid is null or t.creator_id = $5::uuid)
     and ($6::uuid is null or t.id = $6::uuid)
     and ($7::timestamptz is null or (t.created_at, t.id) < ($7::timestamptz, $8::uuid))
   order by t.created_at desc, t.id desc
   limit 10 offset 0"#;

const AUDIT_COUNT: &str = r#"select count(*) from (
     select 1 from audit_events
      where organization_id = $1::uuid and ($2::text is null or action = $2::text)
        and ($3::uuid is null or target_id = $3::uuid)
        and ($4::uuid is null or actor_id = $4::uuid)
        and ($5::timestamptz is null or at >= $5::timestamptz)
        and ($6::timestamptz is null or at < $6::timestamptz)
      order by at desc, id desc
      limit 10001) capped"#;

const AUDIT_PAGE: &str = r#"select id, actor_kind, actor_id, action, target_id, details, at
   from audit_events
   where organization_id = $1::uuid and ($2::text is null or action = $2::text)
     and ($3::uuid is null or target_id = $3::uuid)
     and ($4::uuid is null or actor_id = $4::uuid)
     and ($5::timestamptz is null or at >= $5::timestamptz)
     and ($6::timestamptz is null or at < $6::timestamptz)
     and ($7::timestamptz is null or (at, id) < ($7::timestamptz, $8::uuid))
   order by at desc, id desc limit 10 offset 0"#;

const MEMBER_COUNT: &str = r#"select count(*) from (
     select 1 from memberships m
      where m.organization_id = $1::uuid
        and ($2::text is null or exists (
              select 1 from users u
               where u.id = m.user_id and (u.name ilike $2::text or u.email ilike $2::text)))
      order by m.user_id
      limit 10001) capped"#;

const MEMBER_PAGE: &str = r#"select u.id, u.name, u.email, m.created_at
   from memberships m join users u on u.id = m.user_id
   where m.organization_id = $1::uuid
     and ($2::text is null or u.name ilike $2::text or u.email ilike $2::text)
     and ($3::text is null or (lower(u.name), u.id) > (lower($3::text), $4::uuid))
   order by lower(u.name), u.id
   limit 10 offset 0"#;

async fn seed(db: &PgPool, org: Uuid, owner: Uuid) {
    let statements = [
        format!(
            "insert into users (id, organization_id, email, email_canonical, name, password_hash)
             select gen_random_uuid(), '{org}', 'm' || g || '@example.test',
                    'm' || g || '@example.test', 'Member ' || md5(g::text), 'x'
               from generate_series(1, {MEMBERS}) g"
        ),
        format!(
            "insert into memberships (organization_id, user_id)
             select '{org}', id from users where organization_id = '{org}' and id <> '{owner}'"
        ),
        format!(
            "insert into access_tokens (id, organization_id, name, name_key, type, status,
                 creator_id, secret_hash, hint, scope, created_at)
             select gen_random_uuid(), '{org}', 'token ' || md5(g::text), 'token-' || g,
                    case when g % 10 = 0 then 'Personal' else 'Service' end,
                    case when g % 7 = 0 then 'Inactive' else 'Active' end,
                    '{owner}', sha256(g::text::bytea), 'tgs_x', '[]',
                    now() - interval '1 second' * g
               from generate_series(1, {TOKENS}) g"
        ),
        format!(
            "insert into audit_events (id, organization_id, actor_kind, actor_id, action,
                 target_id, details, at)
             select gen_random_uuid(), '{org}', 'user',
                    case when g % 50 = 0 then '{owner}'::uuid else gen_random_uuid() end,
                    (array['access-token.created', 'access-token.deleted', 'member.added',
                           'policy.updated'])[1 + g % 4],
                    gen_random_uuid(), '{{}}', now() - interval '1 second' * g
               from generate_series(1, {AUDIT_ROWS}) g"
        ),
    ];
    for statement in statements {
        sqlx::query(&statement).execute(db).await.expect("seed");
    }
    // Fresh statistics and visibility (index-only scans), as autovacuum would leave them.
    sqlx::query("vacuum analyze")
        .execute(db)
        .await
        .expect("vacuum");
}

/// Every sequential scan of a big table in a JSON plan.
fn seq_scans(plan: &Value, found: &mut Vec<String>) {
    match plan {
        Value::Object(node) => {
            if node.get("Node Type").and_then(Value::as_str) == Some("Seq Scan") {
                let table = node
                    .get("Relation Name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if BIG_TABLES.contains(&table) {
                    found.push(table.to_owned());
                }
            }
            node.values().for_each(|v| seq_scans(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| seq_scans(v, found)),
        _ => {}
    }
}

/// A value to plan with: text (the statements cast it), or a time (bound as `timestamptz`,
/// as the service binds it: a cast from text would not fold into an index range).
#[derive(Clone)]
enum Arg {
    S(Option<String>),
    T(Option<DateTime<Utc>>),
}

/// Plans `sql` with these values, as the service does, and fails on a big sequential scan.
async fn assert_indexed(db: &PgPool, what: &str, sql: &str, bind: Vec<Arg>) {
    let mut tx = db.begin().await.expect("begin");
    sqlx::query("set local plan_cache_mode = force_custom_plan")
        .execute(&mut *tx)
        .await
        .expect("set");
    // Bound as text; the statements cast each value to its column's type.
    let explain = format!("explain (format json) {sql}");
    let mut query = sqlx::query_scalar::<_, Value>(&explain);
    for value in bind {
        query = match value {
            Arg::S(text) => query.bind(text),
            Arg::T(time) => query.bind(time),
        };
    }
    let plan = query.fetch_one(&mut *tx).await.expect(what);
    let mut found = Vec::new();
    seq_scans(&plan, &mut found);
    assert!(
        found.is_empty(),
        "{what}: sequential scan of {found:?}:\n{plan:#}"
    );
}

#[sqlx::test]
async fn list_queries_never_scan_a_big_table(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let (org, owner) = app.owner().await;
    seed(&db, org, owner.user_id).await;
    let o = Arg::S(Some(org.to_string()));
    let me = Some(owner.user_id.to_string());
    let s = |v: &str| Some(v.to_owned());
    let none = || Arg::S(None);
    let cursor_id = Arg::S(Some(Uuid::nil().to_string()));
    let middle = Utc::now() - Duration::seconds(TOKENS / 2);
    let token_filters: [(&str, [Option<String>; 5]); 6] = [
        ("none", [None, None, None, None, None]),
        ("name", [s("%4f2a%"), None, None, None, None]),
        ("type", [None, s("Personal"), None, None, None]),
        ("status", [None, None, s("Inactive"), None, None]),
        ("creator", [None, None, None, me.clone(), None]),
        (
            "id",
            [None, None, None, None, Some(Uuid::new_v4().to_string())],
        ),
    ];
    for (name, f) in &token_filters {
        let mut count = vec![o.clone()];
        count.extend(f.iter().cloned().map(Arg::S));
        assert_indexed(
            &db,
            &format!("token count, {name}"),
            TOKEN_COUNT,
            count.clone(),
        )
        .await;
        let mut first = count.clone();
        first.extend([Arg::T(None), none()]);
        assert_indexed(&db, &format!("token first page, {name}"), TOKEN_PAGE, first).await;
        let mut next = count;
        next.extend([Arg::T(Some(middle)), cursor_id.clone()]);
        assert_indexed(&db, &format!("token cursor page, {name}"), TOKEN_PAGE, next).await;
    }
    let (from, to) = (
        Some(Utc::now() - Duration::hours(6)),
        Some(Utc::now() - Duration::hours(5)),
    );
    let no_time = || Arg::T(None);
    let audit_filters: [(&str, [Arg; 5]); 5] = [
        ("none", [none(), none(), none(), no_time(), no_time()]),
        (
            "action",
            [
                Arg::S(s("member.added")),
                none(),
                none(),
                no_time(),
                no_time(),
            ],
        ),
        (
            "target",
            [none(), Arg::S(me.clone()), none(), no_time(), no_time()],
        ),
        (
            "actor",
            [none(), none(), Arg::S(me.clone()), no_time(), no_time()],
        ),
        (
            "time range",
            [none(), none(), none(), Arg::T(from), Arg::T(to)],
        ),
    ];
    for (name, f) in &audit_filters {
        let mut count = vec![o.clone()];
        count.extend(f.iter().cloned());
        assert_indexed(
            &db,
            &format!("audit count, {name}"),
            AUDIT_COUNT,
            count.clone(),
        )
        .await;
        let mut first = count.clone();
        first.extend([no_time(), none()]);
        assert_indexed(&db, &format!("audit first page, {name}"), AUDIT_PAGE, first).await;
        let mut next = count;
        next.extend([Arg::T(Some(middle)), cursor_id.clone()]);
        assert_indexed(&db, &format!("audit cursor page, {name}"), AUDIT_PAGE, next).await;
    }
    for (name, like) in [("none", None), ("name", s("%4f2a%"))] {
        let count = vec![o.clone(), Arg::S(like.clone())];
        assert_indexed(&db, &format!("member count, {name}"), MEMBER_COUNT, count).await;
        let first = vec![o.clone(), Arg::S(like.clone()), none(), none()];
        assert_indexed(
            &db,
            &format!("member first page, {name}"),
            MEMBER_PAGE,
            first,
        )
        .await;
        let next = vec![
            o.clone(),
            Arg::S(like),
            Arg::S(s("member 8")),
            cursor_id.clone(),
        ];
        assert_indexed(
            &db,
            &format!("member cursor page, {name}"),
            MEMBER_PAGE,
            next,
        )
        .await;
    }
}

/// Every start of `serve` labels the digests stored before key ids were recorded, before it
/// answers ready. Once they are labelled (as every write labels its own), that finds the
/// unlabelled rows through their partial indexes, never by reading the whole tokens table: a
/// replica's start does not grow with the organization. The statements are
/// `db::hash_keys::label_unlabelled`'s; keep them in step.
#[sqlx::test]
async fn labelling_digests_at_start_never_scans_the_tokens_table(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let (org, owner) = app.owner().await;
    seed(&db, org, owner.user_id).await;
    let key = app.state.auth.hash_key.id();
    // The seeded rows have no key id: the first start labels them all.
    let labelled = tokengate::db::hash_keys::label_unlabelled(&db, key)
        .await
        .expect("label");
    assert!(labelled >= TOKENS as u64, "{labelled} labelled");
    sqlx::query("vacuum analyze access_tokens")
        .execute(&db)
        .await
        .expect("vacuum");
    let key = Arg::S(Some(key.to_string()));
    for (what, sql) in [
        (
            "current secrets",
            "update access_tokens set secret_key_id = $1::text where secret_key_id is null",
        ),
        (
            "previous secrets",
            "update access_tokens set previous_secret_key_id = $1::text
              where previous_secret_key_id is null and previous_secret_hash is not null",
        ),
    ] {
        assert_indexed(&db, what, sql, vec![key.clone()]).await;
    }
    // And the next start labels nothing.
    assert_eq!(
        tokengate::db::hash_keys::label_unlabelled(&db, app.state.auth.hash_key.id())
            .await
            .expect("label"),
        0
    );
}
