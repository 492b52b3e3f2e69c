//! The cache-invalidation listener refuses a server in recovery (a standby after a failover,
//! which never sees the primary's NOTIFYs), says so in its log, keeps the caches bypassed, and
//! connects once the server is a primary again.
//!
//! The standby is simulated on the test database: the listener's connection string puts a
//! schema whose `pg_is_in_recovery()` answers true ahead of `pg_catalog` in its `search_path`.
//! The listener cannot tell the difference; `scripts/failover` meets the real thing.

use std::time::Duration;

use sqlx::PgPool;

use crate::process::{database_url, start};

async fn caches_enabled(url: &str) -> Option<bool> {
    let text = reqwest::get(url).await.ok()?.text().await.ok()?;
    let line = text
        .lines()
        .find(|l| l.starts_with("tokengate_cache_enabled "))?;
    Some(line.ends_with(" 1"))
}

#[sqlx::test]
async fn a_listener_refuses_a_standby_and_connects_once_it_is_a_primary(db: PgPool) {
    sqlx::query("create schema standby")
        .execute(&db)
        .await
        .expect("schema");
    sqlx::query(
        "create function standby.pg_is_in_recovery() returns boolean
         language sql as 'select true'",
    )
    .execute(&db)
    .await
    .expect("function");
    let url = database_url(&db);
    let listen_url = format!("{url}?options=-c%20search_path%3Dstandby%2Cpg_catalog");
    let mut process = start(&url, &[("TOKENGATE_LISTEN_DATABASE_URL", &listen_url)]).await;
    let metrics = process.url("/metrics");

    let mut refused = false;
    for _ in 0..100 {
        if process.logs().contains("standby in recovery") {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "{}", process.logs());
    assert_eq!(caches_enabled(&metrics).await, Some(false));
    // Still a standby: still refused, and the caches are still bypassed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(caches_enabled(&metrics).await, Some(false));
    assert!(!process.logs().contains("listener connected"));

    // Promoted: the listener connects at one of its next attempts, and the caches are in use.
    sqlx::query("drop schema standby cascade")
        .execute(&db)
        .await
        .expect("promote");
    let mut enabled = false;
    for _ in 0..150 {
        if caches_enabled(&metrics).await == Some(true) {
            enabled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(enabled, "{}", process.logs());
    assert!(process.logs().contains("listener connected"));
    process.terminate();
    process.exit_within(Duration::from_secs(10)).await;
}
