//! Two replicas (separate pools, caches and listeners) on one database: a revocation on one is
//! honoured by the other, also after the listener's connection is killed.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{forbidden_body, Caller, Resp, TestApp};
use tokengate::policy::DEVELOPER_POLICY_ID;

const FLAG: &str = "project/web:env/prod:flag/dark-mode";

/// Polls `probe` until it returns the expected status, for at most five seconds; returns the
/// last response. Propagation takes milliseconds; the bound only keeps a failure from hanging.
pub(crate) async fn settles(app: &TestApp, caller: &Caller, status: u16) -> Resp {
    let mut last = app.forward(caller, "ManageFeatureFlag", FLAG).await;
    for _ in 0..100 {
        if last.status == status {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        last = app.forward(caller, "ManageFeatureFlag", FLAG).await;
    }
    last
}

async fn setup(a: &TestApp) -> (Caller, Caller, Caller, Caller) {
    let (_, owner) = a.owner().await;
    let dev = a
        .member(&owner, "dev@example.test", &[DEVELOPER_POLICY_ID])
        .await;
    let (_, personal) = a
        .token(&dev, json!({ "name": "p", "type": "Personal" }))
        .await;
    let (_, service) = a
        .token(
            &dev,
            json!({ "name": "s", "type": "Service", "permissions": [{ "resourceType": "flag",
                "effect": "allow", "actions": ["*"], "resources": ["project/*:env/*:flag/*"] }] }),
        )
        .await;
    (owner, dev, personal, service)
}

#[sqlx::test]
async fn deactivation_and_deletion_on_one_replica_reach_the_other(db: PgPool) {
    let a = TestApp::spawn(db).await;
    let b = a.replica().await;
    let (owner, _, personal, service) = setup(&a).await;
    // B has both tokens cached.
    b.forward(&personal, "ManageFeatureFlag", FLAG)
        .await
        .assert(200);
    b.forward(&service, "ManageFeatureFlag", FLAG)
        .await
        .assert(200);
    let svc_id = b.get("/api/v1/auth/whoami", &service).await.data()["token"]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    a.post(
        &format!("/api/v1/access-tokens/{svc_id}/deactivate"),
        &owner,
        json!({}),
    )
    .await
    .assert(200);
    assert_eq!(settles(&b, &service, 403).await.body, forbidden_body());
    a.post(
        &format!("/api/v1/access-tokens/{svc_id}/activate"),
        &owner,
        json!({}),
    )
    .await
    .assert(200);
    settles(&b, &service, 200).await.assert(200);
    a.delete(&format!("/api/v1/access-tokens/{svc_id}"), &owner)
        .await
        .assert(200);
    settles(&b, &service, 401)
        .await
        .assert_error(401, "Unauthorized");
    // The personal token was untouched throughout.
    b.forward(&personal, "ManageFeatureFlag", FLAG)
        .await
        .assert(200);
}

#[sqlx::test]
async fn a_policy_edit_on_one_replica_reaches_the_other(db: PgPool) {
    let a = TestApp::spawn(db).await;
    let b = a.replica().await;
    let (_, owner) = a.owner().await;
    let policy = a
        .post(
            "/api/v1/policies",
            &owner,
            json!({ "name": "Flags", "statements": [
                { "resourceType": "access-token", "effect": "allow",
                  "actions": ["ManagePersonalAccessTokens"], "resources": ["access-token/*"] },
                { "resourceType": "flag", "effect": "allow",
                  "actions": ["ManageFeatureFlag"], "resources": ["project/*:env/*:flag/*"] }] }),
        )
        .await;
    let policy_id = policy.data()["id"].as_str().expect("id").to_owned();
    let dev = a
        .member(
            &owner,
            "dev@example.test",
            &[policy_id.parse().expect("uuid")],
        )
        .await;
    let (_, personal) = a
        .token(&dev, json!({ "name": "p", "type": "Personal" }))
        .await;
    b.forward(&personal, "ManageFeatureFlag", FLAG)
        .await
        .assert(200);
    a.put(
        &format!("/api/v1/policies/{policy_id}/statements"),
        &owner,
        Some(json!([{ "resourceType": "flag", "effect": "deny",
                      "actions": ["*"], "resources": ["project/*:env/prod:flag/*"] }])),
    )
    .await
    .assert(200);
    assert_eq!(settles(&b, &personal, 403).await.body, forbidden_body());
}

#[sqlx::test]
async fn a_member_removal_on_one_replica_reaches_the_other(db: PgPool) {
    let a = TestApp::spawn(db).await;
    let b = a.replica().await;
    let (owner, dev, personal, service) = setup(&a).await;
    b.forward(&personal, "ManageFeatureFlag", FLAG)
        .await
        .assert(200);
    a.delete(&format!("/api/v1/members/{}", dev.user_id), &owner)
        .await
        .assert(200);
    assert_eq!(settles(&b, &personal, 403).await.body, forbidden_body());
    b.forward(&service, "ManageFeatureFlag", FLAG)
        .await
        .assert(200);
}

#[sqlx::test]
async fn killing_the_listener_never_lets_a_stale_verdict_through(db: PgPool) {
    let a = TestApp::spawn(db).await;
    let b = a.replica().await;
    let (owner, _, _, service) = setup(&a).await;
    let svc_id = b.get("/api/v1/auth/whoami", &service).await.data()["token"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    b.forward(&service, "ManageFeatureFlag", FLAG)
        .await
        .assert(200);

    for round in 0..2 {
        let losses = b.state.auth.caches.listener_losses();
        for app in [&a, &b] {
            for _ in 0..500 {
                if app.state.auth.caches.is_enabled() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // Kill every LISTEN connection of this database: B's (and A's) listeners.
        let killed: i64 = sqlx::query_scalar(
            "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
             where datname = current_database() and query ilike 'listen%') k",
        )
        .fetch_one(&a.db)
        .await
        .expect("terminate");
        let seen: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
            "select datname::text, query from pg_stat_activity where backend_type = 'client backend'",
        )
        .fetch_all(&a.db)
        .await
        .expect("activity");
        assert!(killed >= 1, "no listener connection found: {seen:?}");
        for _ in 0..200 {
            if b.state.auth.caches.listener_losses() > losses {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            b.state.auth.caches.listener_losses() > losses,
            "B did not notice"
        );

        // Whether B's listener is back yet or not, its next answer reflects the revocation.
        let (path, expected) = if round == 0 {
            (format!("/api/v1/access-tokens/{svc_id}/deactivate"), 403)
        } else {
            (format!("/api/v1/access-tokens/{svc_id}/activate"), 200)
        };
        a.post(&path, &owner, json!({})).await.assert(200);
        b.forward(&service, "ManageFeatureFlag", FLAG)
            .await
            .assert(expected);
    }
}

/// SPEC §7.2: a miss is one database round trip, the owner's live permissions included — also
/// while the caches are bypassed (the listener down), when nothing read can be kept.
#[sqlx::test]
async fn a_miss_is_one_round_trip_even_while_the_caches_are_bypassed(db: PgPool) {
    let a = TestApp::spawn(db).await;
    let (_, _, personal, service) = setup(&a).await;
    let lookups = || {
        a.state
            .auth
            .caches
            .stats
            .db_lookups
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    for bypassed in [false, true] {
        a.state.auth.caches.set_enabled(!bypassed);
        a.state.auth.caches.clear();
        for caller in [&personal, &service] {
            let before = lookups();
            a.forward(caller, "ManageFeatureFlag", FLAG)
                .await
                .assert(200);
            assert_eq!(lookups() - before, 1, "bypassed: {bypassed}");
        }
    }
}

/// A TCP relay that can stop moving bytes without closing anything: what a frozen proxy or a
/// dropped NAT entry looks like from both ends (half-open).
struct Relay {
    port: u16,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    async fn to(target: (String, u16)) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = frozen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(target.clone()).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, flag.clone()));
                tokio::spawn(pump(server_read, client_write, flag.clone()));
            }
        });
        Relay { port, frozen, task }
    }

    fn freeze(&self, frozen: bool) {
        self.frozen
            .store(frozen, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies bytes one way; while frozen, holds them and keeps both sockets open.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                while frozen.load(std::sync::atomic::Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if to.write_all(&buffer[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[sqlx::test]
async fn a_listener_connection_that_goes_silent_is_noticed_and_the_caches_bypassed(db: PgPool) {
    use crate::helpers::Setup;
    use tokengate::auth::CacheConfig;

    let options = (*db.connect_options()).clone();
    let relay = Relay::to((options.get_host().to_owned(), options.get_port())).await;
    // A cache that would keep its entries for ten minutes: only noticing the silent listener
    // can end a cached verdict here.
    let a = TestApp::spawn_with(
        db,
        Setup {
            cache: CacheConfig {
                ttl: Duration::from_secs(600),
                ..CacheConfig::default()
            },
            listen_options: Some(options.host("127.0.0.1").port(relay.port)),
            ..Setup::default()
        },
    )
    .await;
    let b = a.replica().await;
    let (owner, _, _, service) = setup(&a).await;
    let id = a.get("/api/v1/auth/whoami", &service).await.data()["token"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    a.forward(&service, "ManageFeatureFlag", FLAG)
        .await
        .assert(200);
    let losses = a.state.auth.caches.listener_losses();

    relay.freeze(true);
    b.post(
        &format!("/api/v1/access-tokens/{id}/deactivate"),
        &owner,
        json!({}),
    )
    .await
    .assert(200);
    // A's NOTIFY is stuck in the relay. A notices its listener no longer answers, drops the
    // caches and reads the token again. (Bounded so that a failure cannot hang the suite.)
    let mut last = a.forward(&service, "ManageFeatureFlag", FLAG).await;
    for _ in 0..150 {
        if last.status == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = a.forward(&service, "ManageFeatureFlag", FLAG).await;
    }
    assert_eq!(
        last.status, 403,
        "a revoked token still served: {:#}",
        last.body
    );
    assert!(a.state.auth.caches.listener_losses() > losses);
    assert!(
        !a.state.auth.caches.is_enabled(),
        "caches must stay bypassed while frozen"
    );

    // When the link moves again, a new listener connects and the caches come back.
    relay.freeze(false);
    for _ in 0..150 {
        if a.state.auth.caches.is_enabled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        a.state.auth.caches.is_enabled(),
        "the listener did not come back"
    );
    a.forward(&service, "ManageFeatureFlag", FLAG)
        .await
        .assert_error(403, "Forbidden");
}
