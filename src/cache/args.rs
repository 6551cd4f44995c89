//! [`Args`]: the named arguments of a cached call, encoded for its key.

use serde::Serialize;

use crate::core::error::{Error, ErrorKind, Result};
use crate::core::keys::encode_arg_value;

/// The named arguments of one call of a cached function; they make up the
/// key as `{arg}={value}:…` in the order given (see
/// [`encode_arg_value`](crate::core::keys::encode_arg_value) for how
/// values are written).
///
/// ```
/// use redis_atomics::Args;
/// let args = Args::new().arg("user_id", &7).arg("query", "a:b");
/// assert_eq!(args.encoded().unwrap(), "user_id=7:query=a%3Ab");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Args {
    parts: Vec<(String, String)>,
    error: Option<Error>,
}

impl Args {
    /// No arguments.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an argument. A value that cannot be serialized makes
    /// [`Args::encoded`] (and so the key) fail; a cached call then runs
    /// the function without the cache and logs why.
    #[must_use]
    pub fn arg<V: Serialize + ?Sized>(mut self, name: &str, value: &V) -> Self {
        self.push(name, value);
        self
    }

    /// Adds an argument in place (see [`Args::arg`]).
    pub fn push<V: Serialize + ?Sized>(&mut self, name: &str, value: &V) {
        match serde_json::to_value(value) {
            Ok(json) => self.parts.push((name.to_string(), encode_arg_value(&json))),
            Err(e) => {
                if self.error.is_none() {
                    let msg = format!("argument {name} cannot be part of a cache key: {e}");
                    self.error = Some(Error::new(ErrorKind::Serialization, msg).with_source(e));
                }
            }
        }
    }

    /// Whether there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty() && self.error.is_none()
    }

    /// The argument part of the key: `name=value:name=value…`.
    pub fn encoded(&self) -> Result<String> {
        let mut key = String::new();
        self.append_to(&mut key)?;
        Ok(key.strip_prefix(':').unwrap_or(&key).to_string())
    }

    pub(crate) fn append_to(&self, key: &mut String) -> Result<()> {
        if let Some(err) = &self.error {
            return Err(err.clone());
        }
        for (name, value) in &self.parts {
            key.push(':');
            key.push_str(&crate::core::keys::encode_key_part(name));
            key.push('=');
            key.push_str(value);
        }
        Ok(())
    }
}
