//! Batch JSON: [`mget_json`](RedisService::mget_json) and
//! [`mset_json`](RedisService::mset_json).
//!
//! How a batch runs:
//!
//! - Keys are namespaced, then split into calls of at most
//!   [`MAX_KEYS_PER_CALL`] keys. On a cluster they are first grouped by hash
//!   slot, since one `MGET`/`MSET`/script may only touch one slot.
//! - The calls run concurrently (at most [`MAX_IN_FLIGHT`] at a time on the
//!   multiplexed connection) and their replies are merged, keyed by the
//!   caller's own keys (never the namespaced ones).
//! - An empty batch returns at once, with no round trip.
//!
//! `mset_json` with a TTL runs `lua/mset_expire.lua`: each call writes every
//! one of its keys with its value *and* its TTL, or none of them — there is no
//! window in which a key exists without its TTL (as there is with `MSET`
//! followed by `EXPIRE`s). The all-or-nothing unit is one call: one hash slot
//! on a cluster (keys sharing a hash tag such as `{user:1}` are in one slot),
//! and at most [`MAX_KEYS_PER_CALL`] keys. A batch that needs several calls
//! can fail part-way; the error then says how many keys were written.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use redis::{Cmd, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::core::codec;
use crate::core::commands::ttl_millis;
use crate::core::error::{Error, Result};
use crate::core::keys;
use crate::core::retry::Idempotency;
use crate::core::script_call::ScriptCall;
use crate::core::scripts;
use crate::core::service::RedisService;

/// The most keys one `MGET`, `MSET` or `mset_expire` call carries; larger
/// batches are split, so no single call blocks the server for long.
pub const MAX_KEYS_PER_CALL: usize = 1000;

/// The most calls of one batch in flight at once.
pub const MAX_IN_FLIGHT: usize = 64;

impl RedisService {
    /// Reads many keys as JSON: a map from each found key (as the caller
    /// wrote it, without namespace) to its value. Missing keys (and keys that
    /// hold a list, hash, … — `MGET` reports them as missing) are omitted; a
    /// value that does not decode as `T` is skipped with a warning naming the
    /// key and field path. An empty `keys` makes no round trip.
    ///
    /// ```no_run
    /// # async fn demo(service: redis_atomics::RedisService) -> redis_atomics::Result<()> {
    /// let users = service
    ///     .mget_json::<serde_json::Value, _>(&["user:1", "user:2", "user:3"])
    ///     .await?;
    /// if let Some(u) = users.get("user:2") { println!("{u}"); }
    /// # Ok(()) }
    /// ```
    pub async fn mget_json<T, K>(&self, keys: &[K]) -> Result<HashMap<String, T>>
    where
        T: DeserializeOwned + Send,
        K: AsRef<str>,
    {
        let found = self
            .mget_decoded(keys, |full, bytes| codec::from_json::<T>(full, &bytes).ok())
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|(i, v)| Some((keys[i].as_ref().to_owned(), v?)))
            .collect())
    }

    /// Like [`mget_json`](Self::mget_json), but a found key whose value does
    /// not decode maps to its error instead of being skipped, for callers who
    /// must know. Missing keys are still omitted.
    pub async fn mget_json_strict<T, K>(&self, keys: &[K]) -> Result<HashMap<String, Result<T>>>
    where
        T: DeserializeOwned + Send,
        K: AsRef<str>,
    {
        let found = self
            .mget_decoded(keys, |full, bytes| codec::from_json::<T>(full, &bytes))
            .await?;
        Ok(found
            .into_iter()
            .map(|(i, v)| (keys[i].as_ref().to_owned(), v))
            .collect())
    }

    /// Writes many keys as JSON text. Without `ex`, one `MSET` per call (per
    /// hash slot on a cluster). With `ex`, every key gets its value and its
    /// TTL atomically through `lua/mset_expire.lua` (see the
    /// [module docs](crate::batch) for the per-slot, per-call unit). Returns
    /// the number of distinct keys written; when a key appears twice, the
    /// last value wins. Every value is encoded, and a zero `ex` rejected,
    /// before any round trip; an empty mapping makes none.
    ///
    /// Takes anything that iterates over `(key, value)` pairs: `&HashMap`,
    /// `Vec<(&str, T)>`, an iterator.
    ///
    /// ```no_run
    /// # async fn demo(service: redis_atomics::RedisService) -> redis_atomics::Result<()> {
    /// use std::time::Duration;
    /// use serde_json::json;
    ///
    /// let batch = [("user:1", json!({"name": "Ada"})), ("user:2", json!({"name": "Alan"}))];
    /// service.mset_json(batch, Some(Duration::from_secs(300))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn mset_json<I, K, V>(&self, mapping: I, ex: Option<Duration>) -> Result<usize>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Serialize,
    {
        let entries: Vec<(String, V)> = mapping
            .into_iter()
            .map(|(key, value)| (self.key(key.as_ref()), value))
            .collect();
        self.mset_with("mset_json", entries, ex, |key, value, buf| {
            codec::write_json(key, value, buf)
        })
        .await
    }

    /// Fetches `keys` (caller's keys) with bounded, concurrent, slot-grouped
    /// `MGET`s and decodes each found value with `decode(full_key, bytes)`
    /// as its reply arrives. Returns `(index into keys, decoded)`.
    pub(crate) async fn mget_decoded<K, R, D>(
        &self,
        keys: &[K],
        decode: D,
    ) -> Result<Vec<(usize, R)>>
    where
        K: AsRef<str>,
        R: Send,
        D: Fn(&str, Vec<u8>) -> R + Sync,
    {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let full: Vec<String> = keys.iter().map(|k| self.key(k.as_ref())).collect();
        let calls = self.plan((0..full.len()).collect(), |i| &full[i]);
        let (full, decode) = (&full, &decode);
        let mut replies = stream::iter(calls)
            .map(|call| async move {
                let mut cmd = redis::cmd("MGET");
                for &i in &call {
                    cmd.arg(&full[i]);
                }
                let first = Some(full[call[0]].as_str());
                let reply: Value = self
                    .query("mget_json", first, Idempotency::Idempotent, &cmd)
                    .await?;
                let Value::Array(items) = reply else {
                    return Err(Error::protocol("mget_json: MGET did not return an array"));
                };
                if items.len() != call.len() {
                    return Err(Error::protocol("mget_json: MGET returned a wrong count"));
                }
                let mut out = Vec::new();
                for (i, item) in call.into_iter().zip(items) {
                    match item {
                        Value::Nil => {}
                        Value::BulkString(bytes) => out.push((i, decode(&full[i], bytes))),
                        other => {
                            let msg = format!("mget_json: unexpected MGET item {other:?}");
                            return Err(Error::protocol(msg).with_key(&full[i]));
                        }
                    }
                }
                Ok(out)
            })
            .buffer_unordered(MAX_IN_FLIGHT);
        let mut found = Vec::new();
        while let Some(part) = replies.next().await {
            found.extend(part?);
        }
        Ok(found)
    }

    /// Writes `(full key, value)` pairs: `MSET` without `ex`, `mset_expire`
    /// with it; bounded, concurrent, slot-grouped calls. Every value is
    /// encoded (straight into its command, through one reused buffer) before
    /// the first call is sent, so an encoding error writes nothing.
    pub(crate) async fn mset_with<V>(
        &self,
        op: &'static str,
        entries: Vec<(String, V)>,
        ex: Option<Duration>,
        encode: impl Fn(&str, &V, &mut Vec<u8>) -> Result<()>,
    ) -> Result<usize> {
        let ttl = ex
            .map(ttl_millis)
            .transpose()
            .map_err(|e| match entries.first() {
                Some((k, _)) => e.with_key(k),
                None => e,
            })?;
        let kept = last_occurrences(&entries);
        let calls = self.plan(kept, |i| &entries[i].0);
        let mut buf = Vec::new();
        let mut requests = Vec::with_capacity(calls.len());
        for call in calls {
            let request = match ttl {
                None => Write::Mset(mset_cmd(&call, &entries, &encode, &mut buf)?),
                Some(ms) => Write::Script(script_call(ms, &call, &entries, &encode, &mut buf)?),
            };
            requests.push((call.len(), call[0], request));
        }
        let total = requests.iter().map(|(n, _, _)| n).sum::<usize>();
        let total_calls = requests.len();
        let entries = &entries;
        let results: Vec<Result<usize>> = stream::iter(requests)
            .map(|(n, first, request)| async move {
                match request {
                    Write::Mset(cmd) => {
                        let first = Some(entries[first].0.as_str());
                        self.query::<Value>(op, first, Idempotency::Idempotent, &cmd)
                            .await?
                    }
                    // EVALSHA, EVAL on NOSCRIPT, script errors named: as
                    // every script call.
                    Write::Script(call) => {
                        self.run_script::<Value>(&call, Idempotency::Idempotent)
                            .await?
                    }
                };
                Ok(n)
            })
            .buffer_unordered(MAX_IN_FLIGHT)
            .collect()
            .await;
        let mut written = 0;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(n) => written += n,
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        match first_err {
            None => Ok(written),
            Some(err) if total_calls == 1 => Err(err),
            Some(err) => {
                let msg = format!(
                    "{op}: {written} of {total} keys written ({total_calls} calls, atomic each); first failure: {err}"
                );
                let key = err.key().map(str::to_owned);
                let out = Error::new(err.kind(), msg).with_source(err);
                Err(match key {
                    Some(k) => out.with_key(k),
                    None => out,
                })
            }
        }
    }

    /// Splits `indices` into calls: by hash slot (of `key(i)`) on a
    /// cluster, then into runs of at most [`MAX_KEYS_PER_CALL`]. Order within
    /// a slot follows the input.
    fn plan<'a>(&self, indices: Vec<usize>, key: impl Fn(usize) -> &'a str) -> Vec<Vec<usize>> {
        let groups: Vec<Vec<usize>> = if self.is_cluster() {
            let mut by_slot: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
            for i in indices {
                let slot = keys::slot(key(i).as_bytes());
                by_slot.entry(slot).or_default().push(i);
            }
            by_slot.into_values().collect()
        } else {
            vec![indices]
        };
        groups
            .into_iter()
            .flat_map(|g| {
                g.chunks(MAX_KEYS_PER_CALL)
                    .map(<[usize]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// One call of a batch write.
enum Write {
    /// `MSET k v …`.
    Mset(Cmd),
    /// `mset_expire` with the keys, the TTL and the values.
    Script(ScriptCall),
}

/// `MSET k v …`, each value encoded straight into the command (through one
/// reused buffer): one copy of the values, which matters at a megabyte per
/// call.
fn mset_cmd<V>(
    call: &[usize],
    entries: &[(String, V)],
    encode: &impl Fn(&str, &V, &mut Vec<u8>) -> Result<()>,
    buf: &mut Vec<u8>,
) -> Result<Cmd> {
    let mut cmd = redis::cmd("MSET");
    for &i in call {
        let (key, value) = &entries[i];
        buf.clear();
        encode(key, value, buf)?;
        cmd.arg(key).arg(buf.as_slice());
    }
    Ok(cmd)
}

/// `mset_expire` over the keys of one call: `KEYS` the keys, `ARGV` the TTL
/// then the values, encoded straight into the script call.
fn script_call<V>(
    ttl_ms: u64,
    call: &[usize],
    entries: &[(String, V)],
    encode: &impl Fn(&str, &V, &mut Vec<u8>) -> Result<()>,
    buf: &mut Vec<u8>,
) -> Result<ScriptCall> {
    let mut script = ScriptCall::new(&scripts::MSET_EXPIRE);
    for &i in call {
        script = script.key(entries[i].0.as_str());
    }
    script = script.arg(ttl_ms);
    for &i in call {
        let (key, value) = &entries[i];
        buf.clear();
        encode(key, value, buf)?;
        script = script.arg(buf.as_slice());
    }
    Ok(script)
}

/// The indices of the last occurrence of each key, in input order (the calls
/// of one batch run concurrently, so duplicates must not be split across them).
fn last_occurrences<V>(entries: &[(String, V)]) -> Vec<usize> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(entries.len());
    for (i, (key, _)) in entries.iter().enumerate() {
        last.insert(key, i);
    }
    if last.len() == entries.len() {
        return (0..entries.len()).collect();
    }
    (0..entries.len())
        .filter(|&i| last.get(entries[i].0.as_str()) == Some(&i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::last_occurrences;

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        let e = [
            ("a".to_string(), 1),
            ("b".to_string(), 2),
            ("a".to_string(), 3),
        ];
        assert_eq!(last_occurrences(&e), vec![1, 2]);
        assert_eq!(last_occurrences(&e[..2]), vec![0, 1]);
        assert!(last_occurrences::<u8>(&[]).is_empty());
    }
}
