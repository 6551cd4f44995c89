//! Auto-retry: [`RetryPolicy`], [`Backoff`], and which failures are retried.
//!
//! Every operation of the service runs through [`RetryPolicy::run`]. An
//! operation declares whether it is idempotent ([`Idempotency`]). A failure
//! is retried only when it is safe:
//!
//! | failure | idempotent op | non-idempotent op |
//! |---|---|---|
//! | connection refused (the command never left) | retried | retried |
//! | connection reset / closed mid-request | retried | **not** retried |
//! | timeout | retried | **not** retried (it may have run) |
//! | `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN`, `READONLY` | retried | retried (the server refused it) |
//! | `WRONGTYPE`, `OOM`, script, decode, validation errors | never | never |
//!
//! The delay before retry *n* (1-based) is `delay × factor(n)` capped at
//! `max_delay`, where factor is `2^(n-1)` ([`Backoff::Exponential`]), `n`
//! ([`Backoff::Linear`]) or `1` ([`Backoff::Fixed`]); then jitter removes up to
//! `jitter × delay` at random so that many clients do not retry in lock step.
//! Each retry is logged at `warn` with its attempt number and delay.
//!
//! **Every call ends within its deadline** ([`RetryPolicy::deadline`],
//! 10 s by default): attempts and the delays between them share it, an
//! attempt still running when it passes is abandoned with
//! [`ErrorKind::Timeout`], and no retry starts that could not begin before
//! it. (A `MOVED`/`ASK` redirection is followed inside one attempt by the
//! [`Connection`](crate::Connection); it never ran, so it is safe for every
//! operation.)

use std::future::Future;
use std::time::Duration;

use crate::core::error::{Error, ErrorKind, Result};

/// How the delay grows between retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backoff {
    /// `delay × 2^(attempt-1)`, capped. The default.
    #[default]
    Exponential,
    /// `delay × attempt`, capped.
    Linear,
    /// `delay` every time.
    Fixed,
}

/// Whether repeating an operation after an ambiguous failure (a timeout, a
/// connection reset mid-request) is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Running it twice has the same effect as once (reads, plain `SET`,
    /// scripts keyed by a request id or a lock token).
    Idempotent,
    /// Running it twice may have another effect (`INCR`, `SET NX`, a rate-limit
    /// check without a request id): retried only when the server surely did
    /// not run it.
    NonIdempotent,
}

/// The retry settings, validated when built (see [`crate::RedisConfigBuilder`]).
///
/// ```
/// use std::time::Duration;
/// use redis_atomics::{Backoff, RetryPolicy};
///
/// let policy = RetryPolicy::new(3, Backoff::Exponential, Duration::from_millis(100))
///     .unwrap()
///     .with_max_delay(Duration::from_secs(1))
///     .unwrap()
///     .with_jitter(0.0)
///     .unwrap();
/// assert_eq!(policy.base_delay(1), Duration::from_millis(100));
/// assert_eq!(policy.base_delay(3), Duration::from_millis(400));
/// assert_eq!(policy.base_delay(30), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    // Crate-visible so that `RedisConfigBuilder`'s shorthands can adjust a
    // policy and validate it once, when the configuration is built.
    pub(crate) retries: u32,
    pub(crate) backoff: Backoff,
    pub(crate) delay: Duration,
    /// `None`: [`DEFAULT_MAX_DELAY`], raised to `delay` if smaller.
    pub(crate) max_delay: Option<Duration>,
    pub(crate) jitter: f64,
    pub(crate) deadline: Duration,
}

/// The default per-call deadline of [`RetryPolicy`]: 10 s.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// The default cap on one delay of [`RetryPolicy`]: 2 s (or the base delay
/// when that is larger).
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(2);

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            backoff: Backoff::Exponential,
            delay: Duration::from_millis(100),
            max_delay: None,
            jitter: 0.2,
            deadline: DEFAULT_DEADLINE,
        }
    }
}

impl RetryPolicy {
    /// A policy of `retries` retries after the first attempt. `delay` must be
    /// greater than zero when `retries` is. The cap defaults to 2 s (raised to
    /// `delay` if smaller), jitter to 0.2 and the per-call deadline to 10 s.
    pub fn new(retries: u32, backoff: Backoff, delay: Duration) -> Result<Self> {
        RetryPolicy {
            retries,
            backoff,
            delay,
            ..Self::default()
        }
        .validated()
    }

    /// No retries at all: one attempt.
    pub fn none() -> Self {
        RetryPolicy {
            retries: 0,
            ..Self::default()
        }
    }

    /// Caps every delay at `max_delay`, which must be ≥ the base delay.
    pub fn with_max_delay(mut self, max_delay: Duration) -> Result<Self> {
        self.max_delay = Some(max_delay);
        self.validated()
    }

    /// The fraction of each delay (0.0 to 1.0) that is randomly removed.
    pub fn with_jitter(mut self, jitter: f64) -> Result<Self> {
        self.jitter = jitter;
        self.validated()
    }

    /// Bounds each call, attempts and delays included: the call fails with
    /// [`ErrorKind::Timeout`] when it has not finished `deadline` after it
    /// started. Must be greater than zero.
    pub fn with_deadline(mut self, deadline: Duration) -> Result<Self> {
        self.deadline = deadline;
        self.validated()
    }

    /// Checks every setting; the error names the setting as
    /// [`RedisConfigBuilder`](crate::RedisConfigBuilder) spells it.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.retries > 0 && self.delay.is_zero() {
            return Err(Error::config("retry_delay must be greater than zero"));
        }
        if let Some(max_delay) = self.max_delay {
            if max_delay < self.delay {
                return Err(Error::config(format!(
                    "max_retry_delay ({max_delay:?}) must be at least retry_delay ({:?})",
                    self.delay
                )));
            }
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::config(format!(
                "retry_jitter must be between 0.0 and 1.0, got {}",
                self.jitter
            )));
        }
        if self.deadline.is_zero() {
            return Err(Error::config("call_deadline must be greater than zero"));
        }
        Ok(())
    }

    fn validated(self) -> Result<Self> {
        self.validate().map(|()| self)
    }

    /// The per-call deadline (attempts and delays included).
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Retries after the first attempt.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// The backoff shape.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// The delay before the first retry.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The cap on any single delay.
    pub fn max_delay(&self) -> Duration {
        self.max_delay
            .unwrap_or_else(|| DEFAULT_MAX_DELAY.max(self.delay))
    }

    /// The jitter fraction.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The delay before retry `retry` (1-based), before jitter. Never panics
    /// or overflows: large attempt numbers saturate at the cap.
    pub fn base_delay(&self, retry: u32) -> Duration {
        let n = retry.max(1);
        let factor: u32 = match self.backoff {
            Backoff::Exponential => 2u32.saturating_pow(n - 1),
            Backoff::Linear => n,
            Backoff::Fixed => 1,
        };
        self.delay.saturating_mul(factor).min(self.max_delay())
    }

    /// The delay before retry `retry` with jitter applied, where `unit` is a
    /// random number in `[0, 1)`. Always within
    /// `[base × (1 − jitter), base]`.
    pub fn delay_with_jitter(&self, retry: u32, unit: f64) -> Duration {
        let base = self.base_delay(retry);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        base.mul_f64(1.0 - self.jitter * unit)
    }

    /// Whether `err` may be retried for an operation of this idempotency.
    pub fn should_retry(err: &Error, idempotency: Idempotency) -> bool {
        match err.kind() {
            ErrorKind::Unavailable => true,
            ErrorKind::Connection => idempotency == Idempotency::Idempotent || never_sent(err),
            ErrorKind::Timeout => idempotency == Idempotency::Idempotent,
            _ => false,
        }
    }

    /// Runs `attempt` until it succeeds, fails with a non-retryable error, the
    /// retries are used up or the deadline passes (an attempt running then is
    /// dropped). `op` and `key` name the operation in logs and errors. The
    /// returned error carries the number of attempts made.
    pub async fn run<T, F, Fut>(
        &self,
        op: &str,
        key: Option<&str>,
        idempotency: Idempotency,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let started = tokio::time::Instant::now();
        let mut made = 0u32;
        loop {
            made += 1;
            let left = self.deadline.saturating_sub(started.elapsed());
            let err = match tokio::time::timeout(left, attempt()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(err)) => err,
                Err(_) => Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "{op}: not finished within the call deadline of {:?}",
                        self.deadline
                    ),
                ),
            };
            let delay = self.delay_with_jitter(made, rand::random::<f64>());
            let retry = made <= self.retries
                && Self::should_retry(&err, idempotency)
                && started.elapsed() + delay < self.deadline;
            if !retry {
                let err = match (err.key(), key) {
                    (None, Some(key)) => err.with_key(key),
                    _ => err,
                };
                return Err(err.with_attempts(made));
            }
            tracing::warn!(
                op,
                key = key.unwrap_or(""),
                attempt = made,
                of = self.retries + 1,
                delay_ms = delay.as_millis() as u64,
                error = %err,
                "redis operation failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

/// A refused connection, or no connection to the cluster node at all, means
/// the command was never sent.
fn never_sent(err: &Error) -> bool {
    use std::error::Error as _;
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(redis_err) = cause.downcast_ref::<redis::RedisError>() {
            return redis_err.is_connection_refusal()
                || redis_err.kind() == redis::ErrorKind::ClusterConnectionNotFound;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(backoff: Backoff, delay_ms: u64, max_ms: u64, jitter: f64) -> RetryPolicy {
        RetryPolicy::new(5, backoff, Duration::from_millis(delay_ms))
            .unwrap()
            .with_max_delay(Duration::from_millis(max_ms.max(delay_ms)))
            .unwrap()
            .with_jitter(jitter)
            .unwrap()
    }

    /// The module's table, row by row: error kind × idempotency × cause.
    #[test]
    fn retry_decision_table() {
        use Idempotency::{Idempotent as I, NonIdempotent as N};
        let io = |k| Error::from(redis::RedisError::from(std::io::Error::from(k)));
        let server = |text: &str| {
            let reply = format!("-{text}\r\n");
            let value = redis::parse_redis_value(reply.as_bytes()).unwrap();
            Error::from(value.extract_error().unwrap_err())
        };
        let not_found = Error::from(redis::RedisError::from((
            redis::ErrorKind::ClusterConnectionNotFound,
            "no connection to the node",
        )));
        let rows: Vec<(&str, Error, bool, bool)> = vec![
            // (cause, error, retried when idempotent, retried when not)
            (
                "refused",
                io(std::io::ErrorKind::ConnectionRefused),
                true,
                true,
            ),
            ("no cluster connection", not_found, true, true),
            (
                "reset mid-request",
                io(std::io::ErrorKind::ConnectionReset),
                true,
                false,
            ),
            (
                "broken pipe",
                io(std::io::ErrorKind::BrokenPipe),
                true,
                false,
            ),
            (
                "closed (EOF)",
                io(std::io::ErrorKind::UnexpectedEof),
                true,
                false,
            ),
            ("timeout", io(std::io::ErrorKind::TimedOut), true, false),
            (
                "TRYAGAIN",
                server("TRYAGAIN Multiple keys request during rehashing of slot"),
                true,
                true,
            ),
            (
                "CLUSTERDOWN",
                server("CLUSTERDOWN The cluster is down"),
                true,
                true,
            ),
            (
                "LOADING",
                server("LOADING Redis is loading the dataset in memory"),
                true,
                true,
            ),
            (
                "MASTERDOWN",
                server("MASTERDOWN Link with MASTER is down"),
                true,
                true,
            ),
            (
                "READONLY",
                server("READONLY You can't write against a read only replica."),
                true,
                true,
            ),
            ("MOVED", server("MOVED 12 127.0.0.1:7001"), true, true),
            ("ASK", server("ASK 12 127.0.0.1:7001"), true, true),
            (
                "WRONGTYPE",
                server("WRONGTYPE Operation against a key holding the wrong kind of value"),
                false,
                false,
            ),
            (
                "OOM",
                server("OOM command not allowed when used memory > 'maxmemory'."),
                false,
                false,
            ),
            (
                "NOSCRIPT",
                server("NOSCRIPT No matching script."),
                false,
                false,
            ),
            (
                "other server error",
                server("ERR unknown command"),
                false,
                false,
            ),
            ("script", Error::new(ErrorKind::Script, "x"), false, false),
            (
                "decode",
                Error::new(ErrorKind::Deserialization, "x"),
                false,
                false,
            ),
            ("validation", Error::validation("x"), false, false),
            ("protocol", Error::protocol("x"), false, false),
        ];
        for (cause, err, idem, non) in rows {
            assert_eq!(
                RetryPolicy::should_retry(&err, I),
                idem,
                "{cause}, idempotent: {err:?}"
            );
            assert_eq!(
                RetryPolicy::should_retry(&err, N),
                non,
                "{cause}, non-idempotent: {err:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_bounds_attempts_and_delays() {
        let policy = RetryPolicy::new(100, Backoff::Fixed, Duration::from_millis(300))
            .unwrap()
            .with_deadline(Duration::from_secs(1))
            .unwrap();
        let started = tokio::time::Instant::now();
        let mut attempts = 0;
        let err = policy
            .run("op", Some("k"), Idempotency::Idempotent, || {
                attempts += 1;
                async { Err::<(), _>(Error::new(ErrorKind::Connection, "down")) }
            })
            .await
            .unwrap_err();
        assert!(
            started.elapsed() <= Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert_eq!(attempts, err.attempts());
        assert!((2..=4).contains(&attempts), "{attempts}");

        // An attempt that hangs is dropped at the deadline.
        let started = tokio::time::Instant::now();
        let err = policy
            .run("op", Some("k"), Idempotency::Idempotent, || {
                std::future::pending::<Result<()>>()
            })
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert!(err.is_timeout(), "{err:?}");
        assert!(err.to_string().contains("call deadline"), "{err}");
        assert_eq!(err.key(), Some("k"));
        assert!(RetryPolicy::none().with_deadline(Duration::ZERO).is_err());
    }

    #[test]
    fn shapes() {
        let exp = policy(Backoff::Exponential, 100, 10_000, 0.0);
        let lin = policy(Backoff::Linear, 100, 10_000, 0.0);
        let fix = policy(Backoff::Fixed, 100, 10_000, 0.0);
        let ms = |p: &RetryPolicy, n| p.base_delay(n).as_millis();
        assert_eq!([ms(&exp, 1), ms(&exp, 2), ms(&exp, 4)], [100, 200, 800]);
        assert_eq!([ms(&lin, 1), ms(&lin, 2), ms(&lin, 4)], [100, 200, 400]);
        assert_eq!([ms(&fix, 1), ms(&fix, 2), ms(&fix, 4)], [100, 100, 100]);
    }

    #[test]
    fn invalid_settings_are_rejected() {
        assert!(RetryPolicy::new(3, Backoff::Fixed, Duration::ZERO).is_err());
        assert!(RetryPolicy::new(0, Backoff::Fixed, Duration::ZERO).is_ok());
        let p = RetryPolicy::new(3, Backoff::Fixed, Duration::from_millis(10)).unwrap();
        assert!(p.clone().with_jitter(1.5).is_err());
        assert!(p.clone().with_jitter(f64::NAN).is_err());
        assert!(p.with_max_delay(Duration::from_millis(1)).is_err());
    }

    proptest! {
        #[test]
        fn delay_is_capped_monotonic_and_jitter_bounded(
            delay_ms in 1u64..5_000,
            extra_ms in 0u64..100_000,
            jitter in 0.0f64..=1.0,
            retry in 1u32..10_000,
            unit in 0.0f64..1.0,
            shape in 0usize..3,
        ) {
            let backoff = [Backoff::Exponential, Backoff::Linear, Backoff::Fixed][shape];
            let p = policy(backoff, delay_ms, delay_ms + extra_ms, jitter);
            let base = p.base_delay(retry);
            prop_assert!(base <= p.max_delay());
            prop_assert!(base >= p.delay().min(p.max_delay()));
            prop_assert!(p.base_delay(retry + 1) >= base);
            let jittered = p.delay_with_jitter(retry, unit);
            prop_assert!(jittered <= base);
            prop_assert!(jittered >= base.mul_f64(1.0 - jitter) - Duration::from_nanos(1));
        }

        #[test]
        fn exponential_doubles_until_the_cap(delay_ms in 1u64..1_000, retry in 1u32..20) {
            let p = policy(Backoff::Exponential, delay_ms, u64::MAX / 4_000_000, 0.0);
            let expected = Duration::from_millis(delay_ms)
                .saturating_mul(2u32.saturating_pow(retry - 1))
                .min(p.max_delay());
            prop_assert_eq!(p.base_delay(retry), expected);
        }
    }
}
