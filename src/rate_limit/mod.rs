//! Rate limiting: exact, atomic, server-clocked, four algorithms.
//!
//! A [`RateLimiter`] checks an identifier (a user, an API key, an IP) against
//! one or more [`Quota`]s with one [`Algorithm`], in one Lua script run:
//!
//! | algorithm | exact? | memory per id | cost per check |
//! |---|---|---|---|
//! | [`Algorithm::SlidingLog`] | exact: at most `limit` in any `window` | one sorted-set entry per counted unit | O(log n) |
//! | [`Algorithm::FixedWindow`] | exact per window (a window opens at the first request) | one small hash | O(1) |
//! | [`Algorithm::SlidingWindow`] | estimate: at most `limit` per aligned window, up to `2 × limit − 1` in a sliding `window` | one small hash | O(1) |
//! | [`Algorithm::Gcra`] | exact GCRA: `burst` at once, then one per `window / limit` | one small hash | O(1) |
//!
//! Rules every algorithm follows:
//!
//! - **Server time.** The scripts read `TIME` (integer microseconds); client
//!   clocks never matter. [`CheckOptions::at`] overrides it, for tests (the
//!   TTLs still run on the server's real clock: see there).
//! - **All-or-nothing.** Several quotas (10 per second *and* 1,000 per hour)
//!   are checked in one script; a request denied by any of them consumes from
//!   none.
//! - **Denied requests are not recorded**, so a flood of refused requests does
//!   not extend the block.
//! - **No collisions.** Sliding-log entries are unique even within one
//!   microsecond, so every request counts.
//! - **Idempotent retries.** With a request id ([`CheckOptions::request_id`])
//!   a repeated check is counted once, and only then may the retry policy
//!   repeat a check that timed out.
//! - **No immortal keys.** Every key carries a TTL of at most its window
//!   (two windows for [`Algorithm::SlidingWindow`], which needs the previous
//!   one; the tolerance `burst × window / limit` for [`Algorithm::Gcra`]).
//! - **A refusal is data.** A [`Decision`] is [`Decision::Allowed`] (with
//!   what remains), [`Decision::Denied`] (with `retry_after`, and the quota
//!   with the longest wait: compared exactly, in microseconds, the lowest
//!   index on a tie) or [`Decision::Never`]: the cost is above a quota's
//!   limit and can never fit, distinct from "not yet". `Never` is decided
//!   without a round trip and marks every quota the cost exceeds, as the
//!   scripts do.
//!
//! # Keys and Redis Cluster
//!
//! The keys of one id are `{namespace}:rl:{name}:{<id>}:<algo>:<i>` (one per
//! quota) and `…:{<id>}:<algo>:req` (request ids seen). The hash tag is the
//! id itself, not a shared prefix, so one id's keys share a slot while
//! different ids spread over the cluster. The id is percent-encoded inside
//! the tag (`%` → `%25`, `{` → `%7B`, `}` → `%7D`), so any id, braces
//! included, gives exactly one well-formed tag and distinct ids never share
//! keys. A namespace or limiter name containing `{` would move the tag into
//! the prefix (still one slot per id, but no spreading): limiter names may
//! not contain braces.
//!
//! ```no_run
//! # async fn demo(service: redis_atomics::RedisService) -> redis_atomics::Result<()> {
//! use std::num::NonZeroU32;
//! use redis_atomics::rate_limit::{Algorithm, Decision, Quota};
//!
//! let per_second = Quota::per_second(NonZeroU32::new(10).unwrap());
//! let per_hour = Quota::per_hour(NonZeroU32::new(1_000).unwrap());
//! let limiter = service
//!     .rate_limiter_builder("api", Algorithm::SlidingLog)
//!     .quota(per_second)
//!     .quota(per_hour)
//!     .build()?;
//! match limiter.check("user:42").await? {
//!     Decision::Allowed { remaining, .. } => println!("200, {remaining} left"),
//!     Decision::Denied { retry_after, .. } => println!("429, retry after {retry_after:?}"),
//!     Decision::Never { max_cost, .. } => println!("429, more than {max_cost} never passes"),
//! }
//! # Ok(()) }
//! ```

mod decision;
mod limiter;
mod quota;

pub use decision::{Decision, LimitDecision};
pub use limiter::{CheckOptions, RateLimiter, RateLimiterBuilder};
pub use quota::{Algorithm, Quota};

use std::num::NonZeroU32;
use std::time::Duration;

use crate::core::error::{Error, Result};
use crate::core::service::RedisService;

impl RedisService {
    /// A limiter called `name` that checks ids against one `quota` with
    /// `algorithm`. The name is part of every key (`rl:{name}:{<id>}:…`); it
    /// may be empty and may not contain `{` or `}`. Invalid quotas (a zero or
    /// too large window, a limit above 10⁹ — 10⁵ for the sliding log —, a
    /// burst on an algorithm other than GCRA, a GCRA quota too fine to compute
    /// exactly) are rejected here, before any round trip. So is a namespace
    /// containing `{`, which would take the hash tag away from the id.
    ///
    /// ```no_run
    /// # async fn demo(service: redis_atomics::RedisService) -> redis_atomics::Result<()> {
    /// use std::num::NonZeroU32;
    /// use redis_atomics::rate_limit::{Algorithm, Quota};
    ///
    /// let limiter = service.rate_limiter(
    ///     "login",
    ///     Algorithm::Gcra,
    ///     Quota::per_minute(NonZeroU32::new(5).unwrap()),
    /// )?;
    /// let d = limiter.check("alice@example.com").await?;
    /// assert!(d.remaining() <= 4);
    /// # Ok(()) }
    /// ```
    pub fn rate_limiter(
        &self,
        name: &str,
        algorithm: Algorithm,
        quota: Quota,
    ) -> Result<RateLimiter> {
        self.rate_limiter_builder(name, algorithm)
            .quota(quota)
            .build()
    }

    /// A builder for a limiter with several quotas, checked all-or-nothing
    /// (see [`RateLimiterBuilder`]).
    pub fn rate_limiter_builder(&self, name: &str, algorithm: Algorithm) -> RateLimiterBuilder {
        RateLimiterBuilder::new(self.clone(), name, algorithm)
    }

    /// The Python `RedisService.check_rate_limit`, kept as a thin alias:
    /// counts one request for `key` against `max_requests`
    /// per `window_seconds`, and returns whether it is allowed and the quota
    /// left after it (0 when denied). `sliding = true` uses the exact
    /// sliding-window log, `false` a fixed window. For more (costs, several
    /// quotas, retry-after, GCRA) use [`RedisService::rate_limiter`].
    ///
    /// The keys are `rl:{<key>}:sl:0` or `rl:{<key>}:fw:0` (namespaced). A
    /// zero limit or window, a window above ~104 days or an empty key is a
    /// validation error, raised before any round trip.
    ///
    /// ```no_run
    /// # async fn demo(service: redis_atomics::RedisService) -> redis_atomics::Result<()> {
    /// let (allowed, remaining) = service.check_rate_limit("ip:10.0.0.1", 100, 60, true).await?;
    /// if !allowed {
    ///     // 429 Too Many Requests
    /// }
    /// # let _ = remaining;
    /// # Ok(()) }
    /// ```
    pub async fn check_rate_limit(
        &self,
        key: &str,
        max_requests: u32,
        window_seconds: u64,
        sliding: bool,
    ) -> Result<(bool, u64)> {
        let algorithm = if sliding {
            Algorithm::SlidingLog
        } else {
            Algorithm::FixedWindow
        };
        // Errors name the key the check would use (`rl:{<key>}:sl:0`).
        let invalid = |msg: String| {
            let base = limiter::id_base(&self.key("rl:"), algorithm, key);
            Error::validation(msg).with_key(format!("{base}0"))
        };
        let limit = NonZeroU32::new(max_requests)
            .ok_or_else(|| invalid(format!("rate limit for {key:?}: max_requests must be >= 1")))?;
        if window_seconds == 0 {
            return Err(invalid(format!(
                "rate limit for {key:?}: window_seconds must be >= 1"
            )));
        }
        let window = Duration::from_secs(window_seconds);
        let limiter = self
            .rate_limiter("", algorithm, Quota::new(limit, window))
            .map_err(|e| invalid(format!("rate limit for {key:?}: {}", e.message())))?;
        Ok(match limiter.check(key).await? {
            Decision::Allowed { remaining, .. } => (true, remaining),
            Decision::Denied { .. } | Decision::Never { .. } => (false, 0),
        })
    }
}
