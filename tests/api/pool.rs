//! The service's connections: the pool (`tokengate::db::pool`) and the verification readers
//! (`tokengate::db::readers`). No ping per query, yet a connection that died while idle is
//! replaced before a query runs on it, or the read runs again on another.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tokengate::config::{DatabaseConfig, Secret};
use tokengate::db::readers::{ReadFuture, Readers, ReadersConfig};

use serde_json::json;

use crate::helpers::TestApp;
use crate::process::database_url;

fn service_pool(db: &PgPool, max_connections: u32, ping_after_idle_secs: u64) -> PgPool {
    let config = DatabaseConfig {
        database_url: database_url(db).parse::<Secret>().expect("url"),
        db_max_connections: max_connections,
        db_acquire_timeout_secs: 5,
        db_ping_after_idle_secs: ping_after_idle_secs,
        db_verify_connections: 2,
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
    let app =
        TestApp::spawn_with_readers(service_pool(&db, 2, 3600), readers_config(2, 3600)).await;
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
            // Every connection of the service (not the listener's) dies while idle.
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
            app.state.auth.caches.clear();
            app.forward(caller, "ManageFeatureFlag", "project/web:env/prod:flag/x")
                .await
                .assert(200);
        }
    }
}

fn readers_config(max_connections: usize, ping_after_idle_secs: u64) -> ReadersConfig {
    ReadersConfig {
        max_connections,
        acquire_timeout: Duration::from_secs(5),
        ping_after_idle: Duration::from_secs(ping_after_idle_secs),
    }
}

fn readers(db: &PgPool, max_connections: usize, ping_after_idle_secs: u64) -> Readers {
    Readers::new(
        (*db.connect_options()).clone(),
        readers_config(max_connections, ping_after_idle_secs),
    )
}

fn pid(conn: &mut PgConnection) -> ReadFuture<'_, i32> {
    Box::pin(sqlx::query_scalar("select pg_backend_pid()").fetch_one(conn))
}

fn slow(conn: &mut PgConnection) -> ReadFuture<'_, i32> {
    Box::pin(sqlx::query_scalar("select pg_backend_pid() from pg_sleep(0.05)").fetch_one(conn))
}

fn failing(conn: &mut PgConnection) -> ReadFuture<'_, i32> {
    Box::pin(sqlx::query_scalar("select 1 / 0").fetch_one(conn))
}

fn sleeping(conn: &mut PgConnection) -> ReadFuture<'_, i32> {
    Box::pin(sqlx::query_scalar("select 1 from pg_sleep(30)").fetch_one(conn))
}

/// The readers keep their connection between reads (no reconnect, no ping round trip) and never
/// open more than they may, however many reads wait.
#[sqlx::test]
async fn readers_reuse_their_connections_and_stay_within_their_number(db: PgPool) {
    let readers = readers(&db, 1, 3600);
    let first = readers.read(pid).await.expect("first read");
    assert_eq!(readers.num_idle(), 1, "put back after the read");
    assert_eq!(readers.read(pid).await.expect("second read"), first);
    let reads: Vec<_> = (0..4).map(|_| readers.read(slow)).collect();
    for result in futures::future::join_all(reads).await {
        assert_eq!(
            result.expect("a waiting read"),
            first,
            "one connection only"
        );
    }
}

/// A connection whose read failed, or whose read was dropped half-way, is not reused: what it
/// would answer next is unknown.
#[sqlx::test]
async fn a_reader_connection_is_never_reused_after_a_failed_or_abandoned_read(db: PgPool) {
    let readers = readers(&db, 2, 3600);
    let first = readers.read(pid).await.expect("first read");
    let error = readers.read(failing).await.expect_err("division by zero");
    assert!(
        !tokengate::db::connection_lost(&error),
        "a query error is not a lost connection: {error}"
    );
    assert_eq!(
        readers.num_idle(),
        0,
        "the failed read's connection was closed"
    );
    let second = readers.read(pid).await.expect("a fresh connection");
    assert_ne!(first, second);

    let abandoned = tokio::time::timeout(Duration::from_millis(200), readers.read(sleeping)).await;
    assert!(abandoned.is_err(), "the read was still running");
    // The idle connection was taken by the abandoned read and closed with it.
    assert_eq!(readers.num_idle(), 0);
    // Its backend sleeps on, unaware: end it, so that the test database can be dropped.
    sqlx::query(
        "select pg_terminate_backend(pid, 5000) from pg_stat_activity
                  where datname = current_database() and query like '%pg_sleep(30)%'
                    and pid <> pg_backend_pid()",
    )
    .execute(&db)
    .await
    .expect("terminate the sleeper");
    let third = readers.read(pid).await.expect("a fresh connection");
    assert_ne!(second, third);
}

/// A reader idle long enough is pinged before use, and replaced when the ping finds it dead;
/// one in steady use is not pinged, and its read runs again on a new connection instead.
#[sqlx::test]
async fn a_reader_killed_while_idle_is_replaced_with_or_without_a_ping(db: PgPool) {
    for ping_after_idle_secs in [0, 3600] {
        let readers = readers(&db, 1, ping_after_idle_secs);
        let first = readers.read(pid).await.expect("first read");
        kill(&db, first).await;
        let second = readers.read(pid).await.expect("read on a new connection");
        assert_ne!(first, second, "ping after {ping_after_idle_secs} s");
        assert_eq!(readers.num_idle(), 1);
    }
}

/// With the database unreachable a read fails at once with an error the API answers 503 for,
/// instead of hanging.
#[tokio::test]
async fn readers_fail_cleanly_when_the_database_is_unreachable() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let options = sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("nobody");
    let readers = Readers::new(options, readers_config(1, 1));
    let error = readers.read(pid).await.expect_err("nothing listens there");
    let response =
        axum::response::IntoResponse::into_response(tokengate::http::ApiError::from(error));
    assert_eq!(response.status(), 503);
}
