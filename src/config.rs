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

/// The values a numeric setting accepts. A value outside its range stops `tokengate` at start,
/// with a message naming the variable and the range (SPEC §9): no setting can make a request's
/// time arithmetic overflow, nor start an absurd number of threads or connections.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub var: &'static str,
    pub min: u64,
    pub max: u64,
    pub unit: &'static str,
}

impl Range {
    fn check(&self, text: &str) -> Result<u64, String> {
        match text.trim().parse::<u64>() {
            Ok(value) if (self.min..=self.max).contains(&value) => Ok(value),
            _ => Err(self.refusal(text)),
        }
    }

    fn refusal(&self, text: &str) -> String {
        format!(
            "{} must be a whole number of {} from {} to {} (got {text:?})",
            self.var, self.unit, self.min, self.max
        )
    }

    /// For clap's `value_parser`: the value as the field's type, or the message above.
    pub fn parser<T: TryFrom<u64>>(
        self,
    ) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
        move |text| {
            let value = self.check(text)?;
            T::try_from(value).map_err(|_| self.refusal(text))
        }
    }
}

pub const DB_MAX_CONNECTIONS: Range = Range {
    var: "TOKENGATE_DB_MAX_CONNECTIONS",
    min: 1,
    max: 1_000,
    unit: "connections",
};
pub const DB_ACQUIRE_TIMEOUT: Range = Range {
    var: "TOKENGATE_DB_ACQUIRE_TIMEOUT",
    min: 1,
    max: 600,
    unit: "seconds",
};
pub const DB_PING_AFTER_IDLE: Range = Range {
    var: "TOKENGATE_DB_PING_AFTER_IDLE",
    min: 0,
    max: 86_400,
    unit: "seconds",
};
pub const DB_VERIFY_CONNECTIONS: Range = Range {
    var: "TOKENGATE_DB_VERIFY_CONNECTIONS",
    min: 1,
    max: 1_000,
    unit: "connections",
};
pub const CACHE_MAX_ENTRIES: Range = Range {
    var: "TOKENGATE_CACHE_MAX_ENTRIES",
    min: 0,
    max: 10_000_000,
    unit: "entries",
};
pub const CACHE_TTL: Range = Range {
    var: "TOKENGATE_CACHE_TTL",
    min: 0,
    max: 86_400,
    unit: "seconds",
};
pub const AUTH_FAILURES_PER_MINUTE: Range = Range {
    var: "TOKENGATE_AUTH_FAILURES_PER_MINUTE",
    min: 1,
    max: 1_000_000,
    unit: "failures",
};
pub const AUTH_FAILURE_BURST: Range = Range {
    var: "TOKENGATE_AUTH_FAILURE_BURST",
    min: 1,
    max: 1_000_000,
    unit: "failures",
};
pub const LOGIN_FAILURES: Range = Range {
    var: "TOKENGATE_LOGIN_FAILURES",
    min: 1,
    max: 10_000,
    unit: "failures",
};
pub const LOGIN_FAILURES_PER_ADDRESS: Range = Range {
    var: "TOKENGATE_LOGIN_FAILURES_PER_ADDRESS",
    min: 1,
    max: 1_000_000,
    unit: "failures",
};
/// Waiting hashes hold a small task each; past a few thousand a login would wait minutes.
pub const MAX_QUEUED_HASHES: Range = Range {
    var: "TOKENGATE_MAX_QUEUED_HASHES",
    min: 0,
    max: 10_000,
    unit: "hashes",
};
pub const HEADER_READ_TIMEOUT: Range = Range {
    var: "TOKENGATE_HEADER_READ_TIMEOUT",
    min: 1,
    max: 3_600,
    unit: "seconds",
};
pub const SHUTDOWN_GRACE: Range = Range {
    var: "TOKENGATE_SHUTDOWN_GRACE",
    min: 0,
    max: 3_600,
    unit: "seconds",
};
/// From a minute to a year and a day.
pub const SESSION_TTL: Range = Range {
    var: "TOKENGATE_SESSION_TTL",
    min: 60,
    max: 366 * 86_400,
    unit: "seconds",
};
pub const REQUEST_TIMEOUT: Range = Range {
    var: "TOKENGATE_REQUEST_TIMEOUT",
    min: 1,
    max: 3_600,
    unit: "seconds",
};
/// Each hash runs on a thread of its own.
pub const MAX_CONCURRENT_HASHES: Range = Range {
    var: "TOKENGATE_MAX_CONCURRENT_HASHES",
    min: 1,
    max: 256,
    unit: "hashes",
};
pub const HASH_SHARE_UNDER_LOAD: Range = Range {
    var: "TOKENGATE_HASH_SHARE_UNDER_LOAD",
    min: 10,
    max: 100,
    unit: "percent",
};
/// Up to a hundred years: any expiry it allows is a date PostgreSQL and chrono can hold.
pub const MAX_TOKEN_LIFETIME_DAYS: Range = Range {
    var: "TOKENGATE_MAX_TOKEN_LIFETIME_DAYS",
    min: 1,
    max: 36_525,
    unit: "days",
};

/// Every numeric setting; a test checks that none is left without a range.
pub const RANGES: [Range; 18] = [
    DB_MAX_CONNECTIONS,
    DB_ACQUIRE_TIMEOUT,
    DB_PING_AFTER_IDLE,
    DB_VERIFY_CONNECTIONS,
    CACHE_MAX_ENTRIES,
    CACHE_TTL,
    AUTH_FAILURES_PER_MINUTE,
    AUTH_FAILURE_BURST,
    LOGIN_FAILURES,
    LOGIN_FAILURES_PER_ADDRESS,
    MAX_QUEUED_HASHES,
    HEADER_READ_TIMEOUT,
    SHUTDOWN_GRACE,
    SESSION_TTL,
    REQUEST_TIMEOUT,
    MAX_CONCURRENT_HASHES,
    HASH_SHARE_UNDER_LOAD,
    MAX_TOKEN_LIFETIME_DAYS,
];

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
          default_value_t = crate::db::readers::DEFAULT_PING_AFTER_IDLE.as_secs(),
          value_parser = DB_PING_AFTER_IDLE.parser::<u64>())]
    pub db_ping_after_idle_secs: u64,

    /// Connections kept apart from the pool for token verification reads.
    #[arg(long, env = DB_VERIFY_CONNECTIONS.var,
          default_value_t = crate::db::readers::DEFAULT_CONNECTIONS,
          value_parser = DB_VERIFY_CONNECTIONS.parser::<u32>())]
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

    /// Base64 of at least 32 random bytes; `tokengate gen-key` makes one.
    #[arg(long, env = "TOKENGATE_HASH_KEY", hide_env_values = true)]
    pub hash_key: Option<Secret>,

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
    #[arg(long, env = HASH_SHARE_UNDER_LOAD.var, default_value_t = 50,
          value_parser = HASH_SHARE_UNDER_LOAD.parser::<u8>())]
    pub hash_share_under_load: u8,

    /// Longest lifetime a token may have, in days (none by default). Tokens created without
    /// `expiresAt` then expire after this long.
    #[arg(long, env = MAX_TOKEN_LIFETIME_DAYS.var,
          value_parser = MAX_TOKEN_LIFETIME_DAYS.parser::<u32>())]
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
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
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
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Serve {
        #[command(flatten)]
        config: ServeConfig,
    }

    /// `serve` with these flags (and a database URL), as clap parses them.
    fn serve(flags: &[&str]) -> Result<ServeConfig, String> {
        let args = ["tokengate", "--database-url", "postgres://db/x"]
            .into_iter()
            .chain(flags.iter().copied());
        Serve::try_parse_from(args)
            .map(|s| s.config)
            .map_err(|e| e.to_string())
    }

    /// The flag that `range`'s variable sets.
    fn flag(range: &Range) -> String {
        let command = Serve::command();
        let arg = command
            .get_arguments()
            .find(|a| a.get_env() == Some(std::ffi::OsStr::new(range.var)))
            .unwrap_or_else(|| panic!("no flag reads {}", range.var));
        format!("--{}", arg.get_long().expect("a long flag"))
    }

    #[test]
    fn the_defaults_are_within_their_ranges() {
        let config = serve(&[]).expect("defaults parse");
        assert_eq!(config.session_ttl(), Duration::from_secs(12 * 3600));
        assert_eq!(config.max_token_lifetime(), None);
    }

    #[test]
    fn every_numeric_setting_refuses_values_outside_its_range_naming_it() {
        for range in RANGES {
            let flag = flag(&range);
            let beyond = (range.max + 1).to_string();
            let below = range.min.checked_sub(1).map(|v| v.to_string());
            let bad = [
                Some(beyond.as_str()),
                below.as_deref(),
                Some("18446744073709551616"),
                Some("-1"),
                Some("ten"),
                Some(""),
            ];
            for value in bad.into_iter().flatten() {
                let error =
                    serve(&[&format!("{flag}={value}")]).expect_err(&format!("{flag}={value:?}"));
                assert!(error.contains(range.var), "{error}");
                let span = format!("from {} to {}", range.min, range.max);
                assert!(error.contains(&span), "{error}");
            }
            for value in [range.min, range.max] {
                serve(&[&flag, &value.to_string()])
                    .unwrap_or_else(|e| panic!("{flag}={value} refused: {e}"));
            }
        }
    }

    #[test]
    fn every_numeric_setting_has_a_range() {
        let unbounded: Vec<String> = Serve::command()
            .get_arguments()
            .filter_map(|a| a.get_env()?.to_str().map(str::to_owned))
            .filter(|var| {
                !RANGES.iter().any(|r| r.var == var)
                    && ![
                        "DATABASE_URL",
                        "TOKENGATE_LISTEN_DATABASE_URL",
                        "TOKENGATE_LISTEN",
                        "TOKENGATE_HASH_KEY",
                        "TOKENGATE_CORS_ORIGINS",
                        "TOKENGATE_EXTRA_ACTIONS",
                    ]
                    .contains(&var.as_str())
            })
            .collect();
        assert!(
            unbounded.is_empty(),
            "settings without a range: {unbounded:?}"
        );
    }

    #[test]
    fn values_that_overflowed_request_arithmetic_are_refused_at_start() {
        let error = serve(&["--max-token-lifetime-days", "4294967295"]).expect_err("refused");
        assert!(
            error.contains("TOKENGATE_MAX_TOKEN_LIFETIME_DAYS"),
            "{error}"
        );
        let error =
            serve(&["--session-ttl-secs", &(u64::MAX - 1).to_string()]).expect_err("refused");
        assert!(error.contains("TOKENGATE_SESSION_TTL"), "{error}");
        let longest = serve(&[
            "--max-token-lifetime-days",
            "36525",
            "--session-ttl-secs",
            "31622400",
        ])
        .expect("the longest accepted");
        let now = chrono::Utc::now();
        for lifetime in [
            longest.max_token_lifetime().expect("set"),
            longest.session_ttl(),
        ] {
            let lifetime = chrono::Duration::from_std(lifetime).expect("fits");
            assert!(now.checked_add_signed(lifetime).is_some());
        }
    }

    #[test]
    fn cors_origins_must_be_origins() {
        let config = serve(&[
            "--cors-origins",
            "https://app.example.com,http://localhost:5173",
        ])
        .expect("origins");
        assert_eq!(
            config.cors_origins,
            ["https://app.example.com", "http://localhost:5173"]
        );
        for bad in [
            "*",
            "app.example.com",
            "https://app.example.com/",
            "https://a.example/x",
            "ftp://a",
        ] {
            let error = serve(&["--cors-origins", bad]).expect_err(bad);
            assert!(error.contains("TOKENGATE_CORS_ORIGINS"), "{error}");
        }
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let s: Secret = "postgres://u:hunter2@db/x".parse().expect("infallible");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
