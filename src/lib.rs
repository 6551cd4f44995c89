#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod batch;
pub(crate) mod codec;
pub mod commands;
pub mod config;
pub mod connection;
pub mod error;
pub mod json;
pub mod keys;
pub mod model;
pub mod retry;
pub mod scripts;
pub mod service;
pub mod temp;

pub use commands::{SetOptions, Ttl};
pub use config::{RedisConfig, RedisConfigBuilder, Topology};
pub use connection::{Connection, Node};
pub use error::{Error, ErrorKind, Result};
pub use model::{Invalid, Validate};
pub use retry::{Backoff, Idempotency, RetryPolicy};
pub use service::{PreloadReport, RedisService};
pub use temp::{DEFAULT_TEMPORARY_TTL, TempValue, TemporaryKey};

/// The redis-rs driver this crate is built on, so users get the same version.
pub use redis;
