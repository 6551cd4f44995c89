//! Atomic get-or-compute: [`RedisService::get_or_compute`] and
//! [`RedisService::try_get_or_compute`].
//!
//! A hit is one plain `GET`. On a miss, `get_or_lock.lua` answers one of:
//!
//! - **hit**: the stored value (decoded and returned; with
//!   [`ComputeOptions::early_refresh`] it may be recomputed first, XFetch);
//! - **compute**: this caller now holds the key's *lease* (a lock key with a
//!   random `ra:lease:` token and a TTL). It computes (extending the lease
//!   meanwhile when [`ComputeOptions::auto_extend`]), then
//!   `set_and_unlock.lua` stores the value **only if the lease is still
//!   ours** and releases it. A failed computation releases the lease at
//!   once; a dropped (cancelled) one releases it from a spawned task;
//! - **wait**: another caller holds the lease; back off with jitter (never
//!   past the lease's remaining PTTL, never past `max_wait`) and ask again;
//! - **foreign**: a key the library did not write sits where the lease
//!   goes; it is waited on like a lease (up to `max_wait`, else one
//!   `lock_ttl`) and never changed.
//!
//! The file `call.rs` is the whole protocol in one place.
//!
//! # Guarantees
//!
//! - **Invalidation wins.** `Cached::invalidate`, `Cached::invalidate_all`
//!   and the library's `set`, `set_json`, `set_model` and `delete` revoke
//!   the key's lease in the same script that deletes or writes the value.
//!   "After it returns" means: once the call has returned `Ok`, (a) no
//!   computation that started before the call was made stores its value,
//!   and (b) no `get_or_compute` or cached call *made* after it returns a
//!   value computed before it — single-flight followers in this process
//!   included (a follower only takes a leader's value when the leader's
//!   read or store was issued after the follower joined). The revoked
//!   computation's own caller gets its value ([`CacheStats::revoked`]).
//!   Values that never go through Redis (degraded calls, `skip_cache_if`)
//!   are shared with every concurrent caller of the flight.
//! - **Fencing.** A holder whose lease expired or was taken over does not
//!   store; it cannot overwrite a newer value.
//! - **Bounded waits.** `max_wait` bounds the wait on another process's
//!   lease and on a leader of this process alike; then the caller computes
//!   for itself and its value is returned, not stored
//!   ([`CacheStats::wait_timeouts`]).
//! - **Degrade only on unavailability.** When Redis is unreachable (refused,
//!   reset, timeouts, `CLUSTERDOWN`, `LOADING`, …) or the circuit breaker
//!   ([`crate::CircuitBreakerOptions`]) is open, the computation runs and its
//!   value is returned. Other errors (`WRONGTYPE`, script, decode,
//!   validation) are returned.
//!
//! `tests/history.rs` checks these under faults; `tests/compute/protocol.rs`
//! holds one adversarial test per interleaving.

mod call;
mod lease;
mod options;
mod raw;
pub(crate) mod singleflight;
mod state;
mod timing;

use std::convert::Infallible;
use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::core::breaker::CircuitState;
use crate::core::error::Result;
use crate::core::service::RedisService;
use crate::stats::{CacheStats, Stat};
use call::Call;
use singleflight::{Role, Waited};

pub use options::{ComputeError, ComputeOptions};
pub use raw::Format;
pub(crate) use state::Policy;

impl RedisService {
    /// The value of `key`, computed by `compute` when missing — exactly once
    /// across all processes while the lock holder lives.
    ///
    /// The key is namespaced like every other key. Values are JSON unless
    /// [`ComputeOptions::format`] is [`Format::Raw`]. When Redis is
    /// unreachable (or the circuit breaker is open) the computation runs,
    /// a warning is logged, and its value is returned. Other Redis errors
    /// are returned.
    ///
    /// ```no_run
    /// # async fn demo(service: redis_atomics::RedisService) -> redis_atomics::Result<()> {
    /// use std::time::Duration;
    /// use redis_atomics::ComputeOptions;
    ///
    /// let report: Vec<u32> = service
    ///     .get_or_compute(
    ///         "report:2024",
    ///         async { vec![1, 2, 3] /* something slow */ },
    ///         ComputeOptions::new().ttl(Duration::from_secs(600)),
    ///     )
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_or_compute<T, F>(
        &self,
        key: &str,
        compute: F,
        options: ComputeOptions,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = T>,
    {
        let fallible = async { Ok::<T, Infallible>(compute.await) };
        match self.try_get_or_compute(key, fallible, options).await {
            Ok(value) => Ok(value),
            Err(ComputeError::Redis(err)) => Err(err),
            Err(ComputeError::Compute(never)) => match never {},
        }
    }

    /// [`get_or_compute`](Self::get_or_compute) for a computation that may
    /// fail. An `Err` is never cached: the lock is released at once so that
    /// a waiter takes over, and the caller gets [`ComputeError::Compute`].
    ///
    /// ```no_run
    /// # async fn demo(service: redis_atomics::RedisService) {
    /// use redis_atomics::{ComputeError, ComputeOptions};
    ///
    /// let user: Result<String, ComputeError<std::io::Error>> = service
    ///     .try_get_or_compute("user:7:name", async { Ok("Ada".to_string()) }, ComputeOptions::new())
    ///     .await;
    /// # }
    /// ```
    pub async fn try_get_or_compute<T, E, F>(
        &self,
        key: &str,
        compute: F,
        options: ComputeOptions,
    ) -> Result<T, ComputeError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, E>>,
    {
        let full = self.key(key);
        options.validate().map_err(|e| e.with_key(&full))?;
        run(self, &full, &options, Policy::plain(), compute).await
    }

    /// The counters of the get-or-compute and cache paths.
    pub fn cache_stats(&self) -> CacheStats {
        self.compute_state().stats.snapshot()
    }

    /// Whether the circuit breaker lets calls through to Redis.
    pub fn circuit_state(&self) -> CircuitState {
        self.compute_state().breaker.state()
    }
}

/// The whole flow for a full key (namespace applied, options validated).
pub(crate) async fn run<T, E, F>(
    service: &RedisService,
    key: &str,
    opts: &ComputeOptions,
    policy: Policy<'_, T>,
    compute: F,
) -> Result<T, ComputeError<E>>
where
    T: Serialize + DeserializeOwned,
    F: Future<Output = Result<T, E>>,
{
    let state = service.compute_state();
    let format = opts.format;
    let deadline = opts.max_wait.map(|d| tokio::time::Instant::now() + d);
    let flight_key = match format {
        Format::Json => std::borrow::Cow::Borrowed(key),
        Format::Raw => std::borrow::Cow::Owned(format!("{key}\0raw")),
    };
    loop {
        // Join the flight first, so that while the breaker is open concurrent
        // calls of a key still share one computation.
        let leader = if opts.single_flight {
            match state.flights.join(&flight_key) {
                Role::Leader(leader) => Some(leader),
                Role::Follower(follower) => match follower.wait(deadline).await {
                    Waited::Value(bytes) => match format.decode(key, &bytes) {
                        Ok(value) => {
                            state.bump(Stat::Coalesced);
                            return Ok(value);
                        }
                        // Another call site stores another type under this
                        // key: go through Redis (which recomputes).
                        Err(_) => continue,
                    },
                    // The leader failed, was cancelled, or its value may
                    // predate an invalidation we must not miss.
                    Waited::Restart => continue,
                    Waited::TimedOut => {
                        // max_wait bounds the wait on a leader of this
                        // process as it bounds the wait on another's lease.
                        state.bump(Stat::WaitTimeout);
                        tracing::warn!(
                            key,
                            "max_wait elapsed waiting for this process's own computation; computing (not stored)"
                        );
                        state.bump(Stat::Computation);
                        return compute.await.map_err(ComputeError::Compute);
                    }
                },
            }
        } else {
            None
        };
        let call = Call {
            service,
            state: &state,
            key,
            opts,
            policy: &policy,
            format,
            leader,
            deadline,
        };
        return call.run(compute).await;
    }
}
