//! The service's connection pool (`tokengate::db::pool`): no ping per query, yet a connection
//! that died while idle is replaced before a query runs on it.

use std::time::Duration;

use sqlx::PgPool;
use tokengate::config::{DatabaseConfig, Secret};

use serde_json::json;

use crate::helpers::TestApp;
use crate::process::database_url;

fn service_pool(db: &PgPool, max_connections: u32, ping_after_idle_secs: u64) -> PgPool {
    let config = DatabaseConfig {
        database_url: database_url(db).parse::<Secret>().expect("url"),
        db_max_connections: max_connections,
        db_acquire_timeout_secs: 5,
        db_ping_after_idle_secs: ping_after_idle_secs,
    };
    tokengate::db::pool(&config).expect("pool")
}

fn one_connection_pool(db: &PgPool, ping_after_idle_secs: u64) -> PgPool {
    service_pool(db, 1, ping_after_idle_secs)
}

async fn backend(pool: &PgPool) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(pool)
        .await
}

/// Waits until the pool's connection is back in its idle queue. sqlx returns a connection on a
/// task of its own, after a ping of its own: killing the backend before that finishes would
/// make the pool drop the connection itself, and the test would prove nothing.
async fn until_idle(pool: &PgPool) {
    for _ in 0..500 {
        if pool.num_idle() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the connection never went back to the pool");
}

/// Kills `pid` from another connection and waits until it is gone.
async fn kill(db: &PgPool, pid: i32) {
    let killed: bool = sqlx::query_scalar("select pg_terminate_backend($1, 5000)")
        .bind(pid)
        .fetch_one(db)
        .await
        .expect("terminate");
    assert!(killed, "backend {pid} was not terminated");
}

#[sqlx::test]
async fn a_connection_that_died_while_idle_is_replaced_before_use(db: PgPool) {
    let pool = one_connection_pool(&db, 1);
    let first = backend(&pool).await.expect("first query");
    until_idle(&pool).await;
    kill(&db, first).await;
    // Idle long enough to be pinged: the ping finds it dead and a new connection serves.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = backend(&pool)
        .await
        .expect("the query ran on a fresh connection");
    assert_ne!(first, second);
}

/// A connection in steady use is not pinged before each query (that would be a second round
/// trip per query): killed and used at once, its query fails; the pool then replaces it.
#[sqlx::test]
async fn a_connection_in_steady_use_is_not_pinged(db: PgPool) {
    // However slow this machine, the connection is never idle for an hour here.
    let pool = one_connection_pool(&db, 3600);
    let first = backend(&pool).await.expect("first query");
    until_idle(&pool).await;
    kill(&db, first).await;
    assert!(
        backend(&pool).await.is_err(),
        "a ping before the query would have replaced the dead connection"
    );
    let next = backend(&pool).await.expect("a fresh connection serves");
    assert_ne!(first, next);
}

/// Verification reads are retried once when their connection was lost, so killing the service's
/// database connections does not fail the next cache misses (nothing pinged them first).
#[sqlx::test]
async fn a_verification_whose_connection_was_killed_is_read_again(db: PgPool) {
    // Never idle long enough here to be pinged: only the retry can save the lookup.
    let app = TestApp::spawn(service_pool(&db, 2, 3600)).await;
    let (_, owner) = app.owner().await;
    let permissions = json!([{ "resourceType": "flag", "effect": "allow", "actions": ["*"],
        "resources": ["project/*:env/*:flag/*"] }]);
    let (_, service) = app
        .token(
            &owner,
            json!({ "name": "s", "type": "Service", "permissions": permissions }),
        )
        .await;
    let (_, personal) = app
        .token(&owner, json!({ "name": "p", "type": "Personal" }))
        .await;
    for round in 0..3 {
        for caller in [&service, &personal] {
            // Every pooled connection of the service (not the listener's) dies while idle.
            let killed: i64 = sqlx::query_scalar(
                // Materialized: the filter runs before any termination, never after.
                "with victims as materialized (
                   select pid from pg_stat_activity
                    where datname = current_database() and pid <> pg_backend_pid()
                      and backend_type = 'client backend' and query not ilike 'listen%')
                 select count(*) from victims where pg_terminate_backend(pid, 5000)",
            )
            .fetch_one(&db)
            .await
            .expect("terminate");
            assert!(killed >= 1, "round {round}: no connection to kill");
            // A miss: the token and (for the personal one) the owner's live permissions.
            app.state
                .caches
                .invalidate(tokengate::auth::Invalidation::All);
            app.forward(caller, "ManageFeatureFlag", "project/web:env/prod:flag/x")
                .await
                .assert(200);
        }
    }
}
