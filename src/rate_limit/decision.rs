//! [`Decision`]: the outcome of a check, as data.

use std::time::Duration;

use super::quota::Quota;
use crate::error::{Error, Result};

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
    pub(crate) fn never(quotas: &[Quota], index: usize) -> Self {
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
