//! Services on the shared deployments, the one place a test connects a
//! [`RedisService`], and raw access to what they stored.
//!
//! * [`Deployment`]: the shared standalone server or the shared cluster;
//!   [`on_both!`](crate::support::on_both) makes a standalone and a cluster
//!   test of one `async fn(Deployment)`.
//! * [`service`] (no namespace), [`service_in`] (a given one),
//!   [`test_service`] (one unique to the running test), [`services`] (several
//!   connections, as several processes would have) and [`both`] (one per
//!   deployment, labelled); [`service_at`] for a server of the test's own;
//!   [`builder`] and [`connect`] for a test that sets more options.
//! * [`raw`], [`raw_get`], [`raw_exists`], [`pttl`], [`existing`]: commands
//!   on the service's deployment with no namespace and no crate code in
//!   between, so a test checks what is really stored.

use redis::FromRedisValue;
use redis_atomics::{RedisConfig, RedisConfigBuilder, RedisService};

/// Which shared deployment a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    /// [`shared_server`](super::shared_server).
    Standalone,
    /// [`shared_cluster`](super::shared_cluster): three primaries.
    Cluster,
}

impl Deployment {
    /// Both, standalone first.
    pub const BOTH: [Deployment; 2] = [Deployment::Standalone, Deployment::Cluster];

    /// `"standalone"` or `"cluster"`, for assertion messages.
    pub fn label(self) -> &'static str {
        match self {
            Deployment::Standalone => "standalone",
            Deployment::Cluster => "cluster",
        }
    }
}

/// `true` is the cluster, for tests parameterised by `cluster: bool`.
impl From<bool> for Deployment {
    fn from(cluster: bool) -> Self {
        if cluster {
            Deployment::Cluster
        } else {
            Deployment::Standalone
        }
    }
}

/// A config builder aimed at the shared deployment (starting it if needed).
pub async fn builder(on: impl Into<Deployment>) -> RedisConfigBuilder {
    match on.into() {
        Deployment::Standalone => RedisConfig::builder().url(super::shared_server().await.url()),
        Deployment::Cluster => {
            RedisConfig::builder().cluster_nodes(super::shared_cluster().await.nodes())
        }
    }
}

/// Connects a service, panicking on failure.
pub async fn connect(config: RedisConfig) -> RedisService {
    RedisService::connect(config).await.unwrap()
}

/// A service on the server at `url` (one of a test's own), namespaced
/// `namespace`.
pub async fn service_at(url: &str, namespace: &str) -> RedisService {
    let config = RedisConfig::builder().url(url).namespace(namespace);
    connect(config.build().unwrap()).await
}

/// A service on the shared deployment, without a namespace.
pub async fn service(on: impl Into<Deployment>) -> RedisService {
    connect(builder(on).await.build().unwrap()).await
}

/// A service on the shared deployment, namespaced `namespace`.
pub async fn service_in(on: impl Into<Deployment>, namespace: &str) -> RedisService {
    connect(builder(on).await.namespace(namespace).build().unwrap()).await
}

/// A service on the shared deployment, in a namespace unique to the running
/// test (see [`unique_prefix`](super::unique_prefix)).
pub async fn test_service(on: impl Into<Deployment>) -> RedisService {
    service_in(on, &super::unique_prefix(&super::current_test_name())).await
}

/// `n` services without a namespace, each with its own connection and
/// single-flight map: `n` processes, as far as the protocol can tell.
pub async fn services(on: impl Into<Deployment>, n: usize) -> Vec<RedisService> {
    let on = on.into();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(service(on).await);
    }
    out
}

/// A service per deployment, labelled, each in its own namespace made from
/// `test`.
pub async fn both(test: &str) -> Vec<(&'static str, RedisService)> {
    let mut out = Vec::new();
    for on in Deployment::BOTH {
        out.push((
            on.label(),
            service_in(on, &super::unique_prefix(test)).await,
        ));
    }
    out
}

/// Runs `cmd` as is (no namespace, no crate code in between) on the
/// service's deployment; a cluster routes it by its first key.
pub async fn raw<T: FromRedisValue>(svc: &RedisService, cmd: &redis::Cmd) -> T {
    cmd.query_async(&mut svc.connection()).await.unwrap()
}

/// `GET` of a full key.
pub async fn raw_get(svc: &RedisService, key: &str) -> Option<Vec<u8>> {
    raw(svc, redis::cmd("GET").arg(key)).await
}

/// `EXISTS` of a full key.
pub async fn raw_exists(svc: &RedisService, key: &str) -> bool {
    raw::<i64>(svc, redis::cmd("EXISTS").arg(key)).await == 1
}

/// The PTTL (ms) of a full key: -2 missing, -1 persistent.
pub async fn pttl(svc: &RedisService, key: &str) -> i64 {
    raw(svc, redis::cmd("PTTL").arg(key)).await
}

/// Those of the full `keys` that exist, in order.
pub async fn existing(svc: &RedisService, keys: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for key in keys {
        if raw_exists(svc, key).await {
            out.push(key.clone());
        }
    }
    out
}

/// `on_both!(name)` after `async fn name(on: Deployment)` makes the tests
/// `name::standalone` and `name::cluster` (multi-threaded runtime, two
/// workers).
#[allow(unused_macros)] // not every test binary has a two-deployment test
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn standalone() {
                super::$name($crate::support::Deployment::Standalone).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                super::$name($crate::support::Deployment::Cluster).await
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both;
