//! A circuit breaker for the degrading paths ([`get_or_compute`] and the
//! cache wrapper), so that a dead Redis does not cost a connect or response
//! timeout on every call.
//!
//! Closed: calls go to Redis; `failure_threshold` consecutive "unreachable"
//! failures (connection, timeout, unavailable) open it. Open: calls skip Redis
//! (the cache wrapper runs the function directly) until `cool_down` has
//! passed; then one call is let through as a probe (half-open). A successful
//! probe closes the breaker, a failed one opens it for another cool-down.
//! The state is three atomics: checking it costs a few nanoseconds.
//!
//! [`get_or_compute`]: crate::RedisService::get_or_compute

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::core::error::{Error, Result};

/// Settings of the circuit breaker, given to
/// [`RedisConfigBuilder::circuit_breaker`](crate::RedisConfigBuilder::circuit_breaker).
///
/// ```
/// use std::time::Duration;
/// use redis_atomics::{CircuitBreakerOptions, RedisConfig};
///
/// let config = RedisConfig::builder()
///     .circuit_breaker(
///         CircuitBreakerOptions::new()
///             .with_failure_threshold(3)
///             .with_cool_down(Duration::from_secs(2)),
///     )
///     .build()
///     .unwrap();
/// assert_eq!(config.circuit_breaker().failure_threshold(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreakerOptions {
    failure_threshold: u32,
    cool_down: Duration,
    enabled: bool,
}

impl Default for CircuitBreakerOptions {
    fn default() -> Self {
        CircuitBreakerOptions {
            failure_threshold: 5,
            cool_down: Duration::from_secs(5),
            enabled: true,
        }
    }
}

impl CircuitBreakerOptions {
    /// The defaults: enabled, 5 failures, 5 s cool-down.
    pub fn new() -> Self {
        Self::default()
    }

    /// A breaker that never opens.
    pub fn disabled() -> Self {
        CircuitBreakerOptions {
            enabled: false,
            ..Self::default()
        }
    }

    /// Consecutive unreachable failures that open the breaker (≥ 1).
    /// Defaults to 5.
    #[must_use]
    pub fn with_failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures;
        self
    }

    /// How long the breaker stays open before a probe call. Defaults to 5 s.
    #[must_use]
    pub fn with_cool_down(mut self, cool_down: Duration) -> Self {
        self.cool_down = cool_down;
        self
    }

    /// The failure threshold.
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }

    /// The cool-down.
    pub fn cool_down(&self) -> Duration {
        self.cool_down
    }

    /// Whether the breaker can open at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Rejects a zero threshold or cool-down on an enabled breaker.
    pub fn validate(&self) -> Result<()> {
        if self.enabled && self.failure_threshold == 0 {
            return Err(Error::config(
                "circuit breaker failure_threshold must be ≥ 1",
            ));
        }
        if self.enabled && self.cool_down.is_zero() {
            return Err(Error::config(
                "circuit breaker cool_down must be greater than zero",
            ));
        }
        Ok(())
    }
}

/// Whether Redis is being called: [`CircuitState`] as seen by
/// [`RedisService::circuit_state`](crate::RedisService::circuit_state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CircuitState {
    /// Calls go to Redis.
    Closed,
    /// Redis is skipped until the cool-down ends.
    Open,
    /// The cool-down ended; the next call probes Redis.
    HalfOpen,
}

/// The breaker itself (crate-private, one per service).
#[derive(Debug)]
pub(crate) struct Breaker {
    options: CircuitBreakerOptions,
    epoch: Instant,
    /// 0 = closed; else the ms (since `epoch`, + 1) until which it is open.
    open_until: AtomicU64,
    failures: AtomicU32,
}

impl Breaker {
    pub(crate) fn new(options: CircuitBreakerOptions) -> Self {
        Breaker {
            options,
            epoch: Instant::now(),
            open_until: AtomicU64::new(0),
            failures: AtomicU32::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn cool_down_ms(&self) -> u64 {
        u64::try_from(self.options.cool_down.as_millis()).unwrap_or(u64::MAX / 2)
    }

    /// Whether a call may go to Redis now. When the cool-down has ended, the
    /// first caller wins the probe (the deadline moves one cool-down ahead
    /// so a probe that never reports does not wedge the breaker).
    pub(crate) fn allow(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now_ms();
        if now < until {
            return false;
        }
        let next = now.saturating_add(self.cool_down_ms());
        self.open_until
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Records a round trip that reached Redis: closes the breaker.
    pub(crate) fn success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.open_until.load(Ordering::Relaxed) != 0 {
            self.open_until.store(0, Ordering::Release);
            tracing::info!("redis reachable again; circuit breaker closed");
        }
    }

    /// Records an unreachable failure; opens the breaker at the threshold.
    pub(crate) fn failure(&self) {
        if !self.options.enabled {
            return;
        }
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        let open = self.open_until.load(Ordering::Acquire) != 0;
        if failures >= self.options.failure_threshold || open {
            let until = self.now_ms().saturating_add(self.cool_down_ms());
            self.open_until.store(until, Ordering::Release);
            if !open {
                tracing::warn!(
                    failures,
                    cool_down_ms = self.cool_down_ms(),
                    "redis unreachable; circuit breaker open"
                );
            }
        }
    }

    pub(crate) fn state(&self) -> CircuitState {
        match self.open_until.load(Ordering::Acquire) {
            0 => CircuitState::Closed,
            until if self.now_ms() < until => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, cool_down_ms: u64) -> Breaker {
        Breaker::new(
            CircuitBreakerOptions::new()
                .with_failure_threshold(threshold)
                .with_cool_down(Duration::from_millis(cool_down_ms)),
        )
    }

    #[test]
    fn opens_at_threshold_and_probes_once() {
        let b = breaker(3, 50);
        b.failure();
        b.failure();
        assert!(b.allow());
        assert_eq!(b.state(), CircuitState::Closed);
        b.failure();
        assert_eq!(b.state(), CircuitState::Open);
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert!(b.allow(), "the first caller probes");
        assert!(!b.allow(), "only one probe at a time");
        b.failure();
        assert!(!b.allow(), "a failed probe reopens it");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow());
        b.success();
        assert_eq!(b.state(), CircuitState::Closed);
        assert!(b.allow() && b.allow());
    }

    #[test]
    fn success_resets_the_count_and_disabled_never_opens() {
        let b = breaker(2, 1000);
        b.failure();
        b.success();
        b.failure();
        assert!(b.allow());
        let d = Breaker::new(CircuitBreakerOptions::disabled());
        for _ in 0..100 {
            d.failure();
        }
        assert!(d.allow());
    }

    #[test]
    fn validation() {
        assert!(
            CircuitBreakerOptions::new()
                .with_failure_threshold(0)
                .validate()
                .is_err()
        );
        assert!(
            CircuitBreakerOptions::new()
                .with_cool_down(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(
            CircuitBreakerOptions::disabled()
                .with_failure_threshold(0)
                .validate()
                .is_ok()
        );
    }
}
