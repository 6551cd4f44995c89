//! get_or_compute: exactly one computation under a herd (several services
//! standing in for processes), failure and cancellation of the holder, lock
//! expiry, auto-extension, raw bytes, XFetch, degradation and the circuit
//! breaker; standalone and cluster.

mod support;

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

#[tokio::test]
async fn raw_bytes_and_strings_are_stored_as_is() {
    let svc = &standalone_services(1).await[0];
    let p = support::unique_prefix("raw");
    let opts = ComputeOptions::new().serialize_json(false);
    let bytes = vec![0u8, 0xff, b'\n', 0x80];
    let got: Vec<u8> = svc
        .get_or_compute(&format!("{p}:b"), async { bytes.clone() }, opts.clone())
        .await
        .unwrap();
    assert_eq!(got, bytes);
    assert_eq!(raw_get(svc, &format!("{p}:b")).await.unwrap(), bytes);
    let again: Vec<u8> = svc
        .get_or_compute(&format!("{p}:b"), async { vec![1] }, opts.clone())
        .await
        .unwrap();
    assert_eq!(again, bytes);

    let s: String = svc
        .get_or_compute(
            &format!("{p}:s"),
            async { "héllo".to_string() },
            opts.clone(),
        )
        .await
        .unwrap();
    assert_eq!(s, "héllo");
    assert_eq!(
        raw_get(svc, &format!("{p}:s")).await.unwrap(),
        "héllo".as_bytes()
    );

    // Raw mode refuses what is not a string or bytes, before storing anything.
    let err = svc
        .get_or_compute(&format!("{p}:n"), async { 5u32 }, opts)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization);
    assert!(!raw_exists(svc, &format!("{p}:n")).await);
}

#[tokio::test]
async fn errors_are_not_cached_and_release_the_lock() {
    let svc = &standalone_services(1).await[0];
    let key = format!("{}:k", support::unique_prefix("err"));
    let r: Result<u32, ComputeError<String>> = svc
        .try_get_or_compute(
            &key,
            async { Err("nope".to_string()) },
            ComputeOptions::new(),
        )
        .await;
    assert!(matches!(r, Err(ComputeError::Compute(ref e)) if e == "nope"));
    assert!(!raw_exists(svc, &key).await);
    assert!(!raw_exists(svc, &redis_atomics::keys::lock_key(&key)).await);
    let ok: Result<u32, ComputeError<String>> = svc
        .try_get_or_compute(&key, async { Ok(3) }, ComputeOptions::new())
        .await;
    assert_eq!(ok.unwrap(), 3);
}

#[tokio::test]
async fn ttl_namespace_and_validation() {
    let server = support::shared_server().await;
    let p = support::unique_prefix("ttl");
    let config = RedisConfig::builder()
        .url(server.url())
        .namespace(format!("{p}-ns"))
        .build()
        .unwrap();
    let svc = RedisService::connect(config).await.unwrap();
    let v: u32 = svc
        .get_or_compute(
            "k",
            async { 1 },
            ComputeOptions::new().ttl(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert_eq!(v, 1);
    let mut raw = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pttl: i64 = raw.pttl(format!("{p}-ns:k")).await.unwrap();
    assert!(pttl > 25_000 && pttl <= 30_000, "{pttl}");
    let err = svc
        .get_or_compute(
            "k",
            async { 1u32 },
            ComputeOptions::new().ttl(Duration::ZERO),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.key(), Some(format!("{p}-ns:k").as_str()));
}

#[tokio::test]
async fn an_undecodable_value_is_recomputed() {
    let svc = &standalone_services(1).await[0];
    let key = format!("{}:k", support::unique_prefix("decode"));
    let mut conn = svc.connection();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("{\"old\":\"shape\"}")
        .query_async(&mut conn)
        .await
        .unwrap();
    let v: Vec<u32> = svc
        .get_or_compute(&key, async { vec![1, 2] }, ComputeOptions::new())
        .await
        .unwrap();
    assert_eq!(v, vec![1, 2]);
    assert_eq!(raw_get(svc, &key).await.unwrap(), b"[1,2]");
}

#[tokio::test]
async fn early_refresh_recomputes_hot_entries_before_expiry() {
    let svc = &standalone_services(1).await[0];
    let key = format!("{}:k", support::unique_prefix("xfetch"));
    let computations = Arc::new(AtomicUsize::new(0));
    let compute = |n: Arc<AtomicUsize>| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        n.fetch_add(1, Ordering::SeqCst) as u32
    };
    let eager = ComputeOptions::new()
        .ttl(Duration::from_secs(60))
        .early_refresh(1e9); // refresh probability ~1
    let never = ComputeOptions::new()
        .ttl(Duration::from_secs(60))
        .early_refresh(1e-9); // refresh probability ~0
    let first: u32 = svc
        .get_or_compute(&key, compute(computations.clone()), never.clone())
        .await
        .unwrap();
    assert_eq!(first, 0);
    let before = svc.cache_stats();
    let cached: u32 = svc
        .get_or_compute(&key, compute(computations.clone()), never)
        .await
        .unwrap();
    assert_eq!(cached, 0, "far from expiry nothing is refreshed");
    let refreshed: u32 = svc
        .get_or_compute(&key, compute(computations.clone()), eager)
        .await
        .unwrap();
    assert_eq!(refreshed, 1);
    assert_eq!(computations.load(Ordering::SeqCst), 2);
    let after = svc.cache_stats();
    assert!(after.early_refreshes > before.early_refreshes);
    assert_eq!(raw_get(svc, &key).await.unwrap(), b"1");
}

#[tokio::test]
async fn stats_count_hits_misses_waits_and_coalesced_calls() {
    let svcs = standalone_services(2).await;
    let key = format!("{}:k", support::unique_prefix("stats"));
    let before = svcs[0].cache_stats();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (svc, key) = (svcs[0].clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            svc.get_or_compute(
                &key,
                async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    1u8
                },
                ComputeOptions::new(),
            )
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 1);
    }
    let _: u8 = svcs[0]
        .get_or_compute(&key, async { 2 }, ComputeOptions::new())
        .await
        .unwrap();
    let after = svcs[0].cache_stats();
    // Other tests share nothing with this service: exact deltas.
    assert_eq!(after.computations - before.computations, 1);
    assert_eq!(after.misses - before.misses, 1);
    // The other 9 joined the flight, or (on a slow machine) started after it
    // ended and read the stored value.
    let coalesced = after.coalesced - before.coalesced;
    assert!(coalesced >= 1, "{coalesced}");
    assert_eq!(coalesced + (after.hits - before.hits), 10);
    assert_eq!(after.degraded, before.degraded);
}

/// Redis killed mid-test: values are still computed and returned; the
/// breaker opens, skips Redis, and closes once Redis is back.
#[tokio::test]
async fn redis_down_degrades_and_the_breaker_recovers() {
    let mut server = support::RedisServer::start();
    let config = RedisConfig::builder()
        .url(server.url())
        .retry_count(0)
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(300))
        .circuit_breaker(
            CircuitBreakerOptions::new()
                .failure_threshold(2)
                .cool_down(Duration::from_millis(200)),
        )
        .build()
        .unwrap();
    let svc = RedisService::connect(config).await.unwrap();
    let opts = ComputeOptions::new().ttl(Duration::from_secs(60));
    let v: u32 = svc
        .get_or_compute("k", async { 1 }, opts.clone())
        .await
        .unwrap();
    assert_eq!(v, 1);

    server.stop();
    for i in 0..5u32 {
        let v: u32 = svc
            .get_or_compute("other", async move { 100 + i }, opts.clone())
            .await
            .unwrap();
        assert_eq!(v, 100 + i, "the function's value while Redis is down");
    }
    assert_eq!(svc.circuit_state(), CircuitState::Open);
    let stats = svc.cache_stats();
    assert_eq!(stats.degraded, 5);

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while svc.circuit_state() != CircuitState::Closed {
        assert!(Instant::now() < deadline, "breaker never closed");
        let _: u32 = svc
            .get_or_compute("probe", async { 0 }, opts.clone())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Back to caching: computed once, then served from Redis.
    let computations = AtomicUsize::new(0);
    for _ in 0..3 {
        let v: u32 = svc
            .get_or_compute(
                "after",
                async {
                    computations.fetch_add(1, Ordering::SeqCst);
                    9
                },
                opts.clone(),
            )
            .await
            .unwrap();
        assert_eq!(v, 9);
    }
    assert_eq!(computations.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn lock_scripts_guard_by_token() {
    let svc = &standalone_services(1).await[0];
    let lock = format!("{{{}:k}}:lock", support::unique_prefix("tok"));
    let mut conn = svc.connection();
    let _: () = redis::cmd("SET")
        .arg(&lock)
        .arg("mine")
        .arg("PX")
        .arg(10_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let idem = redis_atomics::Idempotency::Idempotent;
    let n: u64 = svc
        .eval_script("unlock", &[lock.as_str()], &["other"], idem)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n: u64 = svc
        .eval_script("extend_lock", &[lock.as_str()], &["other", "50000"], idem)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n: u64 = svc
        .eval_script("extend_lock", &[lock.as_str()], &["mine", "50000"], idem)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let pttl: i64 = conn.pttl(&lock).await.unwrap();
    assert!(pttl > 40_000);
    let n: u64 = svc
        .eval_script("unlock", &[lock.as_str()], &["mine"], idem)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(!raw_exists(svc, &lock).await);
}

/// Redis dies while a holder computes and others wait: the holder returns
/// its value (the store fails, logged), the waiters' polls fail and they
/// compute for themselves; nobody hangs or errors.
#[tokio::test]
async fn redis_killed_mid_computation() {
    let mut server = support::RedisServer::start();
    let mut svcs = Vec::new();
    for _ in 0..2 {
        let config = RedisConfig::builder()
            .url(server.url())
            .retry_count(1)
            .retry_delay(Duration::from_millis(20))
            .response_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        svcs.push(RedisService::connect(config).await.unwrap());
    }
    let started = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (svc, started) = (svcs[i % 2].clone(), started.clone());
        tasks.push(tokio::spawn(async move {
            svc.get_or_compute(
                "k",
                async move {
                    started.notify_one();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "value".to_string()
                },
                ComputeOptions::new().ttl(Duration::from_secs(60)),
            )
            .await
        }));
    }
    started.notified().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.stop();
    let all = async {
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "value");
        }
    };
    tokio::time::timeout(Duration::from_secs(20), all)
        .await
        .expect("no caller may hang when Redis dies");
    let degraded: u64 = svcs.iter().map(|s| s.cache_stats().degraded).sum();
    assert!(degraded >= 1, "the waiters degraded");
}

/// Many callers decide to refresh a hot key at once: one takes the lock and
/// recomputes, the others keep getting the current value at once.
#[tokio::test]
async fn concurrent_early_refresh_recomputes_once() {
    let svcs = standalone_services(4).await;
    let key = format!("{}:hot", support::unique_prefix("xfetch-herd"));
    let opts = ComputeOptions::new()
        .ttl(Duration::from_secs(60))
        .single_flight(false);
    let first: u32 = svcs[0]
        .get_or_compute(
            &key,
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                1
            },
            // Measures and stores δ, almost never refreshes.
            opts.clone().early_refresh(1e-9),
        )
        .await
        .unwrap();
    assert_eq!(first, 1);
    let computations = Arc::new(AtomicUsize::new(0));
    let eager = opts.early_refresh(1e9);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (svc, key, computations, eager) = (
            svcs[i % 4].clone(),
            key.clone(),
            computations.clone(),
            eager.clone(),
        );
        tasks.push(tokio::spawn(async move {
            svc.get_or_compute(
                &key,
                async {
                    computations.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    2u32
                },
                eager,
            )
            .await
            .unwrap()
        }));
    }
    let mut values = Vec::new();
    for t in tasks {
        values.push(t.await.unwrap());
    }
    assert_eq!(computations.load(Ordering::SeqCst), 1, "one refresher");
    assert_eq!(values.iter().filter(|&&v| v == 2).count(), 1);
    assert_eq!(values.iter().filter(|&&v| v == 1).count(), 99);
    assert_eq!(raw_get(&svcs[0], &key).await.unwrap(), b"2");
}

/// A holder that hangs while its process lives keeps extending its lock;
/// `max_wait` bounds how long the others wait for it.
#[tokio::test]
async fn max_wait_bounds_the_wait_for_a_hung_holder() {
    let svcs = standalone_services(2).await;
    let key = format!("{}:k", support::unique_prefix("max-wait"));
    let started = Arc::new(Notify::new());
    let hung = {
        let (svc, key, started) = (svcs[0].clone(), key.clone(), started.clone());
        tokio::spawn(async move {
            svc.get_or_compute(
                &key,
                async {
                    started.notify_one();
                    std::future::pending::<u32>().await
                },
                ComputeOptions::new().lock_ttl(Duration::from_millis(300)),
            )
            .await
        })
    };
    started.notified().await;
    let opts = ComputeOptions::new().max_wait(Duration::from_millis(200));
    let v: u32 = tokio::time::timeout(
        Duration::from_secs(10),
        svcs[1].get_or_compute(&key, async { 5 }, opts),
    )
    .await
    .expect("max_wait must end the wait")
    .unwrap();
    assert_eq!(v, 5);
    assert_eq!(raw_get(&svcs[1], &key).await.unwrap(), b"5");
    // The hung holder still holds (and extends) its lock.
    assert!(raw_exists(&svcs[1], &redis_atomics::keys::lock_key(&key)).await);
    hung.abort();
}

/// While the breaker is open, concurrent calls of one key in a process
/// still share one computation (the database behind it is not stampeded
/// because Redis is down).
#[tokio::test]
async fn breaker_open_calls_still_share_one_computation() {
    let mut server = support::RedisServer::start();
    let config = RedisConfig::builder()
        .url(server.url())
        .retry_count(0)
        .circuit_breaker(
            CircuitBreakerOptions::new()
                .failure_threshold(1)
                .cool_down(Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    let svc = RedisService::connect(config).await.unwrap();
    server.stop();
    let v: u32 = svc
        .get_or_compute("open", async { 1 }, ComputeOptions::new())
        .await
        .unwrap();
    assert_eq!(v, 1);
    assert_eq!(svc.circuit_state(), CircuitState::Open);
    let computations = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (svc, computations, barrier) = (svc.clone(), computations.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            svc.get_or_compute(
                "k",
                async {
                    computations.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    vec![7u32]
                },
                ComputeOptions::new(),
            )
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), vec![7]);
    }
    assert_eq!(computations.load(Ordering::SeqCst), 1);
    assert_eq!(svc.cache_stats().coalesced, 49);
}

/// Keys with braces but no hash tag (`a}b`, `{b`, `x{}y`): the lock and the
/// compute-time key must still share the value's slot, or a cluster refuses
/// the script with CROSSSLOT.
#[tokio::test]
async fn keys_with_stray_braces_work_on_a_cluster() {
    let svc = cluster_services(1).await.remove(0);
    let p = support::unique_prefix("braces");
    for (i, key) in ["a}b", "{b", "x{}y", "}{"].into_iter().enumerate() {
        let key = format!("{key}:{p}");
        let v: usize = svc
            .get_or_compute(
                &key,
                async move { i * 10 },
                ComputeOptions::new()
                    .ttl(Duration::from_secs(60))
                    .early_refresh(1.0),
            )
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(v, i * 10);
        let again: usize = svc
            .get_or_compute(
                &key,
                async { 999 },
                ComputeOptions::new().ttl(Duration::from_secs(60)),
            )
            .await
            .unwrap();
        assert_eq!(again, i * 10, "{key}: served from the cache");
    }
}
