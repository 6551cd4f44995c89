//! The core every capability stands on, naming none of them: the
//! connection, settings, namespaced key building, the retry policy, errors,
//! the embedded scripts and one way to run a command ([`service`]'s
//! `query`) or a script ([`script_call::ScriptCall`]).
//!
//! Imports point one way: the features (`compute`, `cache`, `rate_limit`,
//! `search`, `temp`, `json`, `batch`, `model`) use the core; nothing here
//! uses a feature. A feature that needs per-service state keeps it in a
//! typed slot on the service ([`slots`]), so adding one touches only the
//! new module.

pub mod breaker;
pub(crate) mod codec;
pub mod commands;
pub mod config;
pub mod connection;
pub mod error;
pub mod keys;
pub mod retry;
pub(crate) mod script_call;
pub mod scripts;
pub mod service;
pub(crate) mod slots;
#[cfg(feature = "tls")]
pub mod tls;
