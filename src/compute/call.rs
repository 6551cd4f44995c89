//! One get-or-compute call, as a value: [`Call`] holds the key, the
//! options, the flight to publish to and the deadline, and its methods are
//! the steps of the protocol, in the order they run:
//!
//! 1. [`Call::lookup`]: a plain `GET` (the cheap hit), then on a miss
//!    `get_or_lock.lua`, which answers hit, compute (we hold the lease),
//!    wait (someone else does) or foreign (a key we did not write sits
//!    where the lease goes);
//! 2. [`Call::compute_and_store`]: compute while holding the lease (kept
//!    alive with `auto_extend`), then `set_and_unlock.lua` stores only if
//!    the lease is still ours — fenced against invalidation, expiry and
//!    takeover;
//! 3. [`Call::refresh`]: early refresh (XFetch) of a value that exists,
//!    under the same lease, taken by `try_lock.lua`;
//! 4. [`Call::uncached`]: compute without a lease and without storing —
//!    when waiting ran past `max_wait`, the lease key is foreign, or the
//!    herd lock is off and another caller holds the lease;
//! 5. [`Call::degraded`]: Redis is unreachable (or the breaker is open).

use std::future::Future;
use std::time::Instant;

use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::lease::Lease;
use super::options::{ComputeError, ComputeOptions};
use super::raw::Format;
use super::singleflight::Leader;
use super::state::{ComputeState, Policy};
use super::timing::{poll_delay, should_refresh};
use crate::core::error::{Error, Result};
use crate::core::keys;
use crate::core::retry::Idempotency;
use crate::core::script_call::ScriptCall;
use crate::core::scripts;
use crate::core::service::RedisService;
use crate::stats::Stat;

/// What `get_or_lock` (or the plain `GET`) found.
enum Found {
    Hit {
        value: Vec<u8>,
        pttl: i64,
        delta: u64,
    },
    Compute,
    Wait {
        pttl: i64,
    },
    Foreign {
        pttl: i64,
    },
}

/// One call of the flow for a full key (namespace applied, options valid).
pub(super) struct Call<'a, T> {
    pub(super) service: &'a RedisService,
    pub(super) state: &'a ComputeState,
    pub(super) key: &'a str,
    pub(super) opts: &'a ComputeOptions,
    pub(super) policy: &'a Policy<'a, T>,
    pub(super) format: Format,
    pub(super) leader: Option<Leader<'a>>,
    /// When waiting for other holders must end (`max_wait`).
    pub(super) deadline: Option<tokio::time::Instant>,
}

impl<T: Serialize + DeserializeOwned> Call<'_, T> {
    /// Runs the whole protocol.
    pub(super) async fn run<E, F>(mut self, compute: F) -> Result<T, ComputeError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        if !self.state.breaker.allow() {
            return self.degraded(compute, None).await;
        }
        let lock_key = keys::lock_key(self.key);
        let xf_key = self.with_delta().then(|| delta_key(self.key));
        let mut polls: u32 = 0;
        let mut foreign_logged = false;
        loop {
            // Armed before the request: if this call is dropped while the
            // script is in flight, the lease it may have taken is released
            // (a compare-and-delete on our token, harmless otherwise).
            let mut lease = Lease::new(self.service, lock_key.clone());
            let found = match self.lookup(polls, &lease, xf_key.as_deref()).await {
                Ok(found) => {
                    self.state.breaker.success();
                    found
                }
                Err(err) => {
                    // A timed-out request may have taken the lease: the
                    // drop releases it; any other failure did not take it.
                    if !err.is_timeout() {
                        lease.disarm();
                    }
                    drop(lease);
                    return self.redis_failed(err, compute).await;
                }
            };
            if !matches!(found, Found::Compute) {
                lease.disarm();
            }
            let first = polls == 0;
            match found {
                Found::Hit { value, pttl, delta } => {
                    if first {
                        self.state.bump(Stat::Hit);
                    }
                    let current = match self.format.decode::<T>(self.key, &value) {
                        Ok(current) => current,
                        // An undecodable value (a changed type): recompute it.
                        Err(_) => return self.refresh(None, compute).await,
                    };
                    if should_refresh(self.opts.early_refresh, pttl, delta) {
                        self.state.bump(Stat::EarlyRefresh);
                        return self.refresh(Some((current, value)), compute).await;
                    }
                    self.publish(&value);
                    return Ok(current);
                }
                Found::Compute => {
                    if first {
                        self.state.bump(Stat::Miss);
                    }
                    return self.compute_and_store(lease, compute).await;
                }
                Found::Wait { pttl } | Found::Foreign { pttl } => {
                    if first {
                        self.state.bump(Stat::Miss);
                        self.state.bump(Stat::LockWait);
                    }
                    if !self.opts.lock {
                        // No herd protection: compute at once; the lease
                        // holder's value is the one stored.
                        return self.uncached(compute).await;
                    }
                    let foreign = matches!(found, Found::Foreign { .. });
                    if foreign && !foreign_logged {
                        foreign_logged = true;
                        self.state.bump(Stat::ForeignLock);
                        tracing::warn!(
                            key = self.key,
                            lock = %lock_key,
                            "the lock key holds a value the library did not write; \
                             waiting for it to go (it is never changed)"
                        );
                    }
                    let now = tokio::time::Instant::now();
                    let deadline = match (self.deadline, foreign) {
                        (Some(deadline), _) => Some(deadline),
                        // Without max_wait, a foreign key is waited on
                        // for one lock_ttl at most.
                        (None, true) => {
                            let deadline = now + self.opts.lock_ttl;
                            self.deadline = Some(deadline);
                            Some(deadline)
                        }
                        (None, false) => None,
                    };
                    if deadline.is_some_and(|d| now >= d) {
                        self.state.bump(Stat::WaitTimeout);
                        tracing::warn!(
                            key = self.key,
                            "max_wait elapsed; computing without the lease (not stored)"
                        );
                        return self.uncached(compute).await;
                    }
                    polls = polls.saturating_add(1);
                    let mut pause = poll_delay(polls, self.opts.max_poll_interval, pttl);
                    if let Some(deadline) = deadline {
                        pause = pause.min(deadline - now);
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    fn with_delta(&self) -> bool {
        self.opts.early_refresh.is_some() && self.opts.ttl.is_some()
    }

    /// The read: a plain `GET` first when that is enough (no early refresh,
    /// first try), else — or on a miss — `get_or_lock`.
    async fn lookup(&mut self, polls: u32, lease: &Lease, xf_key: Option<&str>) -> Result<Found> {
        self.mark();
        if polls == 0 && xf_key.is_none() {
            let cmd = redis::cmd("GET").arg(self.key).clone();
            let value: Option<Vec<u8>> = self
                .service
                .query(
                    "get_or_compute",
                    Some(self.key),
                    Idempotency::Idempotent,
                    &cmd,
                )
                .await?;
            if let Some(value) = value {
                return Ok(Found::Hit {
                    value,
                    pttl: -1,
                    delta: 0,
                });
            }
            self.mark();
        }
        let mut call = ScriptCall::new(&scripts::GET_OR_LOCK)
            .key(self.key)
            .key(lease.lock_key());
        if let Some(xf_key) = xf_key {
            call = call.key(xf_key);
        }
        let call = call.arg(lease.token()).arg(self.opts.lock_ttl_ms());
        // Idempotent: a retry with the same token finds the lease ours.
        let reply: Vec<Value> = self
            .service
            .run_script(&call, Idempotency::Idempotent)
            .await?;
        parse_found(self.key, reply)
    }

    /// Computes while holding `lease`, stores if the lease is still ours.
    async fn compute_and_store<E, F>(
        mut self,
        mut lease: Lease,
        compute: F,
    ) -> Result<T, ComputeError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.state.bump(Stat::Computation);
        let started = Instant::now();
        let outcome = lease
            .hold_while(self.opts.lock_ttl_ms(), self.opts.auto_extend, compute)
            .await;
        let value = match outcome {
            Ok(value) => value,
            Err(err) => {
                lease.release().await;
                return Err(ComputeError::Compute(err));
            }
        };
        if self.policy.skip_store.is_some_and(|skip| skip(&value)) {
            lease.release().await;
            self.publish_value(&value);
            return Ok(value);
        }
        let bytes = match self.format.encode(self.key, &value) {
            Ok(bytes) => bytes,
            Err(err) => {
                lease.release().await;
                return self.not_cached(value, err);
            }
        };
        let delta_ms = u64::try_from(started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.mark();
        match self.store(&lease, &bytes, delta_ms).await {
            Ok(true) => {
                lease.disarm();
                self.publish(&bytes);
            }
            Ok(false) => {
                // Revoked (invalidated or overwritten), expired or taken
                // over: not stored, and not shared with callers that may
                // have come after the invalidation. Ours to return.
                lease.disarm();
                self.state.bump(Stat::Revoked);
                tracing::debug!(key = self.key, "lease revoked or lost; value not stored");
            }
            Err(err) => {
                // The drop of the armed lease releases it. Whether the
                // store ran is unknown, and the lease may have been revoked
                // meanwhile: not shared, followers start over.
                drop(lease);
                self.store_failed(&err);
            }
        }
        Ok(value)
    }

    /// `set_and_unlock`: `true` if stored.
    async fn store(&self, lease: &Lease, bytes: &[u8], delta_ms: u64) -> Result<bool> {
        let mut call = ScriptCall::new(&scripts::SET_AND_UNLOCK)
            .key(self.key)
            .key(lease.lock_key());
        let with_delta = self.with_delta();
        if with_delta {
            call = call.key(delta_key(self.key));
        }
        call = call.arg(lease.token()).arg(bytes).arg(self.opts.ttl_ms());
        if with_delta {
            call = call.arg(delta_ms);
        }
        // Idempotent: once stored the lease is gone, so a re-sent store
        // does nothing (and answers 0).
        let reply: Vec<i64> = self
            .service
            .run_script(&call, Idempotency::Idempotent)
            .await?;
        Ok(reply.first() == Some(&1))
    }

    /// Recomputes a value that exists (early refresh, or undecodable): takes
    /// the lease if free and stores; otherwise someone else refreshes, and
    /// the caller keeps `current` (or computes for itself when there is none).
    async fn refresh<E, F>(
        self,
        current: Option<(T, Vec<u8>)>,
        compute: F,
    ) -> Result<T, ComputeError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        let mut lease = Lease::new(self.service, keys::lock_key(self.key));
        let taken = match try_lock(self.service, &lease, self.opts.lock_ttl_ms()).await {
            Ok(true) => true,
            Ok(false) => {
                lease.disarm();
                false
            }
            Err(err) => {
                // A timed-out request may have taken it: the drop releases
                // it. Any other failure did not.
                if !err.is_timeout() {
                    lease.disarm();
                }
                false
            }
        };
        if !taken {
            drop(lease);
            return match current {
                Some((current, bytes)) => {
                    self.publish(&bytes);
                    Ok(current)
                }
                None => self.uncached(compute).await,
            };
        }
        match current {
            None => self.compute_and_store(lease, compute).await,
            Some((current, _)) => match self.compute_and_store(lease, compute).await {
                Err(ComputeError::Compute(_)) => {
                    tracing::debug!("early refresh failed; keeping the current value");
                    Ok(current)
                }
                other => other,
            },
        }
    }

    /// Computes without a lease; the value is returned, not stored. Redis
    /// is reachable, so an invalidation may come while it runs: only
    /// followers that joined before the computation started share it.
    async fn uncached<E, F>(mut self, compute: F) -> Result<T, ComputeError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.state.bump(Stat::Computation);
        self.mark();
        let value = compute.await.map_err(ComputeError::Compute)?;
        if self.leader.as_ref().is_some_and(Leader::has_followers) {
            if let Ok(bytes) = self.format.encode(self.key, &value) {
                self.publish(&bytes);
            }
        }
        Ok(value)
    }

    /// A Redis error before computing: degrade when Redis is unreachable,
    /// else return it.
    pub(super) async fn redis_failed<E, F>(
        self,
        err: Error,
        compute: F,
    ) -> Result<T, ComputeError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        if !err.is_unreachable() {
            return Err(ComputeError::Redis(err));
        }
        self.state.breaker.failure();
        self.degraded(compute, Some(&err)).await
    }

    /// Runs the computation without Redis. `error` is the Redis failure, or
    /// `None` when the breaker is open (its opening was logged once at
    /// warn; each call only at debug).
    pub(super) async fn degraded<E, F>(
        self,
        compute: F,
        error: Option<&Error>,
    ) -> Result<T, ComputeError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        // With the breaker open nothing else in a call awaits: without this, a
        // loop of calls whose function does not await either would never give
        // the worker back. It yields only when the task's coop budget is spent.
        tokio::task::coop::consume_budget().await;
        self.state.bump(Stat::Degraded);
        self.state.bump(Stat::Computation);
        match error {
            Some(error) => {
                tracing::warn!(key = self.key, %error, "redis unavailable; computing without the cache");
            }
            None => {
                tracing::debug!(
                    key = self.key,
                    "circuit breaker open; computing without the cache"
                );
            }
        }
        let value = compute.await.map_err(ComputeError::Compute)?;
        self.publish_value(&value);
        Ok(value)
    }

    /// The value could not be encoded: the cache wrapper keeps it (logged
    /// and counted), `get_or_compute` returns the error.
    fn not_cached<E>(self, value: T, err: Error) -> Result<T, ComputeError<E>> {
        if self.policy.lenient {
            self.state.bump(Stat::Error);
            tracing::error!(key = self.key, error = %err, "value not cached");
            return Ok(value);
        }
        Err(ComputeError::Redis(err))
    }

    fn store_failed(&self, err: &Error) {
        if err.is_unreachable() {
            self.state.breaker.failure();
            tracing::warn!(key = self.key, error = %err, "computed value could not be cached");
        } else {
            self.state.bump(Stat::Error);
            tracing::error!(key = self.key, error = %err, "computed value could not be cached");
        }
    }

    /// Marks the flight: the operation whose result is published is issued now.
    fn mark(&mut self) {
        if let Some(leader) = self.leader.as_mut() {
            leader.mark();
        }
    }

    /// Shares a value read from or stored in Redis with the followers that
    /// joined before the last mark.
    fn publish(self, bytes: &[u8]) {
        if let Some(leader) = self.leader.filter(Leader::has_followers) {
            leader.publish(bytes.into());
        }
    }

    /// Shares a value that was computed but not stored because Redis was
    /// unavailable or the caller skips it, with every follower of this
    /// flight (no invalidation can be ordered against it).
    fn publish_value(mut self, value: &T) {
        if let Some(leader) = self.leader.as_mut().filter(|l| l.has_followers()) {
            leader.mark_all();
            if let Ok(bytes) = self.format.encode(self.key, value) {
                self.publish(&bytes);
            }
        }
    }
}

/// The key holding the last compute time, in the value's slot.
fn delta_key(key: &str) -> String {
    keys::companion_key(key, "xf")
}

/// `try_lock`: `true` when the lease is ours.
async fn try_lock(service: &RedisService, lease: &Lease, ttl_ms: u64) -> Result<bool> {
    let call = ScriptCall::new(&scripts::TRY_LOCK)
        .key(lease.lock_key())
        .arg(lease.token())
        .arg(ttl_ms);
    let n: i64 = service.run_script(&call, Idempotency::Idempotent).await?;
    Ok(n == 1)
}

fn parse_found(key: &str, reply: Vec<Value>) -> Result<Found> {
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
            Ok(Found::Hit { value, pttl, delta })
        }
        b"compute" => Ok(Found::Compute),
        b"wait" => Ok(Found::Wait {
            pttl: int(reply.get(2)).ok_or_else(bad)?,
        }),
        b"foreign" => Ok(Found::Foreign {
            pttl: int(reply.get(2)).ok_or_else(bad)?,
        }),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_key_shares_the_slot_and_prefix() {
        for key in ["cache:user:1", "cache:{user:1}:x", "a}b"] {
            let delta = delta_key(key);
            assert!(delta.starts_with(key));
            assert_eq!(keys::slot(delta.as_bytes()), keys::slot(key.as_bytes()));
        }
    }
}
