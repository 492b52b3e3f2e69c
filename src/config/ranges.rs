//! The range of every numeric setting (SPEC §9): a value outside it stops `tokengate` at start.

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
