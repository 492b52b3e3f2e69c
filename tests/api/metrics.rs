//! `/metrics` (SPEC §4): the series exist, move when things happen, carry no ids, and the Grafana
//! dashboard under docs/ draws only series that exist.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokengate::auth::CacheConfig;

use crate::helpers::{Caller, Setup, TestApp};

async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    response.text().await.expect("text")
}

/// The value of a series, given its name and labels exactly as exposed.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

#[sqlx::test]
async fn requests_decisions_and_token_events_are_counted_without_ids(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    let requests =
        r#"tokengate_http_requests_total{route="/api/v1/auth/forward",method="GET",status="2xx"}"#;
    let allowed =
        r#"tokengate_verification_decisions_total{principal="personal_token",outcome="allowed"}"#;
    let unauthorized =
        r#"tokengate_verification_decisions_total{principal="unknown",outcome="unauthorized"}"#;
    let created = r#"tokengate_token_events_total{event="created"}"#;
    let before = scrape(&app).await;

    let (id, token) = app
        .token(&owner, json!({ "name": "counted", "type": "Personal" }))
        .await;
    app.forward(&token, "ManageFeatureFlag", "project/web:env/prod:flag/x")
        .await
        .assert(200);
    let garbage = Caller {
        token: "garbage".into(),
        ..token.clone()
    };
    app.forward(&garbage, "ManageFeatureFlag", "project/web:env/prod:flag/x")
        .await
        .assert(401);
    let after = scrape(&app).await;
    for series in [requests, allowed, unauthorized, created] {
        assert!(
            value(&after, series) >= value(&before, series) + 1.0,
            "{series} did not move:\n{after}"
        );
    }
    assert!(after.contains(
        r#"tokengate_http_request_duration_seconds_bucket{le="+Inf",route="/api/v1/auth/forward",method="GET"}"#
    ));
    // No id, name or secret as a label (nor anywhere).
    for secret in [id.to_string(), token.token.clone(), owner.token.clone()] {
        assert!(!after.contains(&secret), "{secret} exposed");
    }
    assert_eq!(value(&after, "tokengate_cache_enabled"), 1.0);
    assert_eq!(value(&after, "tokengate_listener_up"), 1.0);
    assert!(value(&after, "tokengate_db_pool_max_connections") >= 1.0);
    // Random paths share one label.
    app.raw(Method::GET, "/no/such/path/123", None, |r| r)
        .await
        .assert(404);
    let text = scrape(&app).await;
    assert!(!text.contains("/no/such/path"));
    assert!(text.contains(r#"route="unmatched""#));
}

#[sqlx::test]
async fn the_cache_is_reported_off_when_it_may_hold_nothing(db: PgPool) {
    let app = TestApp::spawn_with(
        db,
        Setup {
            cache: CacheConfig {
                max_entries: 0,
                ..CacheConfig::default()
            },
            ..Setup::default()
        },
    )
    .await;
    let text = scrape(&app).await;
    assert_eq!(value(&text, "tokengate_listener_up"), 1.0);
    assert!(text.contains("\ntokengate_cache_enabled 0\n"), "{text}");
}

/// Every metric name in an expression: `tokengate_` followed by name characters.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("tokengate_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[sqlx::test]
async fn the_grafana_dashboard_uses_only_series_that_exist(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, owner) = app.owner().await;
    // Make the labelled families appear: a request, a decision, a token event.
    let (_, token) = app
        .token(&owner, json!({ "name": "dash", "type": "Personal" }))
        .await;
    app.forward(&token, "ManageFeatureFlag", "project/web:env/prod:flag/x")
        .await
        .assert(200);
    let text = scrape(&app).await;
    let exposed: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/grafana-dashboard.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("json");
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            used.extend(metric_names(target["expr"].as_str().expect("expr")));
        }
    }
    assert!(used.len() >= 10, "{used:?}");
    let missing: Vec<&String> = used
        .iter()
        .filter(|n| !exposed.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses {missing:?}, not in:\n{text}"
    );
}
