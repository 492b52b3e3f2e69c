//! `TestApp`: the application on an ephemeral port with a client, and helpers that read like the
//! steps of a scenario.
#![allow(dead_code)]

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokengate::auth::rate_limit::FailureLimits;
use tokengate::auth::{invalidation, CacheConfig};
use tokengate::credential::{HashKey, PasswordHasher};
use tokengate::db::readers::ReadersConfig;
use tokengate::gateway::GatewayConfig;
use tokengate::http::server::{self, ServerOptions};
use tokengate::http::{app, AppOptions, AppState, StateConfig};
use tokengate::policy::Catalogue;
use uuid::Uuid;

pub const OWNER_EMAIL: &str = "owner@example.test";
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: PgPool,
    pub state: AppState,
    key: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TestApp {
    /// Stops the server and the listener, so their connections close before `#[sqlx::test]`
    /// drops the test database (PostgreSQL waits for open sessions otherwise).
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// The error codes of the envelope.
    pub fn errors(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[track_caller]
    pub fn assert(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected response: {:#}", self.body);
        self
    }

    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        self.assert(status);
        assert_eq!(self.body["success"], json!(false), "{:#}", self.body);
        assert_eq!(self.body["data"], Value::Null, "{:#}", self.body);
        assert!(
            self.errors().iter().any(|e| e == code),
            "expected error {code}, got {:#}",
            self.body
        );
        self
    }
}

/// How a test application differs from the default one.
#[derive(Default)]
pub struct Setup {
    /// The server key (base64); a new one by default.
    pub key: Option<String>,
    /// `TOKENGATE_PREVIOUS_HASH_KEYS` (base64 each); none by default.
    pub previous_keys: Vec<String>,
    pub readers: Option<ReadersConfig>,
    pub cache: CacheConfig,
    /// Where the cache-invalidation listener connects; the database's own address by default.
    pub listen_options: Option<sqlx::postgres::PgConnectOptions>,
    /// Two hashing threads and `serve`'s default queue by default.
    pub hasher: Option<PasswordHasher>,
    /// Route rules and secret-scanning keys; none by default.
    pub gateway: GatewayConfig,
}

/// Two hashing threads, and as long a queue as `serve` has by default.
fn default_hasher() -> PasswordHasher {
    PasswordHasher::new(2, 64).expect("hasher")
}

/// Who is calling: a credential and, optionally, the `Organization` header.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: String,
    pub org: Option<Uuid>,
    pub user_id: Uuid,
}

impl Caller {
    pub fn in_org(&self, org: Uuid) -> Caller {
        Caller {
            org: Some(org),
            ..self.clone()
        }
    }
}

impl TestApp {
    pub async fn spawn(db: PgPool) -> TestApp {
        Self::spawn_with(db, Setup::default()).await
    }

    /// With its verification connections (`db::readers`) set up as `readers` says.
    pub async fn spawn_with_readers(db: PgPool, readers: ReadersConfig) -> TestApp {
        Self::spawn_with(
            db,
            Setup {
                readers: Some(readers),
                ..Setup::default()
            },
        )
        .await
    }

    /// With this password hasher (its threads and queue).
    pub async fn spawn_with_hasher(db: PgPool, hasher: PasswordHasher) -> TestApp {
        Self::spawn_with(
            db,
            Setup {
                hasher: Some(hasher),
                ..Setup::default()
            },
        )
        .await
    }

    /// A second replica: its own pool, caches and listener, on the same database and key.
    pub async fn replica(&self) -> TestApp {
        self.replica_with(Setup::default()).await
    }

    pub async fn replica_with(&self, setup: Setup) -> TestApp {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(5)
            .connect_lazy_with((*self.db.connect_options()).clone());
        Self::spawn_with(
            pool,
            Setup {
                key: Some(self.key.clone()),
                ..setup
            },
        )
        .await
    }

    pub async fn spawn_with(db: PgPool, setup: Setup) -> TestApp {
        let key = setup.key.unwrap_or_else(HashKey::generate_base64);
        let hash_key = HashKey::from_base64(&key).expect("key");
        let previous: Vec<&str> = setup.previous_keys.iter().map(String::as_str).collect();
        let previous_hash_keys =
            HashKey::previous_from_base64(&hash_key, &previous).expect("previous keys");
        let hasher = setup.hasher.unwrap_or_else(default_hasher);
        let state = AppState::new(StateConfig {
            db: db.clone(),
            hash_key,
            previous_hash_keys,
            hasher,
            catalogue: Catalogue::builtin(),
            session_ttl: Duration::from_secs(3600),
            cache: setup.cache,
            readers: setup.readers.unwrap_or_else(|| ReadersConfig::beside(&db)),
            limits: FailureLimits::default(),
            max_token_lifetime: None,
            gateway: setup.gateway,
            migrated: true,
        });
        // The cache-invalidation listener on its own connection, as in `serve`.
        let listen_options = setup
            .listen_options
            .unwrap_or_else(|| (*db.connect_options()).clone());
        let listener = tokio::spawn(invalidation::listen(
            listen_options,
            state.auth.caches.clone(),
        ));
        let refresher = tokio::spawn(state.auth.clone().refresh_members());
        let router = app(state.clone(), &AppOptions::default());
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = tcp.local_addr().expect("addr");
        // The same server loop as `serve`, until the test ends.
        let server = tokio::spawn(server::run(
            tcp,
            router,
            ServerOptions::default(),
            std::future::pending(),
        ));
        // Start like `serve` does: once the listener is up, caches are in use.
        for _ in 0..500 {
            if state.auth.caches.is_enabled() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(state.auth.caches.is_enabled(), "listener did not connect");
        TestApp {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            db,
            state,
            key,
            tasks: vec![listener, refresher, server],
        }
    }

    /// Changes rows behind the service's back (as time passing would), and drops this
    /// process's caches as the matching API write would.
    pub async fn sql(&self, statement: &str) {
        sqlx::query(statement).execute(&self.db).await.expect("sql");
        self.state.auth.caches.clear();
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        caller: Option<&Caller>,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Resp {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(caller) = caller {
            request = request.bearer_auth(&caller.token);
            if let Some(org) = caller.org {
                request = request.header("Organization", org.to_string());
            }
        }
        let response = build(request).send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("body is not JSON ({status}): {text:?}"));
        Resp {
            status,
            body,
            headers,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        caller: Option<&Caller>,
        body: Option<Value>,
    ) -> Resp {
        self.raw(method, path, caller, |r| match body {
            Some(b) => r.json(&b),
            None => r,
        })
        .await
    }

    pub async fn get(&self, path: &str, caller: &Caller) -> Resp {
        self.call(Method::GET, path, Some(caller), None).await
    }

    pub async fn post(&self, path: &str, caller: &Caller, body: Value) -> Resp {
        self.call(Method::POST, path, Some(caller), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, caller: &Caller, body: Option<Value>) -> Resp {
        self.call(Method::PUT, path, Some(caller), body).await
    }

    pub async fn delete(&self, path: &str, caller: &Caller) -> Resp {
        self.call(Method::DELETE, path, Some(caller), None).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Resp {
        self.call(
            Method::POST,
            "/api/v1/identity/login",
            None,
            Some(json!({ "email": email, "password": password })),
        )
        .await
    }

    /// Logs in and returns the session as a caller.
    pub async fn session(&self, email: &str) -> Caller {
        let resp = self.login(email, PASSWORD).await;
        resp.assert(200);
        Caller {
            token: resp.data()["token"].as_str().expect("token").to_owned(),
            org: None,
            user_id: resp.data()["user"]["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("user id"),
        }
    }

    /// `tokengate bootstrap`: the first organization and its Owner, logged in.
    pub async fn owner(&self) -> (Uuid, Caller) {
        let hash = self.state.hasher.hash(PASSWORD.into()).await.expect("hash");
        let org = tokengate::db::identity::bootstrap(
            &self.db,
            "Acme",
            OWNER_EMAIL,
            "Olivia Owner",
            &hash,
        )
        .await
        .expect("bootstrap")
        .expect("first organization");
        let caller = self.session(OWNER_EMAIL).await;
        (org, caller)
    }

    /// The admin adds a member with these policies; returns the member's session.
    pub async fn member(&self, admin: &Caller, email: &str, policy_ids: &[Uuid]) -> Caller {
        self.post(
            "/api/v1/members",
            admin,
            json!({ "email": email, "name": email, "password": PASSWORD, "policyIds": policy_ids }),
        )
        .await
        .assert(201);
        self.session(email).await
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&self.db)
            .await
            .expect("count")
    }
}

/// The exact body of the seed's Forbidden answer.
pub fn forbidden_body() -> Value {
    json!({"success": false, "errors": ["Forbidden"], "data": null})
}

impl TestApp {
    /// Creates a token; returns the response (201 with `data.token` on success).
    pub async fn create_token(&self, caller: &Caller, body: Value) -> Resp {
        self.post("/api/v1/access-tokens", caller, body).await
    }

    /// Creates a token that must succeed and returns it as a caller.
    pub async fn token(&self, caller: &Caller, body: Value) -> (Uuid, Caller) {
        let resp = self.create_token(caller, body).await;
        resp.assert(201);
        let id = resp.data()["id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("uuid");
        let secret = resp.data()["token"].as_str().expect("secret").to_owned();
        (
            id,
            Caller {
                token: secret,
                org: None,
                user_id: caller.user_id,
            },
        )
    }

    /// `GET /auth/forward` as a gateway would call it.
    pub async fn forward(&self, caller: &Caller, action: &str, resource: &str) -> Resp {
        self.raw(Method::GET, "/api/v1/auth/forward", Some(caller), |r| {
            r.header("X-Auth-Action", action)
                .header("X-Auth-Resource", resource)
        })
        .await
    }
}
