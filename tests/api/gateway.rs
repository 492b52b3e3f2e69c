//! Forward auth as each gateway calls it (SPEC §4.1): every method, the appended path (Envoy),
//! the question from the auth URL's query, the headers or the route rules.

use std::sync::Arc;

use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;
use tokengate::gateway::rules::RouteRules;
use tokengate::gateway::GatewayConfig;

use crate::helpers::{forbidden_body, Caller, Setup, TestApp};

const RULES: &str = r#"
[[rule]]
method = "PUT"
path = "/api/projects/{p}/envs/{e}/flags/{f}"
action = "UpdateFlagName"
resource = "project/{p}:env/{e}:flag/{f}"

[[rule]]
method = ["GET", "HEAD"]
path = "/api/projects/{p}"
action = "CanAccessProject"
resource = "project/{p}"
"#;

async fn with_rules(db: PgPool) -> TestApp {
    let rules = RouteRules::parse(RULES).expect("rules");
    TestApp::spawn_with(
        db,
        Setup {
            gateway: GatewayConfig {
                route_rules: Some(Arc::new(rules)),
                ..GatewayConfig::default()
            },
            ..Setup::default()
        },
    )
    .await
}

/// A service token allowed to rename flags of project web only, and to access project web.
async fn web_token(app: &TestApp) -> Caller {
    let (_, owner) = app.owner().await;
    let (_, token) = app
        .token(
            &owner,
            json!({ "name": "web", "type": "Service", "permissions": [
                { "resourceType": "flag", "effect": "allow", "actions": ["UpdateFlagName"], "resources": ["project/web:env/*:flag/*"] },
                { "resourceType": "project", "effect": "allow", "actions": ["CanAccessProject"], "resources": ["project/web"] }
            ] }),
        )
        .await;
    token
}

async fn forward(
    app: &TestApp,
    method: Method,
    path: &str,
    caller: &Caller,
    headers: &[(&str, &str)],
) -> u16 {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(&caller.token);
    for (n, v) in headers {
        request = request.header(n, v);
    }
    request.send().await.expect("request").status().as_u16()
}

#[sqlx::test]
async fn every_method_and_an_appended_path_are_answered(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let token = web_token(&app).await;
    let question = [
        ("X-Auth-Action", "UpdateFlagName"),
        ("X-Auth-Resource", "project/web:env/prod:flag/x"),
    ];
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        for path in ["/api/v1/auth/forward", "/api/v1/auth/forward/api/flags/x"] {
            assert_eq!(
                forward(&app, method.clone(), path, &token, &question).await,
                200,
                "{method} {path}"
            );
        }
    }
    let other = [
        ("X-Auth-Action", "UpdateFlagName"),
        ("X-Auth-Resource", "project/mobile:env/prod:flag/x"),
    ];
    let denied = app
        .raw(
            Method::POST,
            "/api/v1/auth/forward/api/x",
            Some(&token),
            |r| {
                r.header(other[0].0, other[0].1)
                    .header(other[1].0, other[1].1)
            },
        )
        .await;
    assert_eq!((denied.status, denied.body), (403, forbidden_body()));
}

#[sqlx::test]
async fn the_auth_urls_query_comes_before_the_headers(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let token = web_token(&app).await;
    let allowed =
        "/api/v1/auth/forward?action=UpdateFlagName&resource=project%2Fweb%3Aenv%2Fprod%3Aflag%2Fx";
    let denied =
        "/api/v1/auth/forward?action=UpdateFlagName&resource=project/mobile:env/prod:flag/x";
    let headers_allow = [
        ("X-Auth-Action", "UpdateFlagName"),
        ("X-Auth-Resource", "project/web:env/prod:flag/x"),
    ];
    let headers_deny = [
        ("X-Auth-Action", "DeleteProject"),
        ("X-Auth-Resource", "project/web"),
    ];
    assert_eq!(
        forward(&app, Method::GET, allowed, &token, &headers_deny).await,
        200
    );
    assert_eq!(
        forward(&app, Method::GET, denied, &token, &headers_allow).await,
        403
    );
    // On the appended path (Envoy) the query is the client's: never read for the question.
    let smuggled =
        "/api/v1/auth/forward/api/x?action=UpdateFlagName&resource=project/web:env/prod:flag/x";
    assert_eq!(
        forward(&app, Method::GET, smuggled, &token, &headers_deny).await,
        403
    );
}

#[sqlx::test]
async fn route_rules_map_the_reported_request_to_the_question(db: PgPool) {
    let app = with_rules(db).await;
    let token = web_token(&app).await;
    let flag = "/api/projects/web/envs/prod/flags/dark-mode";
    let other = "/api/projects/mobile/envs/prod/flags/dark-mode";
    for (method_header, uri_header) in [
        ("X-Forwarded-Method", "X-Forwarded-Uri"),
        ("X-Original-Method", "X-Original-URI"),
    ] {
        let ask = |m: &'static str, uri: &'static str| [(method_header, m), (uri_header, uri)];
        let f = "/api/v1/auth/forward";
        assert_eq!(
            forward(&app, Method::GET, f, &token, &ask("PUT", flag)).await,
            200
        );
        assert_eq!(
            forward(&app, Method::GET, f, &token, &ask("PUT", other)).await,
            403
        );
        // No rule for this method or path: refused.
        assert_eq!(
            forward(&app, Method::GET, f, &token, &ask("DELETE", flag)).await,
            403
        );
        assert_eq!(
            forward(&app, Method::GET, f, &token, &ask("GET", "/nothing")).await,
            403
        );
        assert_eq!(
            forward(
                &app,
                Method::GET,
                f,
                &token,
                &ask("GET", "/api/projects/web?x=1")
            )
            .await,
            200
        );
    }
    // Envoy: the method kept, the path appended.
    let envoy = format!("/api/v1/auth/forward{flag}");
    assert_eq!(forward(&app, Method::PUT, &envoy, &token, &[]).await, 200);
    assert_eq!(forward(&app, Method::POST, &envoy, &token, &[]).await, 403);
    let envoy_other = format!("/api/v1/auth/forward{other}");
    assert_eq!(
        forward(&app, Method::PUT, &envoy_other, &token, &[]).await,
        403
    );
    // A segment carrying resource-name syntax matches no rule.
    let sneaky = "/api/v1/auth/forward/api/projects/web%3Aenv%2Fprod";
    assert_eq!(forward(&app, Method::GET, sneaky, &token, &[]).await, 403);
    // Headers set by the gateway still come before the rules.
    let asked = [
        ("X-Auth-Action", "CanAccessProject"),
        ("X-Auth-Resource", "project/web"),
    ];
    assert_eq!(
        forward(&app, Method::POST, &envoy, &token, &asked).await,
        200
    );
}

#[sqlx::test]
async fn a_gateway_that_asks_nothing_is_told_it_is_misconfigured(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let token = web_token(&app).await;
    let only_action = |r: reqwest::RequestBuilder| r.header("X-Auth-Action", "UpdateFlagName");
    for (path, code) in [
        ("/api/v1/auth/forward", "action_is_required"),
        ("/api/v1/auth/forward/api/x", "action_is_required"),
    ] {
        app.raw(Method::GET, path, Some(&token), |r| r)
            .await
            .assert_error(400, "GatewayMisconfigured")
            .assert_error(400, code);
    }
    app.raw(
        Method::GET,
        "/api/v1/auth/forward",
        Some(&token),
        only_action,
    )
    .await
    .assert_error(400, "resource_is_required");
}

#[sqlx::test]
async fn rules_without_a_reported_uri_are_a_misconfiguration(db: PgPool) {
    let app = with_rules(db).await;
    let token = web_token(&app).await;
    app.raw(Method::GET, "/api/v1/auth/forward", Some(&token), |r| r)
        .await
        .assert_error(400, "GatewayMisconfigured")
        .assert_error(400, "uri_is_required");
}

#[sqlx::test]
async fn bad_credentials_are_401_then_429_with_retry_after(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let garbage = Caller {
        token: "tgp_garbage".into(),
        org: None,
        user_id: uuid::Uuid::nil(),
    };
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let r = app
            .raw(
                Method::POST,
                "/api/v1/auth/forward/api/x",
                Some(&garbage),
                |r| {
                    r.header("X-Auth-Action", "A")
                        .header("X-Auth-Resource", "r")
                },
            )
            .await;
        if r.status == 429 {
            assert!(r.headers.get("retry-after").is_some());
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses[0], 401);
    assert_eq!(statuses.last(), Some(&429));
}
