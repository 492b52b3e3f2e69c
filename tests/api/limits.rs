//! Abuse limits: failed-authentication and failed-login rate limits, header size, page size.

use futures::stream::{FuturesUnordered, StreamExt};
use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;
use tokengate::credential::PasswordHasher;

use crate::helpers::{Caller, Resp, TestApp, OWNER_EMAIL, PASSWORD};

#[track_caller]
fn assert_retry_after(resp: &Resp) -> u64 {
    resp.headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .filter(|secs| *secs >= 1)
        .unwrap_or_else(|| panic!("no Retry-After in {:?}", resp.headers))
}

#[sqlx::test]
async fn failed_authentications_from_one_address_get_429_and_valid_traffic_keeps_working(
    db: PgPool,
) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let (_, token) = app
        .token(&owner, json!({ "name": "good", "type": "Personal" }))
        .await;
    let bad = Caller {
        token: format!("tgp_{}", "A".repeat(49)),
        ..token.clone()
    };
    // The default burst is 30 failures.
    for _ in 0..30 {
        app.get("/api/v1/auth/whoami", &bad)
            .await
            .assert_error(401, "Unauthorized");
    }
    let limited = app.get("/api/v1/auth/whoami", &bad).await;
    limited.assert_error(429, "TooManyRequests");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry));
    // A valid credential from the same address is unaffected.
    app.get("/api/v1/auth/whoami", &token).await.assert(200);
    app.get("/api/v1/members", &owner).await.assert(200);
}

#[sqlx::test]
async fn failed_logins_per_account_get_429_before_any_password_check(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    app.member(&owner, "other@example.test", &[]).await;
    for _ in 0..10 {
        app.login(OWNER_EMAIL, "wrong password")
            .await
            .assert_error(401, "EmailPasswordMismatch");
    }
    let limited = app.login(OWNER_EMAIL, "wrong password").await;
    limited.assert_error(429, "TooManyRequests");
    assert!(limited.headers.contains_key("retry-after"));
    // Even the right password waits now: the limit is what stops guessing.
    app.login(OWNER_EMAIL, PASSWORD)
        .await
        .assert_error(429, "TooManyRequests");
    // Another account from the same address is unaffected, and so is an existing session.
    app.login("other@example.test", PASSWORD).await.assert(200);
    app.get("/api/v1/user/profile", &owner).await.assert(200);
}

/// Every guess counts as a failure from before its password is checked: a burst of guesses sent
/// together spends the account's limit as it arrives, and the right password sent behind it is
/// refused like the rest, not let through because the guesses ahead of it were still hashing.
#[sqlx::test]
async fn a_burst_of_guesses_cannot_carry_the_right_password_past_the_login_limit(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.owner().await;
    // Other work keeps the hashing threads busy, so no guess is checked before the whole burst
    // has arrived.
    let other_work: Vec<_> = (0..30)
        .map(|_| {
            let hasher = app.state.hasher.clone();
            tokio::spawn(async move { hasher.hash("other work".into()).await })
        })
        .collect();
    let mut guesses: FuturesUnordered<_> = (0..49)
        .map(|_| app.login(OWNER_EMAIL, "wrong password"))
        .collect();
    // The right password goes once the limit has refused every guess beyond it, or as soon as
    // one guess has been checked, whichever comes first.
    let (mut checked, mut refused, mut right) = (0, 0, None);
    while let Some(answer) = guesses.next().await {
        if answer.status == 429 {
            assert_retry_after(&answer);
            refused += 1;
        } else {
            answer.assert_error(401, "EmailPasswordMismatch");
            checked += 1;
        }
        if right.is_none() && (checked > 0 || refused == 39) {
            right = Some(app.login(OWNER_EMAIL, PASSWORD).await);
        }
    }
    let right = right.expect("the right password was sent");
    right.assert_error(429, "TooManyRequests");
    assert_retry_after(&right);
    assert_eq!((checked, refused), (10, 39));
    for work in other_work {
        work.await.expect("joined").expect("hashed");
    }
}

#[sqlx::test]
async fn the_right_password_after_a_few_guesses_logs_in_and_takes_nothing_from_the_limit(
    db: PgPool,
) {
    let app = TestApp::spawn(db).await;
    app.owner().await;
    for _ in 0..3 {
        app.login(OWNER_EMAIL, "wrong password")
            .await
            .assert_error(401, "EmailPasswordMismatch");
    }
    for _ in 0..3 {
        app.login(OWNER_EMAIL, PASSWORD).await.assert(200);
    }
    // Seven of the ten failures are left: the right passwords took none.
    for _ in 0..7 {
        app.login(OWNER_EMAIL, "wrong password")
            .await
            .assert_error(401, "EmailPasswordMismatch");
    }
    app.login(OWNER_EMAIL, "wrong password")
        .await
        .assert_error(429, "TooManyRequests");
}

/// Password spraying: one password tried against many accounts from one address.
#[sqlx::test]
async fn failed_logins_against_many_accounts_from_one_address_get_429(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let mut answers = Vec::new();
    for n in 0..80 {
        answers.push(app.login(&format!("user{n}@example.test"), PASSWORD).await);
    }
    // By default 50 failures per address in 15 minutes.
    for answer in &answers[..50] {
        answer.assert_error(401, "EmailPasswordMismatch");
    }
    for answer in &answers[50..] {
        answer.assert_error(429, "TooManyRequests");
        assert_retry_after(answer);
    }
    // Only logins wait: a session from the same address keeps working.
    app.get("/api/v1/user/profile", &owner).await.assert(200);
}

/// The hashing queue is bounded: a flood beyond it is refused at once with 503 and
/// `Retry-After` (never a 500, never queued for seconds), and counts as no failure.
#[sqlx::test]
async fn a_login_flood_beyond_the_hashing_queue_gets_503_with_retry_after(db: PgPool) {
    // One hashing thread, and room for two more hashes waiting.
    let hasher = PasswordHasher::new(1, 2).expect("hasher");
    let app = TestApp::spawn_with_hasher(db, hasher).await;
    app.owner().await;
    let emails: Vec<String> = (0..45).map(|n| format!("flood{n}@example.test")).collect();
    let flood =
        futures::future::join_all(emails.iter().map(|e| app.login(e, "wrong password"))).await;
    let mut busy = 0;
    for answer in &flood {
        if answer.status == 503 {
            answer.assert_error(503, "ServiceUnavailable");
            assert_retry_after(answer);
            busy += 1;
        } else {
            answer.assert_error(401, "EmailPasswordMismatch");
        }
    }
    assert!(busy > 0, "no login of the flood was refused");
    app.login(OWNER_EMAIL, PASSWORD).await.assert(200);
    // The refused ones took nothing from the address's limit of 50 failures.
    for n in 0..50 - (45 - busy) {
        app.login(&format!("later{n}@example.test"), "wrong password")
            .await
            .assert_error(401, "EmailPasswordMismatch");
    }
    app.login("later@example.test", "wrong password")
        .await
        .assert_error(429, "TooManyRequests");
}

/// Guessing through `PUT /user/password` is limited as logins are (SPEC §9).
#[sqlx::test]
async fn wrong_current_passwords_count_as_failed_logins(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let guess = json!({ "currentPassword": "a wrong guess", "newPassword": "another passphrase" });
    for _ in 0..10 {
        app.put("/api/v1/user/password", &owner, Some(guess.clone()))
            .await
            .assert_error(400, "currentPassword_is_invalid");
    }
    for _ in 10..14 {
        let limited = app
            .put("/api/v1/user/password", &owner, Some(guess.clone()))
            .await;
        limited.assert_error(429, "TooManyRequests");
        assert_retry_after(&limited);
    }
    // The same limit as the account's logins from this address: the right one waits too.
    let right = json!({ "currentPassword": PASSWORD, "newPassword": "another passphrase" });
    app.put("/api/v1/user/password", &owner, Some(right))
        .await
        .assert_error(429, "TooManyRequests");
    app.login(OWNER_EMAIL, PASSWORD)
        .await
        .assert_error(429, "TooManyRequests");
}

#[sqlx::test]
async fn oversized_headers_are_431_in_the_envelope(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.raw(Method::GET, "/health/live", None, |r| {
        r.header("X-Padding", "x".repeat(20 * 1024))
    })
    .await
    .assert_error(431, "RequestHeaderFieldsTooLarge");
}

#[sqlx::test]
async fn rn_and_action_lengths_are_bounded(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let long_rn = format!("project/{}", "x".repeat(1100));
    app.post(
        "/api/v1/auth/check",
        &owner,
        json!({ "checks": [{ "action": "ManageFeatureFlag", "resource": long_rn }] }),
    )
    .await
    .assert_error(400, "checks[0].resource_is_invalid");
    app.post(
        "/api/v1/policies",
        &owner,
        json!({ "name": "Long", "statements": [{ "resourceType": "flag", "effect": "allow",
            "actions": ["*"], "resources": [long_rn] }] }),
    )
    .await
    .assert_error(400, "statements[0].resources_is_invalid");
    let actions = vec!["ManageFeatureFlag"; 101];
    app.post(
        "/api/v1/policies",
        &owner,
        json!({ "name": "Many", "statements": [{ "resourceType": "flag", "effect": "allow",
            "actions": actions, "resources": ["project/*"] }] }),
    )
    .await
    .assert_error(400, "statements[0].actions_is_invalid");
}

/// Found by schemathesis: PostgreSQL cannot store a NUL character, which once surfaced as 500.
#[sqlx::test]
async fn nul_characters_are_refused_with_400_never_500(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    app.get("/api/v1/members?name=%00x", &owner)
        .await
        .assert_error(400, "name_is_invalid");
    app.get("/api/v1/groups?name=a%00", &owner)
        .await
        .assert_error(400, "name_is_invalid");
    app.login("a\u{0}@example.test", PASSWORD)
        .await
        .assert_error(400, "email_is_invalid");
    app.post(
        "/api/v1/policies",
        &owner,
        json!({ "name": "p", "description": "bad\u{0}" }),
    )
    .await
    .assert_error(400, "description_is_invalid");
    app.post(
        "/api/v1/groups",
        &owner,
        json!({ "name": "g", "description": "bad\u{0}" }),
    )
    .await
    .assert_error(400, "description_is_invalid");
    app.post(
        "/api/v1/members",
        &owner,
        json!({ "email": "x\u{0}@example.test", "name": "X", "password": PASSWORD }),
    )
    .await
    .assert_error(400, "email_is_invalid");
    app.post(
        "/api/v1/policies",
        &owner,
        json!({ "name": "q", "statements": [{ "id": "a\u{0}", "resourceType": "flag",
            "effect": "allow", "actions": ["*"], "resources": ["project/*"] }] }),
    )
    .await
    .assert_error(400, "statements[0].id_is_invalid");
    app.get("/api/v1/audit-logs?action=a%00b", &owner)
        .await
        .assert_error(400, "action_is_invalid");
    app.get("/api/v1/access-tokens?name=a%00b", &owner)
        .await
        .assert_error(400, "name_is_invalid");
}

/// One HTTP/1.1 response off a raw connection: its head (lower-cased) and body.
async fn read_response(conn: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed before a response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await.expect("read body");
        assert!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    (head, body)
}

const CHECK_BODY: &str = r#"{"checks":[{"action":"ManageFeatureFlag","resource":"project/a"}]}"#;

/// A raw connection to `app` that has sent the head of a `POST /auth/check` with a bad
/// credential (answered 401 at once), and no body yet.
async fn check_head_sent_without_body(app: &TestApp) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = app.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/auth/check HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tgs_nope\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        CHECK_BODY.len()
    );
    conn.write_all(head.as_bytes()).await.expect("head");
    conn
}

/// A handler may answer before the request body has arrived (here a 401 from authentication).
/// hyper would then close the keep-alive connection without saying so and the client's next
/// request on it would fail; instead the body is discarded when it comes, and the connection
/// serves the next request.
#[sqlx::test]
async fn a_request_answered_before_its_body_arrived_leaves_the_connection_usable(db: PgPool) {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn(db).await;
    let mut conn = check_head_sent_without_body(&app).await;
    // The answer comes before the body is sent (not held back waiting for it)...
    let (head, body) = read_response(&mut conn).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("Unauthorized"));
    // ...and the body, sent afterwards, is read and discarded before the next request.
    conn.write_all(CHECK_BODY.as_bytes()).await.expect("body");
    conn.write_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("next request");
    let (head, _) = read_response(&mut conn).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
}

/// A body that never comes is not waited for long: the answer goes out at once, and the
/// connection is closed soon after.
#[sqlx::test]
async fn a_body_that_never_comes_gets_its_answer_and_a_closed_connection(db: PgPool) {
    use tokio::io::AsyncReadExt;
    let app = TestApp::spawn(db).await;
    let mut conn = check_head_sent_without_body(&app).await;
    let (head, _) = read_response(&mut conn).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        conn.read_to_end(&mut rest),
    )
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
}
