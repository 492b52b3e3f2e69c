//! The web page at `/`: embedded files with a strict Content-Security-Policy (SPEC §10).

use reqwest::header::{ETAG, IF_NONE_MATCH};
use reqwest::Method;
use sqlx::PgPool;

use crate::helpers::TestApp;

async fn fetch(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .expect("request")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[sqlx::test]
async fn the_page_is_served_at_the_root_with_a_strict_policy(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let page = fetch(&app, "/").await;
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    let csp = header(&page, "content-security-policy").to_owned();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(header(&page, "referrer-policy"), "no-referrer");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    let html = page.text().await.expect("body");
    assert!(html.contains(r#"<script type="module" src="/ui/app.js"></script>"#));
    // The policy allows no inline code: every script is a file, no element carries a style
    // or an event-handler attribute.
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script type=\"module\" src=").count()
    );
    assert!(!html.contains("style="));
    assert!(!html.contains(" onclick=") && !html.contains(" onload="));
}

#[sqlx::test]
async fn every_module_the_page_imports_is_served_as_javascript(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let mut pending = vec!["app.js".to_owned()];
    let mut seen = Vec::new();
    while let Some(file) = pending.pop() {
        if seen.contains(&file) {
            continue;
        }
        let response = fetch(&app, &format!("/ui/{file}")).await;
        assert_eq!(response.status(), 200, "/ui/{file}");
        assert_eq!(
            header(&response, "content-type"),
            "text/javascript; charset=utf-8"
        );
        assert!(header(&response, "content-security-policy").contains("default-src 'self'"));
        let source = response.text().await.expect("body");
        // Relative imports only: nothing is fetched from elsewhere.
        for line in source.lines().filter(|l| l.starts_with("import ")) {
            let module = line
                .rsplit_once("from './")
                .map(|(_, rest)| rest.trim_end_matches("';"))
                .unwrap_or_else(|| panic!("{file}: import from outside /ui/: {line}"));
            pending.push(module.to_owned());
        }
        seen.push(file);
    }
    assert!(seen.len() > 3, "{seen:?}");
    for (path, content_type) in [
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ] {
        let response = fetch(&app, path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(header(&response, "content-type"), content_type);
    }
}

#[sqlx::test]
async fn unchanged_files_answer_304_to_a_revalidation(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let first = fetch(&app, "/ui/app.js").await;
    assert_eq!(header(&first, "cache-control"), "no-cache");
    let etag = first.headers().get(ETAG).expect("etag").clone();
    let again = app
        .client
        .get(format!("{}/ui/app.js", app.base))
        .header(IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers().get(ETAG), Some(&etag));
    assert!(again.bytes().await.expect("body").is_empty());
    let other = fetch(&app, "/ui/app.css").await;
    assert_ne!(other.headers().get(ETAG), Some(&etag));
}

#[sqlx::test]
async fn unknown_files_are_404_in_the_envelope(db: PgPool) {
    let app = TestApp::spawn(db).await;
    for path in [
        "/ui/nope.js",
        "/ui/index.html",
        "/ui/..%2FCargo.toml",
        "/ui/",
    ] {
        let response = fetch(&app, path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert!(
            header(&response, "content-type").starts_with("application/json"),
            "{path}"
        );
    }
    app.call(Method::POST, "/", None, None)
        .await
        .assert_error(405, "MethodNotAllowed");
}
