//! The compute lock held while one caller computes a value.
//!
//! A lock is a key (`keys::lock_key`, same slot as the value) holding a
//! random token, with a TTL. Every release and extension is a
//! compare-and-delete / compare-and-extend script on that token, so a holder
//! whose lock expired never deletes or prolongs the next holder's lock.
//! [`LockGuard`] releases the lock when the computation fails and, when its
//! future is dropped (cancelled), from a spawned task.

use std::future::Future;
use std::time::Duration;

use crate::error::Result;
use crate::retry::Idempotency;
use crate::service::{RedisService, ScriptCall};

/// A fresh random lock token (128 bits, hex).
pub(crate) fn new_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A held lock: released on [`LockGuard::release`], or on drop unless
/// [`LockGuard::disarm`]ed (the value was stored with `set_and_unlock`).
pub(crate) struct LockGuard {
    service: RedisService,
    lock_key: String,
    token: String,
    armed: bool,
}

impl LockGuard {
    pub(crate) fn new(service: &RedisService, lock_key: String, token: String) -> Self {
        LockGuard {
            service: service.clone(),
            lock_key,
            token,
            armed: true,
        }
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// The lock was released by other means (`set_and_unlock`).
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }

    /// Releases the lock now if it still holds our token; `true` if deleted.
    pub(crate) async fn release(mut self) -> Result<bool> {
        self.armed = false;
        unlock(&self.service, &self.lock_key, &self.token).await
    }

    /// Resets the lock's TTL if it still holds our token; `false` if lost.
    pub(crate) async fn extend(&self, ttl_ms: u64) -> Result<bool> {
        let call = ScriptCall::new("extend_lock")?
            .key(self.lock_key.as_str())
            .arg(self.token.as_str())
            .arg(ttl_ms);
        let n: u64 = self
            .service
            .run_script(&call, Idempotency::Idempotent)
            .await?;
        Ok(n == 1)
    }

    /// Runs `work` while holding the lock; with `auto_extend`, the lock's TTL
    /// is reset every third of `ttl_ms` until `work` finishes (or the lock
    /// is found lost, which is logged).
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
                        tracing::warn!(
                            lock = %self.lock_key,
                            "compute lock lost (expired or taken over) while computing"
                        );
                        std::future::pending::<()>().await;
                    }
                    Err(err) => {
                        tracing::warn!(lock = %self.lock_key, error = %err, "cannot extend compute lock");
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

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Cancelled (or a panic unwound through us): release from a task.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(lock = %self.lock_key, "no runtime to release the compute lock; it will expire");
            return;
        };
        let service = self.service.clone();
        let lock_key = std::mem::take(&mut self.lock_key);
        let token = std::mem::take(&mut self.token);
        runtime.spawn(async move {
            if let Err(err) = unlock(&service, &lock_key, &token).await {
                tracing::warn!(lock = %lock_key, error = %err, "cannot release compute lock; it will expire");
            }
        });
    }
}

async fn unlock(service: &RedisService, lock_key: &str, token: &str) -> Result<bool> {
    let call = ScriptCall::new("unlock")?.key(lock_key).arg(token);
    let n: u64 = service.run_script(&call, Idempotency::Idempotent).await?;
    Ok(n == 1)
}
