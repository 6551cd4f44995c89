#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

// The README above is the crate's front page, so its examples are doc tests;
// the migration guide's examples are compiled the same way, out of the API docs.
#[cfg(doctest)]
#[doc = include_str!("../docs/MIGRATION.md")]
mod migration_guide {}

pub mod batch;
pub mod cache;
pub mod compute;
pub(crate) mod core;
pub mod json;
pub mod model;
pub mod rate_limit;
pub mod search;
pub mod stats;
pub mod temp;

// The core's public modules, at the paths users know.
pub use crate::core::{
    breaker, commands, config, connection, error, keys, retry, scripts, service,
};

#[cfg(feature = "tls")]
pub use crate::core::tls;
pub use breaker::{CircuitBreakerOptions, CircuitState};
pub use cache::{Args, CacheOptions, Cached};
pub use commands::{SetCondition, SetOptions, Ttl};
pub use compute::{ComputeError, ComputeOptions, Format};
pub use config::{RedisConfig, RedisConfigBuilder, Topology};
pub use connection::{Connection, Node};
pub use error::{Error, ErrorKind, Result};
pub use model::{Invalid, Validate};
pub use rate_limit::{Algorithm, CheckOptions, Decision, Quota, RateLimiter};
pub use retry::{Backoff, Idempotency, RetryPolicy};
pub use service::{PreloadReport, RedisService};
pub use stats::CacheStats;
pub use temp::{DEFAULT_TEMPORARY_TTL, TempValue, TemporaryKey};
#[cfg(feature = "tls")]
pub use tls::TlsOptions;

/// Caches an `async fn` in Redis (feature `macros`, on by default); see
/// [`cache`] for the behaviour.
///
/// ```no_run
/// use redis_atomics::{RedisService, cached};
///
/// #[cached(ttl = 60, key_prefix = "v1")]
/// async fn user_name(service: &RedisService, id: u64) -> Option<String> {
///     Some(format!("user {id}")) // the slow lookup
/// }
///
/// # async fn demo(service: RedisService) -> redis_atomics::Result<()> {
/// let name = user_name(&service, 7).await; // key "v1:user_name:id=7"
/// user_name_invalidate(&service, 7).await?;
/// user_name_invalidate_all(&service).await?;
/// # Ok(()) }
/// ```
#[cfg(feature = "macros")]
pub use redis_atomics_macros::cached;

/// The redis-rs driver this crate is built on, so users get the same version.
pub use redis;
