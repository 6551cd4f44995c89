//! get_or_compute: exactly one computation under a herd (several services
//! standing in for processes), failure and cancellation of the holder, lock
//! expiry, auto-extension, raw bytes, XFetch, degradation and the circuit
//! breaker; standalone and cluster.

mod support;

#[path = "compute/failures.rs"]
mod failures;
#[path = "compute/protocol.rs"]
mod protocol;
#[path = "compute/values.rs"]
mod values;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_atomics::{
    CircuitBreakerOptions, CircuitState, ComputeError, ComputeOptions, ErrorKind, RedisConfig,
    RedisService,
};
use tokio::sync::Notify;

async fn standalone_services(n: usize) -> Vec<RedisService> {
    let server = support::shared_server().await;
    let mut out = Vec::new();
    for _ in 0..n {
        let config = RedisConfig::new(server.url()).unwrap();
        out.push(RedisService::connect(config).await.unwrap());
    }
    out
}

async fn cluster_services(n: usize) -> Vec<RedisService> {
    let cluster = support::shared_cluster().await;
    let mut out = Vec::new();
    for _ in 0..n {
        let config = RedisConfig::builder()
            .cluster_nodes(cluster.nodes())
            .build()
            .unwrap();
        out.push(RedisService::connect(config).await.unwrap());
    }
    out
}

async fn services(cluster: bool, n: usize) -> Vec<RedisService> {
    if cluster {
        cluster_services(n).await
    } else {
        standalone_services(n).await
    }
}

/// Reads a key with a raw connection (no namespace, no crate code).
async fn raw_exists(svc: &RedisService, key: &str) -> bool {
    let mut conn = svc.connection();
    let n: i64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    n == 1
}

async fn raw_get(svc: &RedisService, key: &str) -> Option<Vec<u8>> {
    let mut conn = svc.connection();
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// 200 callers spread over 4 services (4 connections, 4 single-flight
/// maps: 4 "processes") on a cold key whose computation takes 100 ms.
async fn herd(cluster: bool, single_flight: bool) {
    let svcs = services(cluster, 4).await;
    let key = format!("{}:report", support::unique_prefix("herd"));
    let computations = Arc::new(AtomicUsize::new(0));
    let opts = ComputeOptions::new()
        .ttl(Duration::from_secs(60))
        .single_flight(single_flight);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let svc = svcs[i % 4].clone();
        let (key, computations, opts) = (key.clone(), computations.clone(), opts.clone());
        tasks.push(tokio::spawn(async move {
            svc.get_or_compute(
                &key,
                async {
                    computations.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    vec!["row".to_string(); 3]
                },
                opts,
            )
            .await
        }));
    }
    for task in tasks {
        let value: Vec<String> = task.await.unwrap().unwrap();
        assert_eq!(value, vec!["row"; 3]);
    }
    assert_eq!(computations.load(Ordering::SeqCst), 1);
    let stored: Vec<String> =
        serde_json::from_slice(&raw_get(&svcs[0], &key).await.unwrap()).unwrap();
    assert_eq!(stored.len(), 3);
    assert!(!raw_exists(&svcs[0], &redis_atomics::keys::lock_key(&key)).await);
}

#[tokio::test]
async fn herd_of_200_computes_once_standalone() {
    herd(false, true).await;
}

#[tokio::test]
async fn herd_of_200_computes_once_without_single_flight() {
    // Every caller goes to Redis: the lock alone keeps it to one computation.
    herd(false, false).await;
}

#[tokio::test]
async fn herd_of_200_computes_once_cluster() {
    herd(true, true).await;
    herd(true, false).await;
}

/// The first computation fails: its caller gets the error, one waiter
/// takes over, everyone else gets the value.
async fn herd_first_fails(cluster: bool) {
    let svcs = services(cluster, 4).await;
    let key = format!("{}:k", support::unique_prefix("herd-fail"));
    let computations = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let svc = svcs[i % 4].clone();
        let (key, computations) = (key.clone(), computations.clone());
        tasks.push(tokio::spawn(async move {
            svc.try_get_or_compute(
                &key,
                async {
                    let n = computations.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if n == 0 { Err("boom") } else { Ok(42u32) }
                },
                ComputeOptions::new().ttl(Duration::from_secs(60)),
            )
            .await
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(v) => {
                assert_eq!(v, 42);
                ok += 1;
            }
            Err(ComputeError::Compute("boom")) => failed += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, failed), (199, 1));
    assert_eq!(
        computations.load(Ordering::SeqCst),
        2,
        "one failure, one success"
    );
}

#[tokio::test]
async fn holder_failure_hands_over_to_one_waiter() {
    herd_first_fails(false).await;
}

#[tokio::test]
async fn holder_failure_hands_over_to_one_waiter_cluster() {
    herd_first_fails(true).await;
}

async fn holder_cancelled(cluster: bool) {
    let svcs = services(cluster, 4).await;
    let key = format!("{}:k", support::unique_prefix("cancel"));
    let started = Arc::new(Notify::new());
    // A long lock: if the cancelled holder did not release it, waiters
    // would wait 30 s and the timeout below would fail.
    let opts = ComputeOptions::new().lock_ttl(Duration::from_secs(30));
    let holder = {
        let (svc, key, started, opts) =
            (svcs[0].clone(), key.clone(), started.clone(), opts.clone());
        tokio::spawn(async move {
            svc.get_or_compute(
                &key,
                async {
                    started.notify_one();
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    0u32
                },
                opts,
            )
            .await
        })
    };
    started.notified().await;
    let computations = Arc::new(AtomicUsize::new(0));
    let mut waiters = Vec::new();
    for i in 0..40 {
        let svc = svcs[i % 4].clone();
        let (key, computations, opts) = (key.clone(), computations.clone(), opts.clone());
        waiters.push(tokio::spawn(async move {
            svc.get_or_compute(
                &key,
                async {
                    computations.fetch_add(1, Ordering::SeqCst);
                    7u32
                },
                opts,
            )
            .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await; // let them queue up
    holder.abort();
    assert!(holder.await.unwrap_err().is_cancelled());
    let all = async {
        for w in waiters {
            assert_eq!(w.await.unwrap().unwrap(), 7);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), all)
        .await
        .expect("a waiter must take over after the holder is cancelled");
    assert_eq!(computations.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cancelled_holder_releases_its_lock() {
    holder_cancelled(false).await;
}

#[tokio::test]
async fn cancelled_holder_releases_its_lock_cluster() {
    holder_cancelled(true).await;
}

async fn expired_lock(cluster: bool) {
    let svcs = services(cluster, 2).await;
    let key = format!("{}:k", support::unique_prefix("expiry"));
    let lock = redis_atomics::keys::lock_key(&key);
    let started = Arc::new(Notify::new());
    let release_old = Arc::new(Notify::new());
    let old = {
        let (svc, key, started, release_old) = (
            svcs[0].clone(),
            key.clone(),
            started.clone(),
            release_old.clone(),
        );
        tokio::spawn(async move {
            let opts = ComputeOptions::new()
                .lock_ttl(Duration::from_millis(150))
                .auto_extend(false);
            svc.get_or_compute(
                &key,
                async {
                    started.notify_one();
                    release_old.notified().await;
                    "old".to_string()
                },
                opts,
            )
            .await
        })
    };
    started.notified().await;
    // Wait (deterministically) for the old holder's lock to expire.
    let deadline = Instant::now() + Duration::from_secs(5);
    while raw_exists(&svcs[1], &lock).await {
        assert!(Instant::now() < deadline, "lock never expired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A new holder takes the lock and keeps computing past the old one.
    let release_new = Arc::new(Notify::new());
    let new_started = Arc::new(Notify::new());
    let new = {
        let (svc, key, release_new, new_started) = (
            svcs[1].clone(),
            key.clone(),
            release_new.clone(),
            new_started.clone(),
        );
        tokio::spawn(async move {
            svc.get_or_compute(
                &key,
                async {
                    new_started.notify_one();
                    release_new.notified().await;
                    "new".to_string()
                },
                ComputeOptions::new().lock_ttl(Duration::from_secs(30)),
            )
            .await
        })
    };
    new_started.notified().await;
    // The old holder finishes: it stores its value but must not unlock.
    release_old.notify_one();
    assert_eq!(old.await.unwrap().unwrap(), "old");
    assert!(
        raw_exists(&svcs[1], &lock).await,
        "the new holder's lock was deleted"
    );
    release_new.notify_one();
    assert_eq!(new.await.unwrap().unwrap(), "new");
    assert!(!raw_exists(&svcs[1], &lock).await);
    assert_eq!(raw_get(&svcs[1], &key).await.unwrap(), b"\"new\"");
}

#[tokio::test]
async fn old_holder_never_deletes_the_new_lock() {
    expired_lock(false).await;
}

#[tokio::test]
async fn old_holder_never_deletes_the_new_lock_cluster() {
    expired_lock(true).await;
}

#[tokio::test]
async fn auto_extend_keeps_the_lock_past_its_ttl() {
    let svcs = standalone_services(2).await;
    let key = format!("{}:k", support::unique_prefix("extend"));
    let computations = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(Notify::new());
    let opts = ComputeOptions::new().lock_ttl(Duration::from_millis(150));
    let holder = {
        let (svc, key, computations, started, opts) = (
            svcs[0].clone(),
            key.clone(),
            computations.clone(),
            started.clone(),
            opts.clone(),
        );
        tokio::spawn(async move {
            svc.get_or_compute(
                &key,
                async {
                    computations.fetch_add(1, Ordering::SeqCst);
                    started.notify_one();
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    1u32
                },
                opts,
            )
            .await
        })
    };
    started.notified().await;
    // Well past the lock TTL: without extension the lock would be gone.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(raw_exists(&svcs[1], &redis_atomics::keys::lock_key(&key)).await);
    let second = svcs[1]
        .get_or_compute(
            &key,
            async {
                computations.fetch_add(1, Ordering::SeqCst);
                2u32
            },
            opts.single_flight(false),
        )
        .await
        .unwrap();
    assert_eq!(second, 1, "the waiter got the holder's value");
    assert_eq!(holder.await.unwrap().unwrap(), 1);
    assert_eq!(computations.load(Ordering::SeqCst), 1);
}
