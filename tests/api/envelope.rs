//! Every response is the envelope, including the framework's own rejections.

use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::TestApp;

#[sqlx::test]
async fn unknown_route_is_404_in_the_envelope(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.call(Method::GET, "/api/v1/nope", None, None)
        .await
        .assert_error(404, "ResourceNotFound");
}

#[sqlx::test]
async fn wrong_method_is_405_in_the_envelope(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.call(Method::DELETE, "/api/v1/identity/login", None, None)
        .await
        .assert_error(405, "MethodNotAllowed");
}

#[sqlx::test]
async fn malformed_json_is_400_invalid_json(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.raw(Method::POST, "/api/v1/identity/login", None, |r| {
        r.header("content-type", "application/json")
            .body("{\"email\": ")
    })
    .await
    .assert_error(400, "InvalidJson");
}

/// Broken syntax is `InvalidJson` whatever the route expects (an object, an array, borrowed
/// strings), even when the first value already has the wrong type.
#[sqlx::test]
async fn broken_syntax_is_invalid_json_on_every_kind_of_body(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    for (method, path) in [
        (Method::POST, "/api/v1/identity/login"),
        (Method::POST, "/api/v1/auth/check"),
        (Method::POST, "/api/v1/access-tokens"),
    ] {
        for body in ["[1,2", "{\"checks\": [1", "\"x"] {
            app.raw(method.clone(), path, Some(&owner), |r| {
                r.header("content-type", "application/json").body(body)
            })
            .await
            .assert_error(400, "InvalidJson");
        }
    }
}

#[sqlx::test]
async fn a_body_that_is_not_utf8_is_400_invalid_json(db: PgPool) {
    let app = TestApp::spawn(db).await;
    for body in [
        &b"{\"email\": \"\xff\", \"password\": \"x\"}"[..],
        b"\xfe{}",
    ] {
        app.raw(Method::POST, "/api/v1/identity/login", None, |r| {
            r.header("content-type", "application/json")
                .body(body.to_vec())
        })
        .await
        .assert_error(400, "InvalidJson");
    }
}

#[sqlx::test]
async fn wrong_content_type_is_415(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.raw(Method::POST, "/api/v1/identity/login", None, |r| {
        r.header("content-type", "text/plain").body("{}")
    })
    .await
    .assert_error(415, "UnsupportedMediaType");
}

#[sqlx::test]
async fn oversized_body_is_413(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let password = "x".repeat(1024 * 1024);
    app.call(
        Method::POST,
        "/api/v1/identity/login",
        None,
        Some(json!({ "email": "a@b.c", "password": password })),
    )
    .await
    .assert_error(413, "PayloadTooLarge");
}

#[sqlx::test]
async fn missing_wrong_typed_and_unknown_fields_name_the_field(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let login = |body| app.call(Method::POST, "/api/v1/identity/login", None, Some(body));
    login(json!({ "email": "a@b.c" }))
        .await
        .assert_error(400, "password_is_required");
    login(json!({ "email": 42, "password": "x" }))
        .await
        .assert_error(400, "email_is_invalid");
    login(json!({ "email": "a@b.c", "password": "long enough", "admin": true }))
        .await
        .assert_error(400, "admin_is_invalid");
    login(json!("just a string"))
        .await
        .assert_error(400, "body_is_invalid");
}

#[sqlx::test]
async fn protected_routes_answer_401_with_www_authenticate(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let resp = app.call(Method::GET, "/api/v1/members", None, None).await;
    resp.assert_error(401, "Unauthorized");
    assert_eq!(resp.headers["www-authenticate"], "Bearer");
    // Malformed credentials are refused the same way.
    for bad in ["Bearer nope", "Basic dXNlcjpwYXNz", "tgw_short"] {
        app.raw(Method::GET, "/api/v1/members", None, |r| {
            r.header("authorization", bad)
        })
        .await
        .assert_error(401, "Unauthorized");
    }
}

#[sqlx::test]
async fn health_endpoints_answer(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.call(Method::GET, "/health/live", None, None)
        .await
        .assert(200);
    app.call(Method::GET, "/health/ready", None, None)
        .await
        .assert(200);
}

#[sqlx::test]
async fn every_response_carries_a_request_id(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let resp = app.call(Method::GET, "/health/live", None, None).await;
    assert!(resp.headers.contains_key("x-request-id"));
}

#[sqlx::test]
async fn openapi_document_is_3_1_and_lists_every_route(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let resp = app.call(Method::GET, "/openapi.json", None, None).await;
    resp.assert(200);
    let doc = &resp.body;
    assert!(doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/v1/identity/login", "post"),
        ("/api/v1/identity/logout", "post"),
        ("/api/v1/user/profile", "get"),
        ("/api/v1/user/password", "put"),
        ("/api/v1/organizations", "get"),
        ("/api/v1/organizations", "post"),
        ("/api/v1/members", "get"),
        ("/api/v1/members", "post"),
        ("/api/v1/members/{userId}", "get"),
        ("/api/v1/members/{userId}", "delete"),
        ("/api/v1/members/{userId}/permissions", "get"),
        ("/api/v1/members/{userId}/policies/{policyId}", "put"),
        ("/api/v1/members/{userId}/policies/{policyId}", "delete"),
        ("/api/v1/policies", "get"),
        ("/api/v1/policies", "post"),
        ("/api/v1/policies/{id}", "get"),
        ("/api/v1/policies/{id}", "put"),
        ("/api/v1/policies/{id}", "delete"),
        ("/api/v1/policies/{id}/statements", "put"),
        ("/api/v1/groups", "get"),
        ("/api/v1/groups", "post"),
        ("/api/v1/groups/{id}", "delete"),
        ("/api/v1/groups/{id}/members/{userId}", "put"),
        ("/api/v1/groups/{id}/members/{userId}", "delete"),
        ("/api/v1/groups/{id}/policies/{policyId}", "put"),
        ("/api/v1/groups/{id}/policies/{policyId}", "delete"),
        ("/api/v1/permissions", "get"),
        ("/api/v1/auth/whoami", "get"),
        ("/api/v1/audit-logs", "get"),
        ("/health/live", "get"),
        ("/health/ready", "get"),
        ("/api/v1/auth/forward", "get"),
        ("/api/v1/auth/forward/{path}", "get"),
        ("/api/v1/auth/introspect", "post"),
        ("/api/v1/secret-scanning/github", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from /openapi.json"
        );
    }
}
