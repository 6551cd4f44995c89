//! [`Decision`]: the outcome of a check, as data.

use std::time::Duration;

use super::quota::{Algorithm, Quota};
use crate::core::error::{Error, Result};

/// The outcome of a check: a refusal is data, not an error. One of three
/// states, each with only the numbers that mean something in it:
/// [`Allowed`](Decision::Allowed) (with what remains),
/// [`Denied`](Decision::Denied) (with when to retry), or
/// [`Never`](Decision::Never) (the cost is above a quota's limit: waiting
/// does not help).
///
/// ```no_run
/// # async fn demo(limiter: redis_atomics::rate_limit::RateLimiter) -> redis_atomics::Result<()> {
/// use redis_atomics::rate_limit::Decision;
///
/// match limiter.check_n("tenant-7", 20).await? {
///     Decision::Allowed { remaining, .. } => println!("ok, {remaining} left"),
///     Decision::Denied { retry_after, .. } => println!("not yet, retry in {retry_after:?}"),
///     Decision::Never { max_cost, .. } => println!("20 can never pass: at most {max_cost}"),
/// }
/// # Ok(()) }
/// ```
///
/// With several quotas, the summary fields describe the binding one:
/// `remaining` is the smallest, `reset_after` the longest, and a denial
/// names the quota with the longest wait (`denied_by`);
/// `limits` has each quota's own numbers. The accessors
/// ([`Decision::is_allowed`], [`Decision::remaining`],
/// [`Decision::retry_after`], …) read the same fields without a `match`.
///
/// The three states are the whole set (a request passes, waits, or cannot
/// pass), so the enum is not `#[non_exhaustive]` and a `match` needs no
/// catch-all arm; each variant is, so that fields can be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The request passed and was counted in every quota (a
    /// [`peek`](super::RateLimiter::peek): it would pass).
    #[non_exhaustive]
    Allowed {
        /// Units left after this request: the smallest over the quotas.
        remaining: u64,
        /// The limit of the quota with the fewest units left (the first of
        /// them on a tie).
        limit: u32,
        /// How long until every quota is fully replenished (the longest).
        reset_after: Duration,
        /// Each quota's own numbers, in the order the quotas were added.
        limits: Vec<LimitDecision>,
    },
    /// Not now: nothing was consumed (from any quota), and the same cost
    /// passes after `retry_after` if nobody else consumes meanwhile.
    #[non_exhaustive]
    Denied {
        /// How long until the same cost would pass: the wait of the quota
        /// `denied_by`, the longest of all, rounded up to the millisecond
        /// (never zero).
        retry_after: Duration,
        /// The index (in the order the quotas were added) of the quota with
        /// the longest exact wait. Waits are compared exactly, in whole
        /// microseconds before rounding to milliseconds (the scripts' clock
        /// ticks in microseconds); on an exact tie, the lowest index wins.
        denied_by: usize,
        /// Units left now, so a smaller cost may still fit: the smallest
        /// over the quotas.
        remaining: u64,
        /// The limit of quota `denied_by`.
        limit: u32,
        /// How long until every quota is fully replenished (the longest).
        reset_after: Duration,
        /// Each quota's own numbers, in the order the quotas were added.
        limits: Vec<LimitDecision>,
    },
    /// The cost is larger than a quota's limit (its burst for GCRA): it can
    /// never pass, however long the caller waits. Decided without a round
    /// trip, so the state of the quotas is not known here
    /// ([`RateLimiter::peek`](super::RateLimiter::peek) tells it); nothing
    /// was consumed.
    #[non_exhaustive]
    Never {
        /// The index of the first quota the cost exceeds. Every quota it
        /// exceeds is marked in `limits` ([`LimitDecision::never`]).
        denied_by: usize,
        /// The largest cost that can ever pass: the smallest limit (burst
        /// for GCRA) over the quotas.
        max_cost: u32,
        /// The limit of quota `denied_by`.
        limit: u32,
        /// Each quota: `never` is set on every quota the cost exceeds;
        /// `remaining` and `reset_after` are 0 (unknown without a round trip).
        limits: Vec<LimitDecision>,
    },
}

/// One quota's part of a [`Decision`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitDecision {
    /// The quota.
    pub quota: Quota,
    /// Units left in this quota (after the request when allowed, now when
    /// denied; 0, unknown, in a [`Decision::Never`]).
    pub remaining: u64,
    /// `Some(wait)` when this quota alone would deny the cost now (rounded
    /// up to the millisecond); `None` when it fits or can never fit.
    pub retry_after: Option<Duration>,
    /// The cost exceeds this quota's limit (or burst): set on every such
    /// quota, whichever path decided.
    pub never: bool,
    /// How long until this quota is fully replenished (its key's TTL; 0 in
    /// a [`Decision::Never`]).
    pub reset_after: Duration,
}

impl Decision {
    /// Whether the request passed (and, for a check, was counted).
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }

    /// Whether the cost can never pass ([`Decision::Never`]), as opposed to
    /// "not yet".
    pub fn is_never(&self) -> bool {
        matches!(self, Decision::Never { .. })
    }

    /// Units left: after this request when allowed, now when denied; 0 for
    /// [`Decision::Never`] (unknown).
    pub fn remaining(&self) -> u64 {
        match self {
            Decision::Allowed { remaining, .. } | Decision::Denied { remaining, .. } => *remaining,
            Decision::Never { .. } => 0,
        }
    }

    /// How long until the same cost would pass: `Some` only when
    /// [`Decision::Denied`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Decision::Denied { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// How long until the quotas are fully replenished (the longest over the
    /// quotas; 0 when nothing is counted, and for [`Decision::Never`]).
    pub fn reset_after(&self) -> Duration {
        match self {
            Decision::Allowed { reset_after, .. } | Decision::Denied { reset_after, .. } => {
                *reset_after
            }
            Decision::Never { .. } => Duration::ZERO,
        }
    }

    /// The limit of the binding quota: the one that denied, else the one
    /// with the fewest units left.
    pub fn limit(&self) -> u32 {
        match self {
            Decision::Allowed { limit, .. }
            | Decision::Denied { limit, .. }
            | Decision::Never { limit, .. } => *limit,
        }
    }

    /// The index of the quota that denied (see [`Decision::Denied`] and
    /// [`Decision::Never`]); `None` when allowed.
    pub fn denied_by(&self) -> Option<usize> {
        match self {
            Decision::Allowed { .. } => None,
            Decision::Denied { denied_by, .. } | Decision::Never { denied_by, .. } => {
                Some(*denied_by)
            }
        }
    }

    /// Each quota's own numbers, in the order the quotas were added.
    pub fn limits(&self) -> &[LimitDecision] {
        match self {
            Decision::Allowed { limits, .. }
            | Decision::Denied { limits, .. }
            | Decision::Never { limits, .. } => limits,
        }
    }

    /// HTTP response headers for this decision: `RateLimit-Limit`,
    /// `RateLimit-Remaining`, `RateLimit-Reset` (seconds until fully
    /// replenished, rounded up) and, when [`Decision::Denied`],
    /// `Retry-After` (seconds, rounded up, at least 1). A
    /// [`Decision::Never`] has no `Retry-After` (waiting does not help).
    ///
    /// ```no_run
    /// # async fn demo(limiter: redis_atomics::rate_limit::RateLimiter) -> redis_atomics::Result<()> {
    /// let d = limiter.check("ip:10.0.0.1").await?;
    /// for (name, value) in d.http_headers() {
    ///     println!("{name}: {value}"); // e.g. "RateLimit-Remaining: 41"
    /// }
    /// # Ok(()) }
    /// ```
    pub fn http_headers(&self) -> Vec<(&'static str, String)> {
        let secs = |d: Duration| d.as_millis().div_ceil(1000);
        let mut headers = vec![
            ("RateLimit-Limit", self.limit().to_string()),
            ("RateLimit-Remaining", self.remaining().to_string()),
            ("RateLimit-Reset", secs(self.reset_after()).to_string()),
        ];
        if let Some(wait) = self.retry_after() {
            headers.push(("Retry-After", secs(wait).max(1).to_string()));
        }
        headers
    }

    /// Builds a decision from a script reply: `{allowed, never, denied_by,
    /// then per quota: remaining, retry_after_ms (-1 never), reset_after_ms}`.
    pub(crate) fn from_reply(
        reply: &[i64],
        quotas: &[Quota],
        algorithm: Algorithm,
        key: &str,
    ) -> Result<Self> {
        let bad = || {
            Error::protocol(format!(
                "rate limit reply of unexpected shape: {reply:?} for {} quotas",
                quotas.len()
            ))
            .with_key(key)
        };
        if reply.len() != 3 + 3 * quotas.len() {
            return Err(bad());
        }
        let ms = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(0));
        let limits: Vec<LimitDecision> = quotas
            .iter()
            .zip(reply[3..].chunks_exact(3))
            .map(|(quota, r)| LimitDecision {
                quota: *quota,
                remaining: u64::try_from(r[0]).unwrap_or(0),
                retry_after: (r[1] > 0).then(|| ms(r[1])),
                never: r[1] < 0,
                reset_after: ms(r[2]),
            })
            .collect();
        let denied_by = match usize::try_from(reply[2]) {
            Ok(0) => None,
            Ok(i) if i <= quotas.len() => Some(i - 1),
            _ => return Err(bad()),
        };
        match (reply[0], reply[1], denied_by) {
            (1, 0, None) => Ok(Self::allowed(limits)),
            (0, 0, Some(i)) => match limits[i].retry_after {
                Some(retry_after) => Ok(Self::denied(i, retry_after, limits)),
                None => Err(bad()),
            },
            (0, 1, Some(i)) if limits[i].never => Ok(Self::never(quotas, algorithm, i, limits)),
            _ => Err(bad()),
        }
    }

    /// The "never" decision made without a round trip: `cost` exceeds at
    /// least one quota's limit (burst for GCRA). Like the scripts, it marks
    /// every quota the cost exceeds, and names the first.
    pub(crate) fn cannot_fit(quotas: &[Quota], algorithm: Algorithm, cost: u32) -> Option<Self> {
        let limits: Vec<LimitDecision> = quotas
            .iter()
            .map(|quota| LimitDecision {
                quota: *quota,
                remaining: 0,
                retry_after: None,
                never: cost > quota.max_cost(algorithm),
                reset_after: Duration::ZERO,
            })
            .collect();
        let first = limits.iter().position(|l| l.never)?;
        Some(Self::never(quotas, algorithm, first, limits))
    }

    fn allowed(limits: Vec<LimitDecision>) -> Self {
        let binding = limits
            .iter()
            .min_by_key(|l| l.remaining)
            .map_or(0, |l| l.quota.limit().get());
        Decision::Allowed {
            remaining: limits.iter().map(|l| l.remaining).min().unwrap_or(0),
            limit: binding,
            reset_after: max_reset(&limits),
            limits,
        }
    }

    fn denied(denied_by: usize, retry_after: Duration, limits: Vec<LimitDecision>) -> Self {
        Decision::Denied {
            retry_after,
            denied_by,
            remaining: limits.iter().map(|l| l.remaining).min().unwrap_or(0),
            limit: limits[denied_by].quota.limit().get(),
            reset_after: max_reset(&limits),
            limits,
        }
    }

    fn never(
        quotas: &[Quota],
        algorithm: Algorithm,
        denied_by: usize,
        limits: Vec<LimitDecision>,
    ) -> Self {
        Decision::Never {
            denied_by,
            max_cost: quotas
                .iter()
                .map(|q| q.max_cost(algorithm))
                .min()
                .unwrap_or(0),
            limit: limits[denied_by].quota.limit().get(),
            limits,
        }
    }
}

fn max_reset(limits: &[LimitDecision]) -> Duration {
    limits
        .iter()
        .map(|l| l.reset_after)
        .max()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn quotas() -> Vec<Quota> {
        let nz = |n| NonZeroU32::new(n).unwrap();
        vec![Quota::per_second(nz(10)), Quota::per_hour(nz(100))]
    }

    fn reply(r: &[i64]) -> Result<Decision> {
        Decision::from_reply(r, &quotas(), Algorithm::SlidingLog, "k")
    }

    #[test]
    fn a_denial_summarizes_the_binding_quota() {
        // denied by quota 1: quota 0 fits (7 left), quota 1 waits 2.5 s.
        let d = reply(&[0, 0, 2, 7, 0, 400, 0, 2500, 3_600_000]).unwrap();
        let Decision::Denied {
            retry_after,
            denied_by,
            remaining,
            limit,
            reset_after,
            ref limits,
        } = d
        else {
            panic!("{d:?}")
        };
        assert_eq!((denied_by, limit, remaining), (1, 100, 0));
        assert_eq!(retry_after, Duration::from_millis(2500));
        assert_eq!(reset_after, Duration::from_secs(3600));
        assert_eq!(limits[0].retry_after, None);
        assert_eq!(
            (d.is_allowed(), d.is_never(), d.retry_after(), d.denied_by()),
            (false, false, Some(retry_after), Some(1))
        );
        let h = d.http_headers();
        assert_eq!(h[0], ("RateLimit-Limit", "100".to_string()));
        assert_eq!(h[3], ("Retry-After", "3".to_string()));
    }

    #[test]
    fn an_allowed_reply_and_malformed_ones() {
        let d = reply(&[1, 0, 0, 9, 0, 1000, 99, 0, 3_600_000]).unwrap();
        assert!(matches!(
            d,
            Decision::Allowed {
                limit: 10,
                remaining: 9,
                ..
            }
        ));
        assert_eq!((d.retry_after(), d.denied_by()), (None, None));
        assert_eq!(d.http_headers().len(), 3);
        for bad in [
            &[1, 0, 0][..],
            &[1, 0, 1, 9, 0, 1, 9, 0, 1],
            &[0, 0, 3, 9, 0, 1, 9, 0, 1],
            // a denial without a wait on the quota that denied
            &[0, 0, 1, 9, 0, 1, 9, 0, 1],
            // "never" on a quota that is not marked so
            &[0, 1, 1, 9, 0, 1, 9, -1, 1],
            &[1, 1, 0, 9, 0, 1, 9, 0, 1],
        ] {
            let e = reply(bad).unwrap_err();
            assert_eq!((e.kind(), e.key()), (crate::ErrorKind::Protocol, Some("k")));
        }
    }

    #[test]
    fn a_local_never_marks_every_quota_the_cost_exceeds() {
        assert_eq!(Decision::cannot_fit(&quotas(), Algorithm::Gcra, 10), None);
        let d = Decision::cannot_fit(&quotas(), Algorithm::SlidingLog, 11).unwrap();
        assert!(matches!(
            d,
            Decision::Never {
                denied_by: 0,
                max_cost: 10,
                limit: 10,
                ..
            }
        ));
        assert!(d.limits()[0].never && !d.limits()[1].never);
        assert!(d.http_headers().iter().all(|(n, _)| *n != "Retry-After"));
        let d = Decision::cannot_fit(&quotas(), Algorithm::SlidingLog, 101).unwrap();
        assert_eq!(d.denied_by(), Some(0));
        assert!(d.limits().iter().all(|l| l.never), "{d:?}");
        // The same as a script reply that marks both.
        let from_script = reply(&[0, 1, 1, 0, -1, 0, 0, -1, 0]).unwrap();
        assert_eq!(from_script, d);
    }
}
