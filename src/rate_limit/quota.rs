//! [`Quota`] (how many per how long) and [`Algorithm`] (how it is counted).

use std::num::NonZeroU32;
use std::time::Duration;

use crate::core::error::{Error, Result};

/// The largest limit, burst or cost the scripts accept.
pub(crate) const MAX_LIMIT: u32 = 1_000_000_000;
/// The longest window the scripts accept, in milliseconds (about 104 days).
pub(crate) const MAX_WINDOW_MS: u64 = 9_000_000_000;
/// The largest limit of a [`Algorithm::SlidingLog`] quota: the log holds one
/// entry per counted unit, so this bounds both its memory (≈ 11 MB per id)
/// and the work of one check (at most this many `ZADD` members).
pub(crate) const MAX_LOG_LIMIT: u32 = 100_000;
/// GCRA: `burst × window_us / gcd(limit, window_us)` (the tolerance in the
/// script's units) must stay below this, so its integer math is exact in Lua.
pub(crate) const MAX_GCRA_SPAN: u128 = 4_000_000_000_000_000;

/// How requests are counted. Each one is a Lua script in `lua/rl_*.lua`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Sliding-window log (a sorted set of request times): exactly at most
    /// `limit` in any `window`. Memory grows with the limit (one entry per
    /// counted unit), so its limit is at most 100,000. `retry_after` is the
    /// moment the oldest entry that blocks leaves the window.
    SlidingLog,
    /// Fixed window (a counter): a window opens at the first request after
    /// the previous one ended and lasts `window`; at most `limit` in it.
    /// O(1). Windows are per id, not aligned to the clock, so blocked clients
    /// do not all come back at the same instant; up to `2 × limit` can pass
    /// across a window boundary.
    FixedWindow,
    /// Sliding-window counter: windows aligned to multiples of `window`; the
    /// count of the last `window` is estimated as `previous × overlap +
    /// current`, where `overlap` is the share of the previous window still
    /// inside the last `window` (rounded up to a millionth, so the estimate
    /// is never below that formula). O(1); keys live up to two windows.
    ///
    /// It is an estimate, not an exact bound: it assumes the previous
    /// window's requests were spread evenly. Each aligned window holds at
    /// most `limit`, but a sliding interval of one `window` can hold up to
    /// `2 × limit − 1`: when the previous window's requests all came at its
    /// end, they are weighted down as the current window advances while they
    /// are still within the last `window` (e.g. 10 per second: 10 at the end
    /// of one second and 9 more just before the end of the next pass, 19
    /// within one second). For "never more than `limit` in any `window`",
    /// use [`Algorithm::SlidingLog`] (or [`Algorithm::Gcra`], whose bound is
    /// `burst` plus one per `window / limit`).
    SlidingWindow,
    /// Generic cell rate algorithm: one unit per `window / limit`, with up to
    /// `burst` at once (the default burst is `limit`). O(1), smooth, exact
    /// (no rounding of the emission interval).
    Gcra,
}

impl Algorithm {
    /// Every algorithm, in the order of the docs.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::SlidingLog,
        Algorithm::FixedWindow,
        Algorithm::SlidingWindow,
        Algorithm::Gcra,
    ];

    /// The embedded script that implements it, e.g. `rl_sliding_log`.
    pub fn script(self) -> &'static str {
        match self {
            Algorithm::SlidingLog => "rl_sliding_log",
            Algorithm::FixedWindow => "rl_fixed_window",
            Algorithm::SlidingWindow => "rl_sliding_window",
            Algorithm::Gcra => "rl_gcra",
        }
    }

    /// Its script, as a typed handle.
    pub(crate) fn lua(self) -> &'static crate::core::scripts::LuaScript {
        use crate::core::scripts;
        match self {
            Algorithm::SlidingLog => &scripts::RL_SLIDING_LOG,
            Algorithm::FixedWindow => &scripts::RL_FIXED_WINDOW,
            Algorithm::SlidingWindow => &scripts::RL_SLIDING_WINDOW,
            Algorithm::Gcra => &scripts::RL_GCRA,
        }
    }

    /// The short code used in its keys: `sl`, `fw`, `sw` or `gc`.
    pub fn code(self) -> &'static str {
        match self {
            Algorithm::SlidingLog => "sl",
            Algorithm::FixedWindow => "fw",
            Algorithm::SlidingWindow => "sw",
            Algorithm::Gcra => "gc",
        }
    }
}

/// A limit per window, e.g. 100 per minute; for [`Algorithm::Gcra`] also a
/// burst. Built from a `NonZeroU32`, so a zero limit cannot be written.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use redis_atomics::rate_limit::Quota;
///
/// let ten = NonZeroU32::new(10).unwrap();
/// let q = Quota::per_second(ten);
/// assert_eq!((q.limit(), q.window()), (ten, Duration::from_secs(1)));
/// assert_eq!(q.burst(), ten); // the default burst is the limit
/// let smooth = Quota::per_minute(ten).with_burst(NonZeroU32::new(2).unwrap());
/// assert_eq!(smooth.burst().get(), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    limit: NonZeroU32,
    window: Duration,
    burst: Option<NonZeroU32>,
}

impl Quota {
    /// `limit` per `window`. The window must be whole milliseconds, from
    /// 1 ms to about 104 days; that is checked when the limiter is built.
    pub fn new(limit: NonZeroU32, window: Duration) -> Self {
        Quota {
            limit,
            window,
            burst: None,
        }
    }

    /// `limit` per second.
    pub fn per_second(limit: NonZeroU32) -> Self {
        Self::new(limit, Duration::from_secs(1))
    }

    /// `limit` per minute.
    pub fn per_minute(limit: NonZeroU32) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    /// `limit` per hour.
    pub fn per_hour(limit: NonZeroU32) -> Self {
        Self::new(limit, Duration::from_secs(3600))
    }

    /// For [`Algorithm::Gcra`]: how many units may pass at once from a
    /// rested state (the tolerance is `burst × window / limit`). Defaults to
    /// the limit. Other algorithms reject a quota with a burst.
    #[must_use]
    pub fn with_burst(mut self, burst: NonZeroU32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// The number of units per window.
    pub fn limit(&self) -> NonZeroU32 {
        self.limit
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The GCRA burst (the limit unless set with [`Quota::with_burst`]).
    pub fn burst(&self) -> NonZeroU32 {
        self.burst.unwrap_or(self.limit)
    }

    /// The largest cost one check can ever be granted: the burst for GCRA,
    /// the limit otherwise. A larger cost gets a
    /// [`Decision::Never`](super::Decision::Never).
    pub fn max_cost(&self, algorithm: Algorithm) -> u32 {
        match algorithm {
            Algorithm::Gcra => self.burst().get(),
            _ => self.limit.get(),
        }
    }

    /// The window in whole milliseconds, validated for the scripts.
    pub(crate) fn window_ms(&self, algorithm: Algorithm) -> Result<u64> {
        let us = self.window.as_micros();
        if us == 0 {
            return Err(Error::validation("the window must not be zero"));
        }
        if us % 1000 != 0 {
            return Err(Error::validation(format!(
                "the window must be whole milliseconds, got {:?}",
                self.window
            )));
        }
        let ms = u64::try_from(us / 1000).unwrap_or(u64::MAX);
        if ms > MAX_WINDOW_MS {
            return Err(Error::validation(format!(
                "the window must be at most {MAX_WINDOW_MS} ms, got {:?}",
                self.window
            )));
        }
        if self.limit.get() > MAX_LIMIT {
            return Err(Error::validation(format!(
                "the limit must be at most {MAX_LIMIT}, got {}",
                self.limit
            )));
        }
        if algorithm == Algorithm::SlidingLog && self.limit.get() > MAX_LOG_LIMIT {
            return Err(Error::validation(format!(
                "a sliding log keeps one entry per request: its limit must be at most \
                 {MAX_LOG_LIMIT}, got {} (use Algorithm::SlidingWindow or Algorithm::Gcra, O(1))",
                self.limit
            )));
        }
        match (algorithm, self.burst) {
            (Algorithm::Gcra, _) => {
                let burst = self.burst();
                let window_us = u128::from(ms) * 1000;
                let g = gcd(window_us, u128::from(self.limit.get()));
                if burst.get() > MAX_LIMIT
                    || u128::from(burst.get()) * (window_us / g) > MAX_GCRA_SPAN
                {
                    return Err(Error::validation(format!(
                        "GCRA burst {burst} for {} per {ms} ms cannot be computed exactly \
                         (burst <= {MAX_LIMIT}, burst × window_us / gcd(limit, window_us) <= 4e15; \
                         a rounder limit or window helps)",
                        self.limit
                    )));
                }
            }
            (_, Some(_)) => {
                return Err(Error::validation(format!(
                    "a burst only applies to Algorithm::Gcra, not {algorithm:?}"
                )));
            }
            (_, None) => {}
        }
        Ok(ms)
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b > 0 {
        (a, b) = (b, a % b);
    }
    a
}
