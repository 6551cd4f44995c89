//! The compute lease: the right to store one computed value.
//!
//! A lease is a key (`keys::lock_key`, same slot as the value) holding a
//! token `ra:lease:<128 random bits, hex>`, with a TTL. It is taken by
//! `get_or_lock.lua` on a miss (or `try_lock.lua` for an early refresh),
//! kept alive while computing (`extend_lock.lua`, with `auto_extend`), and
//! spent by `set_and_unlock.lua`, which stores **only while the token is
//! still there**. Invalidation (`invalidate.lua`, `set_value.lua`) deletes
//! the lease key, which revokes it. So a store is fenced: a holder whose
//! lease expired, was taken over or was revoked never stores.
//!
//! Every release and extension compares the token, so a holder never
//! deletes or prolongs another holder's lease, and a key of that name that
//! the library did not write (no `ra:lease:` prefix) is never touched.
//! [`Lease`] releases itself when dropped armed (a cancelled call), from a
//! spawned task.

use std::future::Future;
use std::time::Duration;

use crate::core::error::Result;
use crate::core::retry::Idempotency;
use crate::core::script_call::ScriptCall;
use crate::core::scripts;
use crate::core::service::RedisService;

/// The prefix of every lease token (and so of every lock value the library
/// writes); the scripts treat any other value as foreign.
pub(crate) const TOKEN_PREFIX: &str = "ra:lease:";

/// A fresh random lease token.
pub(crate) fn new_token() -> String {
    format!("{TOKEN_PREFIX}{:032x}", rand::random::<u128>())
}

/// A lease this call may hold: released on [`Lease::release`], or on drop
/// unless [`Lease::disarm`]ed (spent by a store, or never taken).
pub(crate) struct Lease {
    service: RedisService,
    lock_key: String,
    token: String,
    armed: bool,
}

impl Lease {
    /// A lease about to be asked for: armed, so that a call dropped while
    /// the request is in flight still releases what it may have taken.
    pub(crate) fn new(service: &RedisService, lock_key: String) -> Self {
        Lease {
            service: service.clone(),
            lock_key,
            token: new_token(),
            armed: true,
        }
    }

    pub(crate) fn lock_key(&self) -> &str {
        &self.lock_key
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Nothing to release (not taken, or spent by a store).
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }

    /// Releases the lease now if it still holds our token.
    pub(crate) async fn release(mut self) {
        self.armed = false;
        if let Err(err) = unlock(&self.service, &self.lock_key, &self.token).await {
            tracing::warn!(lock = %self.lock_key, error = %err, "cannot release compute lease; it will expire");
        }
    }

    /// Resets the lease's TTL if it still holds our token; `false` if lost.
    async fn extend(&self, ttl_ms: u64) -> Result<bool> {
        let call = ScriptCall::new(&scripts::EXTEND_LOCK)
            .key(self.lock_key.as_str())
            .arg(self.token.as_str())
            .arg(ttl_ms);
        let n: u64 = self
            .service
            .run_script(&call, Idempotency::Idempotent)
            .await?;
        Ok(n == 1)
    }

    /// Runs `work` while holding the lease; with `auto_extend`, its TTL is
    /// reset every third of `ttl_ms` until `work` finishes (or the lease is
    /// found lost: revoked, expired or taken over, which is logged).
    pub(crate) async fn hold_while<F: Future>(
        &self,
        ttl_ms: u64,
        auto_extend: bool,
        work: F,
    ) -> F::Output {
        if !auto_extend {
            return work.await;
        }
        let period = Duration::from_millis((ttl_ms / 3).max(1));
        let keep_alive = async {
            loop {
                tokio::time::sleep(period).await;
                match self.extend(ttl_ms).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::debug!(
                            lock = %self.lock_key,
                            "compute lease lost (revoked, expired or taken over) while computing"
                        );
                        std::future::pending::<()>().await;
                    }
                    Err(err) => {
                        tracing::warn!(lock = %self.lock_key, error = %err, "cannot extend compute lease");
                    }
                }
            }
        };
        tokio::pin!(work);
        tokio::pin!(keep_alive);
        tokio::select! {
            biased;
            out = &mut work => out,
            () = &mut keep_alive => work.await,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Cancelled (or a panic unwound through us): release from a task.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(lock = %self.lock_key, "no runtime to release the compute lease; it will expire");
            return;
        };
        let service = self.service.clone();
        let lock_key = std::mem::take(&mut self.lock_key);
        let token = std::mem::take(&mut self.token);
        runtime.spawn(async move {
            if let Err(err) = unlock(&service, &lock_key, &token).await {
                tracing::warn!(lock = %lock_key, error = %err, "cannot release compute lease; it will expire");
            }
        });
    }
}

async fn unlock(service: &RedisService, lock_key: &str, token: &str) -> Result<bool> {
    let call = ScriptCall::new(&scripts::UNLOCK).key(lock_key).arg(token);
    let n: u64 = service.run_script(&call, Idempotency::Idempotent).await?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_recognisable_and_distinct() {
        let (a, b) = (new_token(), new_token());
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 32);
        assert_ne!(a, b);
    }
}
