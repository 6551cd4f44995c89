//! Timing decisions: when a hot value is refreshed early (XFetch) and how
//! long a waiter pauses between polls.

use std::time::Duration;

/// XFetch: recompute when `−δ·β·ln(u) ≥ remaining`, u uniform in (0, 1].
pub(super) fn should_refresh(beta: Option<f64>, pttl_ms: i64, delta_ms: u64) -> bool {
    let Some(beta) = beta else { return false };
    if pttl_ms <= 0 || delta_ms == 0 {
        return false;
    }
    let u = 1.0 - rand::random::<f64>();
    -(delta_ms as f64) * beta * u.ln() >= pttl_ms as f64
}

/// The pause before poll `n` (1-based): 2 ms doubling up to `max`, minus up
/// to half at random, never past the lock's remaining PTTL.
pub(super) fn poll_delay(n: u32, max: Duration, lock_pttl_ms: i64) -> Duration {
    let base = Duration::from_millis(2)
        .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(16)))
        .min(max);
    let jittered = base.mul_f64(1.0 - 0.5 * rand::random::<f64>());
    let pttl = Duration::from_millis(u64::try_from(lock_pttl_ms.max(1)).unwrap_or(1));
    jittered.min(pttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_delay_is_bounded_by_max_and_pttl() {
        let max = Duration::from_millis(10);
        for n in 1..40 {
            let d = poll_delay(n, max, 1_000);
            assert!(d <= max && d >= Duration::from_millis(1), "{d:?}");
            assert!(poll_delay(n, max, 3) <= Duration::from_millis(3));
        }
        assert!(poll_delay(1, max, 1_000) <= Duration::from_millis(2));
    }

    #[test]
    fn xfetch_probability_rises_near_expiry() {
        assert!(!should_refresh(None, 10, 100));
        assert!(!should_refresh(Some(1.0), -1, 100));
        let count = |pttl| {
            (0..2000)
                .filter(|_| should_refresh(Some(1.0), pttl, 100))
                .count()
        };
        let (far, near) = (count(1_000), count(10));
        // P = exp(-pttl/δ): e^-10 ≈ 0 far away, e^-0.1 ≈ 0.9 near expiry.
        assert!(far < 10, "{far}");
        assert!(near > 1_600, "{near}");
    }
}
