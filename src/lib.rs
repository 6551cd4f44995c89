#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub(crate) mod codec;
pub mod commands;
pub mod config;
pub mod connection;
pub mod error;
pub mod keys;
pub mod retry;
pub mod scripts;
pub mod search;
pub mod service;

pub use commands::{SetOptions, Ttl};
pub use config::{RedisConfig, RedisConfigBuilder, Topology};
pub use connection::{Connection, Node};
pub use error::{Error, ErrorKind, Result};
pub use retry::{Backoff, Idempotency, RetryPolicy};
pub use service::{PreloadReport, RedisService};

/// The redis-rs driver this crate is built on, so users get the same version.
pub use redis;
