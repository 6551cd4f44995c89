//! The flow without the cross-process lock
//! (`prevent_thundering_herd(false)`): GET, else compute and SET.

use std::future::Future;

use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::flow::{plain_get, redis_failed};
use super::{ComputeError, ComputeOptions, Flight, Policy};
use crate::error::Result;
use crate::retry::Idempotency;
use crate::service::RedisService;
use crate::stats::Stat;

/// The flow without the cross-process lock: GET, else compute and SET.
pub(super) async fn unlocked<T, E, F>(
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
    match plain_get(service, key).await {
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
    compute_and_set(service, flight, opts, policy, compute).await
}

/// Computes without the lock and stores with a plain `SET` (last writer
/// wins): the lock-free variant, and a waiter whose `max_wait` ran out.
pub(super) async fn compute_and_set<T, E, F>(
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
