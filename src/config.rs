//! Configuration from the environment and the matching CLI flags. Secrets are wrapped so that
//! `Debug` never prints them.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// A configuration value that must never be printed (database URLs carry passwords).
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the database is and how the pool behaves: shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Secret,

    /// Maximum connections in the pool.
    #[arg(long, env = "TOKENGATE_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,

    /// Seconds to wait for a pooled connection before answering 503.
    #[arg(long, env = "TOKENGATE_DB_ACQUIRE_TIMEOUT", default_value_t = 5)]
    pub db_acquire_timeout_secs: u64,

    /// A connection (pooled or for verification) idle at least this many seconds is pinged
    /// before use (0: always).
    #[arg(long, env = "TOKENGATE_DB_PING_AFTER_IDLE",
          default_value_t = crate::db::readers::DEFAULT_PING_AFTER_IDLE.as_secs())]
    pub db_ping_after_idle_secs: u64,

    /// Connections kept apart from the pool for token verification reads.
    #[arg(long, env = "TOKENGATE_DB_VERIFY_CONNECTIONS",
          default_value_t = crate::db::readers::DEFAULT_CONNECTIONS)]
    pub db_verify_connections: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,

    /// Connection string for the cache-invalidation `LISTEN` connection (default: DATABASE_URL).
    /// Set it to a direct PostgreSQL address when DATABASE_URL goes through a transaction-pooling
    /// proxy such as PgBouncer, which cannot carry LISTEN.
    #[arg(long, env = "TOKENGATE_LISTEN_DATABASE_URL", hide_env_values = true)]
    pub listen_database_url: Option<Secret>,

    /// Entries per verification cache (tokens; live permissions); 0 disables caching.
    #[arg(long, env = "TOKENGATE_CACHE_MAX_ENTRIES", default_value_t = 100_000)]
    pub cache_max_entries: usize,

    /// Seconds a cached verdict may live without any invalidation (a safety net).
    #[arg(long, env = "TOKENGATE_CACHE_TTL", default_value_t = 30)]
    pub cache_ttl_secs: u64,

    /// Failed authentications allowed per client IP and minute (then 429).
    #[arg(long, env = "TOKENGATE_AUTH_FAILURES_PER_MINUTE", default_value_t = 60)]
    pub auth_failures_per_minute: u32,

    /// Burst of failed authentications allowed per client IP.
    #[arg(long, env = "TOKENGATE_AUTH_FAILURE_BURST", default_value_t = 30)]
    pub auth_failure_burst: u32,

    /// Failed logins allowed per account and client IP in 15 minutes (then 429).
    #[arg(long, env = "TOKENGATE_LOGIN_FAILURES", default_value_t = 10)]
    pub login_failures: u32,

    /// Failed logins allowed per client IP (an IPv6 /64), whatever the accounts, in 15 minutes
    /// (then 429).
    #[arg(
        long,
        env = "TOKENGATE_LOGIN_FAILURES_PER_ADDRESS",
        default_value_t = 50
    )]
    pub login_failures_per_address: u32,

    /// Seconds a client has to send a request's headers (slowloris protection).
    #[arg(long, env = "TOKENGATE_HEADER_READ_TIMEOUT", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Seconds in-flight requests get to finish after SIGTERM before the process exits.
    #[arg(long, env = "TOKENGATE_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Address to listen on.
    #[arg(long, env = "TOKENGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Base64 of at least 32 random bytes; `tokengate gen-key` makes one.
    #[arg(long, env = "TOKENGATE_HASH_KEY", hide_env_values = true)]
    pub hash_key: Option<Secret>,

    /// Lifetime of a web session, in seconds.
    #[arg(long, env = "TOKENGATE_SESSION_TTL", default_value_t = 12 * 3600)]
    pub session_ttl_secs: u64,

    /// Comma-separated origins allowed to call the API from a browser (none by default).
    #[arg(long, env = "TOKENGATE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Seconds a request may take before it is answered 408.
    #[arg(long, env = "TOKENGATE_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// How many argon2 hashes may run at once (default: half the cores, at least 1).
    #[arg(long, env = "TOKENGATE_MAX_CONCURRENT_HASHES")]
    pub max_concurrent_hashes: Option<usize>,

    /// How many more password hashes may wait for a hashing thread; beyond, a login answers 503
    /// with `Retry-After` at once.
    #[arg(long, env = "TOKENGATE_MAX_QUEUED_HASHES", default_value_t = 64)]
    pub max_queued_hashes: usize,

    /// While token verification is busy (≥ 1,000 a second on this process), the percentage of
    /// their time the hashing threads may hash (10–100; 100 never holds them back).
    #[arg(long, env = "TOKENGATE_HASH_SHARE_UNDER_LOAD", default_value_t = 50,
          value_parser = clap::value_parser!(u8).range(10..=100))]
    pub hash_share_under_load: u8,

    /// Longest lifetime a token may have, in days (none by default). Tokens created without
    /// `expiresAt` then expire after this long.
    #[arg(long, env = "TOKENGATE_MAX_TOKEN_LIFETIME_DAYS")]
    pub max_token_lifetime_days: Option<u32>,

    /// Extra catalogue actions, `Action:resourceType:description` separated by `;`.
    #[arg(long, env = "TOKENGATE_EXTRA_ACTIONS", value_delimiter = ';')]
    pub extra_actions: Vec<String>,
}

impl DatabaseConfig {
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.db_acquire_timeout_secs)
    }

    pub fn ping_after_idle(&self) -> Duration {
        Duration::from_secs(self.db_ping_after_idle_secs)
    }
}

impl ServeConfig {
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_secs)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn server_options(&self) -> crate::http::server::ServerOptions {
        crate::http::server::ServerOptions {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
        }
    }

    pub fn limits(&self) -> crate::http::Limits {
        crate::http::Limits {
            auth_failures_per_minute: self.auth_failures_per_minute,
            auth_failure_burst: self.auth_failure_burst,
            login_failures_per_15_minutes: self.login_failures,
            address_login_failures_per_15_minutes: self.login_failures_per_address,
        }
    }

    pub fn cache(&self) -> crate::auth::CacheConfig {
        crate::auth::CacheConfig {
            ttl: Duration::from_secs(self.cache_ttl_secs),
            max_entries: self.cache_max_entries,
            ..crate::auth::CacheConfig::default()
        }
    }

    pub fn max_token_lifetime(&self) -> Option<Duration> {
        self.max_token_lifetime_days
            .map(|d| Duration::from_secs(u64::from(d) * 86_400))
    }

    /// Half the cores by default (at least one): a login storm may take those, never the rest,
    /// which keep verifying tokens.
    pub fn max_concurrent_hashes(&self) -> usize {
        self.max_concurrent_hashes.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| (n.get() / 2).max(1))
                .unwrap_or(1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug() {
        let s: Secret = "postgres://u:hunter2@db/x".parse().expect("infallible");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
