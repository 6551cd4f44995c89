//! [`Decision`]: the outcome of a check, as data.

use std::time::Duration;

use super::quota::Quota;
use crate::core::error::{Error, Result};

/// The outcome of a check: a refusal is data, not an error.
///
/// With several quotas, the summary fields describe the binding one:
/// `remaining` is the smallest, `reset_after` the longest, `retry_after` the
/// longest wait among the quotas that deny; [`Decision::limits`] has each.
///
/// ```no_run
/// # async fn demo(limiter: redis_atomics::rate_limit::RateLimiter) -> redis_atomics::Result<()> {
/// let d = limiter.check_n("tenant-7", 20).await?;
/// match (d.allowed, d.never, d.retry_after) {
///     (true, _, _) => println!("ok, {} left", d.remaining),
///     (false, true, _) => println!("20 can never pass: the limit is {}", d.limit),
///     (false, false, Some(wait)) => println!("not yet, retry in {wait:?}"),
///     (false, false, None) => unreachable!("a denial that is not `never` has a retry_after"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// Whether the request passed (and, for a check, was counted in every quota).
    pub allowed: bool,
    /// The cost is larger than a quota's limit (its burst for GCRA): it can
    /// never pass, however long the caller waits. Decided without a round
    /// trip: then `remaining` and `reset_after` are 0 (unknown), and
    /// [`RateLimiter::peek`](super::RateLimiter::peek) tells the current state.
    pub never: bool,
    /// The limit of the binding quota: the one that denied, else the one with
    /// the fewest units left.
    pub limit: u32,
    /// Units left: after this request when allowed, now when denied (so a
    /// smaller cost may still fit). The smallest over the quotas.
    pub remaining: u64,
    /// When denied (and not `never`): how long until the same cost would
    /// pass, if nobody else consumes meanwhile (rounded up to the millisecond).
    /// `None` when allowed or `never`.
    pub retry_after: Option<Duration>,
    /// How long until the quotas are fully replenished (the longest over the
    /// quotas; 0 when nothing is counted).
    pub reset_after: Duration,
    /// The index (in the order the quotas were added) of the quota that
    /// denied: the first that can never fit, else the one with the longest
    /// wait. `None` when allowed.
    pub denied_by: Option<usize>,
    /// Each quota's own numbers, in the order the quotas were added.
    pub limits: Vec<LimitDecision>,
}

/// One quota's part of a [`Decision`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitDecision {
    /// The quota.
    pub quota: Quota,
    /// Units left in this quota (after the request when allowed, now when denied).
    pub remaining: u64,
    /// `Some(wait)` when this quota alone would deny the cost now; `None`
    /// when it fits or can never fit.
    pub retry_after: Option<Duration>,
    /// The cost exceeds this quota's limit (or burst).
    pub never: bool,
    /// How long until this quota is fully replenished (its key's TTL).
    pub reset_after: Duration,
}

impl Decision {
    /// HTTP response headers for this decision: `RateLimit-Limit`,
    /// `RateLimit-Remaining`, `RateLimit-Reset` (seconds until fully
    /// replenished, rounded up) and, when denied and not `never`,
    /// `Retry-After` (seconds, rounded up, at least 1).
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
            ("RateLimit-Limit", self.limit.to_string()),
            ("RateLimit-Remaining", self.remaining.to_string()),
            ("RateLimit-Reset", secs(self.reset_after).to_string()),
        ];
        if let Some(wait) = self.retry_after {
            headers.push(("Retry-After", secs(wait).max(1).to_string()));
        }
        headers
    }

    /// Builds a decision from a script reply: `{allowed, never, denied_by,
    /// then per quota: remaining, retry_after_ms (-1 never), reset_after_ms}`.
    pub(crate) fn from_reply(reply: &[i64], quotas: &[Quota], key: &str) -> Result<Self> {
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
        let allowed = reply[0] == 1;
        let denied_by = match usize::try_from(reply[2]) {
            Ok(0) => None,
            Ok(i) if i <= quotas.len() => Some(i - 1),
            _ => return Err(bad()),
        };
        if allowed == denied_by.is_some() {
            return Err(bad());
        }
        Ok(Self::summarize(allowed, reply[1] == 1, denied_by, limits))
    }

    /// The "never" decision made locally: `cost` exceeds quota `index`.
    pub(crate) fn cannot_fit(quotas: &[Quota], index: usize) -> Self {
        let limits = quotas
            .iter()
            .enumerate()
            .map(|(i, quota)| LimitDecision {
                quota: *quota,
                remaining: 0,
                retry_after: None,
                never: i == index,
                reset_after: Duration::ZERO,
            })
            .collect();
        Self::summarize(false, true, Some(index), limits)
    }

    fn summarize(
        allowed: bool,
        never: bool,
        denied_by: Option<usize>,
        limits: Vec<LimitDecision>,
    ) -> Self {
        let binding = denied_by
            .or_else(|| {
                limits
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, l)| l.remaining)
                    .map(|(i, _)| i)
            })
            .and_then(|i| limits.get(i));
        Decision {
            allowed,
            never,
            limit: binding.map_or(0, |l| l.quota.limit().get()),
            remaining: limits.iter().map(|l| l.remaining).min().unwrap_or(0),
            retry_after: if allowed || never {
                None
            } else {
                limits.iter().filter_map(|l| l.retry_after).max()
            },
            reset_after: limits
                .iter()
                .map(|l| l.reset_after)
                .max()
                .unwrap_or_default(),
            denied_by,
            limits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn quotas() -> Vec<Quota> {
        let nz = |n| NonZeroU32::new(n).unwrap();
        vec![Quota::per_second(nz(10)), Quota::per_hour(nz(100))]
    }

    #[test]
    fn a_denial_summarizes_the_binding_quota() {
        // denied by quota 1: quota 0 fits (7 left), quota 1 waits 2.5 s.
        let d = Decision::from_reply(&[0, 0, 2, 7, 0, 400, 0, 2500, 3_600_000], &quotas(), "k")
            .unwrap();
        assert_eq!(
            (d.allowed, d.never, d.denied_by, d.limit),
            (false, false, Some(1), 100)
        );
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after, Some(Duration::from_millis(2500)));
        assert_eq!(d.reset_after, Duration::from_secs(3600));
        assert_eq!(d.limits[0].retry_after, None);
        let h = d.http_headers();
        assert_eq!(h[0], ("RateLimit-Limit", "100".to_string()));
        assert_eq!(h[3], ("Retry-After", "3".to_string()));
    }

    #[test]
    fn an_allowed_reply_and_malformed_ones() {
        let d =
            Decision::from_reply(&[1, 0, 0, 9, 0, 1000, 99, 0, 3_600_000], &quotas(), "k").unwrap();
        assert_eq!(
            (d.allowed, d.limit, d.remaining, d.retry_after),
            (true, 10, 9, None)
        );
        assert_eq!(d.http_headers().len(), 3);
        for bad in [
            &[1, 0, 0][..],
            &[1, 0, 1, 9, 0, 1, 9, 0, 1],
            &[0, 0, 3, 9, 0, 1, 9, 0, 1],
        ] {
            let e = Decision::from_reply(bad, &quotas(), "k").unwrap_err();
            assert_eq!((e.kind(), e.key()), (crate::ErrorKind::Protocol, Some("k")));
        }
    }

    #[test]
    fn a_local_never() {
        let d = Decision::cannot_fit(&quotas(), 0);
        assert_eq!(
            (d.allowed, d.never, d.denied_by, d.retry_after),
            (false, true, Some(0), None)
        );
        assert!(d.limits[0].never && !d.limits[1].never);
        assert!(d.http_headers().iter().all(|(n, _)| *n != "Retry-After"));
    }
}
