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

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_atomics::{
    CircuitBreakerOptions, CircuitState, ComputeError, ComputeOptions, ErrorKind, RedisConfig,
    RedisService,
};
use support::{Deployment, raw_exists, raw_get, services};
use tokio::sync::Notify;

/// Polls `cond` until it holds; fails saying `what` if it does not within
/// `bound` (a liveness bound, never a timing goal: keep it far above what a
/// loaded machine needs, and below whatever else could explain the outcome).
async fn wait_until<F, Fut>(what: &str, bound: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + bound;
    while !cond().await {
        assert!(Instant::now() < deadline, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The sum of one counter over several services.
fn total(svcs: &[RedisService], stat: impl Fn(&redis_atomics::CacheStats) -> u64) -> u64 {
    svcs.iter().map(|s| stat(&s.cache_stats())).sum()
}

/// 200 callers spread over 4 services (4 connections, 4 single-flight
/// maps: 4 "processes") released together by a barrier on a cold key whose
/// computation takes 100 ms. Whatever the scheduling, exactly one of them
/// computes: a caller that comes late finds the stored value.
async fn herd(cluster: bool, single_flight: bool) {
    let svcs = services(cluster, 4).await;
    let key = format!("{}:report", support::unique_prefix("herd"));
    let computations = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(200));
    let opts = ComputeOptions::new()
        .ttl(Duration::from_secs(60))
        .single_flight(single_flight);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let svc = svcs[i % 4].clone();
        let (key, computations, opts, barrier) = (
            key.clone(),
            computations.clone(),
            opts.clone(),
            barrier.clone(),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
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
    assert_eq!(total(&svcs, |s| s.computations), 1);
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

// The same herds on 4 worker threads: each service's single-flight map is
// joined from several threads at once (the tests above run every task on
// one thread, so the map never sees a parallel join).

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn herd_of_200_on_4_threads_computes_once_standalone() {
    herd(false, true).await;
    herd(false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn herd_of_200_on_4_threads_computes_once_cluster() {
    herd(true, true).await;
    herd(true, false).await;
}

/// The first computation fails: its caller gets the error, one waiter
/// takes over, everyone else gets the value. The lock lives 60 s, so a
/// takeover within 30 s shows the failed holder released it, not expiry.
async fn herd_first_fails(cluster: bool) {
    let svcs = services(cluster, 4).await;
    let key = format!("{}:k", support::unique_prefix("herd-fail"));
    let computations = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(200));
    let opts = ComputeOptions::new()
        .ttl(Duration::from_secs(60))
        .lock_ttl(Duration::from_secs(60));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let svc = svcs[i % 4].clone();
        let (key, computations, barrier, opts) = (
            key.clone(),
            computations.clone(),
            barrier.clone(),
            opts.clone(),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            svc.try_get_or_compute(
                &key,
                async {
                    let n = computations.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if n == 0 { Err("boom") } else { Ok(42u32) }
                },
                opts,
            )
            .await
        }));
    }
    let all = async {
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
        (ok, failed)
    };
    let (ok, failed) = tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .expect("a waiter takes over well within the 60 s lock TTL");
    assert_eq!((ok, failed), (199, 1));
    assert_eq!(
        computations.load(Ordering::SeqCst),
        2,
        "one failure, one success"
    );
    assert_eq!(raw_get(&svcs[0], &key).await.unwrap(), b"42");
}

#[tokio::test]
async fn holder_failure_hands_over_to_one_waiter() {
    herd_first_fails(false).await;
}

#[tokio::test]
async fn holder_failure_hands_over_to_one_waiter_cluster() {
    herd_first_fails(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holder_failure_hands_over_to_one_waiter_on_4_threads() {
    herd_first_fails(false).await;
    herd_first_fails(true).await;
}

/// A failing computation releases the lock before its call returns: with a
/// 60 s lock TTL, the lock key is gone the moment the error comes back, and
/// a caller of another service that was waiting on it takes over.
async fn failure_releases_at_once(cluster: bool) {
    let svcs = services(cluster, 2).await;
    let key = format!("{}:k", support::unique_prefix("fail-release"));
    let lock = redis_atomics::keys::lock_key(&key);
    let opts = ComputeOptions::new()
        .ttl(Duration::from_secs(60))
        .lock_ttl(Duration::from_secs(60));
    let (started, fail) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let holder = {
        let (svc, key, opts, started, fail) = (
            svcs[0].clone(),
            key.clone(),
            opts.clone(),
            started.clone(),
            fail.clone(),
        );
        tokio::spawn(async move {
            svc.try_get_or_compute(
                &key,
                async {
                    started.notify_one();
                    fail.notified().await;
                    Err::<u32, _>("boom")
                },
                opts,
            )
            .await
        })
    };
    started.notified().await;
    let mut conn = svcs[1].connection();
    let mut lock_value = async || -> Option<String> {
        redis::cmd("GET")
            .arg(&lock)
            .query_async(&mut conn)
            .await
            .unwrap()
    };
    let token = lock_value().await.expect("the holder has the lock");
    let waiter = {
        let (svc, key, opts) = (svcs[1].clone(), key.clone(), opts.clone());
        tokio::spawn(async move {
            svc.try_get_or_compute(&key, async { Ok::<u32, &str>(7) }, opts)
                .await
        })
    };
    wait_until(
        "the waiter is waiting on the lock",
        Duration::from_secs(30),
        || async { svcs[1].cache_stats().lock_waits == 1 },
    )
    .await;
    fail.notify_one();
    assert!(matches!(
        holder.await.unwrap(),
        Err(ComputeError::Compute("boom"))
    ));
    // Released before the error was returned: the holder's token is gone
    // (the waiter may already hold the lock again, with its own token).
    assert_ne!(
        lock_value().await.as_deref(),
        Some(token.as_str()),
        "the failed holder's lock outlived its call"
    );
    let v = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the waiter takes over well within the 60 s lock TTL")
        .unwrap()
        .unwrap();
    assert_eq!(v, 7);
    assert_eq!(raw_get(&svcs[1], &key).await.unwrap(), b"7");
    assert!(!raw_exists(&svcs[1], &lock).await);
}

#[tokio::test]
async fn a_failed_computation_releases_the_lock_at_once() {
    failure_releases_at_once(false).await;
}

#[tokio::test]
async fn a_failed_computation_releases_the_lock_at_once_cluster() {
    failure_releases_at_once(true).await;
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
    // Each other service's flight leader is polling the holder's lock (its
    // other callers wait on that leader); the holder's own service's
    // callers wait on the holder's flight.
    wait_until("the waiters queue up", Duration::from_secs(30), || async {
        total(&svcs[1..], |s| s.lock_waits) == 3
    })
    .await;
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

/// Regression (issue 12, fixed earlier): a call cancelled while its
/// `get_or_lock` is in flight — the script ran and took the lease, the
/// reply has not arrived — releases that lease, long before its 60 s TTL.
/// The proxy drops replies: the request reaches the server, which takes
/// the lease, while the caller still waits for the answer; then the call
/// is aborted. (Before the fix the lease was armed only once the reply said
/// "compute", so this lock stayed for its whole TTL.)
#[tokio::test]
async fn cancelled_while_get_or_lock_is_in_flight_releases_the_lease() {
    let server = support::shared_server().await;
    let direct = services(Deployment::Standalone, 1).await.remove(0);
    // The scripts are loaded, so EVALSHA runs at once (no NOSCRIPT reply
    // to lose before the script ever ran).
    direct.preload().await.unwrap();
    let proxy = support::proxy::FaultProxy::start(server.port());
    let config = RedisConfig::builder()
        .url(proxy.url())
        .retry_count(0)
        .response_timeout(Duration::from_secs(120))
        .call_deadline(Duration::from_secs(120))
        .build()
        .unwrap();
    let svc = support::connect(config).await;
    let key = format!("{}:k", support::unique_prefix("cancel-in-flight"));
    let lock = redis_atomics::keys::lock_key(&key);
    // With early refresh the first request is get_or_lock itself (no plain
    // GET first, whose lost reply would stall the call before it).
    let opts = ComputeOptions::new()
        .ttl(Duration::from_secs(60))
        .early_refresh(1.0)
        .lock_ttl(Duration::from_secs(60));
    let computations = Arc::new(AtomicUsize::new(0));
    proxy.set_drop_replies(true);
    let call = {
        let (key, computations) = (key.clone(), computations.clone());
        tokio::spawn(async move {
            svc.get_or_compute(
                &key,
                async move {
                    computations.fetch_add(1, Ordering::SeqCst);
                    1u32
                },
                opts,
            )
            .await
        })
    };
    wait_until(
        "get_or_lock reaches the server and takes the lease",
        Duration::from_secs(30),
        || async { raw_exists(&direct, &lock).await },
    )
    .await;
    assert!(
        !call.is_finished(),
        "its reply was dropped: still in flight"
    );
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    // Only replies are dropped: the release reaches the server.
    wait_until(
        "the cancelled call releases its lease (TTL 60 s)",
        Duration::from_secs(20),
        || async { !raw_exists(&direct, &lock).await },
    )
    .await;
    assert_eq!(computations.load(Ordering::SeqCst), 0);
    assert!(!raw_exists(&direct, &key).await);
    proxy.heal();
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
    let svcs = services(Deployment::Standalone, 2).await;
    let key = format!("{}:k", support::unique_prefix("extend"));
    let lock = redis_atomics::keys::lock_key(&key);
    let computations = Arc::new(AtomicUsize::new(0));
    let (started, finish) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let lock_ttl = Duration::from_millis(900);
    let opts = ComputeOptions::new().lock_ttl(lock_ttl);
    let holder = {
        let (svc, key, computations, started, finish, opts) = (
            svcs[0].clone(),
            key.clone(),
            computations.clone(),
            started.clone(),
            finish.clone(),
            opts.clone(),
        );
        tokio::spawn(async move {
            svc.get_or_compute(
                &key,
                async {
                    computations.fetch_add(1, Ordering::SeqCst);
                    started.notify_one();
                    finish.notified().await;
                    1u32
                },
                opts,
            )
            .await
        })
    };
    started.notified().await;
    // The lock was taken before `since`. It must be there all along, well
    // past the TTL it was taken with: only extension explains that.
    let since = Instant::now();
    while since.elapsed() < 3 * lock_ttl {
        assert!(
            raw_exists(&svcs[1], &lock).await,
            "the lock expired after {:?} while its holder computed",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = {
        let (svc, key, computations) = (svcs[1].clone(), key.clone(), computations.clone());
        tokio::spawn(async move {
            svc.get_or_compute(
                &key,
                async move {
                    computations.fetch_add(1, Ordering::SeqCst);
                    2u32
                },
                opts.single_flight(false),
            )
            .await
        })
    };
    wait_until(
        "the second caller waits on the lock",
        Duration::from_secs(30),
        || async { svcs[1].cache_stats().lock_waits == 1 },
    )
    .await;
    finish.notify_one();
    assert_eq!(holder.await.unwrap().unwrap(), 1);
    assert_eq!(
        second.await.unwrap().unwrap(),
        1,
        "the waiter got the holder's value"
    );
    assert_eq!(computations.load(Ordering::SeqCst), 1);
}
