//! Token buckets for failures: failed authentications per client address; failed logins per
//! account + address and per address (SPEC §4.2, §9). Only failures take from a bucket, so valid
//! traffic from the same address keeps working.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a client's address is limited by: an IPv4 address as is (an IPv4-mapped IPv6 one as its
/// IPv4), an IPv6 address by its /64, since one host is commonly given a whole /64 and could
/// otherwise take a fresh bucket for every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(IpAddr);

impl From<IpAddr> for ClientAddress {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientAddress(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientAddress(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !(u128::from(u64::MAX));
                    ClientAddress(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Bounds memory under a flood of distinct keys.
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub struct RateLimiter<K> {
    buckets: Mutex<HashMap<K, Bucket>>,
    capacity: f64,
    refill_per_sec: f64,
}

impl<K: Eq + Hash> RateLimiter<K> {
    /// `count` failures per `per`, with bursts of up to `burst`.
    pub fn new(count: u32, per: Duration, burst: u32) -> Self {
        RateLimiter {
            buckets: Mutex::new(HashMap::new()),
            capacity: f64::from(burst.max(1)),
            refill_per_sec: f64::from(count.max(1)) / per.as_secs_f64().max(0.001),
        }
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.refill_per_sec).min(self.capacity);
        bucket.updated = now;
    }

    fn retry_after(&self, bucket: &Bucket) -> u64 {
        let missing = (1.0 - bucket.tokens).max(0.0);
        (missing / self.refill_per_sec).ceil().max(1.0) as u64
    }

    /// Records a failure. `Err(retry_after_secs)` when the bucket was already empty.
    pub fn fail(&self, key: K) -> Result<(), u64> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(&key) {
            // Forget the keys that have refilled completely: they carry no information.
            let (capacity, rate) = (self.capacity, self.refill_per_sec);
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < capacity
            });
            if buckets.len() >= MAX_KEYS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.capacity,
            updated: now,
        });
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.retry_after(bucket))
        }
    }

    /// Gives back a failure `fail` took, for an attempt that turned out not to be one.
    pub fn refund(&self, key: &K) {
        let Ok(mut buckets) = self.buckets.lock() else {
            return;
        };
        if let Some(bucket) = buckets.get_mut(key) {
            self.refill(bucket, Instant::now());
            bucket.tokens = (bucket.tokens + 1.0).min(self.capacity);
        }
    }
}

/// Failed logins (and wrong current passwords), counted per account and address, and per
/// address alone so that guessing one password across many accounts is limited too.
#[derive(Debug)]
pub struct LoginLimiter {
    per_account: RateLimiter<(String, ClientAddress)>,
    per_address: RateLimiter<ClientAddress>,
}

/// A password check in progress. It counts as a failure from before the check, so a burst of
/// guesses sent together cannot all pass a limit that is only charged once each is known to be
/// wrong; `refund` it when the password was right or was never checked. Dropped, it stays
/// counted.
#[must_use = "a login attempt stays counted as a failure unless refunded"]
#[derive(Debug)]
pub struct LoginAttempt<'a> {
    limiter: &'a LoginLimiter,
    account: (String, ClientAddress),
}

impl LoginLimiter {
    pub fn new(
        per_account: RateLimiter<(String, ClientAddress)>,
        per_address: RateLimiter<ClientAddress>,
    ) -> Self {
        LoginLimiter {
            per_account,
            per_address,
        }
    }

    /// Counts an attempt on the account with this canonical email (`credential::canonical_email`)
    /// from `address`. `Err(retry_after_secs)` when either limit is spent; nothing is counted
    /// then.
    pub fn attempt(
        &self,
        canonical_email: String,
        address: ClientAddress,
    ) -> Result<LoginAttempt<'_>, u64> {
        let account = (canonical_email, address);
        self.per_account.fail(account.clone())?;
        if let Err(retry_after_secs) = self.per_address.fail(address) {
            self.per_account.refund(&account);
            return Err(retry_after_secs);
        }
        Ok(LoginAttempt {
            limiter: self,
            account,
        })
    }
}

impl LoginAttempt<'_> {
    /// Not a failure after all.
    pub fn refund(self) {
        self.limiter.per_account.refund(&self.account);
        self.limiter.per_address.refund(&self.account.1);
    }
}

/// How many failures the limits allow (SPEC §4.2 defaults).
#[derive(Debug, Clone, Copy)]
pub struct FailureLimits {
    pub auth_failures_per_minute: u32,
    pub auth_failure_burst: u32,
    pub login_failures_per_15_minutes: u32,
    /// Failed logins from one client address, whatever the accounts (password spraying).
    pub address_login_failures_per_15_minutes: u32,
}

impl Default for FailureLimits {
    fn default() -> Self {
        FailureLimits {
            auth_failures_per_minute: 60,
            auth_failure_burst: 30,
            login_failures_per_15_minutes: 10,
            address_login_failures_per_15_minutes: 50,
        }
    }
}

impl FailureLimits {
    /// Failed authentications per client address.
    pub fn auth_failures(&self) -> RateLimiter<ClientAddress> {
        RateLimiter::new(
            self.auth_failures_per_minute,
            Duration::from_secs(60),
            self.auth_failure_burst,
        )
    }

    /// Failed logins per account and address, and per address.
    pub fn login_failures(&self) -> LoginLimiter {
        let per = Duration::from_secs(15 * 60);
        let account = self.login_failures_per_15_minutes;
        let address = self.address_login_failures_per_15_minutes;
        LoginLimiter::new(
            RateLimiter::new(account, per, account),
            RateLimiter::new(address, per, address),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_retry_after() {
        let limiter = RateLimiter::new(60, Duration::from_secs(60), 3);
        for _ in 0..3 {
            assert_eq!(limiter.fail("ip"), Ok(()));
        }
        assert_eq!(limiter.fail("ip"), Err(1));
        // Another key is unaffected.
        assert_eq!(limiter.fail("other"), Ok(()));
    }

    #[test]
    fn slow_refills_give_long_retry_afters() {
        let limiter = RateLimiter::new(10, Duration::from_secs(900), 10);
        for _ in 0..10 {
            assert_eq!(limiter.fail(1), Ok(()));
        }
        let retry = limiter.fail(1).expect_err("empty");
        assert!((80..=90).contains(&retry), "{retry}");
    }

    #[test]
    fn a_refund_gives_back_one_failure_and_never_more_than_the_burst() {
        let limiter = RateLimiter::new(10, Duration::from_secs(900), 2);
        limiter.refund(&"unknown");
        assert_eq!(limiter.fail("ip"), Ok(()));
        limiter.refund(&"ip");
        limiter.refund(&"ip");
        assert_eq!(limiter.fail("ip"), Ok(()));
        assert_eq!(limiter.fail("ip"), Ok(()));
        assert!(limiter.fail("ip").is_err());
        limiter.refund(&"ip");
        assert_eq!(limiter.fail("ip"), Ok(()));
    }

    fn address(text: &str) -> ClientAddress {
        ClientAddress::from(text.parse::<IpAddr>().expect("an address"))
    }

    #[test]
    fn ipv6_addresses_are_limited_by_their_64_and_ipv4_as_is() {
        for (same, as_) in [
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("192.0.2.7", "192.0.2.7"),
            ("::1", "::"),
        ] {
            assert_eq!(address(same), address(as_), "{same}");
            assert_eq!(
                address(same),
                ClientAddress(as_.parse().expect("ip")),
                "{same}"
            );
        }
        for (one, other) in [
            ("2001:db8:1:2::1", "2001:db8:1:3::1"),
            ("192.0.2.7", "192.0.2.8"),
            ("::ffff:192.0.2.7", "::ffff:192.0.2.8"),
        ] {
            assert_ne!(address(one), address(other), "{one} {other}");
        }
    }

    #[test]
    fn a_login_attempt_counts_on_both_limits_until_refunded() {
        let limits = LoginLimiter::new(
            RateLimiter::new(2, Duration::from_secs(900), 2),
            RateLimiter::new(3, Duration::from_secs(900), 3),
        );
        let here = address("192.0.2.1");
        let right = limits.attempt("a@x".into(), here).expect("room");
        right.refund();
        // Failures: two on one account spend it; a third account spends the address.
        drop(limits.attempt("a@x".into(), here).expect("room"));
        drop(limits.attempt("a@x".into(), here).expect("room"));
        assert!(limits.attempt("a@x".into(), here).is_err());
        drop(limits.attempt("b@x".into(), here).expect("room"));
        for _ in 0..3 {
            assert!(limits.attempt("c@x".into(), here).is_err());
        }
        // Refused by the address, the account was not charged.
        let account = ("c@x".to_owned(), here);
        assert_eq!(limits.per_account.fail(account.clone()), Ok(()));
        assert_eq!(limits.per_account.fail(account), Ok(()));
        // Another address has its own limit.
        drop(
            limits
                .attempt("c@x".into(), address("192.0.2.2"))
                .expect("room"),
        );
    }
}
