//! The steps of one get-or-compute call: the `get_or_lock` round trip,
//! computing under the lock and storing, early refresh, the lock-free
//! variant, and degradation when Redis fails.

use std::future::Future;
use std::time::Instant;

use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::timing::{poll_delay, should_refresh};
use super::unlocked::compute_and_set;
use super::{ComputeError, ComputeOptions, Flight, Policy};
use crate::error::{Error, Result};
use crate::keys;
use crate::lock::{LockGuard, new_token};
use crate::retry::Idempotency;
use crate::service::{RedisService, ScriptCall};
use crate::stats::Stat;

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

pub(super) async fn plain_get(service: &RedisService, key: &str) -> Result<Option<Vec<u8>>> {
    let cmd = redis::cmd("GET").arg(key).clone();
    service
        .query("get_or_compute", Some(key), Idempotency::Idempotent, &cmd)
        .await
}

/// The key holding the last compute time, in the value's slot.
fn delta_key(key: &str) -> String {
    keys::companion_key(key, "xf")
}

/// The lock-protected flow.
pub(super) async fn locked<T, E, F>(
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
    let waiting_since = Instant::now();
    loop {
        // Armed before the request: if this future is dropped while the
        // script is in flight, the lock it may have taken is released (a
        // compare-and-delete on our token, harmless if we never got it).
        let mut guard = LockGuard::new(service, lock_key.clone(), token.clone());
        // Without early refresh a hit needs no PTTL: a plain GET first keeps
        // the hit path as cheap as a raw GET; the script runs on a miss.
        let fast_get = polls == 0 && delta_key.is_none();
        let reply = if fast_get {
            match plain_get(service, key).await {
                Ok(Some(value)) => Ok(Reply::Hit {
                    value,
                    pttl: -1,
                    delta: 0,
                }),
                Ok(None) => {
                    get_or_lock(service, key, &lock_key, None, &token, opts.lock_ttl_ms()).await
                }
                Err(err) => Err(err),
            }
        } else {
            let delta_key = delta_key.as_deref();
            get_or_lock(
                service,
                key,
                &lock_key,
                delta_key,
                &token,
                opts.lock_ttl_ms(),
            )
            .await
        };
        let reply = match reply {
            Ok(reply) => {
                state.breaker.success();
                reply
            }
            Err(err) => {
                // A timed-out request may have taken the lock: release it
                // (the guard's drop); any other failure did not.
                if !err.is_timeout() {
                    guard.disarm();
                }
                drop(guard);
                return redis_failed(service, flight, policy, err, compute).await;
            }
        };
        if !matches!(reply, Reply::Compute) {
            guard.disarm();
        }
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
                return hold_and_store(service, flight, opts, policy, guard, compute).await;
            }
            Reply::Wait { pttl } => {
                if polls == 0 {
                    state.bump(Stat::Miss);
                    state.bump(Stat::LockWait);
                }
                if opts
                    .max_wait
                    .is_some_and(|max| waiting_since.elapsed() >= max)
                {
                    tracing::warn!(key, "max_wait elapsed; computing without the lock");
                    return compute_and_set(service, flight, opts, policy, compute).await;
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

/// A Redis error before computing: degrade (unreachable, or any error for
/// the cache wrapper) or return it.
pub(super) async fn redis_failed<T, E, F>(
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
    degraded(service, flight, compute, Some(&err)).await
}

/// Runs the computation without Redis.
/// `error` is the Redis failure, or `None` when the breaker is open (its
/// opening was logged once at warn; each call only at debug).
pub(super) async fn degraded<T, E, F>(
    service: &RedisService,
    flight: Flight<'_>,
    compute: F,
    error: Option<&Error>,
) -> Result<T, ComputeError<E>>
where
    T: Serialize + DeserializeOwned,
    F: Future<Output = Result<T, E>>,
{
    // With the breaker open nothing else in a call awaits: without this, a
    // loop of calls whose function does not await either would never give
    // the worker back. It yields only when the task's coop budget is spent.
    tokio::task::coop::consume_budget().await;
    let state = service.compute_state();
    state.bump(Stat::Degraded);
    state.bump(Stat::Computation);
    let key = flight.key;
    match error {
        Some(error) => {
            tracing::warn!(key, %error, "redis unavailable; computing without the cache");
        }
        None => tracing::debug!(key, "circuit breaker open; computing without the cache"),
    }
    let value = compute.await.map_err(ComputeError::Compute)?;
    flight.publish_value(&value);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_key_shares_the_slot() {
        for key in ["cache:user:1", "cache:{user:1}:x", "a}b"] {
            assert_eq!(
                keys::slot(delta_key(key).as_bytes()),
                keys::slot(key.as_bytes())
            );
        }
    }
}
