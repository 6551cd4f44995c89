//! Basic key operations, all namespaced: `get`, `set` ([`SetOptions`]: expiry
//! and [`SetCondition`]), `delete`, `exists`, `expire`, `ttl`.

use std::time::Duration;

use redis::{FromRedisValue, ToRedisArgs};

use crate::core::error::{Error, Result};
use crate::core::keys;
use crate::core::retry::Idempotency;
use crate::core::script_call::ScriptCall;
use crate::core::scripts;
use crate::core::service::RedisService;

/// When a write may happen: always, or only if the key is absent (`NX`) or
/// present (`XX`). One value, so "both `NX` and `XX`" cannot be expressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SetCondition {
    /// Write whether or not the key exists. The default.
    #[default]
    Always,
    /// Write only if the key does not exist (`SET … NX`).
    IfAbsent,
    /// Write only if the key exists (`SET … XX`).
    IfPresent,
}

/// Options of a write: expiry and condition.
///
/// The condition is one [`SetCondition`], so a write can be `NX` or `XX`
/// but never both; [`SetOptions::nx`] and [`SetOptions::xx`] are the
/// Python `RedisService` spellings of [`SetOptions::condition`] (the last
/// one called wins).
///
/// ```
/// use std::time::Duration;
/// use redis_atomics::{SetCondition, SetOptions};
///
/// let opts = SetOptions::new().ex(Duration::from_secs(30)).nx();
/// assert_eq!(opts, SetOptions::new().ex(Duration::from_secs(30)).condition(SetCondition::IfAbsent));
/// assert!(opts.validate().is_ok());
/// assert!(SetOptions::new().ex(Duration::ZERO).validate().is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetOptions {
    ex: Option<Duration>,
    condition: SetCondition,
}

impl SetOptions {
    /// No expiry, no condition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Expire after `ttl` (sub-second precision is kept; zero is rejected).
    /// Defaults to no expiry.
    #[must_use]
    pub fn ex(mut self, ttl: Duration) -> Self {
        self.ex = Some(ttl);
        self
    }

    /// When the write may happen. Defaults to [`SetCondition::Always`].
    #[must_use]
    pub fn condition(mut self, condition: SetCondition) -> Self {
        self.condition = condition;
        self
    }

    /// Write only if the key is absent: `condition(SetCondition::IfAbsent)`
    /// (the Python `nx=True`).
    #[must_use]
    pub fn nx(self) -> Self {
        self.condition(SetCondition::IfAbsent)
    }

    /// Write only if the key is present: `condition(SetCondition::IfPresent)`
    /// (the Python `xx=True`).
    #[must_use]
    pub fn xx(self) -> Self {
        self.condition(SetCondition::IfPresent)
    }

    /// Rejects a zero expiry and one above [`MAX_TTL_MS`].
    pub fn validate(&self) -> Result<()> {
        if let Some(ttl) = self.ex {
            ttl_millis(ttl)?;
        }
        Ok(())
    }

    /// Whether a retry after a timeout could change the answer (nx/xx).
    pub(crate) fn idempotency(&self) -> Idempotency {
        match self.condition {
            SetCondition::Always => Idempotency::Idempotent,
            SetCondition::IfAbsent | SetCondition::IfPresent => Idempotency::NonIdempotent,
        }
    }

    /// Appends `PX ms`, `NX`, `XX` to a SET command.
    pub(crate) fn apply(&self, cmd: &mut redis::Cmd) -> Result<()> {
        if let Some(ttl) = self.ex {
            cmd.arg("PX").arg(ttl_millis(ttl)?);
        }
        match self.condition {
            SetCondition::Always => {}
            SetCondition::IfAbsent => {
                cmd.arg("NX");
            }
            SetCondition::IfPresent => {
                cmd.arg("XX");
            }
        }
        Ok(())
    }
}

/// The longest expiry the library accepts, in milliseconds: 15 digits
/// (about 31,700 years), the bound every script checks too. Every TTL is
/// checked against it before any round trip.
pub const MAX_TTL_MS: u64 = 999_999_999_999_999;

/// A TTL in whole milliseconds (rounded up); zero and more than
/// [`MAX_TTL_MS`] are rejected, with an error that names the bound.
pub(crate) fn ttl_millis(ttl: Duration) -> Result<u64> {
    if ttl.is_zero() {
        return Err(Error::validation("an expiry must be greater than zero"));
    }
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    match u64::try_from(ms) {
        Ok(ms) if ms <= MAX_TTL_MS => Ok(ms),
        _ => Err(Error::validation(format!(
            "an expiry of {ms} ms is more than the maximum of {MAX_TTL_MS} ms (MAX_TTL_MS)"
        ))),
    }
}

/// The time to live of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ttl {
    /// The key does not exist.
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key expires after this long.
    Expires(Duration),
}

impl RedisService {
    /// `GET key`: the value, or `None` when the key is missing.
    /// `T` is any redis-rs reply type: `String`, `Vec<u8>`, integers, ….
    pub async fn get<T: FromRedisValue>(&self, key: &str) -> Result<Option<T>> {
        let key = self.key(key);
        let cmd = redis::cmd("GET").arg(&key).clone();
        self.query("get", Some(&key), Idempotency::Idempotent, &cmd)
            .await
    }

    /// `SET key value [PX ms] [NX|XX]`: `true` when written, `false` when the
    /// condition prevented it. A zero expiry is rejected before any round trip.
    ///
    /// A write also revokes the key's compute lease (`set_value.lua`, one
    /// round trip): once it returns, no `get_or_compute` of this key that
    /// started before it can store over the value.
    pub async fn set<V: ToRedisArgs + Sync>(
        &self,
        key: &str,
        value: V,
        options: SetOptions,
    ) -> Result<bool> {
        let key = self.key(key);
        options.validate().map_err(|e| e.with_key(&key))?;
        self.set_full(&key, value, options).await
    }

    /// `SET full value [PX] [NX|XX]` for a full key, revoking its compute
    /// lease when written (`set_value.lua`): every library write of one
    /// value goes through here.
    pub(crate) async fn set_full<V: ToRedisArgs>(
        &self,
        full: &str,
        value: V,
        options: SetOptions,
    ) -> Result<bool> {
        // The value goes straight into the script call; only the few
        // option words pass through a scratch command.
        let mut options_args = redis::Cmd::new();
        options
            .apply(&mut options_args)
            .map_err(|e| e.with_key(full))?;
        let mut call = ScriptCall::new(&scripts::SET_VALUE)
            .key(full)
            .key(keys::lock_key(full))
            .arg(value);
        for arg in options_args.args_iter() {
            if let redis::Arg::Simple(bytes) = arg {
                call = call.arg(bytes);
            }
        }
        let reply: Option<String> = self.run_script(&call, options.idempotency()).await?;
        Ok(reply.is_some())
    }

    /// Deletes keys; returns how many existed. On a cluster, keys are
    /// grouped by slot.
    ///
    /// Each key's compute lease is revoked with it (`invalidate.lua`): once
    /// this returns, no `get_or_compute` of these keys that started before
    /// it can store its value.
    pub async fn delete<K: AsRef<str>>(&self, keys: &[K]) -> Result<u64> {
        let full: Vec<String> = keys.iter().map(|k| self.key(k.as_ref())).collect();
        let mut removed = 0;
        for group in self.slot_groups(&full) {
            removed += invalidate_keys(self, &group).await?;
        }
        Ok(removed)
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        let key = self.key(key);
        let cmd = redis::cmd("EXISTS").arg(&key).clone();
        let n: u64 = self
            .query("exists", Some(&key), Idempotency::Idempotent, &cmd)
            .await?;
        Ok(n > 0)
    }

    /// Sets a TTL on `key`; `false` when the key does not exist.
    pub async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        let key = self.key(key);
        let ms = ttl_millis(ttl).map_err(|e| e.with_key(&key))?;
        let cmd = redis::cmd("PEXPIRE").arg(&key).arg(ms).clone();
        let n: u64 = self
            .query("expire", Some(&key), Idempotency::Idempotent, &cmd)
            .await?;
        Ok(n > 0)
    }

    /// The time to live of `key` (millisecond precision).
    pub async fn ttl(&self, key: &str) -> Result<Ttl> {
        let key = self.key(key);
        let cmd = redis::cmd("PTTL").arg(&key).clone();
        let ms: i64 = self
            .query("ttl", Some(&key), Idempotency::Idempotent, &cmd)
            .await?;
        Ok(match ms {
            -2 => Ttl::Missing,
            -1 => Ttl::Persistent,
            ms => Ttl::Expires(Duration::from_millis(ms.max(0) as u64)),
        })
    }

    /// Splits full keys into groups that one multi-key command may take: one
    /// group for a standalone server, one per hash slot on a cluster.
    /// Order within a group follows the input.
    pub(crate) fn slot_groups(&self, keys: &[String]) -> Vec<Vec<String>> {
        if keys.is_empty() {
            return Vec::new();
        }
        if !self.is_cluster() {
            return vec![keys.to_vec()];
        }
        let mut groups: std::collections::BTreeMap<u16, Vec<String>> = Default::default();
        for key in keys {
            groups
                .entry(crate::core::keys::slot(key.as_bytes()))
                .or_default()
                .push(key.clone());
        }
        groups.into_values().collect()
    }
}

/// Keys per `invalidate.lua` call (three KEYS each).
const INVALIDATE_CHUNK: usize = 500;

/// Deletes value keys (full keys, one slot on a cluster) with their
/// compute-time keys, and revokes their compute leases (`invalidate.lua`); returns how many values
/// existed. Used by `delete`, `invalidate` and `invalidate_all`.
pub(crate) async fn invalidate_keys(service: &RedisService, keys: &[String]) -> Result<u64> {
    let mut removed = 0;
    for chunk in keys.chunks(INVALIDATE_CHUNK) {
        let mut call = ScriptCall::new(&scripts::INVALIDATE);
        for key in chunk {
            call = call
                .key(key.as_str())
                .key(keys::lock_key(key))
                .key(keys::companion_key(key, "xf"));
        }
        removed += service
            .run_script::<u64>(&call, Idempotency::Idempotent)
            .await?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(opts: SetOptions) -> Vec<String> {
        let mut cmd = redis::Cmd::new();
        opts.apply(&mut cmd).unwrap();
        cmd.args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            })
            .collect()
    }

    #[test]
    fn one_condition_and_the_last_setter_wins() {
        assert!(args(SetOptions::new()).is_empty());
        assert_eq!(args(SetOptions::new().nx()), ["NX"]);
        assert_eq!(args(SetOptions::new().nx().xx()), ["XX"]);
        assert_eq!(
            args(SetOptions::new().ex(Duration::from_micros(1500)).xx().nx()),
            ["PX", "2", "NX"]
        );
        assert_eq!(
            SetOptions::new().nx().idempotency(),
            Idempotency::NonIdempotent
        );
        assert_eq!(SetOptions::new().idempotency(), Idempotency::Idempotent);
    }
}
