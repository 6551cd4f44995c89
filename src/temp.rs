//! Temporary keys: a key that lives for one scope.
//!
//! [`RedisService::temporary_key`] writes a key and returns a
//! [`TemporaryKey`] guard that deletes it when dropped (or explicitly with
//! [`TemporaryKey::delete`]). [`RedisService::with_temporary_key`] runs an
//! async closure with the key and deletes it afterwards, whether the closure
//! returned `Ok`, returned `Err`, panicked or was cancelled (its future
//! dropped).
//!
//! A key is always written with a TTL: `ex`, or else
//! [`DEFAULT_TEMPORARY_TTL`] (one hour), so a process that crashes — or a
//! guard dropped outside any Tokio runtime — leaks nothing forever.
//! Creation and deletion are logged at debug.
//!
//! Writing a temporary key replaces whatever the key held, like `SET`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use serde::Serialize;

use crate::core::codec;
use crate::core::commands::{SetOptions, ttl_millis};
use crate::core::error::{Error, Result};
use crate::core::retry::Idempotency;
use crate::core::service::RedisService;
use crate::model::{Validate, check};

/// The TTL of a temporary key written without `ex`: one hour. The key is
/// deleted when its scope ends; this only bounds a leak after a crash.
pub const DEFAULT_TEMPORARY_TTL: Duration = Duration::from_secs(3600);

/// The value of a temporary key: text, bytes, a JSON value or a model.
///
/// ```
/// use redis_atomics::TempValue;
/// # fn demo() -> redis_atomics::Result<()> {
/// let a = TempValue::from("pending");
/// let b = TempValue::from(serde_json::json!({"step": 1}));
/// let c = TempValue::json(&vec![1, 2, 3])?;
/// assert_eq!(b.as_bytes(), br#"{"step":1}"#);
/// assert_eq!(c.as_bytes(), b"[1,2,3]");
/// # let _ = a; Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempValue(Vec<u8>);

impl TempValue {
    /// Any serde value, stored as JSON text.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        codec::to_json("temporary value", value).map(TempValue)
    }

    /// A model, validated (see [`Validate`]), stored as JSON text.
    pub fn model<T: Serialize + Validate>(value: &T) -> Result<Self> {
        check("temporary value", "", value)?;
        Self::json(value)
    }

    /// The bytes that will be stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for TempValue {
    fn from(s: &str) -> Self {
        TempValue(s.as_bytes().to_vec())
    }
}

impl From<String> for TempValue {
    fn from(s: String) -> Self {
        TempValue(s.into_bytes())
    }
}

impl From<&[u8]> for TempValue {
    fn from(b: &[u8]) -> Self {
        TempValue(b.to_vec())
    }
}

impl From<Vec<u8>> for TempValue {
    fn from(b: Vec<u8>) -> Self {
        TempValue(b)
    }
}

impl From<serde_json::Value> for TempValue {
    fn from(v: serde_json::Value) -> Self {
        TempValue(v.to_string().into_bytes())
    }
}

impl From<&serde_json::Value> for TempValue {
    fn from(v: &serde_json::Value) -> Self {
        TempValue(v.to_string().into_bytes())
    }
}

/// A key that is deleted when this guard is dropped.
///
/// Dropping spawns the delete on the current Tokio runtime (outside a runtime
/// the key is left to its TTL, with a warning; so is it when the runtime shuts
/// down before the spawned delete runs). To know that the key is gone,
/// call [`delete`](Self::delete) instead; to keep it (until its TTL), call
/// [`keep`](Self::keep).
#[derive(Debug)]
#[must_use = "the key is deleted as soon as the guard is dropped"]
pub struct TemporaryKey {
    service: RedisService,
    key: String,
    full: Option<String>,
}

impl TemporaryKey {
    /// The key as the caller wrote it (without namespace).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Deletes the key now: `true` if it still existed.
    pub async fn delete(mut self) -> Result<bool> {
        match self.full.take() {
            Some(full) => delete(&self.service, &full, "explicit").await,
            None => Ok(false),
        }
    }

    /// Disarms the guard: the key stays until its TTL. Returns the caller's key.
    pub fn keep(mut self) -> String {
        self.full = None;
        std::mem::take(&mut self.key)
    }
}

impl Drop for TemporaryKey {
    fn drop(&mut self) {
        let Some(full) = self.full.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let service = self.service.clone();
                handle.spawn(async move {
                    // delete() logs its own failure.
                    let _ = delete(&service, &full, "guard dropped").await;
                });
            }
            Err(_) => tracing::warn!(
                key = %full,
                "temporary key guard dropped outside a Tokio runtime; the key is left to its TTL"
            ),
        }
    }
}

async fn delete(service: &RedisService, full: &str, why: &'static str) -> Result<bool> {
    let cmd = redis::cmd("UNLINK").arg(full).clone();
    let result: Result<u64> = service
        .query(
            "temporary_key.delete",
            Some(full),
            Idempotency::Idempotent,
            &cmd,
        )
        .await;
    match &result {
        Ok(n) => tracing::debug!(key = %full, existed = *n > 0, why, "temporary key deleted"),
        Err(e) => tracing::warn!(
            key = %full, error = %e, why,
            "temporary key not deleted; it expires by its TTL"
        ),
    }
    result.map(|n| n > 0)
}

impl RedisService {
    /// Writes `key` (replacing any value) with a TTL of `ex`, or
    /// [`DEFAULT_TEMPORARY_TTL`] when `None`, and returns a guard that
    /// deletes it when dropped.
    ///
    /// ```no_run
    /// # async fn demo(service: redis_atomics::RedisService) -> redis_atomics::Result<()> {
    /// let guard = service.temporary_key("upload:42:state", "receiving", None).await?;
    /// // ... other processes can see upload:42:state ...
    /// guard.delete().await?; // or just drop it
    /// # Ok(()) }
    /// ```
    pub async fn temporary_key(
        &self,
        key: &str,
        value: impl Into<TempValue>,
        ex: Option<Duration>,
    ) -> Result<TemporaryKey> {
        let full = self.key(key);
        let ttl = ex.unwrap_or(DEFAULT_TEMPORARY_TTL);
        let ms = ttl_millis(ttl).map_err(|e| e.with_key(&full))?;
        let value = value.into();
        self.set_full(&full, value.0.as_slice(), SetOptions::new().ex(ttl))
            .await?;
        tracing::debug!(key = %full, ttl_ms = ms, "temporary key created");
        Ok(TemporaryKey {
            service: self.clone(),
            key: key.to_owned(),
            full: Some(full),
        })
    }

    /// Writes a temporary key, runs `body` with the caller's key, and deletes
    /// the key when `body` returns `Ok` or `Err`, when it panics (the panic
    /// then continues) and when this future is dropped before it finishes.
    /// Returns `body`'s result. A failed delete is logged at warn and the key
    /// expires by its TTL; it does not replace `body`'s result.
    ///
    /// `body`'s error type only needs `From<redis_atomics::Error>`, so it can
    /// be this crate's [`Error`], `anyhow::Error`, or your own.
    ///
    /// ```no_run
    /// # async fn demo(service: redis_atomics::RedisService) -> redis_atomics::Result<()> {
    /// use std::time::Duration;
    ///
    /// let svc = service.clone();
    /// let seen = service
    ///     .with_temporary_key("job:9:claim", "worker-3", Some(Duration::from_secs(30)), |key| async move {
    ///         svc.get::<String>(&key).await
    ///     })
    ///     .await?;
    /// assert_eq!(seen.as_deref(), Some("worker-3"));
    /// # Ok(()) }
    /// ```
    pub async fn with_temporary_key<F, Fut, R, E>(
        &self,
        key: &str,
        value: impl Into<TempValue>,
        ex: Option<Duration>,
        body: F,
    ) -> std::result::Result<R, E>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = std::result::Result<R, E>>,
        E: From<Error>,
    {
        let guard = self.temporary_key(key, value, ex).await?;
        let outcome = AssertUnwindSafe(body(key.to_owned())).catch_unwind().await;
        // The guard also covers cancellation: dropped with this future, it
        // spawns the delete.
        let _ = guard.delete().await;
        match outcome {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}
