//! Shared helpers of the JSON / model / temporary-key tests: services on the
//! shared standalone server and the shared cluster, and raw access to them.
#![allow(dead_code)]

use redis::aio::ConnectionLike;
use redis::{FromRedisValue, ToRedisArgs};
use redis_atomics::{RedisConfig, RedisService};

use crate::support;

/// A service on the shared standalone server, namespaced `ns`.
pub async fn standalone(ns: &str) -> RedisService {
    let server = support::shared_server().await;
    let config = RedisConfig::builder()
        .url(server.url())
        .namespace(ns)
        .build()
        .unwrap();
    RedisService::connect(config).await.unwrap()
}

/// A service on the shared 3-primary cluster, namespaced `ns`.
pub async fn cluster(ns: &str) -> RedisService {
    let cluster = support::shared_cluster().await;
    let config = RedisConfig::builder()
        .cluster_nodes(cluster.nodes())
        .namespace(ns)
        .build()
        .unwrap();
    RedisService::connect(config).await.unwrap()
}

/// Both deployments, labelled, with their own namespace.
pub async fn both(test: &str) -> Vec<(&'static str, RedisService)> {
    vec![
        (
            "standalone",
            standalone(&support::unique_prefix(test)).await,
        ),
        ("cluster", cluster(&support::unique_prefix(test)).await),
    ]
}

/// Runs a raw command (no namespace, no crate code in between) on the
/// service's deployment.
pub async fn raw<T: FromRedisValue>(svc: &RedisService, args: &[&dyn ToRedisArgsDyn]) -> T {
    let mut cmd = redis::Cmd::new();
    for a in args {
        a.push(&mut cmd);
    }
    let mut conn = svc.connection();
    let value = conn.req_packed_command(&cmd).await.unwrap();
    T::from_redis_value(value).unwrap()
}

/// Object-safe `ToRedisArgs` for [`raw`]'s argument lists.
pub trait ToRedisArgsDyn {
    fn push(&self, cmd: &mut redis::Cmd);
}

impl<T: ToRedisArgs> ToRedisArgsDyn for T {
    fn push(&self, cmd: &mut redis::Cmd) {
        cmd.arg(self);
    }
}

/// The PTTL (ms) of a full key: -2 missing, -1 persistent.
pub async fn pttl(svc: &RedisService, full: &str) -> i64 {
    raw(svc, &[&"PTTL", &full]).await
}
