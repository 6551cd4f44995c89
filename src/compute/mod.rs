//! Atomic get-or-compute: [`RedisService::get_or_compute`] and
//! [`RedisService::try_get_or_compute`].
//!
//! One call is one `get_or_lock` script run, which answers one of:
//!
//! - **hit**: the stored value (decoded and returned; with
//!   [`ComputeOptions::early_refresh`] it may be recomputed first, XFetch);
//! - **compute**: this caller now holds the lock (a random token, a TTL). It
//!   runs the computation (extending the lock meanwhile when
//!   [`ComputeOptions::auto_extend`]), then `set_and_unlock` stores the
//!   value and deletes the lock only if the token still matches. A failed
//!   computation releases the lock at once; a dropped (cancelled) one
//!   releases it from a spawned task, so a waiter takes over promptly;
//! - **wait**: another caller holds the lock; back off with jitter (never past
//!   the lock's remaining PTTL) and ask again.
//!
//! Within one process, concurrent calls for the same key share a single
//! flight (one round trip, one computation). When Redis is unreachable the
//! computation runs anyway, a warning is logged and the value is returned;
//! the circuit breaker ([`crate::CircuitBreakerOptions`]) then skips Redis
//! altogether until its cool-down ends.

mod options;
mod raw;

use std::convert::Infallible;
use std::future::Future;
use std::time::{Duration, Instant};

use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::breaker::{Breaker, CircuitBreakerOptions, CircuitState};
use crate::error::{Error, Result};
use crate::keys;
use crate::lock::{LockGuard, new_token};
use crate::retry::Idempotency;
use crate::service::{RedisService, ScriptCall};
use crate::singleflight::{Flights, Leader, Role};
use crate::stats::{CacheStats, Counters, Stat};

pub use options::{ComputeError, ComputeOptions};
pub(crate) use raw::Format;

/// Per-service state of the compute paths: flights, breaker, counters.
#[derive(Debug)]
pub(crate) struct ComputeState {
    flights: Flights,
    breaker: Breaker,
    stats: Counters,
}

impl ComputeState {
    pub(crate) fn new(breaker: CircuitBreakerOptions) -> Self {
        ComputeState {
            flights: Flights::default(),
            breaker: Breaker::new(breaker),
            stats: Counters::default(),
        }
    }

    pub(crate) fn bump(&self, stat: Stat) {
        self.stats.bump(stat);
    }
}

/// How a caller wants failures handled (the cache wrapper degrades on every
/// Redis error; `get_or_compute` only on unreachable ones) and values skipped.
pub(crate) struct Policy<'a, T> {
    pub(crate) degrade_all: bool,
    pub(crate) skip_store: Option<&'a (dyn Fn(&T) -> bool + Send + Sync)>,
}

impl<T> Policy<'_, T> {
    fn plain() -> Self {
        Policy {
            degrade_all: false,
            skip_store: None,
        }
    }
}

impl RedisService {
    /// The value of `key`, computed by `compute` when missing — exactly once
    /// across all processes while the lock holder lives.
    ///
    /// The key is namespaced like every other key. Values are JSON unless
    /// [`ComputeOptions::serialize_json`] is false. When Redis is
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
    let format = Format::of(opts.serialize_json);
    loop {
        if !state.breaker.allow() {
            return degraded(service, key, format, None, compute, "circuit breaker open").await;
        }
        let leader = if opts.single_flight {
            let flight_key = match format {
                Format::Json => std::borrow::Cow::Borrowed(key),
                Format::Raw => std::borrow::Cow::Owned(format!("{key}\0raw")),
            };
            match state.flights.join(&flight_key) {
                Role::Leader(leader) => Some(leader),
                Role::Follower(follower) => match follower.wait().await {
                    Some(bytes) => {
                        state.bump(Stat::Coalesced);
                        return format.decode(key, &bytes).map_err(ComputeError::Redis);
                    }
                    None => continue, // the leader failed or was cancelled
                },
            }
        } else {
            None
        };
        let flight = Flight {
            leader,
            format,
            key,
        };
        return if opts.lock {
            locked(service, flight, opts, &policy, compute).await
        } else {
            unlocked(service, flight, opts, &policy, compute).await
        };
    }
}

/// The caller's place in the flow: key, format, and the flight to publish to.
struct Flight<'a> {
    leader: Option<Leader<'a>>,
    format: Format,
    key: &'a str,
}

impl Flight<'_> {
    fn publish(self, bytes: &[u8]) {
        if let Some(leader) = self.leader {
            leader.publish(bytes.into());
        }
    }

    fn publish_value<T: Serialize>(self, value: &T) {
        if self.leader.is_some() {
            if let Ok(bytes) = self.format.encode(self.key, value) {
                self.publish(&bytes);
            }
        }
    }
}

enum Reply {
    Hit {
        value: Vec<u8>,
        pttl: i64,
        delta: u64,
    },
    Compute,
    Wait {
        pttl: i64,
    },
}

async fn get_or_lock(
    service: &RedisService,
    key: &str,
    lock_key: &str,
    delta_key: Option<&str>,
    token: &str,
    lock_ttl_ms: u64,
) -> Result<Reply> {
    let mut call = ScriptCall::new("get_or_lock")?.key(key).key(lock_key);
    if let Some(delta_key) = delta_key {
        call = call.key(delta_key);
    }
    let call = call.arg(token).arg(lock_ttl_ms);
    let reply: Vec<Value> = service.run_script(&call, Idempotency::Idempotent).await?;
    let bad = || Error::protocol(format!("get_or_lock: unexpected reply {reply:?}")).with_key(key);
    let int = |v: Option<&Value>| match v {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    };
    let tag = match reply.first() {
        Some(Value::BulkString(b)) => b.as_slice(),
        _ => return Err(bad()),
    };
    match tag {
        b"hit" => {
            let value = match reply.get(1) {
                Some(Value::BulkString(b)) => b.clone(),
                _ => return Err(bad()),
            };
            let pttl = int(reply.get(2)).ok_or_else(bad)?;
            let delta = int(reply.get(3)).unwrap_or(0).max(0) as u64;
            Ok(Reply::Hit { value, pttl, delta })
        }
        b"compute" => Ok(Reply::Compute),
        b"wait" => Ok(Reply::Wait {
            pttl: int(reply.get(2)).ok_or_else(bad)?,
        }),
        _ => Err(bad()),
    }
}

/// The key holding the last compute time, in the value's slot.
fn delta_key(key: &str) -> String {
    if keys::hash_tag(key.as_bytes()).is_some() {
        format!("{key}:xf")
    } else {
        format!("{{{key}}}:xf")
    }
}

/// The lock-protected flow.
async fn locked<T, E, F>(
    service: &RedisService,
    flight: Flight<'_>,
    opts: &ComputeOptions,
    policy: &Policy<'_, T>,
    compute: F,
) -> Result<T, ComputeError<E>>
where
    T: Serialize + DeserializeOwned,
    F: Future<Output = Result<T, E>>,
{
    let state = service.compute_state();
    let key = flight.key;
    let format = flight.format;
    let token = new_token();
    let lock_key = keys::lock_key(key);
    let delta_key = opts
        .early_refresh
        .filter(|_| opts.ttl.is_some())
        .map(|_| delta_key(key));
    let mut polls: u32 = 0;
    loop {
        let reply = get_or_lock(
            service,
            key,
            &lock_key,
            delta_key.as_deref(),
            &token,
            opts.lock_ttl_ms(),
        )
        .await;
        let reply = match reply {
            Ok(reply) => {
                state.breaker.success();
                reply
            }
            Err(err) => return redis_failed(service, flight, policy, err, compute).await,
        };
        match reply {
            Reply::Hit { value, pttl, delta } => {
                if polls == 0 {
                    state.bump(Stat::Hit);
                }
                let current = match format.decode::<T>(key, &value) {
                    Ok(current) => current,
                    // An undecodable value (a changed type): recompute it.
                    Err(_) => return refresh(service, flight, opts, policy, None, compute).await,
                };
                if should_refresh(opts.early_refresh, pttl, delta) {
                    state.bump(Stat::EarlyRefresh);
                    return refresh(service, flight, opts, policy, Some(current), compute).await;
                }
                flight.publish(&value);
                return Ok(current);
            }
            Reply::Compute => {
                if polls == 0 {
                    state.bump(Stat::Miss);
                }
                let guard = LockGuard::new(service, lock_key, token);
                return hold_and_store(service, flight, opts, policy, guard, compute).await;
            }
            Reply::Wait { pttl } => {
                if polls == 0 {
                    state.bump(Stat::Miss);
                    state.bump(Stat::LockWait);
                }
                polls = polls.saturating_add(1);
                tokio::time::sleep(poll_delay(polls, opts.max_poll_interval, pttl)).await;
            }
        }
    }
}

/// Runs the computation under the lock, stores the value and unlocks.
async fn hold_and_store<T, E, F>(
    service: &RedisService,
    flight: Flight<'_>,
    opts: &ComputeOptions,
    policy: &Policy<'_, T>,
    mut guard: LockGuard,
    compute: F,
) -> Result<T, ComputeError<E>>
where
    T: Serialize + DeserializeOwned,
    F: Future<Output = Result<T, E>>,
{
    let state = service.compute_state();
    let key = flight.key;
    state.bump(Stat::Computation);
    let started = Instant::now();
    let outcome = guard
        .hold_while(opts.lock_ttl_ms(), opts.auto_extend, compute)
        .await;
    let value = match outcome {
        Ok(value) => value,
        Err(err) => {
            release(guard, key).await;
            return Err(ComputeError::Compute(err));
        }
    };
    if policy.skip_store.is_some_and(|skip| skip(&value)) {
        release(guard, key).await;
        flight.publish_value(&value);
        return Ok(value);
    }
    let bytes = match flight.format.encode(key, &value) {
        Ok(bytes) => bytes,
        Err(err) => {
            release(guard, key).await;
            if policy.degrade_all {
                tracing::warn!(key, error = %err, "value not cached");
                return Ok(value);
            }
            return Err(ComputeError::Redis(err));
        }
    };
    let elapsed = started.elapsed();
    let delta_ms = u64::try_from(elapsed.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    match store(service, key, opts, guard.token(), &bytes, delta_ms).await {
        Ok(()) => guard.disarm(),
        Err(err) => {
            if err.is_unreachable() {
                state.breaker.failure();
            }
            tracing::warn!(key, error = %err, "computed value could not be cached");
        }
    }
    flight.publish(&bytes);
    Ok(value)
}

async fn store(
    service: &RedisService,
    key: &str,
    opts: &ComputeOptions,
    token: &str,
    bytes: &[u8],
    delta_ms: u64,
) -> Result<()> {
    let mut call = ScriptCall::new("set_and_unlock")?
        .key(key)
        .key(keys::lock_key(key));
    let with_delta = opts.early_refresh.is_some() && opts.ttl.is_some();
    if with_delta {
        call = call.key(delta_key(key));
    }
    call = call.arg(token).arg(bytes).arg(opts.ttl_ms());
    if with_delta {
        call = call.arg(delta_ms);
    }
    let _: Vec<i64> = service.run_script(&call, Idempotency::Idempotent).await?;
    Ok(())
}

async fn release(guard: LockGuard, key: &str) {
    if let Err(err) = guard.release().await {
        tracing::warn!(key, error = %err, "cannot release compute lock; it will expire");
    }
}

/// Recomputes a value that exists (early refresh, or undecodable): takes
/// the lock if free and stores; otherwise someone else refreshes, and the
/// caller keeps `current` (or computes for itself when there is none).
async fn refresh<T, E, F>(
    service: &RedisService,
    flight: Flight<'_>,
    opts: &ComputeOptions,
    policy: &Policy<'_, T>,
    current: Option<T>,
    compute: F,
) -> Result<T, ComputeError<E>>
where
    T: Serialize + DeserializeOwned,
    F: Future<Output = Result<T, E>>,
{
    let key = flight.key;
    let lock_key = keys::lock_key(key);
    let token = new_token();
    let cmd = redis::cmd("SET")
        .arg(&lock_key)
        .arg(&token)
        .arg("NX")
        .arg("PX")
        .arg(opts.lock_ttl_ms())
        .clone();
    let taken: Result<Option<String>> = service
        .query(
            "get_or_compute",
            Some(&lock_key),
            Idempotency::NonIdempotent,
            &cmd,
        )
        .await;
    match (taken, current) {
        (Ok(Some(_)), current) => {
            let guard = LockGuard::new(service, lock_key, token);
            match hold_and_store(service, flight, opts, policy, guard, compute).await {
                Err(ComputeError::Compute(err)) => match current {
                    Some(current) => {
                        tracing::debug!(key, "early refresh failed; keeping the current value");
                        Ok(current)
                    }
                    None => Err(ComputeError::Compute(err)),
                },
                other => other,
            }
        }
        (_, Some(current)) => {
            flight.publish_value(&current);
            Ok(current)
        }
        (_, None) => {
            let state = service.compute_state();
            state.bump(Stat::Computation);
            let value = compute.await.map_err(ComputeError::Compute)?;
            flight.publish_value(&value);
            Ok(value)
        }
    }
}

/// The flow without the cross-process lock: GET, else compute and SET.
async fn unlocked<T, E, F>(
    service: &RedisService,
    flight: Flight<'_>,
    opts: &ComputeOptions,
    policy: &Policy<'_, T>,
    compute: F,
) -> Result<T, ComputeError<E>>
where
    T: Serialize + DeserializeOwned,
    F: Future<Output = Result<T, E>>,
{
    let state = service.compute_state();
    let key = flight.key;
    let get = redis::cmd("GET").arg(key).clone();
    let found: Result<Option<Vec<u8>>> = service
        .query("get_or_compute", Some(key), Idempotency::Idempotent, &get)
        .await;
    match found {
        Err(err) => return redis_failed(service, flight, policy, err, compute).await,
        Ok(Some(bytes)) => {
            state.breaker.success();
            if let Ok(value) = flight.format.decode::<T>(key, &bytes) {
                state.bump(Stat::Hit);
                flight.publish(&bytes);
                return Ok(value);
            }
        }
        Ok(None) => state.breaker.success(),
    }
    state.bump(Stat::Miss);
    state.bump(Stat::Computation);
    let value = compute.await.map_err(ComputeError::Compute)?;
    if policy.skip_store.is_some_and(|skip| skip(&value)) {
        flight.publish_value(&value);
        return Ok(value);
    }
    match flight.format.encode(key, &value) {
        Ok(bytes) => {
            let mut set = redis::cmd("SET");
            set.arg(key).arg(&bytes);
            if opts.ttl.is_some() {
                set.arg("PX").arg(opts.ttl_ms());
            }
            let stored: Result<Value> = service
                .query("get_or_compute", Some(key), Idempotency::Idempotent, &set)
                .await;
            if let Err(err) = stored {
                if err.is_unreachable() {
                    state.breaker.failure();
                }
                tracing::warn!(key, error = %err, "computed value could not be cached");
            }
            flight.publish(&bytes);
        }
        Err(err) if policy.degrade_all => tracing::warn!(key, error = %err, "value not cached"),
        Err(err) => return Err(ComputeError::Redis(err)),
    }
    Ok(value)
}

/// A Redis error before computing: degrade (unreachable, or any error for
/// the cache wrapper) or return it.
async fn redis_failed<T, E, F>(
    service: &RedisService,
    flight: Flight<'_>,
    policy: &Policy<'_, T>,
    err: Error,
    compute: F,
) -> Result<T, ComputeError<E>>
where
    T: Serialize + DeserializeOwned,
    F: Future<Output = Result<T, E>>,
{
    if err.is_unreachable() {
        service.compute_state().breaker.failure();
    } else if !policy.degrade_all {
        return Err(ComputeError::Redis(err));
    }
    let why = err.to_string();
    let (key, format) = (flight.key, flight.format);
    degraded(service, key, format, Some(flight), compute, &why).await
}

/// Runs the computation without Redis.
async fn degraded<T, E, F>(
    service: &RedisService,
    key: &str,
    _format: Format,
    flight: Option<Flight<'_>>,
    compute: F,
    why: &str,
) -> Result<T, ComputeError<E>>
where
    T: Serialize + DeserializeOwned,
    F: Future<Output = Result<T, E>>,
{
    let state = service.compute_state();
    state.bump(Stat::Degraded);
    state.bump(Stat::Computation);
    tracing::warn!(
        key,
        reason = why,
        "redis unavailable; computing without the cache"
    );
    let value = compute.await.map_err(ComputeError::Compute)?;
    if let Some(flight) = flight {
        flight.publish_value(&value);
    }
    Ok(value)
}

/// XFetch: recompute when `−δ·β·ln(u) ≥ remaining`, u uniform in (0, 1].
fn should_refresh(beta: Option<f64>, pttl_ms: i64, delta_ms: u64) -> bool {
    let Some(beta) = beta else { return false };
    if pttl_ms <= 0 || delta_ms == 0 {
        return false;
    }
    let u = 1.0 - rand::random::<f64>();
    -(delta_ms as f64) * beta * u.ln() >= pttl_ms as f64
}

/// The pause before poll `n` (1-based): 2 ms doubling up to `max`, minus up
/// to half at random, never past the lock's remaining PTTL.
fn poll_delay(n: u32, max: Duration, lock_pttl_ms: i64) -> Duration {
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

    #[test]
    fn delta_key_shares_the_slot() {
        for key in ["cache:user:1", "cache:{user:1}:x"] {
            assert_eq!(
                keys::slot(delta_key(key).as_bytes()),
                keys::slot(key.as_bytes())
            );
        }
    }
}
