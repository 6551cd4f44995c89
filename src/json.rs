//! JSON values in strings and hash fields: `get_json`, `set_json`,
//! `hget_json`, `hset_json`, `hgetall_json`.
//!
//! Values are stored as plain, compact JSON text (`serde_json`), so any
//! client reads what these methods write and these methods read what any
//! client writes as JSON text. A stored value that is not valid JSON for the
//! requested type is an [`ErrorKind::Deserialization`](crate::ErrorKind)
//! error naming the key and the field path (`user:1: .address.zip: invalid
//! type: integer, expected a string`), logged at warn.
//!
//! Rust functions cannot default a type parameter, so where the Python
//! service returned "any JSON", ask for [`serde_json::Value`]:
//! `service.get_json::<serde_json::Value>("k")`.
//!
//! Batch forms (`mget_json`, `mset_json`) are in [`crate::batch`].

use std::collections::HashMap;

use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::core::codec;
use crate::core::commands::SetOptions;
use crate::core::error::{Error, Result};
use crate::core::retry::Idempotency;
use crate::core::service::RedisService;

impl RedisService {
    /// Reads `key` and decodes its JSON text as `T`: `Ok(None)` when the key
    /// is missing. A stored JSON `null` is `Some(Value::Null)` (or `Some(None)`
    /// for `T = Option<_>`), so "missing" and "null" stay distinct.
    ///
    /// Errors: [`Deserialization`](crate::ErrorKind::Deserialization) naming
    /// the key and field path when the text does not decode as `T`;
    /// [`WrongType`](crate::ErrorKind::WrongType) when the key holds a list,
    /// hash, ….
    ///
    /// ```no_run
    /// # async fn demo(service: redis_atomics::RedisService) -> redis_atomics::Result<()> {
    /// #[derive(serde::Deserialize)]
    /// struct User { name: String }
    ///
    /// let user: Option<User> = service.get_json("user:1").await?;
    /// let any = service.get_json::<serde_json::Value>("user:1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let full = self.key(key);
        let cmd = redis::cmd("GET").arg(&full).clone();
        let bytes: Option<Vec<u8>> = self
            .query("get_json", Some(&full), Idempotency::Idempotent, &cmd)
            .await?;
        bytes.map(|b| codec::from_json(&full, &b)).transpose()
    }

    /// Writes `value` as JSON text: `true` when written, `false` when
    /// `nx`/`xx` prevented it. `nx` with `xx`, or a zero expiry, is rejected
    /// before any round trip. Like `SET`, it replaces a value of any type.
    ///
    /// ```no_run
    /// # async fn demo(service: redis_atomics::RedisService) -> redis_atomics::Result<()> {
    /// use std::time::Duration;
    /// use redis_atomics::SetOptions;
    ///
    /// let fresh = service
    ///     .set_json("user:1", &serde_json::json!({"name": "Ada"}), SetOptions::new().nx().ex(Duration::from_secs(60)))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        options: SetOptions,
    ) -> Result<bool> {
        let full = self.key(key);
        options.validate().map_err(|e| e.with_key(&full))?;
        let bytes = codec::to_json(&full, value)?;
        self.set_full(&full, bytes.as_slice(), options).await
    }

    /// Reads hash field `field` of `key` as JSON: `Ok(None)` when the key or
    /// the field is missing. A decode error's path starts with the field
    /// (`user:1: .address.zip: …` for field `address`).
    pub async fn hget_json<T: DeserializeOwned>(
        &self,
        key: &str,
        field: &str,
    ) -> Result<Option<T>> {
        let full = self.key(key);
        let bytes = self.hget_bytes("hget_json", &full, field).await?;
        bytes
            .map(|b| codec::from_json_at(&full, &codec::field_segment(field), &b))
            .transpose()
    }

    pub(crate) async fn hget_bytes(
        &self,
        op: &'static str,
        full: &str,
        field: &str,
    ) -> Result<Option<Vec<u8>>> {
        let cmd = redis::cmd("HGET").arg(full).arg(field).clone();
        self.query(op, Some(full), Idempotency::Idempotent, &cmd)
            .await
    }

    /// Writes `value` as JSON into hash field `field` of `key`: `1` when the
    /// field was added, `0` when an existing field was updated. (After a
    /// timeout the write is retried, being idempotent; the count then says
    /// `0` for a field the first attempt added.)
    pub async fn hset_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        field: &str,
        value: &T,
    ) -> Result<u64> {
        let full = self.key(key);
        let bytes = codec::to_json(&full, value)?;
        self.hset_bytes("hset_json", &full, field, &bytes).await
    }

    pub(crate) async fn hset_bytes(
        &self,
        op: &'static str,
        full: &str,
        field: &str,
        bytes: &[u8],
    ) -> Result<u64> {
        let cmd = redis::cmd("HSET").arg(full).arg(field).arg(bytes).clone();
        self.query(op, Some(full), Idempotency::Idempotent, &cmd)
            .await
    }

    /// Reads every field of hash `key` as JSON, keyed by field name; an empty
    /// map when the key is missing. Like [`mget_json`](Self::mget_json), a
    /// field that does not decode as `T` is skipped with a warning naming the
    /// key and field.
    pub async fn hgetall_json<T: DeserializeOwned>(&self, key: &str) -> Result<HashMap<String, T>> {
        let full = self.key(key);
        let fields = self.hgetall_bytes("hgetall_json", &full).await?;
        let mut out = HashMap::with_capacity(fields.len());
        for (field, bytes) in fields {
            // from_json_at logs the failure at warn; the field is skipped.
            if let Ok(v) = codec::from_json_at(&full, &codec::field_segment(&field), &bytes) {
                out.insert(field, v);
            }
        }
        Ok(out)
    }

    pub(crate) async fn hgetall_bytes(
        &self,
        op: &'static str,
        full: &str,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let cmd = redis::cmd("HGETALL").arg(full).clone();
        let reply: Value = self
            .query(op, Some(full), Idempotency::Idempotent, &cmd)
            .await?;
        let bad = || Error::protocol(format!("{op}: unexpected HGETALL reply")).with_key(full);
        let pairs: Vec<(Value, Value)> = match reply {
            Value::Map(pairs) => pairs,
            Value::Array(items) => {
                let mut pairs = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(f), Some(v)) = (it.next(), it.next()) {
                    pairs.push((f, v));
                }
                pairs
            }
            _ => return Err(bad()),
        };
        pairs
            .into_iter()
            .map(|(f, v)| match (f, v) {
                (Value::BulkString(f), Value::BulkString(v)) => {
                    Ok((String::from_utf8_lossy(&f).into_owned(), v))
                }
                _ => Err(bad()),
            })
            .collect()
    }
}
