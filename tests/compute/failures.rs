//! Failure paths: Redis down (the circuit breaker), Redis killed
//! mid-computation, token-guarded lock scripts, a hung holder (`max_wait`),
//! keys with stray braces on a cluster.

use super::*;

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
                .with_failure_threshold(2)
                // Long enough that it is still open when checked below.
                .with_cool_down(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    let svc = support::connect(config).await;
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
    let svc = &services(Deployment::Standalone, 1).await[0];
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
        svcs.push(support::connect(config).await);
    }
    // Computations wait here until Redis is gone (closed: all pass).
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (svc, gate) = (svcs[i % 2].clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            svc.get_or_compute(
                "k",
                async move {
                    let _ = gate.acquire().await;
                    "value".to_string()
                },
                ComputeOptions::new().ttl(Duration::from_secs(60)),
            )
            .await
        }));
    }
    // One service holds the lease and computes; the other's leader polls it.
    wait_until(
        "a holder computes and a waiter polls its lock",
        Duration::from_secs(30),
        || async { total(&svcs, |s| s.computations) == 1 && total(&svcs, |s| s.lock_waits) == 1 },
    )
    .await;
    server.stop();
    gate.close();
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

/// A holder that hangs while its process lives keeps extending its lock;
/// `max_wait` bounds how long the others wait for it.
#[tokio::test]
async fn max_wait_bounds_the_wait_for_a_hung_holder() {
    let svcs = services(Deployment::Standalone, 2).await;
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
                // Extended every third of it while the holder hangs.
                ComputeOptions::new().lock_ttl(Duration::from_secs(1)),
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
    // Computed without the lease, so not stored: the hung holder's lease
    // still guards the key.
    assert_eq!(raw_get(&svcs[1], &key).await, None);
    assert_eq!(svcs[1].cache_stats().wait_timeouts, 1);
    // The hung holder still holds (and extends) its lock.
    assert!(raw_exists(&svcs[1], &redis_atomics::keys::lock_key(&key)).await);
    hung.abort();
}

/// A service whose own server is stopped and whose breaker is open (one
/// failure opens it, for an hour); the first call's value came from the
/// function.
async fn open_breaker() -> (support::RedisServer, RedisService) {
    let mut server = support::RedisServer::start();
    let config = RedisConfig::builder()
        .url(server.url())
        .retry_count(0)
        .circuit_breaker(
            CircuitBreakerOptions::new()
                .with_failure_threshold(1)
                .with_cool_down(Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    let svc = support::connect(config).await;
    server.stop();
    let v: u32 = svc
        .get_or_compute("open", async { 1 }, ComputeOptions::new())
        .await
        .unwrap();
    assert_eq!(v, 1);
    assert_eq!(svc.circuit_state(), CircuitState::Open);
    (server, svc)
}

/// While the breaker is open, concurrent calls of one key in a process
/// still share one computation (the database behind it is not stampeded
/// because Redis is down).
#[tokio::test]
async fn breaker_open_calls_still_share_one_computation() {
    let (_server, svc) = open_breaker().await;
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

/// While the breaker is open a call awaits nothing on the network; a tight
/// loop of such calls (with a function that does not await either) must
/// still let other tasks of a single-threaded runtime run.
#[tokio::test]
async fn breaker_open_calls_let_other_tasks_run() {
    let (_server, svc) = open_breaker().await;
    let opts = ComputeOptions::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let other = ran.clone();
    tokio::spawn(async move { other.store(1, Ordering::SeqCst) });
    let mut calls = 0u32;
    while ran.load(Ordering::SeqCst) == 0 && calls < 100_000 {
        let v: u32 = svc
            .get_or_compute("spin", async move { calls }, opts.clone())
            .await
            .unwrap();
        assert_eq!(v, calls);
        calls += 1;
    }
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "no other task ran in {calls} calls"
    );
    assert!(calls <= 1_000, "the other task waited {calls} calls");
}

/// Keys with braces but no hash tag (`a}b`, `{b`, `x{}y`): the lock and the
/// compute-time key must still share the value's slot, or a cluster refuses
/// the script with CROSSSLOT.
#[tokio::test]
async fn keys_with_stray_braces_work_on_a_cluster() {
    let svc = services(Deployment::Cluster, 1).await.remove(0);
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
