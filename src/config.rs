//! Configuration from the environment and the matching CLI flags: plain values, checked at start.
//! Secrets are wrapped so that `Debug` never prints them. Nothing here knows the rest of the
//! crate: the layers that use a setting take it as a plain value (`http::server::serve` hands
//! them out).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

mod ranges;
pub use ranges::*;

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

/// A `TOKENGATE_CORS_ORIGINS` entry: `scheme://host[:port]` as a browser sends it in `Origin`,
/// nothing after. An entry that could never match (a path, a trailing slash, `*`) is refused
/// rather than silently ignored.
fn cors_origin(text: &str) -> Result<String, String> {
    let origin = text.trim();
    let host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let well_formed = host.is_some_and(|host| {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    });
    if origin.is_empty() || well_formed {
        Ok(origin.to_owned())
    } else {
        Err(format!(
            "TOKENGATE_CORS_ORIGINS entries must be origins such as https://app.example.com \
             (scheme and host, an optional port, no path, no `*`); got {origin:?}"
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `TOKENGATE_DB_VERIFY_CONNECTIONS` unless set.
pub const DEFAULT_VERIFY_CONNECTIONS: u32 = 8;
/// `TOKENGATE_DB_PING_AFTER_IDLE` unless set, in seconds.
pub const DEFAULT_PING_AFTER_IDLE_SECS: u64 = 1;

/// Where the database is and how the pool behaves: shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Secret,

    /// Maximum connections in the pool.
    #[arg(long, env = DB_MAX_CONNECTIONS.var, default_value_t = 20,
          value_parser = DB_MAX_CONNECTIONS.parser::<u32>())]
    pub db_max_connections: u32,

    /// Seconds to wait for a pooled connection before answering 503.
    #[arg(long, env = DB_ACQUIRE_TIMEOUT.var, default_value_t = 5,
          value_parser = DB_ACQUIRE_TIMEOUT.parser::<u64>())]
    pub db_acquire_timeout_secs: u64,

    /// A connection (pooled or for verification) idle at least this many seconds is pinged
    /// before use (0: always).
    #[arg(long, env = DB_PING_AFTER_IDLE.var,
          default_value_t = DEFAULT_PING_AFTER_IDLE_SECS,
          value_parser = DB_PING_AFTER_IDLE.parser::<u64>())]
    pub db_ping_after_idle_secs: u64,

    /// Connections kept apart from the pool for token verification reads.
    #[arg(long, env = DB_VERIFY_CONNECTIONS.var,
          default_value_t = DEFAULT_VERIFY_CONNECTIONS,
          value_parser = DB_VERIFY_CONNECTIONS.parser::<u32>())]
    pub db_verify_connections: u32,
}

/// The hash keys: the current one, and those a key rotation left behind.
#[derive(Debug, Clone, Args)]
pub struct KeyConfig {
    /// Base64 of at least 32 random bytes; `tokengate gen-key` makes one.
    #[arg(long, env = "TOKENGATE_HASH_KEY", hide_env_values = true)]
    pub hash_key: Option<Secret>,

    /// Keys used before TOKENGATE_HASH_KEY, comma-separated, in the same format: credentials
    /// made under them keep working and move to the current key when used
    /// (`tokengate key-status` says when none is left).
    #[arg(
        long,
        env = "TOKENGATE_PREVIOUS_HASH_KEYS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub previous_hash_keys: Vec<Secret>,
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
    #[arg(long, env = CACHE_MAX_ENTRIES.var, default_value_t = 100_000,
          value_parser = CACHE_MAX_ENTRIES.parser::<usize>())]
    pub cache_max_entries: usize,

    /// Seconds a cached verdict may live without any invalidation (a safety net).
    #[arg(long, env = CACHE_TTL.var, default_value_t = 30,
          value_parser = CACHE_TTL.parser::<u64>())]
    pub cache_ttl_secs: u64,

    /// Failed authentications allowed per client IP and minute (then 429).
    #[arg(long, env = AUTH_FAILURES_PER_MINUTE.var, default_value_t = 60,
          value_parser = AUTH_FAILURES_PER_MINUTE.parser::<u32>())]
    pub auth_failures_per_minute: u32,

    /// Burst of failed authentications allowed per client IP.
    #[arg(long, env = AUTH_FAILURE_BURST.var, default_value_t = 30,
          value_parser = AUTH_FAILURE_BURST.parser::<u32>())]
    pub auth_failure_burst: u32,

    /// Failed logins allowed per account and client IP in 15 minutes (then 429).
    #[arg(long, env = LOGIN_FAILURES.var, default_value_t = 10,
          value_parser = LOGIN_FAILURES.parser::<u32>())]
    pub login_failures: u32,

    /// Failed logins allowed per client IP (an IPv6 /64), whatever the accounts, in 15 minutes
    /// (then 429).
    #[arg(long, env = LOGIN_FAILURES_PER_ADDRESS.var, default_value_t = 50,
          value_parser = LOGIN_FAILURES_PER_ADDRESS.parser::<u32>())]
    pub login_failures_per_address: u32,

    /// Seconds a client has to send a request's headers (slowloris protection).
    #[arg(long, env = HEADER_READ_TIMEOUT.var, default_value_t = 10,
          value_parser = HEADER_READ_TIMEOUT.parser::<u64>())]
    pub header_read_timeout_secs: u64,

    /// Seconds in-flight requests get to finish after SIGTERM before the process exits.
    #[arg(long, env = SHUTDOWN_GRACE.var, default_value_t = 10,
          value_parser = SHUTDOWN_GRACE.parser::<u64>())]
    pub shutdown_grace_secs: u64,

    /// Address to listen on.
    #[arg(long, env = "TOKENGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub keys: KeyConfig,

    /// Lifetime of a web session, in seconds.
    #[arg(long, env = SESSION_TTL.var, default_value_t = 12 * 3600,
          value_parser = SESSION_TTL.parser::<u64>())]
    pub session_ttl_secs: u64,

    /// Comma-separated origins allowed to call the API from a browser (none by default).
    #[arg(long, env = "TOKENGATE_CORS_ORIGINS", value_delimiter = ',', value_parser = cors_origin)]
    pub cors_origins: Vec<String>,

    /// Seconds a request may take before it is answered 408.
    #[arg(long, env = REQUEST_TIMEOUT.var, default_value_t = 30,
          value_parser = REQUEST_TIMEOUT.parser::<u64>())]
    pub request_timeout_secs: u64,

    /// How many argon2 hashes may run at once (default: half the cores, at least 1).
    #[arg(long, env = MAX_CONCURRENT_HASHES.var,
          value_parser = MAX_CONCURRENT_HASHES.parser::<usize>())]
    pub max_concurrent_hashes: Option<usize>,

    /// How many more password hashes may wait for a hashing thread; beyond, a login answers 503
    /// with `Retry-After` at once.
    #[arg(long, env = MAX_QUEUED_HASHES.var, default_value_t = 64,
          value_parser = MAX_QUEUED_HASHES.parser::<usize>())]
    pub max_queued_hashes: usize,

    /// While token verification is busy (≥ 1,000 a second on this process), the percentage of
    /// their time the hashing threads may hash (10–100; 100 never holds them back).
    #[arg(long, env = HASH_SHARE_UNDER_LOAD.var, default_value_t = 25,
          value_parser = HASH_SHARE_UNDER_LOAD.parser::<u8>())]
    pub hash_share_under_load: u8,

    /// Longest lifetime a token may have, in days (none by default). Tokens created without
    /// `expiresAt` then expire after this long.
    #[arg(long, env = MAX_TOKEN_LIFETIME_DAYS.var,
          value_parser = MAX_TOKEN_LIFETIME_DAYS.parser::<u32>())]
    pub max_token_lifetime_days: Option<u32>,

    /// A route-rules file (TOML) for `/auth/forward`: method and path template to action and
    /// resource template (docs/integrations.md).
    #[arg(long, env = "TOKENGATE_ROUTE_RULES")]
    pub route_rules: Option<std::path::PathBuf>,

    /// GitHub's secret-scanning public keys (its `public_keys` JSON), for
    /// `POST /api/v1/secret-scanning/github`; without it that route answers 503.
    #[arg(long, env = "TOKENGATE_SECRET_SCANNING_KEYS_FILE")]
    pub secret_scanning_keys_file: Option<std::path::PathBuf>,

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

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }

    pub fn max_token_lifetime(&self) -> Option<Duration> {
        self.max_token_lifetime_days
            .map(|d| Duration::from_secs(u64::from(d).saturating_mul(86_400)))
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
mod tests;
