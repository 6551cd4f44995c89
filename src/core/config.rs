//! [`RedisConfig`]: where Redis is, the key namespace, retries and timeouts.
//!
//! # Naming
//!
//! One convention for every option and configuration type of the crate:
//!
//! - **Setters take the setting's noun** (`ttl(Duration)`, `namespace(..)`,
//!   `retry_count(3)`), consume and return `Self`, are `#[must_use]`, and
//!   say their default: as bb8's `Builder::max_size`, moka's
//!   `CacheBuilder::time_to_live` and std's `thread::Builder::name`, and the
//!   keyword names of the Python `RedisService`, so a migration maps one to
//!   one.
//! - **Getters are nouns too, on the value that is built, never on the
//!   builder** (a method name cannot be both on one type): as moka reads
//!   `CacheBuilder::time_to_live(..)` back as `cache.policy().time_to_live()`
//!   and bb8 reads a pool through `Pool::state()`, the settings of a
//!   [`RedisConfigBuilder`] are read from the [`RedisConfig`] it builds
//!   (`namespace()`, `retry()`), and those of a
//!   [`CacheOptions`](crate::CacheOptions) from the
//!   [`Cached`](crate::Cached) it makes (`key_prefix()`, `ttl()`). The
//!   per-call builders ([`SetOptions`](crate::SetOptions),
//!   [`ComputeOptions`](crate::ComputeOptions),
//!   [`CacheOptions`](crate::CacheOptions)) have no getters.
//! - **A value that is read back and can be adjusted** (a
//!   [`RetryPolicy`], a [`Quota`](crate::Quota)) takes `with_…` for its
//!   adjustments, which leaves the noun to its getter:
//!   `RetryPolicy::with_jitter(0.1)?` and `RetryPolicy::jitter()`.
//! - No `get_` prefix and no `_value` suffix (the Rust API guidelines,
//!   C-GETTER).

use std::time::Duration;

use crate::core::breaker::CircuitBreakerOptions;
use crate::core::error::{Error, Result};
use crate::core::retry::{Backoff, RetryPolicy};
#[cfg(feature = "tls")]
use crate::core::tls::TlsOptions;

/// Where the service connects.
///
/// Its `Debug` form hides the password of every URL
/// (`redis://user:<redacted>@host`).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Topology {
    /// One server (or a proxy), by URL, e.g. `redis://127.0.0.1:6379/0`.
    Standalone(String),
    /// A Redis Cluster, by the URLs of some of its nodes (the rest are discovered).
    Cluster(Vec<String>),
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Topology::Standalone(url) => {
                f.debug_tuple("Standalone").field(&redact_url(url)).finish()
            }
            Topology::Cluster(nodes) => f
                .debug_tuple("Cluster")
                .field(&nodes.iter().map(|u| redact_url(u)).collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// `url` with the password of its user info replaced by `<redacted>`, for
/// `Debug` output and error messages (`redis://:pw@h` → `redis://:<redacted>@h`;
/// a user name alone is kept).
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:<redacted>{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// Settings of a [`RedisService`](crate::RedisService), validated when built.
///
/// ```
/// use std::time::Duration;
/// use redis_atomics::{Backoff, RedisConfig};
///
/// let config = RedisConfig::builder()
///     .url("redis://127.0.0.1:6379")
///     .namespace("billing")
///     .retry_count(5)
///     .retry_backoff(Backoff::Linear)
///     .retry_delay(Duration::from_millis(50))
///     .response_timeout(Duration::from_millis(500))
///     .build()
///     .unwrap();
/// assert_eq!(config.namespace(), Some("billing"));
/// assert_eq!(config.retry().retries(), 5);
///
/// // Invalid settings are rejected when built.
/// let err = RedisConfig::builder().cluster_nodes(Vec::<String>::new()).build().unwrap_err();
/// assert!(err.to_string().contains("cluster node list is empty"));
/// ```
#[derive(Debug, Clone)]
pub struct RedisConfig {
    topology: Topology,
    namespace: Option<String>,
    retry: RetryPolicy,
    connect_timeout: Duration,
    response_timeout: Duration,
    circuit_breaker: CircuitBreakerOptions,
    #[cfg(feature = "tls")]
    tls: Option<TlsOptions>,
}

impl RedisConfig {
    /// A builder with every default: `redis://127.0.0.1:6379`, no namespace,
    /// 3 retries with exponential backoff from 100 ms (capped at 2 s, jitter
    /// 0.2), connect timeout 2 s, response timeout 2 s, call deadline 10 s.
    pub fn builder() -> RedisConfigBuilder {
        RedisConfigBuilder::default()
    }

    /// The defaults for one server at `url`.
    pub fn new(url: impl Into<String>) -> Result<Self> {
        Self::builder().url(url).build()
    }

    /// Reads `REDIS_CLUSTER_NODES` (comma-separated URLs; wins when set and
    /// non-empty), else `REDIS_URL`, else `redis://127.0.0.1:6379`. Also reads
    /// `REDIS_NAMESPACE` when set.
    pub fn from_env() -> Result<Self> {
        Self::builder().from_env().build()
    }

    /// Where the service connects.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The namespace prefixed to every key as `{namespace}:{key}`, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// How long a connection attempt may take.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How long a reply may take.
    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// The circuit breaker of the get-or-compute and cache paths.
    pub fn circuit_breaker(&self) -> CircuitBreakerOptions {
        self.circuit_breaker
    }

    /// The certificates of `rediss://` connections, if set (feature `tls`).
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&TlsOptions> {
        self.tls.as_ref()
    }
}

/// Builds a [`RedisConfig`]; every setter says its default. Nothing is
/// checked until [`build`](RedisConfigBuilder::build), which rejects every
/// invalid setting (the retry policy's included) with a `Config` error.
///
/// Retries are one [`RetryPolicy`], given whole with
/// [`retry`](RedisConfigBuilder::retry) or adjusted setting by setting with
/// the shorthands `retry_count`, `retry_backoff`, `retry_delay` (the Python
/// `RedisService` names), `max_retry_delay`, `retry_jitter` and
/// `call_deadline`. The last call wins: `retry(policy)` replaces every
/// retry setting made before it.
///
/// ```
/// use std::time::Duration;
/// use redis_atomics::{Backoff, RedisConfig, RetryPolicy};
///
/// let policy = RetryPolicy::new(5, Backoff::Linear, Duration::from_millis(50))?;
/// let a = RedisConfig::builder().retry(policy).build()?;
/// let b = RedisConfig::builder()
///     .retry_count(5)
///     .retry_backoff(Backoff::Linear)
///     .retry_delay(Duration::from_millis(50))
///     .build()?;
/// assert_eq!(a.retry(), b.retry());
/// # Ok::<(), redis_atomics::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RedisConfigBuilder {
    topology: Topology,
    namespace: Option<String>,
    retry: RetryPolicy,
    connect_timeout: Duration,
    response_timeout: Duration,
    circuit_breaker: CircuitBreakerOptions,
    #[cfg(feature = "tls")]
    tls: Option<TlsOptions>,
}

impl Default for RedisConfigBuilder {
    fn default() -> Self {
        RedisConfigBuilder {
            topology: Topology::Standalone("redis://127.0.0.1:6379".into()),
            namespace: None,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            circuit_breaker: CircuitBreakerOptions::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl RedisConfigBuilder {
    /// One server by URL. Defaults to `redis://127.0.0.1:6379`.
    #[must_use]
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.topology = Topology::Standalone(url.into());
        self
    }

    /// A Redis Cluster by the URLs of some of its nodes. Defaults to none
    /// (standalone).
    #[must_use]
    pub fn cluster_nodes<S: Into<String>>(mut self, nodes: impl IntoIterator<Item = S>) -> Self {
        self.topology = Topology::Cluster(nodes.into_iter().map(Into::into).collect());
        self
    }

    /// Reads `REDIS_URL`, `REDIS_CLUSTER_NODES` and `REDIS_NAMESPACE`; unset
    /// variables leave the current values alone.
    #[must_use]
    pub fn from_env(mut self) -> Self {
        let var = |name| {
            std::env::var(name)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        if let Some(url) = var("REDIS_URL") {
            self.topology = Topology::Standalone(url.trim().to_string());
        }
        if let Some(nodes) = var("REDIS_CLUSTER_NODES") {
            let nodes = nodes.split(',').map(str::trim).filter(|s| !s.is_empty());
            self.topology = Topology::Cluster(nodes.map(String::from).collect());
        }
        if let Some(ns) = var("REDIS_NAMESPACE") {
            self.namespace = Some(ns);
        }
        self
    }

    /// Prefix every key as `{namespace}:{key}`. Defaults to none: keys are
    /// exactly what the caller passed.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// How failed operations are retried, and the deadline of each call.
    /// Replaces every retry setting made before. Defaults to
    /// [`RetryPolicy::default`]: 3 retries, exponential backoff from 100 ms
    /// capped at 2 s, jitter 0.2, a 10 s call deadline.
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Retries after the first attempt (the retry policy's
    /// [`retries`](RetryPolicy::retries); the Python `retry_count`).
    /// Defaults to 3.
    #[must_use]
    pub fn retry_count(mut self, retries: u32) -> Self {
        self.retry.retries = retries;
        self
    }

    /// How delays grow (the retry policy's
    /// [`backoff`](RetryPolicy::backoff); the Python `retry_backoff`).
    /// Defaults to [`Backoff::Exponential`].
    #[must_use]
    pub fn retry_backoff(mut self, backoff: Backoff) -> Self {
        self.retry.backoff = backoff;
        self
    }

    /// The delay before the first retry (the retry policy's
    /// [`delay`](RetryPolicy::delay); the Python `retry_delay`). Defaults to
    /// 100 ms.
    #[must_use]
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry.delay = delay;
        self
    }

    /// The cap on any one delay (the retry policy's
    /// [`max_delay`](RetryPolicy::max_delay)). Defaults to 2 s (or the retry
    /// delay if larger).
    #[must_use]
    pub fn max_retry_delay(mut self, delay: Duration) -> Self {
        self.retry.max_delay = Some(delay);
        self
    }

    /// The fraction (0.0–1.0) of each delay removed at random (the retry
    /// policy's [`jitter`](RetryPolicy::jitter)). Defaults to 0.2.
    #[must_use]
    pub fn retry_jitter(mut self, jitter: f64) -> Self {
        self.retry.jitter = jitter;
        self
    }

    /// The most one call may take, every attempt and retry delay included;
    /// past it the call fails with a timeout (a cluster failover or a dead
    /// node never holds a caller longer). The retry policy's
    /// [`deadline`](RetryPolicy::deadline); must be at least the response
    /// timeout. Defaults to 10 s.
    #[must_use]
    pub fn call_deadline(mut self, deadline: Duration) -> Self {
        self.retry.deadline = deadline;
        self
    }

    /// How long a connection attempt may take. Defaults to 2 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a reply may take. Defaults to 2 s.
    #[must_use]
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The circuit breaker of the get-or-compute and cache paths, which
    /// skip Redis while it is unreachable. Defaults to
    /// [`CircuitBreakerOptions::default`] (5 failures, 5 s cool-down).
    #[must_use]
    pub fn circuit_breaker(mut self, options: CircuitBreakerOptions) -> Self {
        self.circuit_breaker = options;
        self
    }

    /// The certificates of `rediss://` connections (feature `tls`): a
    /// custom CA, and a client certificate and key for mutual TLS. Every URL
    /// must then be `rediss://`. The server's name is always checked against
    /// its certificate. Defaults to none: a `rediss://` URL is checked
    /// against the system's trust store, with no client certificate.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, options: TlsOptions) -> Self {
        self.tls = Some(options);
        self
    }

    /// Validates and builds the configuration.
    pub fn build(self) -> Result<RedisConfig> {
        match &self.topology {
            Topology::Standalone(url) => check_url(url)?,
            Topology::Cluster(nodes) if nodes.is_empty() => {
                return Err(Error::config(
                    "the cluster node list is empty: give at least one node URL",
                ));
            }
            Topology::Cluster(nodes) => nodes.iter().try_for_each(|url| check_url(url))?,
        }
        if let Some(ns) = &self.namespace {
            if ns.is_empty() {
                return Err(Error::config(
                    "the namespace is empty: leave it unset for no namespace",
                ));
            }
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::config("connect_timeout must be greater than zero"));
        }
        if self.response_timeout.is_zero() {
            return Err(Error::config("response_timeout must be greater than zero"));
        }
        if self.retry.deadline() < self.response_timeout {
            return Err(Error::config(format!(
                "call_deadline ({:?}) must be at least response_timeout ({:?})",
                self.retry.deadline(),
                self.response_timeout
            )));
        }
        self.circuit_breaker.validate()?;
        self.retry.validate()?;
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            tls.validate()?;
            let urls = match &self.topology {
                Topology::Standalone(url) => std::slice::from_ref(url),
                Topology::Cluster(nodes) => nodes.as_slice(),
            };
            if let Some(url) = urls.iter().find(|u| !u.starts_with("rediss://")) {
                return Err(Error::config(format!(
                    "TLS options are set but {} is not a rediss:// URL",
                    redact_url(url)
                )));
            }
        }
        Ok(RedisConfig {
            topology: self.topology,
            namespace: self.namespace,
            retry: self.retry,
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            circuit_breaker: self.circuit_breaker,
            #[cfg(feature = "tls")]
            tls: self.tls,
        })
    }
}

fn check_url(url: &str) -> Result<()> {
    use redis::IntoConnectionInfo;
    if cfg!(not(feature = "tls")) && url.starts_with("rediss://") {
        return Err(Error::config(format!(
            "{} is a TLS URL: enable the `tls` feature of redis-atomics",
            redact_url(url)
        )));
    }
    url.into_connection_info()
        .map(drop)
        .map_err(|e| Error::config(format!("invalid Redis URL {:?}: {e}", redact_url(url))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = RedisConfig::builder().build().unwrap();
        assert_eq!(
            c.topology(),
            &Topology::Standalone("redis://127.0.0.1:6379".into())
        );
        assert_eq!(c.namespace(), None);
        assert_eq!(c.retry().retries(), 3);
        assert_eq!(c.retry().backoff(), Backoff::Exponential);
        assert_eq!(c.retry().delay(), Duration::from_millis(100));
        assert_eq!(c.retry().deadline(), Duration::from_secs(10));
    }

    #[test]
    fn shorthands_adjust_the_policy_and_retry_replaces_it() {
        let policy = RetryPolicy::new(7, Backoff::Fixed, Duration::from_millis(10))
            .unwrap()
            .with_jitter(0.0)
            .unwrap();
        let c = RedisConfig::builder()
            .retry(policy.clone())
            .retry_delay(Duration::from_secs(3))
            .build()
            .unwrap();
        assert_eq!(c.retry().retries(), 7);
        assert_eq!(c.retry().jitter(), 0.0);
        assert_eq!(c.retry().delay(), Duration::from_secs(3));
        assert_eq!(c.retry().max_delay(), Duration::from_secs(3), "cap raised");
        let c = RedisConfig::builder()
            .retry_count(1)
            .call_deadline(Duration::from_secs(60))
            .retry(policy.clone())
            .build()
            .unwrap();
        assert_eq!(c.retry(), &policy);
        // A shorthand that breaks a valid policy fails when built.
        let err = RedisConfig::builder()
            .retry(policy)
            .max_retry_delay(Duration::from_millis(1))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("max_retry_delay"), "{err}");
    }

    #[test]
    fn passwords_never_show_in_debug_or_errors() {
        assert_eq!(
            redact_url("redis://user:pw@h:1/0"),
            "redis://user:<redacted>@h:1/0"
        );
        assert_eq!(redact_url("rediss://:p@ss@h"), "rediss://:<redacted>@h");
        assert_eq!(redact_url("redis://user@h"), "redis://user@h");
        assert_eq!(redact_url("redis://h:1/0?x=a@b"), "redis://h:1/0?x=a@b");
        assert_eq!(redact_url("unix:///tmp/r.sock"), "unix:///tmp/r.sock");
        let b = RedisConfig::builder().url("redis://alice:hunter2@127.0.0.1:1/0");
        let c = b.clone().build().unwrap();
        for text in [format!("{b:?}"), format!("{c:?}")] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("alice:<redacted>@127.0.0.1"), "{text}");
        }
        let c = RedisConfig::builder()
            .cluster_nodes(["redis://:hunter2@a:1", "redis://:hunter2@b:1"])
            .build()
            .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        // A URL that does not parse is quoted without its password.
        let err = RedisConfig::builder()
            .url("redis://alice:hunter2@127.0.0.1:notaport")
            .build()
            .unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn rediss_without_the_feature_names_it() {
        let err = RedisConfig::new("rediss://h:1").unwrap_err();
        assert!(err.to_string().contains("`tls` feature"), "{err}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_options_need_rediss_urls() {
        let err = RedisConfig::builder()
            .url("redis://u:hunter2@h:1")
            .tls(TlsOptions::new())
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        assert!(err.to_string().contains("not a rediss:// URL"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let c = RedisConfig::builder()
            .url("rediss://h:1")
            .tls(TlsOptions::new())
            .build()
            .unwrap();
        assert_eq!(c.tls(), Some(&TlsOptions::new()));
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let cases = [
            (
                RedisConfig::builder().connect_timeout(Duration::ZERO),
                "connect_timeout",
            ),
            (
                RedisConfig::builder().response_timeout(Duration::ZERO),
                "response_timeout",
            ),
            (
                RedisConfig::builder().cluster_nodes(Vec::<String>::new()),
                "cluster node list is empty",
            ),
            (RedisConfig::builder().url("nope://x"), "invalid Redis URL"),
            (RedisConfig::builder().namespace(""), "namespace is empty"),
            (
                RedisConfig::builder().retry_delay(Duration::ZERO),
                "retry_delay",
            ),
            (RedisConfig::builder().retry_jitter(2.0), "retry_jitter"),
            (
                RedisConfig::builder().call_deadline(Duration::ZERO),
                "call_deadline",
            ),
            (
                RedisConfig::builder()
                    .response_timeout(Duration::from_secs(3))
                    .call_deadline(Duration::from_secs(2)),
                "call_deadline (2s) must be at least response_timeout (3s)",
            ),
            (
                RedisConfig::builder().max_retry_delay(Duration::from_millis(1)),
                "max_retry_delay",
            ),
        ];
        for (builder, needle) in cases {
            let err = builder.build().unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config);
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
    }
}
