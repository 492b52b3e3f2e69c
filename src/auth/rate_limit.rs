//! Token buckets for failures: failed authentications per client IP, failed logins per
//! account + IP (SPEC §4.2, §9). Only failures take from a bucket, so valid traffic from the
//! same address keeps working.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

    /// `Err(retry_after_secs)` when `key` has no failure left to spend; takes nothing.
    pub fn check(&self, key: &K) -> Result<(), u64> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        match buckets.get_mut(key) {
            Some(bucket) => {
                self.refill(bucket, now);
                if bucket.tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(self.retry_after(bucket))
                }
            }
            None => Ok(()),
        }
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
        assert_eq!(limiter.check(&"ip"), Err(1));
        assert_eq!(limiter.fail("ip"), Err(1));
        // Another key is unaffected.
        assert_eq!(limiter.check(&"other"), Ok(()));
    }

    #[test]
    fn slow_refills_give_long_retry_afters() {
        let limiter = RateLimiter::new(10, Duration::from_secs(900), 10);
        for _ in 0..10 {
            assert_eq!(limiter.fail(1), Ok(()));
        }
        let retry = limiter.check(&1).expect_err("empty");
        assert!((80..=90).contains(&retry), "{retry}");
    }
}
