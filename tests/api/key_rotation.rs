//! Hash-key rotation (`TOKENGATE_PREVIOUS_HASH_KEYS`) over real HTTP: replicas started with the
//! old key, then with a new key and the old one as previous, then without it; and
//! `tokengate key-status` as an operator runs it.

use serde_json::json;
use sqlx::PgPool;
use tokengate::credential::HashKey;
use uuid::Uuid;

use crate::helpers::{Caller, Setup, TestApp, OWNER_EMAIL};
use crate::process::database_url;

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

/// A replica with its own pool, state and caches, configured with these keys: what a restart
/// with another configuration gives.
async fn started_with(db: &PgPool, key: &str, previous: &[&str]) -> TestApp {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .connect_lazy_with((*db.connect_options()).clone());
    TestApp::spawn_with(
        pool,
        Setup {
            key: Some(key.to_owned()),
            previous_keys: previous.iter().map(|k| (*k).to_owned()).collect(),
            ..Setup::default()
        },
    )
    .await
}

struct KeyStatus {
    code: i32,
    stdout: String,
}

impl KeyStatus {
    /// The numbers printed for this key: tokens, grace secrets, sessions.
    fn counts(&self, key: &str) -> Option<[i64; 3]> {
        let id = HashKey::from_base64(key).expect("key").id().to_string();
        let line = self.stdout.lines().find(|l| l.starts_with(&id))?;
        let numbers: Vec<i64> = line
            .split_whitespace()
            .skip(1)
            .take(3)
            .map(|n| n.parse().expect("a count"))
            .collect();
        Some([numbers[0], numbers[1], numbers[2]])
    }
}

async fn key_status(db: &PgPool, key: &str, previous: &str) -> KeyStatus {
    let output = tokio::process::Command::new(BIN)
        .arg("key-status")
        .env("DATABASE_URL", database_url(db))
        .env("TOKENGATE_HASH_KEY", key)
        .env("TOKENGATE_PREVIOUS_HASH_KEYS", previous)
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("run key-status");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    for k in [key, previous] {
        if !k.is_empty() {
            assert!(!stdout.contains(k) && !stderr.contains(k), "a key printed");
        }
    }
    KeyStatus {
        code: output.status.code().expect("exit code"),
        stdout,
    }
}

async fn secret_key_id(app: &TestApp, id: Uuid) -> Option<String> {
    sqlx::query_scalar("select secret_key_id from access_tokens where id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .expect("key id")
}

#[sqlx::test]
async fn credentials_survive_a_key_rotation_and_move_to_the_new_key_when_used(db: PgPool) {
    let (a, b) = (HashKey::generate_base64(), HashKey::generate_base64());
    let b_id = HashKey::from_base64(&b).expect("key").id().to_string();
    let permissions = json!([{ "resourceType": "flag", "effect": "allow",
        "actions": ["ManageFeatureFlag"], "resources": ["project/*:env/*:flag/*"] }]);

    // Under key A: a session, a personal token, a service token, and a token rotated with a
    // grace period (its previous secret still works).
    let old = started_with(&db, &a, &[]).await;
    let (_, owner) = old.owner().await;
    let (pat_id, pat) = old
        .token(&owner, json!({ "name": "pat", "type": "Personal" }))
        .await;
    let (unused_id, unused) = old
        .token(
            &owner,
            json!({ "name": "ci", "type": "Service", "permissions": permissions }),
        )
        .await;
    let (rotated_id, graced) = old
        .token(&owner, json!({ "name": "rotated", "type": "Personal" }))
        .await;
    let rotation = old
        .post(
            &format!("/api/v1/access-tokens/{rotated_id}/rotate"),
            &owner,
            json!({ "oldTokenExpiresInSeconds": 3600 }),
        )
        .await;
    rotation.assert(200);
    let rotated = Caller {
        token: rotation.data()["token"]
            .as_str()
            .expect("secret")
            .to_owned(),
        ..graced.clone()
    };
    let status = key_status(&db, &a, "").await;
    assert_eq!(status.code, 0, "{}", status.stdout);
    assert_eq!(status.counts(&a), Some([3, 1, 1]), "{}", status.stdout);

    // Restarted with B as the key and A as the previous one: nothing is refused.
    let status = key_status(&db, &b, &a).await;
    assert_eq!(status.code, 4, "{}", status.stdout);
    assert!(status.stdout.contains("not yet safe"), "{}", status.stdout);
    let new = started_with(&db, &b, &[&a]).await;
    new.get("/api/v1/auth/whoami", &pat).await.assert(200);
    assert_eq!(secret_key_id(&new, pat_id).await, Some(b_id.clone()));
    assert_eq!(
        key_status(&db, &b, &a).await.counts(&a),
        Some([2, 1, 1]),
        "the token used moved to B"
    );
    new.get("/api/v1/auth/whoami", &owner).await.assert(200);
    new.get("/api/v1/auth/whoami", &graced).await.assert(200);
    new.get("/api/v1/auth/whoami", &rotated).await.assert(200);
    // Again, now found under B at once (and a second replica with the same keys agrees).
    new.get("/api/v1/auth/whoami", &pat).await.assert(200);
    started_with(&db, &b, &[&a])
        .await
        .get("/api/v1/auth/whoami", &graced)
        .await
        .assert(200);
    let status = key_status(&db, &b, &a).await;
    assert_eq!(status.counts(&a), Some([1, 0, 0]), "{}", status.stdout);
    assert_eq!(status.counts(&b), Some([2, 1, 1]), "{}", status.stdout);
    assert_eq!(status.code, 4, "the unused token still needs A");

    // A is dropped too early: the token never used since is refused, the others work.
    let dropped = started_with(&db, &b, &[]).await;
    dropped
        .get("/api/v1/auth/whoami", &unused)
        .await
        .assert_error(401, "Unauthorized");
    for caller in [&pat, &owner, &graced, &rotated] {
        dropped.get("/api/v1/auth/whoami", caller).await.assert(200);
    }
    // Put back, it works again, and then nothing depends on A: safe to drop.
    let back = started_with(&db, &b, &[&a]).await;
    back.forward(&unused, "ManageFeatureFlag", "project/web:env/prod:flag/x")
        .await
        .assert(200);
    assert_eq!(secret_key_id(&back, unused_id).await, Some(b_id));
    let status = key_status(&db, &b, &a).await;
    assert_eq!(status.code, 0, "{}", status.stdout);
    assert!(status.stdout.contains("safe to drop"), "{}", status.stdout);
    assert_eq!(status.counts(&a), None, "{}", status.stdout);
}

#[sqlx::test]
async fn a_wrong_previous_key_is_harmless(db: PgPool) {
    let (a, b, wrong) = (
        HashKey::generate_base64(),
        HashKey::generate_base64(),
        HashKey::generate_base64(),
    );
    let old = started_with(&db, &a, &[]).await;
    let (_, owner) = old.owner().await;
    let (_, pat) = old
        .token(&owner, json!({ "name": "pat", "type": "Personal" }))
        .await;
    // A previous key that made nothing: the current key's credentials work as before, and an
    // unknown credential is still only unknown (401, never a 500).
    let harmless = started_with(&db, &a, &[&wrong]).await;
    harmless.get("/api/v1/auth/whoami", &pat).await.assert(200);
    harmless
        .get("/api/v1/auth/whoami", &owner)
        .await
        .assert(200);
    let elsewhere = started_with(&db, &b, &[]).await;
    let owner_under_b = elsewhere.session(OWNER_EMAIL).await;
    let (_, made_under_b) = elsewhere
        .token(
            &owner_under_b,
            json!({ "name": "other", "type": "Personal" }),
        )
        .await;
    harmless
        .get("/api/v1/auth/whoami", &made_under_b)
        .await
        .assert_error(401, "Unauthorized");
    // Listed before the right one, it changes nothing either.
    let new = started_with(&db, &b, &[&wrong, &a]).await;
    new.get("/api/v1/auth/whoami", &pat).await.assert(200);
    new.get("/api/v1/auth/whoami", &owner).await.assert(200);
    new.get("/api/v1/auth/whoami", &made_under_b)
        .await
        .assert(200);
}

#[tokio::test]
async fn a_malformed_previous_key_stops_the_start_and_says_which_without_printing_it() {
    let short = "c2hvcnQga2V5";
    for command in ["serve", "key-status"] {
        let output = std::process::Command::new(BIN)
            .arg(command)
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .env("TOKENGATE_HASH_KEY", HashKey::generate_base64())
            .env(
                "TOKENGATE_PREVIOUS_HASH_KEYS",
                format!("{},{short}", HashKey::generate_base64()),
            )
            .output()
            .expect("run");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("TOKENGATE_PREVIOUS_HASH_KEYS entry 2"),
            "{stderr}"
        );
        assert!(!stderr.contains(short), "{stderr}");
    }
}

/// A rolling restart (docs/operations.md): first every replica learns the new key as a previous
/// one, then each takes it as current. Replicas of both steps serve side by side, each moving
/// digests to its own current key, and no credential is refused on any of them.
#[sqlx::test]
async fn replicas_of_both_steps_of_a_rolling_rotation_accept_every_credential(db: PgPool) {
    let (a, b) = (HashKey::generate_base64(), HashKey::generate_base64());
    let old = started_with(&db, &a, &[]).await;
    let (_, owner) = old.owner().await;
    let (_, pat) = old
        .token(&owner, json!({ "name": "pat", "type": "Personal" }))
        .await;
    let step_one = started_with(&db, &a, &[&b]).await;
    let step_two = started_with(&db, &b, &[&a]).await;
    for _ in 0..3 {
        for replica in [&step_one, &step_two, &step_one] {
            replica.get("/api/v1/auth/whoami", &pat).await.assert(200);
            replica.get("/api/v1/auth/whoami", &owner).await.assert(200);
            // Each replica caches what it verified: drop it, so every call reads the row as
            // the other step left it.
            replica.state.auth.caches.clear();
        }
    }
    // Once every replica is on step two, what is used ends on B.
    step_two.get("/api/v1/auth/whoami", &pat).await.assert(200);
    step_two
        .get("/api/v1/auth/whoami", &owner)
        .await
        .assert(200);
    let status = key_status(&db, &b, &a).await;
    assert_eq!(status.code, 0, "{}", status.stdout);
}

/// Digests stored before key ids were recorded: counted as unrecorded (blocking the drop of a
/// previous key, which may have made them), and labelled with the key of the first `serve`
/// started without previous keys, the only key that can verify them then.
#[sqlx::test]
async fn digests_from_before_key_ids_are_labelled_by_a_serve_without_previous_keys(db: PgPool) {
    let (a, b) = (HashKey::generate_base64(), HashKey::generate_base64());
    let app = started_with(&db, &a, &[]).await;
    let (_, owner) = app.owner().await;
    let (_, pat) = app
        .token(&owner, json!({ "name": "pat", "type": "Personal" }))
        .await;
    app.sql("update access_tokens set secret_key_id = null")
        .await;
    app.sql("update sessions set key_id = null").await;
    let status = key_status(&db, &b, &a).await;
    assert_eq!(status.code, 4, "{}", status.stdout);
    assert!(
        status.stdout.lines().any(|l| l.starts_with("- ")
            && l.contains("unrecorded")
            && l.split_whitespace().take(4).collect::<Vec<_>>() == ["-", "1", "0", "1"]),
        "{}",
        status.stdout
    );

    let mut process = crate::process::start(
        &database_url(&db),
        &[
            ("TOKENGATE_HASH_KEY", &a),
            ("TOKENGATE_PREVIOUS_HASH_KEYS", ""),
        ],
    )
    .await;
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(answer) = reqwest::get(process.url("/health/ready")).await {
            if answer.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "{}", process.logs());
    let status = key_status(&db, &a, "").await;
    assert_eq!(status.code, 0, "{}", status.stdout);
    assert_eq!(status.counts(&a), Some([1, 0, 1]), "{}", status.stdout);
    assert!(!status.stdout.contains("unrecorded"), "{}", status.stdout);
    app.get("/api/v1/auth/whoami", &pat).await.assert(200);
    process.terminate();
    process
        .exit_within(std::time::Duration::from_secs(10))
        .await;
}
