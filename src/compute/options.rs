//! [`ComputeOptions`] and [`ComputeError`].
//!
//! `ComputeOptions` is a builder: its setters take the setting's noun
//! (`ttl`, `lock_ttl`, `format`, the Python keyword names) and it has no
//! getters; see [the naming convention](crate::config#naming).

use std::fmt;
use std::time::Duration;

use super::raw::Format;
use crate::core::commands::ttl_millis;
use crate::core::error::{Error, Result};

/// How [`get_or_compute`](crate::RedisService::get_or_compute) stores,
/// locks and waits. Every setter says its default.
///
/// ```
/// use std::time::Duration;
/// use redis_atomics::ComputeOptions;
///
/// let opts = ComputeOptions::new()
///     .ttl(Duration::from_secs(300))      // the value expires after 5 min
///     .lock_ttl(Duration::from_secs(5))   // a dead holder blocks others ≤ 5 s
///     .early_refresh(1.0);                // XFetch with β = 1
/// assert!(opts.validate().is_ok());
/// assert!(ComputeOptions::new().ttl(Duration::ZERO).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ComputeOptions {
    pub(crate) ttl: Option<Duration>,
    pub(crate) lock_ttl: Duration,
    pub(crate) auto_extend: bool,
    pub(crate) format: Format,
    pub(crate) early_refresh: Option<f64>,
    pub(crate) single_flight: bool,
    pub(crate) lock: bool,
    pub(crate) max_poll_interval: Duration,
    pub(crate) max_wait: Option<Duration>,
}

impl Default for ComputeOptions {
    fn default() -> Self {
        ComputeOptions {
            ttl: None,
            lock_ttl: Duration::from_secs(10),
            auto_extend: true,
            format: Format::Json,
            early_refresh: None,
            single_flight: true,
            lock: true,
            max_poll_interval: Duration::from_millis(5),
            max_wait: None,
        }
    }
}

impl ComputeOptions {
    /// The defaults: no expiry, a 10 s lock extended while computing, JSON,
    /// no early refresh, single-flight and the cross-process lock on.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long the stored value lives. Defaults to no expiry.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// How long the compute lock lives without extension: the longest time
    /// other callers wait for a holder that died. Defaults to 10 s.
    #[must_use]
    pub fn lock_ttl(mut self, lock_ttl: Duration) -> Self {
        self.lock_ttl = lock_ttl;
        self
    }

    /// Reset the lock's TTL every third of `lock_ttl` while computing, so a
    /// computation longer than `lock_ttl` keeps its lock while its process
    /// lives. Defaults to true.
    #[must_use]
    pub fn auto_extend(mut self, auto_extend: bool) -> Self {
        self.auto_extend = auto_extend;
        self
    }

    /// How values are stored: [`Format::Json`], or [`Format::Raw`] bytes
    /// (`T` must serialize as a string or bytes, e.g. `String` or
    /// `Vec<u8>`; anything else is a serialization error). Defaults to
    /// [`Format::Json`].
    #[must_use]
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// The Python `RedisService` spelling of [`ComputeOptions::format`]:
    /// `true` is [`Format::Json`], `false` is [`Format::Raw`].
    #[must_use]
    pub fn serialize_json(self, json: bool) -> Self {
        self.format(if json { Format::Json } else { Format::Raw })
    }

    /// Recompute a value before it expires with a probability that rises as
    /// expiry nears (XFetch: recompute when `now − δ·β·ln(rand) ≥ expiry`, δ
    /// the last measured compute time, stored next to the value). `beta` > 1
    /// refreshes earlier; 1.0 is the paper's optimum. One caller refreshes
    /// (under the lock) while the others keep reading the current value.
    /// Needs a `ttl`. Defaults to off.
    #[must_use]
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.early_refresh = Some(beta);
        self
    }

    /// Share one Redis round trip and one computation between concurrent
    /// calls for the same key in this process. Defaults to true.
    #[must_use]
    pub fn single_flight(mut self, single_flight: bool) -> Self {
        self.single_flight = single_flight;
        self
    }

    /// One caller computes a missing value while the others wait for it
    /// (thundering-herd protection): across processes through the lease,
    /// within this one through [`single_flight`](Self::single_flight). When
    /// false, every miss computes at once (both are off); the caller that
    /// got the lease stores its value, the others return theirs without
    /// storing. Call `single_flight(true)` after it to share computations
    /// within a process only. Defaults to true.
    #[must_use]
    pub fn prevent_thundering_herd(mut self, on: bool) -> Self {
        self.lock = on;
        self.single_flight = on;
        self
    }

    /// The longest pause between two polls of a waiter (backoff with jitter
    /// starts at 2 ms and doubles; it never exceeds the lock's remaining
    /// PTTL either). Defaults to 5 ms: only one caller per process and key
    /// polls (single-flight), the others wait for it in memory.
    #[must_use]
    pub fn max_poll_interval(mut self, interval: Duration) -> Self {
        self.max_poll_interval = interval;
        self
    }

    /// The longest a caller waits for another holder's computation, in
    /// another process or in this one (single-flight); after that it
    /// computes for itself and returns its value without storing it (the
    /// holder's lease still guards the key). Bounds the wait when a holder
    /// hangs while its process lives (with `auto_extend` its lease never
    /// expires). Defaults to none: wait while the lease is held (a lock key
    /// the library did not write is waited on for one `lock_ttl`).
    #[must_use]
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }

    /// Rejects a zero TTL or lock TTL, one above
    /// [`MAX_TTL_MS`](crate::core::commands::MAX_TTL_MS), a zero poll interval and
    /// a β that is not a positive finite number. The error names the bound.
    pub fn validate(&self) -> Result<()> {
        if let Some(ttl) = self.ttl {
            ttl_millis(ttl).map_err(|e| Error::validation(format!("ttl: {}", e.message())))?;
        }
        ttl_millis(self.lock_ttl)
            .map_err(|e| Error::validation(format!("lock_ttl: {}", e.message())))?;
        if self.max_poll_interval.is_zero() {
            return Err(Error::validation(
                "max_poll_interval must be greater than zero",
            ));
        }
        if let Some(beta) = self.early_refresh {
            if !(beta.is_finite() && beta > 0.0) {
                return Err(Error::validation(format!(
                    "early_refresh beta must be a positive number, got {beta}"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn ttl_ms(&self) -> u64 {
        self.ttl.and_then(|t| ttl_millis(t).ok()).unwrap_or(0)
    }

    pub(crate) fn lock_ttl_ms(&self) -> u64 {
        ttl_millis(self.lock_ttl).unwrap_or(1)
    }
}

/// The error of [`try_get_or_compute`](crate::RedisService::try_get_or_compute):
/// Redis failed (and the failure could not be degraded around), or the
/// computation returned an error (which is never cached).
#[derive(Debug)]
#[non_exhaustive]
pub enum ComputeError<E> {
    /// A Redis or encoding error.
    Redis(Error),
    /// The computation's own error.
    Compute(E),
}

impl<E> ComputeError<E> {
    /// The computation's error, if that is what this is.
    pub fn into_compute(self) -> Option<E> {
        match self {
            ComputeError::Compute(e) => Some(e),
            ComputeError::Redis(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for ComputeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComputeError::Redis(e) => e.fmt(f),
            ComputeError::Compute(e) => write!(f, "computation failed: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ComputeError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ComputeError::Redis(e) => Some(e),
            ComputeError::Compute(e) => Some(e),
        }
    }
}

impl<E> From<Error> for ComputeError<E> {
    fn from(err: Error) -> Self {
        ComputeError::Redis(err)
    }
}
