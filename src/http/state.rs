//! `AppState`: everything a handler needs, built once, from one plain `StateConfig`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use sqlx::PgPool;

use crate::auth::rate_limit::{FailureLimits, LoginLimiter};
use crate::auth::{CacheConfig, Caches, LastUsed, TokenReads, Verifier, VerifierParts};
use crate::credential::{HashKey, PasswordHasher};
use crate::db::readers::{Readers, ReadersConfig};
use crate::gateway::GatewayConfig;
use crate::policy::Catalogue;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: PgPool,
    /// What authentication needs; the extractors take it from here (`FromRef`).
    pub auth: Verifier,
    pub hasher: PasswordHasher,
    pub catalogue: Catalogue,
    pub session_ttl: Duration,
    /// False until `serve` has applied migrations (readiness).
    pub migrated: AtomicBool,
    /// Failed logins per account and client address, and per client address.
    pub login_failures: LoginLimiter,
    /// Organization-wide maximum token lifetime, if configured.
    pub max_token_lifetime: Option<Duration>,
    /// Entries each verification cache may hold (0: caching is off).
    pub cache_max_entries: usize,
    /// Route rules and secret-scanning keys (`gateway`).
    pub gateway: GatewayConfig,
}

/// What the state is made of, every part spelt out: `serve` fills it from the configuration,
/// tests from their set-up.
pub struct StateConfig {
    pub db: PgPool,
    pub hash_key: HashKey,
    /// Keys used before `hash_key` (`TOKENGATE_PREVIOUS_HASH_KEYS`), newest first.
    pub previous_hash_keys: Vec<HashKey>,
    pub hasher: PasswordHasher,
    pub catalogue: Catalogue,
    pub session_ttl: Duration,
    pub cache: CacheConfig,
    /// How verification reads connect (`db::readers`).
    pub readers: ReadersConfig,
    pub limits: FailureLimits,
    pub max_token_lifetime: Option<Duration>,
    pub gateway: GatewayConfig,
    /// Whether the migrations are known to be applied (else `/health/ready` answers 503 until
    /// `migrated` is set).
    pub migrated: bool,
}

impl AppState {
    pub fn new(config: StateConfig) -> Self {
        let readers = Readers::new((*config.db.connect_options()).clone(), config.readers);
        let auth = Verifier::new(VerifierParts {
            db: config.db.clone(),
            token_reads: TokenReads::new(readers.clone()),
            readers,
            hash_key: config.hash_key,
            previous_keys: config.previous_hash_keys,
            caches: Arc::new(Caches::new(config.cache)),
            last_used: Arc::new(LastUsed::default()),
            auth_failures: config.limits.auth_failures(),
        });
        AppState(Arc::new(Inner {
            db: config.db,
            auth,
            hasher: config.hasher,
            catalogue: config.catalogue,
            session_ttl: config.session_ttl,
            migrated: AtomicBool::new(config.migrated),
            login_failures: config.limits.login_failures(),
            max_token_lifetime: config.max_token_lifetime,
            cache_max_entries: config.cache.max_entries,
            gateway: config.gateway,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Verifier {
        state.auth.clone()
    }
}
