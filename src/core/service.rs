//! [`RedisService`]: the handle every capability hangs off.
//!
//! A service is an `Arc` around one multiplexed connection plus the settings;
//! cloning it is cheap and clones share the connection. A namespace view
//! ([`RedisService::with_namespace`]) is a clone with another key prefix.
//!
//! Every operation goes one way: key building (namespace) → one round trip (a
//! command, a pipeline or a script) through the retry policy → a typed result.

use std::sync::Arc;

use redis::aio::ConnectionLike;
use redis::{Cmd, FromRedisValue, ToRedisArgs, Value};

use super::script_call::ScriptCall;
use super::slots::{SlotState, Slots};
use crate::core::config::RedisConfig;
use crate::core::connection::{Connection, Node};
use crate::core::error::{Error, ErrorKind, Result};
use crate::core::keys;
use crate::core::retry::{Idempotency, RetryPolicy};
use crate::core::scripts;

/// An async, cloneable handle to Redis (one server or a cluster) with
/// namespacing, auto-retry and the embedded Lua scripts.
///
/// ```no_run
/// # async fn demo() -> redis_atomics::Result<()> {
/// use redis_atomics::{RedisConfig, RedisService, SetOptions};
/// use std::time::Duration;
///
/// let service = RedisService::connect(RedisConfig::from_env()?).await?;
/// service.set("greeting", "hello", SetOptions::new().ex(Duration::from_secs(60))).await?;
/// let v: Option<String> = service.get("greeting").await?;
/// assert_eq!(v.as_deref(), Some("hello"));
///
/// let v2 = service.with_namespace("v2"); // keys become "v2:…"
/// assert_eq!(v2.key("greeting"), "v2:greeting");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisService {
    inner: Arc<Inner>,
    namespace: Option<Arc<str>>,
}

struct Inner {
    conn: Connection,
    config: RedisConfig,
    /// Per-feature state (compute flights and breaker, search schemas, …).
    slots: Slots,
}

impl std::fmt::Debug for RedisService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisService")
            .field("connection", &self.inner.conn)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl RedisService {
    /// Connects as `config` says: a `ConnectionManager` for one server, a
    /// `cluster_async` connection for a cluster.
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        let conn = Connection::connect(&config).await?;
        Ok(Self::from_connection(conn, config))
    }

    /// Wraps a connection you already have. The config's topology is not used;
    /// its namespace, retry policy and timeouts are.
    pub fn from_connection(conn: impl Into<Connection>, config: RedisConfig) -> Self {
        let namespace = config.namespace().map(Arc::from);
        RedisService {
            inner: Arc::new(Inner {
                conn: conn.into(),
                config,
                slots: Slots::default(),
            }),
            namespace,
        }
    }

    /// A view of this service whose keys are prefixed with `namespace` instead
    /// (`{namespace}:{key}`). Shares the connection; cheap enough to call per
    /// operation, which is how a one-off override is written:
    /// `service.with_namespace("tenant-7").get("k")`.
    #[must_use]
    pub fn with_namespace(&self, namespace: impl AsRef<str>) -> Self {
        let ns = namespace.as_ref();
        RedisService {
            inner: Arc::clone(&self.inner),
            namespace: (!ns.is_empty()).then(|| Arc::from(ns)),
        }
    }

    /// A view of this service without any namespace: keys are used as given.
    #[must_use]
    pub fn without_namespace(&self) -> Self {
        RedisService {
            inner: Arc::clone(&self.inner),
            namespace: None,
        }
    }

    /// The namespace of this view, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The Redis key for a caller's key: `{namespace}:{key}`, or `key`.
    pub fn key(&self, key: &str) -> String {
        keys::namespaced(self.namespace(), key)
    }

    /// The settings the service was built with.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The retry policy every operation runs under.
    pub fn retry_policy(&self) -> &RetryPolicy {
        self.inner.config.retry()
    }

    /// The underlying connection (a cheap clone), for commands the crate does
    /// not wrap. Keys sent through it are not namespaced.
    pub fn connection(&self) -> Connection {
        self.inner.conn.clone()
    }

    /// The state of one feature (built on first use, shared by every
    /// clone and view of this service).
    pub(crate) fn slot<T: SlotState>(&self) -> Arc<T> {
        self.inner.slots.get::<T>(&self.inner.config)
    }

    /// Whether the service talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.conn.is_cluster()
    }

    /// The primaries (one entry for a standalone server).
    pub async fn primaries(&self) -> Result<Vec<Node>> {
        self.inner.conn.primaries().await
    }

    /// Runs one command under the retry policy. `key` names the operation's
    /// key in errors and logs.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        op: &'static str,
        key: Option<&str>,
        idempotency: Idempotency,
        cmd: &Cmd,
    ) -> Result<T> {
        let value = self
            .retry_policy()
            .run(op, key, idempotency, || async {
                let mut conn = self.inner.conn.clone();
                conn.req_packed_command(cmd)
                    .await
                    .and_then(Value::extract_error)
                    .map_err(Error::from)
            })
            .await?;
        decode(value, op, key)
    }

    /// Runs an embedded script: `EVALSHA`, and on `NOSCRIPT` `EVAL` on the
    /// same node (which caches it there). `keys` are full Redis keys.
    pub(crate) async fn run_script<T: FromRedisValue>(
        &self,
        call: &ScriptCall,
        idempotency: Idempotency,
    ) -> Result<T> {
        let key = call.first_key();
        let value = self
            .retry_policy()
            .run(call.script.name(), key, idempotency, || async {
                let mut conn = self.inner.conn.clone();
                let first = conn
                    .req_packed_command(&call.evalsha())
                    .await
                    .and_then(Value::extract_error);
                match first {
                    Err(e) if e.code() == Some("NOSCRIPT") => {
                        tracing::debug!(
                            script = call.script.name(),
                            "NOSCRIPT; falling back to EVAL"
                        );
                        conn.req_packed_command(&call.eval())
                            .await
                            .and_then(Value::extract_error)
                    }
                    other => other,
                }
                .map_err(|e| script_error(e, call.script.name()))
            })
            .await?;
        decode(value, call.script.name(), key)
    }

    /// Runs the embedded script `name` with `keys` (namespaced like every other
    /// key) and `args`, returning its reply as `T`. This is what the typed
    /// methods use; it is public for scripts the crate does not wrap yet and
    /// for operators' tooling. `idempotency` says whether a timed-out call
    /// may be repeated.
    ///
    /// ```no_run
    /// # async fn demo(service: redis_atomics::RedisService) -> redis_atomics::Result<()> {
    /// use redis_atomics::Idempotency;
    /// let ok: u64 = service
    ///     .eval_script("unlock", &["{job:7}:lock"], &["token-1"], Idempotency::Idempotent)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn eval_script<T: FromRedisValue, A: ToRedisArgs>(
        &self,
        name: &str,
        keys: &[&str],
        args: &[A],
        idempotency: Idempotency,
    ) -> Result<T> {
        let script = scripts::get(name)
            .ok_or_else(|| Error::config(format!("no embedded Lua script named {name}")))?;
        let mut call = ScriptCall::new(script);
        for key in keys {
            call = call.key(self.key(key));
        }
        for arg in args {
            call = call.arg(arg);
        }
        self.run_script(&call, idempotency).await
    }

    /// Loads every embedded script on every primary (`SCRIPT LOAD`), so that
    /// operators can call them by SHA1 and the first calls skip the `EVAL`
    /// fallback. A node that fails is reported, not fatal.
    pub async fn preload(&self) -> Result<PreloadReport> {
        let mut report = PreloadReport::default();
        for node in self.primaries().await? {
            let mut failed = None;
            for script in scripts::all() {
                let cmd = redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(script.source())
                    .clone();
                match self.inner.conn.on_node(&node, &cmd).await {
                    Ok(Value::BulkString(sha)) if sha == script.sha1().as_bytes() => {}
                    Ok(other) => {
                        failed = Some(Error::protocol(format!(
                            "SCRIPT LOAD of {} returned {other:?}, expected {}",
                            script.name(),
                            script.sha1()
                        )));
                        break;
                    }
                    Err(err) => {
                        failed = Some(err);
                        break;
                    }
                }
            }
            match failed {
                None => report.loaded.push(node),
                Some(err) => {
                    tracing::warn!(node = %node, error = %err, "SCRIPT LOAD failed on a node");
                    report.failed.push((node, err));
                }
            }
        }
        Ok(report)
    }
}

/// What [`RedisService::preload`] did on each primary.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct PreloadReport {
    /// Nodes that now hold every script.
    pub loaded: Vec<Node>,
    /// Nodes that failed, with why.
    pub failed: Vec<(Node, Error)>,
}

fn script_error(err: redis::RedisError, script: &str) -> Error {
    let err = Error::from_redis(err);
    match err.kind() {
        ErrorKind::Server => {
            let msg = format!("{script}: {}", err.message());
            Error::new(ErrorKind::Script, msg).with_source(err)
        }
        _ => err,
    }
}

fn decode<T: FromRedisValue>(value: Value, op: &str, key: Option<&str>) -> Result<T> {
    T::from_redis_value(value).map_err(|e| {
        let err = Error::protocol(format!("{op}: {e}"));
        match key {
            Some(key) => err.with_key(key),
            None => err,
        }
    })
}
