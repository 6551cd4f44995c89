//! Counters of the get-or-compute and cache paths, per service: read them
//! with [`RedisService::cache_stats`](crate::RedisService::cache_stats).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the counters of [`get_or_compute`](crate::RedisService::get_or_compute)
/// and the cache wrapper, since the service was created (shared by all its
/// clones and namespace views).
///
/// ```no_run
/// # async fn demo(service: redis_atomics::RedisService) {
/// let stats = service.cache_stats();
/// println!("hit ratio {:.2}", stats.hits as f64 / (stats.hits + stats.misses).max(1) as f64);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls answered by a value found in Redis.
    pub hits: u64,
    /// Calls that found no value in Redis (they computed or waited).
    pub misses: u64,
    /// Runs of the compute function (including degraded runs and early refreshes).
    pub computations: u64,
    /// Calls that waited for another holder's lock at least once.
    pub lock_waits: u64,
    /// Calls answered by another call of the same process (single-flight).
    pub coalesced: u64,
    /// Recomputations of a hot value before it expired (XFetch).
    pub early_refreshes: u64,
    /// Calls served without Redis: it was unreachable or the circuit breaker was open.
    pub degraded: u64,
    /// Computed values not stored because their lease was revoked (an
    /// invalidation, a library `set`/`delete` of the key), expired or taken
    /// over while computing. The caller still got its value.
    pub revoked: u64,
    /// Calls that found a key the library did not write where a value's
    /// lock goes; it is waited on (up to `max_wait`, else `lock_ttl`) and
    /// never changed.
    pub foreign_locks: u64,
    /// Calls that stopped waiting at `max_wait` (or at `lock_ttl` for a
    /// foreign lock key) and computed without storing.
    pub wait_timeouts: u64,
    /// Redis or encoding errors that are not unavailability (WRONGTYPE, a
    /// script or decode error, …): the cache wrapper's `call` logs them at
    /// error level, counts them here and returns the function's value.
    pub errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    computations: AtomicU64,
    lock_waits: AtomicU64,
    coalesced: AtomicU64,
    early_refreshes: AtomicU64,
    degraded: AtomicU64,
    revoked: AtomicU64,
    foreign_locks: AtomicU64,
    wait_timeouts: AtomicU64,
    errors: AtomicU64,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stat {
    Hit,
    Miss,
    Computation,
    LockWait,
    Coalesced,
    EarlyRefresh,
    Degraded,
    Revoked,
    ForeignLock,
    WaitTimeout,
    Error,
}

impl Counters {
    pub(crate) fn bump(&self, stat: Stat) {
        let counter = match stat {
            Stat::Hit => &self.hits,
            Stat::Miss => &self.misses,
            Stat::Computation => &self.computations,
            Stat::LockWait => &self.lock_waits,
            Stat::Coalesced => &self.coalesced,
            Stat::EarlyRefresh => &self.early_refreshes,
            Stat::Degraded => &self.degraded,
            Stat::Revoked => &self.revoked,
            Stat::ForeignLock => &self.foreign_locks,
            Stat::WaitTimeout => &self.wait_timeouts,
            Stat::Error => &self.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits: get(&self.hits),
            misses: get(&self.misses),
            computations: get(&self.computations),
            lock_waits: get(&self.lock_waits),
            coalesced: get(&self.coalesced),
            early_refreshes: get(&self.early_refreshes),
            degraded: get(&self.degraded),
            revoked: get(&self.revoked),
            foreign_locks: get(&self.foreign_locks),
            wait_timeouts: get(&self.wait_timeouts),
            errors: get(&self.errors),
        }
    }
}
