//! The servers a history run owns (it injects faults, so it shares none): a
//! standalone server behind a [`FaultProxy`], or a 3-primary cluster with one
//! replica per primary (for failovers). Also how services connect to them.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use redis_atomics::{CircuitBreakerOptions, RedisConfig, RedisService};

use crate::support::proxy::FaultProxy;
use crate::support::{RedisCluster, RedisServer};

pub enum Topology {
    Standalone {
        server: RedisServer,
        proxy: FaultProxy,
    },
    /// Behind a mutex: the fault schedule stops and restarts nodes.
    Cluster(Mutex<RedisCluster>),
}

impl Topology {
    pub fn standalone() -> Self {
        let server = RedisServer::start();
        let proxy = FaultProxy::start(server.port());
        Topology::Standalone { server, proxy }
    }

    pub fn cluster() -> Self {
        Topology::Cluster(Mutex::new(RedisCluster::start_with_replicas(1)))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Topology::Standalone { .. } => "standalone",
            Topology::Cluster(_) => "cluster",
        }
    }

    pub fn cluster_guard(&self) -> Option<MutexGuard<'_, RedisCluster>> {
        match self {
            Topology::Cluster(c) => Some(c.lock().unwrap_or_else(|e| e.into_inner())),
            Topology::Standalone { .. } => None,
        }
    }

    /// The configuration of a client "process": through the proxy on
    /// standalone (`direct` bypasses it, for seeding and the final state);
    /// short timeouts and a quick breaker so faults are felt, and retries so
    /// they are survived.
    pub fn config(&self, namespace: &str, direct: bool) -> RedisConfig {
        let builder = match self {
            Topology::Standalone { server, proxy } => {
                RedisConfig::builder().url(if direct { server.url() } else { proxy.url() })
            }
            Topology::Cluster(_) => {
                let nodes = self.cluster_guard().map(|c| c.nodes()).unwrap_or_default();
                RedisConfig::builder().cluster_nodes(nodes)
            }
        };
        builder
            .namespace(namespace)
            .retry_count(3)
            .retry_delay(Duration::from_millis(50))
            .max_retry_delay(Duration::from_millis(400))
            .connect_timeout(Duration::from_millis(400))
            .response_timeout(Duration::from_millis(400))
            .circuit_breaker(
                CircuitBreakerOptions::new()
                    .with_failure_threshold(5)
                    .with_cool_down(Duration::from_millis(500)),
            )
            .build()
            .expect("valid config")
    }

    pub async fn service(&self, namespace: &str, direct: bool) -> RedisService {
        let config = self.config(namespace, direct);
        let mut last = None;
        for _ in 0..50 {
            match RedisService::connect(config.clone()).await {
                Ok(s) => return s,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot connect to the {} servers: {last:?}", self.name())
    }

    /// Runs `f` on a connection to every running primary (blocking).
    pub fn each_primary<R>(&self, mut f: impl FnMut(&mut redis::Connection) -> R) -> Vec<R> {
        match self {
            Topology::Standalone { server, .. } => vec![f(&mut server.connection())],
            Topology::Cluster(_) => {
                let cluster = self.cluster_guard().expect("a cluster");
                cluster
                    .primaries()
                    .into_iter()
                    .map(|i| f(&mut cluster.node(i).connection()))
                    .collect()
            }
        }
    }

    /// Runs `f` on a connection that reaches any key (blocking).
    pub fn with_any_key<R>(&self, f: impl FnOnce(&mut dyn redis::ConnectionLike) -> R) -> R {
        match self {
            Topology::Standalone { server, .. } => f(&mut server.connection()),
            Topology::Cluster(_) => {
                let cluster = self.cluster_guard().expect("a cluster");
                let mut con = cluster
                    .client()
                    .get_connection()
                    .expect("a cluster connection");
                f(&mut con)
            }
        }
    }

    /// Waits until the servers are healthy again after the faults.
    pub fn settle(&self) {
        match self {
            Topology::Standalone { proxy, .. } => proxy.heal(),
            Topology::Cluster(_) => {
                let mut cluster = self.cluster_guard().expect("a cluster");
                for i in 0..cluster.len() {
                    if !cluster.node(i).is_running() {
                        cluster.node_mut(i).restart();
                    }
                }
                cluster.wait_ok();
            }
        }
    }
}
