//! The connection under a service: one server through redis-rs
//! `ConnectionManager` (which reconnects by itself), or a cluster through
//! `cluster_async`. Both are multiplexed and cheap to clone.
//!
//! **Only the library re-sends a command.** The cluster client is built with
//! `retries(0)`: redis-rs would otherwise re-send a request whose connection
//! broke after the server ran it (a lost reply), counting a non-idempotent
//! script twice. Whether to try again is decided by
//! [`RetryPolicy`](crate::RetryPolicy) from the error and the operation's
//! [`Idempotency`](crate::Idempotency). Redirections are different: a `MOVED`
//! or `ASK` reply means the node did not run the command, so
//! [`Connection`] follows them itself (up to [`MAX_REDIRECTS`] per request,
//! `ASKING` first for `ASK`), whatever the idempotency. A redirection it
//! cannot follow surfaces as [`ErrorKind::Unavailable`](crate::ErrorKind).

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, RedisFuture, RedisResult, Value};

use crate::core::config::{RedisConfig, Topology, redact_url};
use crate::core::error::{Error, Result};

/// A multiplexed connection to one server or to a cluster.
///
/// Build one yourself to share a connection you already have:
/// `Connection::from(manager)` or `Connection::from(cluster_connection)`,
/// then [`RedisService::from_connection`](crate::RedisService::from_connection).
#[derive(Clone)]
#[non_exhaustive]
pub enum Connection {
    /// One server (reconnects by itself).
    Standalone(ConnectionManager),
    /// A Redis Cluster (routes by slot; single commands follow MOVED/ASK,
    /// pipelines sent through `ConnectionLike` do not).
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Connection::Standalone(_) => f.write_str("Connection::Standalone"),
            Connection::Cluster(_) => f.write_str("Connection::Cluster"),
        }
    }
}

impl From<ConnectionManager> for Connection {
    fn from(conn: ConnectionManager) -> Self {
        Connection::Standalone(conn)
    }
}

impl From<ClusterConnection> for Connection {
    fn from(conn: ClusterConnection) -> Self {
        Connection::Cluster(conn)
    }
}

/// A primary node of the deployment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    /// Host as the cluster announces it.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// The client of one server: with the configured certificates when TLS
/// options are set (feature `tls`), else from the URL alone.
fn standalone_client(config: &RedisConfig, url: &str) -> redis::RedisResult<redis::Client> {
    #[cfg(feature = "tls")]
    if let Some(tls) = config.tls() {
        return redis::Client::build_with_tls(url, tls.certificates());
    }
    let _ = config;
    redis::Client::open(url)
}

impl Connection {
    /// Connects as `config` says.
    pub async fn connect(config: &RedisConfig) -> Result<Self> {
        let connect = async {
            match config.topology() {
                Topology::Standalone(url) => {
                    let client = standalone_client(config, url)?;
                    let manager_config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(config.connect_timeout()))
                        .set_response_timeout(Some(config.response_timeout()))
                        .set_number_of_retries(1)
                        .set_max_delay(config.retry().max_delay());
                    let manager =
                        ConnectionManager::new_with_config(client, manager_config).await?;
                    Ok(Connection::Standalone(manager))
                }
                Topology::Cluster(nodes) => {
                    let builder = redis::cluster::ClusterClientBuilder::new(nodes.clone());
                    #[cfg(feature = "tls")]
                    let builder = match config.tls() {
                        Some(tls) => builder.certs(tls.certificates()),
                        None => builder,
                    };
                    let client = builder
                        .connection_timeout(config.connect_timeout())
                        .response_timeout(config.response_timeout())
                        // Never re-sent by the driver: see the module docs.
                        .retries(0)
                        .build()?;
                    Ok(Connection::Cluster(client.get_async_connection().await?))
                }
            }
        };
        let target = match config.topology() {
            Topology::Standalone(url) => redact_url(url),
            Topology::Cluster(nodes) => nodes
                .iter()
                .map(|u| redact_url(u))
                .collect::<Vec<_>>()
                .join(","),
        };
        connect.await.map_err(|e: redis::RedisError| {
            let err = Error::from_redis(e);
            let msg = format!("cannot connect to {target}: {}", err.message());
            Error::new(err.kind(), msg).with_source(err)
        })
    }

    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Connection::Cluster(_))
    }

    /// The primaries: the one server, or every primary of the cluster (from
    /// `CLUSTER SLOTS`).
    pub async fn primaries(&self) -> Result<Vec<Node>> {
        match self {
            Connection::Standalone(_) => Ok(vec![Node {
                host: String::new(),
                port: 0,
            }]),
            Connection::Cluster(conn) => {
                let mut conn = conn.clone();
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
                let reply = conn
                    .route_command(redis::cmd("CLUSTER").arg("SLOTS").clone(), routing)
                    .await?;
                parse_cluster_slots(&reply)
            }
        }
    }

    /// Sends `cmd` to one primary (any node for standalone).
    pub async fn on_node(&self, node: &Node, cmd: &Cmd) -> Result<Value> {
        match self {
            Connection::Standalone(conn) => Ok(conn.clone().send_packed_command(cmd).await?),
            Connection::Cluster(conn) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: node.host.clone(),
                    port: node.port,
                });
                Ok(conn.clone().route_command(cmd.clone(), routing).await?)
            }
        }
    }
}

/// How many `MOVED`/`ASK` redirections one cluster request follows before
/// the redirection is returned as an error (a slot map in flux).
pub const MAX_REDIRECTS: usize = 5;

/// Sends `cmd` by slot and follows `MOVED`/`ASK` to the node they name. Safe
/// for every command: a redirection means the command did not run.
async fn cluster_request(conn: &mut ClusterConnection, cmd: &Cmd) -> RedisResult<Value> {
    let mut reply = conn.req_packed_command(cmd).await;
    for _ in 0..MAX_REDIRECTS {
        let Some(redirect) = reply.as_ref().err().and_then(Redirect::of) else {
            break;
        };
        let routing = SingleNodeRoutingInfo::ByAddress {
            host: redirect.host.clone(),
            port: redirect.port,
        };
        let next = if redirect.ask {
            let mut pipe = redis::pipe();
            pipe.cmd("ASKING").add_command(cmd.clone());
            conn.route_pipeline(pipe, 1, 1, routing)
                .await
                .and_then(|mut values| {
                    values.pop().ok_or_else(|| {
                        redis::RedisError::from((
                            redis::ErrorKind::Parse,
                            "ASKING pipeline: no reply",
                        ))
                    })
                })
        } else {
            conn.route_command(cmd.clone(), RoutingInfo::SingleNode(routing))
                .await
        };
        match next {
            // No connection to that node yet: the driver is refreshing its
            // slot map (it does on every MOVED); the retry policy tries again.
            Err(e) if e.kind() == redis::ErrorKind::ClusterConnectionNotFound => break,
            next => reply = next,
        }
    }
    reply
}

/// Where a `MOVED`/`ASK` error points.
struct Redirect {
    host: String,
    port: u16,
    ask: bool,
}

impl Redirect {
    fn of(err: &redis::RedisError) -> Option<Self> {
        let (addr, _slot) = err.redirect_node()?;
        let (host, port) = addr.rsplit_once(':')?;
        Some(Redirect {
            host: host.to_owned(),
            port: port.parse().ok()?,
            ask: err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Ask),
        })
    }
}

/// Primaries from a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id], …], …]`.
fn parse_cluster_slots(reply: &Value) -> Result<Vec<Node>> {
    let bad = || Error::protocol("unexpected CLUSTER SLOTS reply");
    let Value::Array(ranges) = reply else {
        return Err(bad());
    };
    let mut nodes = Vec::new();
    for range in ranges {
        let Value::Array(parts) = range else {
            return Err(bad());
        };
        let Some(Value::Array(primary)) = parts.get(2) else {
            return Err(bad());
        };
        let host = match primary.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => return Err(bad()),
        };
        let port = match primary.get(1) {
            Some(Value::Int(p)) => u16::try_from(*p).map_err(|_| bad())?,
            _ => return Err(bad()),
        };
        nodes.push(Node { host, port });
    }
    nodes.sort();
    nodes.dedup();
    Ok(nodes)
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(conn) => Box::pin(cluster_request(conn, cmd)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(conn) => conn.req_packed_commands(cmd, offset, count),
            Connection::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(conn) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
        }
    }
}
