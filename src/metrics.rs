//! Prometheus metrics (SPEC §4) on `prometheus-client`. What happens in the process (requests,
//! verification decisions, token lifecycle events) is counted here as it happens; what a state
//! holds (caches, pools, the listener, `lastUsedAt`) is read at scrape time into a `Snapshot`.
//! Labels are routes as declared (`/api/v1/access-tokens/{id}`), methods, status classes and
//! fixed words: never an id, a name or a secret.
//!
//! Nothing here knows the rest of the crate, so every layer may count.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: &'static str,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub route: String,
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub principal: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub cache: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub event: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The process's counters.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<LatencyLabels>,
    decisions: Family<DecisionLabels, Counter>,
    token_events: Family<EventLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    requests: Family::default(),
    request_duration: Family::new_with_constructor(latency_histogram),
    decisions: Family::default(),
    token_events: Family::default(),
});

/// Verification outcomes (`decision`).
pub const ALLOWED: &str = "allowed";
pub const FORBIDDEN: &str = "forbidden";
pub const UNAUTHORIZED: &str = "unauthorized";
pub const RATE_LIMITED: &str = "rate_limited";

/// A finished request: `route` as declared (or `unmatched`), its method and status.
pub fn request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let method = method_label(method);
    METRICS
        .requests
        .get_or_create(&RequestLabels {
            route: route.to_owned(),
            method,
            status: status_class(status),
        })
        .inc();
    METRICS
        .request_duration
        .get_or_create(&LatencyLabels {
            route: route.to_owned(),
            method,
        })
        .observe(elapsed.as_secs_f64());
}

/// A verification decision: `principal` is `session`, `personal_token`, `service_token` or
/// `unknown` (a credential that proves nothing).
pub fn decision(principal: &'static str, outcome: &'static str) {
    METRICS
        .decisions
        .get_or_create(&DecisionLabels { principal, outcome })
        .inc();
}

/// An audited token event (`created`, `rotated`, `deactivated`, `leaked`, …).
pub fn token_event(event: &str) {
    METRICS
        .token_events
        .get_or_create(&EventLabels {
            event: event.to_owned(),
        })
        .inc();
}

fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// What one state holds, read when `/metrics` is scraped.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub cache: CacheSnapshot,
    pub listener_up: bool,
    pub last_used_flush_age: Duration,
    pub last_used_pending: u64,
    pub pool_connections: u64,
    pub pool_idle: u64,
    pub pool_max: u64,
    pub readers_idle: u64,
}

/// The verification caches' counters (`http::health` reads them in one place).
#[derive(Debug, Clone, Default)]
pub struct CacheSnapshot {
    /// In use: the listener is up and the caches may hold anything.
    pub enabled: bool,
    pub hits: u64,
    pub misses: u64,
    pub session_hits: u64,
    pub session_misses: u64,
    pub db_lookups: u64,
    pub listener_losses: u64,
    /// Entries evicted at the size bound (not expiries or invalidations).
    pub evictions: u64,
    /// Entries held now, per cache (`tokens`, `live`, `sessions`).
    pub entries: [(&'static str, u64); 3],
}

/// The OpenMetrics text for the process's counters and this snapshot.
pub fn encode_text(snapshot: &Snapshot) -> String {
    let mut registry = Registry::with_prefix("tokengate");
    let m = &*METRICS;
    registry.register(
        "http_requests",
        "HTTP requests by matched route, method and status class",
        m.requests.clone(),
    );
    registry.register_with_unit(
        "http_request_duration",
        "HTTP request latency by matched route and method",
        Unit::Seconds,
        m.request_duration.clone(),
    );
    registry.register(
        "verification_decisions",
        "Verification decisions by principal kind and outcome",
        m.decisions.clone(),
    );
    registry.register(
        "token_events",
        "Access-token lifecycle events, as audited",
        m.token_events.clone(),
    );
    let c = &snapshot.cache;
    let counter = |registry: &mut Registry, name: &str, help: &str, value: u64| {
        registry.register(name, help, ConstCounter::new(value));
    };
    let gauge = |registry: &mut Registry, name: &str, help: &str, value: i64| {
        registry.register(name, help, ConstGauge::new(value));
    };
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    counter(
        &mut registry,
        "token_cache_hits",
        "Token verifications answered from the cache",
        c.hits,
    );
    counter(
        &mut registry,
        "token_cache_misses",
        "Token verifications that missed the cache",
        c.misses,
    );
    counter(
        &mut registry,
        "verification_db_lookups",
        "Database round trips made by verification",
        c.db_lookups,
    );
    counter(
        &mut registry,
        "listener_losses",
        "Times the cache-invalidation listener lost its connection",
        c.listener_losses,
    );
    counter(
        &mut registry,
        "session_cache_hits",
        "Web-session verifications answered from the cache",
        c.session_hits,
    );
    counter(
        &mut registry,
        "session_cache_misses",
        "Web-session verifications that read the database",
        c.session_misses,
    );
    counter(
        &mut registry,
        "cache_evictions",
        "Entries evicted from the verification caches at their size bound",
        c.evictions,
    );
    let entries = Family::<CacheLabels, Gauge>::default();
    for (cache, held) in c.entries {
        entries
            .get_or_create(&CacheLabels { cache })
            .set(as_i64(held));
    }
    registry.register(
        "cache_entries",
        "Entries held now, per verification cache",
        entries,
    );
    gauge(
        &mut registry,
        "cache_enabled",
        "1 while the verification caches are in use",
        i64::from(c.enabled),
    );
    gauge(
        &mut registry,
        "listener_up",
        "1 while the cache-invalidation listener is connected",
        i64::from(snapshot.listener_up),
    );
    registry.register_with_unit(
        "last_used_flush_age",
        "Time since lastUsedAt was last written to the database",
        Unit::Seconds,
        ConstGauge::new(snapshot.last_used_flush_age.as_secs_f64()),
    );
    gauge(
        &mut registry,
        "last_used_pending",
        "Tokens whose lastUsedAt waits to be written",
        as_i64(snapshot.last_used_pending),
    );
    gauge(
        &mut registry,
        "db_pool_connections",
        "Open connections of the database pool",
        as_i64(snapshot.pool_connections),
    );
    gauge(
        &mut registry,
        "db_pool_idle_connections",
        "Idle connections of the database pool",
        as_i64(snapshot.pool_idle),
    );
    gauge(
        &mut registry,
        "db_pool_max_connections",
        "Most connections the database pool opens",
        as_i64(snapshot.pool_max),
    );
    gauge(
        &mut registry,
        "db_verify_idle_connections",
        "Idle connections kept for verification reads",
        as_i64(snapshot.readers_idle),
    );
    let mut out = String::with_capacity(8 * 1024);
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_and_ends_with_eof() {
        request("/api/v1/auth/check", "POST", 200, Duration::from_millis(2));
        decision("personal_token", ALLOWED);
        token_event("created");
        let text = encode_text(&Snapshot {
            cache: CacheSnapshot {
                session_hits: 5,
                evictions: 7,
                entries: [("tokens", 3), ("live", 0), ("sessions", 0)],
                ..CacheSnapshot::default()
            },
            ..Snapshot::default()
        });
        for line in [
            "tokengate_http_requests_total{route=\"/api/v1/auth/check\",method=\"POST\",status=\"2xx\"}",
            "tokengate_http_request_duration_seconds_bucket{le=\"0.0001\",route=\"/api/v1/auth/check\",method=\"POST\"}",
            "tokengate_verification_decisions_total{principal=\"personal_token\",outcome=\"allowed\"}",
            "tokengate_token_events_total{event=\"created\"}",
            "tokengate_cache_enabled 0",
            "tokengate_cache_entries{cache=\"tokens\"} 3",
            "tokengate_session_cache_hits_total 5",
            "tokengate_cache_evictions_total 7",
            "tokengate_last_used_flush_age_seconds 0",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn status_classes_and_methods_are_bounded_sets() {
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(method_label("BREW"), "other");
    }
}
