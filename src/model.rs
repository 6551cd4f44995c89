//! Typed models: serde types with a [`Validate`] hook, stored as JSON.
//!
//! This is the Rust form of the Python service's Pydantic integration. A
//! model is any `Serialize + DeserializeOwned` type that implements
//! [`Validate`]; an empty `impl Validate for T {}` accepts every value that
//! decodes. Values are checked on write (before any round trip) and on read,
//! and failures name the key and the field path:
//!
//! - decode: `user:1: .address.zip: invalid type: integer, expected a string`
//! - validation: `user:1: .age: invalid input: must be >= 0`
//!
//! Batch reads ([`mget_models`](RedisService::mget_models)) skip invalid
//! entries with a warning; the `_strict` variant returns a per-key result.
//!
//! ```no_run
//! # async fn demo(service: redis_atomics::RedisService) -> redis_atomics::Result<()> {
//! use redis_atomics::{Invalid, SetOptions, Validate};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct User { name: String, age: i32 }
//!
//! impl Validate for User {
//!     fn validate(&self) -> Result<(), Invalid> {
//!         if self.age < 0 {
//!             return Err(Invalid::new("must be >= 0").at(".age"));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! service.set_model("user:1", &User { name: "Ada".into(), age: 36 }, SetOptions::new()).await?;
//! let user: Option<User> = service.get_model("user:1").await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::core::codec;
use crate::core::commands::SetOptions;
use crate::core::error::{Error, ErrorKind, Result};
use crate::core::retry::Idempotency;
use crate::core::service::RedisService;

/// A semantic check on a model, run on every write and read.
///
/// The default accepts everything, so `impl Validate for T {}` makes any
/// serde type a model.
pub trait Validate {
    /// `Ok(())` when the value is acceptable; an [`Invalid`] saying why (and
    /// where) when not.
    fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }
}

impl<T: Validate> Validate for Vec<T> {
    /// Validates each element; the path of a failure starts with `[i]`.
    fn validate(&self) -> Result<(), Invalid> {
        for (i, item) in self.iter().enumerate() {
            item.validate().map_err(|e| e.within(&format!("[{i}]")))?;
        }
        Ok(())
    }
}

impl<T: Validate> Validate for Option<T> {
    /// `None` is valid; `Some(v)` is checked as `v`.
    fn validate(&self) -> Result<(), Invalid> {
        self.as_ref().map_or(Ok(()), Validate::validate)
    }
}

impl<T: Validate + ?Sized> Validate for &T {
    fn validate(&self) -> Result<(), Invalid> {
        (**self).validate()
    }
}

impl<T: Validate + ?Sized> Validate for Box<T> {
    fn validate(&self) -> Result<(), Invalid> {
        (**self).validate()
    }
}

impl Validate for serde_json::Value {}

/// Why a value failed [`Validate`]: a message and an optional field path.
///
/// ```
/// use redis_atomics::Invalid;
///
/// let e = Invalid::new("must be >= 0").at(".age").within(".owner");
/// assert_eq!(e.path(), ".owner.age");
/// assert_eq!(e.to_string(), ".owner.age: must be >= 0");
/// let plain: Invalid = "name is empty".into();
/// assert_eq!(plain.path(), "");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    message: String,
    path: String,
}

impl Invalid {
    /// A failure with a message and no path.
    pub fn new(message: impl Into<String>) -> Self {
        Invalid {
            message: message.into(),
            path: String::new(),
        }
    }

    /// Sets the field path, e.g. `.age` or `.items[2].qty`.
    #[must_use]
    pub fn at(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Prefixes the path with `outer`, for a nested model's failure
    /// (`address.validate().map_err(|e| e.within(".address"))`).
    #[must_use]
    pub fn within(mut self, outer: &str) -> Self {
        self.path.insert_str(0, outer);
        self
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The field path, or "" for the whole value.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The crate error for this failure at `key` (below `prefix`, e.g. a hash field).
    pub(crate) fn into_error(self, key: &str, prefix: &str) -> Error {
        Error::new(ErrorKind::Validation, self.message)
            .with_key(key)
            .with_path(format!("{prefix}{}", self.path))
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for Invalid {}

impl From<String> for Invalid {
    fn from(message: String) -> Self {
        Invalid::new(message)
    }
}

impl From<&str> for Invalid {
    fn from(message: &str) -> Self {
        Invalid::new(message)
    }
}

/// Validates before a write.
pub(crate) fn check<T: Validate>(key: &str, prefix: &str, value: &T) -> Result<()> {
    value.validate().map_err(|e| e.into_error(key, prefix))
}

/// Decodes and validates a stored model; failures are logged at warn.
pub(crate) fn decode<T: DeserializeOwned + Validate>(
    key: &str,
    prefix: &str,
    bytes: &[u8],
) -> Result<T> {
    let value: T = codec::from_json_at(key, prefix, bytes)?;
    if let Err(e) = check(key, prefix, &value) {
        tracing::warn!(key, error = %e, "stored value fails validation");
        return Err(e);
    }
    Ok(value)
}

impl RedisService {
    /// Reads and validates a model: `Ok(None)` when the key is missing; a
    /// [`Deserialization`](ErrorKind::Deserialization) or
    /// [`Validation`](ErrorKind::Validation) error naming key and path when
    /// the stored value is not a valid `T`.
    pub async fn get_model<T: DeserializeOwned + Validate>(&self, key: &str) -> Result<Option<T>> {
        let full = self.key(key);
        let cmd = redis::cmd("GET").arg(&full).clone();
        let bytes: Option<Vec<u8>> = self
            .query("get_model", Some(&full), Idempotency::Idempotent, &cmd)
            .await?;
        bytes.map(|b| decode(&full, "", &b)).transpose()
    }

    /// Validates, then writes a model as JSON (`ex`/`nx`/`xx` as in
    /// [`set_json`](Self::set_json)): `true` when written, `false` when
    /// `nx`/`xx` prevented it. An invalid value never reaches Redis.
    pub async fn set_model<T: Serialize + Validate>(
        &self,
        key: &str,
        value: &T,
        options: SetOptions,
    ) -> Result<bool> {
        let full = self.key(key);
        options.validate().map_err(|e| e.with_key(&full))?;
        check(&full, "", value)?;
        let bytes = codec::to_json(&full, value)?;
        self.set_full(&full, bytes.as_slice(), options).await
    }

    /// Reads many models, keyed by the caller's keys; missing keys omitted,
    /// entries that do not decode or validate skipped with a warning.
    pub async fn mget_models<T, K>(&self, keys: &[K]) -> Result<HashMap<String, T>>
    where
        T: DeserializeOwned + Validate + Send,
        K: AsRef<str>,
    {
        let found = self
            .mget_decoded(keys, |full, bytes| decode::<T>(full, "", &bytes).ok())
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|(i, v)| Some((keys[i].as_ref().to_owned(), v?)))
            .collect())
    }

    /// Like [`mget_models`](Self::mget_models), but every found key maps to
    /// its own result: the model, or the decode/validation error.
    pub async fn mget_models_strict<T, K>(&self, keys: &[K]) -> Result<HashMap<String, Result<T>>>
    where
        T: DeserializeOwned + Validate + Send,
        K: AsRef<str>,
    {
        let found = self
            .mget_decoded(keys, |full, bytes| decode::<T>(full, "", &bytes))
            .await?;
        Ok(found
            .into_iter()
            .map(|(i, v)| (keys[i].as_ref().to_owned(), v))
            .collect())
    }

    /// Validates every model, then writes them as [`mset_json`](Self::mset_json)
    /// does (atomic with `ex`, per slot and call). One invalid model fails the
    /// whole batch before any round trip.
    pub async fn mset_models<I, K, T>(&self, mapping: I, ex: Option<Duration>) -> Result<usize>
    where
        I: IntoIterator<Item = (K, T)>,
        K: AsRef<str>,
        T: Serialize + Validate,
    {
        let mut entries = Vec::new();
        for (key, value) in mapping {
            let full = self.key(key.as_ref());
            check(&full, "", &value)?;
            entries.push((full, value));
        }
        self.mset_with("mset_models", entries, ex, |key, value, buf| {
            codec::write_json(key, value, buf)
        })
        .await
    }

    /// Validates, then writes a model into hash field `field`: `1` added,
    /// `0` updated.
    pub async fn hset_model<T: Serialize + Validate>(
        &self,
        key: &str,
        field: &str,
        value: &T,
    ) -> Result<u64> {
        let full = self.key(key);
        check(&full, &codec::field_segment(field), value)?;
        let bytes = codec::to_json(&full, value)?;
        self.hset_bytes("hset_model", &full, field, &bytes).await
    }

    /// Reads and validates a model from hash field `field`: `Ok(None)` when
    /// the key or field is missing; error paths start with `.field`.
    pub async fn hget_model<T: DeserializeOwned + Validate>(
        &self,
        key: &str,
        field: &str,
    ) -> Result<Option<T>> {
        let full = self.key(key);
        let bytes = self.hget_bytes("hget_model", &full, field).await?;
        bytes
            .map(|b| decode(&full, &codec::field_segment(field), &b))
            .transpose()
    }
}
