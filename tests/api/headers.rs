//! Headers every response carries (SPEC §9): `X-Content-Type-Options: nosniff` on all of them,
//! `Cache-Control: no-store` on every `/api/v1` answer, those carrying secrets above all.

use reqwest::header::{HeaderMap, CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS};
use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{TestApp, OWNER_EMAIL, PASSWORD};

#[track_caller]
fn assert_hardened(what: &str, status: u16, headers: &HeaderMap, api: bool) {
    assert_eq!(
        headers.get(X_CONTENT_TYPE_OPTIONS).map(|v| v.as_bytes()),
        Some(&b"nosniff"[..]),
        "{what} ({status}) lacks nosniff: {headers:?}"
    );
    if api {
        assert_eq!(
            headers.get(CACHE_CONTROL).map(|v| v.as_bytes()),
            Some(&b"no-store"[..]),
            "{what} ({status}) lacks no-store: {headers:?}"
        );
    }
}

/// Any response, JSON or not: status and headers.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> (u16, HeaderMap) {
    let response = build(app.client.request(method, format!("{}{path}", app.base)))
        .send()
        .await
        .expect("request");
    (response.status().as_u16(), response.headers().clone())
}

#[sqlx::test]
async fn answers_carrying_secrets_are_never_stored(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;

    let login = app.login(OWNER_EMAIL, PASSWORD).await;
    login.assert(200);
    assert_hardened("login", login.status, &login.headers, true);

    let created = app
        .create_token(&owner, json!({ "name": "ci", "type": "Personal" }))
        .await;
    created.assert(201);
    assert_hardened("token creation", created.status, &created.headers, true);

    let id = created.data()["id"].as_str().expect("id");
    let rotated = app
        .call(
            Method::POST,
            &format!("/api/v1/access-tokens/{id}/rotate"),
            Some(&owner),
            None,
        )
        .await;
    rotated.assert(200);
    assert!(rotated.data()["token"].is_string(), "{:#}", rotated.body);
    assert_hardened("rotation", rotated.status, &rotated.headers, true);

    for path in [
        "/api/v1/access-tokens",
        "/api/v1/user/profile",
        "/api/v1/permissions",
        "/api/v1/auth/whoami",
    ] {
        let resp = app.get(path, &owner).await;
        resp.assert(200);
        assert_hardened(path, resp.status, &resp.headers, true);
    }
}

#[sqlx::test]
async fn api_errors_and_framework_rejections_carry_both_headers(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let login = "/api/v1/identity/login";

    let cases: Vec<(&str, (u16, HeaderMap))> = vec![
        (
            "401 without a credential",
            send(&app, Method::GET, "/api/v1/access-tokens", |r| r).await,
        ),
        (
            "401 wrong password",
            send(&app, Method::POST, login, |r| {
                r.json(&json!({ "email": OWNER_EMAIL, "password": "wrong password" }))
            })
            .await,
        ),
        (
            "400 malformed JSON",
            send(&app, Method::POST, login, |r| {
                r.header("content-type", "application/json").body("{")
            })
            .await,
        ),
        (
            "413 body too large",
            send(&app, Method::POST, login, |r| {
                r.json(&json!({ "email": "a@b.c", "password": "x".repeat(1024 * 1024) }))
            })
            .await,
        ),
        (
            "415 not JSON",
            send(&app, Method::POST, login, |r| {
                r.header("content-type", "text/plain").body("{}")
            })
            .await,
        ),
        (
            "431 headers too large",
            send(&app, Method::GET, "/api/v1/permissions", |r| {
                r.header("X-Padding", "x".repeat(20 * 1024))
            })
            .await,
        ),
        (
            "404 unknown API route",
            send(&app, Method::GET, "/api/v1/no-such-thing", |r| r).await,
        ),
        (
            "405 wrong method",
            send(&app, Method::DELETE, "/api/v1/permissions", |r| r).await,
        ),
        (
            "404 unknown token",
            send(
                &app,
                Method::GET,
                "/api/v1/access-tokens/00000000-0000-0000-0000-000000000000",
                |r| r.bearer_auth(&owner.token),
            )
            .await,
        ),
    ];
    let expected = [401, 401, 400, 413, 415, 431, 404, 405, 404];
    for ((what, (status, headers)), expected) in cases.iter().zip(expected) {
        assert_eq!(*status, expected, "{what}");
        assert_hardened(what, *status, headers, true);
    }
}

#[sqlx::test]
async fn responses_outside_the_api_carry_nosniff(db: PgPool) {
    let app = TestApp::spawn(db).await;
    for (path, expected) in [
        ("/health/live", 200),
        ("/health/ready", 200),
        ("/metrics", 200),
        ("/openapi.json", 200),
        ("/no-such-page", 404),
    ] {
        let (status, headers) = send(&app, Method::GET, path, |r| r).await;
        assert_eq!(status, expected, "{path}");
        assert_hardened(path, status, &headers, false);
    }
}
