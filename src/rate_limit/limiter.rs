//! [`RateLimiter`], its builder, and [`CheckOptions`].

use std::sync::Arc;

use super::decision::Decision;
use super::quota::{Algorithm, Quota};
use crate::core::error::{Error, Result};
use crate::core::retry::Idempotency;
use crate::core::script_call::ScriptCall;
use crate::core::service::RedisService;

/// Options of one check: cost, request id, and a clock override for tests.
///
/// ```
/// use redis_atomics::rate_limit::CheckOptions;
/// let opts = CheckOptions::new().cost(5).request_id("req-8f1c");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOptions {
    cost: u32,
    request_id: Option<String>,
    at: Option<u64>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            cost: 1,
            request_id: None,
            at: None,
        }
    }
}

impl CheckOptions {
    /// Cost 1, no request id, server time.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many units the request consumes. Defaults to 1. A cost of 0 is
    /// rejected by checks (use [`RateLimiter::peek`]); a cost above a quota's
    /// limit (burst for GCRA) is a [`Decision::Never`], decided without a
    /// round trip.
    #[must_use]
    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = cost;
        self
    }

    /// A unique id of this request (a UUID, an idempotency key). A check
    /// repeated with the same id within the longest window is counted once:
    /// the repeat answers "allowed" with the current numbers and consumes
    /// nothing. It also lets the retry policy repeat a check that timed out.
    /// Only allowed requests are remembered, so a denied one may be retried
    /// with the same id. Defaults to none (each call counts; a timed-out check
    /// is not retried).
    #[must_use]
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// **For tests**: evaluate at `now_us` microseconds since the Unix epoch
    /// instead of the server's `TIME`, to drive a timeline. Must be in
    /// `1..=2^52`. Mixing it with server time on the same keys gives
    /// meaningless results. Defaults to the server's clock.
    ///
    /// Only the *evaluation* uses this clock. The keys a check writes still
    /// expire on the server's real clock: each gets a TTL of its quota's
    /// `reset_after` (as computed at `now_us`), counted in real time from
    /// the write. State written at logical time `t` is therefore gone once
    /// that much real time has passed, whatever the logical clock says: with
    /// 3 per 1 ms, three checks at `t` and a fourth at the same `t` 20 ms of
    /// real time later find a fresh quota and pass. A timeline is
    /// deterministic only while its logical clock advances, between a write
    /// and every later check, by at least the real time that passed (round
    /// trips included): give each step at least the real time elapsed since
    /// the previous one plus some slack, or use windows much longer than the
    /// test. Denied checks and peeks write nothing and set no TTL.
    #[must_use]
    pub fn at(mut self, now_us: u64) -> Self {
        self.at = Some(now_us);
        self
    }
}

/// Builds a [`RateLimiter`] with one or more quotas, checked all-or-nothing.
///
/// ```no_run
/// # async fn demo(service: redis_atomics::RedisService) -> redis_atomics::Result<()> {
/// use std::num::NonZeroU32;
/// use redis_atomics::rate_limit::{Algorithm, Quota};
///
/// let nz = |n| NonZeroU32::new(n).unwrap();
/// let limiter = service
///     .rate_limiter_builder("search", Algorithm::Gcra)
///     .quota(Quota::per_second(nz(10)).with_burst(nz(20)))
///     .quota(Quota::per_hour(nz(1_000)))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RateLimiterBuilder {
    service: RedisService,
    name: String,
    algorithm: Algorithm,
    quotas: Vec<Quota>,
}

impl RateLimiterBuilder {
    pub(crate) fn new(service: RedisService, name: &str, algorithm: Algorithm) -> Self {
        RateLimiterBuilder {
            service,
            name: name.to_string(),
            algorithm,
            quotas: Vec::new(),
        }
    }

    /// Adds a quota. Defaults to none; at least one is required.
    pub fn quota(mut self, quota: Quota) -> Self {
        self.quotas.push(quota);
        self
    }

    /// Validates the name and quotas (no round trip).
    pub fn build(self) -> Result<RateLimiter> {
        let prefix = if self.name.is_empty() {
            self.service.key("rl:")
        } else {
            self.service.key(&format!("rl:{}:", self.name))
        };
        let invalid = |msg: String| Error::validation(msg).with_key(prefix.clone());
        if self.name.contains(['{', '}']) {
            return Err(invalid(format!(
                "rate limiter name {:?} may not contain braces (the id is the hash tag)",
                self.name
            )));
        }
        if let Some(ns) = self.service.namespace().filter(|ns| ns.contains('{')) {
            return Err(invalid(format!(
                "rate limiter {:?}: the namespace {ns:?} contains '{{', which would make it the \
                 hash tag and put every id in one cluster slot; use a namespace without braces \
                 (service.with_namespace(..)) for rate limiters",
                self.name
            )));
        }
        if self.quotas.is_empty() {
            return Err(invalid(format!(
                "rate limiter {:?} needs at least one quota",
                self.name
            )));
        }
        let mut args = Vec::with_capacity(self.quotas.len() * 3);
        for (i, quota) in self.quotas.iter().enumerate() {
            let ms = quota.window_ms(self.algorithm).map_err(|e| {
                invalid(format!(
                    "rate limiter {:?}, quota {i}: {}",
                    self.name,
                    e.message()
                ))
            })?;
            args.push(quota.limit().to_string());
            args.push(ms.to_string());
            if self.algorithm == Algorithm::Gcra {
                args.push(quota.burst().to_string());
            }
        }
        Ok(RateLimiter {
            service: self.service,
            inner: Arc::new(Inner {
                name: self.name,
                prefix,
                algorithm: self.algorithm,
                quotas: self.quotas,
                args,
            }),
        })
    }
}

/// Checks ids against its quotas, atomically, on the server's clock.
/// Cheap to clone; build it once and share it. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    service: RedisService,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    prefix: String,
    algorithm: Algorithm,
    quotas: Vec<Quota>,
    args: Vec<String>,
}

impl RateLimiter {
    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.algorithm
    }

    /// Its quotas, in the order they were added.
    pub fn quotas(&self) -> &[Quota] {
        &self.inner.quotas
    }

    /// Consumes one unit for `id`.
    pub async fn check(&self, id: &str) -> Result<Decision> {
        self.check_with(id, CheckOptions::new()).await
    }

    /// Consumes `cost` units for `id`, all or nothing. A cost of 0 is an error
    /// (use [`RateLimiter::peek`]).
    pub async fn check_n(&self, id: &str, cost: u32) -> Result<Decision> {
        self.check_with(id, CheckOptions::new().cost(cost)).await
    }

    /// Consumes units for `id` as `options` say (cost, request id, clock).
    pub async fn check_with(&self, id: &str, options: CheckOptions) -> Result<Decision> {
        self.run(id, &options, true).await
    }

    /// What [`RateLimiter::check`] would answer now, without consuming:
    /// `remaining` is what would be left after one more request.
    pub async fn peek(&self, id: &str) -> Result<Decision> {
        self.peek_with(id, CheckOptions::new()).await
    }

    /// What [`RateLimiter::check_with`] would answer with `options`, without
    /// consuming. A cost of 0 reports the current state (`remaining` is
    /// what is left now).
    pub async fn peek_with(&self, id: &str, options: CheckOptions) -> Result<Decision> {
        self.run(id, &options, false).await
    }

    /// Forgets everything about `id` (all its keys, request ids included);
    /// `true` when something was stored.
    pub async fn reset(&self, id: &str) -> Result<bool> {
        let keys = self.keys(id)?;
        let cmd = redis::cmd("UNLINK").arg(&keys).clone();
        let n: u64 = self
            .service
            .query(
                "rate_limit.reset",
                keys.first().map(String::as_str),
                Idempotency::Idempotent,
                &cmd,
            )
            .await?;
        Ok(n > 0)
    }

    /// The full Redis keys of `id` (namespaced): one per quota, then the
    /// request-id set. They share one hash slot: the tag is the id,
    /// percent-encoded (`%`, `{`, `}`): for limiter `api` without a
    /// namespace, `rl:api:{user:1}:sl:0` … `rl:api:{user:1}:sl:req`.
    pub fn keys(&self, id: &str) -> Result<Vec<String>> {
        if id.is_empty() {
            return Err(Error::validation(format!(
                "rate limiter {:?}: the id is empty",
                self.inner.name
            ))
            .with_key(format!("{}{{}}", self.inner.prefix)));
        }
        let base = id_base(&self.inner.prefix, self.inner.algorithm, id);
        let mut keys: Vec<String> = (0..self.inner.quotas.len())
            .map(|i| format!("{base}{i}"))
            .collect();
        keys.push(format!("{base}req"));
        Ok(keys)
    }

    async fn run(&self, id: &str, options: &CheckOptions, check: bool) -> Result<Decision> {
        let keys = self.keys(id)?;
        let invalid = |msg: &str| {
            Error::validation(format!(
                "rate limiter {:?}, id {id:?}: {msg}",
                self.inner.name
            ))
            .with_key(keys[0].clone())
        };
        if check && options.cost == 0 {
            return Err(invalid("a check needs a cost of at least 1 (use peek)"));
        }
        if options.request_id.as_deref() == Some("") {
            return Err(invalid("the request id is empty"));
        }
        if options.at.is_some_and(|t| t == 0 || t > 1 << 52) {
            return Err(invalid("the clock override must be in 1..=2^52 µs"));
        }
        let algorithm = self.inner.algorithm;
        if let Some(never) = Decision::cannot_fit(&self.inner.quotas, algorithm, options.cost) {
            return Ok(never);
        }
        let idempotency = if !check || options.request_id.is_some() {
            Idempotency::Idempotent
        } else {
            Idempotency::NonIdempotent
        };
        let mut call = ScriptCall::new(algorithm.lua());
        for key in keys {
            call = call.key(key);
        }
        call = call
            .arg(options.at.map(|t| t.to_string()).unwrap_or_default())
            .arg(options.cost)
            .arg(options.request_id.as_deref().unwrap_or(""))
            .arg(if check { "check" } else { "peek" });
        for arg in &self.inner.args {
            call = call.arg(arg.as_str());
        }
        let reply: Vec<i64> = self.service.run_script(&call, idempotency).await?;
        Decision::from_reply(
            &reply,
            &self.inner.quotas,
            algorithm,
            call.first_key().unwrap_or(""),
        )
    }
}

/// `{prefix}{<encoded id>}:<algo>:`, the start of every key of one id.
pub(super) fn id_base(prefix: &str, algorithm: Algorithm, id: &str) -> String {
    format!("{prefix}{{{}}}:{}:", encode_id(id), algorithm.code())
}

/// Percent-encodes `%`, `{` and `}`: injective, and the result holds no brace,
/// so `{encoded}` is exactly one hash tag.
fn encode_id(id: &str) -> std::borrow::Cow<'_, str> {
    if !id.contains(['%', '{', '}']) {
        return id.into();
    }
    let mut out = String::with_capacity(id.len() + 8);
    for ch in id.chars() {
        match ch {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::encode_id;
    use crate::core::keys::hash_tag;

    #[test]
    fn encoded_ids_are_one_tag_and_injective() {
        let ids = ["a", "a}b", "a%7Db", "{x}", "}", "{", "%", "%25", "ü{}"];
        let enc: Vec<String> = ids.iter().map(|i| encode_id(i).into_owned()).collect();
        for (id, e) in ids.iter().zip(&enc) {
            assert!(!e.contains(['{', '}']), "{id:?} -> {e:?}");
            let key = format!("rl:x:{{{e}}}:sl:0");
            assert_eq!(hash_tag(key.as_bytes()), Some(e.as_bytes()));
        }
        let unique: std::collections::HashSet<_> = enc.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }
}
