//! The service's connection pool (`tokengate::db::pool`): no ping per query, yet a connection
//! that died while idle is replaced before a query runs on it.

use std::time::Duration;

use sqlx::PgPool;
use tokengate::config::{DatabaseConfig, Secret};

use crate::process::database_url;

fn one_connection_pool(db: &PgPool, ping_after_idle_secs: u64) -> PgPool {
    let config = DatabaseConfig {
        database_url: database_url(db).parse::<Secret>().expect("url"),
        db_max_connections: 1,
        db_acquire_timeout_secs: 5,
        db_ping_after_idle_secs: ping_after_idle_secs,
    };
    tokengate::db::pool(&config).expect("pool")
}

async fn backend(pool: &PgPool) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(pool)
        .await
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
    kill(&db, first).await;
    assert!(
        backend(&pool).await.is_err(),
        "a ping before the query would have replaced the dead connection"
    );
    let next = backend(&pool).await.expect("a fresh connection serves");
    assert_ne!(first, next);
}
