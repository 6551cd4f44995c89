//! The caching wrapper: [`RedisService::cache`] gives a [`Cached`] function
//! whose calls are served from Redis, computed once on a miss (the
//! get-or-compute lock and single-flight), and degraded to a plain call
//! when Redis fails. The `#[cached]` attribute (feature `macros`) builds
//! one from a function's signature.
//!
//! Keys are `{namespace}:{key_prefix}:{function}:{arg}={value}:…` (absent
//! parts omitted), injective per argument type, long values hashed; see
//! [`keys::encode_arg_value`].
//!
//! ```no_run
//! # async fn demo(service: redis_atomics::RedisService) -> redis_atomics::Result<()> {
//! use std::time::Duration;
//! use redis_atomics::{Args, CacheOptions};
//!
//! let users = service.cache::<Option<String>>(
//!     "user_name",
//!     CacheOptions::new().ttl(Duration::from_secs(60)).key_prefix("v1"),
//! );
//! assert_eq!(users.ttl(), Some(Duration::from_secs(60)));
//! let id = 7;
//! let name = users
//!     .call(&Args::new().arg("id", &id), async move { Some(format!("user {id}")) })
//!     .await;
//! users.invalidate(&Args::new().arg("id", &7)).await?;
//! let removed = users.invalidate_all().await?;
//! # Ok(()) }
//! ```

mod args;
mod invalidate;

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::compute::{self, ComputeError, ComputeOptions, Policy};
use crate::core::error::{Error, Result};
use crate::core::keys;
use crate::core::service::RedisService;
use crate::stats::Stat;

pub use args::Args;

type Skip<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

/// Options of a cached function: a [`ComputeOptions`] (how values are
/// stored, locked, refreshed: `ttl`, `lock_ttl`, `early_refresh`,
/// `format`, …) plus what only a cache has (`key_prefix`, `namespace`,
/// `skip_cache_if`). Every setter says its default.
///
/// [`CacheOptions::ttl`], [`CacheOptions::early_refresh`] and
/// [`CacheOptions::prevent_thundering_herd`] are shorthands that set the
/// wrapped [`ComputeOptions`]; [`CacheOptions::compute_options`] (or
/// `CacheOptions::from`) replaces it as a whole.
///
/// ```
/// use std::time::Duration;
/// use redis_atomics::{CacheOptions, ComputeOptions};
///
/// let opts: CacheOptions<Option<u32>> = CacheOptions::new()
///     .ttl(Duration::from_secs(30))
///     .key_prefix("v2")
///     .skip_cache_if(|v: &Option<u32>| v.is_none());
///
/// // The same compute settings, given as a whole:
/// let compute = ComputeOptions::new()
///     .ttl(Duration::from_secs(30))
///     .lock_ttl(Duration::from_secs(2));
/// let opts: CacheOptions<u32> = CacheOptions::from(compute).key_prefix("v2");
/// ```
pub struct CacheOptions<T> {
    compute: ComputeOptions,
    key_prefix: Option<String>,
    namespace: Option<String>,
    skip_cache_if: Option<Skip<T>>,
}

impl<T> Clone for CacheOptions<T> {
    fn clone(&self) -> Self {
        CacheOptions {
            compute: self.compute.clone(),
            key_prefix: self.key_prefix.clone(),
            namespace: self.namespace.clone(),
            skip_cache_if: self.skip_cache_if.clone(),
        }
    }
}

impl<T> std::fmt::Debug for CacheOptions<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheOptions")
            .field("compute", &self.compute)
            .field("key_prefix", &self.key_prefix)
            .field("namespace", &self.namespace)
            .field("skip_cache_if", &self.skip_cache_if.is_some())
            .finish()
    }
}

impl<T> Default for CacheOptions<T> {
    fn default() -> Self {
        ComputeOptions::default().into()
    }
}

impl<T> From<ComputeOptions> for CacheOptions<T> {
    /// These compute settings, no prefix, the service's namespace, every
    /// value cached.
    fn from(compute: ComputeOptions) -> Self {
        CacheOptions {
            compute,
            key_prefix: None,
            namespace: None,
            skip_cache_if: None,
        }
    }
}

impl<T> CacheOptions<T> {
    /// The defaults: [`ComputeOptions::default`] (no expiry, thundering-herd
    /// protection on), no prefix, the service's namespace, every value
    /// cached.
    pub fn new() -> Self {
        Self::default()
    }

    /// How results are stored, locked and refreshed; replaces every compute
    /// setting made before (`ttl`, `early_refresh`,
    /// `prevent_thundering_herd` included). Defaults to
    /// [`ComputeOptions::default`].
    #[must_use]
    pub fn compute_options(mut self, options: ComputeOptions) -> Self {
        self.compute = options;
        self
    }

    /// How long results live: [`ComputeOptions::ttl`]. Defaults to no
    /// expiry.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.compute = self.compute.ttl(ttl);
        self
    }

    /// Early refresh of hot entries (XFetch):
    /// [`ComputeOptions::early_refresh`]. Defaults to off.
    #[must_use]
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.compute = self.compute.early_refresh(beta);
        self
    }

    /// One caller computes a missing value while the others wait:
    /// [`ComputeOptions::prevent_thundering_herd`]. Defaults to true.
    #[must_use]
    pub fn prevent_thundering_herd(mut self, on: bool) -> Self {
        self.compute = self.compute.prevent_thundering_herd(on);
        self
    }

    /// A prefix after the namespace, e.g. a version (`v2`) so a new release
    /// does not read the old shape. Defaults to none.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Some(prefix.into()).filter(|p: &String| !p.is_empty());
        self
    }

    /// The namespace of these keys instead of the service's. Defaults to the
    /// service's namespace.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Results for which `skip` is true are returned but not stored (for
    /// example `|v| v.is_none()`). Defaults to caching every `Ok` value,
    /// `None` and `null` included. `Err` results are never cached.
    #[must_use]
    pub fn skip_cache_if(mut self, skip: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.skip_cache_if = Some(Arc::new(skip));
        self
    }
}

/// A cached function: [`Cached::call`] serves results from Redis and
/// computes on a miss. Cheap to create; build one per function (or per
/// call, as `#[cached]` does).
pub struct Cached<T> {
    service: RedisService,
    prefix: String,
    compute: ComputeOptions,
    invalid: Option<Error>,
    skip: Option<Skip<T>>,
    _value: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Cached<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("prefix", &self.prefix)
            .field("compute", &self.compute)
            .finish()
    }
}

impl RedisService {
    /// A cached function called `function` (the name is part of its keys).
    /// See [`Cached`] and the [module docs](crate::cache).
    pub fn cache<T>(&self, function: &str, options: CacheOptions<T>) -> Cached<T> {
        let namespace = match &options.namespace {
            Some(ns) => Some(ns.as_str()).filter(|ns| !ns.is_empty()),
            None => self.namespace(),
        };
        let prefix =
            keys::cache_function_prefix(namespace, options.key_prefix.as_deref(), function);
        let compute = options.compute;
        Cached {
            service: self.without_namespace(),
            invalid: compute.validate().err().map(|e| e.with_key(&prefix)),
            prefix,
            compute,
            skip: options.skip_cache_if,
            _value: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Cached<T> {
    /// The full Redis key of a call with `args`.
    pub fn key(&self, args: &Args) -> Result<String> {
        let mut key = self.prefix.clone();
        args.append_to(&mut key)
            .map_err(|e| e.with_key(&self.prefix))?;
        Ok(key)
    }

    /// The key shared by every call: `{namespace}:{key_prefix}:{function}`.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// How long results live ([`CacheOptions::ttl`]); `None` for no expiry.
    pub fn ttl(&self) -> Option<Duration> {
        self.compute.ttl
    }

    /// The result for `args`: from Redis, or computed by `compute` (once
    /// across processes on a miss). Never fails because of Redis: when Redis
    /// is unreachable the function runs (logged at warn, counted in
    /// [`CacheStats::degraded`](crate::CacheStats)); any other Redis or
    /// encoding error (a key of the wrong type, a script error, bad options)
    /// is logged at error level, counted in
    /// [`CacheStats::errors`](crate::CacheStats) and the function's own
    /// result returned. Use [`Cached::try_call`] to see those errors.
    pub async fn call<F>(&self, args: &Args, compute: F) -> T
    where
        F: Future<Output = T>,
    {
        let fallible = async { Ok::<T, std::convert::Infallible>(compute.await) };
        match self.call_result(args, fallible).await {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// [`Cached::call`] for a function returning `Result`: `Ok` values are
    /// cached (unless `skip_cache_if`), `Err` never; the caller gets the
    /// function's own error. Redis errors are handled as by `call`.
    pub async fn call_result<E, F>(&self, args: &Args, compute: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        // Keep the future here so that a Redis error before it ran can
        // still be answered by running it.
        let mut compute = std::pin::pin!(compute);
        let finished = AtomicBool::new(false);
        let tracked = async {
            let out = compute.as_mut().await;
            finished.store(true, Ordering::Relaxed);
            out
        };
        match self.run(args, tracked, true).await {
            Ok(value) => Ok(value),
            Err(ComputeError::Compute(err)) => Err(err),
            Err(ComputeError::Redis(err)) => {
                let state = self.service.compute_state();
                if err.is_unreachable() {
                    tracing::warn!(function = %self.prefix, error = %err, "calling without the cache");
                    state.bump(Stat::Degraded);
                } else {
                    tracing::error!(function = %self.prefix, error = %err, "calling without the cache");
                    state.bump(Stat::Error);
                }
                if finished.load(Ordering::Relaxed) {
                    // Unreachable by construction: a finished computation's
                    // value is always returned. Never poll a finished future.
                    return std::future::pending().await;
                }
                state.bump(Stat::Computation);
                compute.await
            }
        }
    }

    /// [`Cached::call_result`] that returns Redis errors other than
    /// unavailability (a key of the wrong type, a script or decode error,
    /// invalid options) as [`ComputeError::Redis`] instead of computing.
    /// When Redis is unreachable it still degrades to running the function.
    ///
    /// ```no_run
    /// # async fn demo(service: redis_atomics::RedisService) {
    /// use redis_atomics::{Args, CacheOptions, ComputeError};
    ///
    /// let f = service.cache::<u32>("answer", CacheOptions::new());
    /// match f.try_call(&Args::new(), async { Ok::<_, std::io::Error>(42) }).await {
    ///     Ok(v) => assert_eq!(v, 42),
    ///     Err(ComputeError::Redis(e)) => eprintln!("cache broken: {e}"),
    ///     Err(e) => eprintln!("{e}"),
    /// }
    /// # }
    /// ```
    pub async fn try_call<E, F>(&self, args: &Args, compute: F) -> Result<T, ComputeError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.run(args, compute, false).await
    }

    async fn run<E, F>(&self, args: &Args, compute: F, lenient: bool) -> Result<T, ComputeError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        let key = self
            .invalid
            .clone()
            .map_or_else(|| self.key(args), Err)
            .map_err(ComputeError::Redis)?;
        let policy = Policy {
            skip_store: self.skip.as_deref(),
            lenient,
        };
        compute::run(&self.service, &key, &self.compute, policy, compute).await
    }

    /// Deletes the cached result for `args` and revokes its computation's
    /// lease: once this returns, no call that started computing before it
    /// can store its value. Returns how many values were removed (0 or 1).
    pub async fn invalidate(&self, args: &Args) -> Result<u64> {
        let key = self.key(args)?;
        crate::core::commands::invalidate_keys(&self.service, &[key]).await
    }

    /// Deletes every cached result of this function (this namespace and
    /// prefix) on every primary: `SCAN MATCH` with a glob-escaped pattern
    /// and `UNLINK` in batches, never `KEYS`. Returns how many keys were
    /// removed (values and their companion keys).
    ///
    /// Leases are revoked too (they live under the same prefix), and the
    /// scan runs twice, so that once this returns no computation that
    /// started before it can have its value stored, even one that stored
    /// while the first scan was under way.
    ///
    /// Function and argument names are encoded, so another function's keys
    /// never match (`f` vs `f*` or `f:g`). The namespace and key prefix are
    /// used verbatim: a prefix `a:f` with function `g` and a prefix `a` with
    /// function `f` overlap, so keep prefixes free of `:` when you rely on
    /// `invalidate_all`.
    pub async fn invalidate_all(&self) -> Result<u64> {
        invalidate::all(&self.service, &self.prefix).await
    }
}
