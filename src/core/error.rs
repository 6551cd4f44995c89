//! The one public error type, [`Error`], and its [`ErrorKind`].
//!
//! Every fallible call in the crate returns [`Result<T>`](crate::Result). An
//! error knows what went wrong ([`Error::kind`]), which Redis key it concerns
//! when there is one ([`Error::key`]), the field path of a decode failure
//! ([`Error::path`]) and how many attempts the retry policy made
//! ([`Error::attempts`]). Its `Display` reads like
//! `user:1: .address.zip: invalid type: integer, expected a string`.

use std::fmt;
use std::sync::Arc;

/// A shorthand for `std::result::Result<T, redis_atomics::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is.
///
/// The kind decides whether the retry policy may repeat an operation: see
/// [`Error::is_retryable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The connection could not be made, or broke (refused, reset, closed).
    Connection,
    /// A connect or response timeout elapsed.
    Timeout,
    /// A transient server or cluster state: `TRYAGAIN`, `CLUSTERDOWN`,
    /// `LOADING`, `MASTERDOWN`, `READONLY` (a failover in progress), or a
    /// `MOVED`/`ASK` redirection that could not be followed (a slot map in
    /// flux). The server refused the command, so it did not run.
    Unavailable,
    /// A value could not be serialized before it was sent.
    Serialization,
    /// A stored value could not be decoded into the requested type.
    /// [`Error::key`] and [`Error::path`] say where.
    Deserialization,
    /// The caller's input was rejected before any round trip.
    Validation,
    /// A Lua script failed on the server.
    Script,
    /// `WRONGTYPE`: the key holds a value of another type (for example a list).
    WrongType,
    /// `OOM`: the server is out of memory under a `noeviction` policy.
    OutOfMemory,
    /// The configuration is invalid.
    Config,
    /// The circuit breaker is open: Redis was failing and is not being called.
    CircuitOpen,
    /// Any other error the server returned.
    Server,
    /// A reply did not have the expected shape.
    Protocol,
}

impl ErrorKind {
    /// A short lowercase name of the kind, as used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connection => "connection error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "server unavailable",
            ErrorKind::Serialization => "serialization error",
            ErrorKind::Deserialization => "deserialization error",
            ErrorKind::Validation => "invalid input",
            ErrorKind::Script => "script error",
            ErrorKind::WrongType => "wrong type",
            ErrorKind::OutOfMemory => "out of memory",
            ErrorKind::Config => "invalid configuration",
            ErrorKind::CircuitOpen => "circuit open",
            ErrorKind::Server => "server error",
            ErrorKind::Protocol => "unexpected reply",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The crate's error: a kind, a message, and where it happened.
///
/// Cheap to clone (the source is shared), so one failure can be handed to
/// every waiter of a single-flight computation.
///
/// ```
/// use redis_atomics::{Error, ErrorKind};
///
/// let err = Error::validation("nx and xx cannot both be set").with_key("user:1");
/// assert_eq!(err.kind(), ErrorKind::Validation);
/// assert_eq!(err.key(), Some("user:1"));
/// assert!(!err.is_retryable());
/// assert_eq!(err.to_string(), "user:1: invalid input: nx and xx cannot both be set");
/// ```
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    key: Option<String>,
    path: Option<String>,
    attempts: u32,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            key: None,
            path: None,
            attempts: 0,
            source: None,
        }
    }

    /// A [`ErrorKind::Validation`] error.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }

    /// A [`ErrorKind::Config`] error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// A [`ErrorKind::Protocol`] error: a reply of an unexpected shape.
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, message)
    }

    /// Names the Redis key this error concerns.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Names the field path (for decode errors), e.g. `.address.zip`.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.path = (!path.is_empty()).then_some(path);
        self
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without key or path.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The Redis key (as stored, namespace included) this error concerns.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The field path of a decode or validation failure, e.g. `.address.zip`.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// How many attempts were made before this error was returned (0 when the
    /// operation never reached Redis, e.g. a validation error).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether the failure is transient, so that trying again later may
    /// succeed: connection errors, timeouts, `TRYAGAIN`/`CLUSTERDOWN`/
    /// `LOADING`/`MASTERDOWN`/`READONLY`, and an open circuit breaker.
    ///
    /// Never for `WRONGTYPE`, `OOM`, script, decode or validation errors. The
    /// retry policy itself is stricter: it repeats a timed-out operation only
    /// when the operation is idempotent.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Connection
                | ErrorKind::Timeout
                | ErrorKind::Unavailable
                | ErrorKind::CircuitOpen
        )
    }

    /// Whether a connect or response timeout elapsed.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// Whether the error says Redis could not be reached or used at all
    /// (connection, timeout, unavailable, circuit open): the cases in which
    /// the cache wrapper degrades to calling the function.
    pub fn is_unreachable(&self) -> bool {
        self.is_retryable()
    }

    /// Classifies an error of the redis-rs driver.
    pub(crate) fn from_redis(err: redis::RedisError) -> Self {
        let kind = classify(&err);
        let message = err.to_string();
        Error::new(kind, message).with_source(err)
    }
}

/// The server error codes that mean "not now, and not run": a cluster or
/// server state that passes (slot moving, failover, loading).
const UNAVAILABLE_CODES: [&str; 7] = [
    "TRYAGAIN",
    "CLUSTERDOWN",
    "LOADING",
    "MASTERDOWN",
    "READONLY",
    "MOVED",
    "ASK",
];

/// Maps a driver error onto an [`ErrorKind`].
///
/// The server's error code decides first, whether the reply came to a plain
/// command or to a script (`EVALSHA` refused with `MOVED`, `TRYAGAIN`, … is a
/// cluster state, not a script failure), and also when an older server wraps
/// it in a script error (`ERR Error running script (…): @user_script:17:
/// WRONGTYPE …`).
fn classify(err: &redis::RedisError) -> ErrorKind {
    use redis::{ErrorKind as K, ServerErrorKind as S};
    if err.is_timeout() {
        return ErrorKind::Timeout;
    }
    let text = err.to_string();
    let code = match err.code() {
        None | Some("ERR") => wrapped_code(&text).or(err.code()),
        code => code,
    };
    match code {
        Some("WRONGTYPE") => return ErrorKind::WrongType,
        Some("OOM") => return ErrorKind::OutOfMemory,
        Some(c) if UNAVAILABLE_CODES.contains(&c) => return ErrorKind::Unavailable,
        Some("NOSCRIPT") => return ErrorKind::Script,
        _ => {}
    }
    if text.contains("WRONGTYPE") {
        return ErrorKind::WrongType;
    }
    if text.contains("OOM command not allowed") {
        return ErrorKind::OutOfMemory;
    }
    match err.kind() {
        K::Io | K::ClusterConnectionNotFound => {
            if text.to_ascii_lowercase().contains("timed out") {
                ErrorKind::Timeout
            } else {
                ErrorKind::Connection
            }
        }
        K::Server(
            S::TryAgain
            | S::ClusterDown
            | S::BusyLoading
            | S::MasterDown
            | S::ReadOnly
            | S::Moved
            | S::Ask,
        ) => ErrorKind::Unavailable,
        K::Server(S::ExecAbort) => ErrorKind::Script,
        K::Parse | K::UnexpectedReturnType => ErrorKind::Protocol,
        K::InvalidClientConfig => ErrorKind::Config,
        _ if is_script_error(&text) => ErrorKind::Script,
        _ => ErrorKind::Server,
    }
}

/// The error code inside a script error of Redis < 7, which wraps the
/// error a `redis.call` raised: `… @user_script:17: TRYAGAIN …` gives
/// `TRYAGAIN`. Only an all-capitals word right after the location counts.
fn wrapped_code(text: &str) -> Option<&str> {
    let at = text.rfind("@user_script:")?;
    let rest = &text[at + "@user_script:".len()..];
    let (_line, after) = rest.split_once(": ")?;
    let word = after.split_whitespace().next()?;
    let is_code = word.len() >= 2 && word.bytes().all(|b| b.is_ascii_uppercase());
    is_code.then_some(word)
}

fn is_script_error(text: &str) -> bool {
    text.contains("script:")
        || text.contains("Error running script")
        || text.contains("user_script")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        match self.kind {
            ErrorKind::Deserialization => f.write_str(&self.message)?,
            kind => write!(f, "{kind}: {}", self.message)?,
        }
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("key", &self.key)
            .field("path", &self.path)
            .field("attempts", &self.attempts)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<redis::RedisError> for Error {
    fn from(err: redis::RedisError) -> Self {
        Error::from_redis(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_key_and_path() {
        let err = Error::new(
            ErrorKind::Deserialization,
            "invalid type: integer, expected a string",
        )
        .with_key("user:1")
        .with_path(".address.zip");
        assert_eq!(
            err.to_string(),
            "user:1: .address.zip: invalid type: integer, expected a string"
        );
    }

    fn server(text: &str) -> redis::RedisError {
        // The driver's own parser, as for a real reply.
        let reply = format!("-{text}\r\n");
        match redis::parse_redis_value(reply.as_bytes()) {
            Ok(value) => value.extract_error().unwrap_err(),
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn classifies_many_server_replies() {
        use ErrorKind as E;
        let cases = [
            ("MOVED 3999 127.0.0.1:6381", E::Unavailable),
            ("ASK 3999 127.0.0.1:6381", E::Unavailable),
            (
                "TRYAGAIN Multiple keys request during rehashing of slot",
                E::Unavailable,
            ),
            ("CLUSTERDOWN The cluster is down", E::Unavailable),
            ("CLUSTERDOWN Hash slot not served", E::Unavailable),
            (
                "LOADING Redis is loading the dataset in memory",
                E::Unavailable,
            ),
            (
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
                E::Unavailable,
            ),
            (
                "READONLY You can't write against a read only replica.",
                E::Unavailable,
            ),
            (
                "WRONGTYPE Operation against a key holding the wrong kind of value",
                E::WrongType,
            ),
            (
                "OOM command not allowed when used memory > 'maxmemory'.",
                E::OutOfMemory,
            ),
            ("NOSCRIPT No matching script. Please use EVAL.", E::Script),
            (
                "EXECABORT Transaction discarded because of previous errors.",
                E::Script,
            ),
            // Redis 6.2 wraps what redis.call raised inside a script.
            (
                "ERR Error running script (call to f_1a2b): @user_script:17: WRONGTYPE Operation against a key holding the wrong kind of value",
                E::WrongType,
            ),
            (
                "ERR Error running script (call to f_1a2b): @user_script:3: TRYAGAIN Multiple keys request during rehashing of slot",
                E::Unavailable,
            ),
            (
                "ERR Error running script (call to f_1a2b): @user_script:3: CLUSTERDOWN The cluster is down",
                E::Unavailable,
            ),
            (
                "ERR Error running script (call to f_1a2b): @user_script:9: OOM command not allowed when used memory > 'maxmemory'.",
                E::OutOfMemory,
            ),
            // A script's own error, whatever words it carries, stays a script error.
            (
                "ERR Error running script (call to f_1a2b): @user_script:5: user_script:5: ttl must be an integer",
                E::Script,
            ),
            (
                "ERR user_script:1: Script attempted to access a non local key in a cluster node script: f_1, on @user_script:1.",
                E::Script,
            ),
            (
                "ERR Error running script (call to f_1a2b): @user_script:5: bad MOVED value",
                E::Script,
            ),
            ("ERR wrong number of arguments for 'get' command", E::Server),
            (
                "NOPERM User app has no permissions to access the 'x' key",
                E::Server,
            ),
            ("BUSY Redis is busy running a script.", E::Server),
        ];
        for (text, kind) in cases {
            assert_eq!(classify(&server(text)), kind, "{text}");
        }
    }

    #[test]
    fn classifies_io_and_driver_errors() {
        use std::io::ErrorKind as Io;
        let io = |k| redis::RedisError::from(std::io::Error::from(k));
        for (k, kind) in [
            (Io::ConnectionRefused, ErrorKind::Connection),
            (Io::ConnectionReset, ErrorKind::Connection),
            (Io::BrokenPipe, ErrorKind::Connection),
            (Io::UnexpectedEof, ErrorKind::Connection),
            (Io::NotConnected, ErrorKind::Connection),
            (Io::TimedOut, ErrorKind::Timeout),
            (Io::WouldBlock, ErrorKind::Timeout),
        ] {
            assert_eq!(classify(&io(k)), kind, "{k:?}");
        }
        let driver = |k, text: &'static str| redis::RedisError::from((k, text));
        assert_eq!(
            classify(&driver(
                redis::ErrorKind::ClusterConnectionNotFound,
                "no conn"
            )),
            ErrorKind::Connection
        );
        assert_eq!(
            classify(&driver(redis::ErrorKind::Parse, "bad")),
            ErrorKind::Protocol
        );
        assert_eq!(
            classify(&driver(redis::ErrorKind::InvalidClientConfig, "bad url")),
            ErrorKind::Config
        );
    }

    #[test]
    fn wrapped_codes_need_the_script_location() {
        assert_eq!(
            wrapped_code("ERR x @user_script:3: TRYAGAIN y"),
            Some("TRYAGAIN")
        );
        assert_eq!(wrapped_code("ERR TRYAGAIN y"), None);
        assert_eq!(wrapped_code("ERR x @user_script:3: tryagain"), None);
        assert_eq!(wrapped_code("ERR x @user_script:3: A"), None);
        assert_eq!(wrapped_code("ERR x @user_script:3"), None);
    }

    #[test]
    fn classifies_server_codes() {
        let wrong = redis::RedisError::from((redis::ErrorKind::Extension, "x"));
        assert_eq!(classify(&wrong), ErrorKind::Server);
        let io =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&io), ErrorKind::Connection);
        let timeout = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert_eq!(classify(&timeout), ErrorKind::Timeout);
    }
}
